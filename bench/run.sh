#!/usr/bin/env bash
# The benchmark: the release operator against the real kube-apiserver and the
# FSx emulator, for N FsxBackupSchedule objects (default 100, 1000 and 10000).
#   bench/run.sh                      # all sizes, results in bench/results.json and .md
#   BENCH_SIZES=100 bench/run.sh      # one size
#   BENCH_PROFILE=dev bench/run.sh    # debug build (CI smoke check)
#   BENCH_TARGET=x86_64-unknown-linux-musl bench/run.sh
#                                     # the operator as the image ships it: static, musl
#   BENCH_FEATURES=... bench/run.sh   # the operator built with these cargo features
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$(scripts/install-tools.sh | tail -1):$PATH"
export BENCH_OUT="${BENCH_OUT:-$PWD/bench/results.json}"
profile=()
[[ -n "${BENCH_PROFILE:-}" ]] && profile=(--profile "$BENCH_PROFILE")
if [[ -n "${BENCH_TARGET:-}${BENCH_FEATURES:-}" ]]; then
  # The operator built apart from the benchmark, which runs that binary.
  target=${BENCH_TARGET:-$(rustc -vV | sed -n 's/^host: //p')}
  rustup target add "$target" >/dev/null
  # musl-gcc compiles the C parts (aws-lc) for a musl target, as in the Dockerfile.
  if [[ "$target" == *-musl ]] && ! command -v "${target%%-*}-linux-musl-gcc" >/dev/null; then
    echo "bench: installing musl-tools (musl-gcc) for $target" >&2
    sudo=(); [[ $(id -u) -ne 0 ]] && sudo=(sudo)
    "${sudo[@]}" apt-get install -y --no-install-recommends musl-tools >&2 \
      || { "${sudo[@]}" apt-get update >&2 && "${sudo[@]}" apt-get install -y --no-install-recommends musl-tools >&2; }
  fi
  cargo build --locked --release --bin fsx-backup-operator --target "$target" \
    ${BENCH_FEATURES:+--features "$BENCH_FEATURES"}
  export FSXBO_OPERATOR_BIN="${CARGO_TARGET_DIR:-$PWD/target}/$target/release/fsx-backup-operator"
  export BENCH_BUILD="$target${BENCH_FEATURES:+, features: $BENCH_FEATURES}"
fi
exec cargo bench --locked "${profile[@]}" --bench scale
