#!/usr/bin/env bash
# Regenerates the captured part of the fuzz seed corpora: runs turnpiked on loopback with TURN
# REST authentication, drives it with coturn's turnutils_uclient (ChannelData mode, Send
# indication mode -s, and the negative modes -N and -R) against turnutils_peer, captures the
# client side with tshark and writes each UDP payload as one seed file. Loopback only.
#
#   tests/fuzz/capture_seeds.sh PATH/TO/turnpiked [OUT_DIR]
# OUT_DIR (default /tmp/turnpike-capture) gets capture.pcap and payloads/NNNNN-{c,s}.bin; pick a few
# of those into tests/fuzz/corpus/ by hand (the corpus stays small).
set -euo pipefail
daemon="${1:?usage: $0 PATH/TO/turnpiked [OUT_DIR]}"
out="${2:-/tmp/turnpike-capture}"
port="${CAPTURE_PORT:-34780}"
peer_port=$((port + 1))
secret="fuzz-capture-secret"
for tool in tshark turnutils_uclient turnutils_peer; do
  command -v "${tool}" >/dev/null || { echo "missing ${tool}" >&2; exit 1; }
done
mkdir -p "${out}/payloads"
rm -f "${out}"/payloads/*.bin "${out}/capture.pcap"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "${p}" 2>/dev/null || true; done; }
trap cleanup EXIT

tshark -q -i lo -f "udp port ${port}" -w "${out}/capture.pcap" 2>"${out}/tshark.log" &
pids+=($!)
"${daemon}" --listening-ip=127.0.0.1 --listening-port="${port}" --relay-ip=127.0.0.1 \
  --min-port=46000 --max-port=46199 --use-auth-secret --static-auth-secret="${secret}" \
  --realm=fuzz.example --allow-loopback-peers >"${out}/turnpiked.log" 2>&1 &
pids+=($!)
turnutils_peer -L 127.0.0.1 -p "${peer_port}" >"${out}/peer.log" 2>&1 &
pids+=($!)
# Wait until tshark captures and the daemon answers (uclient retries its first request).
for _ in $(seq 50); do
  grep -q "Capturing on" "${out}/tshark.log" 2>/dev/null && break
  sleep 0.1
done

uclient() {
  timeout 20 turnutils_uclient -W "${secret}" -e 127.0.0.1 -r "${peer_port}" -p "${port}" \
    "$@" 127.0.0.1 >>"${out}/uclient.log" 2>&1 || true
}
uclient -m 2 -n 20 -l 120            # ChannelBind + ChannelData
uclient -s -m 2 -n 20 -l 75          # Send / Data indications, odd length
uclient -y -m 2 -n 10 -l 33          # client to client through relays
uclient -N -m 1 -n 5 -l 50           # bad ChannelBinds (400s)
uclient -R -m 2 -n 10 -l 40          # requests with random corruption
uclient -R -s -m 2 -n 10 -l 41
sleep 1  # let tshark flush the last packets before it is stopped
cleanup
trap - EXIT
wait 2>/dev/null || true

# One file per UDP payload, in capture order; -c: client to server, -s: server to client.
i=0
tshark -r "${out}/capture.pcap" -T fields -e udp.dstport -e udp.payload 2>/dev/null |
  while read -r dport hex; do
    [[ -n "${hex}" ]] || continue
    i=$((i + 1))
    dir=s
    [[ "${dport}" == "${port}" ]] && dir=c
    printf '%s' "${hex//:/}" | xxd -r -p >"${out}/payloads/$(printf '%05d' "${i}")-${dir}.bin"
  done
echo "$(ls "${out}/payloads" | wc -l) payloads in ${out}/payloads"
