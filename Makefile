# robust-shim: build, demo and test (Debian bookworm, as root).
#
#   make deps    install what is missing (apt-get): containerd, runc, busybox-static, CNI plugins, ...
#   make build   cargo build --release --locked; the shim linked statically into target/release/containerd-shim-robust-v2
#   make image   the local test images (.work/images/*.tar), no network
#   make demo    run containers through our shim with ctr, against an isolated containerd
#   make test    unit tests, a short fuzz run, the integration suite on every containerd release and both
#                runsc releases (make test-matrix), then a default soak (make soak), each against an isolated containerd
#   make fuzz    every fuzz target for FUZZ_SECONDS (default 60) each; fuzz-short: 10 s each (docs/fuzzing.md)
#   make bench   both shims side by side on an isolated containerd (results/, see docs/benchmarks.md)
#   make soak    seeded fault soak of our shim, runc then runsc (SOAK_MINUTES=2 each; docs/soak.md)
#   make soak-reference  the same soak against containerd-shim-runc-v2 (runc)
#   make integration-test  the integration suite on one containerd (ROBUST_IT_CONTAINERD=1.6|1.7|2.1,
#                      ROBUST_IT_RUNSC=2022|2024; default bookworm's 1.6 and runsc 2022)
#   make versions      fetch containerd 1.7 / 2.1 and runsc 2024 from Debian's archive into .work/versions
#   make test-matrix   the integration suite on containerd 1.6, 1.7 and 2.1 with both runsc releases
#                      (MATRIX_CELLS="1.7 2.1/runsc22" picks cells; integration/matrix.sh)
#   make tested-with   the README's "Tested with" table from the last test-matrix run
#
# The integration harness is described in integration/README.md.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build

CARGO ?= cargo
PYTHON ?= python3
WORK_DIR ?= $(CURDIR)/.work
IMAGES_DIR := $(WORK_DIR)/images
# integration cases mostly wait on processes: 4 threads keep 2 cores busy without starving
IT_THREADS ?= 4

export ROBUST_IT_IMAGES_DIR := $(IMAGES_DIR)
export IT_THREADS

.PHONY: deps check-cargo build image demo test unit-test integration-test it-start it-stop it-clean
.PHONY: bench
.PHONY: soak soak-reference
.PHONY: fuzz fuzz-short
.PHONY: versions test-matrix tested-with

deps:
	@bash integration/deps.sh

check-cargo:
	@command -v $(CARGO) >/dev/null || { echo "error: cargo is missing: install Rust (rustup) first" >&2; exit 1; }

# The shim is linked statically and not position-independent (as containerd's own
# shims are not): no dynamic loader at each start and only the code it touches resident
# (docs/benchmarks.md). --target keeps these flags off build scripts and proc macros; the
# result is installed where everything expects it.
HOST_TRIPLE := $(shell rustc -vV 2>/dev/null | sed -n 's/^host: //p')
SHIM_RUSTFLAGS ?= -C target-feature=+crt-static -C relocation-model=static
SHIM_BIN := target/release/containerd-shim-robust-v2

build: check-cargo
	$(CARGO) build --release --locked
	RUSTFLAGS="$(SHIM_RUSTFLAGS)" $(CARGO) build --release --locked -p containerd-shim-robust-v2 --target $(HOST_TRIPLE)
	install -m 0755 target/$(HOST_TRIPLE)/release/containerd-shim-robust-v2 $(SHIM_BIN)

image: deps
	@$(PYTHON) integration/mkimage.py $(IMAGES_DIR) --if-stale

demo: deps build image
	@bash integration/demo.sh

# both shims side by side on an isolated containerd; table in results/ (docs/benchmarks.md)
bench: deps build image
	@bash integration/bench.sh

# the seeded fault soak on an isolated containerd (/run/robust-soak): SOAK_MINUTES (2 per
# runtime), SOAK_CYCLES, SOAK_SEED, SOAK_FAULTS, SOAK_RUNTIMES; summaries in results/
soak: deps build image
	@bash integration/soak.sh

soak-reference: deps build image
	@SOAK_SHIM=reference bash integration/soak.sh

test: deps
	$(MAKE) --no-print-directory unit-test
	$(MAKE) --no-print-directory fuzz-short
	$(MAKE) --no-print-directory test-matrix
	$(MAKE) --no-print-directory soak

unit-test: check-cargo
	$(CARGO) test --workspace --exclude robust-integration --locked

# the fuzz targets of fuzz/ (docs/fuzzing.md); a failing input is kept in fuzz/artifacts/
fuzz: check-cargo
	@FUZZ_SECONDS=$${FUZZ_SECONDS:-60} bash integration/fuzz.sh

fuzz-short: check-cargo
	@FUZZ_SECONDS=$${FUZZ_SECONDS:-10} bash integration/fuzz.sh

integration-test: deps build image
	@bash integration/run-suite.sh

versions:
	@bash integration/versions.sh fetch

# the suite once per containerd release and runsc release (integration/matrix.sh)
test-matrix: deps build image
	@bash integration/matrix.sh

# the README's "Tested with" table from the last matrix run
tested-with:
	@$(PYTHON) integration/tested_with.py README.md results/tested-with.md

# the isolated containerd by hand (see integration/README.md)
it-start: deps build image
	@bash integration/containerd.sh start
	@echo 'now: eval "$$(integration/containerd.sh env)"'

it-stop:
	@bash integration/containerd.sh stop

it-clean:
	@bash integration/containerd.sh clean
