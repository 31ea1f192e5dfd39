// IpRange membership, used by the peer policy (turn/peer_policy.cc) on the permission and send
// paths and by the configuration reader's tests.

#include "turn/config.h"

#include <algorithm>
#include <bit>
#include <cstring>

namespace turnpike {

bool IpRange::Contains(const IpAddress& a) const {
  if (a.family != first.family) {
    return false;
  }
  // Addresses are stored in network byte order, so a byte-wise comparison is a numeric one.
  size_t n = a.size();
  return std::memcmp(first.bytes.data(), a.bytes.data(), n) <= 0 &&
         std::memcmp(a.bytes.data(), last.bytes.data(), n) <= 0;
}

bool InterfaceAddress::OnLink(const IpAddress& other) const {
  // Two 8-byte words, masked (the DPDK worker asks this for every relayed packet): the mask of
  // word i covers the address's first `prefix` bits that fall in it, in network byte order.
  if (other.family != ip.family) {
    return false;
  }
  for (size_t i = 0; i < 2; ++i) {
    const int bits = std::clamp(static_cast<int>(prefix) - 64 * static_cast<int>(i), 0, 64);
    if (bits == 0) break;
    uint64_t mask = ~uint64_t{0} << (64 - bits);  // the first `bits` bits, most significant first
    if constexpr (std::endian::native == std::endian::little) mask = __builtin_bswap64(mask);
    if (((ip.word(i) ^ other.word(i)) & mask) != 0) return false;
  }
  return true;
}

}  // namespace turnpike
