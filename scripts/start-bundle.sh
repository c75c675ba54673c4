#!/usr/bin/env bash
# Builds the start page's own wasm bundle: the app with only the start page compiled in (the
# `start-page` feature of confab-app), about a third of the full bundle. cargo-leptos builds
# the full bundle; this builds the second one the same way (wasm-release profile, wasm-bindgen,
# wasm-opt -Oz with cargo-leptos's flags), names its files by content like cargo-leptos does
# (pkg/confab-start.<md5, base64url>.{js,wasm}) and writes their hashes to
# SITE_ROOT/start-hash.txt, where the server looks for them (server/src/assets.rs). Without that
# file the server sends the full bundle with the start page too. Run after
# `cargo leptos build --release`, before scripts/precompress.sh.
#
# Usage: scripts/start-bundle.sh TARGET_DIR SITE_ROOT   (cargo's target directory, the site)
set -euo pipefail
cd "$(dirname "$0")/.."

target_dir=${1:?cargo target directory}
site=${2:?site root}
front="$target_dir/front"
pkg="$site/pkg"
[ -d "$pkg" ] || { echo "start-bundle: no $pkg (run cargo leptos build first)" >&2; exit 1; }

# The same target directory as cargo-leptos's front end: the dependencies are shared, only
# confab-app is compiled a second time (with this feature set cargo keeps both). Leptos reads
# LEPTOS_OUTPUT_NAME when it compiles, and `cargo leptos build --split` links with relocations
# (RUSTFLAGS): both set as cargo-leptos sets them, or each build would compile everything again
# for the other.
RUSTFLAGS="-Clink-args=--emit-relocs" LEPTOS_OUTPUT_NAME=confab cargo build -p confab-app --lib --target wasm32-unknown-unknown --profile wasm-release \
  --no-default-features --features hydrate,start-page --target-dir "$front"

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# --emit-relocs leaves a `linking` and `reloc.*` sections (what wasm-split reads), which
# wasm-opt cannot handle: drop them (custom sections; the module is the same without them).
node -e '
  const fs = require("fs");
  const wasm = fs.readFileSync(process.argv[1]);
  const leb = (i) => { let n = 0, shift = 0, b; do { b = wasm[i++]; n += (b & 0x7f) * 2 ** shift; shift += 7; } while (b & 0x80); return [n, i]; };
  const kept = [wasm.subarray(0, 8)];
  for (let i = 8; i < wasm.length; ) {
    const start = i, id = wasm[i];
    const [size, body] = leb(i + 1);
    i = body + size;
    if (id === 0) {
      const [length, name] = leb(body);
      const title = wasm.subarray(name, name + length).toString();
      if (title === "linking" || title.startsWith("reloc.")) continue;
    }
    kept.push(wasm.subarray(start, i));
  }
  fs.writeFileSync(process.argv[2], Buffer.concat(kept));
' "$front/wasm32-unknown-unknown/wasm-release/confab_app.wasm" "$out/confab_app.wasm"
wasm-bindgen --target web --no-typescript --out-dir "$out" --out-name confab-start "$out/confab_app.wasm"
wasm-opt -Oz --enable-bulk-memory --enable-nontrapping-float-to-int \
  "$out/confab-start_bg.wasm" -o "$out/confab-start.wasm"

hash() { node -e 'process.stdout.write(require("crypto").createHash("md5").update(require("fs").readFileSync(process.argv[1])).digest("base64url"))' "$1"; }
js_hash=$(hash "$out/confab-start.js")
wasm_hash=$(hash "$out/confab-start.wasm")

rm -f "$pkg"/confab-start.*
cp "$out/confab-start.js" "$pkg/confab-start.$js_hash.js"
cp "$out/confab-start.wasm" "$pkg/confab-start.$wasm_hash.wasm"
printf 'js: %s\nwasm: %s\n' "$js_hash" "$wasm_hash" > "$site/start-hash.txt"
printf 'start-bundle: confab-start.%s.wasm %d bytes\n' "$wasm_hash" "$(stat -c %s "$pkg/confab-start.$wasm_hash.wasm")"
