// IpRange membership, used by the peer policy (turn/peer_policy.cc) on the permission and send
// paths and by the configuration reader's tests.

#include "turn/config.h"

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
  if (other.family != ip.family) {
    return false;
  }
  const size_t full = prefix / 8;
  if (std::memcmp(ip.bytes.data(), other.bytes.data(), full) != 0) {
    return false;
  }
  const unsigned rest = prefix % 8;
  if (rest == 0) {
    return true;
  }
  const uint8_t mask = static_cast<uint8_t>(0xFF << (8 - rest));
  return (ip.bytes[full] & mask) == (other.bytes[full] & mask);
}

}  // namespace turnpike
