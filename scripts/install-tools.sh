#!/usr/bin/env bash
# Installs whatever `make run` (build) or `make test` (test) needs and is missing; quick when all
# is there. Everything comes from crates.io, npm or Debian's packages, pinned:
#   - the wasm32 target, cargo-leptos (built with `no_downloads`: it then looks up its helpers on
#     PATH instead of downloading them), wasm-bindgen-cli at the version Cargo.lock resolved;
#   - tools/: dart-sass and binaryen's wasm-opt from npm (package-lock.json);
#   - Debian's brotli (the precompressed assets);
#   - for tests: Debian's Chromium, coturn, redis-server, nftables (as root) and end2end/'s Playwright
#     (package-lock.json).
set -euo pipefail
cd "$(dirname "$0")/.."

what=${1:-build}
CARGO_LEPTOS_VERSION=0.3.10
# The CLI refuses to process a wasm built against another wasm-bindgen version.
WASM_BINDGEN_VERSION=$(sed -n '/^name = "wasm-bindgen"$/{n;s/^version = "\(.*\)"$/\1/p;}' Cargo.lock)
export PATH="$HOME/.cargo/bin:$PATH"

say() { printf '==> %s\n' "$*"; }

apt_install() {
  if [ -z "${APT_UPDATED:-}" ]; then
    apt-get update -qq
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

# npm ci only when the lock file changed since the last install.
npm_ci() {
  local dir=$1
  if [ ! -f "$dir/node_modules/.package-lock.json" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    say "npm ci in $dir"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

command -v npm >/dev/null || { say "installing Node.js and npm"; apt_install nodejs npm; }

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

if ! cargo leptos --version 2>/dev/null | grep -qF "$CARGO_LEPTOS_VERSION"; then
  say "installing cargo-leptos $CARGO_LEPTOS_VERSION (about 15 minutes on 2 cores)"
  cargo install cargo-leptos --version "$CARGO_LEPTOS_VERSION" --features no_downloads --locked
fi

if ! wasm-bindgen --version 2>/dev/null | grep -qF "$WASM_BINDGEN_VERSION"; then
  say "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (about 3 minutes)"
  # Not --locked: one of its locked dependencies is no longer in the registry.
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --force
fi

npm_ci tools

# scripts/precompress.sh writes the .br copies of the assets with it.
if ! command -v brotli >/dev/null; then
  say "installing brotli"
  apt_install brotli
fi

if [ "$what" = test ]; then
  if [ ! -x /usr/bin/chromium ]; then
    say "installing Debian's Chromium"
    apt_install chromium
  fi
  # The ICE-restart test drops UDP on the loopback interface with nft (as root only).
  if [ "$(id -u)" = 0 ] && ! command -v nft >/dev/null; then
    say "installing nftables"
    apt_install nftables
  fi
  # The TURN tests relay through a real coturn (Debian's), started by the tests themselves.
  if ! command -v turnserver >/dev/null; then
    say "installing coturn"
    apt_install coturn
  fi
  # The cluster tests keep rooms in a real Redis (Debian's), started by the tests themselves.
  if ! command -v redis-server >/dev/null; then
    say "installing redis-server"
    apt_install redis-server
  fi
  npm_ci end2end
fi
