# confab: `make run` serves the app on http://127.0.0.1:3000, `make test` runs every test.
# Both first install whatever is missing (scripts/install-tools.sh), so they work on a fresh
# machine and are quick on a warm one.

SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := run

# cargo-leptos finds sass and wasm-opt on PATH (built with `no_downloads`).
export PATH := $(CURDIR)/tools/node_modules/.bin:$(HOME)/.cargo/bin:$(PATH)
# Cargo's target directory (CARGO_TARGET_DIR may move it out of the tree); the site is always here.
TARGET_DIR = $(shell cargo metadata --format-version 1 --no-deps | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).target_directory))')
SITE_ROOT := $(CURDIR)/target/site

.PHONY: run test build tools test-tools unit e2e bench lint fuzz

tools:
	scripts/install-tools.sh build

test-tools:
	scripts/install-tools.sh test

## The release build: server binary, wasm (opt-level z, wasm-opt), JS glue and CSS, with content
## hashes in their names, the call's code in a wasm chunk of its own (`--split`, see
## `call_screen` in app/src/pages/room/mod.rs), the start page's own smaller bundle, and
## .br/.gz copies next to them.
build: tools
	cargo leptos build --release --split
	scripts/start-bundle.sh "$(TARGET_DIR)" "$(SITE_ROOT)"
	scripts/precompress.sh "$(SITE_ROOT)"

## Serve on http://127.0.0.1:3000 (pass flags with ARGS="--room-capacity 4", see `--help`).
run: build
	LEPTOS_SITE_ROOT="$(SITE_ROOT)" "$(TARGET_DIR)/release/confab" $(ARGS)

## Every test: Rust unit and integration tests, then the browser tests against the release build.
test: test-tools
	cargo test --workspace
	cargo leptos build --release --split
	scripts/start-bundle.sh "$(TARGET_DIR)" "$(SITE_ROOT)"
	scripts/precompress.sh "$(SITE_ROOT)"
	$(MAKE) --no-print-directory e2e

e2e:
	cd end2end && CONFAB_BIN="$(TARGET_DIR)/release/confab" CONFAB_SITE_ROOT="$(SITE_ROOT)" npx playwright test

## The performance figures against their targets, as one table: relay throughput and latency,
## idle connections, two nodes over Redis, first load, call setup (end2end/bench/all.mjs; about
## 5 minutes). Mesh recovery and CPU: `node bench/group.mjs` in end2end/.
bench: build test-tools
	if [ -f loadgen/Cargo.toml ]; then cargo build --release -p confab-loadgen; fi
	cd end2end && CONFAB_BIN="$(TARGET_DIR)/release/confab" CONFAB_SITE_ROOT="$(SITE_ROOT)" \
	  CONFAB_LOADGEN="$(TARGET_DIR)/release/confab-loadgen" node bench/all.mjs

## Fuzz message decoding and the room registry (nightly + cargo-fuzz; not part of `make test`).
fuzz:
	scripts/fuzz.sh

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy -p confab-app --features hydrate --target wasm32-unknown-unknown -- -D warnings
	cargo clippy -p confab-app --features hydrate,start-page --target wasm32-unknown-unknown -- -D warnings
