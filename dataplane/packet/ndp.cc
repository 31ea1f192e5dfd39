#include "dataplane/packet/ndp.h"

#include <cstring>

#include "dataplane/packet/checksum.h"
#include "dataplane/packet/tx_headers.h"

namespace turnpike::dataplane::packet {
namespace {

// ICMPv6 message of an NS or NA with one link-layer address option:
// 24 bytes of NdMessage + type(1) length(1) MAC(6).
constexpr size_t kNdWithLinkLayerOption = sizeof(NdMessage) + 8;

bool IsSolicitedNodeAddress(const IpAddress& ip) {
  static constexpr uint8_t kPrefix[13] = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff};
  return ip.is_v6() && std::memcmp(ip.bytes.data(), kPrefix, sizeof(kPrefix)) == 0;
}

std::optional<uint16_t> VlanOf(const FrameInfo& info) {
  return info.has_vlan ? std::optional<uint16_t>(info.vlan_tci) : std::nullopt;
}

// Writes an NS or NA with a link-layer option at `p` and its checksum.
void WriteNd(uint8_t* p, uint8_t type, uint8_t flags, const IpAddress& target, uint8_t option_type,
             const MacAddress& mac, const IpAddress& src, const IpAddress& dst) {
  auto* nd = reinterpret_cast<NdMessage*>(p);
  nd->type = type;
  nd->code = 0;
  Store16(nd->checksum, 0);
  nd->flags_reserved[0] = flags;
  nd->flags_reserved[1] = 0;
  nd->flags_reserved[2] = 0;
  nd->flags_reserved[3] = 0;
  std::memcpy(nd->target, target.bytes.data(), 16);
  uint8_t* option = p + sizeof(NdMessage);
  option[0] = option_type;
  option[1] = 1;  // in units of 8 bytes
  mac.CopyTo(option + 2);
  Store16(nd->checksum, Icmpv6Checksum(src, dst, {p, kNdWithLinkLayerOption}));
}

}  // namespace

IpAddress SolicitedNodeAddress(const IpAddress& address) {
  uint8_t b[16] = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff};
  b[13] = address.bytes[13];
  b[14] = address.bytes[14];
  b[15] = address.bytes[15];
  return IpAddress::V6Bytes(b);
}

MacAddress Ipv6MulticastMac(const IpAddress& group) {
  return {{0x33, 0x33, group.bytes[12], group.bytes[13], group.bytes[14], group.bytes[15]}};
}

IpAddress AllNodesAddress() {
  static constexpr uint8_t b[16] = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01};
  return IpAddress::V6Bytes(b);
}

std::optional<NdMessageInfo> ParseNeighborDiscovery(std::span<const uint8_t> frame,
                                                    const FrameInfo& info) {
  if (info.kind != FrameKind::kIpv6 || !info.ok() || info.l4_protocol != kIpProtoIcmpv6 ||
      info.l4_length < sizeof(NdMessage)) {
    return std::nullopt;
  }
  const std::span<const uint8_t> icmp = frame.subspan(info.l4_offset, info.l4_length);
  const auto* nd = reinterpret_cast<const NdMessage*>(icmp.data());
  if ((nd->type != kIcmpv6NeighborSolicitation && nd->type != kIcmpv6NeighborAdvertisement) ||
      nd->code != 0 || info.ttl != kNdHopLimit ||
      !Icmpv6ChecksumValid(info.src_ip, info.dst_ip, icmp)) {
    return std::nullopt;
  }
  NdMessageInfo m;
  m.type = nd->type;
  m.target = IpAddress::V6Bytes(nd->target);
  if (m.target.bytes[0] == 0xff) {
    return std::nullopt;
  }
  const bool solicitation = nd->type == kIcmpv6NeighborSolicitation;
  const uint8_t wanted_option = solicitation ? kNdOptionSourceLinkLayer : kNdOptionTargetLinkLayer;
  // Options (RFC 4861 4.6): type, length in 8-byte units (0 is invalid), value.
  std::span<const uint8_t> options = icmp.subspan(sizeof(NdMessage));
  while (!options.empty()) {
    if (options.size() < 2 || options[1] == 0 || size_t{options[1]} * 8 > options.size()) {
      return std::nullopt;
    }
    const size_t option_length = size_t{options[1]} * 8;
    // A link-layer address option for Ethernet is exactly 8 bytes (RFC 4861 4.6.1, RFC 2464 6);
    // the first one counts, as in Linux.
    if (options[0] == wanted_option && option_length == 8 && !m.link_layer) {
      m.link_layer = MacAddress::From(options.data() + 2);
    }
    options = options.subspan(option_length);
  }
  if (solicitation) {
    if (info.src_ip.IsUnspecified() &&
        (!IsSolicitedNodeAddress(info.dst_ip) || m.link_layer.has_value())) {
      return std::nullopt;
    }
  } else {
    m.flags = nd->flags_reserved[0] & (kNaFlagRouter | kNaFlagSolicited | kNaFlagOverride);
    if (info.dst_ip.bytes[0] == 0xff && (m.flags & kNaFlagSolicited) != 0) {
      return std::nullopt;
    }
  }
  return m;
}

Reply BuildNeighborAdvertisement(std::span<const uint8_t> request, const FrameInfo& info,
                                 const MacAddress& our_mac, std::span<const IpAddress> ours,
                                 std::span<uint8_t> out) {
  if (info.kind != FrameKind::kIpv6) {
    return Reply::Of(ReplyVerdict::kIgnored);
  }
  if (!info.ok()) {
    return Reply::Of(ReplyVerdict::kMalformed);
  }
  if (info.l4_protocol != kIpProtoIcmpv6 || info.l4_length < 1 ||
      request[info.l4_offset] != kIcmpv6NeighborSolicitation) {
    return Reply::Of(ReplyVerdict::kIgnored);
  }
  const std::optional<NdMessageInfo> ns = ParseNeighborDiscovery(request, info);
  if (!ns) {
    return Reply::Of(ReplyVerdict::kMalformed);
  }
  if (info.src_mac == our_mac) {  // our own solicitation, looped back
    return Reply::Of(ReplyVerdict::kIgnored);
  }
  if (!IsOurAddress(ours, ns->target)) {
    return Reply::Of(ReplyVerdict::kNotForUs);
  }
  const bool dad = info.src_ip.IsUnspecified();
  MacAddress dst_mac;
  IpAddress dst_ip;
  uint8_t flags = kNaFlagOverride;
  if (dad) {
    dst_ip = AllNodesAddress();
    dst_mac = Ipv6MulticastMac(dst_ip);
  } else {
    dst_ip = info.src_ip;
    dst_mac = ns->link_layer.value_or(info.src_mac);
    flags |= kNaFlagSolicited;
    if (!dst_mac.IsUnicast()) {
      return Reply::Of(ReplyVerdict::kIgnored);
    }
  }
  const std::optional<uint16_t> vlan = VlanOf(info);
  const size_t l2 = EthernetHeaderSize(vlan);
  const size_t length = l2 + sizeof(Ipv6Header) + kNdWithLinkLayerOption;
  if (!FitsPadded(out, length, vlan.has_value())) {
    return Reply::Of(ReplyVerdict::kNoRoom);
  }
  const IpAddress src_ip = ns->target;
  uint8_t* p = out.data();
  p += WriteEthernetHeader(p, dst_mac, our_mac, vlan, kEtherTypeIpv6);
  WriteIpv6Header(p, 0, 0, kNdWithLinkLayerOption, kIpProtoIcmpv6, kNdHopLimit, src_ip, dst_ip);
  p += sizeof(Ipv6Header);
  WriteNd(p, kIcmpv6NeighborAdvertisement, flags, src_ip, kNdOptionTargetLinkLayer, our_mac, src_ip,
          dst_ip);
  return {ReplyVerdict::kReply, PadFrame(out, length, vlan.has_value())};
}

size_t BuildNeighborSolicitation(const MacAddress& our_mac, const IpAddress& our_ip,
                                 const IpAddress& target, std::optional<MacAddress> unicast_to,
                                 std::optional<uint16_t> vlan_tci, std::span<uint8_t> out) {
  const size_t l2 = EthernetHeaderSize(vlan_tci);
  const size_t length = l2 + sizeof(Ipv6Header) + kNdWithLinkLayerOption;
  if (!our_ip.is_v6() || !target.is_v6() || !FitsPadded(out, length, vlan_tci.has_value())) {
    return 0;
  }
  const IpAddress dst_ip = unicast_to ? target : SolicitedNodeAddress(target);
  const MacAddress dst_mac = unicast_to ? *unicast_to : Ipv6MulticastMac(dst_ip);
  uint8_t* p = out.data();
  p += WriteEthernetHeader(p, dst_mac, our_mac, vlan_tci, kEtherTypeIpv6);
  WriteIpv6Header(p, 0, 0, kNdWithLinkLayerOption, kIpProtoIcmpv6, kNdHopLimit, our_ip, dst_ip);
  p += sizeof(Ipv6Header);
  WriteNd(p, kIcmpv6NeighborSolicitation, 0, target, kNdOptionSourceLinkLayer, our_mac, our_ip,
          dst_ip);
  return PadFrame(out, length, vlan_tci.has_value());
}

}  // namespace turnpike::dataplane::packet
