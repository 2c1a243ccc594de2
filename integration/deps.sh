#!/usr/bin/env bash
# make deps: install (Debian bookworm, as root) only what is missing for the build, the
# demo and the integration suite. Checks by command / file presence; runs
# `apt-get update` once, only when something is missing.
set -euo pipefail

log() { echo "deps: $*" >&2; }

if ! command -v cargo >/dev/null 2>&1; then
    log "error: cargo is not installed (or not on PATH). Install Rust first, e.g. with rustup."
    exit 1
fi

missing=()
need() { # need PACKAGE CHECK...   (CHECK: a command name, or an absolute path)
    local pkg="$1" c
    shift
    for c in "$@"; do
        if [[ "$c" == /* ]]; then
            [[ -e "$c" ]] || { missing+=("$pkg"); return 0; }
        else
            command -v "$c" >/dev/null 2>&1 || { missing+=("$pkg"); return 0; }
        fi
    done
}

need containerd containerd ctr containerd-shim-runc-v2
need runc runc
need runsc runsc # gVisor: the runsc driver and its tests
need bsdutils script # the tty cases give ctr a terminal with script(1)
need procps pgrep ps
need containernetworking-plugins /usr/lib/cni/bridge /usr/lib/cni/host-local /usr/lib/cni/loopback
need iproute2 ip ss
need psmisc fuser
need python3 python3 # integration/mkimage.py
need protobuf-compiler protoc # containerd-client and k8s-cri generate their gRPC code with it
need coreutils timeout
need util-linux setsid
need gcc cc # the linker cargo uses
# the image rootfs needs a static busybox (the dynamic `busybox` package would not run
# in a rootfs without libc)
if [[ ! -x /bin/busybox ]] || ! dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed'; then
    missing+=(busybox-static)
fi

if ((${#missing[@]} == 0)); then
    log "all present"
    exit 0
fi

if [[ "$(id -u)" != 0 ]]; then
    log "error: missing packages (${missing[*]}) and not root: run as root or install them"
    exit 1
fi
command -v apt-get >/dev/null || { log "error: no apt-get: install ${missing[*]} yourself"; exit 1; }

log "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >/dev/null
log "installed: ${missing[*]}"
