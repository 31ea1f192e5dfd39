"""A minimal TURN-over-UDP client (RFC 8656 / RFC 8489) for the control-plane tests: Allocate
and Refresh with long-term credentials, enough to create allocations the REST API can list and
kill, and to see the exact error code an Allocate gets (403 while draining). Python stdlib only.
Loopback only, as every test here."""

import hashlib
import hmac
import os
import socket
import struct

MAGIC = 0x2112A442
ALLOCATE, REFRESH = 0x0003, 0x0004
A_USERNAME, A_MI, A_ERROR, A_LIFETIME = 0x0006, 0x0008, 0x0009, 0x000D
A_REALM, A_NONCE, A_XOR_RELAYED, A_TRANSPORT = 0x0014, 0x0015, 0x0016, 0x0019


def _attr(t, v):
    pad = (4 - len(v) % 4) % 4
    return struct.pack("!HH", t, len(v)) + v + b"\0" * pad


def _parse(data):
    mtype, length, cookie = struct.unpack("!HHI", data[:8])
    attrs, i = {}, 20
    while i + 4 <= 20 + length:
        t, l = struct.unpack("!HH", data[i:i + 4])
        attrs.setdefault(t, data[i + 4:i + 4 + l])
        i += 4 + l + (4 - l % 4) % 4
    return mtype, data[8:20], attrs


def _xor_address(v, tid):
    family, xport = struct.unpack("!xBH", v[:4])
    port = xport ^ (MAGIC >> 16)
    if family == 1:
        ip = struct.unpack("!I", v[4:8])[0] ^ MAGIC
        return "%s:%d" % (socket.inet_ntoa(struct.pack("!I", ip)), port)
    key = struct.pack("!I", MAGIC) + tid
    raw = bytes(a ^ b for a, b in zip(v[4:20], key))
    return "[%s]:%d" % (socket.inet_ntop(socket.AF_INET6, raw), port)


class TurnError(Exception):
    def __init__(self, code, reason=""):
        super().__init__("TURN error %d %s" % (code, reason))
        self.code = code


class TurnClient:
    def __init__(self, server_port, username, password, host="127.0.0.1", timeout=2.0):
        self.server = (host, server_port)
        self.username, self.password = username, password
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(timeout)
        self.realm = self.nonce = None
        self.relayed = None

    def close(self):
        self.sock.close()

    def local_address(self):
        return "%s:%d" % self.sock.getsockname()

    def _key(self):
        return hashlib.md5(("%s:%s:%s" % (self.username, self.realm, self.password))
                           .encode()).digest()

    def _request(self, method, attrs, auth):
        tid = os.urandom(12)
        body = b"".join(_attr(t, v) for t, v in attrs)
        if auth:
            body += _attr(A_USERNAME, self.username.encode())
            body += _attr(A_REALM, self.realm.encode()) + _attr(A_NONCE, self.nonce)
            head = struct.pack("!HHI", method, len(body) + 24, MAGIC) + tid
            mac = hmac.new(self._key(), head + body, hashlib.sha1).digest()
            body += _attr(A_MI, mac)
        msg = struct.pack("!HHI", method, len(body), MAGIC) + tid + body
        for _ in range(3):  # UDP: retransmit a lost request
            self.sock.sendto(msg, self.server)
            try:
                while True:
                    data, _ = self.sock.recvfrom(4096)
                    mtype, rtid, rattrs = _parse(data)
                    if rtid == tid:
                        return mtype, rtid, rattrs
            except socket.timeout:
                continue
        raise TimeoutError("no answer from the TURN server")

    def _call(self, method, attrs):
        """Sends with credentials (getting a nonce first); returns the success attributes or
        raises TurnError with the error code."""
        for _ in range(3):
            auth = self.nonce is not None
            mtype, tid, rattrs = self._request(method, attrs, auth)
            if mtype & 0x0110 == 0x0100:
                return tid, rattrs
            err = rattrs.get(A_ERROR, b"\0\0\0\0")
            code = (err[2] & 7) * 100 + err[3]
            if code in (401, 438) and A_NONCE in rattrs:
                fresh = self.nonce is None or code == 438
                self.realm = rattrs.get(A_REALM, b"").decode()
                self.nonce = rattrs[A_NONCE]
                if fresh:
                    continue
            raise TurnError(code, err[4:].decode(errors="replace"))
        raise TurnError(401, "could not authenticate")

    def allocate(self, lifetime=None):
        attrs = [(A_TRANSPORT, struct.pack("!I", 17 << 24))]
        if lifetime is not None:
            attrs.append((A_LIFETIME, struct.pack("!I", lifetime)))
        tid, rattrs = self._call(ALLOCATE, attrs)
        self.relayed = _xor_address(rattrs[A_XOR_RELAYED], tid)
        return self.relayed

    def refresh(self, lifetime=600):
        _, rattrs = self._call(REFRESH, [(A_LIFETIME, struct.pack("!I", lifetime))])
        return struct.unpack("!I", rattrs[A_LIFETIME])[0] if A_LIFETIME in rattrs else None
