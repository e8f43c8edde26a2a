#!/usr/bin/env bash
# Packages the kubectl plugin for Krew: an archive holding `kubectl-fsxbackup`
# and the Krew plugin manifest that installs it (`kubectl krew install
# --manifest=OUT/fsxbackup.yaml --archive=OUT/kubectl-fsxbackup_linux_amd64.tar.gz`,
# or publish the archive at URL_BASE and submit the manifest to a Krew index).
#
#   scripts/krew-package.sh [BINARY] [OUT] [URL_BASE]
#
# BINARY: the plugin to package (default: the static release build,
#   target/x86_64-unknown-linux-musl/release/kubectl-fsxbackup).
# OUT: where the archive and manifest go (default: target/krew).
# URL_BASE: where the archive will be downloaded from (default: the project's releases).
set -euo pipefail
cd "$(dirname "$0")/.."

target_dir="${CARGO_TARGET_DIR:-target}"
binary="${1:-$target_dir/x86_64-unknown-linux-musl/release/kubectl-fsxbackup}"
out="${2:-$target_dir/krew}"
version="v$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)"
url_base="${3:-https://github.com/fsx-backup-operator/fsx-backup-operator/releases/download/$version}"
archive="kubectl-fsxbackup_linux_amd64.tar.gz"

[[ -x "$binary" ]] || { echo "no plugin binary at $binary (cargo build --release --target x86_64-unknown-linux-musl --bin kubectl-fsxbackup)" >&2; exit 1; }
mkdir -p "$out"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
cp "$binary" "$stage/kubectl-fsxbackup"
cp krew/LICENSE-NOTICE "$stage/LICENSE"
# Reproducible: fixed owner, order and times.
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 \
  -C "$stage" -czf "$out/$archive" kubectl-fsxbackup LICENSE
sha="$(sha256sum "$out/$archive" | cut -d' ' -f1)"

sed -e "s|@VERSION@|$version|g" -e "s|@URI@|$url_base/$archive|g" -e "s|@SHA256@|$sha|g" \
  krew/fsxbackup.yaml.in > "$out/fsxbackup.yaml"
echo "$out/fsxbackup.yaml"
