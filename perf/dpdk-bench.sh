#!/usr/bin/env bash
# perf/dpdk-bench.sh: the DPDK relay against the packet-forwarding limit of this machine
# (issue 4, "Done when"). Root only (hugepages, DPDK).
#
# What it does:
#   0. Hugepages: echo ${HUGEPAGES:-1024} > /proc/sys/vm/nr_hugepages and a hugetlbfs mount on
#      /dev/hugepages unless one is there.
#   1. Baseline: dpdk-testpmd in io forwarding mode (every frame received is sent back
#      unchanged) on a net_memif server port, on CPU 1. testpmd refuses to run with a single
#      lcore ("No cores defined for forwarding": its main lcore never forwards), so it gets
#      --lcores=0@1,1@1: the main lcore (idle, printing stats every few seconds) and the
#      forwarding lcore share CPU 1. The generator, turnpike-dpdk-loadgen --raw, runs on CPU 0
#      (-l 0) over the memif client and sends the same frames as in step 2 (218-byte ChannelData
#      frames and 214-byte UDP frames, alternating) and counts what comes back.
#   2. Relay: turnpiked --backend=dpdk on a net_memif server port with -l 0-1 (lcore 0: control
#      plane, mostly asleep; lcore 1 = CPU 1: the worker), --unauth-rate=0, REST secret. The
#      generator on CPU 0 does real TURN handshakes for $ALLOCATIONS allocations (Allocate ->
#      401 -> Allocate -> ChannelBind to 10.201.0.3:<port i>), then sends ChannelData from the
#      clients (4 + 172 bytes of UDP payload: 14+20+8+4+172 = 218-byte frames) and UDP from the
#      peers (172 bytes: 214-byte frames) and counts what the relay forwards.
#   Both steps use the same measuring procedure in the generator: a first trial of
#   $BENCH_SECONDS seconds unpaced (a full memif ring is back-pressure: the generator retries,
#   it is not loss). If that trial loses more than $MAX_LOSS_PCT percent, up to $SEARCH_STEPS
#   trials of $TRIAL_SECONDS seconds bisect the offered rate between 0 and the unpaced delivered
#   rate, and the result is the fastest trial with loss <= $MAX_LOSS_PCT. Loss is counted after
#   a 200 ms drain; delivered Mpps counts packets received during the sending interval; latency
#   is from a TSC stamp in each payload (generator TX to generator RX, so it includes both memif
#   hops and the relay or testpmd), p50/p99 of that trial.
#   The final line is
#     RESULT relay_mpps=X testpmd_mpps=Y ratio=Z loss_pct=W p99_us=V
#   with X and Y the delivered rates (Mpps, both directions together), Z = X / Y, and W and V
#   the relay trial's loss and p99 latency.
#   With ROUNDS=N (odd; default 1), steps 1 and 2 run N times, alternating, each round printing
#   a `ROUND i ...` line, and RESULT is the round with the median ratio (its own figures): on a
#   host whose speed changes between minutes, one round's ratio can be far off either way.
#   Each round also prints where the relay worker's cycles went, per packet, from its sampled
#   step timings in the /turnpike/counters telemetry (rx, classify, engine, build, tx; see
#   docs/dpdk.md), when dpdk-telemetry.py is installed.
#
# The machine has 2 CPUs and other work may be running: `uptime` is printed next to each
# figure so the load is on record. Every process started here is stopped on exit.
#
# Environment: BUILD (build dir with turnpiked and perf/dpdk/turnpike-dpdk-loadgen, default
# build, as scripts/setup.sh configures it), ALLOCATIONS (10000), BENCH_SECONDS (5),
# TRIAL_SECONDS (2), SEARCH_STEPS (6), MAX_LOSS_PCT (0.1), PAYLOAD (172), HUGEPAGES (1024),
# ROUNDS (1).
set -euo pipefail

REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${BUILD:-${REPO_DIR}/build}"
TURNPIKED="${TURNPIKED:-${BUILD}/turnpiked}"
GEN="${GEN:-${BUILD}/perf/dpdk/turnpike-dpdk-loadgen}"
ALLOCATIONS="${ALLOCATIONS:-10000}"
BENCH_SECONDS="${BENCH_SECONDS:-5}"
TRIAL_SECONDS="${TRIAL_SECONDS:-2}"
SEARCH_STEPS="${SEARCH_STEPS:-6}"
MAX_LOSS_PCT="${MAX_LOSS_PCT:-0.1}"
PAYLOAD="${PAYLOAD:-172}"
HUGEPAGES="${HUGEPAGES:-1024}"
ROUNDS="${ROUNDS:-1}"
SECRET="dpdk-bench-secret-$$"
REALM="bench.turnpike"

log() { printf '[dpdk-bench] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[[ "$(id -u)" == 0 ]] || die "run as root (hugepages, DPDK)"
[[ -x "${TURNPIKED}" ]] || die "no ${TURNPIKED}: scripts/setup.sh, then ninja -C build"
[[ -x "${GEN}" ]] || die "no ${GEN}: build perf/dpdk (needs libdpdk-dev)"
command -v dpdk-testpmd >/dev/null || die "dpdk-testpmd not found (apt-get install dpdk-dev; scripts/setup.sh does)"
[[ "${ROUNDS}" =~ ^[0-9]+$ ]] && (( ROUNDS % 2 == 1 )) || die "ROUNDS must be odd (1, 3, 5 ...)"

RUN_DIR="$(mktemp -d /tmp/tp-dpdk-bench.XXXXXX)"
PREFIXES=("tpb-testpmd-$$" "tpb-relay-$$" "tpb-gen-a-$$" "tpb-gen-b-$$")
PIDS=()

cleanup() {
  local rc=$?
  local pid
  for pid in "${PIDS[@]}"; do
    kill -TERM "${pid}" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do
      kill -0 "${pid}" 2>/dev/null || break
      sleep 0.1  # wait for a clean EAL shutdown
    done
    kill -KILL "${pid}" 2>/dev/null || true
    wait "${pid}" 2>/dev/null || true
  done
  local p
  for p in "${PREFIXES[@]}"; do
    rm -rf "/var/run/dpdk/${p}"
    rm -f /dev/hugepages/"${p}"map_* 2>/dev/null || true
  done
  if [[ "${KEEP_LOGS:-0}" == 1 || ${rc} != 0 ]]; then
    log "logs kept in ${RUN_DIR}"
  else
    rm -rf "${RUN_DIR}"
  fi
  exit "${rc}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# 0. Hugepages.
if (( $(cat /proc/sys/vm/nr_hugepages) < HUGEPAGES )); then
  echo "${HUGEPAGES}" > /proc/sys/vm/nr_hugepages
fi
mkdir -p /dev/hugepages
mountpoint -q /dev/hugepages || mount -t hugetlbfs nodev /dev/hugepages
free_pages=$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)
(( free_pages >= 512 )) || die "only ${free_pages} free hugepages (need 512)"

# Waits until `file` contains `pattern` while `pid` lives.
wait_for_log() {
  local pid=$1 file=$2 pattern=$3 deadline=$(( SECONDS + 30 ))
  until grep -q -- "${pattern}" "${file}" 2>/dev/null; do
    kill -0 "${pid}" 2>/dev/null || { cat "${file}" >&2; die "process ${pid} exited (log ${file})"; }
    (( SECONDS < deadline )) || { cat "${file}" >&2; die "timed out waiting for '${pattern}' in ${file}"; }
    sleep 0.2  # poll interval
  done
}

# run_gen LOG ARGS... -- EAL: runs the generator on CPU 0, prints its report, returns its
# GEN line in $GEN_LINE. With LINGER=1 the generator stays connected after its report
# (--linger, before the EAL arguments) and its pid is left in $GEN_PID for the caller to stop
# after the forwarder: see stop_lingering.
GEN_LINE=""
GEN_PID=""
run_gen() {
  local out=$1; shift
  local rc=0
  "${GEN}" "$@" >"${out}" 2>&1 &
  local pid=$!
  PIDS+=("${pid}")
  if [[ "${LINGER:-0}" == 1 ]]; then
    until grep -q '^GEN ' "${out}" 2>/dev/null; do
      kill -0 "${pid}" 2>/dev/null || break  # ended early: its exit status says why
      sleep 0.2  # poll interval
    done
  fi
  if [[ "${LINGER:-0}" == 1 ]] && kill -0 "${pid}" 2>/dev/null; then
    GEN_PID="${pid}"
  else
    wait "${pid}" || rc=$?
  fi
  grep -v -e '^EAL:' -e '^TELEMETRY:' "${out}" >&2 || true
  (( rc == 0 )) || die "generator failed (exit ${rc}, log ${out})"
  GEN_LINE="$(grep '^GEN ' "${out}" | tail -1)"
  [[ -n "${GEN_LINE}" ]] || die "no GEN line in ${out}"
}

# Stops the lingering generator (after the relay it is connected to has stopped).
stop_lingering() {
  [[ -n "${GEN_PID}" ]] || return 0
  local rc=0
  kill -TERM "${GEN_PID}" 2>/dev/null || true
  wait "${GEN_PID}" || rc=$?
  GEN_PID=""
  (( rc == 0 )) || die "generator failed (exit ${rc})"
}

field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }

GEN_COMMON=(--allocations="${ALLOCATIONS}" --payload="${PAYLOAD}" --seconds="${BENCH_SECONDS}"
            --max-loss-pct="${MAX_LOSS_PCT}" --search-steps="${SEARCH_STEPS}"
            --trial-seconds="${TRIAL_SECONDS}")

# 1. dpdk-testpmd io forwarding. Sets TESTPMD_LINE and UPTIME_A.
run_testpmd() {
  local round=$1
  local sock="${RUN_DIR}/memif-testpmd-${round}.sock"
  log "round ${round}, step 1: dpdk-testpmd io forwarding on net_memif (CPU 1), generator --raw on CPU 0"
  dpdk-testpmd --lcores=0@1,1@1 --no-pci --file-prefix="${PREFIXES[0]}" \
    --vdev="net_memif0,role=server,socket=${sock}" -- \
    --forward-mode=io --auto-start --nb-cores=1 --stats-period=5 \
    >"${RUN_DIR}/testpmd-${round}.log" 2>&1 </dev/null &
  local pid=$!
  PIDS+=("${pid}")
  wait_for_log "${pid}" "${RUN_DIR}/testpmd-${round}.log" "io packet forwarding"
  UPTIME_A="$(uptime)"
  log "load: ${UPTIME_A}"
  # Lingering as in step 2: testpmd's polling lcore can fault on the generator's disconnect too.
  LINGER=1 run_gen "${RUN_DIR}/gen-testpmd-${round}.log" --raw "${GEN_COMMON[@]}" \
    --linger=600 -- \
    -l 0 --no-pci --file-prefix="${PREFIXES[2]}" --vdev="net_memif0,role=client,socket=${sock}"
  TESTPMD_LINE="${GEN_LINE}"
  log "load after: $(uptime)"
  kill -INT "${pid}" 2>/dev/null || true
  wait "${pid}" 2>/dev/null || true
  stop_lingering
}

# 2. The relay. Sets RELAY_LINE and UPTIME_B.
run_relay() {
  local round=$1
  local sock="${RUN_DIR}/memif-relay-${round}.sock"
  log "round ${round}, step 2: turnpiked --backend=dpdk on net_memif (worker on CPU 1), ${ALLOCATIONS} allocations"
  "${TURNPIKED}" --backend=dpdk \
    --dpdk-args="-l 0-1 --no-pci --file-prefix=${PREFIXES[1]} --vdev=net_memif0,role=server,socket=${sock}" \
    --dpdk-address=10.201.0.2/24 --listening-port=3478 --min-port=20000 --max-port=39999 \
    --realm="${REALM}" --use-auth-secret --static-auth-secret="${SECRET}" \
    --allowed-peer-ip=10.201.0.3 --unauth-rate=0 --control-listen=off --drain-timeout=0 \
    --log-file=stdout >"${RUN_DIR}/turnpiked-${round}.log" 2>&1 </dev/null &
  local pid=$!
  PIDS+=("${pid}")
  wait_for_log "${pid}" "${RUN_DIR}/turnpiked-${round}.log" "ready:"
  UPTIME_B="$(uptime)"
  log "load: ${UPTIME_B}"
  # The generator stays connected until turnpiked has stopped: DPDK 22.11's memif PMD unmaps
  # the rings on a peer's disconnect under a polling worker, which can fault (docs/dpdk.md).
  LINGER=1 run_gen "${RUN_DIR}/gen-relay-${round}.log" --secret="${SECRET}" "${GEN_COMMON[@]}" \
    --linger=600 -- \
    -l 0 --no-pci --file-prefix="${PREFIXES[3]}" --vdev="net_memif0,role=client,socket=${sock}"
  RELAY_LINE="${GEN_LINE}"
  log "load after: $(uptime)"
  STAGES_LINE=""
  if command -v dpdk-telemetry.py >/dev/null; then
    local counters
    counters="$(echo /turnpike/counters | timeout 10 dpdk-telemetry.py -f "${PREFIXES[1]}" 2>/dev/null | tail -1 || true)"
    log "relay counters: ${counters}"
    # The worker's sampled step timings (IoCounters::stage_*), as cycles per packet.
    STAGES_LINE="$(python3 -c '
import json, sys
c = json.loads(sys.stdin.read())["/turnpike/counters"]
n = c["stage_packets"]
steps = ["rx", "classify", "engine", "build", "tx"]
if n:
    per = [c["stage_cycles_" + s] / n for s in steps]
    print(" ".join("%s=%.0f" % (s, p) for s, p in zip(steps, per)),
          "sum=%.0f" % sum(per), "tsc_ghz=%.2f" % (c["tsc_hz"] / 1e9), "packets=%d" % n)
' <<<"${counters}" 2>/dev/null || true)"
  fi
  kill -TERM "${pid}" 2>/dev/null || true
  wait "${pid}" 2>/dev/null || true
  stop_lingering
}

# Rounds: ratio, then every field of the round, one line each (sorted by ratio below).
ROUND_LINES=()
for (( round = 1; round <= ROUNDS; ++round )); do
  run_testpmd "${round}"
  run_relay "${round}"
  t="$(field delivered_mpps "${TESTPMD_LINE}")"
  r="$(field delivered_mpps "${RELAY_LINE}")"
  q="$(awk -v r="${r}" -v t="${t}" 'BEGIN { printf "%.3f", (t > 0 ? r / t : 0) }')"
  echo "testpmd: ${TESTPMD_LINE}"
  echo "testpmd load: ${UPTIME_A}"
  echo "relay:   ${RELAY_LINE}"
  echo "relay load:   ${UPTIME_B}"
  [[ -z "${STAGES_LINE}" ]] || echo "relay cycles per packet (sampled bursts): ${STAGES_LINE}"
  echo "ROUND ${round} relay_mpps=${r} testpmd_mpps=${t} ratio=${q}"
  ROUND_LINES+=("${q} ${round}|${TESTPMD_LINE}|${RELAY_LINE}")
done
median="$(printf '%s\n' "${ROUND_LINES[@]}" | sort -n | sed -n "$(( (ROUNDS + 1) / 2 ))p")"
TESTPMD_LINE="$(cut -d'|' -f2 <<<"${median}")"
RELAY_LINE="$(cut -d'|' -f3 <<<"${median}")"
(( ROUNDS == 1 )) || echo "median round: ${median%%|*} (ratio, round)"

testpmd_mpps="$(field delivered_mpps "${TESTPMD_LINE}")"
relay_mpps="$(field delivered_mpps "${RELAY_LINE}")"
loss_pct="$(field loss_pct "${RELAY_LINE}")"
p99_us="$(field p99_us "${RELAY_LINE}")"
ratio="$(awk -v r="${relay_mpps}" -v t="${testpmd_mpps}" 'BEGIN { printf "%.3f", (t > 0 ? r / t : 0) }')"

echo "RESULT relay_mpps=${relay_mpps} testpmd_mpps=${testpmd_mpps} ratio=${ratio} loss_pct=${loss_pct} p99_us=${p99_us}"
