# shellcheck shell=bash
# Shared helpers for Turnpike's end-to-end interop tests. Source it from a bash script:
#
#   . "$(dirname "$0")/lib.sh"
#   tp_init            # temp dir, cleanup trap
#   tp_start_server    # picks ports and a relay range, starts $SERVER, waits for a STUN answer
#   ...
#   tp_stop_server     # SIGTERM, must exit cleanly within a deadline
#
# Environment:
#   SERVER     turnpiked (default) or coturn: which TURN server is under test. Every test is
#              written against coturn's turnserver first, so the tests themselves are checked
#              against a known-good implementation.
#   TURNPIKED  path to the turnpiked binary (meson passes it; default <repo>/build/turnpiked).
#   TURNSERVER path to coturn's turnserver (default: turnserver from PATH).
#   TP_KEEP_TMP=1 keeps the temp dir (logs) after the test.
#   TP_TLS=1   (set before tp_start_server) also serves TURN over TLS: a throwaway self-signed
#              certificate is made in the temp dir (tp_make_cert), a second port is picked
#              (TP_TLS_PORT) and both servers get --tls-listening-port, --cert and --pkey.
#   TP_TCP=1   (set before tp_start_server) also waits for the TCP listener on TP_PORT.
#
# Network rule: everything here binds and sends to 127.0.0.1 only.

set -u
set -o pipefail

SERVER="${SERVER:-turnpiked}"
TP_LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TP_REPO_DIR="$(cd "${TP_LIB_DIR}/../.." && pwd)"
TP_HOST=127.0.0.1
TP_REALM="${TP_REALM:-turnpike.test}"
TP_SECRET="${TP_SECRET:-interop-secret-$$-${RANDOM}}"
# Relay ranges are reserved below the kernel's ephemeral range (32768+ by default) so that the
# clients' own ephemeral sockets never take a port a parallel test's server relays from.
TP_RANGE_LOW=10000
TP_RANGE_HIGH=32000
TP_RANGE_SIZE="${TP_RANGE_SIZE:-200}"
TP_RANGE_LOCK_DIR="${TMPDIR:-/tmp}/turnpike-interop-ranges"

TP_PIDS=()          # everything we started, killed by the cleanup trap
TP_TMP=""
TP_SERVER_PID=""
TP_SERVER_LOG=""
TP_PORT=""
TP_MIN_PORT=""
TP_MAX_PORT=""
TP_RANGE_LOCK=""
TP_FAILED=0
TP_ADDED_NETNS=()   # network namespaces we added (ip netns add), deleted by the cleanup trap
TP_DPDK_PREFIXES=() # EAL --file-prefix names we used: their /var/run/dpdk dirs go at cleanup
TP_TLS="${TP_TLS:-0}"
TP_TCP="${TP_TCP:-0}"
TP_TLS_PORT=""
TP_CERT=""
TP_KEY=""
TP_CERT_SPKI=""

tp_log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

# Re-runs the calling script in a new network namespace of its own (unshare -n) unless it runs
# in one already; the DPDK tests need root for it anyway. Call right after sourcing this file:
#   tp_enter_netns "$0" "$@"
tp_enter_netns() {
  [[ -n "${TP_IN_NETNS:-}" ]] && return 0
  if [[ ${EUID} -ne 0 ]]; then
    echo "FAIL: this test needs root (DPDK's EAL, TAP devices, a network namespace)" >&2
    exit 1
  fi
  exec unshare -n env TP_IN_NETNS=1 bash "$@"
}

tp_fail() {
  TP_FAILED=1
  echo "FAIL: $*" >&2
  exit 1
}

tp_require() {
  local tool
  for tool in "$@"; do
    command -v "${tool}" >/dev/null 2>&1 || tp_fail "required tool '${tool}' not found in PATH"
  done
}

# Creates the temp dir and installs the cleanup trap. Call once, first.
tp_init() {
  tp_require python3 openssl ss timeout turnutils_stunclient
  TP_TMP="$(mktemp -d "${TMPDIR:-/tmp}/turnpike-it.XXXXXX")"
  trap tp_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  tp_log "server under test: ${SERVER}; temp dir ${TP_TMP}"
}

tp_cleanup() {
  local rc=$?
  local pid
  if [[ ${rc} -ne 0 || ${TP_FAILED} -ne 0 ]]; then
    tp_server_counters  # while the server still runs
  fi
  for pid in "${TP_PIDS[@]}"; do
    tp_kill_tree "${pid}"
  done
  for pid in "${TP_PIDS[@]}"; do
    wait "${pid}" 2>/dev/null
  done
  [[ -n "${TP_RANGE_LOCK}" ]] && rm -rf "${TP_RANGE_LOCK}"
  local prefix
  for prefix in "${TP_DPDK_PREFIXES[@]}"; do
    # The EAL leaves its runtime files (about 3 MB) behind, one directory per prefix.
    [[ -n "${prefix}" ]] && rm -rf "/var/run/dpdk/${prefix}"
  done
  local ns
  for ns in "${TP_ADDED_NETNS[@]}"; do
    ip netns delete "${ns}" 2>/dev/null
  done
  if [[ ${rc} -ne 0 || ${TP_FAILED} -ne 0 ]]; then
    if [[ -n "${TP_SERVER_LOG}" && -f "${TP_SERVER_LOG}" ]]; then
      echo "---- last 40 lines of server log ${TP_SERVER_LOG} ----" >&2
      tail -n 40 "${TP_SERVER_LOG}" >&2
    fi
    echo "(temp dir kept: ${TP_TMP})" >&2
  elif [[ -n "${TP_TMP}" && "${TP_KEEP_TMP:-0}" != 1 ]]; then
    rm -rf "${TP_TMP}"
  fi
  return ${rc}
}

# turnpiked only: prints the control address (ip:port) its ready line names; fails when there
# is no such server or line.
tp_control_addr() {
  [[ "${SERVER:-}" == turnpiked && -n "${TP_SERVER_LOG}" && -f "${TP_SERVER_LOG}" ]] || return 1
  local addr
  addr="$(sed -n 's/.* ready: .* control \([0-9.]*:[0-9]*\).*/\1/p' "${TP_SERVER_LOG}" | tail -1)"
  [[ -n "${addr}" ]] || return 1
  echo "${addr}"
}

# turnpiked only: prints the sum of the /metrics samples whose name is $1 (all label sets).
# Fails when the server does not answer or has no such metric.
tp_server_metric_sum() {
  local addr
  addr="$(tp_control_addr)" || return 1
  curl -s --max-time 3 "http://${addr}/metrics" |
    awk -v name="$1" '$1 == name || index($1, name "{") == 1 { sum += $2; seen = 1 }
                      END { if (!seen) exit 1; printf "%d\n", sum }'
}

# turnpiked only, for a failure's diagnosis: prints to stderr the packet counters of its
# /metrics that are not zero (drops by reason among them), read from the control address its
# ready line names. Prints nothing when there is no such server or it does not answer.
tp_server_counters() {
  local addr
  addr="$(tp_control_addr)" || return 0
  python3 - "${addr}" >&2 <<'PY' || true
import sys
import urllib.request

try:
    text = urllib.request.urlopen("http://%s/metrics" % sys.argv[1], timeout=3).read().decode()
except OSError as e:
    sys.exit("---- server counters: /metrics on %s: %s ----" % (sys.argv[1], e))
print("---- non-zero packet counters of the server (%s/metrics) ----" % sys.argv[1])
for line in text.splitlines():
    if line.startswith("turnpike_") and "packets" in line and not line.endswith(" 0"):
        print(line)
PY
}

# Prints pid $1 and all its descendants, parents first.
tp_descendants() {
  local child
  echo "$1"
  for child in $(ps -o pid= --ppid "$1" 2>/dev/null); do
    tp_descendants "${child}"
  done
}

# SIGKILLs process $1 and everything below it (node's Chromium runs in its own process group,
# so killing a group would miss it). The tree is stopped first and listed again, so nothing can
# fork a child that escapes the list or be re-parented away from it before the kill.
tp_kill_tree() {
  local pids
  pids="$(tp_descendants "$1")"
  # shellcheck disable=SC2086  # one pid per word
  kill -STOP ${pids} 2>/dev/null
  pids="$(tp_descendants "$1")"
  # shellcheck disable=SC2086
  kill -KILL ${pids} 2>/dev/null
}

# Remembers a background pid so the cleanup trap kills it.
tp_track() { TP_PIDS+=("$1"); }

tp_untrack() {
  local keep=() pid
  for pid in "${TP_PIDS[@]}"; do
    [[ "${pid}" != "$1" ]] && keep+=("${pid}")
  done
  TP_PIDS=("${keep[@]}")
}

# Prints a UDP port that is free on 127.0.0.1 right now (the kernel picks it), e.g. for a peer.
tp_free_udp_port() {
  python3 -c 'import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# Waits until process $2 has a UDP socket bound to port $1 (deadline $3 s, default 10), in
# TP_DPDK_CLIENT_NS when set.
tp_wait_udp_bound() {
  local port="$1" pid="$2" deadline=$(( SECONDS + ${3:-10} ))
  until [[ -n "$(tp_in_client ss -Hnuln "sport = :${port}" 2>/dev/null)" ]]; do
    kill -0 "${pid}" 2>/dev/null || tp_fail "process ${pid} exited before binding UDP port ${port}"
    (( SECONDS < deadline )) || tp_fail "nothing bound UDP port ${port} within the deadline"
    sleep 0.05  # poll interval
  done
}

# Starts coturn's turnutils_peer (a UDP echo peer) on 127.0.0.1 and waits until it is bound.
# Sets TP_PEER_PORT.
tp_start_peer() {
  tp_require turnutils_peer
  TP_PEER_PORT="$(tp_free_udp_port)" || tp_fail "no free port for the peer"
  turnutils_peer -L "${TP_HOST}" -p "${TP_PEER_PORT}" >"${TP_TMP}/peer-${TP_PEER_PORT}.log" 2>&1 &
  local pid=$!
  tp_track "${pid}"
  tp_wait_udp_bound "${TP_PEER_PORT}" "${pid}"
  tp_log "turnutils_peer (pid ${pid}) echoes on ${TP_HOST}:${TP_PEER_PORT}"
}

# Picks the ports for one server in a single python3 run (python's start-up is the slow part):
#  - a listening port free for both UDP and TCP on 127.0.0.1 (the TURN listener takes both);
#    the kernel picks it (bind to port 0), so parallel tests do not collide;
#  - with TP_TLS=1, a second such port for TURN over TLS (free for UDP too, so a server that
#    also opens DTLS there cannot collide);
#  - a relay range of TP_RANGE_SIZE ports whose UDP ports are all free right now and that no
#    other interop test holds (an atomic mkdir per range start, owned by this shell's pid; a
#    range whose owner died is taken back).
# Never picks a port listed in TP_AVOID_PORTS (space-separated).
# Sets TP_PORT, TP_MIN_PORT, TP_MAX_PORT, TP_RANGE_LOCK, and TP_TLS_PORT when TP_TLS=1.
tp_pick_ports() {
  mkdir -p "${TP_RANGE_LOCK_DIR}"
  local out
  out="$(python3 - "${TP_RANGE_LOCK_DIR}" "$$" "${TP_RANGE_LOW}" "${TP_RANGE_HIGH}" \
      "${TP_RANGE_SIZE}" "${TP_MIN_PORT}" "${TP_TLS}" <<'EOF'
import os, random, shutil, socket, sys

lock_dir, owner = sys.argv[1], sys.argv[2]
low, high, size = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
have_range = sys.argv[6] != ""
want_tls = sys.argv[7] == "1"

def udp_free(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()

def pid_alive(pid):
    try:
        os.kill(int(pid), 0)
        return True
    except (OSError, ValueError):
        return False

def listening_port(avoid=()):
    for _ in range(100):
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(("127.0.0.1", 0))
        port = u.getsockname()[1]
        if port in avoid:
            u.close()
            continue
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            t.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            t.close()
            u.close()
    sys.exit("no free listening port")

def relay_range():
    starts = list(range(low, high - size + 1, size))
    random.shuffle(starts)
    for base in starts:
        path = os.path.join(lock_dir, str(base))
        try:
            os.mkdir(path)
        except FileExistsError:
            try:
                with open(os.path.join(path, "pid")) as f:
                    holder = f.read().strip()
            except OSError:
                continue  # being created right now
            if not pid_alive(holder):
                shutil.rmtree(path, ignore_errors=True)
            continue
        with open(os.path.join(path, "pid"), "w") as f:
            f.write(owner)
        if all(udp_free(p) for p in range(base, base + size)):
            return base, path
        shutil.rmtree(path, ignore_errors=True)
    sys.exit("no free relay port range")

# TP_AVOID_PORTS: ports the test took already (a control-plane port from tp_free_tcp_port was
# released when picked, so the kernel may hand it out again here).
taken = tuple(int(p) for p in os.environ.get("TP_AVOID_PORTS", "").split())
port = listening_port(avoid=taken)
tls_port = listening_port(avoid=(port,) + taken) if want_tls else "-"
if have_range:
    print(port, tls_port)
else:
    base, path = relay_range()
    print(port, tls_port, base, base + size - 1, path)
EOF
  )" || tp_fail "could not pick free ports: ${out}"
  local fields=()
  read -r -a fields <<<"${out}"
  TP_PORT="${fields[0]}"
  TP_TLS_PORT=""
  [[ "${fields[1]}" != - ]] && TP_TLS_PORT="${fields[1]}"
  if [[ -z "${TP_MIN_PORT}" ]]; then
    TP_MIN_PORT="${fields[2]}"
    TP_MAX_PORT="${fields[3]}"
    TP_RANGE_LOCK="${fields[4]}"
  fi
}

# Makes a throwaway self-signed certificate and key for TURN over TLS in the temp dir (once per
# test; ECDSA P-256, valid for 2 days, for 127.0.0.1, ::1, localhost and the DPDK tests'
# 10.200.0.2) and computes the base64 SHA-256 of its SubjectPublicKeyInfo, the form Chromium's
# --ignore-certificate-errors-spki-list takes. Sets TP_CERT, TP_KEY, TP_CERT_SPKI.
tp_make_cert() {
  [[ -n "${TP_TMP}" ]] || tp_fail "tp_init was not called"
  [[ -n "${TP_CERT}" ]] && return 0
  local cert="${TP_TMP}/tls-cert.pem" key="${TP_TMP}/tls-key.pem"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=turnpike.test \
    -addext subjectAltName=IP:127.0.0.1,IP:::1,IP:10.200.0.2,DNS:localhost \
    -addext extendedKeyUsage=serverAuth -keyout "${key}" -out "${cert}" \
    >"${TP_TMP}/tls-cert.log" 2>&1 ||
    tp_fail "openssl could not make a test certificate: $(cat "${TP_TMP}/tls-cert.log")"
  TP_CERT_SPKI="$(openssl x509 -in "${cert}" -pubkey -noout |
    openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | openssl base64 -A)"
  [[ -n "${TP_CERT_SPKI}" ]] || tp_fail "could not compute the test certificate's SPKI hash"
  TP_CERT="${cert}"
  TP_KEY="${key}"
  tp_log "test certificate ${TP_CERT} (SPKI sha256 ${TP_CERT_SPKI})"
}

# Prints the server command line (one argument per line) for $SERVER with listening port $1.
tp_server_argv() {
  local port="$1"
  local common=(
    "--listening-ip=${TP_HOST}" "--listening-port=${port}" "--relay-ip=${TP_HOST}"
    "--min-port=${TP_MIN_PORT}" "--max-port=${TP_MAX_PORT}" "--realm=${TP_REALM}"
    "--use-auth-secret" "--static-auth-secret=${TP_SECRET}" "--allow-loopback-peers"
    "--log-file=stdout" "--verbose"
  )
  local no_tls=--no-tls
  if [[ -n "${TP_TLS_PORT}" ]]; then
    # TURN over TLS (RFC 8656 3.1) on its own port; turnpiked takes coturn's option names.
    common+=("--tls-listening-port=${TP_TLS_PORT}" "--cert=${TP_CERT}" "--pkey=${TP_KEY}")
    no_tls=""
  fi
  case "${SERVER}" in
    coturn)
      # coturn would otherwise also open its telnet CLI on fixed port 5766, TLS/DTLS on 5349
      # and an RFC 5780 alternate port: fixed ports break running tests in parallel. With
      # TP_TLS=1 TLS is on (on TP_TLS_PORT); DTLS stays off.
      printf '%s\n' "${TURNSERVER:-turnserver}" "${common[@]}" \
        --no-cli ${no_tls:+"${no_tls}"} --no-dtls --no-rfc5780 --simple-log
      ;;
    turnpiked)
      # No drain on SIGTERM (uclient leaves allocations behind) and an ephemeral control port,
      # so tests running side by side do not compete for 9641.
      printf '%s\n' "${TURNPIKED:-${TP_REPO_DIR}/build/turnpiked}" "${common[@]}" \
        "--worker-threads=${TP_WORKER_THREADS:-2}" --drain-timeout=0 \
        --control-listen=127.0.0.1:0
      ;;
    *)
      tp_fail "SERVER must be 'coturn' or 'turnpiked', not '${SERVER}'"
      ;;
  esac
}

# Puts the DPDK tests' client side in a network namespace of its own, named $1 (removed at
# exit), with loopback up: tp_start_dpdk_server moves tp0 there, and tp_in_client runs there.
tp_add_client_netns() {
  TP_DPDK_CLIENT_NS="$1"
  ip netns add "${TP_DPDK_CLIENT_NS}" || tp_fail "cannot add network namespace ${TP_DPDK_CLIENT_NS}"
  TP_ADDED_NETNS+=("${TP_DPDK_CLIENT_NS}")
  export TP_DPDK_CLIENT_NS
  tp_in_client ip link set lo up
}

# Runs a command on the client side: in network namespace TP_DPDK_CLIENT_NS when set (the DPDK
# tests with a kernel interface), else here.
tp_in_client() {
  if [[ -n "${TP_DPDK_CLIENT_NS:-}" ]]; then
    ip netns exec "${TP_DPDK_CLIENT_NS}" "$@"
  else
    "$@"
  fi
}

# Sends one STUN Binding request to TP_HOST:$1; succeeds if a Binding success response came.
tp_stun_ping() {
  tp_in_client timeout "${TP_PING_TIMEOUT:-2}" turnutils_stunclient "${TP_HOST}" -p "$1" 2>&1 |
    grep -q "reflexive addr"
}

# Succeeds if a TCP socket is listening on 127.0.0.1:$1 (or on a wildcard address).
tp_tcp_listening() {
  [[ -n "$(ss -Htln "sport = :$1" 2>/dev/null)" ]]
}

# Completes a TLS handshake with TP_HOST:$1 (from the client namespace in DPDK tests) that
# verifies the server's certificate against the test certificate (TP_CERT) for IP TP_HOST;
# succeeds only if it did.
tp_tls_probe() {
  tp_in_client timeout "${TP_PING_TIMEOUT:-2}" openssl s_client -connect "${TP_HOST}:$1" -brief \
    -CAfile "${TP_CERT}" -verify_ip "${TP_HOST}" -verify_return_error </dev/null >/dev/null 2>&1
}

# Starts the server under test with a fresh listening port and relay range plus any extra
# arguments given, and waits (deadline TP_START_DEADLINE seconds, default 20) until it answers a
# STUN Binding, and with TP_TCP=1 until it listens on TCP TP_PORT too, and with TP_TLS=1 until a
# TLS handshake on TP_TLS_PORT succeeds with the test certificate.
# Sets TP_PORT, TP_SERVER_PID, TP_SERVER_LOG (and TP_TLS_PORT, TP_CERT, TP_KEY, TP_CERT_SPKI).
tp_start_server() {
  [[ -n "${TP_TMP}" ]] || tp_fail "tp_init was not called"
  [[ "${TP_TLS}" == 1 ]] && tp_make_cert
  tp_pick_ports
  local argv=()
  mapfile -t argv < <(tp_server_argv "${TP_PORT}")
  [[ -x "${argv[0]}" ]] || command -v "${argv[0]}" >/dev/null 2>&1 ||
    tp_fail "server binary '${argv[0]}' not found (build it, or set TURNPIKED / SERVER)"
  TP_SERVER_LOG="${TP_TMP}/server-${TP_PORT}.log"
  tp_log "starting: ${argv[*]} $*"
  "${argv[@]}" "$@" >"${TP_SERVER_LOG}" 2>&1 &
  TP_SERVER_PID=$!
  tp_track "${TP_SERVER_PID}"
  local deadline=$(( SECONDS + ${TP_START_DEADLINE:-20} ))
  while (( SECONDS < deadline )); do
    if ! kill -0 "${TP_SERVER_PID}" 2>/dev/null; then
      wait "${TP_SERVER_PID}"
      tp_fail "${SERVER} exited during start-up (exit status $?)"
    fi
    if tp_stun_ping "${TP_PORT}" &&
        { [[ "${TP_TCP}" != 1 ]] || tp_tcp_listening "${TP_PORT}"; } &&
        { [[ -z "${TP_TLS_PORT}" ]] || tp_tls_probe "${TP_TLS_PORT}"; }; then
      tp_log "${SERVER} (pid ${TP_SERVER_PID}) answers STUN on ${TP_HOST}:${TP_PORT}," \
        "relay ports ${TP_MIN_PORT}-${TP_MAX_PORT}${TP_TLS_PORT:+, TLS on ${TP_HOST}:${TP_TLS_PORT}}"
      return 0
    fi
    sleep 0.1  # poll interval between readiness probes, not a wait for readiness
  done
  [[ "${TP_TCP}" != 1 ]] || tp_tcp_listening "${TP_PORT}" ||
    tp_fail "${SERVER} did not listen on TCP ${TP_HOST}:${TP_PORT} within the deadline"
  [[ -z "${TP_TLS_PORT}" ]] || tp_tls_probe "${TP_TLS_PORT}" ||
    tp_fail "${SERVER} did not complete a TLS handshake (test certificate, IP ${TP_HOST}) on" \
      "${TP_HOST}:${TP_TLS_PORT} within the deadline"
  tp_fail "${SERVER} did not answer a STUN Binding on ${TP_HOST}:${TP_PORT} within the deadline"
}

# Checks the server is still running and still answers STUN (and, as started, still listens on
# TCP and still completes TLS handshakes).
tp_check_server_alive() {
  kill -0 "${TP_SERVER_PID}" 2>/dev/null || tp_fail "${SERVER} is no longer running"
  tp_stun_ping "${TP_PORT}" || tp_fail "${SERVER} no longer answers STUN Binding"
  [[ "${TP_TCP}" != 1 ]] || tp_tcp_listening "${TP_PORT}" ||
    tp_fail "${SERVER} no longer listens on TCP ${TP_HOST}:${TP_PORT}"
  [[ -z "${TP_TLS_PORT}" ]] || tp_tls_probe "${TP_TLS_PORT}" ||
    tp_fail "${SERVER} no longer completes TLS handshakes on ${TP_HOST}:${TP_TLS_PORT}"
}

# Sends SIGTERM and requires a clean exit (status 0; see below for coturn) within TP_STOP_DEADLINE seconds (default 10).
tp_stop_server() {
  local pid="${TP_SERVER_PID}"
  [[ -n "${pid}" ]] || return 0
  kill -0 "${pid}" 2>/dev/null || tp_fail "${SERVER} had already exited before SIGTERM"
  kill -TERM "${pid}"
  local deadline=$(( SECONDS + ${TP_STOP_DEADLINE:-10} ))
  while kill -0 "${pid}" 2>/dev/null; do
    # A zombie still answers kill -0; it has exited, wait reaps it below.
    [[ "$(ps -o stat= -p "${pid}" 2>/dev/null)" == Z* ]] && break
    (( SECONDS < deadline )) || tp_fail "${SERVER} did not exit within ${TP_STOP_DEADLINE:-10}s of SIGTERM"
    sleep 0.1
  done
  local status=0
  wait "${pid}" || status=$?
  tp_untrack "${pid}"
  TP_SERVER_PID=""
  # coturn 4.6 has no SIGTERM handler and dies by the signal (status 143); that is the reference
  # behaviour, not a test failure. turnpiked handles SIGTERM and must exit 0.
  if [[ ${status} -ne 0 && ! ( "${SERVER}" == coturn && ${status} -eq 143 ) ]]; then
    tp_fail "${SERVER} exited with status ${status} after SIGTERM (want 0)"
  fi
  tp_log "${SERVER} exited cleanly on SIGTERM"
}

# TURN REST API credentials (draft-uberti-behave-turn-rest, as coturn's --use-auth-secret):
# username = "<expiry unix time>:<user>", password = base64(HMAC-SHA1(secret, username)).
# Sets TP_USERNAME and TP_PASSWORD. Args: [user] [ttl seconds] [secret].
tp_mint_credentials() {
  local user="${1:-user}" ttl="${2:-3600}" secret="${3:-${TP_SECRET}}"
  TP_USERNAME="$(( $(date +%s) + ttl )):${user}"
  TP_PASSWORD="$(printf '%s' "${TP_USERNAME}" |
    openssl dgst -sha1 -hmac "${secret}" -binary | openssl base64 -A)"
  [[ -n "${TP_PASSWORD}" ]] || tp_fail "could not compute the REST password with openssl"
}

# Prints a TCP port that is free on 127.0.0.1 right now (the kernel picks it), e.g. for the
# control plane's HTTP listener.
tp_free_tcp_port() {
  python3 -c 'import socket
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# Waits until an HTTP GET of $1 answers at all (any status; deadline $2 s, default 10).
tp_wait_http() {
  local url="$1" deadline=$(( SECONDS + ${2:-10} ))
  until curl -s -o /dev/null --max-time 1 "${url}"; do
    (( SECONDS < deadline )) || tp_fail "nothing answered HTTP at ${url} within the deadline"
    sleep 0.05  # poll interval
  done
}

# Checks a finished uclient run's output: relay addresses, totals, zero loss. Uses
# CLIENT_HOST (the server's and relay's address), TP_MIN_PORT/TP_MAX_PORT, CLIENTS, MESSAGES
# and LENGTH of the caller.
check_uclient_output() {
  local out="$1" what="$2"
  local relays bad send_msgs recv_msgs send_bytes recv_bytes lost
  relays="$(grep -oE 'Received relay addr: [0-9a-f.:]+:[0-9]+' "${out}" | awk '{print $4}')"
  [[ -n "${relays}" ]] || tp_fail "${what}: uclient reported no relayed address"
  bad=""
  local r
  while read -r r; do  # host is everything before the last colon (IPv6 has more colons)
    if [[ "${r%:*}" != "${CLIENT_HOST}" ]] || (( ${r##*:} < TP_MIN_PORT || ${r##*:} > TP_MAX_PORT )); then
      bad+="${r} "
    fi
  done <<<"${relays}"
  [[ -z "${bad}" ]] ||
    tp_fail "${what}: relayed address(es) outside ${CLIENT_HOST}:${TP_MIN_PORT}-${TP_MAX_PORT}: ${bad}"
  local n_relays
  n_relays="$(wc -l <<<"${relays}")"
  (( n_relays >= CLIENTS )) || tp_fail "${what}: only ${n_relays} allocations for ${CLIENTS} clients"

  # The final totals are the start_mclient lines without "msz=" (those are progress lines).
  local totals bytes_line
  totals="$(grep -E 'start_mclient: tot_send_msgs=' "${out}" | tail -n 1)"
  bytes_line="$(grep -E 'start_mclient: tot_send_bytes ~' "${out}" | tail -n 1)"
  lost="$(grep -oE 'Total lost packets [0-9]+' "${out}" | tail -n 1 | awk '{print $4}')"
  [[ -n "${totals}" && -n "${bytes_line}" && -n "${lost}" ]] ||
    tp_fail "${what}: uclient printed no final summary (see ${out})"
  send_msgs="$(sed -E 's/.*tot_send_msgs=([0-9]+).*/\1/' <<<"${totals}")"
  recv_msgs="$(sed -E 's/.*tot_recv_msgs=([0-9]+).*/\1/' <<<"${totals}")"
  send_bytes="$(sed -E 's/.*tot_send_bytes ~ ([0-9]+).*/\1/' <<<"${bytes_line}")"
  recv_bytes="$(sed -E 's/.*tot_recv_bytes ~ ([0-9]+).*/\1/' <<<"${bytes_line}")"
  echo "${what}: sent ${send_msgs} msgs / ${send_bytes} bytes, received ${recv_msgs} msgs /" \
    "${recv_bytes} bytes, lost ${lost}, ${n_relays} relayed addresses"
  (( recv_msgs > 0 )) || tp_fail "${what}: nothing was relayed (received 0 messages)"
  (( send_msgs >= CLIENTS * MESSAGES )) ||
    tp_fail "${what}: sent only ${send_msgs} of at least $(( CLIENTS * MESSAGES )) messages"
  (( lost == 0 )) || tp_fail "${what}: ${lost} packets lost"
  (( recv_msgs == send_msgs )) || tp_fail "${what}: received ${recv_msgs} != sent ${send_msgs}"
  (( recv_bytes == send_bytes && recv_bytes == send_msgs * LENGTH )) ||
    tp_fail "${what}: byte totals wrong: sent ${send_bytes}, received ${recv_bytes}," \
      "expected ${send_msgs} x ${LENGTH}"
}

# Starts turnpiked with backend=dpdk on a net_tap port, inside the network namespace the calling
# script runs in (it must have made one: unshare -n), and configures the kernel side of the TAP
# link as another host:
#
#   kernel: tp0 TP_DPDK_PEER_HOST/24 (10.200.0.1)  <-- TAP -->  turnpiked: TP_HOST/24 (10.200.0.2)
#
# EAL runs with --no-huge (TAP needs no hugepages); TP_DPDK_LCORES replaces its `-l 0-1`. With
# TP_DPDK_CLIENT_NS, tp0 moves into that namespace once the node is ready (this one is the
# node's). Peers may be 10.200.0.1-10.200.0.9 (kernel-side addresses). Waits until the data plane
# answers a STUN Binding from the kernel side. Extra arguments go to turnpiked. Sets TP_HOST, TP_PORT,
# TP_MIN_PORT, TP_MAX_PORT, TP_SERVER_PID, TP_SERVER_LOG, TP_DPDK_PREFIX; the control plane is on
# 127.0.0.1:9641 of the namespace.
tp_start_dpdk_server() {
  [[ -n "${TP_IN_NETNS:-}" ]] || tp_fail "tp_start_dpdk_server must run in a network namespace"
  [[ -n "${TP_TMP}" ]] || tp_fail "tp_init was not called"
  TP_HOST=10.200.0.2
  TP_DPDK_PEER_HOST=10.200.0.1
  TP_PORT=3478  # the namespace is ours: fixed ports are free
  TP_MIN_PORT=40000
  TP_MAX_PORT=40999
  TP_DPDK_PREFIX="tp-tap-$$"  # EAL runtime files of our own (and dpdk-telemetry.py -f)
  TP_DPDK_PREFIXES+=("${TP_DPDK_PREFIX}")
  # TP_DPDK_LCORES: the EAL's lcore list (main lcore: control plane; each other: a worker).
  local eal="${TP_DPDK_LCORES:--l 0-1} --no-huge -m 256 --no-pci --file-prefix=${TP_DPDK_PREFIX} --vdev=net_tap0,iface=tp0"
  TP_SERVER_LOG="${TP_TMP}/turnpiked-dpdk.log"
  "${TURNPIKED:-${TP_REPO_DIR}/build/turnpiked}" --backend=dpdk --dpdk-args="${eal}" \
    --dpdk-address="${TP_HOST}/24" --listening-port="${TP_PORT}" \
    --min-port="${TP_MIN_PORT}" --max-port="${TP_MAX_PORT}" --realm="${TP_REALM}" \
    --use-auth-secret --static-auth-secret="${TP_SECRET}" \
    --allowed-peer-ip=10.200.0.1-10.200.0.9 \
    --control-listen=127.0.0.1:9641 --drain-timeout=0 --log-file=stdout "$@" \
    >"${TP_SERVER_LOG}" 2>&1 &
  TP_SERVER_PID=$!
  tp_track "${TP_SERVER_PID}"
  local deadline=$(( SECONDS + ${TP_START_DEADLINE:-30} ))
  until ip link show tp0 >/dev/null 2>&1; do
    kill -0 "${TP_SERVER_PID}" 2>/dev/null || tp_fail "turnpiked exited before creating tp0"
    (( SECONDS < deadline )) || tp_fail "no tp0 interface within the deadline"
    sleep 0.1  # poll interval
  done
  if [[ -n "${TP_DPDK_CLIENT_NS:-}" ]]; then
    # The client network is a namespace of its own (this one keeps the node's kernel). The TAP
    # driver sets tp0 up by name while the port starts: move it only once the node is ready.
    until grep -q "ready:" "${TP_SERVER_LOG}"; do
      kill -0 "${TP_SERVER_PID}" 2>/dev/null || tp_fail "turnpiked exited during start-up"
      (( SECONDS < deadline )) || tp_fail "turnpiked not ready within the deadline"
      sleep 0.1  # poll interval
    done
    ip link set tp0 netns "${TP_DPDK_CLIENT_NS}" || tp_fail "cannot move tp0 to the client namespace"
  fi
  tp_in_client ip addr add "${TP_DPDK_PEER_HOST}/24" dev tp0 || tp_fail "cannot address tp0"
  tp_in_client ip link set tp0 up || tp_fail "cannot bring tp0 up"
  until tp_stun_ping "${TP_PORT}"; do
    kill -0 "${TP_SERVER_PID}" 2>/dev/null || tp_fail "turnpiked exited during start-up"
    (( SECONDS < deadline )) || tp_fail "no STUN answer from ${TP_HOST} through DPDK"
    sleep 0.2  # poll interval
  done
  grep -q 'backend dpdk' "${TP_SERVER_LOG}" || tp_fail "the server did not start the DPDK backend"
  tp_log "turnpiked (DPDK on net_tap, pid ${TP_SERVER_PID}) answers STUN on ${TP_HOST}:${TP_PORT}"
}
