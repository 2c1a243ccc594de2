#!/usr/bin/env bash
# make demo: robust-shim at work, step by step, through ctr and an isolated containerd
# (its own run dir, /run/robust-demo, so it never meets the test suite's instance).
#
#   DEMO_RUNTIME=io.containerd.runc.v2 make demo   the same demo with the reference shim
#   DEMO_ONLY="basic detached" make demo           only some sections (basic detached footprint
#                                                  escalation hang oom deadshim sweep)
#   ROBUST_IT_RUN_DIR, ROBUST_IT_BRIDGE, ROBUST_IT_SUBNET  another instance (as containerd.sh)
#
# The deadshim section always shows both shims side by side; the reference's leftovers are
# cleaned by hand (also on an interrupt).
#
# To add a section: write a demo_<name> function below and add <name> to SECTIONS.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export ROBUST_IT_RUN_DIR="${ROBUST_IT_RUN_DIR:-/run/robust-demo}"
export ROBUST_IT_BRIDGE="${ROBUST_IT_BRIDGE:-robustd0}"
export ROBUST_IT_SUBNET="${ROBUST_IT_SUBNET:-10.244.79.0/24}"
RUNTIME="${DEMO_RUNTIME:-io.containerd.robust.v2}"
REFERENCE=io.containerd.runc.v2
SECTIONS=(basic detached footprint escalation hang oom deadshim sweep)
CS=integration/containerd.sh
NS=default

# ---- presentation ------------------------------------------------------------------------
# bold only on a terminal: a log file or a pipe gets plain text
if [[ -t 1 ]]; then BOLD=$'\033[1m' PLAIN=$'\033[0m'; else BOLD='' PLAIN=''; fi
bold() { printf '%s%s%s\n' "$BOLD" "$*" "$PLAIN"; }
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
by_hand=() # containers whose leftovers (the reference shim's) are cleaned by hand
cleanup() {
    local id
    for id in "${by_hand[@]}"; do clean_by_hand "$id" >/dev/null 2>&1 || true; done
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
bundle_of() { echo "$ROBUST_IT_STATE_DIR/io.containerd.runtime.v2.task/$NS/$1"; }
# mount points at or below a directory
mounts_under() { awk -v d="$1" '$5 == d || index($5, d "/") == 1 {print $5}' /proc/self/mountinfo; }
# the container's processes (ctr task ps), one pid a line
task_pids() { ctr_ task ps "$1" 2>/dev/null | awk 'NR > 1 {print $1}'; }
# those of the pids $@ still running (a zombie waiting for its reaper does not count)
alive_of() {
    local p st out=()
    for p in "$@"; do
        st="$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" || continue
        [[ -n "$st" && "$st" != Z ]] && out+=("$p")
    done
    echo "${out[*]}"
}
# containerd's log from byte offset $1 on
log_since() { tail -c +"$(($1 + 1))" "$ROBUST_IT_LOG"; }
# what our delete wrote for container $1 since offset $2 (containerd logs it quoted inside
# "cleanup warnings ..."), one line each, shortened
our_delete_lines() {
    log_since "$2" | grep -a 'msg="cleanup warnings ' | python3 -c '
import re, sys
for line in sys.stdin:
    m = re.search(r"msg=\"cleanup warnings (.*)\"\s*$", line)
    if not m:
        continue
    text = m.group(1).encode().decode("unicode_escape")
    for l in text.splitlines():
        if " id=" + sys.argv[1] + " " in l:
            l = re.sub(r"^time=\"[^\"]*\" ", "", l)
            l = l.replace(" namespace=default runtime=io.containerd.robust.v2", "")
            print("      log: " + (l if len(l) < 200 else l[:197] + "..."))
' "$1"
}
# stop a task's shim, remove bundle files, kill -9 the shim: containerd's dead-shim cleanup runs
kill_shim_without() { # ID FILE...
    local id="$1" spid b
    shift
    b="$(bundle_of "$id")"
    spid="$(shim_pid_of "$id" || true)"
    [[ -n "$spid" ]] || return 1
    kill -STOP "$spid"
    (cd "$b" && rm -f "$@")
    kill -KILL "$spid"
}
# wait (bounded) until containerd's dead-shim cleanup of $1 (log offset $2) ended: the
# bundle is gone, or containerd logged that its cleanup failed; then until it dropped the task
wait_dead_shim_cleanup() {
    local id="$1" off="$2" deadline=$((SECONDS + 15))
    until [[ ! -e "$(bundle_of "$id")" ]] || log_since "$off" | grep -a "id=$id" | grep -q "failed to clean up after shim disconnected"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.1
    done
    deadline=$((SECONDS + 10))
    while [[ -n "$(task_status "$id")" ]]; do
        ((SECONDS < deadline)) || return 1
        sleep 0.1
    done
}
# what a dead shim's cleanup left of container $1 (pids of its processes before: $2...)
leftovers() {
    local id="$1" b left=()
    shift
    b="$(bundle_of "$id")"
    [[ -e "$b" ]] && left+=("bundle dir")
    [[ -n "$(mounts_under "$b")" ]] && left+=("rootfs mount")
    [[ -e "/run/containerd/runc/$NS/$id" ]] && left+=("runc state")
    local alive
    alive="$(alive_of "$@")"
    [[ -n "$alive" ]] && left+=("running processes: $alive")
    local i out=""
    for i in "${!left[@]}"; do out+="${out:+, }${left[$i]}"; done
    echo "$out"
}
# clean by hand what the reference shim's failed cleanup left of container $1
clean_by_hand() {
    local id="$1" b m
    b="$(bundle_of "$id")"
    runc --root "/run/containerd/runc/$NS" delete --force "$id" 2>/dev/null || true
    for m in $(mounts_under "$b" | sort -r); do umount -l "$m" 2>/dev/null || true; done
    if [[ -z "$(mounts_under "$b")" ]]; then
        rm -rf --one-file-system "$b" "$ROBUST_IT_ROOT_DIR/io.containerd.runtime.v2.task/$NS/$id"
    fi
    CTR_TIMEOUT=15 ctr_ container delete "$id" >/dev/null 2>&1 || true
}

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

demo_deadshim() {
    section "7. kill -9 of a shim whose runtime, init.pid and options.json are gone: containerd's cleanup"
    explain "containerd runs '<shim> delete' in the bundle when a shim dies (and kills it after 5 s);"
    explain "with those files gone the Go shim's delete fails, and the container keeps running"
    local rt id off pids left
    for rt in io.containerd.robust.v2 "$REFERENCE"; do
        id="demo-dead-${rt#io.containerd.}-$$"
        id="${id//./-}"
        started+=("$id")
        echo
        bold "    $rt"
        if ! ctr_ run -d --runtime "$rt" "$ROBUST_IT_IMAGE" "$id" sh -c 'sleep 300 & sleep 301; wait' >/dev/null 2>&1 ||
            ! wait_status "$id" RUNNING 10; then
            fail "$rt: could not start $id"
            continue
        fi
        mapfile -t pids < <(task_pids "$id")
        explain "$id runs (pids ${pids[*]}); kill -STOP its shim, rm runtime init.pid options.json, kill -KILL the shim"
        off="$(stat -c %s "$ROBUST_IT_LOG")"
        [[ "$rt" == "$REFERENCE" ]] && by_hand+=("$id")
        if ! kill_shim_without "$id" runtime init.pid options.json; then fail "no shim process found for $id"; continue; fi
        if ! wait_dead_shim_cleanup "$id" "$off"; then fail "containerd did not finish its cleanup of $id within 25 s"; fi
        log_since "$off" | grep -a "id=$id" | grep -a "failed to clean up after shim disconnected" |
            sed 's/.*error=/      containerd: cleanup failed: /' | cut -c1-200 || true
        if [[ "$rt" != "$REFERENCE" ]]; then
            our_delete_lines "$id" "$off" | grep -a 'level=warning' || true
        fi
        # SIGKILLed processes go at once; allow the kernel a moment to reap them
        local deadline=$((SECONDS + 3))
        while [[ -n "$(alive_of "${pids[@]}")" ]] && ((SECONDS < deadline)); do sleep 0.1; done
        left="$(leftovers "$id" "${pids[@]}")"
        if [[ "$rt" == "$REFERENCE" ]]; then
            if [[ -n "$left" ]]; then
                ok "the reference left: $left"
                explain "cleaning that by hand: runc delete --force, umount, rm -rf the bundle"
                clean_by_hand "$id"
                deadline=$((SECONDS + 3))
                while [[ -n "$(alive_of "${pids[@]}")" ]] && ((SECONDS < deadline)); do sleep 0.1; done
                left="$(leftovers "$id" "${pids[@]}")"
                if [[ -z "$left" ]]; then ok "cleaned by hand"; else fail "still left after the hand cleanup: $left"; fi
            else
                ok "the reference left nothing this time"
            fi
        elif [[ -z "$left" ]]; then
            ok "nothing left: no bundle, no mount, no runc state, no process"
        else
            fail "left: $left"
        fi
        CTR_TIMEOUT=15 ctr_ container delete "$id" >/dev/null 2>&1 || true
    done
}

demo_sweep() {
    section "8. sweep: the task bundles no live shim owns, cleaned on the node"
    local left="demo-sweep-left-$$" live="demo-sweep-live-$$" off pids b spid rest id
    started+=("$left" "$live")
    for id in "$left" "$live"; do
        if ! ctr_ run -d --runtime io.containerd.robust.v2 "$ROBUST_IT_IMAGE" "$id" sleep 300 >/dev/null 2>&1 ||
            ! wait_status "$id" RUNNING 10; then
            fail "could not start $id"
            return 0
        fi
    done
    explain "a leftover: containerd's own cleanup could not run when $left's shim died (here its"
    explain "bundle is moved aside meanwhile, as if containerd were down); it stays, mounted and running"
    mapfile -t pids < <(task_pids "$left")
    b="$(bundle_of "$left")"
    spid="$(shim_pid_of "$left" || true)"
    [[ -n "$spid" ]] || { fail "no shim process found for $left"; return 0; }
    off="$(stat -c %s "$ROBUST_IT_LOG")"
    kill -STOP "$spid"
    mv "$b" "$b.aside"
    kill -KILL "$spid"
    local deadline=$((SECONDS + 10))
    until log_since "$off" | grep -a "id=$left" | grep -q "failed to clean up after shim disconnected"; do
        ((SECONDS < deadline)) || break
        sleep 0.1
    done
    mv "$b.aside" "$b"
    deadline=$((SECONDS + 10))
    while [[ -n "$(task_status "$left")" ]] && ((SECONDS < deadline)); do sleep 0.1; done
    rest="$(leftovers "$left" "${pids[@]}")"
    if [[ -n "$rest" ]]; then ok "left: $rest"; else fail "no leftover to sweep"; return 0; fi
    explain "--state-dir takes containerd's state dir or its io.containerd.runtime.v2.task subdirectory"
    show "$ROBUST_IT_SHIM_BIN" sweep --state-dir "$ROBUST_IT_STATE_DIR" --namespace "$NS" --min-age 0 --dry-run
    if [[ "$out" == *"$left"*"would clean"* && "$out" == *"$live"*alive* ]]; then ok "the leftover would be cleaned, the live container is left alone"; else fail "unexpected dry-run table"; fi
    explain "now for real, for that one container (its warnings name what the dead shim left)"
    local t0
    t0=$(date +%s%N)
    set +e
    out="$("$ROBUST_IT_SHIM_BIN" sweep --state-dir "$ROBUST_IT_STATE_DIR" --namespace "$NS" --id "$left" --min-age 0 2>"$ROBUST_IT_RUN_DIR/demo-sweep.err")"
    rc=$?
    set -e
    echo "    \$ containerd-shim-robust-v2 sweep --state-dir $ROBUST_IT_STATE_DIR --namespace $NS --id $left --min-age 0"
    sed 's/^/      /' <<<"$out"
    grep -a 'level=warning' "$ROBUST_IT_RUN_DIR/demo-sweep.err" | sed -e 's/^time="[^"]*" //' -e 's/ namespace=.*//' | cut -c1-190 | sed 's/^/      log: /' || true
    echo "      [exit code $rc, $(( ($(date +%s%N) - t0) / 1000000 )) ms]"
    deadline=$((SECONDS + 3))
    while [[ -n "$(alive_of "${pids[@]}")" ]] && ((SECONDS < deadline)); do sleep 0.1; done
    rest="$(leftovers "$left" "${pids[@]}")"
    if [[ "$rc" == 0 && -z "$rest" ]]; then ok "bundle, mount, runc state and processes gone"; else fail "sweep exit $rc; left: $rest"; fi
    if [[ "$(task_status "$live")" == RUNNING ]]; then ok "$live still RUNNING"; else fail "$live is $(task_status "$live")"; fi
    CTR_TIMEOUT=15 ctr_ container delete "$left" >/dev/null 2>&1 || true
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
