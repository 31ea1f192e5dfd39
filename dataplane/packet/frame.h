// Frame classification for the data plane's RX path: one pass over the Ethernet, IP and UDP
// headers of a received frame that says what it is, where its parts start, and whether the UDP
// fast path (TURN, STUN, ChannelData, RTP) may take it. Everything else (ARP, ICMP, neighbour
// discovery, fragments, IPv6 extension headers, other protocols) goes to the control handlers
// in arp.h / icmp.h / ndp.h or to the exception path.
//
// Strict by design: every length is checked against the one that encloses it (frame >= IP total
// length >= UDP length), and any inconsistency is reported as a FrameError so the caller can
// drop and count it. Nothing is read beyond the span. Bytes after the IP packet are Ethernet
// padding and are ignored.
//
// Cost: about 20 ns per UDP/IPv4 or UDP/IPv6 frame, of which 2-4 ns is the IPv4 header checksum
// (skip it with ParseOptions when the NIC reports RTE_MBUF_F_RX_IP_CKSUM_GOOD). Measured once,
// -O2, one cache-hot frame parsed in a loop on this project's shared 2-core AMD EPYC VM with the
// load average near 4, so an upper bound; a benchmark in perf/ should replace this figure.
#pragma once

#include <cstdint>
#include <span>

#include "dataplane/packet/wire.h"
#include "turn/net/socket_address.h"

namespace turnpike::dataplane::packet {

enum class FrameKind : uint8_t { kOther, kArp, kIpv4, kIpv6 };

// Why a frame was malformed; an index into per-core drop counters.
enum class FrameError : uint8_t {
  kNone,
  kEthernetTruncated,     // shorter than 14 bytes
  kVlanTruncated,         // 802.1Q type but no room for the tag and inner type
  kArpTruncated,          // fewer than 28 bytes of ARP
  kArpUnsupported,        // not Ethernet/IPv4 ARP (htype 1, ptype 0x0800, hlen 6, plen 4)
  kIpv4Truncated,         // fewer than 20 bytes of IPv4 header
  kIpv4BadVersion,        // version field is not 4
  kIpv4BadHeaderLength,   // IHL below 5
  kIpv4BadTotalLength,    // total length below IHL * 4 or beyond the frame
  kIpv4BadChecksum,       // header checksum does not verify
  kIpv6Truncated,         // fewer than 40 bytes of IPv6 header
  kIpv6BadVersion,        // version field is not 6
  kIpv6BadPayloadLength,  // payload length beyond the frame
  kUdpTruncated,          // IP payload shorter than a UDP header
  kUdpBadLength,          // UDP length differs from the IP payload length
  kCount,
};

// A short stable name ("ipv4_bad_checksum") for logs and counter labels.
const char* FrameErrorName(FrameError error);

struct ParseOptions {
  // Off when the NIC has already verified it (RTE_MBUF_F_RX_IP_CKSUM_GOOD).
  bool verify_ipv4_checksum = true;
};

// What ParseFrame found. A plain value (76 bytes) built on the stack per packet; offsets
// are from the start of the frame. Fields past the point where parsing stopped keep their
// zero defaults.
struct FrameInfo {
  FrameError error = FrameError::kNone;
  FrameKind kind = FrameKind::kOther;

  // Layer 2.
  MacAddress dst_mac;
  MacAddress src_mac;
  uint16_t ethertype = 0;  // the inner type when a VLAN tag is present
  bool has_vlan = false;
  uint16_t vlan_tci = 0;   // PCP, DEI and VLAN id as on the wire
  uint16_t l3_offset = 0;  // 14, or 18 with a tag

  // IPv4 / IPv6.
  IpAddress src_ip;
  IpAddress dst_ip;
  uint8_t l4_protocol = 0;              // IPv4 protocol; IPv6: the base header's Next Header
  uint8_t ttl = 0;                      // IPv4 TTL / IPv6 hop limit
  uint8_t tos = 0;                      // IPv4 TOS / IPv6 traffic class
  bool fragment = false;                // IPv4 MF or offset != 0; IPv6 fragment header first
  bool ipv4_options = false;            // IHL > 5 (still parsed; allowed on the fast path)
  bool ipv6_extension_headers = false;  // Next Header is an extension header: not walked
  uint16_t l4_offset = 0;               // first byte after the IP header
  uint16_t l4_length = 0;               // IP payload length per the IP header (padding excluded)

  // UDP (when fast_path).
  uint16_t src_port = 0;
  uint16_t dst_port = 0;
  uint16_t payload_offset = 0;
  uint16_t payload_length = 0;

  // Well-formed UDP over IPv4 or IPv6, not a fragment, no IPv6 extension headers.
  bool fast_path = false;

  bool ok() const { return error == FrameError::kNone; }
  bool is_ip() const { return kind == FrameKind::kIpv4 || kind == FrameKind::kIpv6; }
  SocketAddress src() const { return {src_ip, src_port}; }
  SocketAddress dst() const { return {dst_ip, dst_port}; }
};

// Classifies one frame. Never reads outside `frame`.
FrameInfo ParseFrame(std::span<const uint8_t> frame, ParseOptions options = {});
// The same into `info` (reset first), for the packet path: parsing in place avoids copying a
// FrameInfo just written, whose loads would wait on the stores that built it.
void ParseFrame(std::span<const uint8_t> frame, FrameInfo& info, ParseOptions options = {});

// Verifies the UDP checksum of a fast-path frame (zero over IPv4: none sent, accepted). Not part
// of ParseFrame because it touches every payload byte; skip it when the NIC reports
// RTE_MBUF_F_RX_L4_CKSUM_GOOD.
bool UdpChecksumValid(std::span<const uint8_t> frame, const FrameInfo& info);

}  // namespace turnpike::dataplane::packet
