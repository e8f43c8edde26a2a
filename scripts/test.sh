#!/usr/bin/env bash
# The test command: installs the control-plane peers if missing, then runs
# every test (unit, property and integration against a real kube-apiserver).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-tools.sh >/dev/null
exec cargo test --locked --workspace "$@"
