#!/usr/bin/env python3
"""Builds the seed corpora in tests/fuzz/corpus/ from published vectors and a capture.

  tests/fuzz/make_seeds.py CAPTURE_PAYLOAD_DIR

CAPTURE_PAYLOAD_DIR is the payloads/ directory tests/fuzz/capture_seeds.sh writes (one UDP
payload per file, NNNNN-c.bin client to server, NNNNN-s.bin server to client). The RFC 5769 and
RFC 8489 B.1 vectors are read from tests/turn/stun/stun_message_test.cc so they exist once.
Output is deterministic and small: a few distinct messages per (type, length) shape.
"""
import hashlib
import pathlib
import re
import shutil
import struct
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests/fuzz/corpus"


def rfc_vectors():
    text = (ROOT / "tests/turn/stun/stun_message_test.cc").read_text()
    out = {}
    for m in re.finditer(r'constexpr std::string_view (kRfc\w+) =[^\n]*\n((?:\s*"[0-9a-fA-F ]*"\n?)+);',
                         text):
        hexdigits = "".join(re.findall(r'"([0-9a-fA-F ]*)"', m.group(2))).replace(" ", "")
        out[m.group(1)] = bytes.fromhex(hexdigits)
    return out


def write(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def shape(msg):
    """Distinguishes messages by kind, STUN type and attribute types, not by contents."""
    if len(msg) >= 4 and (msg[0] & 0xC0) == 0x40:
        return ("cd", len(msg) % 4)
    if len(msg) < 20:
        return ("short", len(msg))
    types = []
    pos = 20
    while pos + 4 <= len(msg):
        t, n = struct.unpack_from(">HH", msg, pos)
        types.append(t)
        pos += 4 + ((n + 3) & ~3)
    return ("stun", msg[0:2], tuple(types))


def stream_form(msg):
    """A datagram as it travels on TCP/TLS: ChannelData padded to 4 bytes (RFC 8656 12.5)."""
    if len(msg) >= 4 and (msg[0] & 0xC0) == 0x40:
        length = struct.unpack_from(">H", msg, 2)[0]
        body = msg[: 4 + length]
        return body + b"\0" * ((4 - len(body) % 4) % 4)
    return msg


def engine_record(op, body):
    return bytes([op]) + struct.pack(">H", len(body)) + body


def main():
    payload_dir = pathlib.Path(sys.argv[1])
    files = sorted(payload_dir.glob("*.bin"))
    captured = [(f.name.endswith("-c.bin"), f.read_bytes()) for f in files]
    vectors = rfc_vectors()
    assert len(vectors) >= 4, "RFC vectors not found in stun_message_test.cc"

    if CORPUS.exists():
        shutil.rmtree(CORPUS)

    # stun_message_fuzz: vectors plus one message per distinct shape, both directions.
    for name, data in vectors.items():
        write("stun_message_fuzz", name + ".bin", data)
    seen = {}
    for to_server, msg in captured:
        key = (to_server, shape(msg))
        if seen.setdefault(key, 0) < 1:
            seen[key] += 1
            write("stun_message_fuzz", "capture-" + hashlib.sha1(msg).hexdigest()[:12] + ".bin", msg)

    # stream_framer_fuzz: control byte + a run of consecutive client messages in stream form.
    client = [m for to_server, m in captured if to_server]
    server = [m for to_server, m in captured if not to_server]
    for i, start in enumerate(range(0, len(client), 12)):
        run = b"".join(stream_form(m) for m in client[start:start + 12])
        write("stream_framer_fuzz", f"client-run-{i:02d}.bin", bytes([i & 0x1F]) + run)
    for i, start in enumerate(range(0, len(server), 40)):
        run = b"".join(stream_form(m) for m in server[start:start + 8])
        write("stream_framer_fuzz", f"server-run-{i:02d}.bin", bytes([(i * 5) & 0x1F]) + run)
    mixed = b"".join(stream_form(v) for v in vectors.values())
    write("stream_framer_fuzz", "rfc-vectors.bin", bytes([0x04]) + mixed)

    # turn_engine_fuzz: a client session as records. Requests that carried credentials are
    # re-signed by the harness (op 1); the rest go raw (op 0); peer data comes from the echo
    # peer (127.0.0.1, op 2 to tag 0); a clock step now and then (op 3).
    peer = struct.pack(">H", 34781) + b"\x00" + bytes([127, 0, 0, 1])
    records = []
    for to_server, msg in captured:
        if not to_server:
            if len(msg) >= 4 and (msg[0] & 0xC0) == 0x40:
                records.append(engine_record(2, peer + msg[4:]))
            continue
        op = 0
        if len(msg) >= 20 and msg[0] < 4 and (msg[1] & 0x10) == 0:  # a request
            op = 1 | 8  # re-sign, with FINGERPRINT
        records.append(engine_record(op, msg))
    for i, start in enumerate(range(0, len(records), 16)):
        chunk = records[start:start + 16]
        if i % 3 == 2:
            chunk.insert(len(chunk) // 2, engine_record(3 | (50 << 2), b""))
        write("turn_engine_fuzz", f"session-{i:02d}.bin", b"".join(chunk))

    # config_fuzz: the realistic coturn file and variants.
    conf = (ROOT / "tests/data/turnserver.conf").read_text()
    write("config_fuzz", "turnserver.conf", conf.encode())
    write("config_fuzz", "lt-cred.conf", b"lt-cred-mech\nuser=alice:secret\nuser=bob:0x"
          b"0123456789abcdef0123456789abcdef\nrealm=example.org\nlistening-port=3478\n")
    write("config_fuzz", "peers.conf", b"denied-peer-ip=10.0.0.0-10.255.255.255\n"
          b"allowed-peer-ip=10.1.2.0/24\ndenied-peer-ip=::ffff:0:0/96\n"
          b"allowed-peer-ip=2001:db8::1\nno-multicast-peers\nallow-loopback-peers=false\n")
    write("config_fuzz", "quotas.conf", b"user-quota=10\ntotal-quota=100\nmax-bps=64000\n"
          b"bps-capacity=0\nmax-allocate-lifetime=3600\ndefault-allocate-lifetime=600\n"
          b"channel-lifetime=600\npermission-lifetime=300\nstale-nonce=0\n")
    write("config_fuzz", "noauth.conf", b"no-auth\nlistening-ip=::1\nrelay-ip=::1\n"
          b"external-ip=198.51.100.7\nmin-port=40000\nmax-port=40010\n"
          b"log-file=stdout\n# comment\n  Verbose  \nfingerprint=true\n")
    write("config_fuzz", "quoting.conf", b"static-auth-secret=\"a b c\"\nrealm='x'\n"
          b"--listening-port=3479\nlistening-port 3480\n=\n\"unterminated\n")

    total = sum(f.stat().st_size for f in CORPUS.rglob("*") if f.is_file())
    count = sum(1 for f in CORPUS.rglob("*") if f.is_file())
    print(f"{count} seed files, {total} bytes")


if __name__ == "__main__":
    main()
