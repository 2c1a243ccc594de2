#!/usr/bin/env bash
# The integration suite: start the isolated containerd, run the robust-integration crate
# against it, stop containerd whatever happens, exit with the suite's status.
# Extra arguments go to the test binary (a filter, --nocapture, ...).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

CS=integration/containerd.sh
THREADS="${IT_THREADS:-4}"
# its own instance, bridge and subnet: a containerd started by hand (default
# /run/robust-it) is left alone
export ROBUST_IT_RUN_DIR="${ROBUST_IT_RUN_DIR:-/run/robust-suite}"
export ROBUST_IT_BRIDGE="${ROBUST_IT_BRIDGE:-robust1}"
export ROBUST_IT_SUBNET="${ROBUST_IT_SUBNET:-10.244.76.0/24}"

# compile first: a build error needs no containerd
cargo test -p robust-integration --release --locked --no-run

# an instance left by an interrupted run: stop it (and what runs in it) first
bash "$CS" stop >/dev/null 2>&1 || true
trap 'bash "$CS" stop || true' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

bash "$CS" start
eval "$(bash "$CS" env)"

start=$SECONDS
set +e
cargo test -p robust-integration --release --locked -- --test-threads="$THREADS" "$@"
status=$?
set -e
echo "integration suite: exit $status after $((SECONDS - start))s (containerd log: $ROBUST_IT_LOG)"
if ((status != 0)); then
    echo "---- last errors in the containerd log:"
    grep -E 'level=(error|fatal)' "$ROBUST_IT_LOG" | tail -n 25 || true
fi
exit "$status"
