#!/usr/bin/env bash
# The benchmark: the release operator against the real kube-apiserver and the
# FSx emulator, for N FsxBackupSchedule objects (default 100, 1000 and 10000).
#   bench/run.sh                      # all sizes, results in bench/results.json and .md
#   BENCH_SIZES=100 bench/run.sh      # one size
#   BENCH_PROFILE=dev bench/run.sh    # debug build (CI smoke check)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$(scripts/install-tools.sh | tail -1):$PATH"
export BENCH_OUT="${BENCH_OUT:-$PWD/bench/results.json}"
profile=()
[[ -n "${BENCH_PROFILE:-}" ]] && profile=(--profile "$BENCH_PROFILE")
exec cargo bench --locked "${profile[@]}" --bench scale
