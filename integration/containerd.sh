#!/usr/bin/env bash
# An isolated containerd for the integration suite and the demo.
#
#   integration/containerd.sh start   write the config, start containerd in the background,
#                                     wait until it (and CRI) answers, import the images
#   integration/containerd.sh stop    kill+delete what runs in it, stop it (by its pid only)
#   integration/containerd.sh env     print shell exports for the tests: eval "$(... env)"
#   integration/containerd.sh status  say whether it runs
#   integration/containerd.sh clean   stop, then remove the whole run dir
#
# It never touches the system containerd nor /run/containerd/containerd.sock.
# Knobs (environment): ROBUST_IT_RUN_DIR (default /run/robust-it; keep it short: socket
# paths), ROBUST_IT_IMAGES_DIR (default .work/images), ROBUST_IT_SHIM_BIN (default
# target/release/containerd-shim-robust-v2), ROBUST_IT_BRIDGE (robust0),
# ROBUST_IT_SUBNET (10.244.77.0/24), ROBUST_IT_LOG_LEVEL (info),
# ROBUST_IT_CONTAINERD (1.6: bookworm's own; 1.7 or 2.1: the release fetched by
# integration/versions.sh), ROBUST_IT_RUNSC (2022: bookworm's own; 2024: fetched).
# The runtime tables of the config come from runtime-config/containerd-1.x.toml (config
# version 2) or containerd-2.x.toml (version 3): the snippets users copy are the ones run.
set -euo pipefail

REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN_DIR="${ROBUST_IT_RUN_DIR:-/run/robust-it}"
IMAGES_DIR="${ROBUST_IT_IMAGES_DIR:-$REPO_DIR/.work/images}"
SHIM_BIN="${ROBUST_IT_SHIM_BIN:-$REPO_DIR/target/release/containerd-shim-robust-v2}"
BRIDGE="${ROBUST_IT_BRIDGE:-robust0}"
SUBNET="${ROBUST_IT_SUBNET:-10.244.77.0/24}"
LOG_LEVEL="${ROBUST_IT_LOG_LEVEL:-info}"
CONTAINERD_VERSION="${ROBUST_IT_CONTAINERD:-1.6}"
RUNSC_RELEASE="${ROBUST_IT_RUNSC:-2022}"

ADDRESS="$RUN_DIR/c.sock"
TTRPC_ADDRESS="$RUN_DIR/c.sock.ttrpc"
ROOT_DIR="$RUN_DIR/root"
STATE_DIR="$RUN_DIR/state"
BIN_DIR="$RUN_DIR/bin"
CNI_CONF_DIR="$RUN_DIR/cni/net.d"
CNI_DATA_DIR="$RUN_DIR/cni/ipam"
CNI_BIN_DIR="${ROBUST_IT_CNI_BIN_DIR:-/usr/lib/cni}"
CONFIG="$RUN_DIR/config.toml"
RUNTIME_CONFIG="$RUN_DIR/robust.toml"
RUNSC_CONFIG="$RUN_DIR/runsc.toml"
PID_FILE="$RUN_DIR/containerd.pid"
LOG_FILE="$RUN_DIR/containerd.log"

BUSYBOX_IMAGE="docker.io/library/busybox:robust"
PAUSE_IMAGE="localhost/robust/pause:1"
NAMESPACES=(default k8s.io)

START_TIMEOUT="${ROBUST_IT_START_TIMEOUT:-60}"   # seconds until containerd + CRI answer
STOP_TIMEOUT="${ROBUST_IT_STOP_TIMEOUT:-15}"     # seconds between SIGTERM and SIGKILL

log() { echo "containerd.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

# The bin dir of the containerd release asked for: empty for bookworm's own (on PATH).
case "$CONTAINERD_VERSION" in
1.6) CTRD_BIN="" ;;
1.7 | 2.1) CTRD_BIN="$(bash "$REPO_DIR/integration/versions.sh" bin "containerd-$CONTAINERD_VERSION")" ||
    die "containerd $CONTAINERD_VERSION is not fetched: run integration/versions.sh fetch" ;;
*) die "ROBUST_IT_CONTAINERD=$CONTAINERD_VERSION: expected 1.6, 1.7 or 2.1" ;;
esac
case "$RUNSC_RELEASE" in
2022) RUNSC_BIN="$(command -v runsc || true)" ;;
2024) RUNSC_BIN="$(bash "$REPO_DIR/integration/versions.sh" bin runsc-2024)/runsc" ||
    die "runsc 2024 is not fetched: run integration/versions.sh fetch" ;;
*) die "ROBUST_IT_RUNSC=$RUNSC_RELEASE: expected 2022 or 2024" ;;
esac
CONTAINERD="${CTRD_BIN:+$CTRD_BIN/}containerd"
CTR="${CTRD_BIN:+$CTRD_BIN/}ctr"
# config version 3 from containerd 2.0 on
CONFIG_VERSION=2
[[ "$CONTAINERD_VERSION" == 2.* ]] && CONFIG_VERSION=3

# Every ctr call is bounded: a hung containerd must not hang the harness.
ctr_() { timeout -k 5 "${CTR_TIMEOUT:-30}" "$CTR" --address "$ADDRESS" "$@"; }

# The pid from the pid file, if that process is our containerd (never a recycled pid).
our_pid() {
    [[ -f "$PID_FILE" ]] || return 1
    local pid
    pid="$(cat "$PID_FILE" 2>/dev/null)" || return 1
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    [[ -r "/proc/$pid/cmdline" ]] || return 1
    local cmd
    cmd="$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline")" || return 1
    [[ "$cmd" == *containerd*"--config $CONFIG"* ]] || return 1
    echo "$pid"
}

write_config() {
    mkdir -p "$RUN_DIR" "$ROOT_DIR" "$STATE_DIR" "$BIN_DIR" "$CNI_CONF_DIR" "$CNI_DATA_DIR" \
        "$RUN_DIR/opt"
    # containerd resolves io.containerd.robust.v2 as containerd-shim-robust-v2 on its PATH.
    ln -sfn "$SHIM_BIN" "$BIN_DIR/containerd-shim-robust-v2"
    [[ -e "$RUNTIME_CONFIG" ]] || : >"$RUNTIME_CONFIG"
    # the gvisor handler's config: the shipped runsc.toml (platform ptrace, network none)
    cp "$REPO_DIR/runtime-config/runsc.toml" "$RUNSC_CONFIG"

    cat >"$CNI_CONF_DIR/10-robust.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "robust-it",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": false,
      "ipam": {
        "type": "host-local",
        "dataDir": "$CNI_DATA_DIR",
        "ranges": [[{"subnet": "$SUBNET"}]]
      }
    },
    {"type": "loopback"}
  ]
}
EOF

    if ((CONFIG_VERSION == 3)); then base_config_v3; else base_config_v2; fi >"$CONFIG"
    runtime_tables >>"$CONFIG"
    # the runsc release asked for, first on containerd's PATH (and the tests')
    if [[ "$RUNSC_RELEASE" == 2022 ]]; then rm -f "$BIN_DIR/runsc"; else ln -sfn "$RUNSC_BIN" "$BIN_DIR/runsc"; fi
}

# The part of the config that config versions 2 and 3 share.
config_head() { # config_head VERSION
    cat <<EOF
# generated by integration/containerd.sh: an isolated containerd $CONTAINERD_VERSION for robust-shim's tests
version = $1
root = "$ROOT_DIR"
state = "$STATE_DIR"
oom_score = 0
imports = []

[grpc]
  address = "$ADDRESS"

[ttrpc]
  address = "$TTRPC_ADDRESS"

[debug]
  address = ""
  level = "$LOG_LEVEL"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "$RUN_DIR/opt"

EOF
}

base_config_v2() {
    config_head 2
    cat <<EOF
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  disable_tcp_service = true
  enable_selinux = false
  disable_apparmor = true
  netns_mounts_under_state_dir = true

[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = "$CNI_BIN_DIR"
  conf_dir = "$CNI_CONF_DIR"
  max_conf_num = 1

[plugins."io.containerd.grpc.v1.cri".containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

# the reference: the containerd-shim-runc-v2 of this containerd release
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
EOF
}

base_config_v3() {
    config_head 3
    cat <<EOF
[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"

[plugins."io.containerd.cri.v1.images".pinned_images]
  sandbox = "$PAUSE_IMAGE"

[plugins."io.containerd.cri.v1.runtime"]
  restrict_oom_score_adj = true
  enable_selinux = false
  disable_apparmor = true
  netns_mounts_under_state_dir = true

[plugins."io.containerd.cri.v1.runtime".cni]
  bin_dirs = ["$CNI_BIN_DIR"]
  conf_dir = "$CNI_CONF_DIR"
  max_conf_num = 1

[plugins."io.containerd.cri.v1.runtime".containerd]
  default_runtime_name = "runc"

# the reference: the containerd-shim-runc-v2 of this containerd release
[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  disable_tcp_service = true
EOF
}

# Our handlers, taken from the snippet users copy (runtime-config/containerd-<1|2>.x.toml)
# with this instance's paths: robust (by its own name), gvisor (runsc through the same
# shim) and, where runtime_path works, robust-runc (as io.containerd.runc.v2 + runtime_path).
runtime_tables() {
    local snippet="$REPO_DIR/runtime-config/containerd-1.x.toml"
    ((CONFIG_VERSION == 3)) && snippet="$REPO_DIR/runtime-config/containerd-2.x.toml"
    [[ -f "$snippet" ]] || die "missing $snippet"
    echo
    echo "# from runtime-config/$(basename "$snippet"), with the paths of this instance"
    local drop="__none__"
    runtime_path_works || drop="runtimes.$RUNTIME_PATH_HANDLER"
    awk -v drop="$drop" '
        /^[[:space:]]*#/ || /^version[[:space:]]*=/ { next }
        /^\[/ { skip = index($0, drop) > 0 }
        !skip { print }' "$snippet" |
        sed -e "s|\"/etc/containerd/robust.toml\"|\"$RUNTIME_CONFIG\"|" \
            -e "s|\"/etc/containerd/runsc.toml\"|\"$RUNSC_CONFIG\"|" \
            -e "s|\"/usr/local/bin/containerd-shim-robust-v2\"|\"$BIN_DIR/containerd-shim-robust-v2\"|"
}

# CRI's runtime_path is parsed by containerd 1.6 (1.6.20 here) but not used when it
# starts a task: the pod runs containerd-shim-runc-v2 anyway (containerd issue 8207, fixed
# upstream by PR 8208 in the 1.7 line). Offer the runtime_path handler only from 1.7 on.
RUNTIME_PATH_HANDLER=robust-runc
runtime_path_works() {
    local v
    v="$("$CONTAINERD" --version 2>/dev/null | awk '{print $3}')"
    v="${v#v}"
    local major="${v%%.*}" rest="${v#*.}"
    local minor="${rest%%.*}"
    [[ "$major" =~ ^[0-9]+$ && "$minor" =~ ^[0-9]+$ ]] || return 1
    ((major > 1 || (major == 1 && minor >= 7)))
}

wait_until() { # wait_until SECONDS DESCRIPTION COMMAND...
    local limit="$1" what="$2"; shift 2
    local deadline=$((SECONDS + limit))
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            log "timed out after ${limit}s waiting for: $what"
            return 1
        fi
        if ! our_pid >/dev/null; then
            log "containerd exited while waiting for: $what"
            return 1
        fi
        sleep 0.2
    done
}

cri_ok() { CTR_TIMEOUT=5 ctr_ plugins ls 2>/dev/null | awk '$1=="io.containerd.grpc.v1" && $2=="cri" && $4=="ok" {f=1} END {exit !f}'; }

import_images() {
    local tar ns
    for tar in "$IMAGES_DIR/busybox.tar" "$IMAGES_DIR/pause.tar"; do
        [[ -f "$tar" ]] || die "missing image tar $tar: run 'make image' (python3 integration/mkimage.py $IMAGES_DIR)"
        for ns in "${NAMESPACES[@]}"; do
            ctr_ -n "$ns" images import --snapshotter overlayfs "$tar" >/dev/null ||
                die "ctr -n $ns images import $tar failed"
        done
    done
    for ns in "${NAMESPACES[@]}"; do
        ctr_ -n "$ns" images check "name==$BUSYBOX_IMAGE" >/dev/null
    done
    log "images $BUSYBOX_IMAGE and $PAUSE_IMAGE imported into: ${NAMESPACES[*]}"
}

start() {
    command -v "$CONTAINERD" >/dev/null || die "$CONTAINERD is not installed (make deps; integration/versions.sh fetch)"
    command -v "$CTR" >/dev/null || die "$CTR is not installed (make deps; integration/versions.sh fetch)"
    [[ "$RUNSC_RELEASE" == 2022 || -x "$RUNSC_BIN" ]] || die "runsc $RUNSC_RELEASE missing at $RUNSC_BIN"
    if pid="$(our_pid)"; then
        log "already running (pid $pid, address $ADDRESS)"
        ln -sfn "$SHIM_BIN" "$BIN_DIR/containerd-shim-robust-v2"
        import_images
        return 0
    fi
    [[ -x "$SHIM_BIN" ]] || log "warning: $SHIM_BIN is missing: io.containerd.robust.v2 will not resolve (make build)"
    write_config
    rm -f "$ADDRESS" "$TTRPC_ADDRESS"
    echo "---- $(date -u +%FT%TZ) start" >>"$LOG_FILE"
    # The subshell is not a process-group leader (no job control), so setsid does not
    # fork: $! is containerd's own pid after the exec.
    (
        export PATH="$BIN_DIR:${CTRD_BIN:+$CTRD_BIN:}$PATH"
        exec setsid "$CONTAINERD" --config "$CONFIG" </dev/null >>"$LOG_FILE" 2>&1
    ) &
    local pid=$!
    echo "$pid" >"$PID_FILE"
    if ! wait_until "$START_TIMEOUT" "containerd at $ADDRESS" ctr_ version; then
        tail -n 30 "$LOG_FILE" >&2 || true
        stop || true
        die "containerd did not come up (log: $LOG_FILE)"
    fi
    if ! wait_until "$START_TIMEOUT" "the CRI plugin (io.containerd.grpc.v1.cri ok)" cri_ok; then
        ctr_ plugins ls >&2 || true
        grep -iE 'level=(error|fatal)' "$LOG_FILE" | tail -n 20 >&2 || true
        stop || true
        die "the CRI plugin did not start (log: $LOG_FILE)"
    fi
    log "containerd $(ctr_ version 2>/dev/null | awk '/Server:/ {s=1} s && /Version:/ {print $2; exit}') running: pid $pid, address $ADDRESS, log $LOG_FILE"
    import_images
}

# Kill and delete every task and container this containerd holds (bounded).
cleanup_tasks() {
    local ns t c err
    for ns in $(CTR_TIMEOUT=10 ctr_ namespaces ls -q 2>/dev/null); do
        for t in $(CTR_TIMEOUT=10 ctr_ -n "$ns" tasks ls -q 2>/dev/null); do
            CTR_TIMEOUT=10 ctr_ -n "$ns" tasks kill -a -s SIGKILL "$t" >/dev/null 2>&1 || true
        done
        for t in $(CTR_TIMEOUT=10 ctr_ -n "$ns" tasks ls -q 2>/dev/null); do
            if ! err="$(CTR_TIMEOUT=15 ctr_ -n "$ns" tasks delete -f "$t" 2>&1 >/dev/null)"; then
                # a task whose shim is gone may need a second go once containerd noticed
                sleep 0.5
                err="$(CTR_TIMEOUT=15 ctr_ -n "$ns" tasks delete -f "$t" 2>&1 >/dev/null)" ||
                    log "could not delete task $ns/$t: ${err:-timed out}"
            fi
        done
        for c in $(CTR_TIMEOUT=10 ctr_ -n "$ns" containers ls -q 2>/dev/null); do
            err="$(CTR_TIMEOUT=15 ctr_ -n "$ns" containers delete "$c" 2>&1 >/dev/null)" ||
                log "could not delete container $ns/$c: ${err:-timed out}"
        done
    done
}

# Shim processes started by this containerd (their command line names our address).
our_shims() {
    local d cmd
    for d in /proc/[0-9]*; do
        cmd="$(tr '\0' ' ' 2>/dev/null <"$d/cmdline")" || continue
        [[ "$cmd" == *containerd-shim* && "$cmd" == *"-address $ADDRESS "* ]] && echo "${d#/proc/}"
    done
    return 0
}

stop() {
    local pid
    if ! pid="$(our_pid)"; then
        log "not running"
        rm -f "$PID_FILE"
        return 0
    fi
    if CTR_TIMEOUT=5 ctr_ version >/dev/null 2>&1; then
        cleanup_tasks
    fi
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + STOP_TIMEOUT))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        log "containerd (pid $pid) ignored SIGTERM for ${STOP_TIMEOUT}s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        deadline=$((SECONDS + 5))
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    fi
    rm -f "$PID_FILE"
    # shims of this containerd still there: one that runs nothing (no child process)
    # serves nobody now, so end it (by its pid); one with children is reported only
    local s kids left=""
    for s in $(our_shims); do
        kids="$(cat /proc/"$s"/task/*/children 2>/dev/null | tr -s ' \n' ' ')"
        if [[ -z "${kids// /}" ]]; then
            log "ending shim $s (runs nothing): $(tr '\0' ' ' 2>/dev/null <"/proc/$s/cmdline" | cut -c1-160)"
            kill -KILL "$s" 2>/dev/null || true
        else
            left+="$s "
        fi
    done
    [[ -z "$left" ]] || log "shim processes still running (with children) after stop: $left"
    log "stopped (pid $pid)"
}

clean() {
    stop
    local pids
    pids="$(our_shims | tr '\n' ' ')"
    if [[ -n "$pids" ]]; then
        log "killing leftover shims of this containerd: $pids"
        # shellcheck disable=SC2086
        kill -KILL $pids 2>/dev/null || true
    fi
    # unmount anything still mounted below the run dir, deepest first
    local m
    for m in $(awk -v d="$RUN_DIR/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort -r); do
        umount -l "$m" 2>/dev/null || true
    done
    rm -rf --one-file-system "$RUN_DIR"
    log "removed $RUN_DIR"
    # the CNI bridge is ours by its private name
    if command -v ip >/dev/null && ip link show "$BRIDGE" >/dev/null 2>&1; then
        ip link delete "$BRIDGE" && log "removed bridge $BRIDGE"
    fi
}

print_env() {
    cat <<EOF
export CONTAINERD_ADDRESS='$ADDRESS'
export ROBUST_IT_RUN_DIR='$RUN_DIR'
export ROBUST_IT_ROOT_DIR='$ROOT_DIR'
export ROBUST_IT_STATE_DIR='$STATE_DIR'
export ROBUST_IT_RUNTIME_CONFIG='$RUNTIME_CONFIG'
export ROBUST_IT_SHIM_BIN='$SHIM_BIN'
export ROBUST_IT_IMAGE='$BUSYBOX_IMAGE'
export ROBUST_IT_PAUSE_IMAGE='$PAUSE_IMAGE'
export ROBUST_IT_SUBNET='$SUBNET'
export ROBUST_IT_LOG='$LOG_FILE'
export ROBUST_IT_CONTAINERD='$CONTAINERD_VERSION'
export ROBUST_IT_RUNSC='$RUNSC_RELEASE'
export PATH='$BIN_DIR:${CTRD_BIN:+$CTRD_BIN:}$PATH'
EOF
    if runtime_path_works; then
        echo "export ROBUST_IT_RUNTIME_PATH_HANDLER='$RUNTIME_PATH_HANDLER'"
    else
        echo "unset ROBUST_IT_RUNTIME_PATH_HANDLER"
    fi
}

case "${1:-}" in
start) start ;;
stop) stop ;;
env) print_env ;;
status)
    if pid="$(our_pid)"; then echo "running: pid $pid, address $ADDRESS"; else echo "not running"; exit 1; fi ;;
clean) clean ;;
*) echo "usage: $0 start|stop|env|status|clean" >&2; exit 2 ;;
esac
