# robust-shim: build, demo and test (Debian bookworm, as root).
#
#   make         build (the default goal)
#   make help    every target with what it does (the "## " text after each target)
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

.PHONY: help deps check-cargo build image demo test unit-test integration-test it-start it-stop it-clean
.PHONY: bench
.PHONY: soak soak-reference
.PHONY: fuzz fuzz-short
.PHONY: versions test-matrix tested-with

# Every target has a "## what it does" after its prerequisites; help lists them and
# fails naming any .PHONY target without one, so the list stays complete.
help: ## this list
	@awk -F':[^#]*## ' '/^[a-z][a-z-]*:[^=#]*## / {printf "  make %-18s %s\n", $$1, $$2}' $(firstword $(MAKEFILE_LIST))
	@missing=""; for t in $$(sed -n 's/^\.PHONY://p' $(firstword $(MAKEFILE_LIST))); do \
		grep -Eq "^$$t:[^=#]*## " $(firstword $(MAKEFILE_LIST)) || missing="$$missing $$t"; done; \
	if [[ -n "$$missing" ]]; then echo "make help: no '## ' description for:$$missing" >&2; exit 1; fi

deps: ## install what is missing (apt-get): containerd, runc, runsc, busybox, CNI plugins
	@bash integration/deps.sh

check-cargo: ## fail early, with a hint, when cargo is missing
	@command -v $(CARGO) >/dev/null || { echo "error: cargo is missing: install Rust (rustup) first" >&2; exit 1; }

# The shim is linked statically and not position-independent (as containerd's own
# shims are not): no dynamic loader at each start and only the code it touches resident
# (docs/benchmarks.md). --target keeps these flags off build scripts and proc macros; the
# result is installed where everything expects it.
HOST_TRIPLE := $(shell rustc -vV 2>/dev/null | sed -n 's/^host: //p')
SHIM_RUSTFLAGS ?= -C target-feature=+crt-static -C relocation-model=static
SHIM_BIN := target/release/containerd-shim-robust-v2

build: check-cargo ## the release build; the shim, static, in target/release/containerd-shim-robust-v2
	$(CARGO) build --release --locked
	RUSTFLAGS="$(SHIM_RUSTFLAGS)" $(CARGO) build --release --locked -p containerd-shim-robust-v2 --target $(HOST_TRIPLE)
	install -m 0755 target/$(HOST_TRIPLE)/release/containerd-shim-robust-v2 $(SHIM_BIN)

image: deps ## the local test images (.work/images/*.tar), built without network
	@$(PYTHON) integration/mkimage.py $(IMAGES_DIR) --if-stale

demo: deps build image ## containers through the shim with ctr, step by step, on an isolated containerd
	@bash integration/demo.sh

# both shims side by side on an isolated containerd; table in results/ (docs/benchmarks.md)
bench: deps build image ## both shims side by side on an isolated containerd; results/ (docs/benchmarks.md)
	@bash integration/bench.sh

# the seeded fault soak on an isolated containerd (/run/robust-soak): SOAK_MINUTES (2 per
# runtime), SOAK_CYCLES, SOAK_SEED, SOAK_FAULTS, SOAK_RUNTIMES; summaries in results/
soak: deps build image ## seeded fault soak of our shim, runc then runsc (SOAK_MINUTES=2 each; docs/soak.md)
	@bash integration/soak.sh

soak-reference: deps build image ## the same soak against containerd-shim-runc-v2 (runc)
	@SOAK_SHIM=reference bash integration/soak.sh

test: deps ## unit-test, fuzz-short, test-matrix (the suite on containerd 1.6, 1.7, 2.1 and both runsc releases), then a default soak
	$(MAKE) --no-print-directory unit-test
	$(MAKE) --no-print-directory fuzz-short
	$(MAKE) --no-print-directory test-matrix
	$(MAKE) --no-print-directory soak

unit-test: check-cargo ## cargo test of every crate but the integration suite
	$(CARGO) test --workspace --exclude robust-integration --locked

# the fuzz targets of fuzz/ (docs/fuzzing.md); a failing input is kept in fuzz/artifacts/
fuzz: check-cargo ## every fuzz target for FUZZ_SECONDS (default 60) each (docs/fuzzing.md)
	@FUZZ_SECONDS=$${FUZZ_SECONDS:-60} bash integration/fuzz.sh

fuzz-short: check-cargo ## every fuzz target for 10 s each
	@FUZZ_SECONDS=$${FUZZ_SECONDS:-10} bash integration/fuzz.sh

integration-test: deps build image ## the integration suite against its own isolated containerd
	@bash integration/run-suite.sh

versions: ## fetch containerd 1.7 / 2.1 and runsc 2024 from Debian's archive into .work/versions
	@bash integration/versions.sh fetch

# the suite once per containerd release and runsc release (integration/matrix.sh)
test-matrix: deps build image ## the suite per containerd and runsc release (MATRIX_CELLS picks cells)
	@bash integration/matrix.sh

# the README's "Tested with" table from the last matrix run
tested-with: ## the README's "Tested with" table from the last test-matrix run
	@$(PYTHON) integration/tested_with.py README.md results/tested-with.md

# the isolated containerd by hand (see integration/README.md)
it-start: deps build image ## start the isolated containerd by hand (integration/README.md)
	@bash integration/containerd.sh start
	@echo 'now: eval "$$(integration/containerd.sh env)"'

it-stop: ## stop it, and what runs in it
	@bash integration/containerd.sh stop

it-clean: ## stop it and remove its run dir and bridge
	@bash integration/containerd.sh clean
