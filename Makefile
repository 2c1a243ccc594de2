# robust-shim: build, demo and test (Debian bookworm, as root).
#
#   make deps    install what is missing (apt-get): containerd, runc, busybox-static, CNI plugins, ...
#   make build   cargo build --release --locked (target/release/containerd-shim-robust-v2)
#   make image   the local test images (.work/images/*.tar), no network
#   make demo    run containers through our shim with ctr, against an isolated containerd
#   make test    unit tests, then the integration suite against an isolated containerd
#   make bench   both shims side by side on an isolated containerd (results/, see docs/benchmarks.md)
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

deps:
	@bash integration/deps.sh

check-cargo:
	@command -v $(CARGO) >/dev/null || { echo "error: cargo is missing: install Rust (rustup) first" >&2; exit 1; }

build: check-cargo
	$(CARGO) build --release --locked

image: deps
	@$(PYTHON) integration/mkimage.py $(IMAGES_DIR) --if-stale

demo: deps build image
	@bash integration/demo.sh

# both shims side by side on an isolated containerd; table in results/ (docs/benchmarks.md)
bench: deps build image
	@bash integration/bench.sh

test: deps
	$(MAKE) --no-print-directory unit-test
	$(MAKE) --no-print-directory integration-test

unit-test: check-cargo
	$(CARGO) test --workspace --exclude robust-integration --locked

integration-test: deps build image
	@bash integration/run-suite.sh

# the isolated containerd by hand (see integration/README.md)
it-start: deps build image
	@bash integration/containerd.sh start
	@echo 'now: eval "$$(integration/containerd.sh env)"'

it-stop:
	@bash integration/containerd.sh stop

it-clean:
	@bash integration/containerd.sh clean
