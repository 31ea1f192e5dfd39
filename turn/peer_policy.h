// Which peer addresses a client may reach through the relay (RFC 8656 17, and the lessons of
// coturn CVE-2020-26262). Secure by default: loopback, private, link-local, metadata,
// multicast, documentation and reserved ranges are denied unless allowed-peer-ip opens them.
// IPv6 forms that embed an IPv4 address are checked as that IPv4 address too.
#pragma once

#include <vector>

#include "turn/config.h"
#include "turn/net/socket_address.h"

namespace turnpike::turn {

class PeerPolicy {
 public:
  explicit PeerPolicy(const ServerConfig& config);

  // Order of decisions: an address inside allowed-peer-ip is allowed; otherwise inside
  // denied-peer-ip or the default deny list (loopback exempt when allow-loopback-peers) is
  // denied; otherwise allowed. An IPv6 address embedding IPv4 is denied when either form is.
  bool IsAllowed(const IpAddress& peer) const;

  // The built-in deny list, for docs and tests.
  static const std::vector<IpRange>& DefaultDenied();

 private:
  bool IsAllowedOne(const IpAddress& peer) const;

  std::vector<IpRange> allowed_;
  std::vector<IpRange> denied_;
  bool allow_loopback_;
};

}  // namespace turnpike::turn
