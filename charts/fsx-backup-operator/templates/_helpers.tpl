{{/*
Short name of the application: the chart name unless nameOverride is set.
*/}}
{{- define "fsxbo.name" -}}
{{- .Values.nameOverride | default .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Name of every object: fullnameOverride, else the release name when it already
starts with the application name (`helm install fsx-backup-operator ...`),
else "<release>-<name>".
*/}}
{{- define "fsxbo.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "fsxbo.name" . -}}
{{- if hasPrefix $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Labels that select the operator's pods; never change them after an install.
*/}}
{{- define "fsxbo.selectorLabels" -}}
app.kubernetes.io/name: {{ include "fsxbo.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/*
Labels on every object.
*/}}
{{- define "fsxbo.labels" -}}
{{ include "fsxbo.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: fsx-backup-operator
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end -}}

{{/*
The ServiceAccount the operator runs as.
*/}}
{{- define "fsxbo.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- .Values.serviceAccount.name | default (include "fsxbo.fullname" .) -}}
{{- else -}}
{{- .Values.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{/*
"true" when the replicas elect a leader. values.schema.json already refuses
replicas > 1 without it; the check here covers a chart rendered without the
schema (--skip-schema-validation).
*/}}
{{- define "fsxbo.leaderElection" -}}
{{- if and (gt (int .Values.replicas) 1) (not .Values.leaderElection.enabled) -}}
{{- fail "replicas > 1 needs leaderElection.enabled=true: only the leader may act" -}}
{{- end -}}
{{- if .Values.leaderElection.enabled -}}true{{- else -}}false{{- end -}}
{{- end -}}

{{/*
Name of the leader Lease.
*/}}
{{- define "fsxbo.leaseName" -}}
{{- .Values.leaderElection.leaseName | default (include "fsxbo.fullname" .) -}}
{{- end -}}

{{/*
The image reference: by digest when one is given, else by tag (appVersion by default).
*/}}
{{- define "fsxbo.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{/*
The operator's permissions on its own kinds, for the ClusterRole (every
namespace) or each namespace's Role: read and watch both kinds, patch/update
them for finalizers, write their status, and publish events.k8s.io Events.
Nothing else: no create or delete of the kinds, no secrets, no core Events.
*/}}
{{- define "fsxbo.operatorRules" -}}
- apiGroups: ["fsxbackup.io"]
  resources: ["fsxbackupschedules", "fsxbackupcopies"]
  verbs: ["get", "list", "watch", "patch", "update"]
- apiGroups: ["fsxbackup.io"]
  resources: ["fsxbackupschedules/status", "fsxbackupcopies/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: ["fsxbackup.io"]
  resources: ["fsxbackupschedules/finalizers", "fsxbackupcopies/finalizers"]
  verbs: ["update"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end -}}
