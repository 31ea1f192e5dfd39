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

}  // namespace turnpike
