#include "dataplane/packet/tx_headers.h"

#include <algorithm>
#include <cstring>

#include "dataplane/packet/checksum.h"

namespace turnpike::dataplane::packet {

size_t UdpHeadersSize(const UdpTxParams& params) {
  const size_t l3 = params.src.ip.is_v4() ? sizeof(Ipv4Header) : sizeof(Ipv6Header);
  return EthernetHeaderSize(params.vlan_tci) + l3 + sizeof(UdpHeader);
}

void WriteIpv4Header(uint8_t* p, uint8_t tos, uint16_t total_length, uint16_t id,
                     uint16_t flags_fragment, uint8_t ttl, uint8_t protocol, const IpAddress& src,
                     const IpAddress& dst, bool checksum_offload) {
  auto* ip = reinterpret_cast<Ipv4Header*>(p);
  ip->version_ihl = 0x45;
  ip->tos = tos;
  Store16(ip->total_length, total_length);
  Store16(ip->id, id);
  Store16(ip->flags_fragment, flags_fragment);
  ip->ttl = ttl;
  ip->protocol = protocol;
  Store16(ip->checksum, 0);
  std::memcpy(ip->src, src.bytes.data(), 4);
  std::memcpy(ip->dst, dst.bytes.data(), 4);
  if (!checksum_offload) {
    // Summed from the values, not read back from the header just written: a 4-byte load of
    // bytes written by 2-byte stores cannot be forwarded from the store buffer and stalls.
    uint32_t sum = 0x4500u + tos + total_length + id + flags_fragment + (uint32_t{ttl} << 8) +
                   protocol;
    sum = Sum16({dst.bytes.data(), 4}, Sum16({src.bytes.data(), 4}, sum));
    Store16(ip->checksum, Finish(sum));
  }
}

void WriteIpv6Header(uint8_t* p, uint8_t traffic_class, uint32_t flow_label,
                     uint16_t payload_length, uint8_t next_header, uint8_t hop_limit,
                     const IpAddress& src, const IpAddress& dst) {
  auto* ip = reinterpret_cast<Ipv6Header*>(p);
  Store32(ip->vtc_flow, (6u << 28) | (uint32_t{traffic_class} << 20) | (flow_label & 0xfffff));
  Store16(ip->payload_length, payload_length);
  ip->next_header = next_header;
  ip->hop_limit = hop_limit;
  std::memcpy(ip->src, src.bytes.data(), 16);
  std::memcpy(ip->dst, dst.bytes.data(), 16);
}

std::optional<Prepended> PrependUdpHeaders(std::span<uint8_t> buffer, size_t payload_offset,
                                           size_t payload_length, const UdpTxParams& params) {
  const bool v4 = params.src.ip.is_v4();
  if (params.dst.ip.family != params.src.ip.family) {
    return std::nullopt;
  }
  const size_t headers = UdpHeadersSize(params);
  if (payload_offset < headers || payload_offset > buffer.size() ||
      payload_length > buffer.size() - payload_offset) {
    return std::nullopt;
  }
  const size_t udp_length = sizeof(UdpHeader) + payload_length;
  const size_t l3_length = v4 ? sizeof(Ipv4Header) : sizeof(Ipv6Header);
  if (udp_length + (v4 ? l3_length : 0) > 0xffff) {
    return std::nullopt;
  }

  const size_t frame_offset = payload_offset - headers;
  uint8_t* p = buffer.data() + frame_offset;
  const size_t l2_length = WriteEthernetHeader(p, params.dst_mac, params.src_mac, params.vlan_tci,
                                               v4 ? kEtherTypeIpv4 : kEtherTypeIpv6);
  uint8_t* l3 = p + l2_length;
  if (v4) {
    const uint16_t flags = params.dont_fragment ? kIpv4FlagDf : 0;
    const uint16_t id = params.dont_fragment ? 0 : params.ipv4_id;
    WriteIpv4Header(l3, params.tos, static_cast<uint16_t>(l3_length + udp_length), id, flags,
                    params.ttl, kIpProtoUdp, params.src.ip, params.dst.ip,
                    params.ipv4_checksum_offload);
  } else {
    WriteIpv6Header(l3, params.tos, params.ipv6_flow_label, static_cast<uint16_t>(udp_length),
                    kIpProtoUdp, params.ttl, params.src.ip, params.dst.ip);
  }
  uint8_t* l4 = l3 + l3_length;
  auto* udp = reinterpret_cast<UdpHeader*>(l4);
  Store16(udp->src_port, params.src.port);
  Store16(udp->dst_port, params.dst.port);
  Store16(udp->length, static_cast<uint16_t>(udp_length));
  uint16_t checksum;
  if (params.udp_checksum == UdpChecksumMode::kOffload) {
    checksum =
        UdpPseudoHeaderChecksum(params.src.ip, params.dst.ip, static_cast<uint16_t>(udp_length));
  } else if (params.udp_checksum == UdpChecksumMode::kPayloadSum) {
    // Ports and length (from the values, not read back: see WriteIpv4Header), the
    // pseudo-header, and the sum given for the payload.
    const uint32_t sum = uint32_t{params.src.port} + params.dst.port + udp_length +
                         PseudoHeaderSum(params.src.ip, params.dst.ip, kIpProtoUdp,
                                         static_cast<uint32_t>(udp_length));
    checksum = Finish(sum + params.payload_sum);
    if (checksum == 0) checksum = 0xffff;
  } else {
    checksum = UdpChecksum(params.src.ip, params.dst.ip, {l4, udp_length});
  }
  Store16(udp->checksum, checksum);
  return Prepended{frame_offset, static_cast<uint8_t>(l2_length), static_cast<uint8_t>(l3_length)};
}

std::vector<uint8_t> BuildUdpFrame(std::span<const uint8_t> payload, const UdpTxParams& params) {
  const size_t room = UdpHeadersSize(params);
  std::vector<uint8_t> frame(room + payload.size());
  std::copy(payload.begin(), payload.end(), frame.begin() + static_cast<std::ptrdiff_t>(room));
  if (!PrependUdpHeaders(frame, room, payload.size(), params)) return {};
  return frame;
}

bool RewriteUdpEndpoints(std::span<uint8_t> frame, const FrameInfo& info,
                         const SocketAddress& new_src, const SocketAddress& new_dst) {
  if (!info.fast_path || new_src.ip.family != info.src_ip.family ||
      new_dst.ip.family != info.src_ip.family ||
      size_t{info.l4_offset} + sizeof(UdpHeader) > frame.size()) {
    return false;
  }
  uint8_t* l3 = frame.data() + info.l3_offset;
  auto* udp = reinterpret_cast<UdpHeader*>(frame.data() + info.l4_offset);
  const SocketAddress old_src = info.src();
  const SocketAddress old_dst = info.dst();
  const size_t address_size = info.src_ip.size();

  uint16_t udp_checksum = Load16(udp->checksum);
  udp_checksum = UdpChecksumUpdateEndpoint(udp_checksum, old_src, new_src);
  udp_checksum = UdpChecksumUpdateEndpoint(udp_checksum, old_dst, new_dst);
  Store16(udp->checksum, udp_checksum);
  Store16(udp->src_port, new_src.port);
  Store16(udp->dst_port, new_dst.port);

  uint8_t* src_field;
  uint8_t* dst_field;
  if (info.kind == FrameKind::kIpv4) {
    auto* ip = reinterpret_cast<Ipv4Header*>(l3);
    uint16_t ip_checksum = Load16(ip->checksum);
    ip_checksum = ChecksumUpdateBytes(ip_checksum, {ip->src, 4}, {new_src.ip.bytes.data(), 4});
    ip_checksum = ChecksumUpdateBytes(ip_checksum, {ip->dst, 4}, {new_dst.ip.bytes.data(), 4});
    Store16(ip->checksum, ip_checksum);
    src_field = ip->src;
    dst_field = ip->dst;
  } else {
    auto* ip = reinterpret_cast<Ipv6Header*>(l3);
    src_field = ip->src;
    dst_field = ip->dst;
  }
  std::memcpy(src_field, new_src.ip.bytes.data(), address_size);
  std::memcpy(dst_field, new_dst.ip.bytes.data(), address_size);
  return true;
}

}  // namespace turnpike::dataplane::packet
