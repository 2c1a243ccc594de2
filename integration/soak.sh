#!/usr/bin/env bash
# make soak / make soak-reference: the seeded, fault-mixing soak (tests/src/bin/soak.rs,
# docs/soak.md) against an isolated containerd of its own (run dir /run/robust-soak,
# bridge robust5, 10.244.75.0/24), on runc and then on runsc (where runsc runs here).
# Everything it starts is removed on exit, whatever happens (trap): the soak's containers,
# containerd, the run dir, the bridge, leftover runtime state of its namespace.
#
# Knobs (environment):
#   SOAK_SHIM=robust        robust (containerd-shim-robust-v2) or reference (containerd-shim-runc-v2)
#   SOAK_RUNTIMES="runc runsc"  runtimes to soak, in order (the reference: runc only)
#   SOAK_MINUTES=2          minutes per runtime (stop starting cycles after that)
#   SOAK_CYCLES             cycles per runtime; alone, no time bound (SOAK_CYCLES=1000)
#   SOAK_SEED               the seed (default: drawn once, the same for every runtime)
#   SOAK_FAULTS=default     fault kinds (robust-soak --faults)
#   SOAK_ARGS               extra arguments for robust-soak (--verbose, --start-cycle N, ...)
#   ROBUST_IT_RUN_DIR, ROBUST_IT_BRIDGE, ROBUST_IT_SUBNET: the isolated containerd
# The summaries go to results/soak-<shim>-<runtime>-<time>.md. Exit status: 0 when every
# run had zero violations, 1 otherwise, 2 on a setup error.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO_DIR="$PWD"

export ROBUST_IT_RUN_DIR="${ROBUST_IT_RUN_DIR:-/run/robust-soak}"
export ROBUST_IT_BRIDGE="${ROBUST_IT_BRIDGE:-robust5}"
export ROBUST_IT_SUBNET="${ROBUST_IT_SUBNET:-10.244.75.0/24}"
RUN_DIR="$ROBUST_IT_RUN_DIR"
CS="$REPO_DIR/integration/containerd.sh"
SHIM="${SOAK_SHIM:-robust}"
NS=soak
case "$SHIM" in
robust) RUNTIMES="${SOAK_RUNTIMES:-runc runsc}" ;;
reference) RUNTIMES="${SOAK_RUNTIMES:-runc}" ;;
*) echo "soak: SOAK_SHIM must be robust or reference, not '$SHIM'" >&2; exit 2 ;;
esac
SEED="${SOAK_SEED:-$(( (RANDOM << 15 | RANDOM) % 1000000000 ))}"
FAULTS="${SOAK_FAULTS:-default}"
if [[ -n "${SOAK_CYCLES:-}" && -z "${SOAK_MINUTES:-}" ]]; then
    BOUND=(--cycles "$SOAK_CYCLES")
    LIMIT=$((SOAK_CYCLES * 30 + 900))
else
    MINUTES="${SOAK_MINUTES:-2}"
    BOUND=(--minutes "$MINUTES")
    [[ -n "${SOAK_CYCLES:-}" ]] && BOUND+=(--cycles "$SOAK_CYCLES")
    LIMIT=$(awk -v m="$MINUTES" 'BEGIN {printf "%d", m * 60 + 900}')
fi

log() { echo "soak: $*" >&2; }

# one soak at a time on this run dir
exec 9>"$RUN_DIR.lock"
flock -n 9 || { log "another soak holds $RUN_DIR.lock"; exit 2; }

# compile first: a build error needs no containerd
cargo build -p robust-integration --release --locked --bin robust-soak
SHIM_SRC="$REPO_DIR/target/release/containerd-shim-robust-v2"
[[ -x "$SHIM_SRC" ]] || { log "no shim binary at $SHIM_SRC (make build)"; exit 2; }

SOAK_PID=""
cleanup() {
    local rc=$?
    trap '' INT TERM
    if [[ -n "$SOAK_PID" ]] && kill -0 "$SOAK_PID" 2>/dev/null; then
        kill -TERM "$SOAK_PID" 2>/dev/null || true
        # the soak removes its containers on a signal; give it time (every wait is bounded)
        for _ in $(seq 1 600); do kill -0 "$SOAK_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SOAK_PID" 2>/dev/null || true
    fi
    bash "$CS" clean >/dev/null 2>&1 || log "containerd.sh clean failed"
    # runtime state of the soak's namespace a killed run may have left
    local d id
    if [[ -d /run/containerd/runc/$NS ]]; then
        for id in $(ls /run/containerd/runc/$NS 2>/dev/null); do
            timeout -k 2 10 runc --root /run/containerd/runc/$NS delete --force "$id" >/dev/null 2>&1 || true
        done
        rm -rf --one-file-system /run/containerd/runc/$NS
    fi
    if [[ -d /run/containerd/runsc/$NS ]]; then
        for id in $(ls /run/containerd/runsc/$NS 2>/dev/null | sed -n 's/_sandbox:.*//p' | sort -u); do
            timeout -k 2 10 runsc --platform=ptrace --network=none --root /run/containerd/runsc/$NS \
                delete --force "$id" >/dev/null 2>&1 || true
        done
        rm -rf --one-file-system /run/containerd/runsc/$NS
    fi
    # empty cgroups of the namespace (their containers are gone by now, and the bystander
    # host process died with the soak)
    for d in /sys/fs/cgroup/*/$NS; do
        [[ -d "$d" ]] || continue
        find "$d" -depth -mindepth 1 -type d -exec rmdir {} + 2>/dev/null || true
        rmdir "$d" 2>/dev/null || true
    done
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# a fresh instance: whatever an interrupted run left goes first
bash "$CS" clean >/dev/null 2>&1 9>&- || true
# private copies of the binaries: a rebuild during the run changes nothing
mkdir -p "$RUN_DIR/shim"
cp "$SHIM_SRC" "$RUN_DIR/shim/containerd-shim-robust-v2"
cp "$REPO_DIR/target/release/robust-soak" "$RUN_DIR/shim/robust-soak"
export ROBUST_IT_SHIM_BIN="$RUN_DIR/shim/containerd-shim-robust-v2"
# (the lock's fd 9 is not handed down: containerd would pass it on to every shim)
bash "$CS" start 9>&-
eval "$(bash "$CS" env)"

log "seed $SEED, shim $SHIM, runtimes: $RUNTIMES, ${BOUND[*]} each, faults $FAULTS"
status=0
start=$SECONDS
for rt in $RUNTIMES; do
    t=$SECONDS
    set +e
    # shellcheck disable=SC2086
    timeout -k 60 "$LIMIT" "$RUN_DIR/shim/robust-soak" --shim "$SHIM" --runtime "$rt" \
        --seed "$SEED" --faults "$FAULTS" "${BOUND[@]}" ${SOAK_ARGS:-} 9>&- &
    SOAK_PID=$!
    wait "$SOAK_PID"
    rc=$?
    SOAK_PID=""
    set -e
    log "$SHIM on $rt: exit $rc after $((SECONDS - t))s"
    if ((rc == 2)); then
        status=2
    elif ((rc != 0 && status == 0)); then
        status=1
    fi
done
log "done in $((SECONDS - start))s: exit $status (summaries in results/; seed $SEED)"
exit "$status"
