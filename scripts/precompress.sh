#!/usr/bin/env bash
# Writes a .gz (gzip -9) and a .br (brotli -q 11) copy next to every compiled asset in the site's
# pkg folder (wasm, JS glue, CSS), once per build: the server sends these instead of compressing
# the same bytes on every request (server/src/assets.rs). Run after `cargo leptos build --release`.
#
# Usage: scripts/precompress.sh [SITE_ROOT]   (default: target/site)
# Without the `brotli` command (Debian's `brotli`, see scripts/install-tools.sh) only .gz files
# are written; the server compresses brotli on the fly then.
set -euo pipefail
cd "$(dirname "$0")/.."

pkg=${1:-target/site}/pkg
[ -d "$pkg" ] || { echo "precompress: no $pkg (build the site first)" >&2; exit 1; }

have_brotli=1
command -v brotli >/dev/null || { have_brotli=; echo "precompress: no brotli command; writing .gz only" >&2; }

shopt -s nullglob
for file in "$pkg"/*.wasm "$pkg"/*.js "$pkg"/*.css; do
  # -n: no name or time stamp in the header, so the same input gives the same bytes.
  gzip -9 -n -k -f "$file"
  if [ -n "$have_brotli" ]; then
    brotli -q 11 -k -f "$file"
  fi
  printf 'precompress: %-40s %8d raw %8d gzip %8s br\n' "${file##*/}" "$(stat -c %s "$file")" \
    "$(stat -c %s "$file.gz")" "$( [ -n "$have_brotli" ] && stat -c %s "$file.br" || echo -)"
done
