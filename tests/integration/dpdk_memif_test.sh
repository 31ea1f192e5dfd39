#!/usr/bin/env bash
# Several DPDK workers on net_memif: turnpiked with two workers on a memif server port, and the
# DPDK TURN load generator (perf/dpdk/turnpike-dpdk-loadgen) on the memif client. memif is
# shared memory between the two processes over a UNIX socket: no network, no namespace needed.
#
# Mode `one` (default; memif has no RSS, so dpdk-queues=auto picks this):
#   generator (memif client)  <== memif ==>  turnpiked worker 0 (polls the port, distributes)
#   N clients: Allocate, 401, Allocate, ChannelBind            |--> worker 1 (its RX ring)
#   then ChannelData from clients, UDP from peers, paced   worker 1's TX ring --> worker 0 --> port
# Mode `per-worker` (dpdk-queues=per-worker; the generator opens two rings and puts each frame
# on the one a hash of its UDP ports picks, as a NIC's RSS would):
#   ring w --> worker w: its own frames handled, the other worker's handed to it --> ring w
#
# Checks: every handshake succeeds; every relayed frame arrives at the right client or peer
# (the generator's misrouting check) with a correct UDP checksum (one in 16 verified); loss is
# at most LOSS_MAX_PCT; both workers own allocations and handled packets (/metrics per worker);
# frames were handed between workers and none dropped for a full ring. EAL runs with --no-huge (memif
# works without hugepages); the three busy lcores float over the machine's CPUs. Needs root.
#
# Usage: dpdk_memif_test.sh [one|per-worker]   (environment: TURNPIKED, default build/turnpiked; LOADGEN, default
# the generator next to it; ALLOCATIONS 2000, RATE 20000 packets/s, SECONDS_RUN 3, LOSS_MAX_PCT 0.1)
#
# Three busy-polling threads share a 2-core CI machine here, so the rate is low: a worker that
# is scheduled out for a time slice must not overflow its 1024-frame ring. Speed is not what
# this test is about (docs/performance.md).
set -u
. "$(dirname "$0")/lib.sh"

SERVER=turnpiked
MODE="${1:-one}"
case "${MODE}" in
  one) QUEUES=1 ;;
  per-worker) QUEUES=2 ;;
  *) echo "usage: $0 [one|per-worker]" >&2; exit 2 ;;
esac
TURNPIKED="${TURNPIKED:-${TP_REPO_DIR}/build/turnpiked}"
LOADGEN="${LOADGEN:-$(dirname "${TURNPIKED}")/perf/dpdk/turnpike-dpdk-loadgen}"
ALLOCATIONS="${ALLOCATIONS:-2000}"
RATE="${RATE:-20000}"
SECONDS_RUN="${SECONDS_RUN:-3}"
LOSS_MAX_PCT="${LOSS_MAX_PCT:-0.1}"

[[ ${EUID} -eq 0 ]] || tp_fail "the DPDK test needs root (EAL)"
[[ -x "${LOADGEN}" ]] || tp_fail "no load generator at ${LOADGEN} (built with libdpdk-dev)"
tp_require curl
tp_init

SOCK="${TP_TMP}/memif.sock"
PREFIX_RELAY="tp-memif-relay-$$"
PREFIX_GEN="tp-memif-gen-$$"
TP_DPDK_PREFIXES+=("${PREFIX_RELAY}" "${PREFIX_GEN}")
CONTROL_PORT="$(tp_free_tcp_port)"
FLOAT="(0-$(( $(nproc) - 1 )))"
SERVER_LOG="${TP_TMP}/turnpiked-memif.log"

"${TURNPIKED}" --backend=dpdk \
  --dpdk-args="--lcores=0@${FLOAT},1@${FLOAT},2@${FLOAT} --no-huge -m 512 --no-pci --file-prefix=${PREFIX_RELAY} --vdev=net_memif0,role=server,socket=${SOCK}" \
  --dpdk-address=10.201.0.2/24 --listening-port=3478 --min-port=20000 --max-port=29999 \
  --realm="${TP_REALM}" --use-auth-secret --static-auth-secret="${TP_SECRET}" \
  --allowed-peer-ip=10.201.0.3 --unauth-rate=0 --control-listen="127.0.0.1:${CONTROL_PORT}" \
  --dpdk-queues="${MODE}" --drain-timeout=0 --log-file=stdout >"${SERVER_LOG}" 2>&1 </dev/null &
SERVER_PID=$!
tp_track "${SERVER_PID}"
deadline=$(( SECONDS + 30 ))
until grep -q "ready:" "${SERVER_LOG}"; do
  kill -0 "${SERVER_PID}" 2>/dev/null || { cat "${SERVER_LOG}" >&2; tp_fail "turnpiked exited"; }
  (( SECONDS < deadline )) || { cat "${SERVER_LOG}" >&2; tp_fail "turnpiked not ready in 30 s"; }
  sleep 0.2  # poll interval
done
if [[ "${MODE}" == one ]]; then
  grep -q "DPDK: 2 workers on one queue pair" "${SERVER_LOG}" ||
    tp_fail "turnpiked did not start two DPDK workers on one queue pair"
else
  grep -q "DPDK: 2 workers, each on its own queue pair" "${SERVER_LOG}" ||
    tp_fail "turnpiked did not start two DPDK workers on a queue pair each"
fi
tp_log "turnpiked (DPDK, 2 workers on net_memif, queues: ${MODE}) ready"

GEN_LOG="${TP_TMP}/loadgen.log"
# The generator stays connected after its report (--linger) until turnpiked has been read and
# stopped: DPDK 22.11's memif PMD unmaps the shared rings when the peer disconnects while this
# side's workers may be inside rx/tx_burst, which then fault (docs/dpdk.md). Stopping turnpiked
# first leaves the generator's one lcore asleep when its peer goes.
"${LOADGEN}" --secret="${TP_SECRET}" --realm="${TP_REALM}" \
  --allocations="${ALLOCATIONS}" --payload=172 --seconds="${SECONDS_RUN}" --rate="${RATE}" \
  --search-steps=0 --max-loss-pct="${LOSS_MAX_PCT}" --queues="${QUEUES}" --linger=120 -- \
  --lcores="0@${FLOAT}" --no-huge -m 512 --no-pci --file-prefix="${PREFIX_GEN}" \
  --vdev="net_memif0,role=client,socket=${SOCK}" >"${GEN_LOG}" 2>&1 </dev/null &
GEN_PID=$!
tp_track "${GEN_PID}"
deadline=$(( SECONDS + 120 ))
until grep -q '^GEN ' "${GEN_LOG}" 2>/dev/null; do
  if ! kill -0 "${GEN_PID}" 2>/dev/null; then  # ended without a report: a failure
    rc=0
    wait "${GEN_PID}" || rc=$?
    tp_untrack "${GEN_PID}"
    grep -v -e '^EAL:' -e '^TELEMETRY:' "${GEN_LOG}" >&2
    tp_fail "the load generator exited with ${rc} before its report"
  fi
  (( SECONDS < deadline )) || tp_fail "no report from the load generator within 120 s"
  sleep 0.2  # poll interval
done
grep -v -e '^EAL:' -e '^TELEMETRY:' "${GEN_LOG}" >&2

line="$(grep '^GEN ' "${GEN_LOG}" | tail -1)"
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"${line}"; }
[[ -n "${line}" ]] || tp_fail "no GEN line from the load generator"
grep -q "handshakes: ${ALLOCATIONS} ok, 0 failed" "${GEN_LOG}" ||
  tp_fail "not every handshake succeeded"
sent="$(field sent)"
received="$(field received)"
loss="$(field loss_pct)"
(( sent >= RATE * SECONDS_RUN / 2 )) || tp_fail "the generator sent only ${sent} packets"
[[ "$(field misrouted)" == 0 && "$(field bad_checksums)" == 0 ]] ||
  tp_fail "misrouted or corrupted frames: ${line}"
awk -v l="${loss}" -v m="${LOSS_MAX_PCT}" 'BEGIN { exit !(l <= m) }' ||
  tp_fail "loss ${loss}% above ${LOSS_MAX_PCT}% (${received} of ${sent} received)"

metrics="$(curl -s --max-time 2 "http://127.0.0.1:${CONTROL_PORT}/metrics")"
metric() { sed -n "s/^$1 //p" <<<"${metrics}"; }
for w in 0 1; do
  allocs="$(metric "turnpike_worker_allocations{worker=\"${w}\"}")"
  handled="$(metric "turnpike_worker_received_packets_total{worker=\"${w}\"}")"
  # The client 5-tuple hash spreads the allocations; each worker must own a fair part of them
  # and have handled its clients' and peers' packets.
  (( ${allocs:-0} >= ALLOCATIONS / 4 )) ||
    tp_fail "worker ${w} owns ${allocs:-0} of ${ALLOCATIONS} allocations"
  (( ${handled:-0} >= sent / 4 )) || tp_fail "worker ${w} handled ${handled:-0} packets"
  echo "memif: worker ${w} owns ${allocs} allocations and handled ${handled} packets"
done
dispatched="$(metric turnpike_dispatched_packets_total)"
ring_full="$(metric 'turnpike_io_dropped_packets_total{reason="dispatch_ring_full"}')"
# One queue pair: worker 0 hands worker 1 its half. Per worker: the generator's port hash is
# unrelated to ownership, so about half of all frames land on the other worker's ring.
(( ${dispatched:-0} >= sent / 4 )) || tp_fail "only ${dispatched:-0} frames were handed over"
[[ "${ring_full}" == 0 ]] || tp_fail "${ring_full} frames dropped for a full worker ring"
echo "memif (${MODE}): ${dispatched} frames handed to their owning worker, none dropped"

kill -TERM "${SERVER_PID}"
wait "${SERVER_PID}" || tp_fail "turnpiked exited with $? on SIGTERM"
tp_untrack "${SERVER_PID}"
kill -TERM "${GEN_PID}"
rc=0
wait "${GEN_PID}" || rc=$?
tp_untrack "${GEN_PID}"
(( rc == 0 )) || tp_fail "the load generator exited with ${rc} (misrouted or bad checksums?)"
echo "PASS: ${received} of ${sent} packets relayed by two DPDK workers on net_memif" \
  "(queues: ${MODE}; loss ${loss}%)"
