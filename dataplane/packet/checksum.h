// Internet checksums for the packet path: the RFC 1071 one's-complement sum, the IPv4 header
// checksum, UDP/ICMPv6 checksums over the IPv4 and IPv6 pseudo-headers, and RFC 1624
// incremental updates for rewritten fields.
//
// Conventions. A "sum" is an unfinished 32-bit accumulator of 16-bit big-endian words (it may
// carry above bit 15; Fold() adds the carries back). A "checksum" is the 16-bit value of the
// field read big-endian with Load16 and written with Store16. Sums over consecutive chunks may be
// chained through the `sum` argument only if every chunk but the last has even length: an odd
// byte is padded as the high half of a final word, as RFC 1071 does at the end of the data.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>

#include "turn/net/socket_address.h"

namespace turnpike::dataplane::packet {

// Adds the end-around carries: the 16-bit one's-complement sum.
constexpr uint16_t Fold(uint32_t sum) {
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}

// RFC 1071 one's-complement sum of `data` added to `sum`. Eight bytes per step in native order;
// about 14 ns for 180 bytes (conditions as in frame.h). The result is partly folded (below
// 2^17), so it can be passed on as `sum` again without overflow. Inline: the packet path sums
// many short fields of known size (addresses, the head of a ChannelData message), which the
// compiler then unrolls.
inline uint32_t Sum16(std::span<const uint8_t> data, uint32_t sum = 0) {
  const uint8_t* p = data.data();
  size_t n = data.size();
  uint64_t acc = 0;  // 32-bit words: no overflow below 2^32 words
  while (n >= 8) {
    uint32_t a;
    uint32_t b;
    std::memcpy(&a, p, 4);
    std::memcpy(&b, p + 4, 4);
    acc += a;
    acc += b;
    p += 8;
    n -= 8;
  }
  if (n >= 4) {
    uint32_t a;
    std::memcpy(&a, p, 4);
    acc += a;
    p += 4;
    n -= 4;
  }
  if (n >= 2) {
    uint16_t a;
    std::memcpy(&a, p, 2);
    acc += a;
    p += 2;
    n -= 2;
  }
  if (n == 1) {
    uint16_t a = 0;
    std::memcpy(&a, p, 1);  // the byte lands in the word's first (big-endian high) half
    acc += a;
  }
  acc = (acc & 0xffffffff) + (acc >> 32);
  acc = (acc & 0xffffffff) + (acc >> 32);
  uint16_t folded = Fold(static_cast<uint32_t>(acc));
  if constexpr (std::endian::native == std::endian::little) {  // native words to big-endian
    folded = static_cast<uint16_t>((folded >> 8) | (folded << 8));
  }
  const uint32_t r = sum + folded;
  return (r & 0xffff) + (r >> 16);
}

// The checksum to store: the complement of the folded sum.
constexpr uint16_t Finish(uint32_t sum) { return static_cast<uint16_t>(~Fold(sum)); }

// RFC 1071 checksum of `data` (ICMPv4 messages, the IPv4 header).
inline uint16_t InternetChecksum(std::span<const uint8_t> data) { return Finish(Sum16(data)); }

// Sum of the pseudo-header that UDP (RFC 768), TCP and ICMPv6 (RFC 4443 2.3) prepend:
//   IPv4: src(4) dst(4) zero(1) protocol(1) length(2)
//   IPv6 (RFC 8200 8.1): src(16) dst(16) length(4) zero(3) next-header(1)
// Both reduce to the same words; `src` and `dst` must have the same family.
inline uint32_t PseudoHeaderSum(const IpAddress& src, const IpAddress& dst, uint8_t protocol,
                                uint32_t length) {
  uint32_t sum = Sum16({src.bytes.data(), src.size()});
  sum = Sum16({dst.bytes.data(), dst.size()}, sum);
  return sum + protocol + (length >> 16) + (length & 0xffff);
}

// Checksum of an IPv4 header of `header.size()` bytes (IHL * 4), computed as if the checksum
// field (bytes 10-11) were zero, whatever it holds.
inline uint16_t Ipv4HeaderChecksum(std::span<const uint8_t> header) {
  return Finish(Sum16(header.subspan(12), Sum16(header.first(10))));
}
// True when the header, checksum field included, sums to 0xffff.
inline bool Ipv4HeaderChecksumValid(std::span<const uint8_t> header) {
  return Fold(Sum16(header)) == 0xffff;
}

// UDP checksum over the pseudo-header and `segment` (UDP header + payload, exactly UDP-length
// bytes), computed as if the checksum field were zero. A computed 0x0000 is returned as 0xffff
// (RFC 768: zero in the field means "no checksum" over IPv4; RFC 8200 8.1 keeps the rule).
uint16_t UdpChecksum(const IpAddress& src, const IpAddress& dst, std::span<const uint8_t> segment);

// Checks the UDP checksum held in `segment`. Over IPv4 a zero field means none was sent and is
// accepted; over IPv6 the checksum is mandatory and zero is refused (RFC 8200 8.1).
bool UdpChecksumValid(const IpAddress& src, const IpAddress& dst, std::span<const uint8_t> segment);

// What a NIC with UDP checksum offload expects in the field (DPDK RTE_MBUF_F_TX_UDP_CKSUM, the
// value rte_ipv4_phdr_cksum / rte_ipv6_phdr_cksum return): the folded, NOT complemented,
// pseudo-header sum. The hardware adds the header and payload and complements.
inline uint16_t UdpPseudoHeaderChecksum(const IpAddress& src, const IpAddress& dst,
                                        uint16_t udp_length) {
  return Fold(PseudoHeaderSum(src, dst, 17, udp_length));
}

// A relayed payload's checksum without reading the payload again (the DPDK TX path): the
// received datagram's UDP checksum already vouches for the sum of its payload, and the relayed
// body is that payload or a subspan of it (RFC 1624 arithmetic, RFC 1071 2(B) for odd offsets).
// A corrupted datagram yields a wrong sum, so the relayed one carries a wrong checksum too and
// its receiver drops it, as a kernel would have dropped the original: integrity end to end.

// Swaps the bytes of a folded sum: the contribution of data summed from an odd offset.
constexpr uint16_t Swap16(uint16_t v) { return static_cast<uint16_t>((v << 8) | (v >> 8)); }
// One's-complement a - b of folded sums.
constexpr uint16_t SubtractSum(uint16_t a, uint16_t b) {
  return Fold(uint32_t{a} + static_cast<uint16_t>(~b));
}
// The folded sum of the payload of a received UDP datagram from its header's checksum field
// (`udp` is the 8-byte header, `udp_length` its length field), or nullopt when the field is 0
// (IPv4: no checksum sent; IPv6: invalid).
// Inline: returned from a call, the optional went through the stack and was read back wider
// than it was written (a store-forwarding stall per relayed packet).
inline std::optional<uint16_t> UdpPayloadSumFromChecksum(const IpAddress& src,
                                                         const IpAddress& dst,
                                                         std::span<const uint8_t> udp,
                                                         uint16_t udp_length) {
  if (udp.size() < 8 || (udp[6] == 0 && udp[7] == 0)) return std::nullopt;
  // Pseudo-header + header (checksum field included) + payload fold to 0xffff (negative zero),
  // so the payload's sum is the complement of the rest.
  const uint32_t rest = Sum16(udp.first(8), PseudoHeaderSum(src, dst, 17, udp_length));
  return static_cast<uint16_t>(~Fold(rest));
}
// The folded sum of `body`, a subspan of `payload` whose folded sum is `payload_sum`, computed
// from the bytes of `payload` outside `body` (a ChannelData header, padding).
uint16_t SubspanSum(std::span<const uint8_t> payload, uint16_t payload_sum,
                    std::span<const uint8_t> body);

// ICMPv6 checksum (RFC 4443 2.3) over the pseudo-header and `message`, computed as if the
// checksum field (bytes 2-3) were zero.
uint16_t Icmpv6Checksum(const IpAddress& src, const IpAddress& dst,
                        std::span<const uint8_t> message);
bool Icmpv6ChecksumValid(const IpAddress& src, const IpAddress& dst,
                         std::span<const uint8_t> message);

// RFC 1624 eqn. 3 incremental update, HC' = ~(~HC + ~m + m'), when the 16-bit word m of the
// covered data becomes m'. Unlike eqn. 2 of RFC 1141 it never yields 0x0000 for data that is not
// all zero, so it agrees with a full recomputation. Word alignment matters: m must sit at an even
// offset from the start of the covered data (every field this code rewrites does).
constexpr uint16_t ChecksumUpdate16(uint16_t checksum, uint16_t old_word, uint16_t new_word) {
  uint32_t sum = static_cast<uint16_t>(~checksum);
  sum += static_cast<uint16_t>(~old_word);
  sum += new_word;
  return Finish(sum);
}

// The same for an aligned 32-bit field (an IPv4 address, two adjacent ports).
constexpr uint16_t ChecksumUpdate32(uint16_t checksum, uint32_t old_value, uint32_t new_value) {
  uint32_t sum = static_cast<uint16_t>(~checksum);
  sum += static_cast<uint16_t>(~(old_value >> 16));
  sum += static_cast<uint16_t>(~old_value);
  sum += new_value >> 16;
  sum += new_value & 0xffff;
  return Finish(sum);
}

// The same for an aligned field of any even length (an IPv6 address: 16 bytes).
uint16_t ChecksumUpdateBytes(uint16_t checksum, std::span<const uint8_t> old_bytes,
                             std::span<const uint8_t> new_bytes);

// A transport checksum (UDP over IPv4 or IPv6, covering the pseudo-header) after the endpoint
// `from` is rewritten to `to` (address and port, same family; whether it is the source or the
// destination does not matter to the sum). For the IPv4 header checksum pass only the address
// change: ChecksumUpdateBytes over the 4 address bytes.
uint16_t ChecksumUpdateEndpoint(uint16_t checksum, const SocketAddress& from,
                                const SocketAddress& to);

// UDP's view of the above: a zero checksum over IPv4 (none sent) stays zero, and a result of
// 0x0000 is sent as 0xffff (RFC 768).
inline uint16_t UdpChecksumUpdateEndpoint(uint16_t checksum, const SocketAddress& from,
                                          const SocketAddress& to) {
  if (checksum == 0 && from.ip.is_v4()) {
    return 0;
  }
  uint16_t updated = ChecksumUpdateEndpoint(checksum, from, to);
  return updated == 0 ? 0xffff : updated;
}

}  // namespace turnpike::dataplane::packet
