#!/usr/bin/env bash
# Sets up the machine (scripts/setup.sh) and runs the whole test suite: unit, backend and
# integration tests (coturn's turnutils_uclient, headless Chromium; each also run against
# coturn itself as a check of the test) on the optimised build, then unit, backend and
# integration tests again with everything, the daemon included, built with ASan + UBSan.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

jobs=$(nproc)
echo "== build"
ninja -C build -j"$jobs"
echo "== tests (optimised build)"
meson test -C build --print-errorlogs --num-processes "$jobs"

echo "== sanitizers (ASan + UBSan)"
ninja -C build-asan -j"$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  meson test -C build-asan --print-errorlogs --num-processes "$jobs" \
    --suite unit --suite backend --suite integration
echo "== all tests passed"
