#!/usr/bin/env bash
# End-to-end relay test with coturn's own test client (turnutils_uclient) and echo peer
# (turnutils_peer) against the server under test ($SERVER: turnpiked or coturn).
#
# Usage: uclient_test.sh [MODE]
#   channel   (default) RTP/RTCP-like flows over ChannelData (RFC 8656 12), REST credentials
#             minted by uclient itself from the shared secret (-W)
#   userpass  same, with REST credentials minted here (openssl) and given as -u/-w
#   send      Send/Data indications instead of channels (-s, RFC 8656 10 and 11)
#   c2c       client to client through two relays (-y): both ends are TURN allocations
#   tcp       channel run with uclient talking to the server over TCP (-t, RFC 8656 3.1) on
#             the listening port; the relay to the echo peer is still UDP
#   tls       the same over TLS (-t -S) on the TLS port (TP_TLS_PORT, throwaway test
#             certificate from lib.sh). uclient does not verify the certificate (its -E is not
#             enforced in coturn 4.6), so lib.sh's TLS probe (openssl s_client) checks it at
#             start-up and at the end. Against turnpiked the certificate files are then
#             renewed in place and SIGHUP must make new sessions see the new one, and a
#             second, short run must pass on it
#   negative  bad ChannelBind channel numbers (-N) must get 400, fuzzed requests (-R) must not
#             hurt the server, wrong-secret and expired credentials must not get an allocation;
#             then a normal channel run must still pass and the server must exit cleanly
#
# A run passes only if uclient exits 0, every relayed address it got is 127.0.0.1 inside the
# server's relay range, it received something, received exactly what it sent, and its summary
# says "Total lost packets 0".
set -u
. "$(dirname "$0")/lib.sh"

MODE="${1:-channel}"
CLIENTS="${UCLIENT_CLIENTS:-10}"
MESSAGES="${UCLIENT_MESSAGES:-50}"
LENGTH="${UCLIENT_LENGTH:-170}"
RUN_DEADLINE="${UCLIENT_DEADLINE:-60}"
# The address uclient talks to, its peer's, and the relayed addresses expected (ipv6 mode: ::1).
CLIENT_HOST=127.0.0.1
# The server port uclient talks to (the TLS port in tls mode; set after the server started).
SERVER_PORT=""

tp_require turnutils_uclient turnutils_peer

# Runs uclient with the given extra flags against the server and the echo peer; output in $1.
run_uclient() {
  local out="$1"
  shift
  local rc=0
  tp_log "turnutils_uclient $* (-m ${CLIENTS} -n ${MESSAGES} -l ${LENGTH})"
  timeout "${RUN_DEADLINE}" turnutils_uclient -v "$@" -e "${CLIENT_HOST}" -r "${TP_PEER_PORT}" \
    -p "${SERVER_PORT:-${TP_PORT}}" -m "${CLIENTS}" -n "${MESSAGES}" -l "${LENGTH}" \
    "${CLIENT_HOST}" \
    >"${out}" 2>&1 || rc=$?
  return ${rc}
}

# Prints the SHA-256 fingerprint of the certificate served on 127.0.0.1:$1.
served_fingerprint() {
  timeout 3 openssl s_client -connect "${TP_HOST}:$1" </dev/null 2>/dev/null |
    openssl x509 -noout -fingerprint -sha256 2>/dev/null
}

# turnpiked only (coturn reloads certificates differently): a renewed certificate written over
# the same files is served after SIGHUP, and the relay keeps working on it.
check_certificate_reload() {
  local before after want deadline
  before="$(served_fingerprint "${TP_TLS_PORT}")"
  [[ -n "${before}" ]] || tp_fail "reload: no certificate served on ${TP_TLS_PORT}"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=renewed.turnpike.test -addext subjectAltName=IP:127.0.0.1 \
    -keyout "${TP_KEY}.new" -out "${TP_CERT}.new" >/dev/null 2>&1 ||
    tp_fail "reload: openssl could not make the renewed certificate"
  mv "${TP_KEY}.new" "${TP_KEY}"
  mv "${TP_CERT}.new" "${TP_CERT}"
  want="$(openssl x509 -in "${TP_CERT}" -noout -fingerprint -sha256)"
  [[ "${want}" != "${before}" ]] || tp_fail "reload: the renewed certificate is the old one"
  kill -HUP "${TP_SERVER_PID}"
  deadline=$(( SECONDS + 10 ))
  until after="$(served_fingerprint "${TP_TLS_PORT}")"; [[ "${after}" == "${want}" ]]; do
    (( SECONDS < deadline )) ||
      tp_fail "reload: still serving ${after:-nothing} 10 s after SIGHUP (want ${want})"
    sleep 0.2  # poll interval
  done
  grep -q "TLS certificate reloaded" "${TP_SERVER_LOG}" ||
    tp_fail "reload: the server did not log the certificate reload"
  tp_log "SIGHUP: now serving the renewed certificate (${want#*=})"
  CLIENTS=2 MESSAGES=20
  positive_run tls-reloaded -t -S -W "${TP_SECRET}"
}


# A positive run: uclient must exit 0 and its output must pass check_uclient_output.
positive_run() {
  local what="$1"
  shift
  local out="${TP_TMP}/uclient-${what}.log" rc=0
  run_uclient "${out}" "$@" || rc=$?
  if (( rc != 0 )); then
    echo "---- last 20 lines of uclient output ----" >&2
    tail -n 20 "${out}" >&2
    (( rc == 124 )) && tp_fail "${what}: uclient did not finish within ${RUN_DEADLINE}s"
    tp_fail "${what}: uclient exited with status ${rc}"
  fi
  check_uclient_output "${out}" "${what}"
}

# Credentials that must not get an allocation: uclient must fail and report it.
rejected_run() {
  local what="$1"
  shift
  local out="${TP_TMP}/uclient-${what}.log" rc=0
  local saved_clients="${CLIENTS}" saved_messages="${MESSAGES}"
  CLIENTS=1 MESSAGES=5
  run_uclient "${out}" "$@" || rc=$?
  CLIENTS="${saved_clients}" MESSAGES="${saved_messages}"
  (( rc != 124 )) || tp_fail "${what}: uclient hung instead of being refused"
  (( rc != 0 )) || tp_fail "${what}: uclient succeeded with credentials that must be refused"
  grep -q 'Cannot complete Allocation' "${out}" ||
    tp_fail "${what}: uclient failed (status ${rc}) but not by a refused Allocate (see ${out})"
  if grep -q 'Received relay addr' "${out}"; then
    tp_fail "${what}: the server handed out a relayed address"
  fi
  echo "${what}: refused as expected (uclient status ${rc})"
}

negative_tests() {
  # -N: ChannelBind with random channel numbers. Numbers outside the valid range and rebinding a
  # peer to a second channel must both be answered with 400 (RFC 8656 11.2); uclient gives up on
  # the first error.
  local out="${TP_TMP}/uclient-negative-N.log" rc=0
  run_uclient "${out}" -N -W "${TP_SECRET}" || rc=$?
  (( rc != 124 )) || tp_fail "-N: uclient hung (no answer to a bad ChannelBind?)"
  grep -qE 'channel bind: error 400' "${out}" ||
    tp_fail "-N: no ChannelBind was answered with 400 (uclient status ${rc}, see ${out})"
  echo "-N: bad ChannelBinds answered with 400 ($(grep -c 'channel bind: error 400' "${out}") seen)"
  tp_check_server_alive

  # -R: uclient overwrites random bytes in about one request in ten. uclient itself often waits
  # forever for an answer to a request the server rightly dropped, so its outcome is not judged:
  # the server must survive and keep serving. Two runs with different shapes. A run whose very
  # first request was the corrupted one never gets an answer at all (uclient then just waits;
  # about one run in thirteen here), so such a run is tried again, up to six times. Against
  # turnpiked each unanswered attempt must also have raised its drop counter
  # (turnpike_dropped_packets_total, any reason): an attempt the server neither answered nor
  # counted a drop for fails the test.
  local i attempt rc log drops_before drops_after
  local -a shapes=("-m 5 -n 20 -l ${LENGTH}" "-s -m 3 -n 20 -l 60")
  for i in 1 2; do
    log="${TP_TMP}/uclient-R${i}.log"
    for attempt in 1 2 3 4 5 6; do
      rc=0
      drops_before=""
      if [[ "${SERVER}" == turnpiked ]]; then
        drops_before="$(tp_server_metric_sum turnpike_dropped_packets_total)" ||
          tp_fail "-R run ${i}: cannot read turnpike_dropped_packets_total from /metrics"
      fi
      # Line-buffered so the log survives the timeout's SIGTERM.
      # shellcheck disable=SC2086  # the shape is a list of flags
      timeout 10 stdbuf -oL turnutils_uclient -v -R -W "${TP_SECRET}" -e "${TP_HOST}" \
        -r "${TP_PEER_PORT}" -p "${TP_PORT}" ${shapes[i - 1]} "${TP_HOST}" >"${log}" 2>&1 ||
        rc=$?
      grep -q 'response received' "${log}" && break
      if [[ -n "${drops_before}" ]]; then
        drops_after="$(tp_server_metric_sum turnpike_dropped_packets_total)" ||
          tp_fail "-R run ${i}: /metrics did not answer after attempt ${attempt}"
        ((drops_after > drops_before)) ||
          tp_fail "-R run ${i} attempt ${attempt}: never answered, and the server counted no" \
            "dropped packet (drops stayed at ${drops_before}; see ${log})"
        tp_log "-R run ${i} attempt ${attempt}: never answered; the server counted" \
          "$((drops_after - drops_before)) dropped packet(s)"
      else
        tp_log "-R run ${i} attempt ${attempt}: never answered (first request corrupted?)"
      fi
    done
    grep -q 'response received' "${log}" ||
      tp_fail "-R run ${i}: the server never answered the fuzzing client in 6 attempts"
    echo "-R run ${i}: $(grep -cE ' sent$' "${log}") requests sent," \
      "$(grep -c 'response received' "${log}") answered;" \
      "uclient status ${rc} (not judged), attempt ${attempt}"
    tp_check_server_alive
  done
  tp_check_server_alive

  # REST credentials signed with the wrong secret, and ones whose expiry has passed.
  tp_mint_credentials mallory 3600 "not-the-${TP_SECRET}"
  rejected_run wrong-secret -u "${TP_USERNAME}" -w "${TP_PASSWORD}"
  tp_mint_credentials late -60
  rejected_run expired -u "${TP_USERNAME}" -w "${TP_PASSWORD}"
  tp_check_server_alive

  # After all that, ordinary service.
  positive_run channel-after-negative -W "${TP_SECRET}"
}

tp_init
case "${MODE}" in
  tcp) TP_TCP=1 ;;
  tls) TP_TLS=1 ;;
esac
if [[ "${MODE}" == ipv6 ]]; then
  # Dual-stack server: listening and relaying on ::1 as well; uclient asks for IPv6 relayed
  # addresses (-x) and its echo peer listens on ::1.
  CLIENT_HOST=::1
  tp_start_server "--listening-ip=::1" "--relay-ip=::1"
  tp_start_peer
  turnutils_peer -L ::1 -p "${TP_PEER_PORT}" >"${TP_TMP}/peer6-${TP_PEER_PORT}.log" 2>&1 &
  peer6=$!
  tp_track "${peer6}"
  deadline=$(( SECONDS + 10 ))
  until [[ -n "$(ss -Hnuln "src [::1]:${TP_PEER_PORT}" 2>/dev/null)" ]]; do
    kill -0 "${peer6}" 2>/dev/null || tp_fail "the IPv6 echo peer exited"
    (( SECONDS < deadline )) || tp_fail "the IPv6 echo peer did not bind [::1]:${TP_PEER_PORT}"
    sleep 0.05  # poll interval
  done
else
  tp_start_server
  tp_start_peer
fi

case "${MODE}" in
  channel)
    positive_run channel -W "${TP_SECRET}"
    ;;
  userpass)
    tp_mint_credentials alice
    positive_run userpass -u "${TP_USERNAME}" -w "${TP_PASSWORD}"
    ;;
  send)
    positive_run send -s -W "${TP_SECRET}"
    ;;
  c2c)
    positive_run c2c -y -W "${TP_SECRET}"
    ;;
  ipv6)
    positive_run ipv6 -x -W "${TP_SECRET}"
    ;;
  tcp)
    positive_run tcp -t -W "${TP_SECRET}"
    ;;
  tls)
    SERVER_PORT="${TP_TLS_PORT}"
    positive_run tls -t -S -W "${TP_SECRET}"
    # uclient offers TLS 1.0/1.1-only handshakes on some connections at random; a server that
    # refuses them makes it reconnect with another version (its "cannot connect" lines).
    tls_sessions="$(grep -c 'tls_connect: client session connected' "${TP_TMP}/uclient-tls.log")"
    (( tls_sessions >= CLIENTS )) ||
      tp_fail "tls: only ${tls_sessions} TLS sessions for ${CLIENTS} clients"
    echo "tls: ${tls_sessions} TLS sessions ($(grep -oE 'method=TLSv[0-9.]+' \
      "${TP_TMP}/uclient-tls.log" | sort | uniq -c | tr -s ' \n' ' '))"
    [[ "${SERVER}" == turnpiked ]] && check_certificate_reload
    ;;
  negative)
    negative_tests
    ;;
  *)
    tp_fail "unknown mode '${MODE}' (channel, userpass, send, c2c, ipv6, tcp, tls, negative)"
    ;;
esac

tp_check_server_alive
tp_stop_server
echo "PASS: uclient ${MODE} against ${SERVER}"
