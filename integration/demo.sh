#!/usr/bin/env bash
# make demo: robust-shim at work, step by step, through ctr and an isolated containerd
# (its own run dir, /run/robust-demo, so it never meets the test suite's instance).
#
#   DEMO_RUNTIME=io.containerd.runc.v2 make demo   the same demo with the reference shim
#   DEMO_ONLY="basic detached" make demo           only some sections
#
# To add a section: write a demo_<name> function below and add <name> to SECTIONS.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export ROBUST_IT_RUN_DIR="${ROBUST_IT_RUN_DIR:-/run/robust-demo}"
export ROBUST_IT_BRIDGE="${ROBUST_IT_BRIDGE:-robustd0}"
export ROBUST_IT_SUBNET="${ROBUST_IT_SUBNET:-10.244.79.0/24}"
RUNTIME="${DEMO_RUNTIME:-io.containerd.robust.v2}"
REFERENCE=io.containerd.runc.v2
SECTIONS=(basic detached footprint)
CS=integration/containerd.sh
NS=default

# ---- presentation ------------------------------------------------------------------------
bold() { printf '\033[1m%s\033[0m\n' "$*"; }
section() { echo; bold "=== $*"; }
explain() { echo "    # $*"; }
failures=0
fail() { echo "    !! $*"; failures=$((failures + 1)); }
ok() { echo "    -> $*"; }
# show CMD...: print the command, run it (bounded), indent its output; sets $out, $rc
show() {
    local shown="" a
    for a in "$@"; do
        if [[ "$a" =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then shown+="$a "; else shown+="'${a//\'/\'\\\'\'}' "; fi
    done
    shown="${shown/#ctr_ /ctr }"
    echo "    \$ $shown"
    set +e
    out="$("$@" 2>&1)"
    rc=$?
    set -e
    [[ -z "$out" ]] || sed 's/^/      /' <<<"$out"
    echo "      [exit code $rc]"
}
ctr_() { timeout -k 5 "${CTR_TIMEOUT:-30}" ctr --address "$CONTAINERD_ADDRESS" -n "$NS" "$@"; }

# ---- what we start, we stop ---------------------------------------------------------------
started=()
cleanup() {
    local id
    for id in "${started[@]}"; do
        CTR_TIMEOUT=15 ctr_ task delete -f "$id" >/dev/null 2>&1 || true
        CTR_TIMEOUT=15 ctr_ container delete "$id" >/dev/null 2>&1 || true
    done
    bash "$CS" stop || true
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

task_status() { ctr_ task ls 2>/dev/null | awk -v id="$1" '$1 == id {print $3}'; }
wait_status() { # wait_status ID STATUS SECONDS
    local deadline=$((SECONDS + $3))
    until [[ "$(task_status "$1")" == "$2" ]]; do
        ((SECONDS < deadline)) || return 1
        sleep 0.1
    done
}
# pid of the shim process serving a task: the process listening on the socket named in
# the task bundle's address file
shim_pid_of() {
    local addr path
    addr="$(cat "$ROBUST_IT_STATE_DIR/io.containerd.runtime.v2.task/$NS/$1/address" 2>/dev/null)" || return 1
    path="${addr#unix://}"
    ss -xlpn 2>/dev/null | grep -F " $path " | grep -o 'pid=[0-9]*' | head -n1 | cut -d= -f2
}
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null; }

# ---- sections -------------------------------------------------------------------------------
demo_basic() {
    section "1. ctr run --rm through $RUNTIME: the output and the exit code come back"
    local id="demo-rm-$$"
    started+=("$id")
    local bin="${RUNTIME#io.containerd.}"
    explain "containerd starts containerd-shim-${bin//./-}; the shim runs runc, relays stdout,"
    explain "reports the exit status (7) and cleans the container up (--rm)"
    show ctr_ run --rm --runtime "$RUNTIME" "$ROBUST_IT_IMAGE" "$id" sh -c 'echo "hello from $(hostname), pid $$"; exit 7'
    if [[ "$rc" == 7 && "$out" == *"hello from"* ]]; then ok "output delivered, ctr exited 7 as the container did"; else fail "expected the greeting and exit code 7"; fi

    explain "stdin is relayed too"
    show bash -c "echo 'data through stdin' | timeout -k 5 30 ctr --address '$CONTAINERD_ADDRESS' -n $NS run --rm --runtime $RUNTIME $ROBUST_IT_IMAGE $id-in head -n1"
    started+=("$id-in")
    if [[ "$rc" == 0 && "$out" == *"data through stdin"* ]]; then ok "stdin reached the container"; else fail "stdin did not come back"; fi
}

demo_detached() {
    section "2. a detached container: run -d, exec, kill, delete"
    local id="demo-d-$$"
    started+=("$id")
    explain "the init traps SIGTERM and exits 42"
    show ctr_ run -d --runtime "$RUNTIME" "$ROBUST_IT_IMAGE" "$id" sh -c "trap 'exit 42' TERM; while :; do sleep 1 & wait \$!; done"
    if [[ "$rc" != 0 ]] || ! wait_status "$id" RUNNING 10; then fail "the container did not start"; return 0; fi
    show ctr_ task ls
    explain "an exec: its output and exit code (5) come back"
    show ctr_ task exec --exec-id demo-exec "$id" sh -c 'echo "exec sees: $(ps | wc -l) lines of ps"; exit 5'
    if [[ "$rc" == 5 ]]; then ok "exec exit code 5"; else fail "exec exit code $rc, expected 5"; fi
    show ctr_ task ps "$id"

    local spid
    spid="$(shim_pid_of "$id" || true)"
    if [[ -n "$spid" ]]; then
        explain "the shim process serving it (RSS in KiB, threads):"
        show ps -o pid,ppid,rss,nlwp,args -p "$spid"
    else
        fail "could not find the shim process (address file / ss)"
    fi

    explain "SIGTERM, then wait until the task is STOPPED"
    show ctr_ task kill "$id"
    if wait_status "$id" STOPPED 15; then ok "stopped"; else fail "not STOPPED within 15 s"; fi
    show ctr_ task ls
    explain "task delete reports the exit status (42)"
    show ctr_ task delete "$id"
    if [[ "$out" == *"exit code 42"* ]]; then ok "exit status 42"; else fail "expected exit status 42"; fi
    show ctr_ container delete "$id"
    if [[ -n "$spid" ]]; then
        local deadline=$((SECONDS + 5))
        while kill -0 "$spid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
        if kill -0 "$spid" 2>/dev/null; then fail "shim $spid still running after delete"; else ok "the shim exited with its last container"; fi
    fi
}

demo_footprint() {
    section "3. footprint: one idle container per shim, $RUNTIME next to the reference $REFERENCE"
    local rt id spid rss
    for rt in "$RUNTIME" "$REFERENCE"; do
        id="demo-fp-${rt//./-}-$$"
        id="${id/io-containerd-/}"
        started+=("$id")
        if ! ctr_ run -d --runtime "$rt" "$ROBUST_IT_IMAGE" "$id" sleep 300 >/dev/null 2>&1 || ! wait_status "$id" RUNNING 10; then
            fail "$rt: could not start $id"
            continue
        fi
        spid="$(shim_pid_of "$id" || true)"
        rss="$(rss_kb "${spid:-0}")"
        printf '    %-26s shim pid %-7s RSS %6s KiB  threads %s\n' "$rt" "${spid:-?}" "${rss:-?}" \
            "$(awk '/^Threads:/ {print $2}' "/proc/${spid:-0}/status" 2>/dev/null || echo '?')"
        CTR_TIMEOUT=15 ctr_ task delete -f "$id" >/dev/null 2>&1 || true
        CTR_TIMEOUT=15 ctr_ container delete "$id" >/dev/null 2>&1 || true
    done
}

# ---- main -----------------------------------------------------------------------------------
bold "robust-shim demo: runtime $RUNTIME, isolated containerd in $ROBUST_IT_RUN_DIR"
bash "$CS" start
eval "$(bash "$CS" env)"
echo "    shim binary: $ROBUST_IT_SHIM_BIN"
echo "    (below, 'ctr' stands for: ctr --address $CONTAINERD_ADDRESS -n $NS, each call under timeout -k)"

for s in ${DEMO_ONLY:-${SECTIONS[*]}}; do
    if declare -F "demo_$s" >/dev/null; then "demo_$s"; else fail "no demo section '$s' (have: ${SECTIONS[*]})"; fi
done

echo
if ((failures == 0)); then
    bold "demo: every step behaved as expected"
else
    bold "demo: $failures step(s) did not behave as expected (see !! above)"
    exit 1
fi
