#!/usr/bin/env python3
"""Generates tests/dataplane/packet/vectors.h: byte-level test frames for dataplane/packet/.

Independent of the C++ code under test: headers are packed with `struct` and checksums are
computed here by a plain RFC 1071 word sum. Every frame is also written to a pcap so tshark can
confirm the checksums:

  python3 tests/dataplane/packet/make_vectors.py /tmp/vectors.pcap > tests/dataplane/packet/vectors.h
  tshark -r /tmp/vectors.pcap -V -o ip.check_checksum:TRUE -o udp.check_checksum:TRUE \
      | grep -iE 'checksum|Frame [0-9]+:'
"""
import struct
import sys


def csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def mac(s):
    return bytes(int(x, 16) for x in s.split(":"))


def ip4(s):
    return bytes(int(x) for x in s.split("."))


def ip6(s):
    import ipaddress
    return ipaddress.IPv6Address(s).packed


def eth(dst, src, etype, vlan=None):
    if vlan is None:
        return mac(dst) + mac(src) + struct.pack("!H", etype)
    return mac(dst) + mac(src) + struct.pack("!HHH", 0x8100, vlan, etype)


def ipv4(src, dst, proto, payload, ident=0, df=True, ttl=64, tos=0):
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, tos, 20 + len(payload), ident,
                      0x4000 if df else 0, ttl, proto, 0, ip4(src), ip4(dst))
    c = csum(hdr)
    return hdr[:10] + struct.pack("!H", c) + hdr[12:] + payload


def ipv6(src, dst, nh, payload, hlim=64, tc=0):
    return struct.pack("!IHBB16s16s", (6 << 28) | (tc << 20), len(payload), nh, hlim, ip6(src),
                       ip6(dst)) + payload


def pseudo4(src, dst, proto, length):
    return ip4(src) + ip4(dst) + struct.pack("!BBH", 0, proto, length)


def pseudo6(src, dst, nh, length):
    return ip6(src) + ip6(dst) + struct.pack("!I3xB", length, nh)


def udp(pseudo, sport, dport, payload):
    length = 8 + len(payload)
    hdr = struct.pack("!HHHH", sport, dport, length, 0)
    c = csum(pseudo(length) + hdr + payload)
    if c == 0:
        c = 0xFFFF
    return struct.pack("!HHHH", sport, dport, length, c) + payload


def icmp4(typ, code, ident, seq, data):
    msg = struct.pack("!BBHHH", typ, code, 0, ident, seq) + data
    c = csum(msg)
    return msg[:2] + struct.pack("!H", c) + msg[4:]


def icmp6(src, dst, body_without_checksum):
    """body: type, code, 0x0000, rest."""
    c = csum(pseudo6(src, dst, 58, len(body_without_checksum)) + body_without_checksum)
    return body_without_checksum[:2] + struct.pack("!H", c) + body_without_checksum[4:]


def arp(op, sha, spa, tha, tpa):
    return struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, op, mac(sha), ip4(spa), mac(tha),
                       ip4(tpa))


def pad(frame):
    return frame + b"\0" * max(0, 60 - len(frame))


PEER_MAC = "52:54:00:12:34:56"
OUR_MAC = "02:00:00:00:00:02"
PEER4, OUR4 = "10.200.0.1", "10.200.0.2"
PEER6, OUR6 = "2001:db8::1", "2001:db8::2"
# STUN Binding request without attributes (RFC 8489): type 0x0001, length 0, magic cookie, txid.
STUN = bytes.fromhex("000100002112a442") + bytes.fromhex("b7e7a701bc34d686fa87dfae")
# Linux ping's 56 data bytes: a 16-byte struct timeval, then 0x10..0x37.
PING_DATA = bytes.fromhex("5c1f6e6700000000a3b6050000000000") + bytes(range(0x10, 0x38))

vectors = []


def add(name, comment, frame):
    vectors.append((name, comment, frame))


add("kArpRequestFrame", "ARP who-has 10.200.0.2 tell 10.200.0.1, broadcast, padded to 60 bytes",
    pad(eth("ff:ff:ff:ff:ff:ff", PEER_MAC, 0x0806) +
        arp(1, PEER_MAC, PEER4, "00:00:00:00:00:00", OUR4)))
add("kArpReplyFrame", "ARP 10.200.0.2 is-at 02:00:00:00:00:02, the answer to kArpRequest",
    pad(eth(PEER_MAC, OUR_MAC, 0x0806) + arp(2, OUR_MAC, OUR4, PEER_MAC, PEER4)))
add("kArpRequestFromUsFrame", "ARP who-has 10.200.0.1 tell 10.200.0.2 from our MAC (BuildArpRequest)",
    pad(eth("ff:ff:ff:ff:ff:ff", OUR_MAC, 0x0806) +
        arp(1, OUR_MAC, OUR4, "00:00:00:00:00:00", PEER4)))

add("kIcmpEchoRequestFrame",
    "ICMP echo request 10.200.0.1 -> 10.200.0.2, id 0x1234 seq 1, 56 data bytes, IP ID 0xabcd DF",
    eth(OUR_MAC, PEER_MAC, 0x0800) +
    ipv4(PEER4, OUR4, 1, icmp4(8, 0, 0x1234, 1, PING_DATA), ident=0xABCD))
add("kIcmpEchoReplyFrame", "The expected reply: ID 0, DF, TTL 64",
    eth(PEER_MAC, OUR_MAC, 0x0800) +
    ipv4(OUR4, PEER4, 1, icmp4(0, 0, 0x1234, 1, PING_DATA), ident=0))

add("kUdp4Frame", "UDP 10.200.0.1:50000 -> 10.200.0.2:3478, STUN Binding request, DF, ID 0, TTL 64",
    eth(OUR_MAC, PEER_MAC, 0x0800) +
    ipv4(PEER4, OUR4, 17, udp(lambda n: pseudo4(PEER4, OUR4, 17, n), 50000, 3478, STUN)))
add("kUdp4VlanFrame", "kUdp4 with an 802.1Q tag: PCP 5, VID 100 (TCI 0xa064)",
    eth(OUR_MAC, PEER_MAC, 0x0800, vlan=0xA064) +
    ipv4(PEER4, OUR4, 17, udp(lambda n: pseudo4(PEER4, OUR4, 17, n), 50000, 3478, STUN)))
add("kUdp6Frame", "UDP [2001:db8::1]:50000 -> [2001:db8::2]:3478, STUN Binding request, hop limit 64",
    eth(OUR_MAC, PEER_MAC, 0x86DD) +
    ipv6(PEER6, OUR6, 17, udp(lambda n: pseudo6(PEER6, OUR6, 17, n), 50000, 3478, STUN)))

add("kIcmpv6EchoRequestFrame", "ICMPv6 echo request 2001:db8::1 -> 2001:db8::2, id 0x1234 seq 1",
    eth(OUR_MAC, PEER_MAC, 0x86DD) +
    ipv6(PEER6, OUR6, 58, icmp6(PEER6, OUR6, struct.pack("!BBHHH", 128, 0, 0, 0x1234, 1) +
                                 PING_DATA)))
add("kIcmpv6EchoReplyFrame", "The expected reply",
    eth(PEER_MAC, OUR_MAC, 0x86DD) +
    ipv6(OUR6, PEER6, 58, icmp6(OUR6, PEER6, struct.pack("!BBHHH", 129, 0, 0, 0x1234, 1) +
                                 PING_DATA)))

SOLICITED_OUR6 = "ff02::1:ff00:2"
def ns(src, dst, target, sll):
    body = struct.pack("!BBHI16s", 135, 0, 0, 0, ip6(target))
    if sll:
        body += struct.pack("!BB6s", 1, 1, mac(sll))
    return icmp6(src, dst, body)


def na(src, dst, target, flags, tll):
    body = struct.pack("!BBHI16s", 136, 0, 0, flags << 24, ip6(target))
    if tll:
        body += struct.pack("!BB6s", 2, 1, mac(tll))
    return icmp6(src, dst, body)


add("kNeighborSolicitationFrame",
    "NS for 2001:db8::2 from 2001:db8::1 to ff02::1:ff00:2 (33:33:ff:00:00:02), SLLA option",
    eth("33:33:ff:00:00:02", PEER_MAC, 0x86DD) +
    ipv6(PEER6, SOLICITED_OUR6, 58, ns(PEER6, SOLICITED_OUR6, OUR6, PEER_MAC), hlim=255))
add("kNeighborAdvertisementFrame",
    "The expected NA: 2001:db8::2 -> 2001:db8::1, flags S|O, TLLA 02:00:00:00:00:02",
    eth(PEER_MAC, OUR_MAC, 0x86DD) +
    ipv6(OUR6, PEER6, 58, na(OUR6, PEER6, OUR6, 0x60, OUR_MAC), hlim=255))
add("kDadSolicitationFrame", "DAD NS for 2001:db8::2 from :: (no SLLA)",
    eth("33:33:ff:00:00:02", PEER_MAC, 0x86DD) +
    ipv6("::", SOLICITED_OUR6, 58, ns("::", SOLICITED_OUR6, OUR6, None), hlim=255))
add("kDadAdvertisementFrame", "The expected NA to ff02::1 (33:33:00:00:00:01), flag O only",
    eth("33:33:00:00:00:01", OUR_MAC, 0x86DD) +
    ipv6(OUR6, "ff02::1", 58, na(OUR6, "ff02::1", OUR6, 0x20, OUR_MAC), hlim=255))
add("kNeighborSolicitationFromUsFrame",
    "NS for 2001:db8::1 from 2001:db8::2 to ff02::1:ff00:1 (BuildNeighborSolicitation)",
    eth("33:33:ff:00:00:01", OUR_MAC, 0x86DD) +
    ipv6(OUR6, "ff02::1:ff00:1", 58, ns(OUR6, "ff02::1:ff00:1", PEER6, OUR_MAC), hlim=255))
add("kPeerAdvertisementFrame",
    "NA from the peer answering kNeighborSolicitationFromUs: flags S|O, TLLA 52:54:00:12:34:56",
    eth(OUR_MAC, PEER_MAC, 0x86DD) +
    ipv6(PEER6, OUR6, 58, na(PEER6, OUR6, PEER6, 0x60, PEER_MAC), hlim=255))


def write_pcap(path):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i, (_, _, frame) in enumerate(vectors):
            f.write(struct.pack("<IIII", 1700000000 + i, 0, len(frame), len(frame)))
            f.write(frame)


def emit():
    out = ["// Test frames for dataplane/packet/. Generated by make_vectors.py: headers packed with",
           "// Python's struct, checksums by a plain RFC 1071 word sum in Python (independent of the",
           "// code under test). tshark 4.0 (-o ip.check_checksum:TRUE -o udp.check_checksum:TRUE)",
           "// decoded the pcap the script writes and reported every IPv4 header, ICMP, UDP and",
           "// ICMPv6 checksum in these frames as [correct] (17 checks, none bad). Frame N of the",
           "// pcap is the N-th array below. Do not edit by hand: change the script and rerun it.",
           "#pragma once", "", "#include <array>", "#include <cstdint>", "",
           "namespace turnpike::dataplane::packet::testdata {", "", "// clang-format off", ""]
    for name, comment, frame in vectors:
        out.append("// " + comment + ".")
        out.append("inline constexpr std::array<uint8_t, %d> %s = {" % (len(frame), name))
        for i in range(0, len(frame), 12):
            out.append("    " + " ".join("0x%02x," % b for b in frame[i:i + 12]))
        out.append("};")
        out.append("")
    out.append("// clang-format on")
    out.append("")
    out.append("}  // namespace turnpike::dataplane::packet::testdata")
    print("\n".join(out))


if __name__ == "__main__":
    if len(sys.argv) > 1:
        write_pcap(sys.argv[1])
    emit()
