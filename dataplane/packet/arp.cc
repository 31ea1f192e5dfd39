#include "dataplane/packet/arp.h"

namespace turnpike::dataplane::packet {
namespace {

size_t WriteArp(uint8_t* p, uint16_t op, const MacAddress& sha, const IpAddress& spa,
                const MacAddress& tha, const IpAddress& tpa) {
  auto* arp = reinterpret_cast<ArpPacket*>(p);
  Store16(arp->htype, kArpHtypeEthernet);
  Store16(arp->ptype, kEtherTypeIpv4);
  arp->hlen = 6;
  arp->plen = 4;
  Store16(arp->op, op);
  sha.CopyTo(arp->sha);
  std::memcpy(arp->spa, spa.bytes.data(), 4);
  tha.CopyTo(arp->tha);
  std::memcpy(arp->tpa, tpa.bytes.data(), 4);
  return sizeof(ArpPacket);
}

std::optional<uint16_t> VlanOf(const FrameInfo& info) {
  return info.has_vlan ? std::optional<uint16_t>(info.vlan_tci) : std::nullopt;
}

}  // namespace

std::optional<ArpMessage> ParseArp(std::span<const uint8_t> frame, const FrameInfo& info) {
  if (info.kind != FrameKind::kArp || !info.ok() ||
      frame.size() < size_t{info.l3_offset} + sizeof(ArpPacket)) {
    return std::nullopt;
  }
  const auto* arp = reinterpret_cast<const ArpPacket*>(frame.data() + info.l3_offset);
  ArpMessage m;
  m.op = Load16(arp->op);
  if (m.op != kArpOpRequest && m.op != kArpOpReply) {
    return std::nullopt;
  }
  m.sender_mac = MacAddress::From(arp->sha);
  m.sender_ip = IpAddress::V4Bytes(arp->spa);
  m.target_mac = MacAddress::From(arp->tha);
  m.target_ip = IpAddress::V4Bytes(arp->tpa);
  return m;
}

Reply BuildArpReply(std::span<const uint8_t> request, const FrameInfo& info,
                    const MacAddress& our_mac, std::span<const IpAddress> ours,
                    std::span<uint8_t> out) {
  if (info.kind != FrameKind::kArp) {
    return Reply::Of(ReplyVerdict::kIgnored);
  }
  if (!info.ok()) {
    return Reply::Of(ReplyVerdict::kMalformed);
  }
  const std::optional<ArpMessage> m = ParseArp(request, info);
  if (!m || m->op != kArpOpRequest || !m->sender_mac.IsUnicast() || m->sender_mac == our_mac) {
    return Reply::Of(ReplyVerdict::kIgnored);
  }
  if (!IsOurAddress(ours, m->target_ip)) {
    return Reply::Of(ReplyVerdict::kNotForUs);
  }
  const std::optional<uint16_t> vlan = VlanOf(info);
  const size_t length = EthernetHeaderSize(vlan) + sizeof(ArpPacket);
  if (!FitsPadded(out, length, vlan.has_value())) {
    return Reply::Of(ReplyVerdict::kNoRoom);
  }
  uint8_t* p = out.data();
  p += WriteEthernetHeader(p, m->sender_mac, our_mac, vlan, kEtherTypeArp);
  WriteArp(p, kArpOpReply, our_mac, m->target_ip, m->sender_mac, m->sender_ip);
  return {ReplyVerdict::kReply, PadFrame(out, length, vlan.has_value())};
}

size_t BuildArpRequest(const MacAddress& our_mac, const IpAddress& our_ip, const IpAddress& target,
                       std::optional<MacAddress> unicast_to, std::optional<uint16_t> vlan_tci,
                       std::span<uint8_t> out) {
  const size_t length = EthernetHeaderSize(vlan_tci) + sizeof(ArpPacket);
  if (!our_ip.is_v4() || !target.is_v4() || !FitsPadded(out, length, vlan_tci.has_value())) {
    return 0;
  }
  uint8_t* p = out.data();
  p += WriteEthernetHeader(p, unicast_to.value_or(MacAddress::Broadcast()), our_mac, vlan_tci,
                           kEtherTypeArp);
  // RFC 826 leaves the target hardware address unspecified in a request; zero is the norm.
  WriteArp(p, kArpOpRequest, our_mac, our_ip, MacAddress{}, target);
  return PadFrame(out, length, vlan_tci.has_value());
}

}  // namespace turnpike::dataplane::packet
