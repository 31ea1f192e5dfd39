// Wire formats of the data plane's packet path: Ethernet (with one 802.1Q tag), ARP, IPv4, IPv6,
// UDP, ICMP and ICMPv6 headers as packed byte structs, plus big-endian load/store helpers and the
// MAC address value type. Everything else in dataplane/packet/ reads and writes frames through
// these. No DPDK headers: the same code later runs over rte_mbuf data.
//
// The structs hold only uint8_t members, so alignof == 1 and a pointer into any byte buffer may
// be viewed as one; multi-byte fields are read with Load16/Load32 (network order to host order).
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>

#include "absl/hash/hash.h"
#include "turn/net/byte_order.h"

namespace turnpike::dataplane::packet {

using turnpike::Load16;  // turn/net/byte_order.h
using turnpike::Load32;
using turnpike::Store16;
using turnpike::Store32;

// A 48-bit IEEE 802 MAC address in transmission order.
struct MacAddress {
  std::array<uint8_t, 6> bytes{};

  static constexpr MacAddress Broadcast() { return {{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}; }
  static MacAddress From(const uint8_t* p) {
    MacAddress m;
    std::memcpy(m.bytes.data(), p, 6);
    return m;
  }
  void CopyTo(uint8_t* p) const { std::memcpy(p, bytes.data(), 6); }

  // The I/G bit: set for group (multicast and broadcast) addresses.
  bool IsMulticast() const { return (bytes[0] & 0x01) != 0; }
  bool IsBroadcast() const { return *this == Broadcast(); }
  bool IsZero() const { return *this == MacAddress{}; }
  // A usable neighbour address: neither group nor all-zero.
  bool IsUnicast() const { return !IsMulticast() && !IsZero(); }
  // "02:00:5e:10:00:01".
  std::string ToString() const;

  friend bool operator==(const MacAddress&, const MacAddress&) = default;
  template <typename H>
  friend H AbslHashValue(H h, const MacAddress& m) {
    return H::combine(std::move(h), m.bytes);
  }
};

inline constexpr uint16_t kEtherTypeIpv4 = 0x0800;
inline constexpr uint16_t kEtherTypeArp = 0x0806;
inline constexpr uint16_t kEtherTypeVlan = 0x8100;  // IEEE 802.1Q C-tag
inline constexpr uint16_t kEtherTypeQinQ = 0x88A8;  // IEEE 802.1ad S-tag: not accepted
inline constexpr uint16_t kEtherTypeIpv6 = 0x86DD;
inline constexpr uint16_t kEtherTypeMin = 0x0600;  // below this the field is an 802.3 length

inline constexpr uint8_t kIpProtoIcmp = 1;
inline constexpr uint8_t kIpProtoUdp = 17;
inline constexpr uint8_t kIpProtoIcmpv6 = 58;

// The shortest frame a MAC sends, without the 4-byte FCS. Control-plane replies are zero-padded
// up to it (see MinFrameSize in reply.h) so that virtual devices that do not pad (memif, ring)
// still put legal frames on a bridge. The UDP fast path does not pad: physical NICs pad in
// hardware, and only a datagram with under 18 bytes of payload (ChannelData with a tiny body)
// would be short on a virtual device.
inline constexpr size_t kMinFrameSize = 60;

//  Ethernet II (IEEE 802.3 clause 3), optionally with one 802.1Q tag:
//  +----------------+----------------+------------+
//  | destination(6) |   source(6)    | type(2)    |  14 bytes
//  +----------------+----------------+------------+
//  | dst(6) | src(6) | 0x8100 | PCP:3 DEI:1 VID:12 | type(2) |  18 bytes
struct EthernetHeader {
  uint8_t dst[6];
  uint8_t src[6];
  uint8_t ethertype[2];
};
static_assert(sizeof(EthernetHeader) == 14);

struct VlanTag {
  uint8_t tci[2];
  uint8_t ethertype[2];  // the encapsulated type
};
static_assert(sizeof(VlanTag) == 4);

//  ARP for Ethernet and IPv4 (RFC 826):
//  +--------+--------+------+------+--------+
//  | htype=1| ptype  | hlen | plen |   op   |
//  +--------+--------+------+------+--------+
//  | sender hw (6) | sender ip (4) | target hw (6) | target ip (4) |
struct ArpPacket {
  uint8_t htype[2];
  uint8_t ptype[2];
  uint8_t hlen;
  uint8_t plen;
  uint8_t op[2];
  uint8_t sha[6];
  uint8_t spa[4];
  uint8_t tha[6];
  uint8_t tpa[4];
};
static_assert(sizeof(ArpPacket) == 28);
inline constexpr uint16_t kArpHtypeEthernet = 1;
inline constexpr uint16_t kArpOpRequest = 1;
inline constexpr uint16_t kArpOpReply = 2;

//  IPv4 (RFC 791 3.1):
//   0                   1                   2                   3
//   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |Version|  IHL  |Type of Service|          Total Length         |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |         Identification        |Flags|      Fragment Offset    |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |  Time to Live |    Protocol   |         Header Checksum       |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |                       Source Address                          |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |                    Destination Address                        |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |                    Options (IHL > 5)          |    Padding    |
struct Ipv4Header {
  uint8_t version_ihl;
  uint8_t tos;
  uint8_t total_length[2];
  uint8_t id[2];
  uint8_t flags_fragment[2];
  uint8_t ttl;
  uint8_t protocol;
  uint8_t checksum[2];
  uint8_t src[4];
  uint8_t dst[4];
};
static_assert(sizeof(Ipv4Header) == 20);
inline constexpr uint16_t kIpv4FlagDf = 0x4000;
inline constexpr uint16_t kIpv4FlagMf = 0x2000;
inline constexpr uint16_t kIpv4FragmentOffsetMask = 0x1FFF;

//  IPv6 (RFC 8200 3):
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |Version| Traffic Class |           Flow Label                  |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |         Payload Length        |  Next Header  |   Hop Limit   |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |                   Source Address (16)                         |
//  |                 Destination Address (16)                      |
struct Ipv6Header {
  uint8_t vtc_flow[4];
  uint8_t payload_length[2];
  uint8_t next_header;
  uint8_t hop_limit;
  uint8_t src[16];
  uint8_t dst[16];
};
static_assert(sizeof(Ipv6Header) == 40);

//  UDP (RFC 768):
//  +--------+--------+--------+--------+
//  |  src port (2)   |  dst port (2)   |
//  |  length (2)     |  checksum (2)   |
struct UdpHeader {
  uint8_t src_port[2];
  uint8_t dst_port[2];
  uint8_t length[2];
  uint8_t checksum[2];
};
static_assert(sizeof(UdpHeader) == 8);

//  ICMP echo (RFC 792) and ICMPv6 echo (RFC 4443 4.1/4.2) share this 8-byte header:
//  | type | code | checksum (2) | identifier (2) | sequence (2) | data ...
struct IcmpEchoHeader {
  uint8_t type;
  uint8_t code;
  uint8_t checksum[2];
  uint8_t identifier[2];
  uint8_t sequence[2];
};
static_assert(sizeof(IcmpEchoHeader) == 8);
inline constexpr uint8_t kIcmpEchoReply = 0;
inline constexpr uint8_t kIcmpEchoRequest = 8;
inline constexpr uint8_t kIcmpv6EchoRequest = 128;
inline constexpr uint8_t kIcmpv6EchoReply = 129;

//  Neighbor Solicitation / Advertisement (RFC 4861 4.3, 4.4):
//  | type | code | checksum (2) |
//  | R|S|O| reserved (29 bits; all reserved for NS) |
//  | target address (16) |
//  | options: type(1) length(1, in units of 8 bytes) value ... |
struct NdMessage {
  uint8_t type;
  uint8_t code;
  uint8_t checksum[2];
  uint8_t flags_reserved[4];
  uint8_t target[16];
};
static_assert(sizeof(NdMessage) == 24);
inline constexpr uint8_t kIcmpv6NeighborSolicitation = 135;
inline constexpr uint8_t kIcmpv6NeighborAdvertisement = 136;
inline constexpr uint8_t kNdOptionSourceLinkLayer = 1;
inline constexpr uint8_t kNdOptionTargetLinkLayer = 2;
inline constexpr uint8_t kNaFlagRouter = 0x80;
inline constexpr uint8_t kNaFlagSolicited = 0x40;
inline constexpr uint8_t kNaFlagOverride = 0x20;
inline constexpr uint8_t kNdHopLimit = 255;  // RFC 4861 7.1.1 / 7.1.2

// Hop limit / TTL of packets this node originates (the relay's TX path and echo replies).
inline constexpr uint8_t kDefaultTtl = 64;

// Writers shared by the TX path and the control-plane replies. Each writes one header at `p`
// and returns its length; the caller has checked the room.

// Ethernet II header, with an 802.1Q tag when `vlan_tci` is set: 14 or 18 bytes.
inline size_t WriteEthernetHeader(uint8_t* p, const MacAddress& dst, const MacAddress& src,
                                  std::optional<uint16_t> vlan_tci, uint16_t ethertype) {
  dst.CopyTo(p);
  src.CopyTo(p + 6);
  if (vlan_tci) {
    Store16(p + 12, kEtherTypeVlan);
    Store16(p + 14, *vlan_tci);
    Store16(p + 16, ethertype);
    return sizeof(EthernetHeader) + sizeof(VlanTag);
  }
  Store16(p + 12, ethertype);
  return sizeof(EthernetHeader);
}

inline size_t EthernetHeaderSize(std::optional<uint16_t> vlan_tci) {
  return vlan_tci ? sizeof(EthernetHeader) + sizeof(VlanTag) : sizeof(EthernetHeader);
}

}  // namespace turnpike::dataplane::packet
