#include "dataplane/packet/checksum.h"

namespace turnpike::dataplane::packet {

uint16_t UdpChecksum(const IpAddress& src, const IpAddress& dst, std::span<const uint8_t> segment) {
  uint32_t sum = PseudoHeaderSum(src, dst, 17, static_cast<uint32_t>(segment.size()));
  sum = Sum16(segment.first(6), sum);
  sum = Sum16(segment.subspan(8), sum);
  uint16_t c = Finish(sum);
  return c == 0 ? 0xffff : c;
}

bool UdpChecksumValid(const IpAddress& src, const IpAddress& dst,
                      std::span<const uint8_t> segment) {
  if (segment.size() < 8) {
    return false;
  }
  if (segment[6] == 0 && segment[7] == 0) {
    return src.is_v4();
  }
  uint32_t sum = PseudoHeaderSum(src, dst, 17, static_cast<uint32_t>(segment.size()));
  return Fold(Sum16(segment, sum)) == 0xffff;
}

uint16_t Icmpv6Checksum(const IpAddress& src, const IpAddress& dst,
                        std::span<const uint8_t> message) {
  uint32_t sum = PseudoHeaderSum(src, dst, 58, static_cast<uint32_t>(message.size()));
  sum = Sum16(message.first(2), sum);
  sum = Sum16(message.subspan(4), sum);
  return Finish(sum);
}

bool Icmpv6ChecksumValid(const IpAddress& src, const IpAddress& dst,
                         std::span<const uint8_t> message) {
  if (message.size() < 4) {
    return false;
  }
  uint32_t sum = PseudoHeaderSum(src, dst, 58, static_cast<uint32_t>(message.size()));
  return Fold(Sum16(message, sum)) == 0xffff;
}

uint16_t ChecksumUpdateBytes(uint16_t checksum, std::span<const uint8_t> old_bytes,
                             std::span<const uint8_t> new_bytes) {
  // ~m summed word by word equals the complement of the folded sum of the old words.
  uint32_t sum = static_cast<uint16_t>(~checksum);
  sum += static_cast<uint16_t>(~Fold(Sum16(old_bytes)));
  sum = Sum16(new_bytes, sum);
  return Finish(sum);
}

uint16_t ChecksumUpdateEndpoint(uint16_t checksum, const SocketAddress& from,
                                const SocketAddress& to) {
  uint32_t sum = static_cast<uint16_t>(~checksum);
  sum += static_cast<uint16_t>(~Fold(Sum16({from.ip.bytes.data(), from.ip.size()}) + from.port));
  sum = Sum16({to.ip.bytes.data(), to.ip.size()}, sum);
  sum += to.port;
  return Finish(sum);
}

uint16_t SubspanSum(std::span<const uint8_t> payload, uint16_t payload_sum,
                    std::span<const uint8_t> body) {
  const size_t begin = static_cast<size_t>(body.data() - payload.data());
  const size_t end = begin + body.size();
  const uint16_t prefix = Fold(Sum16(payload.first(begin)));
  uint16_t suffix = Fold(Sum16(payload.subspan(end)));
  if (end % 2 != 0) suffix = Swap16(suffix);
  const uint16_t in_place = SubtractSum(SubtractSum(payload_sum, prefix), suffix);
  return begin % 2 != 0 ? Swap16(in_place) : in_place;
}

}  // namespace turnpike::dataplane::packet
