// Shared helpers for the dataplane/packet tests: the addresses the vectors in vectors.h use, and
// small editors for hand-corrupting frames.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <vector>

#include "dataplane/packet/checksum.h"
#include "dataplane/packet/frame.h"
#include "dataplane/packet/wire.h"
#include "turn/net/socket_address.h"

namespace turnpike::dataplane::packet::testing {

using Bytes = std::vector<uint8_t>;

inline Bytes ToBytes(std::span<const uint8_t> s) { return Bytes(s.begin(), s.end()); }

inline IpAddress Ip(const char* text) { return *IpAddress::Parse(text); }
inline SocketAddress Sa(const char* text) { return *SocketAddress::Parse(text); }

inline const MacAddress kPeerMac{{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}};
inline const MacAddress kOurMac{{0x02, 0x00, 0x00, 0x00, 0x00, 0x02}};
inline const IpAddress kPeer4 = Ip("10.200.0.1");
inline const IpAddress kOur4 = Ip("10.200.0.2");
inline const IpAddress kPeer6 = Ip("2001:db8::1");
inline const IpAddress kOur6 = Ip("2001:db8::2");
inline const std::vector<IpAddress> kOurs = {kOur4, kOur6};

// The STUN Binding request that the UDP vectors carry.
inline const Bytes kStunPayload = {0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7,
                                   0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae};

// Recomputes the IPv4 header checksum of a frame whose IP header starts at `l3` (over IHL * 4
// bytes, or what the frame holds of them, and at least the 12 bytes up to the field).
inline void FixIpv4Checksum(Bytes& frame, size_t l3 = 14) {
  const size_t ihl = size_t{frame[l3] & 0x0fu} * 4;
  const size_t length = std::max<size_t>(12, std::min(ihl, frame.size() - l3));
  Store16(&frame[l3 + 10], Ipv4HeaderChecksum({&frame[l3], length}));
}

// Recomputes the ICMPv6 checksum of an untagged IPv6 frame from its own header fields.
inline void FixIcmpv6Checksum(Bytes& frame) {
  const IpAddress src = IpAddress::V6Bytes(&frame[22]);
  const IpAddress dst = IpAddress::V6Bytes(&frame[38]);
  const size_t length = Load16(&frame[18]);
  Store16(&frame[56], Icmpv6Checksum(src, dst, {&frame[54], length}));
}

// Inserts an 802.1Q tag with `tci` after the MAC addresses.
inline Bytes WithVlan(std::span<const uint8_t> frame, uint16_t tci) {
  Bytes out(frame.begin(), frame.begin() + 12);
  out.insert(out.end(), {0x81, 0x00, static_cast<uint8_t>(tci >> 8), static_cast<uint8_t>(tci)});
  out.insert(out.end(), frame.begin() + 12, frame.end());
  return out;
}

}  // namespace turnpike::dataplane::packet::testing
