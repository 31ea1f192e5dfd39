#!/usr/bin/env bash
# Sets up the machine (scripts/setup.sh) and runs the whole test suite: unit, backend and
# integration tests (coturn's turnutils_uclient, headless Chromium) on the optimised build, then unit, backend and
# integration tests again with everything, the daemon included, built with ASan + UBSan, a
# short soak, and the libFuzzer targets for a bounded time.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

jobs=$(nproc)
echo "== build"
ninja -C build -j"$jobs"
echo "== tests (optimised build)"
# coturn_reference runs the interop scripts against coturn to check the tests themselves
# (`meson test -C build --suite coturn_reference`); it says nothing about turnpiked, so it does
# not gate this run.
meson test -C build --print-errorlogs --num-processes "$jobs" --no-suite coturn_reference

echo "== soak (90 s: steady traffic plus allocation churn; RSS must stay flat)"
perf/soak.sh --build=build --duration=90 --sample=15

echo "== sanitizers (ASan + UBSan)"
ninja -C build-asan -j"$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  meson test -C build-asan --print-errorlogs --num-processes "$jobs" \
    --suite unit --suite backend --suite integration
echo "== fuzzers (clang, ASan + UBSan, ${FUZZ_SECONDS:-30} s per target)"
FUZZ_SECONDS="${FUZZ_SECONDS:-30}" bash tests/fuzz/run_fuzzers.sh

# One closing line over both runs, counted from meson's own logs.
python3 - build/meson-logs/testlog.json build-asan/meson-logs/testlog.json <<'PY'
import json, sys
passed = failed = skipped = 0
for path in sys.argv[1:]:
    with open(path) as f:
        for line in f:
            result = json.loads(line).get("result")
            if result in ("OK", "EXPECTEDFAIL"):
                passed += 1
            elif result == "SKIP":
                skipped += 1
            else:
                failed += 1
print(f"tests: {passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed else 0)
PY
