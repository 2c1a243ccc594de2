#!/usr/bin/env bash
# The containerd and runsc releases the suite runs against besides bookworm's own
# (containerd 1.6, runsc 2022-12-19): fetched from Debian's archive as .debs and
# extracted under .work/versions, never installed over the system's packages.
#
#   integration/versions.sh fetch     download (cached) and extract every release below
#   integration/versions.sh list      print "name version dir" for what is extracted
#   integration/versions.sh bin NAME  print the bin dir of a release (containerd-1.7, ...)
#
# The archive address comes from the machine's own apt sources (no host name is written
# here); a private apt configuration under .work/apt adds the suites that carry them:
#   containerd-1.7  containerd from trixie
#   containerd-2.1  containerd from sid
#   runsc-2024      runsc from bookworm-backports
# Releases are keyed by major.minor (containerd) or year (runsc): if a suite moved on to
# a newer upstream version, the key found is used and said so.
set -euo pipefail

REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${ROBUST_IT_VERSIONS_WORK:-$REPO_DIR/.work}"
APT_DIR="$WORK/apt"
OUT_DIR="$WORK/versions"
# name  package  suite  expected key
RELEASES=(
    "containerd-1.7 containerd trixie"
    "containerd-2.1 containerd sid"
    "runsc-2024 runsc bookworm-backports"
)

log() { echo "versions.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

# The first http(s) archive of the machine's sources that serves bookworm's main suite.
archive_uri() {
    local f uri=""
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -f "$f" ]] || continue
        uri="$(awk '
            /^[[:space:]]*$/ { if (u != "" && s ~ /(^| )bookworm( |$)/) { print u; exit } u = ""; s = "" }
            /^URIs:/ { u = $2 }
            /^Suites:/ { s = $0 }
            END { if (u != "" && s ~ /(^| )bookworm( |$)/) print u }' "$f" | head -n1)"
        [[ -n "$uri" ]] && break
    done
    if [[ -z "$uri" && -f /etc/apt/sources.list ]]; then
        uri="$(awk '$1 == "deb" && $0 ~ / bookworm / { for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) { print $i; exit } }' /etc/apt/sources.list)"
    fi
    [[ -n "$uri" ]] || die "no bookworm archive in /etc/apt/sources.list or /etc/apt/sources.list.d/*.sources"
    echo "${uri%/}"
}

apt_opts() {
    echo "-o Dir::Etc::SourceList=$APT_DIR/sources.list -o Dir::Etc::SourceParts=/dev/null" \
        "-o Dir::State::Lists=$APT_DIR/lists -o Dir::Cache=$APT_DIR/cache" \
        "-o Debug::NoLocking=1 -o Acquire::Languages=none -o APT::Sandbox::User=root"
}

fetch() {
    command -v apt-get >/dev/null || die "apt-get is missing"
    mkdir -p "$APT_DIR/lists/partial" "$APT_DIR/cache/archives/partial" "$APT_DIR/debs" "$OUT_DIR"
    local uri key="/usr/share/keyrings/debian-archive-keyring.gpg"
    uri="$(archive_uri)"
    {
        local suite
        for suite in trixie sid bookworm-backports; do
            echo "deb [signed-by=$key] $uri $suite main"
        done
    } >"$APT_DIR/sources.list"
    # shellcheck disable=SC2046
    local opts; opts=($(apt_opts))
    local need=0 r name pkg suite
    for r in "${RELEASES[@]}"; do
        read -r name _ _ <<<"$r"
        [[ -f "$OUT_DIR/$name/VERSION" ]] || need=1
    done
    if ((need == 0)); then
        list
        return 0
    fi
    log "updating the package lists of trixie, sid and bookworm-backports (private apt config in $APT_DIR)"
    timeout 600 apt-get "${opts[@]}" -q update >/dev/null ||
        die "apt-get update with the private config failed (sources: $APT_DIR/sources.list)"
    for r in "${RELEASES[@]}"; do
        read -r name pkg suite <<<"$r"
        [[ -f "$OUT_DIR/$name/VERSION" ]] && continue
        local ver
        ver="$(apt-cache "${opts[@]}" show "$pkg/$suite" 2>/dev/null | awk '/^Version:/ {print $2; exit}')"
        [[ -n "$ver" ]] || die "$suite carries no $pkg"
        # the .deb is cached by release and version
        local deb="$APT_DIR/debs/$name-$ver.deb"
        if [[ ! -f "$deb" ]]; then
            local tmp="$APT_DIR/debs/tmp"
            rm -rf "$tmp" && mkdir -p "$tmp"
            (cd "$tmp" && timeout 600 apt-get "${opts[@]}" -q download "$pkg=$ver" >/dev/null) ||
                die "apt-get download $pkg=$ver failed"
            mv "$tmp"/*.deb "$deb"
            rm -rf "$tmp"
        fi
        local key_found
        key_found="$(release_key "$pkg" "$ver")"
        if [[ "$key_found" != "$name" ]]; then
            log "note: $suite now carries $pkg $ver ($key_found), not $name: using it as $name"
        fi
        rm -rf "$OUT_DIR/$name.tmp"
        mkdir -p "$OUT_DIR/$name.tmp"
        dpkg-deb -x "$deb" "$OUT_DIR/$name.tmp"
        echo "$ver" >"$OUT_DIR/$name.tmp/VERSION"
        rm -rf "$OUT_DIR/$name"
        mv "$OUT_DIR/$name.tmp" "$OUT_DIR/$name"
    done
    list
}

# containerd-<major.minor> or runsc-<year> of a Debian version string.
release_key() {
    local pkg="$1" ver="$2"
    ver="${ver#*:}"
    case "$pkg" in
    containerd) echo "containerd-$(echo "$ver" | cut -d. -f1-2)" ;;
    runsc) echo "runsc-$(echo "$ver" | sed -E 's/^0\.0~([0-9]{4}).*/\1/')" ;;
    esac
}

list() {
    local r name
    for r in "${RELEASES[@]}"; do
        read -r name _ _ <<<"$r"
        if [[ -f "$OUT_DIR/$name/VERSION" ]]; then
            echo "$name $(cat "$OUT_DIR/$name/VERSION") $OUT_DIR/$name/usr/bin"
        else
            echo "$name missing -"
        fi
    done
}

bin() {
    local name="$1"
    [[ -f "$OUT_DIR/$name/VERSION" ]] || die "$name is not fetched: run integration/versions.sh fetch (make versions)"
    echo "$OUT_DIR/$name/usr/bin"
}

case "${1:-}" in
fetch) fetch ;;
list) list ;;
bin) bin "${2:?usage: $0 bin NAME}" ;;
*) echo "usage: $0 fetch|list|bin NAME" >&2; exit 2 ;;
esac
