#include "dataplane/packet/icmp.h"

#include <cstring>

#include "dataplane/packet/checksum.h"
#include "dataplane/packet/tx_headers.h"

namespace turnpike::dataplane::packet {
namespace {

bool AnswerableV4Source(const IpAddress& ip) {
  const uint8_t first = ip.bytes[0];
  return !ip.IsUnspecified() && first != 127 && first < 224;  // not loopback, multicast, class E
}

bool AnswerableV6Source(const IpAddress& ip) {
  return !ip.IsUnspecified() && ip.bytes[0] != 0xff && ip != IpAddress::Loopback(ip.family);
}

std::optional<uint16_t> VlanOf(const FrameInfo& info) {
  return info.has_vlan ? std::optional<uint16_t>(info.vlan_tci) : std::nullopt;
}

}  // namespace

Reply BuildIcmpEchoReply(std::span<const uint8_t> request, const FrameInfo& info,
                         const MacAddress& our_mac, std::span<const IpAddress> ours,
                         std::span<uint8_t> out) {
  if (info.kind != FrameKind::kIpv4) {
    return Reply::Of(ReplyVerdict::kIgnored);
  }
  if (!info.ok()) {  // the protocol is unknown, but the frame is bad either way
    return Reply::Of(ReplyVerdict::kMalformed);
  }
  if (info.l4_protocol != kIpProtoIcmp) {
    return Reply::Of(ReplyVerdict::kIgnored);
  }
  if (info.fragment) {
    return Reply::Of(ReplyVerdict::kIgnored);
  }
  if (info.l4_length < sizeof(IcmpEchoHeader)) {
    return Reply::Of(ReplyVerdict::kMalformed);
  }
  const std::span<const uint8_t> icmp = request.subspan(info.l4_offset, info.l4_length);
  if (icmp[0] != kIcmpEchoRequest) {
    return Reply::Of(ReplyVerdict::kIgnored);
  }
  if (icmp[1] != 0 || Fold(Sum16(icmp)) != 0xffff) {
    return Reply::Of(ReplyVerdict::kMalformed);
  }
  if (!IsOurAddress(ours, info.dst_ip)) {
    return Reply::Of(ReplyVerdict::kNotForUs);
  }
  if (!AnswerableV4Source(info.src_ip) || !info.src_mac.IsUnicast()) {
    return Reply::Of(ReplyVerdict::kIgnored);
  }
  const std::optional<uint16_t> vlan = VlanOf(info);
  const size_t l2 = EthernetHeaderSize(vlan);
  const size_t length = l2 + sizeof(Ipv4Header) + info.l4_length;
  if (!FitsPadded(out, length, vlan.has_value())) {
    return Reply::Of(ReplyVerdict::kNoRoom);
  }
  // Everything needed from the request, read before `out` (possibly the same bytes) is written.
  const uint16_t request_checksum = Load16(icmp.data() + 2);
  const uint8_t tos = info.tos;
  // The ICMP message moves left when the request had IP options; never right.
  uint8_t* reply_icmp = out.data() + l2 + sizeof(Ipv4Header);
  std::memmove(reply_icmp, icmp.data(), icmp.size());
  auto* echo = reinterpret_cast<IcmpEchoHeader*>(reply_icmp);
  echo->type = kIcmpEchoReply;
  Store16(echo->checksum,
          ChecksumUpdate16(request_checksum, kIcmpEchoRequest << 8, kIcmpEchoReply << 8));
  WriteEthernetHeader(out.data(), info.src_mac, our_mac, vlan, kEtherTypeIpv4);
  WriteIpv4Header(out.data() + l2, tos, static_cast<uint16_t>(sizeof(Ipv4Header) + icmp.size()),
                  /*id=*/0, kIpv4FlagDf, kDefaultTtl, kIpProtoIcmp, info.dst_ip, info.src_ip);
  return {ReplyVerdict::kReply, PadFrame(out, length, vlan.has_value())};
}

Reply BuildIcmpv6EchoReply(std::span<const uint8_t> request, const FrameInfo& info,
                           const MacAddress& our_mac, std::span<const IpAddress> ours,
                           std::span<uint8_t> out) {
  if (info.kind != FrameKind::kIpv6) {
    return Reply::Of(ReplyVerdict::kIgnored);
  }
  if (!info.ok()) {
    return Reply::Of(ReplyVerdict::kMalformed);
  }
  if (info.l4_protocol != kIpProtoIcmpv6) {
    return Reply::Of(ReplyVerdict::kIgnored);
  }
  if (info.l4_length < sizeof(IcmpEchoHeader)) {
    return Reply::Of(ReplyVerdict::kMalformed);
  }
  const std::span<const uint8_t> icmp = request.subspan(info.l4_offset, info.l4_length);
  if (icmp[0] != kIcmpv6EchoRequest) {
    return Reply::Of(ReplyVerdict::kIgnored);
  }
  if (icmp[1] != 0 || !Icmpv6ChecksumValid(info.src_ip, info.dst_ip, icmp)) {
    return Reply::Of(ReplyVerdict::kMalformed);
  }
  if (!IsOurAddress(ours, info.dst_ip)) {
    return Reply::Of(ReplyVerdict::kNotForUs);
  }
  if (!AnswerableV6Source(info.src_ip) || !info.src_mac.IsUnicast()) {
    return Reply::Of(ReplyVerdict::kIgnored);
  }
  const std::optional<uint16_t> vlan = VlanOf(info);
  const size_t l2 = EthernetHeaderSize(vlan);
  const size_t length = l2 + sizeof(Ipv6Header) + info.l4_length;
  if (!FitsPadded(out, length, vlan.has_value())) {
    return Reply::Of(ReplyVerdict::kNoRoom);
  }
  const uint16_t request_checksum = Load16(icmp.data() + 2);
  // Same header sizes on both sides: the message stays where it is (memmove for the copy case).
  uint8_t* reply_icmp = out.data() + l2 + sizeof(Ipv6Header);
  std::memmove(reply_icmp, icmp.data(), icmp.size());
  auto* echo = reinterpret_cast<IcmpEchoHeader*>(reply_icmp);
  echo->type = kIcmpv6EchoReply;
  // The pseudo-header sum does not change when source and destination swap.
  Store16(echo->checksum,
          ChecksumUpdate16(request_checksum, kIcmpv6EchoRequest << 8, kIcmpv6EchoReply << 8));
  WriteEthernetHeader(out.data(), info.src_mac, our_mac, vlan, kEtherTypeIpv6);
  WriteIpv6Header(out.data() + l2, info.tos, /*flow_label=*/0, static_cast<uint16_t>(icmp.size()),
                  kIpProtoIcmpv6, kDefaultTtl, info.dst_ip, info.src_ip);
  return {ReplyVerdict::kReply, PadFrame(out, length, vlan.has_value())};
}

}  // namespace turnpike::dataplane::packet
