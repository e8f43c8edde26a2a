#!/usr/bin/env bash
# The demo: a local control plane (real etcd + kube-apiserver), the FSx
# emulator, the operator against both, and a sample FsxBackupSchedule. The
# operator's clock is fast-forwarded hour by hour (the test-only
# --test-clock-offset-file flag), so about a minute shows an hourly schedule
# making backups, a copy object copying them to another Region, and retention
# pruning both. Stops everything it started on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="$(scripts/install-tools.sh | tail -1)"
export PATH="$BIN:$PATH"
echo "== building the operator and the FSx emulator"
cargo build --quiet --locked --bin fsx-backup-operator -p fsx-backup-operator -p fsx-emulator
TARGET="${CARGO_TARGET_DIR:-target}"
RUNS="${DEMO_RUNS:-5}"

STATE="$(mktemp -d /tmp/fsxbo-demo.XXXXXX)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  scripts/control-plane.sh stop "$STATE/cp" >/dev/null 2>&1 || true
  rm -rf "$STATE"
}
trap cleanup EXIT
export KUBECONFIG
KUBECONFIG="$(scripts/control-plane.sh start "$STATE/cp")"

echo "== control plane up; installing the CRDs with kubectl"
kubectl apply --server-side -f crds/
kubectl wait --for=condition=Established --timeout=60s crd --all >/dev/null
kubectl create namespace storage >/dev/null

echo "== FSx emulator (backups take 2 s to become AVAILABLE, copies 2 s)"
"$TARGET/debug/fsx-emulator" --listen 127.0.0.1:0 --create-seconds 2 --copy-seconds 2 >"$STATE/emulator.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do grep -q '^listening on' "$STATE/emulator.log" && break; sleep 0.1; done
FSX="$(sed -n 's/^listening on //p' "$STATE/emulator.log")"
FS_ID="$(curl -sf -X POST "$FSX/_emulator/file-systems" \
  -d '{"region":"us-east-1","seed":{"file_system_type":"WINDOWS","tags":[{"Key":"env","Value":"prod"}]}}' |
  sed 's/.*"id":"\([^"]*\)".*/\1/')"
# Someone's manual backup of the same file system: retention must never touch it.
curl -sf -X POST "$FSX/_emulator/backups" \
  -d "{\"region\":\"us-east-1\",\"seed\":{\"file_system_id\":\"$FS_ID\",\"backup_type\":\"USER_INITIATED\",\"lifecycle\":\"AVAILABLE\",\"creation_time\":1700000000}}" >/dev/null
echo "   $FSX serves file system $FS_ID (env=prod) and one manual backup"

echo "== operator"
echo 0 >"$STATE/clock-offset"
AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true \
  "$TARGET/debug/fsx-backup-operator" run --region us-east-1 --fsx-endpoint-url "$FSX" \
  --poll-interval 1s --metrics-address 127.0.0.1:0 --test-clock-offset-file "$STATE/clock-offset" >"$STATE/operator.log" 2>&1 &
PIDS+=($!)

echo "== an hourly schedule of every env=prod file system, keeping the newest 3"
kubectl apply -n storage -f - <<'EOF'
apiVersion: fsxbackup.io/v1alpha1
kind: FsxBackupSchedule
metadata:
  name: hourly
spec:
  target:
    fileSystemSelector:
      tags: {env: prod}
  schedule: "0 * * * *"
  timeZone: Europe/Berlin
  startingDeadlineSeconds: 600
  retention:
    maxCount: 3
    minAvailable: 1
  tags: {team: storage}
EOF
kubectl wait -n storage --for=condition=Ready --timeout=60s fsxbackupschedule/hourly
kubectl get -n storage fsxbackupschedules

echo "== and a copy of every backup it makes to us-west-2, keeping the newest 2 copies there"
kubectl apply -n storage -f - <<'EOF'
apiVersion: fsxbackup.io/v1alpha1
kind: FsxBackupCopy
metadata:
  name: dr
spec:
  source:
    scheduleRef: {name: hourly}
  destinationRegion: us-west-2
  copyTags: true
  tags: {purpose: dr}
  retention:
    maxCount: 2
    minAvailable: 1
EOF

status() { kubectl get -n storage fsxbackupschedule/hourly -o jsonpath="$1"; }
real_now() { date +%s; }
start=$(real_now)
first_slot=$(( (start / 3600 + 1) * 3600 ))
for run in $(seq 0 $((RUNS - 1))); do
  slot=$(( first_slot + run * 3600 ))
  # The operator's clock jumps to 2 s before the run.
  echo $(( slot - 2 - $(real_now) )) >"$STATE/clock-offset"
  want="$(date -u -d "@$slot" +%Y-%m-%dT%H:%M:%SZ)"
  echo
  echo "== run $((run + 1)) of $RUNS, scheduled for $want (operator clock fast-forwarded)"
  for _ in $(seq 300); do
    [[ "$(status '{.status.targets[0].lastBackup.scheduledTime} {.status.targets[0].lastBackup.lifecycle}')" == "$want AVAILABLE" ]] && break
    sleep 0.2
  done
  last="$(status '{.status.targets[0].lastBackup.id}')"
  for _ in $(seq 300); do
    copied="$(kubectl get -n storage fsxbackupcopy/dr -o jsonpath="{.status.copies[?(@.sourceBackupId==\"$last\")].lifecycle}")"
    [[ "$copied" == AVAILABLE ]] && break
    sleep 0.2
  done
  sleep 1.5 # let retention act on the new backup and copy
  echo "   last backup: $last AVAILABLE"
  echo "   kept by the schedule (id expiresAt keptBy):"
  status '{range .status.targets[0].managedBackups[*]}{"     "}{.id}{"  "}{.expiresAt}{"  "}{.keptBy}{"\n"}{end}'
  echo "   schedule conditions: $(status '{range .status.conditions[*]}{.type}={.status}({.reason}) {end}')"
  echo "   copies to us-west-2 (source -> copy, lifecycle):"
  kubectl get -n storage fsxbackupcopy/dr -o jsonpath='{range .status.copies[*]}{"     "}{.sourceBackupId}{" -> "}{.destinationBackupId}{"  "}{.lifecycle}{"\n"}{end}'
done
echo
kubectl get -n storage fsxbackupschedules,fsxbackupcopies

echo
echo "== events"
kubectl get events -n storage --sort-by=.eventTime -o custom-columns=REASON:.reason,MESSAGE:.message --no-headers |
  grep -E 'Backup(Created|Available|Pruned)|Copy(Started|Completed|Pruned)' | tail -n 16
echo
echo "== what FSx holds (from the emulator)"
fsx_state="$(curl -sf "$FSX/_emulator/state")"
for region in us-east-1 us-west-2; do
  region_state="$(sed "s/.*\"$region\":{\"backups\"/{\"backups\"/" <<<"$fsx_state" | sed 's/"max_copies_in_progress".*//')"
  echo "   $region:"
  sed 's/{"backup_type"/\n{"backup_type"/g' <<<"$region_state" | grep '^{"backup_type"' |
    sed 's/^{"backup_type":"\([^"]*\)".*"id":"\(backup-[^"]*\)".*"lifecycle":"\([^"]*\)".*/     \2  \1  \3/' | sed 's/"owner_id.*//'
  echo "     deleted by retention: $(grep -o '"deleted_backup_ids":\[[^]]*\]' <<<"$region_state" | head -1 | sed 's/.*\[//; s/\]//; s/"//g')"
done
if grep -q '"creation_time":1700000000' <<<"$fsx_state"; then
  echo "   the manual backup (USER_INITIATED, no ownership tags) is still there"
else
  echo "   ERROR: the manual backup is gone" >&2
  exit 1
fi
echo
echo "== a few of the operator's metrics"
metrics_port="$(sed 's/\x1b\[[0-9;]*m//g' "$STATE/operator.log" | sed -n 's/.*serving \/metrics.*address=[0-9.]*:\([0-9]*\).*/\1/p' | head -1)"
curl -sf "127.0.0.1:$metrics_port/metrics" |
  grep -E '^fsxbackup_(backups_(created|deleted)|copies_(started|completed|deleted)|aws_requests)_total' | sed 's/^/   /' || true
echo
echo "demo done: $RUNS hourly runs made $RUNS backups and copied each to us-west-2; retention keeps"
echo "the newest 3 backups and the newest 2 copies, prunes the rest, and never touches the manual backup."
