#!/usr/bin/env bash
# Soak: turnpiked under steady relayed traffic plus allocation churn for a while, reporting the
# daemon's resident memory over time and every error. Loopback only.
#
#   perf/soak.sh                         # 30 minutes (the figure in docs/performance.md)
#   perf/soak.sh --duration=120          # the short run CI does
#
# Options (--key=value): duration (1800 s), build (build dir with turnpiked and
# turnpike-loadgen, default build), steady-allocations (100), steady-rate (4000 packets/s in
# total), churn-allocations (40 per round), sample (10 s between RSS samples), max-growth-kb
# (4096: allowed RSS growth from the first sample after warm-up to the end).
#
# What runs:
#   - steady traffic: turnpike-loadgen with `steady-allocations` allocations relaying ChannelData
#     both ways at `steady-rate`, in back-to-back rounds of at most 240 s (the generator does not
#     refresh permissions, which lapse after 300 s as RFC 8656 says);
#   - churn rounds back to back: a turnpike-loadgen that sets up `churn-allocations`
#     allocations (Allocate with the 401 round trip, ChannelBind), relays for one second, then
#     deletes them all (Refresh LIFETIME 0);
#   - every `sample` seconds: turnpiked's VmRSS and open file descriptors.
# It fails (exit 1) on any churn round that did not set up or tear down every allocation, any
# loss in the steady stream, turnpiked dying, or RSS growing more than max-growth-kb after the
# first quarter of the run (the warm-up in which tables and buffers reach their working size).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=1800
BUILD=build
STEADY_ALLOCATIONS=100
STEADY_RATE=4000
CHURN_ALLOCATIONS=40
SAMPLE=10
MAX_GROWTH_KB=4096
for arg in "$@"; do
  case "${arg}" in
    --duration=*) DURATION=${arg#*=} ;;
    --build=*) BUILD=${arg#*=} ;;
    --steady-allocations=*) STEADY_ALLOCATIONS=${arg#*=} ;;
    --steady-rate=*) STEADY_RATE=${arg#*=} ;;
    --churn-allocations=*) CHURN_ALLOCATIONS=${arg#*=} ;;
    --sample=*) SAMPLE=${arg#*=} ;;
    --max-growth-kb=*) MAX_GROWTH_KB=${arg#*=} ;;
    -h|--help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "soak: unknown option ${arg}" >&2; exit 2 ;;
  esac
done

TURNPIKED="${BUILD}/turnpiked"
LOADGEN="${BUILD}/turnpike-loadgen"
for bin in "${TURNPIKED}" "${LOADGEN}"; do
  [[ -x "${bin}" ]] || { echo "soak: ${bin} not found (ninja -C ${BUILD})" >&2; exit 2; }
done

TMP=$(mktemp -d /tmp/turnpike-soak.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "${pid}" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

# A port free for both UDP and TCP (turnpiked listens on both on listening-port).
free_udp_tcp_port() {
  python3 -c '
import socket
for _ in range(100):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("127.0.0.1", 0))
    port = u.getsockname()[1]
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        t.bind(("127.0.0.1", port))
        print(port)
        break
    except OSError:
        pass
    finally:
        t.close()
        u.close()
'
}
PORT=$(free_udp_tcp_port)
SECRET="soak-$$-${RANDOM}"
# Relay ports below both the kernel's ephemeral range (32768+, where clients and peers of
# other tests get their ports) and the interop tests' ranges (10000-32000, tests/integration).
MIN_PORT=$(( 5000 + (PORT % 5) * 1000 ))
"${TURNPIKED}" --listening-ip=127.0.0.1 --listening-port="${PORT}" --relay-ip=127.0.0.1 \
  --min-port="${MIN_PORT}" --max-port=$(( MIN_PORT + 999 )) --use-auth-secret \
  --static-auth-secret="${SECRET}" --realm=soak --allow-loopback-peers --worker-threads=1 \
  --control-listen=off --drain-timeout=0 --log-file="${TMP}/turnpiked.log" >"${TMP}/turnpiked.out" 2>&1 &
SERVER=$!
PIDS+=("${SERVER}")
for _ in $(seq 1 200); do
  grep -q " ready: " "${TMP}/turnpiked.log" 2>/dev/null && break
  kill -0 "${SERVER}" 2>/dev/null || { cat "${TMP}/turnpiked.log" >&2; exit 1; }
  sleep 0.05
done
echo "soak: turnpiked pid ${SERVER} on 127.0.0.1:${PORT}, ${DURATION} s, logs in ${TMP}"

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/${SERVER}/status"; }
fds() { ls "/proc/${SERVER}/fd" | wc -l; }

start=${SECONDS}
end=$(( start + DURATION ))

# Steady traffic for the whole run, in rounds of at most 240 s.
(
  round=0
  while (( SECONDS < end - 5 )); do
    left=$(( end - SECONDS - 3 ))
    (( left > 240 )) && left=240
    round=$(( round + 1 ))
    "${LOADGEN}" --server="127.0.0.1:${PORT}" --secret="${SECRET}" \
      --allocations="${STEADY_ALLOCATIONS}" --rate="${STEADY_RATE}" --duration="${left}" \
      --warmup=1 >"${TMP}/steady-${round}.log" 2>&1 || echo "exit $?" >>"${TMP}/steady-${round}.log"
  done
) &
STEADY=$!
PIDS+=("${STEADY}")
next_sample=${start}
rounds=0
round_failures=0
samples=()
echo "t_s rss_kb fds churn_rounds churn_failures"
while (( SECONDS < end )); do
  if (( SECONDS >= next_sample )); then
    kill -0 "${SERVER}" 2>/dev/null || { echo "soak: turnpiked died" >&2; exit 1; }
    sample="$(( SECONDS - start )) $(rss_kb) $(fds) ${rounds} ${round_failures}"
    samples+=("${sample}")
    echo "${sample}"
    next_sample=$(( next_sample + SAMPLE ))
  fi
  out="${TMP}/churn-last.log"
  if "${LOADGEN}" --server="127.0.0.1:${PORT}" --secret="${SECRET}" \
      --allocations="${CHURN_ALLOCATIONS}" --rate=400 --duration=1 --warmup=0 --drain=0.2 \
      >"${out}" 2>&1; then
    ready=$(grep -oE 'allocations_ready=[0-9]+' "${out}" | cut -d= -f2)
    torn=$(grep -oE 'teardown: [0-9]+/' "${out}" | grep -oE '[0-9]+')
    if [[ "${ready}" != "${CHURN_ALLOCATIONS}" || "${torn}" != "${CHURN_ALLOCATIONS}" ]]; then
      round_failures=$(( round_failures + 1 ))
      cp "${out}" "${TMP}/churn-failure-${round_failures}.log"
    fi
  else
    round_failures=$(( round_failures + 1 ))
    cp "${out}" "${TMP}/churn-failure-${round_failures}.log"
  fi
  rounds=$(( rounds + 1 ))
done

wait "${STEADY}" || true
steady_rounds=0
steady_bad=0
for f in "${TMP}"/steady-*.log; do
  [[ -e "${f}" ]] || continue
  steady_rounds=$(( steady_rounds + 1 ))
  result=$(grep '^RESULT' "${f}" || true)
  loss=$(grep -oE 'loss_pct=[0-9.]+' <<<"${result}" | cut -d= -f2)
  if [[ -z "${result}" || "${loss}" != "0.000" ]]; then
    steady_bad=$(( steady_bad + 1 ))

    echo "soak: steady round ${f}: ${result:-no RESULT line}" >&2
  fi
done
final="$(( SECONDS - start )) $(rss_kb) $(fds) ${rounds} ${round_failures}"
samples+=("${final}")
echo "${final}"

# Growth: from the first sample at or after a quarter of the run to the last.
quarter=$(( DURATION / 4 ))
base_rss=""
for s in "${samples[@]}"; do
  read -r t rss _ <<<"${s}"
  if (( t >= quarter )); then base_rss=${rss}; break; fi
done
read -r _ end_rss _ <<<"${final}"
growth=$(( end_rss - ${base_rss:-${end_rss}} ))
echo "RESULT soak_s=${DURATION} rss_after_warmup_kb=${base_rss:-?} rss_end_kb=${end_rss}" \
  "growth_kb=${growth} churn_rounds=${rounds} churn_allocations=$(( rounds * CHURN_ALLOCATIONS ))" \
  "churn_failures=${round_failures} steady_rounds=${steady_rounds}" \
  "steady_rounds_with_loss=${steady_bad}"

status=0
if (( steady_rounds == 0 || steady_bad > 0 )); then
  echo "soak: steady traffic: ${steady_bad} of ${steady_rounds} rounds lost packets or failed" >&2
  status=1
fi
if (( round_failures > 0 )); then
  echo "soak: ${round_failures} churn rounds failed (${TMP}/churn-failure-*.log)" >&2; status=1
fi
if (( growth > MAX_GROWTH_KB )); then
  echo "soak: RSS grew ${growth} KiB after warm-up (limit ${MAX_GROWTH_KB})" >&2; status=1
fi
grep -E ' (error|critical) ' "${TMP}/turnpiked.log" >&2 && status=1
exit ${status}
