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
SECTIONS=(basic detached footprint escalation hang oom)
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

# The robustness sections show what only our shim does; with the reference they are skipped.
robust_only() {
    if [[ "$RUNTIME" != io.containerd.robust.v2 ]]; then
        explain "skipped: this section shows a robust-shim feature ($RUNTIME runs the demo)"
        return 1
    fi
}
# shim log lines about a container (containerd copies the shim log into its own)
shim_log() { grep -a "id=$1" "$ROBUST_IT_RUN_DIR/containerd.log" | grep -a "runtime=io.containerd.robust.v2" | grep -a "$2" | sed 's/^/      log: /' | cut -c1-220; }

demo_escalation() {
    section "4. SIGTERM to the shim: a bounded, orderly exit even when the init ignores SIGTERM"
    robust_only || return 0
    local id="demo-esc-$$" cfg="$ROBUST_IT_RUN_DIR/demo-escalation.toml"
    started+=("$id")
    printf '[timeouts]\nstop_grace = "2s"\nkill_grace = "1s"\n' >"$cfg"
    explain "config: stop_grace = 2s; the init ignores SIGTERM"
    show ctr_ run -d --runtime "$RUNTIME" --runtime-config-path "$cfg" "$ROBUST_IT_IMAGE" "$id" sh -c 'trap "" TERM; while :; do sleep 1; done'
    if [[ "$rc" != 0 ]] || ! wait_status "$id" RUNNING 10; then fail "the container did not start"; return 0; fi
    local spid t0
    spid="$(shim_pid_of "$id" || true)"
    [[ -n "$spid" ]] || { fail "no shim process found"; return 0; }
    explain "kill -TERM $spid (the shim daemon): it stops the container (SIGTERM, 2 s, SIGKILL), publishes the exit, exits"
    t0=$(date +%s%N)
    kill -TERM "$spid"
    local deadline=$((SECONDS + 15))
    while kill -0 "$spid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.05; done
    if kill -0 "$spid" 2>/dev/null; then fail "shim still running 15 s after SIGTERM"; return 0; fi
    ok "shim gone after $(( ($(date +%s%N) - t0) / 1000000 )) ms"
    shim_log "$id" "escalating\|stopped on shim exit"
    if wait_status "$id" STOPPED 10; then ok "containerd sees the task STOPPED"; show ctr_ task ls; else
        # containerd may already have cleaned the dead shim's task away
        [[ -z "$(task_status "$id")" ]] && ok "containerd cleaned the task up" || fail "task is $(task_status "$id")"
    fi
}

demo_hang() {
    section "5. a runtime that hangs: every runtime call has a deadline"
    robust_only || return 0
    local id="demo-hang-$$" wrapper="$ROBUST_IT_RUN_DIR/demo-hang-runc" cfg="$ROBUST_IT_RUN_DIR/demo-hang.toml"
    started+=("$id")
    cat >"$wrapper" <<'WRAP'
#!/bin/sh
# runc, except that `pause` hangs (demo fault injection)
for a in "$@"; do
    case "$a" in
    pause) sleep 3600 ;;
    create | start | exec | kill | delete | state | update | ps | resume | events) break ;;
    esac
done
exec runc "$@"
WRAP
    chmod +x "$wrapper"
    printf '[runtime]\nbinary = "%s"\n[timeouts]\npause = "2s"\n' "$wrapper" >"$cfg"
    explain "the runtime is a wrapper around runc that hangs on 'pause'; config: pause = 2s"
    show ctr_ run -d --runtime "$RUNTIME" --runtime-config-path "$cfg" "$ROBUST_IT_IMAGE" "$id" sleep 300
    if [[ "$rc" != 0 ]] || ! wait_status "$id" RUNNING 10; then fail "the container did not start"; return 0; fi
    local t0=$SECONDS
    show ctr_ task pause "$id"
    if [[ "$rc" != 0 && "$out" == *"pause"* ]]; then ok "pause failed after $((SECONDS - t0)) s with the deadline named"; else fail "expected a deadline error"; fi
    explain "the shim still answers, and the hung runtime process is gone"
    show ctr_ task ls
    if pgrep -f "$wrapper.*pause" >/dev/null; then fail "hung runtime still running"; else ok "no hung runtime left"; fi
    show ctr_ task kill -s KILL "$id"
    wait_status "$id" STOPPED 10 || fail "not STOPPED after SIGKILL"
}

demo_oom() {
    section "6. an OOM kill: TaskOOM, then the exit (137), in that order"
    robust_only || return 0
    local id="demo-oom-$$" evlog="$ROBUST_IT_RUN_DIR/demo-oom-events"
    started+=("$id")
    timeout 30 ctr --address "$CONTAINERD_ADDRESS" events >"$evlog" 2>/dev/null &
    local evpid=$!
    sleep 0.3
    show ctr_ run --rm --memory-limit 16777216 --runtime "$RUNTIME" "$ROBUST_IT_IMAGE" "$id" sh -c 'x=aaaaaaaaaaaaaaaa; while :; do x=$x$x; done'
    local deadline=$((SECONDS + 10))
    until grep -q "/tasks/delete.*$id" "$evlog" 2>/dev/null || ((SECONDS >= deadline)); do sleep 0.1; done
    kill "$evpid" 2>/dev/null || true
    grep -a "$id" "$evlog" | grep -a "/tasks/" | awk '{print "      event: " $6}'
    local order
    order="$(grep -a "$id" "$evlog" | grep -ao '/tasks/[a-z-]*' | tr '\n' ' ')"
    if [[ "$rc" == 137 && "$order" == *"/tasks/oom /tasks/exit"* ]]; then ok "exit 137, oom before exit"; else fail "expected exit 137 and /tasks/oom before /tasks/exit (got rc $rc: $order)"; fi
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
