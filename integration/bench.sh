#!/usr/bin/env bash
# make bench: containerd-shim-robust-v2 side by side with containerd-shim-runc-v2, in one
# run, against an isolated containerd of its own (run dir /run/robust-bench, bridge
# robust7, 10.244.70.0/24), interleaved: every iteration measures both shims, alternating
# which goes first. Prints a markdown table (median, p95, ratio robust/reference) and
# writes results/bench-<timestamp>.{md,svg,tsv}. What each row measures: docs/benchmarks.md.
#
# Knobs (environment):
#   BENCH_RUNS=20          samples per shim for every row but the many-containers ones
#   BENCH_MANY=50          containers of the "summed over N running containers" rows
#   BENCH_MANY_RUNS=3      samples of those rows (each starts and removes BENCH_MANY containers)
#   BENCH_POD_SIZE=5       containers in the pod daemon
#   BENCH_PARALLEL=8       containers started at once for the throughput row
#   BENCH_SETTLE=0.3       seconds between "started" and reading a shim's memory
#   BENCH_ONLY="..."       sections to run (default: all of $SECTIONS below)
#   BENCH_STDIO_RUNS=5     samples of the stdio rows (BENCH_STDIO_MIB=1024 MiB each; slow reader: BENCH_SLOW_MIB=32)
#   BENCH_RESULTS_DIR      where results go (default: results/ of the repository)
#   BENCH_SHIM_BIN         our binary (default: target/release/containerd-shim-robust-v2)
#   BENCH_REFERENCE_BIN    the Go shim (default: containerd-shim-runc-v2 on PATH)
#   BENCH_NO_INSTALL=1     never apt-get install python3-grpcio (the CRI rows: "not measured")
#   ROBUST_IT_RUN_DIR, ROBUST_IT_BRIDGE, ROBUST_IT_SUBNET: the isolated containerd
#
# Both binaries are copied into the run dir first (containerd finds them there, first on its
# PATH), so a rebuild during the run changes nothing and PSS shares pages only between the
# shims of this run. Everything it starts is removed on exit, Ctrl-C included: containers,
# shims, the floor's runc containers and mounts, containerd, the run dir and the bridge.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO_DIR="$PWD"

export ROBUST_IT_RUN_DIR="${ROBUST_IT_RUN_DIR:-/run/robust-bench}"
export ROBUST_IT_BRIDGE="${ROBUST_IT_BRIDGE:-robust7}"
export ROBUST_IT_SUBNET="${ROBUST_IT_SUBNET:-10.244.70.0/24}"
RUN_DIR="$ROBUST_IT_RUN_DIR"
RUNS="${BENCH_RUNS:-20}"
MANY="${BENCH_MANY:-50}"
MANY_RUNS="${BENCH_MANY_RUNS:-3}"
POD_SIZE="${BENCH_POD_SIZE:-5}"
PARALLEL="${BENCH_PARALLEL:-8}"
SETTLE="${BENCH_SETTLE:-0.3}"
SECTIONS=(run_rm lifecycle start shim_delete pod throughput cri stdio many)
STDIO_MIB="${BENCH_STDIO_MIB:-1024}"     # MiB written to stdout per sample of the stdio rows
SLOW_MIB="${BENCH_SLOW_MIB:-32}"         # MiB written to the slow reader
STDIO_RUNS="${BENCH_STDIO_RUNS:-5}"      # samples of the stdio rows
CLK_TCK="$(getconf CLK_TCK)"
ONLY="${BENCH_ONLY:-${SECTIONS[*]}}"
RESULTS_DIR="${BENCH_RESULTS_DIR:-$REPO_DIR/results}"
SHIM_SRC="${BENCH_SHIM_BIN:-$REPO_DIR/target/release/containerd-shim-robust-v2}"
REF_SRC="${BENCH_REFERENCE_BIN:-$(command -v containerd-shim-runc-v2 || true)}"
CS="$REPO_DIR/integration/containerd.sh"
NS=default
ROBUST_NAME=containerd-shim-robust-v2
REF_NAME=containerd-shim-runc-v2
BENCH_DIR="$RUN_DIR/bench"       # scratch: samples, event stamps, the floor's bundle
SAMPLES="$BENCH_DIR/samples.tsv"
EVENTS="$BENCH_DIR/events.tsv"     # stamped task events (see start_event_stamper)
FLOOR_ROOT="$RUN_DIR/runc-floor"  # runc --root of the floor's containers
FLOOR_BUNDLE="$BENCH_DIR/floor"

for v in RUNS MANY MANY_RUNS POD_SIZE PARALLEL STDIO_MIB SLOW_MIB STDIO_RUNS; do
    [[ "${!v}" =~ ^[0-9]+$ && "${!v}" -ge 1 ]] || { echo "bench: $v must be a positive integer" >&2; exit 2; }
done
[[ -x "$SHIM_SRC" ]] || { echo "bench: no shim binary at $SHIM_SRC (make build)" >&2; exit 1; }
[[ -n "$REF_SRC" && -x "$REF_SRC" ]] || { echo "bench: containerd-shim-runc-v2 not found (make deps)" >&2; exit 1; }

log() { echo "bench: $*" >&2; }
IT=0
sample() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$IT" "$3" >>"$SAMPLES"; }
berror() { # a failed step: noted in the report, the run goes on
    local msg="${*//$'\n'/ | }"
    log "error (iteration $IT): $msg"
    printf '#error\t(iteration %s) %s\n' "$IT" "${msg:0:600}" >>"$SAMPLES"
}
ctr_() { timeout -k 5 "${CTR_TIMEOUT:-30}" ctr --address "$CONTAINERD_ADDRESS" -n "${CTR_NS:-$NS}" "$@"; }
# a short sleep without a fork: read with a timeout on a pipe nobody writes to
nap() { read -r -t "$1" -u "$NAP_FD" _ || true; }

# ---- cleanup: whatever happens, nothing stays ------------------------------------------------
CTRD_PID=""
CTRD_STOPPED=0   # containerd is SIGSTOPped while a shim `delete` action is timed
BG_PIDS=()
EVENTS_PIDS=()
cleanup() {
    local rc=$?
    trap '' INT TERM
    trap - EXIT
    set +e
    if ((CTRD_STOPPED)) && [[ -n "$CTRD_PID" ]]; then kill -CONT "$CTRD_PID" 2>/dev/null; fi
    local p
    for p in "${BG_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${BG_PIDS[@]}"; do wait "$p" 2>/dev/null; done
    if [[ -d "$FLOOR_ROOT" ]]; then
        for p in $(runc --root "$FLOOR_ROOT" list -q 2>/dev/null); do
            timeout -k 2 10 runc --root "$FLOOR_ROOT" delete -f "$p" >/dev/null 2>&1
        done
    fi
    mountpoint -q "$FLOOR_BUNDLE/rootfs" 2>/dev/null && umount "$FLOOR_BUNDLE/rootfs" 2>/dev/null
    for p in "${EVENTS_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    bash "$CS" clean >&2 || log "containerd.sh clean failed: see above"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- processes and memory -----------------------------------------------------------------
# pids of the shim daemons (not a `start` or `delete` action) of this containerd running
# the binary named $1
shim_daemons() {
    local d pid args k found
    for d in /proc/[0-9]*; do
        pid="${d#/proc/}"
        args=()
        mapfile -d '' -t args 2>/dev/null <"$d/cmdline" || continue
        ((${#args[@]} > 2)) || continue
        [[ "${args[0]##*/}" == "$1" ]] || continue
        case "${args[-1]}" in start | delete) continue ;; esac
        found=0
        for ((k = 1; k < ${#args[@]} - 1; k++)); do
            [[ "${args[k]}" == -address && "${args[k + 1]}" == "$CONTAINERD_ADDRESS" ]] && found=1
        done
        ((found)) && echo "$pid"
    done
    return 0
}
# MEM_RSS MEM_PSS (KiB) and MEM_THREADS of pid $1; fails if it is gone
mem_of() {
    local k v _rest
    MEM_RSS="" MEM_PSS="" MEM_THREADS=""
    { while read -r k v _rest; do
        case "$k" in Rss:) MEM_RSS="$v" ;; Pss:) MEM_PSS="$v" ;; esac
    done <"/proc/$1/smaps_rollup"; } 2>/dev/null || true
    { while read -r k v _rest; do
        case "$k" in Threads:) MEM_THREADS="$v" ;; esac
    done <"/proc/$1/status"; } 2>/dev/null || true
    [[ -n "$MEM_RSS" && -n "$MEM_PSS" && -n "$MEM_THREADS" ]]
}
# sums of mem_of over the daemons of binary $1: sets SUM_RSS SUM_PSS SUM_THREADS SUM_N
mem_sum() {
    local p
    SUM_RSS=0 SUM_PSS=0 SUM_THREADS=0 SUM_N=0
    for p in $(shim_daemons "$1"); do
        mem_of "$p" || continue
        SUM_RSS=$((SUM_RSS + MEM_RSS)) SUM_PSS=$((SUM_PSS + MEM_PSS))
        SUM_THREADS=$((SUM_THREADS + MEM_THREADS)) SUM_N=$((SUM_N + 1))
    done
}

# ---- containers ---------------------------------------------------------------------------
runtime_of() { [[ "$1" == robust ]] && echo io.containerd.robust.v2 || echo io.containerd.runc.v2; }
binary_of() { [[ "$1" == robust ]] && echo "$ROBUST_NAME" || echo "$REF_NAME"; }
handler_of() { [[ "$1" == robust ]] && echo robust || echo runc; }

# remove containers (task killed and deleted, then the container), $REMOVE_JOBS at a time
remove_ids() {
    local id n=0 pids=() p
    for id in "$@"; do
        (
            CTR_TIMEOUT=20 ctr_ task delete -f "$id" >/dev/null 2>&1 || true
            out="$(CTR_TIMEOUT=20 ctr_ container delete "$id" 2>&1)" || {
                # a task whose shim just died may need containerd to notice first
                sleep 0.5
                CTR_TIMEOUT=20 ctr_ task delete -f "$id" >/dev/null 2>&1 || true
                CTR_TIMEOUT=20 ctr_ container delete "$id" >/dev/null 2>&1 ||
                    echo "bench: could not remove container $id: $out" >&2
            }
        ) &
        pids+=($!)
        BG_PIDS+=($!)
        n=$((n + 1))
        if ((n % ${REMOVE_JOBS:-4} == 0)); then
            for p in "${pids[@]}"; do wait "$p" || true; done
            pids=()
        fi
    done
    for p in "${pids[@]}"; do wait "$p" || true; done
    BG_PIDS=()
}

# the host pid of the init of container $1 (from its bundle)
init_pid_of() { local p; p="$(<"$ROBUST_IT_STATE_DIR/io.containerd.runtime.v2.task/$NS/$1/init.pid")" && echo "$p"; }

# task events, stamped on arrival by a `ctr events` subscriber: one line per event,
# "<arrival us>\t<topic>\t<container id>\t." (the "." marks a line written whole)
start_event_stamper() {
    : >"$EVENTS"
    local fd
    exec {fd}< <(exec ctr --address "$CONTAINERD_ADDRESS" events 2>/dev/null)
    EVENTS_PIDS+=($!)
    python3 -u -c '
import re, sys, time
topics = {"/containers/create", "/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete",
          "/containers/delete"}
pat = re.compile(r" (/[a-z]+/[a-z-]+) \{\"(?:container_)?id\":\"([^\"]+)\"")
exec_id = re.compile(r",\"id\":\"([^\"]+)\"")
out = sys.stdout
for raw in sys.stdin.buffer:
    now = time.time_ns() // 1000  # CLOCK_REALTIME in us, as bash EPOCHREALTIME
    line = raw.decode("utf-8", "replace")
    m = pat.search(line)
    if m and m.group(1) in topics and m.group(2).startswith(("bench-d-", "bench-rm-")):
        cid = m.group(2)
        # the exit of an exec carries its exec id: keyed "<container>/<exec id>", so the
        # exit of the init is never matched by an earlier exit of an exec
        e = exec_id.search(line, m.end()) if m.group(1) == "/tasks/exit" else None
        if e and e.group(1) != cid:
            cid = cid + "/" + e.group(1)
        out.write("%d\t%s\t%s\t.\n" % (now, m.group(1), cid))
        out.flush()
' <&"$fd" >>"$EVENTS" &
    EVENTS_PIDS+=($!)
    exec {fd}<&-
}
EVENTS_SEEN=0
declare -A EV=() # "topic id" -> arrival stamp (us)
# waits (bounded, $3 s) until event $1 of container $2 arrived; sets EV_STAMP (us)
wait_event() {
    local key="$1 $2" deadline=$((SECONDS + $3)) lines l stamp topic id
    while :; do
        if [[ -n "${EV[$key]:-}" ]]; then
            EV_STAMP="${EV[$key]}"
            return 0
        fi
        mapfile -t -s "$EVENTS_SEEN" lines <"$EVENTS"
        for l in "${lines[@]}"; do
            [[ "$l" == *$'\t.' ]] || break # a line still being written: read it next time
            EVENTS_SEEN=$((EVENTS_SEEN + 1))
            IFS=$'\t' read -r stamp topic id _ <<<"$l"
            EV["$topic $id"]="$stamp"
        done
        [[ -z "${EV[$key]:-}" ]] || continue
        ((SECONDS < deadline)) || return 1
        nap 0.002
    done
}

# ---- the floor: bare runc run of the bundle ctr would give the shim -----------------------
prepare_floor() {
    mkdir -p "$FLOOR_BUNDLE/rootfs" "$FLOOR_ROOT"
    # same image, same snapshotter, same spec generator as `ctr run IMAGE id true`
    ctr_ container create "$IMAGE" bench-floor true >/dev/null
    ctr_ container info --spec bench-floor >"$FLOOR_BUNDLE/config.json.in"
    local m
    m="$(ctr_ snapshots mounts "$FLOOR_BUNDLE/rootfs" bench-floor)"
    [[ "$m" == "mount -t overlay "* ]] || { log "unexpected snapshot mount command: $m"; return 1; }
    eval "$m"
    python3 - "$FLOOR_BUNDLE/config.json.in" "$FLOOR_BUNDLE/config.json" <<'EOF'
import json, sys
spec = json.load(open(sys.argv[1]))
spec["root"]["path"] = "rootfs"
spec["linux"]["cgroupsPath"] = "/default/bench-floor"  # what ctr gives a container "bench-floor"
json.dump(spec, open(sys.argv[2], "w"), indent=1)
EOF
}
floor_run() {
    local t0 t1 out id="bench-floor-$IT"
    t0="${EPOCHREALTIME/./}"
    if out="$(timeout -k 5 30 runc --root "$FLOOR_ROOT" run --bundle "$FLOOR_BUNDLE" "$id" </dev/null 2>&1 >/dev/null)"; then
        t1="${EPOCHREALTIME/./}"
        if [[ -z "${1:-}" ]]; then sample runc_run floor $((t1 - t0)); fi
    else
        berror "floor: runc run: $out"
        timeout -k 2 10 runc --root "$FLOOR_ROOT" delete -f "$id" >/dev/null 2>&1 || true
    fi
}

# the runc calls of a shim (create, start, wait, delete) from a subreaper, same bundle
floor_seq() {
    local out id="bench-fseq-$IT"
    if out="$(timeout -k 5 60 python3 "$REPO_DIR/integration/bench/runc_seq.py" --root "$FLOOR_ROOT" \
        --bundle "$FLOOR_BUNDLE" --id "$id" 2>&1)" && [[ "$out" =~ ^[0-9]+$ ]]; then
        if [[ -z "${1:-}" ]]; then sample runc_seq floor "$out"; fi
    else
        berror "floor: runc create/start/delete: $out"
    fi
}

# ---- the sections: each takes the shim (robust | reference) --------------------------------
bench_run_rm() {
    local shim="$1" id="bench-rm-$1-$IT" t0 t1 out
    t0="${EPOCHREALTIME/./}"
    if out="$(ctr_ run --rm --runtime "$(runtime_of "$shim")" "$IMAGE" "$id" true </dev/null 2>&1)"; then
        t1="${EPOCHREALTIME/./}"
        [[ -z "${2:-}" ]] || return 0
        sample run_rm "$shim" $((t1 - t0))
        # two of its phases, from the events' arrival at a subscriber
        local exited deleted
        if wait_event /containers/delete "$id" 10 && wait_event /tasks/exit "$id" 1 && exited="$EV_STAMP" &&
            wait_event /tasks/delete "$id" 1 && deleted="$EV_STAMP" && wait_event /containers/delete "$id" 1; then
            sample rm_delete "$shim" $((deleted - exited))
            sample rm_teardown "$shim" $((EV_STAMP - deleted))
        else
            berror "$shim: missing /tasks/exit, /tasks/delete or /containers/delete event of $id"
        fi
    else
        berror "$shim: ctr run --rm $id true: $out"
        remove_ids "$id"
    fi
}

# ctr run -d, the daemon's memory, SIGKILL to the init -> exit event, ctr task delete
bench_lifecycle() {
    local shim="$1" id="bench-d-$1-$IT" t0 t1 out pids init
    t0="${EPOCHREALTIME/./}"
    if ! out="$(ctr_ run -d --runtime "$(runtime_of "$shim")" "$IMAGE" "$id" sleep 3600 </dev/null 2>&1)"; then
        berror "$shim: ctr run -d $id: $out"
        remove_ids "$id"
        return 0
    fi
    t1="${EPOCHREALTIME/./}"
    sample run_d "$shim" $((t1 - t0))
    # its phases, from the events' arrival at a subscriber
    local c_create t_create
    if wait_event /tasks/start "$id" 10 && wait_event /containers/create "$id" 1 && c_create="$EV_STAMP" &&
        wait_event /tasks/create "$id" 1 && t_create="$EV_STAMP" && wait_event /tasks/start "$id" 1; then
        sample task_create "$shim" $((t_create - c_create))
        sample task_start "$shim" $((EV_STAMP - t_create))
    else
        berror "$shim: missing /containers/create, /tasks/create or /tasks/start event of $id"
    fi
    nap "$SETTLE"
    mapfile -t pids < <(shim_daemons "$(binary_of "$shim")")
    if ((${#pids[@]} != 1)); then
        berror "$shim: expected one shim daemon for one container, found ${#pids[@]} (${pids[*]})"
    elif mem_of "${pids[0]}"; then
        sample rss_1 "$shim" "$MEM_RSS"
        sample pss_1 "$shim" "$MEM_PSS"
        sample threads_1 "$shim" "$MEM_THREADS"
        # working set: pages the daemon touches serving an exec, a Stats and a State
        # (RSS also counts pages mapped at start-up and by the kernel's fault-around)
        local ws
        if echo 1 >"/proc/${pids[0]}/clear_refs" 2>/dev/null &&
            ctr_ task exec --exec-id "ws-$IT" "$id" true </dev/null >/dev/null 2>&1 &&
            ctr_ task metrics "$id" >/dev/null 2>&1 && ctr_ task ls >/dev/null 2>&1 &&
            ws="$(awk '$1 == "Referenced:" {print $2}' "/proc/${pids[0]}/smaps_rollup" 2>/dev/null)" &&
            [[ -n "$ws" ]]; then
            sample ws_1 "$shim" "$ws"
        else
            berror "$shim: could not measure the working set of shim ${pids[0]}"
        fi
    else
        berror "$shim: could not read the memory of shim ${pids[0]}"
    fi
    if ! init="$(init_pid_of "$id")"; then
        berror "$shim: no init.pid for $id"
        remove_ids "$id"
        return 0
    fi
    t0="${EPOCHREALTIME/./}"
    kill -KILL "$init"
    if wait_event /tasks/exit "$id" 20; then
        sample kill_exit "$shim" $((EV_STAMP - t0))
    else
        berror "$shim: no /tasks/exit event for $id within 20 s of SIGKILL to its init $init"
        remove_ids "$id"
        return 0
    fi
    t0="${EPOCHREALTIME/./}"
    if out="$(ctr_ task delete "$id" 2>&1)"; then
        t1="${EPOCHREALTIME/./}"
        sample task_delete "$shim" $((t1 - t0))
    else
        berror "$shim: ctr task delete $id: $out"
    fi
    remove_ids "$id"
}

# the shim's `start` action on its own, as containerd runs it (in a bundle dir, stdin closed,
# containerd's environment), from exec to exit; the daemon it leaves is then SIGKILLed
bench_start() {
    local shim="$1" id="bench-s-$1-$IT" dir bin t0 t1 rc=0 out pids p sock
    dir="$BENCH_DIR/start/$id"
    mkdir -p "$dir"
    cp "$START_CONFIG" "$dir/config.json"
    bin="$RUN_DIR/shim/$ROBUST_NAME"
    [[ "$shim" == robust ]] || bin="$RUN_DIR/bin/$REF_NAME"
    t0="${EPOCHREALTIME/./}"
    out="$(cd "$dir" && GOMAXPROCS=2 TTRPC_ADDRESS="$CONTAINERD_ADDRESS.ttrpc" timeout -k 1 10 "$bin" \
        -namespace "$NS" -address "$CONTAINERD_ADDRESS" -publish-binary "$(command -v containerd)" \
        -id "$id" start </dev/null 2>"$dir/stderr")" || rc=$?
    t1="${EPOCHREALTIME/./}"
    if ((rc == 0)) && [[ "$out" == *unix://* ]]; then
        sample shim_start "$shim" $((t1 - t0))
    else
        berror "$shim: shim start action exited $rc: $out $(tail -n 3 "$dir/stderr")"
    fi
    # the daemon it started serves nobody: end it, and remove its socket
    mapfile -t pids < <(shim_daemons "$(binary_of "$shim")")
    for p in "${pids[@]}"; do
        grep -qzx -- "$id" "/proc/$p/cmdline" 2>/dev/null && kill -KILL "$p" 2>/dev/null
    done
    sock="${out##*unix://}"
    sock="${sock%%\"*}"
    [[ "$sock" == /run/containerd/s/* && -S "$sock" ]] && rm -f "$sock"
    rm -rf "$dir"
}

# the shim's `delete` action, as containerd runs it after a shim died: containerd itself is
# SIGSTOPped meanwhile, or its own cleanup of the dead shim would race ours
bench_shim_delete() {
    local shim="$1" id="bench-x-$1-$IT" out pids spid bin bundle init t0 t1 rc deadline
    if ! out="$(ctr_ run -d --runtime "$(runtime_of "$shim")" "$IMAGE" "$id" sleep 3600 </dev/null 2>&1)"; then
        berror "$shim: ctr run -d $id: $out"
        remove_ids "$id"
        return 0
    fi
    mapfile -t pids < <(shim_daemons "$(binary_of "$shim")")
    bundle="$ROBUST_IT_STATE_DIR/io.containerd.runtime.v2.task/$NS/$id"
    if ((${#pids[@]} != 1)) || ! init="$(init_pid_of "$id")"; then
        berror "$shim: shim delete: expected one shim daemon (found ${#pids[@]}) and an init.pid"
        remove_ids "$id"
        return 0
    fi
    spid="${pids[0]}"
    bin="$(readlink -f "/proc/$spid/exe")"
    CTRD_STOPPED=1
    kill -STOP "$CTRD_PID"
    kill -KILL "$spid"
    deadline=$((SECONDS + 5))
    while [[ -e "/proc/$spid" ]] && ((SECONDS < deadline)); do nap 0.002; done
    t0="${EPOCHREALTIME/./}"
    rc=0
    out="$(cd "$bundle" && timeout -k 1 10 "$bin" -namespace "$NS" -address "$CONTAINERD_ADDRESS" \
        -id "$id" -bundle "$bundle" delete 2>&1 >/dev/null)" || rc=$?
    t1="${EPOCHREALTIME/./}"
    # is the container's init still there (not a zombie waiting for pid 1)?
    local state=""
    [[ -r "/proc/$init/stat" ]] && state="$(awk '{print $3}' "/proc/$init/stat" 2>/dev/null || true)"
    kill -CONT "$CTRD_PID"
    CTRD_STOPPED=0
    if ((rc != 0)); then
        berror "$shim: shim delete action exited $rc: $(tail -n 3 <<<"$out")"
    else
        sample shim_delete "$shim" $((t1 - t0))
        [[ -z "$state" || "$state" == Z ]] ||
            berror "$shim: the container's init ($init) still runs (state $state) after the shim delete action"
        # its warnings, without the time, for the notes of the report (counted there)
        local w
        while IFS= read -r w; do
            printf '#note\t%s: the shim delete action logged: %s\n' "$shim" "$w" >>"$SAMPLES"
        done < <(grep -iE 'level=(warning|error)' <<<"$out" | sed -E 's/^time="[^"]*" //; s/ time="[^"]*"//' | cut -c1-300)
    fi
    # containerd now notices the dead shim and runs its own cleanup: wait for it
    deadline=$((SECONDS + 15))
    while ctr_ task ls -q 2>/dev/null | grep -qxF "$id" && ((SECONDS < deadline)); do nap 0.05; done
    remove_ids "$id"
}

# a "pod" through ctr: containers annotated with one io.kubernetes.cri.sandbox-id, which both
# shims group into one daemon
bench_pod() {
    local shim="$1" pod="bench-p-$1-$IT" ids=() i id type out pids
    for ((i = 0; i < POD_SIZE; i++)); do
        if ((i == 0)); then id="$pod" type=sandbox; else id="$pod-c$i" type=container; fi
        ids+=("$id")
        if ! out="$(ctr_ run -d --runtime "$(runtime_of "$shim")" \
            --annotation "io.kubernetes.cri.sandbox-id=$pod" \
            --annotation "io.kubernetes.cri.container-type=$type" \
            "$IMAGE" "$id" sleep 3600 </dev/null 2>&1)"; then
            berror "$shim: pod: ctr run -d $id: $out"
            remove_ids "${ids[@]}"
            return 0
        fi
    done
    nap "$SETTLE"
    mapfile -t pids < <(shim_daemons "$(binary_of "$shim")")
    if ((${#pids[@]} != 1)); then
        berror "$shim: pod of $POD_SIZE: expected one shim daemon, found ${#pids[@]}"
    elif mem_of "${pids[0]}"; then
        sample rss_pod "$shim" "$MEM_RSS"
        sample pss_pod "$shim" "$MEM_PSS"
        sample threads_pod "$shim" "$MEM_THREADS"
    else
        berror "$shim: pod: could not read the memory of shim ${pids[0]}"
    fi
    # the containers, then the sandbox
    REMOVE_JOBS=4 remove_ids "${ids[@]:1}"
    remove_ids "$pod"
}

# $1 containers started at once; sets START_FAILED, START_US (wall time of the batch)
start_batch() {
    local shim="$1" prefix="$2" n="$3" i pids=() p t0 t1 errf="$BENCH_DIR/start.err"
    : >"$errf"
    START_FAILED=0
    t0="${EPOCHREALTIME/./}"
    for ((i = 1; i <= n; i++)); do
        ctr_ run -d --runtime "$(runtime_of "$shim")" "$IMAGE" "$prefix-$i" sleep 3600 \
            </dev/null >/dev/null 2>>"$errf" &
        pids+=($!)
        BG_PIDS+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || START_FAILED=$((START_FAILED + 1)); done
    t1="${EPOCHREALTIME/./}"
    BG_PIDS=()
    START_US=$((t1 - t0))
    ((START_FAILED == 0)) || berror "$shim: $START_FAILED of $n parallel starts failed: $(head -n 3 "$errf")"
}

bench_throughput() {
    local shim="$1" prefix="bench-t-$1-$IT" r ids=()
    start_batch "$shim" "$prefix" "$PARALLEL"
    if ((START_FAILED == 0)); then
        r=$((PARALLEL * 1000000000 / START_US)) # containers per 1000 s
        sample throughput "$shim" "$(printf '%d.%03d' $((r / 1000)) $((r % 1000)))"
    fi
    for ((r = 1; r <= PARALLEL; r++)); do ids+=("$prefix-$r"); done
    remove_ids "${ids[@]}"
}

# the shim's CPU time (utime + stime, in clock ticks) of pid $1, and its peak RSS (KiB);
# sets CPU_TICKS and HWM_KIB; fails if it is gone
cpu_of() {
    local stat rest
    stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
    rest="${stat##*) }" # fields from the 3rd on: state is the 1st of them
    read -r -a f <<<"$rest"
    CPU_TICKS=$((f[11] + f[12])) # utime (14th) and stime (15th)
    HWM_KIB="$(awk '$1 == "VmHWM:" {print $2}' "/proc/$1/status" 2>/dev/null)"
    [[ -n "$HWM_KIB" ]]
}

# one stdio pass: container $2 of shim $1 writes $3 MiB to stdout, then sleeps; `ctr run`
# copies it to a reader that takes exactly that many bytes, pausing $4 s after each read
# of up to 64 KiB (0: drains as fast as it can). The task still runs when the reader is
# done, so its daemon can be read; remove_ids ends it. Sets STDIO_US (wall time from the
# `ctr run` to the last byte) and STDIO_DAEMON; fails, with a berror, if a byte is missing.
stdio_pass() {
    local shim="$1" id="$2" want=$(($3 * 1048576)) got t0 t1 ctr_pid pids
    t0="${EPOCHREALTIME/./}"
    got="$(python3 -c '
import sys, time
want, pause = int(sys.argv[1]), float(sys.argv[2])
r, n = sys.stdin.buffer, 0
while n < want:
    b = r.read1(min(65536, want - n))
    if not b:
        break
    n += len(b)
    if pause:
        time.sleep(pause)
print(n)
' "$want" "$4" < <(exec timeout -k 5 300 ctr --address "$CONTAINERD_ADDRESS" -n "$NS" run --rm \
        --runtime "$(runtime_of "$shim")" "$IMAGE" "$id" \
        sh -c "dd if=/dev/zero bs=1048576 count=$3 2>/dev/null; exec sleep 3600" </dev/null 2>/dev/null))"
    ctr_pid=$!
    t1="${EPOCHREALTIME/./}"
    STDIO_US=$((t1 - t0))
    mapfile -t pids < <(shim_daemons "$(binary_of "$shim")")
    STDIO_DAEMON="${pids[0]:-}"
    local ok=0
    if [[ "$got" != "$want" ]]; then
        berror "$shim: the reader of $id got ${got:-nothing} bytes, not $want"
    elif ((${#pids[@]} != 1)); then
        berror "$shim: expected one shim daemon for $id, found ${#pids[@]} (${pids[*]})"
    elif ! cpu_of "$STDIO_DAEMON"; then
        berror "$shim: could not read the CPU time of shim daemon $STDIO_DAEMON of $id"
    else
        ok=1
    fi
    remove_ids "$id"
    kill "$ctr_pid" 2>/dev/null || true
    wait "$ctr_pid" 2>/dev/null || true
    ((ok))
}

# stdio: a container writes $STDIO_MIB MiB to stdout through the shim to `ctr run`, read as
# fast as a reader can; then $SLOW_MIB MiB read slowly (64 KiB, then 8 ms: about 8 MB/s).
bench_stdio() {
    local shim="$1"
    if stdio_pass "$shim" "bench-s-$shim-$IT" "$STDIO_MIB" 0; then
        # ms of CPU per GiB, and MB/s (10^6 bytes per s) from `ctr run` to the last byte
        sample stdio_cpu "$shim" $((CPU_TICKS * 1000 * 1024 / CLK_TCK / STDIO_MIB))
        sample stdio_mbps "$shim" $((STDIO_MIB * 1048576 / STDIO_US))
        sample stdio_hwm "$shim" "$HWM_KIB"
    fi
    if stdio_pass "$shim" "bench-sl-$shim-$IT" "$SLOW_MIB" 0.008; then
        sample stdio_slow_hwm "$shim" "$HWM_KIB"
    fi
}

bench_many() {
    local shim="$1" prefix="bench-m-$1-$IT" i b ids=() batch
    # started 4 at a time: the sum of memory is what counts here, not the start time
    for ((i = 1; i <= MANY; i += 4)); do
        batch=$((MANY - i + 1))
        ((batch > 4)) && batch=4
        start_batch "$shim" "$prefix-$i" "$batch"
    done
    nap "$SETTLE"
    mem_sum "$(binary_of "$shim")"
    if ((SUM_N != MANY)); then
        berror "$shim: $MANY containers: found $SUM_N shim daemons, expected $MANY (one each)"
    else
        sample rss_many "$shim" "$SUM_RSS"
        sample pss_many "$shim" "$SUM_PSS"
        sample threads_many "$shim" "$SUM_THREADS"
    fi
    for ((i = 1; i <= MANY; i += 4)); do
        batch=$((MANY - i + 1))
        ((batch > 4)) && batch=4
        for ((b = 1; b <= batch; b++)); do ids+=("$prefix-$i-$b"); done
    done
    remove_ids "${ids[@]}"
}

bench_cri() {
    local shim="$1" out err="$BENCH_DIR/cri.err"
    [[ -n "$CRI_PY" ]] || return 0
    if out="$(timeout -k 5 180 "$CRI_PY" "$REPO_DIR/integration/bench/cri.py" --address "$CONTAINERD_ADDRESS" \
        --handler "$(handler_of "$shim")" --name "bench-cri-$shim-$IT" --image "$IMAGE" 2>"$err")"; then
        local a b
        read -r a b <<<"$out"
        if [[ -z "${2:-}" && "$a" =~ ^[0-9]+$ && "$b" =~ ^[0-9]+$ ]]; then
            sample cri_pod "$shim" "$a"
            sample cri_running "$shim" "$b"
        fi
    else
        berror "$shim: CRI pod: $(tail -n 3 "$err")"
    fi
}

# a python3 with the grpc module for the CRI rows (Debian: python3-grpcio), installed with
# apt-get when it is missing
find_cri_python() {
    local py
    for py in python3 /usr/bin/python3; do
        if command -v "$py" >/dev/null && "$py" -c 'import grpc' 2>/dev/null; then
            command -v "$py"
            return 0
        fi
    done
    if [[ "${BENCH_NO_INSTALL:-0}" != 1 && "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
        log "installing python3-grpcio (apt-get) for the CRI rows"
        export DEBIAN_FRONTEND=noninteractive
        { apt-get install -y -qq python3-grpcio || { apt-get update -qq && apt-get install -y -qq python3-grpcio; }; } \
            >"$BENCH_DIR/apt.log" 2>&1 || true
        if /usr/bin/python3 -c 'import grpc' 2>/dev/null; then
            echo /usr/bin/python3
            return 0
        fi
    fi
    return 1
}

# ---- main ---------------------------------------------------------------------------------
wanted() { [[ " $ONLY " == *" $1 "* ]]; }
for s in $ONLY; do
    [[ " ${SECTIONS[*]} " == *" $s "* ]] || { log "no section '$s' (have: ${SECTIONS[*]})"; exit 2; }
done

STARTED_AT=$SECONDS
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"
log "isolated containerd in $RUN_DIR (bridge $ROBUST_IT_BRIDGE, $ROBUST_IT_SUBNET)"
bash "$CS" clean >/dev/null 2>&1 || true # a leftover instance of an interrupted run
mkdir -p "$RUN_DIR/shim" "$RUN_DIR/bin" "$BENCH_DIR"
cp "$SHIM_SRC" "$RUN_DIR/shim/$ROBUST_NAME"
cp "$REF_SRC" "$RUN_DIR/bin/$REF_NAME" # first on containerd's PATH: this copy is what runs
export ROBUST_IT_SHIM_BIN="$RUN_DIR/shim/$ROBUST_NAME"
exec {NAP_FD}<> <(:)
: >"$SAMPLES"

bash "$CS" start
eval "$(bash "$CS" env)"
IMAGE="$ROBUST_IT_IMAGE"
CTRD_PID="$(cat "$RUN_DIR/containerd.pid")"
[[ "$(tr '\0' ' ' <"/proc/$CTRD_PID/cmdline")" == *"--config $RUN_DIR/config.toml"* ]] ||
    { log "containerd pid $CTRD_PID is not ours"; exit 1; }
start_event_stamper

CRI_PY=""
if wanted cri; then
    if CRI_PY="$(find_cri_python)"; then
        log "CRI through $CRI_PY (grpc module)"
    else
        CRI_PY=""
        printf '#skip\tcri_pod\tno python3 with the grpc module (Debian: python3-grpcio)\n' >>"$SAMPLES"
        printf '#skip\tcri_running\tno python3 with the grpc module (Debian: python3-grpcio)\n' >>"$SAMPLES"
        log "CRI rows not measured: no python3 with the grpc module (apt-get install python3-grpcio)"
    fi
fi
for s in "${SECTIONS[@]}"; do
    wanted "$s" && continue
    case "$s" in
    run_rm) metrics="run_rm rm_delete rm_teardown runc_run runc_seq" ;;
    lifecycle) metrics="run_d task_create task_start rss_1 pss_1 threads_1 ws_1 kill_exit task_delete" ;;
    start) metrics="shim_start" ;;
    shim_delete) metrics="shim_delete" ;;
    pod) metrics="rss_pod pss_pod threads_pod" ;;
    throughput) metrics="throughput" ;;
    cri) metrics="cri_pod cri_running" ;;
    stdio) metrics="stdio_cpu stdio_mbps stdio_hwm stdio_slow_hwm" ;;
    many) metrics="rss_many pss_many threads_many" ;;
    esac
    for m in $metrics; do printf '#skip\t%s\tsection %s left out (BENCH_ONLY)\n' "$m" "$s" >>"$SAMPLES"; done
done

if wanted run_rm; then prepare_floor; fi
# the config.json a shim `start` reads (for the group annotation): the one ctr generates
START_CONFIG="$BENCH_DIR/start.json"
if wanted start; then
    ctr_ container create "$IMAGE" bench-start-spec true >/dev/null
    ctr_ container info --spec bench-start-spec >"$START_CONFIG"
    ctr_ container delete bench-start-spec >/dev/null
fi

# warm-up, not recorded: page cache, the first shim start, the first pod
log "warm-up"
for shim in robust reference; do
    wanted run_rm && bench_run_rm "$shim" warmup
    wanted cri && bench_cri "$shim" warmup
done
wanted run_rm && floor_run warmup && floor_seq warmup

log "$RUNS iterations (the ${MANY}-container rows in the first $MANY_RUNS, the stdio rows in the first $STDIO_RUNS), both shims each, alternating which goes first"
for ((IT = 1; IT <= RUNS; IT++)); do
    if ((IT % 2)); then order=(robust reference); else order=(reference robust); fi
    log "iteration $IT/$RUNS (${order[0]} first; $((SECONDS - STARTED_AT)) s so far)"
    if wanted run_rm; then
        bench_run_rm "${order[0]}"
        floor_run
        floor_seq
        bench_run_rm "${order[1]}"
    fi
    for s in lifecycle start shim_delete pod throughput cri stdio many; do
        wanted "$s" || continue
        [[ "$s" == many ]] && ((IT > MANY_RUNS)) && continue
        [[ "$s" == stdio ]] && ((IT > STDIO_RUNS)) && continue
        for shim in "${order[@]}"; do "bench_$s" "$shim"; done
    done
done
IT=0
DURATION=$((SECONDS - STARTED_AT))

# ---- the report ---------------------------------------------------------------------------
mkdir -p "$RESULTS_DIR"
OUT="$RESULTS_DIR/bench-$STAMP"
META="$BENCH_DIR/meta.md"
ver_line() { "$1" -v 2>/dev/null | awk -v k="$2" '$1 == k":" {print $2; exit}'; }
git_rev="$(git -C "$REPO_DIR" rev-parse --short HEAD 2>/dev/null || echo unknown)"
# "static, not PIE" / "dynamic, PIE" ... of an ELF binary (readelf, from binutils)
linkage() {
    local h
    h="$(readelf -lh "$1" 2>/dev/null)" || { echo "linkage unknown"; return; }
    local kind="static" pie="not PIE"
    grep -q 'INTERP' <<<"$h" && kind="dynamic"
    grep -q 'Type:[[:space:]]*DYN' <<<"$h" && pie="PIE"
    echo "$kind, $pie"
}

[[ -z "$(git -C "$REPO_DIR" status --porcelain -- crates Cargo.toml Cargo.lock 2>/dev/null)" ]] || git_rev+=" + uncommitted changes"
{
    echo "# robust-shim benchmark, $STAMP"
    echo
    echo "| | |"
    echo "| --- | --- |"
    echo "| machine | \`$(uname -srvmo)\` |"
    echo "| cores | $(nproc) ($(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)) |"
    echo "| memory | $(awk '/^MemTotal:/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) |"
    echo "| load average (1/5/15 min) | at start $LOAD_START, at end $(cut -d' ' -f1-3 /proc/loadavg) |"
    echo "| containerd | $(containerd --version | awk '{print $3}') (isolated instance in \`$RUN_DIR\`, snapshotter overlayfs) |"
    echo "| runc | $(runc --version | awk 'NR == 1 {print $3}') |"
    echo "| robust shim | $ROBUST_NAME $(ver_line "$ROBUST_IT_SHIM_BIN" Version), git $git_rev, $(stat -c %s "$ROBUST_IT_SHIM_BIN") bytes, $(linkage "$ROBUST_IT_SHIM_BIN"), sha256 $(sha256sum "$ROBUST_IT_SHIM_BIN" | cut -c1-16) |"
    echo "| reference shim | $REF_NAME $(ver_line "$REF_SRC" Version) ($(ver_line "$REF_SRC" Revision)), copy of \`$REF_SRC\`, $(stat -c %s "$REF_SRC") bytes, $(linkage "$REF_SRC"), sha256 $(sha256sum "$REF_SRC" | cut -c1-16) |"
    echo "| runs | $RUNS per shim per row, interleaved (each iteration measures both, alternating which goes first); the ${MANY}-container rows: $MANY_RUNS; the stdio rows: $STDIO_RUNS ($STDIO_MIB MiB, slow reader $SLOW_MIB MiB); pod of $POD_SIZE; $PARALLEL in parallel; memory read ${SETTLE} s after start |"
    echo "| duration | ${DURATION} s of measuring |"
    echo "| command | \`make bench\` (BENCH_RUNS=$RUNS BENCH_MANY=$MANY BENCH_MANY_RUNS=$MANY_RUNS BENCH_ONLY=\"$ONLY\") |"
} >"$META"
printf '#param\tmany\t%s\n#param\tparallel\t%s\n#param\tslow\t%s\n#param\ttitle\trobust-shim / containerd-shim-runc-v2, %s\n' \
    "$MANY" "$PARALLEL" "$SLOW_MIB" "$STAMP" >>"$SAMPLES"
cp "$SAMPLES" "$OUT.tsv"
echo
python3 "$REPO_DIR/integration/bench/report.py" "$SAMPLES" "$META" "$OUT.md" "$OUT.svg"
echo
log "wrote $OUT.md, $OUT.svg and the raw samples $OUT.tsv (${DURATION} s of measuring)"
