#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time (FUZZ_SECONDS each, default 120) on the
# committed corpus, which grows with what the fuzzer finds. Needs the nightly toolchain
# (libFuzzer's instrumentation); installs cargo-fuzz if missing. Any crash fails the run and
# leaves its input under fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${FUZZ_SECONDS:-120}"

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --version 0.13.2 --locked

for target in $(cargo +nightly fuzz list); do
  mkdir -p "corpus/$target"
  echo "== fuzzing $target for ${seconds}s"
  log="$(mktemp)"
  status=0
  cargo +nightly fuzz run -O "$target" "corpus/$target" -- \
    -max_total_time="$seconds" -max_len=8192 -print_final_stats=1 >"$log" 2>&1 || status=$?
  grep -E '^(#[0-9]+ *DONE|stat::number_of_executed_units|stat::peak_rss_mb|SUMMARY|==[0-9]+==ERROR)' "$log" || true
  if [ "$status" -ne 0 ]; then
    tail -50 "$log"
    echo "fuzz target $target failed (status $status); the input is under fuzz/artifacts/$target/" >&2
    exit 1
  fi
  rm -f "$log"
  # Keep the committed corpus small: only inputs that add coverage.
  cargo +nightly fuzz cmin -O "$target" "corpus/$target" >/dev/null 2>&1
done
