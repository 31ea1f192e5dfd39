#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) in a separate meson build directory and
# runs each for a bounded time from its seed corpus. Fails if any target crashes, leaks, times
# out or runs out of memory; prints the executions per target. docs/security.md explains more.
#
#   tests/fuzz/run_fuzzers.sh                     # every target, 60 s each
#   FUZZ_SECONDS=900 tests/fuzz/run_fuzzers.sh stun_message_fuzz
#
# Environment: FUZZ_SECONDS (default 60) per target; FUZZ_RUNS (default unlimited) stops a
# target after that many executions, whichever comes first; FUZZ_BUILD_DIR (default build-fuzz);
# FUZZ_WORK (default a fresh temporary directory): the working corpora (seeds plus what the
# fuzzer found) and crash artifacts go there, never into the source tree.
set -euo pipefail
cd "$(dirname "$0")/../.."

seconds="${FUZZ_SECONDS:-60}"
build="${FUZZ_BUILD_DIR:-build-fuzz}"
work="${FUZZ_WORK:-$(mktemp -d /tmp/turnpike-fuzz.XXXXXX)}"
all_targets=(stun_message_fuzz stream_framer_fuzz config_fuzz turn_engine_fuzz)
if (( $# > 0 )); then
  targets=("$@")
else
  targets=("${all_targets[@]}")
fi

for tool in clang clang++ meson ninja; do
  command -v "${tool}" >/dev/null ||
    { echo "run_fuzzers: ${tool} not found (apt-get install clang libclang-rt-14-dev)" >&2; exit 1; }
done
if [[ ! -f "${build}/build.ninja" ]]; then
  CC=clang CXX=clang++ meson setup "${build}" -Dfuzz=true >/dev/null
elif ! meson configure "${build}" | grep -qE '^\s*fuzz\s+true'; then
  meson configure "${build}" -Dfuzz=true >/dev/null
fi
ninja -C "${build}" -j"${FUZZ_BUILD_JOBS:-2}" "${targets[@]/#/tests/fuzz/}"

mkdir -p "${work}"
echo "run_fuzzers: ${seconds} s per target, work directory ${work}"
failed=()
for t in "${targets[@]}"; do
  corpus="${work}/corpus/${t}"
  artifacts="${work}/artifacts/${t}"
  mkdir -p "${corpus}" "${artifacts}"
  cp -n tests/fuzz/corpus/"${t}"/* "${corpus}/" 2>/dev/null || true
  extra=()
  [[ -n "${FUZZ_RUNS:-}" ]] && extra+=("-runs=${FUZZ_RUNS}")
  [[ -f "tests/fuzz/${t%_fuzz}.dict" ]] && extra+=("-dict=tests/fuzz/${t%_fuzz}.dict")
  log="${work}/${t}.log"
  rc=0
  # -timeout: one input taking 10 s is a hang; -rss_limit_mb: a leak or a runaway allocation.
  ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}" \
  UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}" \
    "${build}/tests/fuzz/${t}" -max_total_time="${seconds}" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="${artifacts}/" "${extra[@]}" "${corpus}" \
      >"${log}" 2>&1 || rc=$?
  execs="$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "${log}" | grep -oE '[0-9]+$' || true)"
  rate="$(grep -oE 'stat::average_exec_per_sec: *[0-9]+' "${log}" | grep -oE '[0-9]+$' || true)"
  cov="$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "${log}" | tail -n 1 || true)"
  if (( rc != 0 )) || ls "${artifacts}"/* >/dev/null 2>&1; then
    echo "FAIL ${t}: exit ${rc} after ${execs:-?} executions; artifacts in ${artifacts}, log ${log}"
    grep -E 'ERROR|SUMMARY|check failed' "${log}" | head -n 5 || true
    failed+=("${t}")
  else
    echo "ok   ${t}: ${execs} executions (${rate}/s), ${cov}, corpus $(ls "${corpus}" | wc -l) files"
  fi
done
if (( ${#failed[@]} > 0 )); then
  echo "run_fuzzers: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "run_fuzzers: all targets clean"
