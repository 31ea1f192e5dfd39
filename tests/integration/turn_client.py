"""A minimal TURN client (RFC 8656 / RFC 8489) over UDP or TCP for the tests: Allocate and
Refresh with long-term credentials, enough to create allocations the REST API can list and
kill and to see the exact error code an Allocate gets (403 while draining); CreatePermission,
Send and Data indications, enough to relay between two allocations; IPv4 or IPv6 (addresses
as "a.b.c.d:port" or "[v6]:port"). Python stdlib only.
Loopback, or addresses in the test's own namespaces, only, as every test here."""

import hashlib
import hmac
import os
import socket
import struct

MAGIC = 0x2112A442
ALLOCATE, REFRESH, CREATE_PERMISSION = 0x0003, 0x0004, 0x0008
SEND_INDICATION, DATA_INDICATION = 0x0016, 0x0017
A_USERNAME, A_MI, A_ERROR, A_LIFETIME = 0x0006, 0x0008, 0x0009, 0x000D
A_XOR_PEER, A_DATA = 0x0012, 0x0013
A_REALM, A_NONCE, A_XOR_RELAYED, A_TRANSPORT = 0x0014, 0x0015, 0x0016, 0x0019
A_REQUESTED_FAMILY = 0x0017


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


def _xor_peer(address, tid):
    """XOR-PEER-ADDRESS value for "a.b.c.d:port" or "[v6]:port" in transaction `tid`."""
    host, port = address.rsplit(":", 1)
    xport = int(port) ^ (MAGIC >> 16)
    if host.startswith("["):
        key = struct.pack("!I", MAGIC) + tid
        raw = socket.inet_pton(socket.AF_INET6, host[1:-1])
        return struct.pack("!BBH", 0, 2, xport) + bytes(a ^ b for a, b in zip(raw, key))
    ip = struct.unpack("!I", socket.inet_aton(host))[0] ^ MAGIC
    return struct.pack("!BBHI", 0, 1, xport, ip)


class TurnError(Exception):
    def __init__(self, code, reason=""):
        super().__init__("TURN error %d %s" % (code, reason))
        self.code = code


class TurnClient:
    def __init__(self, server_port, username, password, host="127.0.0.1", timeout=2.0,
                 tcp=False, bind_host=None):
        self.server = (host, server_port)
        self.username, self.password = username, password
        self.tcp = tcp
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        if bind_host is None:
            bind_host = "::1" if family == socket.AF_INET6 else "127.0.0.1"
        self.sock = socket.socket(family, socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM)
        self.sock.bind((bind_host, 0))
        self.sock.settimeout(timeout)
        if tcp:
            self.sock.connect(self.server)
        self.realm = self.nonce = None
        self.relayed = None

    def close(self):
        self.sock.close()

    def local_address(self):
        host, port = self.sock.getsockname()[:2]
        return ("[%s]:%d" if ":" in host else "%s:%d") % (host, port)

    def _key(self):
        return hashlib.md5(("%s:%s:%s" % (self.username, self.realm, self.password))
                           .encode()).digest()

    def _request(self, method, attrs, auth):
        """`attrs`: (type, value) pairs; a value may be a function of the transaction id."""
        tid = os.urandom(12)
        body = b"".join(_attr(t, v(tid) if callable(v) else v) for t, v in attrs)
        if auth:
            body += _attr(A_USERNAME, self.username.encode())
            body += _attr(A_REALM, self.realm.encode()) + _attr(A_NONCE, self.nonce)
            head = struct.pack("!HHI", method, len(body) + 24, MAGIC) + tid
            mac = hmac.new(self._key(), head + body, hashlib.sha1).digest()
            body += _attr(A_MI, mac)
        msg = struct.pack("!HHI", method, len(body), MAGIC) + tid + body
        for _ in range(1 if self.tcp else 3):  # UDP: retransmit a lost request
            self._send(msg)
            try:
                while True:
                    mtype, rtid, rattrs = _parse(self._receive())
                    if rtid == tid:
                        return mtype, rtid, rattrs
            except socket.timeout:
                continue
        raise TimeoutError("no answer from the TURN server")

    def _send(self, msg):
        if self.tcp:
            self.sock.sendall(msg)
        else:
            self.sock.sendto(msg, self.server)

    def _receive(self):
        """One STUN message (this client sends no ChannelData, so none comes back)."""
        if not self.tcp:
            return self.sock.recvfrom(4096)[0]
        head = self._read_exactly(20)
        return head + self._read_exactly(struct.unpack("!H", head[2:4])[0])

    def _read_exactly(self, n):
        out = b""
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise ConnectionError("the TURN server closed the connection")
            out += chunk
        return out

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

    def allocate(self, lifetime=None, ipv6=False):
        """`ipv6`: asks for an IPv6 relayed address (REQUESTED-ADDRESS-FAMILY, RFC 8656 18.1)."""
        attrs = [(A_TRANSPORT, struct.pack("!I", 17 << 24))]
        if ipv6:
            attrs.append((A_REQUESTED_FAMILY, struct.pack("!I", 2 << 24)))
        if lifetime is not None:
            attrs.append((A_LIFETIME, struct.pack("!I", lifetime)))
        tid, rattrs = self._call(ALLOCATE, attrs)
        self.relayed = _xor_address(rattrs[A_XOR_RELAYED], tid)
        return self.relayed

    def create_permission(self, peer):
        """Permission for the IP of `peer` ("a.b.c.d:port" or "[v6]:port")."""
        self._call(CREATE_PERMISSION, [(A_XOR_PEER, lambda tid: _xor_peer(peer, tid))])

    def send_indication(self, peer, data):
        tid = os.urandom(12)
        body = _attr(A_XOR_PEER, _xor_peer(peer, tid)) + _attr(A_DATA, data)
        self._send(struct.pack("!HHI", SEND_INDICATION, len(body), MAGIC) + tid + body)

    def receive_data(self):
        """The next Data indication: (the peer's "a.b.c.d:port" or "[v6]:port", data)."""
        while True:
            mtype, tid, rattrs = _parse(self._receive())
            if mtype == DATA_INDICATION:
                return _xor_address(rattrs[A_XOR_PEER], tid), rattrs[A_DATA]

    def refresh(self, lifetime=600):
        _, rattrs = self._call(REFRESH, [(A_LIFETIME, struct.pack("!I", lifetime))])
        return struct.unpack("!I", rattrs[A_LIFETIME])[0] if A_LIFETIME in rattrs else None
