#!/usr/bin/env bash
# coturn's turnutils_uclient through turnpiked's DPDK data plane (backend=dpdk), inside a network
# namespace this test creates (unshare -n), so no traffic leaves it:
#
#   kernel side of the namespace                       turnpiked (DPDK, net_tap PMD)
#   tp0 10.200.0.1/24  <---------- TAP link ---------->  dpdk-address 10.200.0.2/24
#   turnutils_uclient (client), turnutils_peer (echo peer)
#
# The client reaches 10.200.0.2:3478 over the TAP link, turnpiked answers ARP itself, relays from
# 10.200.0.2 to the peer at 10.200.0.1 (next hop resolved by its own ARP), and uclient must
# receive exactly what it sent: ChannelData (default), Send/Data indications (-s) and
# client-to-client through two relays (-y), zero loss. EAL runs with --no-huge (TAP needs no hugepages). Needs root.
#
# With `workers`, turnpiked runs two workers (three lcores floating over the machine's CPUs).
# net_tap has a queue pair per worker and RSS, so dpdk-queues=auto gives each worker its own:
# the kernel spreads frames over the TAP queues (by flow, learning which queue a flow's replies
# come from), a worker hands a frame of the other's allocation (relay port, client 5-tuple
# hash) to it, ARP replies are shared, and client-to-client traffic hairpins between relays of
# different workers. Each worker must have relayed traffic (/metrics per worker).
#
# Usage: dpdk_tap_test.sh [workers]   (environment: TURNPIKED, the binary; default build/turnpiked)
set -u
. "$(dirname "$0")/lib.sh"
tp_enter_netns "$0" "$@"

SERVER=turnpiked
CLIENTS="${UCLIENT_CLIENTS:-10}"
MESSAGES="${UCLIENT_MESSAGES:-50}"
LENGTH="${UCLIENT_LENGTH:-170}"
PEER_PORT=3480

tp_require turnutils_uclient turnutils_peer turnutils_stunclient ip curl
tp_init
ip link set lo up
MODE="${1:-one}"
case "${MODE}" in
  one) ;;
  workers) export TP_DPDK_LCORES="--lcores=0@(0-1),1@(0-1),2@(0-1)" ;;
  *) tp_fail "unknown mode '${MODE}' (one, workers)" ;;
esac
tp_start_dpdk_server
CLIENT_HOST="${TP_HOST}"          # the data plane's address: server and relayed address
PEER_HOST="${TP_DPDK_PEER_HOST}"  # the kernel side of the TAP link

turnutils_peer -L "${PEER_HOST}" -p "${PEER_PORT}" >"${TP_TMP}/peer.log" 2>&1 &
tp_track $!
tp_wait_udp_bound "${PEER_PORT}" $!

run() {
  local what="$1" out="${TP_TMP}/uclient-$1.log" rc=0
  shift
  tp_log "turnutils_uclient $* (-m ${CLIENTS} -n ${MESSAGES} -l ${LENGTH}) through DPDK"
  timeout 60 turnutils_uclient -v "$@" -W "${TP_SECRET}" -e "${PEER_HOST}" -r "${PEER_PORT}" \
    -p "${TP_PORT}" -m "${CLIENTS}" -n "${MESSAGES}" -l "${LENGTH}" "${CLIENT_HOST}" \
    >"${out}" 2>&1 || rc=$?
  (( rc == 0 )) || { tail -n 20 "${out}" >&2; tp_fail "${what}: uclient exited with ${rc}"; }
  check_uclient_output "${out}" "dpdk ${what}"
}
run channel
run send -s
# Client to client through two relays of this node: the DPDK worker hairpins relay-to-relay
# traffic to its own address back into its receive path.
run c2c -y
# A peer the data plane has never heard from (a second address on the kernel side): the first
# relayed packets to it wait while ARP resolves 10.200.0.3 instead of being dropped, which
# uclient would report as loss.
ip addr add 10.200.0.3/24 dev tp0 || tp_fail "cannot add 10.200.0.3 to tp0"
turnutils_peer -L 10.200.0.3 -p 3481 >"${TP_TMP}/peer-fresh.log" 2>&1 &
tp_track $!
tp_wait_udp_bound 3481 $!
PEER_HOST=10.200.0.3 PEER_PORT=3481 run fresh-peer
parked="$(curl -s --max-time 2 http://127.0.0.1:9641/metrics |
  sed -n 's/^turnpike_neighbor_parked_packets_total //p')"
(( ${parked:-0} > 0 )) || tp_fail "no frame was parked while 10.200.0.3 resolved"
echo "dpdk: ${parked} frames parked while ARP resolved their next hop, none lost"

metrics="$(curl -s --max-time 2 http://127.0.0.1:9641/metrics)"
grep -q 'turnpike_build_info{.*backend="dpdk"' <<<"${metrics}" ||
  tp_fail "/metrics does not report backend=dpdk"
relayed="$(grep -E '^turnpike_relayed_packets_total\{direction="to_client"\}' <<<"${metrics}" |
  awk '{print $2}')"
(( ${relayed:-0} >= 3 * CLIENTS * MESSAGES )) ||
  tp_fail "/metrics counts ${relayed:-0} packets relayed to clients, expected at least" \
    "$(( 3 * CLIENTS * MESSAGES ))"
echo "dpdk: ${relayed} packets relayed to clients by the DPDK worker"

# Without dpdk-kernel-interface, TCP to the node's address is dropped and counted (the exception
# path has its own test, dpdk_kernel_test.sh).
not_for_relay() {
  curl -s --max-time 2 http://127.0.0.1:9641/metrics |
    sed -n 's/^turnpike_io_dropped_packets_total{reason="rx_not_for_relay"} //p'
}
before="$(not_for_relay)"
if curl -s -o /dev/null --max-time 2 "http://${TP_HOST}:9641/metrics"; then
  tp_fail "TCP to ${TP_HOST} was answered although the node has no kernel interface"
fi
after="$(not_for_relay)"
(( ${after:-0} > ${before:-0} )) ||
  tp_fail "the TCP SYNs to ${TP_HOST} were not counted as rx_not_for_relay (${before} -> ${after})"
echo "dpdk: TCP to ${TP_HOST} dropped and counted (rx_not_for_relay ${before} -> ${after})"

if [[ "${MODE}" == workers ]]; then
  grep -q 'turnpike_workers 2$' <<<"${metrics}" || tp_fail "/metrics does not report 2 workers"
  for w in 0 1; do
    got="$(sed -n "s/^turnpike_worker_received_packets_total{worker=\"${w}\"} //p" <<<"${metrics}")"
    (( ${got:-0} >= MESSAGES )) ||
      tp_fail "worker ${w} handled ${got:-0} packets (expected at least ${MESSAGES})"
    echo "dpdk: worker ${w} handled ${got} packets"
  done
  grep -q "DPDK: 2 workers, each on its own queue pair" "${TP_SERVER_LOG}" ||
    tp_fail "the workers do not have a TAP queue pair each"
  grep -o "DPDK: .*rte_flow.*" "${TP_SERVER_LOG}" >&2 || true
  dispatched="$(sed -n 's/^turnpike_dispatched_packets_total //p' <<<"${metrics}")"
  # Frames the kernel put on the other worker's queue, and ARP copies: at least the copy of the
  # peer's ARP reply (how many frames land on the wrong queue is the kernel's choice).
  (( ${dispatched:-0} > 0 )) || tp_fail "no frame was handed between workers (not even ARP)"
  echo "dpdk: a TAP queue pair per worker; ${dispatched} frames handed to their owner"
fi

# The same counters through DPDK telemetry (the node registers /turnpike/counters).
if command -v dpdk-telemetry.py >/dev/null 2>&1; then
  tel="$(echo /turnpike/counters | timeout 10 dpdk-telemetry.py -f "${TP_DPDK_PREFIX}" 2>&1)"
  tel_relayed="$(grep -oE '"relayed_to_client": [0-9]+' <<<"${tel}" | grep -oE '[0-9]+$')"
  [[ -n "${tel_relayed}" ]] || tp_fail "dpdk-telemetry.py /turnpike/counters answered: ${tel}"
  (( tel_relayed == relayed )) ||
    tp_fail "telemetry says ${tel_relayed} relayed to clients, /metrics ${relayed}"
  echo "dpdk: telemetry /turnpike/counters agrees (relayed_to_client ${tel_relayed})"
else
  tp_fail "dpdk-telemetry.py not found (apt-get install dpdk-dev; scripts/setup.sh does)"
fi

# Which TX checksum path the run above exercised (the kernel side verified every checksum:
# a wrong one would have lost uclient's packets): net_tap offers UDP checksum offload.
echo "dpdk: $(grep -o 'TX checksum offload: .*' "${TP_SERVER_LOG}" | head -1)"

tp_stop_server
echo "PASS: uclient through the DPDK data plane (net_tap, namespace, mode ${MODE})"
