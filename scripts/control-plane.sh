#!/usr/bin/env bash
# A real, local Kubernetes control plane: etcd + kube-apiserver on 127.0.0.1,
# free ports, generated certificates, an admin kubeconfig. No Docker.
#
#   control-plane.sh start DIR   start in the background; prints the kubeconfig path
#   control-plane.sh stop DIR    stop what `start` started and remove DIR
#   control-plane.sh run DIR     run in the foreground until stdin closes or a
#                                signal arrives, then stop and remove DIR
#                                (what the Rust test support uses, so a test
#                                binary that dies cannot leave servers behind)
#
# DIR holds certs, etcd data, logs, pid files and DIR/kubeconfig.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
log() { echo "control-plane: $*" >&2; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

gen_certs() {
  local d="$1/pki"
  mkdir -p "$d"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=fsxbo-local-ca" \
    -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
  # Serving certificate for 127.0.0.1 / localhost.
  openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" \
    -keyout "$d/apiserver.key" -out "$d/apiserver.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n' > "$d/apiserver.ext"
  openssl x509 -req -in "$d/apiserver.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
    -days 3650 -extfile "$d/apiserver.ext" -out "$d/apiserver.crt" 2>/dev/null
  # Admin client certificate: system:masters bypasses RBAC, as envtest's admin user does.
  openssl req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=fsxbo-admin" \
    -keyout "$d/admin.key" -out "$d/admin.csr" 2>/dev/null
  printf 'extendedKeyUsage=clientAuth\n' > "$d/admin.ext"
  openssl x509 -req -in "$d/admin.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
    -days 3650 -extfile "$d/admin.ext" -out "$d/admin.crt" 2>/dev/null
  # Service-account token signing key pair (TokenRequest works without a controller-manager).
  openssl genrsa -out "$d/sa.key" 2048 2>/dev/null
  openssl rsa -in "$d/sa.key" -pubout -out "$d/sa.pub" 2>/dev/null
}

write_kubeconfig() {
  local dir="$1" port="$2" d="$1/pki"
  b64() { base64 -w0 < "$1"; }
  cat > "$dir/kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: https://127.0.0.1:$port
    certificate-authority-data: $(b64 "$d/ca.crt")
users:
- name: admin
  user:
    client-certificate-data: $(b64 "$d/admin.crt")
    client-key-data: $(b64 "$d/admin.key")
contexts:
- name: local
  context: {cluster: local, user: admin}
current-context: local
KC
}

wait_ready() {
  local dir="$1" port="$2" pid="$3"
  for _ in $(seq 1 600); do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "kube-apiserver exited during start-up; last log lines:"; tail -20 "$dir/kube-apiserver.log" >&2; return 1
    fi
    if curl -fsS --cacert "$dir/pki/ca.crt" --cert "$dir/pki/admin.crt" --key "$dir/pki/admin.key" \
        "https://127.0.0.1:$port/readyz" >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.1
  done
  log "kube-apiserver not ready after 60s"; return 1
}

launch() {
  local dir="$1"
  local bin; bin="$("$HERE/install-tools.sh" | tail -1)"
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  gen_certs "$dir"
  local etcd_client etcd_peer api
  etcd_client="$(free_port)"; etcd_peer="$(free_port)"; api="$(free_port)"
  "$bin/etcd" --name local --data-dir "$dir/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_client" --advertise-client-urls "http://127.0.0.1:$etcd_client" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
    --initial-cluster "local=http://127.0.0.1:$etcd_peer" --unsafe-no-fsync \
    --quota-backend-bytes=8589934592 --log-level=warn > "$dir/etcd.log" 2>&1 &
  echo $! > "$dir/etcd.pid"
  "$bin/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$etcd_client" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$api" \
    --tls-cert-file "$dir/pki/apiserver.crt" --tls-private-key-file "$dir/pki/apiserver.key" \
    --client-ca-file "$dir/pki/ca.crt" \
    --service-account-issuer "https://127.0.0.1:$api" \
    --service-account-key-file "$dir/pki/sa.pub" --service-account-signing-key-file "$dir/pki/sa.key" \
    --service-cluster-ip-range 10.0.0.0/24 --allow-privileged=true \
    --authorization-mode RBAC --disable-admission-plugins ServiceAccount \
    --audit-log-path "$dir/audit.log" --audit-policy-file "$HERE/audit-policy.yaml" --audit-log-maxsize 200 \
    > "$dir/kube-apiserver.log" 2>&1 &
  echo $! > "$dir/kube-apiserver.pid"
  echo "$api" > "$dir/port"
  wait_ready "$dir" "$api" "$(cat "$dir/kube-apiserver.pid")" || { teardown "$dir"; exit 1; }
  write_kubeconfig "$dir" "$api"
  log "ready: https://127.0.0.1:$api (kubeconfig $dir/kubeconfig)"
}

teardown() {
  local dir="$1"
  for p in kube-apiserver etcd; do
    if [[ -f "$dir/$p.pid" ]]; then
      local pid; pid="$(cat "$dir/$p.pid")"
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
  done
  rm -rf "$dir"
}

cmd="${1:-}"; dir="${2:-}"
[[ -n "$cmd" && -n "$dir" ]] || { echo "usage: $0 start|stop|run DIR" >&2; exit 2; }
case "$cmd" in
  start) launch "$dir"; echo "$(cd "$dir" && pwd)/kubeconfig" ;;
  stop)  teardown "$dir" ;;
  run)
    # Whatever ends this script (stdin closed, a signal, a failed start-up,
    # a reader that went away) tears the control plane down.
    watcher=""
    trap 'if [[ -n "$watcher" ]]; then kill "$watcher" 2>/dev/null || true; fi; teardown "$dir"' EXIT
    trap 'exit 0' TERM INT HUP
    trap '' PIPE
    launch "$dir"
    echo "$(cd "$dir" && pwd)/kubeconfig" || true
    # Block until whoever started us closes our stdin (or dies). `wait`, unlike
    # a foreground command, lets a signal trap run at once.
    exec 3<&0
    cat <&3 > /dev/null &
    watcher=$!
    wait "$watcher" || true
    ;;
  *) echo "usage: $0 start|stop|run DIR" >&2; exit 2 ;;
esac
