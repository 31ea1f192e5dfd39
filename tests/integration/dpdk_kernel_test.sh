#!/usr/bin/env bash
# The DPDK exception path (dpdk-kernel-interface): what the data plane does not take reaches the
# node's kernel through a TAP interface, and what the kernel sends leaves on the port. Two
# network namespaces, both made by this test, so nothing leaves them:
#
#   client namespace (ip netns add)            node namespace (unshare -n)
#   tp0 10.200.0.1/24 <--- TAP "NIC" ---> turnpiked DPDK port, dpdk-address 10.200.0.2/24
#       fd00:200::1/64                                   and fd00:200::2/64
#   curl, ping, turnutils_uclient/peer                |  not for the relay
#                                                      v
#                                           tpk0 10.200.0.2/24, fd00:200::2/64 (the node's
#                                           kernel; the control API listens on 0.0.0.0:9641)
#
# Checks: TCP to the node's address (HTTP to the control API) is served by the node's kernel
# through the data plane; the kernel's own ping of the client goes out and its replies come back
# (ARP for the client and the echo replies are handed to the kernel); ICMP echo to the node and
# TURN relaying are still answered by the data plane; the to_kernel / from_kernel counters move.
# TURN over TCP and TLS (uclient -t, -t -S) is served by the node's kernel behind the exception
# path, relays included (the stream host, dataplane/dpdk/dpdk_backend.h), and such a relay and
# one of the data plane reach each other (turn_client.py, TCP and UDP), over IPv4 and over
# IPv6. Needs root.
#
# Usage: dpdk_kernel_test.sh   (environment: TURNPIKED, default build/turnpiked)
set -u
. "$(dirname "$0")/lib.sh"
tp_enter_netns "$0" "$@"

SERVER=turnpiked
PEER_PORT=3480
tp_require ip curl ping openssl turnutils_uclient turnutils_peer
tp_init
ip link set lo up
tp_add_client_netns "tp-client-$$"

TLS_PORT=5349
NODE6=fd00:200::2
CLIENT6=fd00:200::1
tp_make_cert
TOKEN="token-$$-${RANDOM}"
printf '%s\n' "${TOKEN}" >"${TP_TMP}/token"
tp_start_dpdk_server --dpdk-kernel-interface=tpk0 --control-listen=0.0.0.0:9641 \
  --control-token-file="${TP_TMP}/token" \
  --dpdk-address="${NODE6}/64" --allowed-peer-ip="${CLIENT6}-fd00:200::9" \
  --tls-listening-port="${TLS_PORT}" --cert="${TP_CERT}" --pkey="${TP_KEY}"
grep -q "exception path: frames not for the relay go to the kernel through tpk0" "${TP_SERVER_LOG}" ||
  tp_fail "turnpiked did not log its exception path"
grep -q "TURN over TCP on port ${TP_PORT} and TLS on port ${TLS_PORT} served by the node's kernel" \
  "${TP_SERVER_LOG}" || tp_fail "turnpiked did not log TURN over TCP and TLS from the kernel side"
ip addr add "${TP_HOST}/24" dev tpk0 || tp_fail "cannot address tpk0"
# nodad: usable at once, without waiting for duplicate address detection.
ip addr add "${NODE6}/64" dev tpk0 nodad || tp_fail "cannot give tpk0 its IPv6 address"
ip link set tpk0 up || tp_fail "cannot bring tpk0 up"
tp_in_client ip addr add "${CLIENT6}/64" dev tp0 nodad || tp_fail "cannot give tp0 an IPv6 address"

metric() {
  curl -s --max-time 2 http://127.0.0.1:9641/metrics | sed -n "s/^$1 //p"
}

# 1. TCP from a client to the node's address: the node's kernel answers (through DPDK both ways).
body="$(tp_in_client curl -s --max-time 10 "http://${TP_HOST}:9641/metrics")" ||
  tp_fail "no HTTP answer from ${TP_HOST}:9641 through the exception path"
grep -q 'turnpike_build_info{.*backend="dpdk"' <<<"${body}" ||
  tp_fail "the HTTP answer through the exception path is not the node's /metrics"
echo "kernel: HTTP to ${TP_HOST}:9641 from the client namespace answered by the node's kernel"

# 2. The kernel's own traffic out: it resolves the client by ARP and pings it.
ping -c 3 -i 0.2 -W 2 -I tpk0 "${TP_DPDK_PEER_HOST}" >"${TP_TMP}/ping-out.log" 2>&1 ||
  { cat "${TP_TMP}/ping-out.log" >&2; tp_fail "the node's kernel cannot ping the client"; }
echo "kernel: the node's kernel pings ${TP_DPDK_PEER_HOST} through the data plane"

# 3. The data plane still answers ICMP echo and relays TURN itself. The node's kernel ignores
# echo requests from here on, so a reply can only come from the data plane.
sysctl -q -w net.ipv4.icmp_echo_ignore_all=1 || tp_fail "cannot set icmp_echo_ignore_all"
before="$(metric 'turnpike_kernel_exception_packets_total{direction="to_kernel"}')"
tp_in_client ping -c 3 -i 0.2 -W 2 "${TP_HOST}" >"${TP_TMP}/ping-in.log" 2>&1 ||
  { cat "${TP_TMP}/ping-in.log" >&2; tp_fail "no echo reply from the data plane at ${TP_HOST}"; }
tp_in_client turnutils_peer -L "${TP_DPDK_PEER_HOST}" -p "${PEER_PORT}" >"${TP_TMP}/peer.log" 2>&1 &
tp_track $!
tp_wait_udp_bound "${PEER_PORT}" $!
CLIENT_HOST="${TP_HOST}" CLIENTS=2 MESSAGES=20 LENGTH=120
out="${TP_TMP}/uclient.log"
tp_in_client timeout 60 turnutils_uclient -v -W "${TP_SECRET}" -e "${TP_DPDK_PEER_HOST}" \
  -r "${PEER_PORT}" -p "${TP_PORT}" -m "${CLIENTS}" -n "${MESSAGES}" -l "${LENGTH}" \
  "${TP_HOST}" >"${out}" 2>&1 || { tail -n 20 "${out}" >&2; tp_fail "uclient failed"; }
check_uclient_output "${out}" "dpdk with exception path"
after="$(metric 'turnpike_kernel_exception_packets_total{direction="to_kernel"}')"
# TURN was the data plane's too: at most link chatter (IPv6 router solicitations, multicast
# listener reports of the client side) went to the kernel meanwhile, far fewer than the 80
# relayed messages.
(( after - before < 20 )) ||
  tp_fail "${after} - ${before} frames went to the kernel while the data plane should answer"

# 4. TURN over TCP and TLS: the node's kernel accepts the connections (the data plane hands it
# TCP), and the relays of those allocations are kernel sockets: the peer's UDP to them goes to
# the kernel too, and the kernel's UDP to the peer leaves through the data plane.
for mode in tcp tls; do
  flags=(-t) port="${TP_PORT}"
  [[ "${mode}" == tls ]] && flags=(-t -S) port="${TLS_PORT}"
  before="$(metric 'turnpike_kernel_exception_packets_total{direction="to_kernel"}')"
  peer_before="$(metric 'turnpike_received_packets_total{source="peer"}')"
  out="${TP_TMP}/uclient-${mode}.log"
  tp_in_client timeout 60 turnutils_uclient -v "${flags[@]}" -W "${TP_SECRET}" \
    -e "${TP_DPDK_PEER_HOST}" -r "${PEER_PORT}" -p "${port}" -m "${CLIENTS}" -n "${MESSAGES}" \
    -l "${LENGTH}" "${TP_HOST}" >"${out}" 2>&1 ||
    { tail -n 20 "${out}" >&2; tp_fail "uclient ${mode} failed"; }
  check_uclient_output "${out}" "dpdk, TURN over ${mode} from the kernel side"
  after="$(metric 'turnpike_kernel_exception_packets_total{direction="to_kernel"}')"
  peer_after="$(metric 'turnpike_received_packets_total{source="peer"}')"
  # The peer's echoes reached an engine: only the stream host's has these allocations, and
  # their relays are kernel sockets, so every echo went through the exception path. (The
  # to_kernel count below could be met by the connections' segments alone.)
  (( peer_after - peer_before >= CLIENTS * MESSAGES )) ||
    tp_fail "${mode}: $(( peer_after - peer_before )) peer datagrams, not ${CLIENTS} x ${MESSAGES}"
  (( after - before >= CLIENTS * MESSAGES )) ||
    tp_fail "${mode}: $(( after - before )) frames to the kernel, not ${CLIENTS} x ${MESSAGES}"
done
accepted="$(metric turnpike_stream_accepted_total)"
handshakes="$(metric turnpike_tls_handshakes_total)"
(( ${accepted:-0} >= 2 * CLIENTS && ${handshakes:-0} >= CLIENTS )) ||
  tp_fail "streams: accepted=${accepted:-?} tls_handshakes=${handshakes:-?} for ${CLIENTS} clients"
# The stream host is worker 1 (after the one DPDK worker): in each of the two runs it received
# CLIENTS x MESSAGES messages from the clients and as many echoes from the peer.
stream_rx="$(metric 'turnpike_worker_received_packets_total{worker="1"}')"
(( ${stream_rx:-0} >= 2 * 2 * CLIENTS * MESSAGES )) ||
  tp_fail "the stream host (worker 1) received ${stream_rx:-no} messages and datagrams"
echo "kernel: TURN over TCP and TLS from the kernel side" \
  "(${accepted} connections, ${handshakes} TLS handshakes, ${stream_rx} datagrams at worker 1)"

# 5. A relay of the kernel (a TCP client's) and a relay of the data plane (a UDP client's) on the
# same node reach each other both ways, over IPv4 and over IPv6: the kernel's datagrams to the
# data plane's address are handed to the workers, and the data plane's reach the kernel
# (accept_local on tpk0 for IPv4), with strict reverse-path filtering on (IPv4). Each indication
# is resent until it arrives (UDP may lose one), within a deadline. Then the REST API lists the
# IPv4 TCP client's allocation on worker 1 (the stream host) and the UDP client's on worker 0,
# and a kill reaches the stream host.
sysctl -q -w net.ipv4.conf.all.rp_filter=1 net.ipv4.conf.tpk0.rp_filter=1 ||
  tp_fail "cannot set rp_filter"
tp_in_client python3 - "${TP_LIB_DIR}" "${TP_HOST}" "${TP_PORT}" "${TP_DPDK_PEER_HOST}" \
  "${TP_SECRET}" "${TOKEN}" "${NODE6}" "${CLIENT6}" >"${TP_TMP}/mixed.log" 2>&1 <<'EOF' ||
import base64, hashlib, hmac, json, socket, sys, time, urllib.request
sys.path.insert(0, sys.argv[1])
from turn_client import TurnClient, TurnError
host, port, me, secret, token = sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]
host6, me6 = sys.argv[7], sys.argv[8]
def client(name, tcp, server, bind):
    user = "%d:%s" % (time.time() + 3600, name)
    password = base64.b64encode(hmac.new(secret.encode(), user.encode(), hashlib.sha1).digest())
    return TurnClient(port, user, password.decode(), host=server, tcp=tcp, bind_host=bind,
                      timeout=5.0 if tcp else 2.0)
def relay_both_ways(server, bind, ipv6):
    """A TCP client's (kernel) relay and a UDP client's (data plane) relay of the given family
    exchange 5 Send indications each way; returns the two clients."""
    name = "mixed6" if ipv6 else "mixed"
    tcp, udp = client(name + "-tcp", True, server, bind), client(name + "-udp", False, server, bind)
    kernel_relay, dpdk_relay = tcp.allocate(ipv6=ipv6), udp.allocate(ipv6=ipv6)
    for relay in (kernel_relay, dpdk_relay):
        assert relay.startswith("[") == ipv6, relay
    tcp.create_permission(dpdk_relay)
    udp.create_permission(kernel_relay)
    udp.sock.settimeout(0.5)
    tcp.sock.settimeout(0.5)
    for sender, receiver, src, dst in ((tcp, udp, kernel_relay, dpdk_relay),
                                       (udp, tcp, dpdk_relay, kernel_relay)):
        for i in range(5):
            payload = b"mixed %d from %s" % (i, src.encode())
            deadline = time.monotonic() + 15
            while True:
                assert time.monotonic() < deadline, "%s never reached %s" % (payload, dst)
                sender.send_indication(dst, payload)
                try:
                    peer, data = receiver.receive_data()
                    while data != payload:  # a resent earlier one
                        peer, data = receiver.receive_data()
                    break
                except socket.timeout:
                    continue
            assert peer == src, (peer, src)
        print("relayed %s -> %s: 5 of 5" % (src, dst))
    return tcp, udp
relay_both_ways(host6, me6, True)
tcp, udp = relay_both_ways(host, me, False)
def api(method, path):
    request = urllib.request.Request("http://%s:9641%s" % (host, path), method=method,
                                     headers={"Authorization": "Bearer " + token})
    with urllib.request.urlopen(request, timeout=5) as r:
        return r.status, r.read()
for client_, worker, transport in ((tcp, 1, "tcp"), (udp, 0, "udp")):
    _, body = api("GET", "/v1/allocations?user=" + client_.username)
    items = json.loads(body)["allocations"]
    assert len(items) == 1, items
    assert (items[0]["worker"], items[0]["client"]["transport"]) == (worker, transport), items
print("REST: the TCP client's allocation is on worker 1, the UDP client's on worker 0")
_, body = api("GET", "/v1/allocations?user=" + tcp.username)
status, _ = api("DELETE", "/v1/allocations/" + json.loads(body)["allocations"][0]["id"])
assert 200 <= status < 300, status
try:
    tcp.refresh()
    raise AssertionError("the killed allocation still answers Refresh")
except TurnError as e:  # 437: no allocation on this 5-tuple any more
    assert e.code == 437, e
    print("REST: killed the stream host's allocation; Refresh now gets: %s" % e)
EOF
  { cat "${TP_TMP}/mixed.log" >&2; tp_fail "a kernel relay and a data-plane relay did not meet"; }
cat "${TP_TMP}/mixed.log"

to_kernel="$(metric 'turnpike_kernel_exception_packets_total{direction="to_kernel"}')"
from_kernel="$(metric 'turnpike_kernel_exception_packets_total{direction="from_kernel"}')"
(( ${to_kernel:-0} > 0 && ${from_kernel:-0} > 0 )) ||
  tp_fail "exception counters did not move: to_kernel=${to_kernel:-?} from_kernel=${from_kernel:-?}"
echo "kernel: ${to_kernel} frames to the kernel, ${from_kernel} from it"

tp_stop_server
echo "PASS: the DPDK exception path hands the node's kernel what is not for the relay"
