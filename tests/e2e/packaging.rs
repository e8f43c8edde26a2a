//! Packaging, checked with the real helm and kubectl against the real
//! kube-apiserver: the Helm chart (lint, rendering, values schema, install,
//! RBAC), the plain manifests in `deploy/`, the examples and the IAM policy.
//! The RBAC is shown both ways: access reviews as the chart's `ServiceAccount`
//! (allowed and forbidden requests), and the operator binary running a whole
//! backup, prune and copy cycle with a token of that `ServiceAccount`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::support::operator::{
    OperatorConfig, eventually, install_crds, kubectl, kubectl_with_input, operator_binary,
    test_dir,
};
use crate::support::world::{WAIT, World, events_with};
use fsx_backup_operator::crd::{FsxBackupCopy, FsxBackupSchedule};
use fsx_emulator::{BackupLifecycle, FileSystemType, Timing};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::{Value, json};

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/fsx-backup-operator");

/// `(kind, namespace, name)` of an object; the namespace is empty for cluster-scoped ones.
type ObjectId = (String, String, String);

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn tool(name: &str) -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(crate::support::tools_bin).join(name)
}

/// Asserts that `output` is a success and returns its standard output.
fn ok(what: &str, output: &Output) -> String {
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs helm with its cache and configuration in a directory of this test
/// binary's own, so nothing of the user's is read or written.
fn helm(args: &[&str]) -> Output {
    let home = std::env::temp_dir().join(format!("fsxbo-helm-{}", std::process::id()));
    Command::new(tool("helm"))
        .args(args)
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .stdin(Stdio::null())
        .output()
        .expect("run helm")
}

/// Runs helm against the shared control plane.
fn helm_on_cluster(args: &[&str]) -> Output {
    let kubeconfig = crate::support::control_plane()
        .kubeconfig
        .to_str()
        .expect("kubeconfig path is UTF-8");
    let mut all = vec!["--kubeconfig", kubeconfig];
    all.extend_from_slice(args);
    helm(&all)
}

/// Runs kubectl with another kubeconfig than the admin's.
fn kubectl_as(kubeconfig: &Path, args: &[&str], input: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(tool("kubectl"))
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kubectl");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write to kubectl");
    child.wait_with_output().expect("kubectl output")
}

/// A name no other test of this process uses.
fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A namespace for one synchronous test, deleted (without waiting) when dropped.
struct TestNamespace(String);

impl TestNamespace {
    fn new(prefix: &str) -> Self {
        let name = unique(prefix);
        ok(
            "kubectl create namespace",
            &kubectl(&["create", "namespace", &name]),
        );
        Self(name)
    }

    fn name(&self) -> &str {
        &self.0
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        // Without a controller-manager it stays Terminating; nothing else uses it.
        let _ = kubectl(&["delete", "namespace", &self.0, "--wait=false"]);
    }
}

/// A release of the chart installed for one test; uninstalled when dropped.
struct Release {
    name: String,
    namespace: String,
    installed: bool,
}

impl Release {
    /// `helm install` without the CRDs, which `install_crds` applies for every test.
    fn install(prefix: &str, namespace: &str, values: &[&str]) -> Self {
        install_crds();
        let name = unique(prefix);
        let mut args = vec![
            "install",
            name.as_str(),
            CHART,
            "--namespace",
            namespace,
            "--skip-crds",
        ];
        args.extend_from_slice(values);
        ok("helm install", &helm_on_cluster(&args));
        Self {
            name,
            namespace: namespace.to_owned(),
            installed: true,
        }
    }

    /// The name of every object of the release (release name + chart name).
    fn fullname(&self) -> String {
        format!("{}-fsx-backup-operator", self.name)
    }

    fn uninstall(mut self) {
        self.installed = false;
        ok(
            "helm uninstall",
            &helm_on_cluster(&["uninstall", &self.name, "--namespace", &self.namespace]),
        );
    }
}

impl Drop for Release {
    fn drop(&mut self) {
        if self.installed {
            let _ = helm_on_cluster(&["uninstall", &self.name, "--namespace", &self.namespace]);
        }
    }
}

/// The documents `helm template` renders for release `pkg` in namespace `ops`.
fn render(values: &[&str]) -> Vec<Value> {
    let mut args = vec!["template", "pkg", CHART, "--namespace", "ops"];
    args.extend_from_slice(values);
    let yaml = ok("helm template", &helm(&args));
    serde_saphyr::from_multiple::<Value>(&yaml)
        .unwrap_or_else(|err| panic!("helm template output is not YAML: {err}\n{yaml}"))
        .into_iter()
        .filter(|doc| !doc.is_null())
        .collect()
}

fn id_of(object: &Value) -> ObjectId {
    let text = |value: &Value| value.as_str().unwrap_or_default().to_owned();
    (
        text(&object["kind"]),
        text(&object["metadata"]["namespace"]),
        text(&object["metadata"]["name"]),
    )
}

fn id(kind: &str, namespace: &str, name: &str) -> ObjectId {
    (kind.to_owned(), namespace.to_owned(), name.to_owned())
}

fn kinds(docs: &[Value]) -> Vec<String> {
    let mut kinds: Vec<String> = docs.iter().map(|doc| id_of(doc).0).collect();
    kinds.sort_unstable();
    kinds
}

fn the<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let mut found = docs.iter().filter(|doc| doc["kind"] == kind);
    let doc = found.next().unwrap_or_else(|| panic!("no {kind} rendered"));
    assert!(found.next().is_none(), "more than one {kind} rendered");
    doc
}

/// The one document of `kind` named `name`.
fn the_named<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    let mut found = docs
        .iter()
        .filter(|doc| doc["kind"] == kind && doc["metadata"]["name"] == name);
    let doc = found
        .next()
        .unwrap_or_else(|| panic!("no {kind} {name} rendered"));
    assert!(
        found.next().is_none(),
        "more than one {kind} {name} rendered"
    );
    doc
}

fn container_args(docs: &[Value]) -> Vec<String> {
    the(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|arg| arg.as_str().expect("string arg").to_owned())
        .collect()
}

/// The chart's values that turn on every optional feature.
const EVERY_FEATURE: &[&str] = &[
    "--set",
    "replicas=2",
    "--set",
    "watchNamespaces={team-a,team-b}",
    "--set",
    "metrics.serviceMonitor.enabled=true",
    "--set",
    "metrics.prometheusRule.enabled=true",
    "--set",
    "region=eu-west-1",
    "--set",
    "fsxEndpointUrl=https://fsx.eu-west-1.amazonaws.com",
    "--set-string",
    "serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn=arn:aws:iam::111111111111:role/fsx-backup-operator",
    "--set",
    "podAnnotations.team=storage",
    "--set",
    "nodeSelector.kubernetes\\.io/os=linux",
    "--set-json",
    r#"tolerations=[{"key":"dedicated","operator":"Exists","effect":"NoSchedule"}]"#,
    "--set-json",
    r#"extraEnv=[{"name":"AWS_STS_REGIONAL_ENDPOINTS","value":"regional"}]"#,
    "--set",
    "priorityClassName=operators",
    "--set",
    "logFormat=text",
    "--set",
    "clusterId=prod-eu-1",
    "--set",
    "strayScanInterval=5m",
];

/// The rules of the operator's `ClusterRole` or of each watched namespace's `Role`.
fn operator_rules() -> Value {
    json!([
        {"apiGroups": ["fsxbackup.io"], "resources": ["fsxbackupschedules", "fsxbackupcopies"], "verbs": ["get", "list", "watch", "patch", "update"]},
        {"apiGroups": ["fsxbackup.io"], "resources": ["fsxbackupschedules/status", "fsxbackupcopies/status"], "verbs": ["get", "patch", "update"]},
        {"apiGroups": ["fsxbackup.io"], "resources": ["fsxbackupschedules/finalizers", "fsxbackupcopies/finalizers"], "verbs": ["update"]},
        {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
    ])
}

#[test]
fn helm_lint_strict_passes_with_defaults_and_with_every_feature() {
    for values in [&[][..], EVERY_FEATURE] {
        let mut args = vec!["lint", "--strict", CHART];
        args.extend_from_slice(values);
        let out = ok("helm lint --strict", &helm(&args));
        assert!(out.contains("0 chart(s) failed"), "{out}");
    }
}

#[test]
fn default_values_render_a_hardened_cluster_wide_operator() {
    let docs = render(&[]);
    assert_eq!(
        kinds(&docs),
        [
            // The operator's, the one reading kube-system for the cluster
            // identity, and the one reading FsxBackupAccounts.
            "ClusterRole",
            "ClusterRole",
            "ClusterRole",
            "ClusterRoleBinding",
            "ClusterRoleBinding",
            "ClusterRoleBinding",
            "Deployment",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount"
        ]
    );
    let name = "pkg-fsx-backup-operator";
    let lease_role = format!("{name}-leader-election");
    let identity_role = format!("{name}-cluster-identity");
    let accounts_role = format!("{name}-accounts");
    for doc in &docs {
        let (kind, namespace, object) = id_of(doc);
        assert!(
            object == name
                || object == lease_role
                || object == identity_role
                || object == accounts_role,
            "{kind} is named {object}"
        );
        let cluster_scoped = kind.starts_with("Cluster");
        assert_eq!(namespace.is_empty(), cluster_scoped, "namespace of {kind}");
        assert_eq!(
            doc["metadata"]["labels"]["app.kubernetes.io/instance"],
            "pkg"
        );
    }
    assert_eq!(
        the_named(&docs, "ClusterRole", name)["rules"],
        operator_rules()
    );
    assert_eq!(
        the_named(&docs, "ClusterRole", &identity_role)["rules"],
        json!([{"apiGroups": [""], "resources": ["namespaces"], "resourceNames": ["kube-system"], "verbs": ["get"]}])
    );
    assert_eq!(
        the_named(&docs, "ClusterRole", &accounts_role)["rules"],
        json!([
            {"apiGroups": ["fsxbackup.io"], "resources": ["fsxbackupaccounts"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get"]}
        ])
    );
    for binding in [name, identity_role.as_str(), accounts_role.as_str()] {
        assert_eq!(
            the_named(&docs, "ClusterRoleBinding", binding)["subjects"],
            json!([{"kind": "ServiceAccount", "name": name, "namespace": "ops"}])
        );
    }
    assert_eq!(
        the(&docs, "Role")["rules"],
        json!([
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": [name], "verbs": ["get", "update"]},
        ])
    );

    let deployment = the(&docs, "Deployment");
    assert_eq!(deployment["spec"]["replicas"], 1);
    assert_eq!(deployment["spec"]["strategy"]["type"], "RollingUpdate");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], name);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["runAsUser"], 65_532);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let container = &pod["containers"][0];
    assert_eq!(container["image"], "fsx-backup-operator:0.1.0");
    let security = &container["securityContext"];
    assert_eq!(security["runAsNonRoot"], true);
    assert_eq!(security["runAsUser"], 65_532);
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(security["seccompProfile"]["type"], "RuntimeDefault");
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        assert_eq!(container[probe]["httpGet"]["path"], path);
        assert_eq!(container[probe]["httpGet"]["port"], "metrics");
    }
    assert_eq!(
        container["ports"],
        json!([{"name": "metrics", "containerPort": 8080, "protocol": "TCP"}])
    );
    for bound in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            assert!(
                container["resources"][bound][resource].is_string(),
                "resources.{bound}.{resource}"
            );
        }
    }
    assert_eq!(
        container["env"],
        json!([
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        ])
    );
    assert_eq!(
        container_args(&docs),
        [
            "run",
            "--log-format=json",
            "--metrics-address=0.0.0.0:8080",
            "--aws-requests-per-second=10",
            "--aws-burst=20",
            "--copy-slots-per-region=5",
            "--poll-interval=30s",
            "--retry-interval=30s",
            "--reconcile-timeout=10m",
            "--deletion-brake-max=10",
            "--deletion-brake-percent=50",
            "--stray-scan-interval=10m",
            "--kube-max-in-flight=128",
            "--leader-election=true",
            "--leader-election-namespace=ops",
            "--lease-name=pkg-fsx-backup-operator",
            "--lease-duration=15s",
        ]
    );
    let service = the(&docs, "Service");
    assert_eq!(
        service["spec"]["selector"],
        deployment["spec"]["selector"]["matchLabels"]
    );
}

#[test]
fn every_optional_feature_renders_namespaced_rbac_monitoring_and_a_disruption_budget() {
    let docs = render(EVERY_FEATURE);
    assert_eq!(
        kinds(&docs),
        [
            // FsxBackupAccounts are cluster-scoped: read cluster-wide.
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment",
            "PodDisruptionBudget",
            "PrometheusRule",
            "Role",
            "Role",
            "Role",
            "RoleBinding",
            "RoleBinding",
            "RoleBinding",
            "Service",
            "ServiceAccount",
            "ServiceMonitor"
        ]
    );
    let name = "pkg-fsx-backup-operator";
    let roles: BTreeSet<ObjectId> = docs
        .iter()
        .map(id_of)
        .filter(|(kind, _, _)| kind == "Role")
        .collect();
    let lease_role = format!("{name}-leader-election");
    assert_eq!(
        roles,
        BTreeSet::from([
            id("Role", "team-a", name),
            id("Role", "team-b", name),
            id("Role", "ops", &lease_role),
        ])
    );
    for doc in docs.iter().filter(|doc| doc["kind"] == "Role") {
        if doc["metadata"]["name"] == name {
            assert_eq!(doc["rules"], operator_rules());
        }
    }
    for doc in docs.iter().filter(|doc| doc["kind"] == "RoleBinding") {
        assert_eq!(
            doc["subjects"],
            json!([{"kind": "ServiceAccount", "name": name, "namespace": "ops"}])
        );
    }

    let args = container_args(&docs);
    for expected in [
        "--log-format=text",
        "--namespace=team-a,team-b",
        "--region=eu-west-1",
        "--fsx-endpoint-url=https://fsx.eu-west-1.amazonaws.com",
        "--leader-election=true",
        "--leader-election-namespace=ops",
    ] {
        assert!(
            args.iter().any(|arg| arg == expected),
            "{expected} in {args:?}"
        );
    }
    let deployment = the(&docs, "Deployment");
    assert_eq!(deployment["spec"]["replicas"], 2);
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["priorityClassName"], "operators");
    assert_eq!(pod["nodeSelector"]["kubernetes.io/os"], "linux");
    assert_eq!(pod["tolerations"][0]["key"], "dedicated");
    assert_eq!(
        deployment["spec"]["template"]["metadata"]["annotations"]["team"],
        "storage"
    );
    assert_eq!(
        pod["containers"][0]["env"][2]["name"],
        "AWS_STS_REGIONAL_ENDPOINTS"
    );
    assert_eq!(
        the(&docs, "ServiceAccount")["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
        "arn:aws:iam::111111111111:role/fsx-backup-operator"
    );
    assert_eq!(the(&docs, "PodDisruptionBudget")["spec"]["minAvailable"], 1);
    let monitor = the(&docs, "ServiceMonitor");
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "metrics");
    assert_eq!(monitor["spec"]["endpoints"][0]["honorLabels"], true);

    // Each alert is there and reads the metric it is about.
    let rule_list = the(&docs, "PrometheusRule")["spec"]["groups"][0]["rules"]
        .as_array()
        .expect("rules");
    let alerts: BTreeMap<&str, &str> = rule_list
        .iter()
        .map(|rule| {
            (
                rule["alert"].as_str().expect("alert"),
                rule["expr"].as_str().expect("expr"),
            )
        })
        .collect();
    let expected = [
        ("FsxBackupCopyFailing", "fsxbackup_copies_failed_total"),
        (
            "FsxBackupCopyQueuedTooLong",
            "fsxbackup_copies_queued_oldest_seconds",
        ),
        ("FsxBackupFailing", "fsxbackup_backups_failed_total"),
        (
            "FsxBackupMissing",
            "fsxbackup_last_successful_backup_timestamp_seconds",
        ),
        ("FsxBackupOperatorNoLeader", "fsxbackup_leader"),
        (
            "FsxBackupRPOBreached",
            "fsxbackup_rpo_breach_timestamp_seconds",
        ),
    ];
    assert_eq!(
        alerts.keys().copied().collect::<Vec<_>>(),
        expected.map(|(alert, _)| alert)
    );
    for (alert, metric) in expected {
        assert!(alerts[alert].contains(metric), "{alert}: {}", alerts[alert]);
    }
    assert!(
        alerts["FsxBackupMissing"]
            .contains("2 * max by (namespace, schedule) (fsxbackup_schedule_interval_seconds)"),
        "{}",
        alerts["FsxBackupMissing"]
    );
    // Every expression parses with Prometheus' own PromQL parser (what
    // `promtool check rules` runs), through the health peer.
    let groups = json!({"groups": the(&docs, "PrometheusRule")["spec"]["groups"]});
    let mut peer = Command::new(tool("health-peer"))
        .arg("promql")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("health-peer");
    {
        use std::io::Write as _;
        peer.stdin
            .take()
            .expect("stdin")
            .write_all(groups.to_string().as_bytes())
            .expect("write rules");
    }
    let checked = peer.wait_with_output().expect("health-peer promql");
    assert_eq!(
        ok("health-peer promql", &checked).trim(),
        format!("ok {}", expected.len())
    );
}

#[test]
fn switches_off_remove_what_they_guard() {
    let docs = render(&[
        "--set",
        "leaderElection.enabled=false",
        "--set",
        "serviceAccount.create=false",
        "--set",
        "serviceAccount.name=existing",
        "--set",
        "metrics.service.enabled=false",
    ]);
    assert_eq!(
        kinds(&docs),
        [
            "ClusterRole",
            "ClusterRole",
            "ClusterRole",
            "ClusterRoleBinding",
            "ClusterRoleBinding",
            "ClusterRoleBinding",
            "Deployment"
        ]
    );
    let deployment = the(&docs, "Deployment");
    // Without leader election two operators must never overlap in an upgrade.
    assert_eq!(deployment["spec"]["strategy"]["type"], "Recreate");
    assert_eq!(
        deployment["spec"]["template"]["spec"]["serviceAccountName"],
        "existing"
    );
    let args = container_args(&docs);
    assert!(
        args.iter().any(|arg| arg == "--leader-election=false"),
        "{args:?}"
    );
    assert!(
        !args.iter().any(|arg| arg.starts_with("--lease-name")),
        "{args:?}"
    );
}

/// The flags the chart passes are ones the operator binary accepts, with
/// values it parses (clap checks every flag before it acts on `--help`).
#[test]
fn the_binary_accepts_every_flag_the_chart_passes() {
    for values in [
        &[][..],
        EVERY_FEATURE,
        &["--set", "leaderElection.enabled=false"][..],
    ] {
        let args = container_args(&render(values));
        let output = Command::new(env!("CARGO_BIN_EXE_fsx-backup-operator"))
            .args(&args)
            .arg("--help")
            .stdin(Stdio::null())
            .output()
            .expect("run the operator binary");
        ok(&format!("fsx-backup-operator {}", args.join(" ")), &output);
    }
}

#[test]
fn the_values_schema_rejects_bad_values() {
    let bad: &[(&[&str], &str)] = &[
        (&["--set", "logFormat=xml"], "logFormat"),
        (&["--set", "replicas=0"], "replicas"),
        (&["--set", "notAValue=1"], "notAValue"),
        (
            &[
                "--set",
                "replicas=2",
                "--set",
                "leaderElection.enabled=false",
            ],
            "leaderElection",
        ),
        (&["--set", "pollInterval=soon"], "pollInterval"),
        (&["--set", "awsBurst=0"], "awsBurst"),
        (&["--set", "copySlotsPerRegion=101"], "copySlotsPerRegion"),
        (&["--set", "region=Mars"], "region"),
        (&["--set", "image.pullPolicy=Sometimes"], "pullPolicy"),
        (&["--set", "metrics.port=80"], "port"),
        (
            &["--set", "watchNamespaces={Not_A_Namespace}"],
            "watchNamespaces",
        ),
        (&["--set", "serviceAccount.create=maybe"], "create"),
        (&["--set", "metrics.serviceMonitor.color=blue"], "color"),
    ];
    for (values, key) in bad {
        let mut args = vec!["template", "pkg", CHART];
        args.extend_from_slice(values);
        let output = helm(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{values:?} was accepted");
        assert!(
            stderr.contains(*key),
            "{values:?}: the error names {key}: {stderr}"
        );
    }
    // Decimals given with --set arrive as strings and are accepted.
    let args = container_args(&render(&["--set", "awsRequestsPerSecond=2.5"]));
    assert!(
        args.iter()
            .any(|arg| arg == "--aws-requests-per-second=2.5"),
        "{args:?}"
    );
}

#[test]
fn the_charts_crds_are_the_generated_ones() {
    let top = files_under(&repo().join("crds"));
    let chart = files_under(&Path::new(CHART).join("crds"));
    assert!(!top.is_empty(), "crds/ is empty");
    assert!(
        top == chart,
        "charts/fsx-backup-operator/crds/ differs from crds/: run scripts/render-deploy.sh"
    );
}

/// Every file under `root`, by path relative to it.
fn files_under(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, files: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap_or_else(|err| panic!("{}: {err}", dir.display()))
        {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                walk(root, &path, files);
            } else {
                let relative = path.strip_prefix(root).expect("under root").to_path_buf();
                files.insert(relative, std::fs::read(&path).expect("read file"));
            }
        }
    }
    let mut files = BTreeMap::new();
    walk(root, root, &mut files);
    files
}

#[test]
fn deploy_is_the_rendered_chart_and_applies_with_kubectl() {
    // deploy/ is exactly what scripts/render-deploy.sh makes from the chart.
    let rendered = test_dir("render-deploy");
    let output = Command::new("bash")
        .arg(repo().join("scripts/render-deploy.sh"))
        .arg(&rendered)
        .env("HELM", tool("helm"))
        .stdin(Stdio::null())
        .output()
        .expect("run scripts/render-deploy.sh");
    ok("scripts/render-deploy.sh", &output);
    let mut committed = files_under(&repo().join("deploy"));
    for hand_written in [
        "iam-policy.json",
        "account-role-policy.json",
        "account-trust-policy.json",
    ] {
        assert!(
            committed.remove(Path::new(hand_written)).is_some(),
            "deploy/{hand_written} is missing"
        );
    }
    let generated = files_under(&rendered);
    let names = |files: &BTreeMap<PathBuf, Vec<u8>>| files.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&committed), names(&generated), "files in deploy/");
    for (path, bytes) in &generated {
        assert!(
            committed[path] == *bytes,
            "deploy/{} is stale: run scripts/render-deploy.sh and commit the result",
            path.display()
        );
    }

    // The kubectl install of the chart README, on the real apiserver, then no drift.
    install_crds();
    let crds_dir = repo().join("crds");
    let deploy_dir = repo().join("deploy");
    let crds = crds_dir.to_str().expect("UTF-8 path");
    let deploy = deploy_dir.to_str().expect("UTF-8 path");
    ok("kubectl apply -f crds/", &kubectl(&["apply", "-f", crds]));
    let applied = ok(
        "kubectl apply -k deploy/",
        &kubectl(&["apply", "-k", deploy]),
    );
    for object in [
        "namespace/fsx-backup-operator",
        "serviceaccount/fsx-backup-operator",
        "clusterrole.rbac.authorization.k8s.io/fsx-backup-operator",
        "clusterrolebinding.rbac.authorization.k8s.io/fsx-backup-operator",
        "role.rbac.authorization.k8s.io/fsx-backup-operator-leader-election",
        "rolebinding.rbac.authorization.k8s.io/fsx-backup-operator-leader-election",
        "service/fsx-backup-operator",
        "deployment.apps/fsx-backup-operator",
    ] {
        assert!(applied.contains(object), "{object} not applied:\n{applied}");
    }
    ok(
        "kubectl apply -k deploy/ --dry-run=server",
        &kubectl(&["apply", "-k", deploy, "--dry-run=server"]),
    );
    // GitOps tools compare the same way: what is applied stays equal to deploy/.
    ok("kubectl diff -k deploy/", &kubectl(&["diff", "-k", deploy]));
}

#[test]
fn every_example_is_accepted_by_the_apiserver_one_object_per_file() {
    install_crds();
    let namespace = TestNamespace::new("pkg-examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("examples"))
        .expect("examples/")
        .map(|entry| entry.expect("entry").path())
        .collect();
    files.sort_unstable();
    assert!(files.len() >= 10, "examples/ holds {} files", files.len());
    for file in &files {
        assert!(
            file.extension().is_some_and(|ext| ext == "yaml"),
            "{} is not YAML",
            file.display()
        );
        let path = file.to_str().expect("UTF-8 path");
        let out = ok(
            &format!("kubectl apply --dry-run=server -f {path}"),
            &kubectl(&[
                "apply",
                "--dry-run=server",
                "-n",
                namespace.name(),
                "-f",
                path,
            ]),
        );
        assert_eq!(out.lines().count(), 1, "one object in {path}: {out}");
        assert!(out.contains("created (server dry run)"), "{out}");
    }
}

/// `Action` or `Resource` of a statement, a string or a list of them.
fn strings(value: &Value) -> Vec<&str> {
    match value {
        Value::String(one) => vec![one.as_str()],
        Value::Array(many) => many.iter().map(|v| v.as_str().expect("string")).collect(),
        other => panic!("expected a string or a list, got {other}"),
    }
}

#[test]
fn the_iam_policy_is_least_privilege_with_the_ownership_conditions() {
    let text = std::fs::read_to_string(repo().join("deploy/iam-policy.json"))
        .expect("read deploy/iam-policy.json");
    let policy: Value = serde_json::from_str(&text).expect("deploy/iam-policy.json is JSON");
    assert_eq!(policy["Version"], "2012-10-17");
    let statements = policy["Statement"].as_array().expect("Statement list");
    let mut sids = BTreeSet::new();
    let mut actions = BTreeSet::new();
    for statement in statements {
        let sid = statement["Sid"]
            .as_str()
            .expect("every statement has a Sid");
        assert!(sids.insert(sid), "Sid {sid} twice");
        assert_eq!(statement["Effect"], "Allow", "{sid}");
        for action in strings(&statement["Action"]) {
            assert!(
                !action.ends_with(":*") && action != "*",
                "{sid}: wildcard action {action}"
            );
            actions.insert(action);
        }
    }
    assert_eq!(
        actions,
        BTreeSet::from([
            "fsx:CopyBackup",
            "fsx:CreateBackup",
            "fsx:DeleteBackup",
            "fsx:DescribeBackups",
            "fsx:DescribeFileSystems",
            "fsx:DescribeVolumes",
            "fsx:TagResource",
            "kms:CreateGrant",
            "kms:Decrypt",
            "kms:DescribeKey",
            "kms:GenerateDataKey*",
            "sns:Publish",
            "sts:AssumeRole",
        ])
    );

    let granting = |action: &str| {
        statements
            .iter()
            .filter(|s| strings(&s["Action"]).contains(&action))
            .collect::<Vec<_>>()
    };
    let owned = "fsx-backup-operator";
    for action in ["fsx:CreateBackup", "fsx:CopyBackup", "fsx:TagResource"] {
        for statement in granting(action) {
            assert_eq!(
                statement["Condition"]["StringEquals"]["aws:RequestTag/fsxbackup.io/managed-by"],
                owned,
                "{action} needs the ownership tag in the request"
            );
        }
    }
    for action in ["fsx:TagResource", "fsx:DeleteBackup", "fsx:CopyBackup"] {
        for statement in granting(action) {
            for resource in strings(&statement["Resource"]) {
                assert!(resource.contains(":backup/"), "{action} on {resource}");
            }
        }
    }
    for statement in granting("fsx:DeleteBackup") {
        assert_eq!(
            statement["Condition"]["StringEquals"]["aws:ResourceTag/fsxbackup.io/managed-by"],
            owned,
            "DeleteBackup only of backups the operator owns"
        );
    }
    for action in [
        "kms:CreateGrant",
        "kms:Decrypt",
        "kms:DescribeKey",
        "kms:GenerateDataKey*",
    ] {
        for statement in granting(action) {
            assert_eq!(
                statement["Condition"]["StringLike"]["kms:ViaService"], "fsx.*.amazonaws.com",
                "{action} only through FSx"
            );
        }
    }
    for statement in granting("kms:CreateGrant") {
        assert_eq!(
            statement["Condition"]["Bool"]["kms:GrantIsForAWSResource"],
            "true"
        );
    }
    for statement in granting("sts:AssumeRole") {
        for resource in strings(&statement["Resource"]) {
            assert!(
                resource.starts_with("arn:aws:iam::") && resource.contains(":role/"),
                "sts:AssumeRole on {resource}"
            );
        }
    }
    for statement in granting("sns:Publish") {
        for resource in strings(&statement["Resource"]) {
            assert!(
                resource.starts_with("arn:aws:sns:"),
                "sns:Publish on {resource}"
            );
        }
    }
    // Only reads go without a resource or condition limit.
    for statement in statements {
        if statement["Resource"] == "*" {
            for action in strings(&statement["Action"]) {
                assert!(
                    action.starts_with("fsx:Describe"),
                    "{action} on every resource"
                );
            }
        }
    }
}

#[test]
fn a_target_account_gets_the_same_fsx_permissions_and_trusts_only_the_operator() {
    let read = |name: &str| -> Value {
        let text = std::fs::read_to_string(repo().join("deploy").join(name))
            .unwrap_or_else(|err| panic!("read deploy/{name}: {err}"));
        serde_json::from_str(&text).unwrap_or_else(|err| panic!("deploy/{name} is JSON: {err}"))
    };
    let operator = read("iam-policy.json");
    let role = read("account-role-policy.json");
    // The role in a target account carries exactly the operator's FSx and KMS
    // statements, with their ownership conditions; SNS and STS stay with the operator.
    let fsx_and_kms: Vec<&Value> = operator["Statement"]
        .as_array()
        .expect("Statement list")
        .iter()
        .filter(|s| {
            strings(&s["Action"])
                .iter()
                .all(|a| a.starts_with("fsx:") || a.starts_with("kms:"))
        })
        .collect();
    let in_role: Vec<&Value> = role["Statement"]
        .as_array()
        .expect("Statement list")
        .iter()
        .collect();
    assert_eq!(in_role, fsx_and_kms, "deploy/account-role-policy.json");
    let trust = read("account-trust-policy.json");
    let statements = trust["Statement"].as_array().expect("Statement list");
    assert_eq!(statements.len(), 1);
    let only = &statements[0];
    assert_eq!(only["Action"], "sts:AssumeRole");
    assert!(
        only["Principal"]["AWS"].as_str().is_some_and(
            |p| p.starts_with("arn:aws:iam::") && p.ends_with(":role/fsx-backup-operator")
        ),
        "the trust names the operator's role: {only}"
    );
    assert!(
        only["Condition"]["StringEquals"]["sts:ExternalId"].is_string(),
        "the trust requires the FsxBackupAccount's external id: {only}"
    );
    // The operator may assume the role name the README tells target accounts to use.
    let assumable = operator["Statement"]
        .as_array()
        .expect("Statement list")
        .iter()
        .filter(|s| strings(&s["Action"]).contains(&"sts:AssumeRole"))
        .flat_map(|s| strings(&s["Resource"]))
        .collect::<Vec<_>>();
    assert_eq!(assumable, ["arn:aws:iam::*:role/fsx-backup-account"]);
}

/// A kubeconfig that authenticates as `service_account` in `namespace` with a
/// token from the `TokenRequest` API, for the admin kubeconfig's server and CA.
fn service_account_kubeconfig(namespace: &str, service_account: &str) -> PathBuf {
    let token = ok(
        "kubectl create token",
        &kubectl(&[
            "create",
            "token",
            service_account,
            "-n",
            namespace,
            "--duration=1h",
        ]),
    );
    let admin: Value = serde_json::from_str(&ok(
        "kubectl config view",
        &kubectl(&["config", "view", "--raw", "--minify", "-o", "json"]),
    ))
    .expect("kubeconfig as JSON");
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "control-plane", "cluster": admin["clusters"][0]["cluster"]}],
        "users": [{"name": service_account, "user": {"token": token.trim()}}],
        "contexts": [{"name": service_account, "context": {"cluster": "control-plane", "user": service_account, "namespace": namespace}}],
        "current-context": service_account,
    });
    let path = test_dir(&format!("sa-{namespace}")).join("kubeconfig");
    std::fs::write(&path, config.to_string()).expect("write the kubeconfig");
    let whoami = ok(
        "kubectl auth whoami",
        &kubectl_as(
            &path,
            &[
                "auth",
                "whoami",
                "-o",
                "jsonpath={.status.userInfo.username}",
            ],
            "",
        ),
    );
    assert_eq!(
        whoami.trim(),
        format!("system:serviceaccount:{namespace}:{service_account}")
    );
    path
}

/// A request: `verb` on `resource` (`plural[.group][/subresource]`, as kubectl
/// writes it) in `namespace` (empty: cluster-wide).
fn request(verb: &str, resource: &str, namespace: &str) -> Value {
    let (resource, subresource) = resource.split_once('/').unwrap_or((resource, ""));
    let (plural, group) = resource.split_once('.').unwrap_or((resource, ""));
    json!({"verb": verb, "group": group, "resource": plural, "subresource": subresource, "namespace": namespace})
}

fn named(mut request: Value, name: &str) -> Value {
    request["name"] = json!(name);
    request
}

/// Asks the apiserver with `SelfSubjectAccessReviews`, authenticated by
/// `kubeconfig`, and fails naming every request answered otherwise than expected.
fn assert_access(kubeconfig: &Path, expected: &[(Value, bool)]) {
    let input = expected
        .iter()
        .map(|(attributes, _)| {
            json!({
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SelfSubjectAccessReview",
                "spec": {"resourceAttributes": attributes},
            })
            .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n---\n");
    // --validate=false: schema validation would list CRDs, which this user may not.
    let out = ok(
        "kubectl create selfsubjectaccessreviews",
        &kubectl_as(
            kubeconfig,
            &["create", "--validate=false", "-o", "json", "-f", "-"],
            &input,
        ),
    );
    let mut answers = Vec::new();
    for value in serde_json::Deserializer::from_str(&out).into_iter::<Value>() {
        let value = value.expect("JSON from kubectl");
        let reviews = if value["kind"] == "List" {
            value["items"].as_array().cloned().unwrap_or_default()
        } else {
            vec![value]
        };
        for review in &reviews {
            answers.push(
                review["status"]["allowed"]
                    .as_bool()
                    .expect("status.allowed"),
            );
        }
    }
    assert_eq!(
        answers.len(),
        expected.len(),
        "one review per request:\n{out}"
    );
    let mut wrong = Vec::new();
    for ((attributes, want), got) in expected.iter().zip(answers) {
        if *want != got {
            let should = if *want { "allowed" } else { "forbidden" };
            wrong.push(format!("{attributes} should be {should}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "RBAC differs from the expected:\n{}",
        wrong.join("\n")
    );
}

const KINDS: [&str; 2] = [
    "fsxbackupschedules.fsxbackup.io",
    "fsxbackupcopies.fsxbackup.io",
];

/// What the operator needs on its own kinds in `namespace` ("" = every namespace).
fn operator_needs(namespace: &str) -> Vec<(Value, bool)> {
    let mut expected = Vec::new();
    for kind in KINDS {
        for verb in ["get", "list", "watch", "patch", "update"] {
            expected.push((request(verb, kind, namespace), true));
        }
        for verb in ["get", "patch", "update"] {
            expected.push((request(verb, &format!("{kind}/status"), namespace), true));
        }
        expected.push((
            request("update", &format!("{kind}/finalizers"), namespace),
            true,
        ));
        // Users create and delete them; the operator never does.
        for verb in ["create", "delete", "deletecollection"] {
            expected.push((request(verb, kind, namespace), false));
        }
    }
    for verb in ["create", "patch"] {
        expected.push((request(verb, "events.events.k8s.io", namespace), true));
    }
    expected
}

/// Requests outside the operator's rules, in `namespace`.
fn never_needed(namespace: &str) -> Vec<(Value, bool)> {
    [
        ("get", "secrets"),
        ("list", "secrets"),
        ("get", "configmaps"),
        ("create", "pods"),
        ("create", "events"),
        ("patch", "events"),
        ("create", "serviceaccounts/token"),
        ("delete", "events.events.k8s.io"),
        ("list", "leases.coordination.k8s.io"),
        ("create", "roles.rbac.authorization.k8s.io"),
        ("escalate", "roles.rbac.authorization.k8s.io"),
    ]
    .into_iter()
    .map(|(verb, resource)| (request(verb, resource, namespace), false))
    .collect()
}

/// Leader-election access in the release namespace: create and get/update of
/// the release's Lease only.
fn lease_access(release: &Release, allowed: bool) -> Vec<(Value, bool)> {
    let lease = release.fullname();
    let namespace = release.namespace.as_str();
    let leases = "leases.coordination.k8s.io";
    vec![
        (request("create", leases, namespace), allowed),
        (named(request("get", leases, namespace), &lease), allowed),
        (named(request("update", leases, namespace), &lease), allowed),
        (named(request("delete", leases, namespace), &lease), false),
        (
            named(request("get", leases, namespace), "someone-elses-lease"),
            false,
        ),
        (
            named(request("update", leases, namespace), "someone-elses-lease"),
            false,
        ),
        (request("create", leases, "kube-system"), false),
    ]
}

#[test]
fn cluster_wide_rbac_allows_exactly_what_the_operator_does() {
    let namespace = TestNamespace::new("pkg-rbac");
    let release = Release::install("rbac", namespace.name(), &[]);
    let name = release.fullname();
    let kubeconfig = service_account_kubeconfig(namespace.name(), &name);
    let mut expected = operator_needs("");
    expected.extend(operator_needs("some-team"));
    expected.extend(never_needed("some-team"));
    expected.extend(never_needed(namespace.name()));
    expected.extend(never_needed(""));
    expected.extend(lease_access(&release, true));
    expected.push((
        request("get", "customresourcedefinitions.apiextensions.k8s.io", ""),
        false,
    ));
    expected.extend(account_access());
    assert_access(&kubeconfig, &expected);
    release.uninstall();
    let left = kubectl(&["get", "clusterrole", &name]);
    assert!(
        !left.status.success(),
        "helm uninstall left the ClusterRole"
    );
}

#[test]
fn namespaced_rbac_reaches_only_the_watched_namespaces() {
    let namespace = TestNamespace::new("pkg-rbac-ns");
    let watched = TestNamespace::new("pkg-watched");
    let release = Release::install(
        "rbacns",
        namespace.name(),
        &[
            "--set",
            &format!("watchNamespaces={{{}}}", watched.name()),
            "--set",
            "leaderElection.enabled=false",
        ],
    );
    let kubeconfig = service_account_kubeconfig(namespace.name(), &release.fullname());
    let mut expected = operator_needs(watched.name());
    let elsewhere: Vec<(Value, bool)> = operator_needs("some-team")
        .into_iter()
        .chain(operator_needs(""))
        .map(|(attributes, _)| (attributes, false))
        .collect();
    expected.extend(elsewhere);
    expected.extend(never_needed(watched.name()));
    // Leader election is off: no Lease at all.
    expected.extend(lease_access(&release, false));
    // Accounts are cluster-scoped: read cluster-wide whatever is watched.
    expected.extend(account_access());
    assert_access(&kubeconfig, &expected);
}

/// `FsxBackupAccount`s (cluster-scoped, the platform team's): read only; and
/// namespaces read one by one (the cluster identity, label-selected allow-lists),
/// never listed.
fn account_access() -> Vec<(Value, bool)> {
    let accounts = "fsxbackupaccounts.fsxbackup.io";
    let mut expected: Vec<(Value, bool)> = ["get", "list", "watch"]
        .into_iter()
        .map(|verb| (request(verb, accounts, ""), true))
        .collect();
    for verb in ["create", "update", "patch", "delete"] {
        expected.push((request(verb, accounts, ""), false));
    }
    expected.push((request("list", "namespaces", ""), false));
    expected.push((request("watch", "namespaces", ""), false));
    expected.push((request("update", "namespaces", ""), false));
    expected.push((named(request("get", "namespaces", ""), "kube-system"), true));
    expected.push((named(request("get", "namespaces", ""), "team-a"), true));
    expected
}

/// Applies stand-ins for the Prometheus Operator's CRDs (any content accepted),
/// so that the chart's `ServiceMonitor` and `PrometheusRule` can be installed.
fn install_monitoring_crds() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let crd = |plural: &str, kind: &str| {
            json!({
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": {"name": format!("{plural}.monitoring.coreos.com")},
                "spec": {
                    "group": "monitoring.coreos.com",
                    "scope": "Namespaced",
                    "names": {"plural": plural, "singular": kind.to_lowercase(), "kind": kind, "listKind": format!("{kind}List")},
                    "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}],
                },
            })
            .to_string()
        };
        let input = format!(
            "{}\n---\n{}",
            crd("servicemonitors", "ServiceMonitor"),
            crd("prometheusrules", "PrometheusRule")
        );
        ok(
            "kubectl apply monitoring CRDs",
            &kubectl_with_input(&["apply", "--server-side", "-f", "-"], Some(input.as_str())),
        );
        ok(
            "monitoring CRDs established",
            &kubectl(&[
                "wait",
                "--for=condition=Established",
                "--timeout=60s",
                "crd/servicemonitors.monitoring.coreos.com",
                "crd/prometheusrules.monitoring.coreos.com",
            ]),
        );
    });
}

/// The objects of `release` the apiserver holds, of the given kinds.
fn objects_of(release: &Release, kinds: &str) -> BTreeSet<ObjectId> {
    let selector = format!("app.kubernetes.io/instance={}", release.name);
    let out = ok(
        "kubectl get",
        &kubectl(&[
            "get",
            kinds,
            "--all-namespaces",
            "-l",
            &selector,
            "-o",
            "json",
        ]),
    );
    let list: Value = serde_json::from_str(&out).expect("kubectl get -o json");
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(id_of)
        .collect()
}

/// The objects in `helm get manifest`: what Helm itself created.
fn manifest_of(release: &Release) -> BTreeSet<ObjectId> {
    let yaml = ok(
        "helm get manifest",
        &helm_on_cluster(&[
            "get",
            "manifest",
            &release.name,
            "--namespace",
            &release.namespace,
        ]),
    );
    serde_saphyr::from_multiple::<Value>(&yaml)
        .expect("manifest is YAML")
        .iter()
        .filter(|doc| !doc.is_null())
        .map(id_of)
        .collect()
}

const CORE_KINDS: &str = "serviceaccounts,services,deployments.apps,poddisruptionbudgets.policy,configmaps,\
    roles.rbac.authorization.k8s.io,rolebindings.rbac.authorization.k8s.io,\
    clusterroles.rbac.authorization.k8s.io,clusterrolebindings.rbac.authorization.k8s.io";

#[test]
fn helm_install_with_defaults_creates_exactly_the_expected_objects() {
    let namespace = TestNamespace::new("pkg-install");
    let ns = namespace.name();
    let release = Release::install("dflt", ns, &[]);
    let name = release.fullname();
    let lease_role = format!("{name}-leader-election");
    let identity_role = format!("{name}-cluster-identity");
    let accounts_role = format!("{name}-accounts");
    let expected = BTreeSet::from([
        id("ServiceAccount", ns, &name),
        id("Service", ns, &name),
        id("Deployment", ns, &name),
        id("ClusterRole", "", &name),
        id("ClusterRoleBinding", "", &name),
        id("ClusterRole", "", &identity_role),
        id("ClusterRoleBinding", "", &identity_role),
        id("ClusterRole", "", &accounts_role),
        id("ClusterRoleBinding", "", &accounts_role),
        id("Role", ns, &lease_role),
        id("RoleBinding", ns, &lease_role),
    ]);
    assert_eq!(manifest_of(&release), expected);
    assert_eq!(objects_of(&release, CORE_KINDS), expected);
    release.uninstall();
    for cluster_scoped in [&name, &accounts_role] {
        let left = kubectl(&["get", "clusterrole,clusterrolebinding", cluster_scoped]);
        assert!(
            !left.status.success(),
            "cluster-scoped objects left after uninstall"
        );
    }
}

#[test]
fn helm_install_with_every_feature_creates_exactly_the_expected_objects() {
    install_monitoring_crds();
    let namespace = TestNamespace::new("pkg-install-all");
    let alpha = TestNamespace::new("pkg-alpha");
    let beta = TestNamespace::new("pkg-beta");
    let ns = namespace.name();
    let watch = format!("watchNamespaces={{{},{}}}", alpha.name(), beta.name());
    let mut values: Vec<&str> = EVERY_FEATURE.to_vec();
    values.extend(["--set", watch.as_str()]);
    let release = Release::install("all", ns, &values);
    let name = release.fullname();
    let lease_role = format!("{name}-leader-election");
    let accounts_role = format!("{name}-accounts");
    let mut expected = BTreeSet::from([
        id("ServiceAccount", ns, &name),
        id("Service", ns, &name),
        id("Deployment", ns, &name),
        id("ClusterRole", "", &accounts_role),
        id("ClusterRoleBinding", "", &accounts_role),
        id("PodDisruptionBudget", ns, &name),
        id("ServiceMonitor", ns, &name),
        id("PrometheusRule", ns, &name),
        id("Role", ns, &lease_role),
        id("RoleBinding", ns, &lease_role),
    ]);
    for watched in [alpha.name(), beta.name()] {
        expected.insert(id("Role", watched, &name));
        expected.insert(id("RoleBinding", watched, &name));
    }
    assert_eq!(manifest_of(&release), expected);
    let kinds = format!(
        "{CORE_KINDS},servicemonitors.monitoring.coreos.com,prometheusrules.monitoring.coreos.com"
    );
    assert_eq!(objects_of(&release, &kinds), expected);
    release.uninstall();
}

/// The operator binary, authenticated only as the chart's `ServiceAccount`
/// (namespace mode, leader election on), makes, prunes and copies backups,
/// writes status, events, finalizers and its Lease, and is never forbidden.
#[tokio::test]
async fn the_operator_runs_a_backup_prune_copy_cycle_as_the_charts_service_account() {
    crate::support::with_namespace("pkg-sa-cycle", |client, namespace| async move {
        let ns = namespace.clone();
        let (release, kubeconfig) = tokio::task::spawn_blocking(move || {
            let watch = format!("watchNamespaces={{{ns}}}");
            let release = Release::install("cycle", &ns, &["--set", &watch]);
            let kubeconfig = service_account_kubeconfig(&ns, &release.fullname());
            (release, kubeconfig)
        })
        .await
        .expect("install the chart");
        let lease = release.fullname();

        let mut world = World::new(client.clone(), namespace.clone()).await;
        // World starts the operator as the admin; run it as the ServiceAccount instead.
        world.operator.kill();
        world.emulator.set_timing(Timing {
            create_duration: Duration::from_millis(300),
            copy_duration: Duration::from_millis(500),
        });
        let extra_args: Vec<String> = [
            "--leader-election",
            "true",
            "--leader-election-namespace",
            namespace.as_str(),
            "--lease-name",
            lease.as_str(),
        ]
        .into_iter()
        .map(String::from)
        .collect();
        world.operator = OperatorConfig {
            namespace: &namespace,
            fsx_endpoint: &world.running.endpoint,
            clock: &world.clock,
            extra_args: &extra_args,
        }
        .start_with_env(&[
            ("KUBECONFIG", kubeconfig.to_str().expect("UTF-8 path")),
            ("POD_NAME", "operator-0"),
            ("POD_NAMESPACE", namespace.as_str()),
        ]);

        let fs = world.file_system(FileSystemType::Windows);
        let schedule = world
            .create(
                "cycle",
                json!({"target": {"fileSystemIds": [fs]}, "schedule": "@yearly", "retention": {"maxCount": 2, "minAvailable": 1}, "deletionPolicy": "Delete"}),
            )
            .await;
        let uid = schedule.uid().expect("uid");
        world
            .until("cycle", "scheduled, with the finalizer (deletionPolicy Delete)", |o| {
                o.status.as_ref().is_some_and(|s| s.next_schedule_time.is_some())
                    && o.finalizers().iter().any(|f| f == "fsxbackup.io/cleanup")
            })
            .await;
        for nonce in ["one", "two", "three"] {
            let patch = json!({"metadata": {"annotations": {"fsxbackup.io/run-now": nonce}}});
            world
                .api()
                .patch("cycle", &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .expect("annotate");
            world
                .until("cycle", &format!("run-now {nonce} AVAILABLE"), |o| {
                    o.status
                        .as_ref()
                        .and_then(|s| s.targets.first())
                        .and_then(|t| t.last_backup.as_ref())
                        .is_some_and(|b| b.run_now.as_deref() == Some(nonce) && b.lifecycle == "AVAILABLE")
                })
                .await;
        }
        let w = &world;
        let uid = uid.as_str();
        eventually("maxCount 2 pruned the oldest backup", WAIT, || async move {
            (w.owned_backups(uid).len() == 2).then_some(())
        })
        .await;

        let copy = world
            .create_copy(
                "cycle-dr",
                json!({"source": {"scheduleRef": {"name": "cycle"}}, "destinationRegion": "us-west-2", "retention": {"maxCount": 1, "minAvailable": 1}}),
            )
            .await;
        let copy_uid = copy.uid().expect("uid");
        let copy_uid = copy_uid.as_str();
        eventually("the kept backups copied, the older copy pruned", WAIT, || async move {
            let made = w.owned_backups_in("us-west-2", copy_uid);
            (w.calls("CopyBackup") >= 1
                && made.len() == 1
                && made.iter().all(|c| c.lifecycle == BackupLifecycle::Available))
            .then_some(())
        })
        .await;
        world
            .until_copy("cycle-dr", "a copy AVAILABLE in status", |o| {
                o.status
                    .as_ref()
                    .is_some_and(|s| s.copies.iter().any(|c| c.lifecycle == "AVAILABLE"))
            })
            .await;

        // events.k8s.io Events were published as the ServiceAccount.
        let reasons = events_with(&client, &namespace, "cycle", &[("BackupAvailable", 1)]).await;
        assert!(reasons.iter().any(|r| r == "BackupAvailable"), "{reasons:?}");
        let reasons = events_with(&client, &namespace, "cycle-dr", &[("CopyCompleted", 1)]).await;
        assert!(reasons.iter().any(|r| r == "CopyCompleted"), "{reasons:?}");

        // The Lease is held by this replica.
        let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
            Api::namespaced(client.clone(), &namespace);
        let held = leases.get(&lease).await.expect("the leader Lease exists");
        assert_eq!(
            held.spec.and_then(|s| s.holder_identity).as_deref(),
            Some("operator-0")
        );

        // Deleting both: the schedule's backups are deleted and its finalizer removed
        // (an update the operator makes); the copy (Retain) goes at once.
        world
            .copies()
            .delete("cycle-dr", &DeleteParams::default())
            .await
            .expect("delete the copy object");
        world
            .api()
            .delete("cycle", &DeleteParams::default())
            .await
            .expect("delete the schedule");
        let (schedule_api, copy_api): (Api<FsxBackupSchedule>, Api<FsxBackupCopy>) =
            (world.api(), world.copies());
        eventually("both objects gone", WAIT, || {
            let (schedule_api, copy_api) = (schedule_api.clone(), copy_api.clone());
            async move {
                let left_schedule = schedule_api.get_opt("cycle").await.ok()?;
                let left_copy = copy_api.get_opt("cycle-dr").await.ok()?;
                (left_schedule.is_none() && left_copy.is_none()).then_some(())
            }
        })
        .await;

        let logs = world.operator.logs();
        assert!(
            !logs.to_lowercase().contains("forbidden"),
            "the operator was refused something:\n{logs}"
        );
        tokio::task::spawn_blocking(move || release.uninstall())
            .await
            .expect("uninstall the chart");
    })
    .await;
}

/// The operator binary allocates with jemalloc, configured as measured
/// (`.cargo/config.toml`, `bench/results-jemalloc-tuned-musl.md`): one arena
/// and a background thread that returns freed pages after a second. Its
/// defaults kept 35 MiB more at 10,000 objects. Read back from jemalloc's own
/// statistics, which it prints at exit when asked.
#[test]
fn the_operator_allocates_with_jemalloc_as_measured() {
    let out = std::env::temp_dir().join(format!("fsxbo-allocator-{}", std::process::id()));
    let output = Command::new(operator_binary())
        .args(["crd", "--out"])
        .arg(&out)
        .env("_RJEM_MALLOC_CONF", "stats_print:true")
        .output()
        .expect("operator binary");
    let _ = std::fs::remove_dir_all(&out);
    assert!(output.status.success(), "{output:?}");
    let stats = String::from_utf8_lossy(&output.stderr);
    for option in [
        "opt.narenas: 1\n",
        "opt.background_thread: true ",
        "opt.dirty_decay_ms: 1000 ",
        "opt.muzzy_decay_ms: 0 ",
    ] {
        assert!(
            stats.contains(option),
            "jemalloc's statistics lack {option:?}:\n{stats}"
        );
    }
}
