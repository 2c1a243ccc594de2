#!/usr/bin/env bash
# Build the fuzz targets of fuzz/ and run each for FUZZ_SECONDS (docs/fuzzing.md).
#
#   integration/fuzz.sh                 every target, FUZZ_SECONDS each (default 10)
#   integration/fuzz.sh fuzz_ids ...    only these targets
#   FUZZ_SECONDS=60 integration/fuzz.sh
#   FUZZ_BUILD_ONLY=1 integration/fuzz.sh
#
# Works with the stable toolchain alone: libFuzzer comes from the libfuzzer-sys crate
# (built from source with the C++ compiler), and the coverage instrumentation is
# LLVM's SanitizerCoverage, switched on with the same stable rustc flags cargo-fuzz
# passes (no -Z flag, no sanitizer, so no nightly). cargo-fuzz itself is not needed.
#
# Fails (non-zero) naming the target and the input if a target panics, fails one of
# its assertions, runs an input longer than FUZZ_TIMEOUT seconds (a hang) or grows past
# FUZZ_RSS_MB. The failing input is kept under fuzz/artifacts/<target>/; rerun it with
#   fuzz/target/<host>/release/<target> fuzz/artifacts/<target>/<file>
# The seed corpora (fuzz/corpus/<target>/) are read, never written: what a run finds
# goes to a temporary directory that is removed afterwards.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
FUZZ_DIR=$ROOT/fuzz
FUZZ_SECONDS=${FUZZ_SECONDS:-10}
FUZZ_TIMEOUT=${FUZZ_TIMEOUT:-5}
FUZZ_RSS_MB=${FUZZ_RSS_MB:-2048}
FUZZ_MAX_LEN=${FUZZ_MAX_LEN:-65536}
CARGO=${CARGO:-cargo}

log() { echo "fuzz: $*" >&2; }
die() { log "error: $*"; exit 1; }

command -v "$CARGO" >/dev/null || die "cargo is missing: install Rust (rustup) first"
# libfuzzer-sys compiles libFuzzer (C++) with the cc crate.
if ! command -v c++ >/dev/null && ! command -v g++ >/dev/null; then
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
        log "installing g++ (libFuzzer is C++)"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq g++ >/dev/null
    else
        die "no C++ compiler: install g++ (libFuzzer is built from source)"
    fi
fi

mapfile -t ALL < <(sed -n 's/^name = "\(fuzz_[a-z0-9_]*\)"$/\1/p' "$FUZZ_DIR/Cargo.toml")
((${#ALL[@]} > 0)) || die "no [[bin]] fuzz_* target in fuzz/Cargo.toml"
if (($# > 0)); then
    TARGETS=("$@")
    for t in "${TARGETS[@]}"; do
        [[ " ${ALL[*]} " == *" $t "* ]] || die "unknown target $t (targets: ${ALL[*]})"
    done
else
    TARGETS=("${ALL[@]}")
fi

HOST=$("$CARGO" -vV 2>/dev/null | sed -n 's/^host: //p')
[[ -n "$HOST" ]] || HOST=$(rustc -vV | sed -n 's/^host: //p')

# cargo-fuzz's flags (`cargo fuzz build --sanitizer none`): SanitizerCoverage
# with inline 8-bit counters, the PC table, comparison tracing and stack depth;
# --cfg fuzzing; debug assertions, so overflow checks stay on. With an explicit
# --target, RUSTFLAGS reach only the target's crates, not build scripts.
# fuzz/Cargo.lock pins the versions; no --locked, so that a dependency added to a
# crate of the workspace is added to it rather than failing the build.
RUSTFLAGS="-Cpasses=sancov-module \
-Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
-Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares \
-Cllvm-args=-sanitizer-coverage-stack-depth \
--cfg fuzzing -Cdebug-assertions -Coverflow-checks"
export RUSTFLAGS
unset CARGO_ENCODED_RUSTFLAGS RUSTC_WRAPPER

bins=()
for t in "${TARGETS[@]}"; do bins+=(--bin "$t"); done
log "building ${#TARGETS[@]} target(s) for $HOST"
started=$SECONDS
"$CARGO" build --release --manifest-path "$FUZZ_DIR/Cargo.toml" \
    --target "$HOST" --target-dir "$FUZZ_DIR/target" "${bins[@]}"
log "built in $((SECONDS - started)) s"
[[ -n "${FUZZ_BUILD_ONLY:-}" ]] && exit 0

BIN_DIR=$FUZZ_DIR/target/$HOST/release
# in memory when /dev/shm is there: the bundle target writes five files per input
scratch=${TMPDIR:-/tmp}
[[ -d /dev/shm && -w /dev/shm ]] && scratch=/dev/shm
RUN_DIR=$(mktemp -d "$scratch/robust-fuzz.XXXXXX")
trap 'rm -rf "$RUN_DIR"' EXIT
# The targets' own scratch files (a bundle dir, a config file) go here too.
export TMPDIR=$RUN_DIR

# libFuzzer's own figures from its log (empty when it stopped early)
final_stat() { sed -n "s/^stat::$2: *//p" "$1" | tail -n 1; }
last_figure() { { grep -o "$2 [0-9/A-Za-z]*" "$1" || true; } | tail -n 1 | sed "s/^$2 //"; }

failed=()
summary=()
for t in "${TARGETS[@]}"; do
    seeds=$FUZZ_DIR/corpus/$t
    [[ -d "$seeds" ]] || die "no seed corpus $seeds"
    work=$RUN_DIR/corpus/$t
    artifacts=$FUZZ_DIR/artifacts/$t
    mkdir -p "$work" "$artifacts"
    dict=()
    [[ -f "$FUZZ_DIR/dict/$t.dict" ]] && dict=(-dict="$FUZZ_DIR/dict/$t.dict")
    out=$RUN_DIR/$t.log
    log "$t: ${FUZZ_SECONDS} s"
    rc=0
    # new inputs go to the first directory ($work); the seeds are only read.
    # The outer timeout is a last resort should libFuzzer itself hang.
    timeout --kill-after=10 $((FUZZ_SECONDS + 60)) \
        "$BIN_DIR/$t" -max_total_time="$FUZZ_SECONDS" -timeout="$FUZZ_TIMEOUT" \
        -rss_limit_mb="$FUZZ_RSS_MB" -max_len="$FUZZ_MAX_LEN" -print_final_stats=1 \
        -artifact_prefix="$artifacts/" "${dict[@]}" "$work" "$seeds" >"$out" 2>&1 || rc=$?
    runs=$(final_stat "$out" number_of_executed_units)
    rate=$(final_stat "$out" average_exec_per_sec)
    cov=$(last_figure "$out" 'cov:')
    ft=$(last_figure "$out" 'ft:')
    corpus=$(last_figure "$out" 'corp:')
    line=$(printf '%-22s %9s runs %7s exec/s  cov %5s  ft %6s  corpus %s' \
        "$t" "${runs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "${corpus:-?}")
    if ((rc != 0)); then
        artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$out" | tail -n 1)
        log "FAILED: $t (exit $rc)${artifact:+, input $artifact}"
        # the panic message and the stack, without libFuzzer's banner
        grep -v '^INFO: \|^#[0-9]\|NEW_FUNC' "$out" | tail -n 60 >&2 || true
        failed+=("$t${artifact:+ ($artifact)}")
        summary+=("$line  FAILED")
    else
        summary+=("$line  ok")
        rmdir "$artifacts" 2>/dev/null || true
    fi
done
rmdir "$FUZZ_DIR/artifacts" 2>/dev/null || true

log "summary (${FUZZ_SECONDS} s per target):"
printf '  %s\n' "${summary[@]}" >&2
if ((${#failed[@]} > 0)); then
    log "${#failed[@]} target(s) failed:"
    printf '  %s\n' "${failed[@]}" >&2
    exit 1
fi
log "all ${#TARGETS[@]} target(s) passed"
