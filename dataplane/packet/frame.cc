#include "dataplane/packet/frame.h"

#include <cstring>
#include <memory>

#include "dataplane/packet/checksum.h"

namespace turnpike::dataplane::packet {
namespace {

// RFC 8200 4 and the IANA "IPv6 Extension Header Types" registry. 59 (No Next Header) is not
// an extension header but carries nothing for us either; it falls through as "other protocol".
bool IsIpv6ExtensionHeader(uint8_t next_header) {
  switch (next_header) {
    case 0:    // Hop-by-Hop Options
    case 43:   // Routing
    case 44:   // Fragment
    case 50:   // ESP
    case 51:   // AH
    case 60:   // Destination Options
    case 135:  // Mobility
    case 139:  // HIP
    case 140:  // Shim6
    case 253:  // experimentation (RFC 3692)
    case 254:
      return true;
    default:
      return false;
  }
}

// Writes an address into a FrameInfo still zeroed by ParseFrame, field by field. (Building an
// IpAddress on the stack and copying it in made the copy's 16-byte load wait for the smaller
// stores that built it: store-to-load forwarding fails, about a tenth of the worker's cycles
// per relayed packet went to such waits, perf/dpdk/worker_bench.cc.)
void SetAddress(IpAddress& ip, AddressFamily family, const uint8_t* bytes, size_t size) {
  ip.family = family;
  std::memcpy(ip.bytes.data(), bytes, size);
}

void ParseUdp(const uint8_t* frame, FrameInfo& info) {
  if (info.l4_length < sizeof(UdpHeader)) {
    info.error = FrameError::kUdpTruncated;
    return;
  }
  const auto* udp = reinterpret_cast<const UdpHeader*>(frame + info.l4_offset);
  // Linux and FreeBSD trim an IP payload longer than the UDP length; we refuse it, since no
  // sender of relayed media produces it and the surplus would be outside the checksum.
  if (Load16(udp->length) != info.l4_length) {
    info.error = FrameError::kUdpBadLength;
    return;
  }
  info.src_port = Load16(udp->src_port);
  info.dst_port = Load16(udp->dst_port);
  info.payload_offset = static_cast<uint16_t>(info.l4_offset + sizeof(UdpHeader));
  info.payload_length = static_cast<uint16_t>(info.l4_length - sizeof(UdpHeader));
  info.fast_path = true;
}

void ParseIpv4(std::span<const uint8_t> frame, const ParseOptions& options, FrameInfo& info) {
  const size_t available = frame.size() - info.l3_offset;
  if (available < sizeof(Ipv4Header)) {
    info.error = FrameError::kIpv4Truncated;
    return;
  }
  const uint8_t* l3 = frame.data() + info.l3_offset;
  const auto* ip = reinterpret_cast<const Ipv4Header*>(l3);
  if ((ip->version_ihl >> 4) != 4) {
    info.error = FrameError::kIpv4BadVersion;
    return;
  }
  const size_t header_length = size_t{ip->version_ihl & 0x0fu} * 4;
  if (header_length < sizeof(Ipv4Header)) {
    info.error = FrameError::kIpv4BadHeaderLength;
    return;
  }
  const size_t total_length = Load16(ip->total_length);
  if (total_length < header_length || total_length > available) {
    info.error = FrameError::kIpv4BadTotalLength;
    return;
  }
  if (options.verify_ipv4_checksum && !Ipv4HeaderChecksumValid({l3, header_length})) {
    info.error = FrameError::kIpv4BadChecksum;
    return;
  }
  SetAddress(info.src_ip, AddressFamily::kIPv4, ip->src, 4);
  SetAddress(info.dst_ip, AddressFamily::kIPv4, ip->dst, 4);
  info.l4_protocol = ip->protocol;
  info.ttl = ip->ttl;
  info.tos = ip->tos;
  info.ipv4_options = header_length > sizeof(Ipv4Header);
  info.fragment = (Load16(ip->flags_fragment) & (kIpv4FlagMf | kIpv4FragmentOffsetMask)) != 0;
  info.l4_offset = static_cast<uint16_t>(info.l3_offset + header_length);
  info.l4_length = static_cast<uint16_t>(total_length - header_length);
  // A fragment's UDP header is either absent (offset != 0) or describes the whole datagram:
  // reassembly is not the fast path's job.
  if (!info.fragment && info.l4_protocol == kIpProtoUdp) {
    ParseUdp(frame.data(), info);
  }
}

void ParseIpv6(std::span<const uint8_t> frame, FrameInfo& info) {
  const size_t available = frame.size() - info.l3_offset;
  if (available < sizeof(Ipv6Header)) {
    info.error = FrameError::kIpv6Truncated;
    return;
  }
  const auto* ip = reinterpret_cast<const Ipv6Header*>(frame.data() + info.l3_offset);
  if ((ip->vtc_flow[0] >> 4) != 6) {
    info.error = FrameError::kIpv6BadVersion;
    return;
  }
  const size_t payload_length = Load16(ip->payload_length);
  if (sizeof(Ipv6Header) + payload_length > available) {
    info.error = FrameError::kIpv6BadPayloadLength;
    return;
  }
  SetAddress(info.src_ip, AddressFamily::kIPv6, ip->src, 16);
  SetAddress(info.dst_ip, AddressFamily::kIPv6, ip->dst, 16);
  info.l4_protocol = ip->next_header;
  info.ttl = ip->hop_limit;
  info.tos = static_cast<uint8_t>((ip->vtc_flow[0] << 4) | (ip->vtc_flow[1] >> 4));
  info.l4_offset = static_cast<uint16_t>(info.l3_offset + sizeof(Ipv6Header));
  info.l4_length = static_cast<uint16_t>(payload_length);
  if (IsIpv6ExtensionHeader(ip->next_header)) {
    // Not walked: any extension header (a fragment header included) leaves the fast path.
    info.ipv6_extension_headers = true;
    info.fragment = ip->next_header == 44;
    return;
  }
  if (info.l4_protocol == kIpProtoUdp) {
    ParseUdp(frame.data(), info);
  }
}

void ParseArp(std::span<const uint8_t> frame, FrameInfo& info) {
  if (frame.size() - info.l3_offset < sizeof(ArpPacket)) {
    info.error = FrameError::kArpTruncated;
    return;
  }
  const auto* arp = reinterpret_cast<const ArpPacket*>(frame.data() + info.l3_offset);
  if (Load16(arp->htype) != kArpHtypeEthernet || Load16(arp->ptype) != kEtherTypeIpv4 ||
      arp->hlen != 6 || arp->plen != 4) {
    info.error = FrameError::kArpUnsupported;
  }
}

}  // namespace

const char* FrameErrorName(FrameError error) {
  switch (error) {
    case FrameError::kNone:
      return "none";
    case FrameError::kEthernetTruncated:
      return "ethernet_truncated";
    case FrameError::kVlanTruncated:
      return "vlan_truncated";
    case FrameError::kArpTruncated:
      return "arp_truncated";
    case FrameError::kArpUnsupported:
      return "arp_unsupported";
    case FrameError::kIpv4Truncated:
      return "ipv4_truncated";
    case FrameError::kIpv4BadVersion:
      return "ipv4_bad_version";
    case FrameError::kIpv4BadHeaderLength:
      return "ipv4_bad_header_length";
    case FrameError::kIpv4BadTotalLength:
      return "ipv4_bad_total_length";
    case FrameError::kIpv4BadChecksum:
      return "ipv4_bad_checksum";
    case FrameError::kIpv6Truncated:
      return "ipv6_truncated";
    case FrameError::kIpv6BadVersion:
      return "ipv6_bad_version";
    case FrameError::kIpv6BadPayloadLength:
      return "ipv6_bad_payload_length";
    case FrameError::kUdpTruncated:
      return "udp_truncated";
    case FrameError::kUdpBadLength:
      return "udp_bad_length";
    case FrameError::kCount:
      break;
  }
  return "unknown";
}

FrameInfo ParseFrame(std::span<const uint8_t> frame, ParseOptions options) {
  FrameInfo info;
  ParseFrame(frame, info, options);
  return info;
}

void ParseFrame(std::span<const uint8_t> frame, FrameInfo& info, ParseOptions options) {
  // Reset in place: `info = FrameInfo{}` built a temporary and copied it (see SetAddress).
  std::construct_at(&info);
  if (frame.size() < sizeof(EthernetHeader)) {
    info.error = FrameError::kEthernetTruncated;
    return;
  }
  const auto* eth = reinterpret_cast<const EthernetHeader*>(frame.data());
  info.dst_mac = MacAddress::From(eth->dst);
  info.src_mac = MacAddress::From(eth->src);
  uint16_t type = Load16(eth->ethertype);
  size_t l3_offset = sizeof(EthernetHeader);
  if (type == kEtherTypeVlan) {
    if (frame.size() < sizeof(EthernetHeader) + sizeof(VlanTag)) {
      info.ethertype = type;
      info.error = FrameError::kVlanTruncated;
      return;
    }
    const auto* tag = reinterpret_cast<const VlanTag*>(frame.data() + sizeof(EthernetHeader));
    info.has_vlan = true;
    info.vlan_tci = Load16(tag->tci);
    type = Load16(tag->ethertype);
    l3_offset += sizeof(VlanTag);
  }
  info.ethertype = type;
  info.l3_offset = static_cast<uint16_t>(l3_offset);
  // A second tag (0x8100 again, or an 802.1ad S-tag) and 802.3 length fields are "other".
  switch (type) {
    case kEtherTypeArp:
      info.kind = FrameKind::kArp;
      ParseArp(frame, info);
      break;
    case kEtherTypeIpv4:
      info.kind = FrameKind::kIpv4;
      ParseIpv4(frame, options, info);
      break;
    case kEtherTypeIpv6:
      info.kind = FrameKind::kIpv6;
      ParseIpv6(frame, info);
      break;
    default:
      break;
  }
}

bool UdpChecksumValid(std::span<const uint8_t> frame, const FrameInfo& info) {
  if (!info.fast_path) {
    return false;
  }
  return UdpChecksumValid(info.src_ip, info.dst_ip, frame.subspan(info.l4_offset, info.l4_length));
}

}  // namespace turnpike::dataplane::packet
