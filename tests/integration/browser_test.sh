#!/usr/bin/env bash
# Browser interop test: headless Chromium (driven by playwright-core from browser/run.mjs) makes
# a WebRTC call between two peer connections in one page, relay-only, through the TURN server
# under test ($SERVER: turnpiked or coturn). Checks a data channel echo, decoded video, received
# audio, and that the selected candidate pairs are relay candidates on 127.0.0.1 inside the
# server's relay range.
#
# Usage: browser_test.sh [MODE]  how Chromium reaches the TURN server:
#   udp    (default) turn:127.0.0.1:PORT?transport=udp
#   tcp    turn:127.0.0.1:PORT?transport=tcp (TURN over TCP, RFC 8656 3.1)
#   turns  turns:127.0.0.1:TLSPORT?transport=tcp (TURN over TLS) with a throwaway self-signed
#          certificate (lib.sh); Chromium trusts only that key, via
#          --ignore-certificate-errors-spki-list
#   dpdk   turnpiked only: backend=dpdk on net_tap, turn:10.200.0.2:3478?transport=udp over
#          the TAP link of this test's namespace (lib.sh tp_start_dpdk_server); both relays are
#          10.200.0.2, so the media crosses the data plane's relay-to-relay hairpin
#   dpdk-turns  turnpiked only: the same node with dpdk-kernel-interface=tpk0, and Chromium in
#          a second namespace of this test's (as dpdk_kernel_test.sh) on
#          turns:10.200.0.2:5349?transport=tcp: the node's kernel terminates TLS behind the data
#          plane and relays with kernel sockets (docs/dpdk.md, "TURN over TCP and TLS")
# In every mode the selected local relay candidates must report that protocol (relayProtocol
# udp, tcp or tls), so a silent fallback to another transport fails the test.
#
# Needs: Debian packages chromium and nodejs (with npm), and `npm ci` run in
# tests/integration/browser (playwright-core, pinned in package-lock.json).
#
# The whole test runs in a private network namespace that has only a loopback interface when
# `unshare -n` works (we are root on the dev machines and CI), so neither Chromium nor anything
# else can send beyond loopback. TP_NETNS=0 runs it in the current namespace instead.
set -u

if [[ "${TP_NETNS:-1}" != 0 && -z "${TP_IN_NETNS:-}" ]] &&
    unshare -n true 2>/dev/null && command -v ip >/dev/null 2>&1; then
  exec unshare -n -- env TP_IN_NETNS=1 bash -c 'ip link set lo up && exec "$0" "$@"' "$0" "$@"
fi

. "$(dirname "$0")/lib.sh"

MODE="${1:-udp}"
case "${MODE}" in
  udp | tcp | turns | dpdk | dpdk-turns) ;;
  *) tp_fail "unknown mode '${MODE}' (udp, tcp, turns, dpdk, dpdk-turns)" ;;
esac
BROWSER_DIR="${TP_LIB_DIR}/browser"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"

[[ -x "${CHROMIUM}" ]] ||
  tp_fail "Chromium not found at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM)"
command -v node >/dev/null 2>&1 || tp_fail "node not found (apt-get install nodejs npm)"
[[ -d "${BROWSER_DIR}/node_modules/playwright-core" ]] ||
  tp_fail "playwright-core is not installed: run 'npm ci' in ${BROWSER_DIR}"

tp_init
[[ -n "${TP_IN_NETNS:-}" ]] && tp_log "running in a private network namespace (loopback only)"
case "${MODE}" in
  tcp) TP_TCP=1 ;;
  turns) TP_TLS=1 ;;
esac
# shellcheck disable=SC2119  # no extra server arguments; the script's $1 is the mode
if [[ "${MODE}" == dpdk ]]; then
  # turnpiked's DPDK data plane on net_tap; the browser reaches it over the TAP link.
  [[ -n "${TP_IN_NETNS:-}" ]] || tp_fail "the dpdk mode needs a network namespace (root)"
  # Software checksums: net_tap offers offload (dpdk_tap_test.sh runs with it), so this run
  # covers the other TX path, where a relayed body's UDP checksum is derived from the received
  # datagram's (the kernel of the namespace verifies every one the browsers get).
  tp_start_dpdk_server --dpdk-no-checksum-offload
  grep -q 'TX checksum offload: UDP no' "${TP_SERVER_LOG}" ||
    tp_fail "turnpiked did not turn checksum offload off (log ${TP_SERVER_LOG})"
elif [[ "${MODE}" == dpdk-turns ]]; then
  # The browser in a namespace of its own: with tpk0 holding 10.200.0.2 here, the kernel would
  # deliver its packets locally instead of through the data plane.
  [[ -n "${TP_IN_NETNS:-}" ]] || tp_fail "the dpdk-turns mode needs a network namespace (root)"
  tp_add_client_netns "tp-browser-$$"
  TP_TLS_PORT=5349
  tp_make_cert
  tp_start_dpdk_server --dpdk-kernel-interface=tpk0 --tls-listening-port="${TP_TLS_PORT}" \
    --cert="${TP_CERT}" --pkey="${TP_KEY}"
  ip addr add "${TP_HOST}/24" dev tpk0 || tp_fail "cannot address tpk0"
  ip link set tpk0 up || tp_fail "cannot bring tpk0 up"
else
  tp_start_server
fi
tp_mint_credentials browser
case "${MODE}" in
  udp | dpdk)
    turn_url="turn:${TP_HOST}:${TP_PORT}?transport=udp" relay_protocol=udp ;;
  tcp)
    turn_url="turn:${TP_HOST}:${TP_PORT}?transport=tcp" relay_protocol=tcp ;;
  turns | dpdk-turns)
    turn_url="turns:${TP_HOST}:${TP_TLS_PORT}?transport=tcp" relay_protocol=tls ;;
esac

rc=0
# (tp_in_client: in the browser's namespace in the dpdk-turns mode, else here.)
tp_in_client env TURN_URL="${turn_url}" RELAY_PROTOCOL="${relay_protocol}" \
  TLS_SPKI="${TP_CERT_SPKI}" TURN_USERNAME="${TP_USERNAME}" TURN_CREDENTIAL="${TP_PASSWORD}" \
  RELAY_MIN_PORT="${TP_MIN_PORT}" RELAY_MAX_PORT="${TP_MAX_PORT}" RELAY_HOST="${TP_HOST}" \
  CHROMIUM="${CHROMIUM}" \
  timeout "${BROWSER_DEADLINE:-180}" node "${BROWSER_DIR}/run.mjs" &
node_pid=$!
tp_track "${node_pid}"
wait "${node_pid}" || rc=$?
tp_untrack "${node_pid}"
(( rc != 124 )) || tp_fail "the browser test did not finish within ${BROWSER_DEADLINE:-180}s"
(( rc == 0 )) || tp_fail "the browser test failed (status ${rc})"

tp_check_server_alive
tp_stop_server
echo "PASS: browser relay (${MODE}) against ${SERVER}"
