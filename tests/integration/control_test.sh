#!/usr/bin/env bash
# Control-plane integration tests (issue 5): starts turnpiked with its HTTP control plane on a
# free loopback port, a bearer token and a configuration file (so reload has something to
# re-read), then runs one mode of control_test.py against it:
#
#   api       every endpoint, bad input, auth, drain, reload, events, checked against
#             docs/openapi.yaml
#   notoken   no token configured: /v1 refuses, probes still answer
#   metrics   promtool check metrics on live scrapes while turnpike-loadgen relays
#   uclient   credentials from POST /v1/credentials work with turnutils_uclient
#   drain     SIGTERM drain: a running uclient session ends with zero loss, a new Allocate gets
#             403, /readyz is 503, then the daemon exits 0
#   storm     ~200 concurrent /metrics per second during constant-rate relaying: zero loss
#
# Environment as in lib.sh (TURNPIKED); turnpikectl and turnpike-loadgen are taken from the
# same build directory.
set -u
. "$(dirname "$0")/lib.sh"

MODE="${1:-api}"
tp_require curl python3
tp_init
[[ "${SERVER}" == turnpiked ]] || tp_fail "control-plane tests need SERVER=turnpiked"
BUILD_DIR="$(dirname "${TURNPIKED:-${TP_REPO_DIR}/build/turnpiked}")"

CTL_PORT="$(tp_free_tcp_port)"
export TP_AVOID_PORTS="${CTL_PORT}"  # not the TURN listening port too (seen in CI)
TOKEN="token-$$-${RANDOM}${RANDOM}"
CONF="${TP_TMP}/turnpike.conf"
printf 'deployment-color=blue\nuser-quota=0\n' >"${CONF}"
args=(-c "${CONF}" "--control-listen=127.0.0.1:${CTL_PORT}" "--drain-timeout=$([[ ${MODE} == drain ]] && echo 30 || echo 0)")
if [[ "${MODE}" != notoken ]]; then
  printf '%s\n' "${TOKEN}" >"${TP_TMP}/token"
  args+=("--control-token-file=${TP_TMP}/token")
fi
unset TURNPIKE_CONTROL_TOKEN
tp_start_server "${args[@]}"
tp_wait_http "http://127.0.0.1:${CTL_PORT}/ping"

export TP_PORT TP_MIN_PORT TP_MAX_PORT TP_SECRET TP_REALM TP_TMP TP_SERVER_PID TP_SERVER_LOG
export TP_CTL_PORT="${CTL_PORT}" TP_TOKEN="${TOKEN}" TP_CONF="${CONF}" TP_BUILD_DIR="${BUILD_DIR}"
export TP_REPO_DIR
if [[ "${MODE}" == uclient || "${MODE}" == drain ]]; then
  tp_start_peer
  export TP_PEER_PORT
fi
python3 "${TP_LIB_DIR}/control_test.py" "${MODE}" || tp_fail "control_test.py ${MODE} failed"
if [[ "${MODE}" == drain ]]; then
  # control_test.py sent SIGTERM and saw the daemon exit; reap it here.
  status=0
  wait "${TP_SERVER_PID}" || status=$?
  tp_untrack "${TP_SERVER_PID}"
  (( status == 0 )) || tp_fail "turnpiked exited with status ${status} after the drain"
  exit 0
fi
tp_check_server_alive
tp_stop_server
