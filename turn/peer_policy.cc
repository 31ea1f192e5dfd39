// Peer address policy: decides whether a client may install a permission for, or send to, a peer
// address (RFC 8656 17: a TURN server should not relay to addresses the operator did not mean to
// expose; coturn CVE-2020-26262 showed what 0.0.0.0 and loopback peers give an attacker).
//
// Decision, for the address exactly as the client wrote it:
//   1. inside allowed-peer-ip            -> allowed (the operator asked for it)
//   2. inside denied-peer-ip             -> denied
//   3. inside the built-in deny list     -> denied (127.0.0.0/8 and ::1 exempt with
//                                           allow-loopback-peers)
// and when that form is allowed and is an IPv6 address embedding IPv4 (mapped, compatible,
// NAT64, 6to4, Teredo: IpAddress::EmbeddedV4), the embedded IPv4 address goes through the same
// three steps and must be allowed too. So the built-in list applies to both forms, an allow on the
// exact form asked wins, and an allow on only the IPv4 form opens the mapped forms whose IPv6
// prefix is not itself denied (::ffff:10.0.0.1 with allowed-peer-ip=10.0.0.0/8, but not
// 64:ff9b::a00:1, since 64:ff9b::/96 is denied unless allowed explicitly).

#include "turn/peer_policy.h"

#include <cstring>

namespace turnpike::turn {
namespace {

// Builds a range from "prefix/len" text; the table below is fixed, so a typo is a bug caught by
// the first test run, not an input error.
IpRange Cidr(const char* prefix, unsigned len) {
  IpAddress ip = *IpAddress::Parse(prefix);
  IpRange r{ip, ip};
  for (size_t i = 0; i < ip.size(); ++i) {
    unsigned keep = len > i * 8 ? std::min<unsigned>(8, len - static_cast<unsigned>(i) * 8) : 0;
    auto mask = static_cast<uint8_t>(keep == 0 ? 0 : 0xff << (8 - keep));
    r.first.bytes[i] = ip.bytes[i] & mask;
    r.last.bytes[i] = ip.bytes[i] | static_cast<uint8_t>(~mask);
  }
  return r;
}

bool InAny(const std::vector<IpRange>& list, const IpAddress& a) {
  for (const IpRange& r : list) {
    if (r.Contains(a)) {
      return true;
    }
  }
  return false;
}

bool IsLoopbackRange(const IpRange& r) {
  static const IpRange kV4 = Cidr("127.0.0.0", 8);
  static const IpRange kV6 = Cidr("::1", 128);
  return r == kV4 || r == kV6;
}

}  // namespace

const std::vector<IpRange>& PeerPolicy::DefaultDenied() {
  static const std::vector<IpRange> kDenied = {
      // IPv4 (RFC 6890 special-purpose registry, plus RFC 1122 "this network").
      Cidr("0.0.0.0", 8),        // this network; 0.0.0.0 reaches the server itself
      Cidr("127.0.0.0", 8),      // loopback
      Cidr("10.0.0.0", 8),       // RFC 1918
      Cidr("172.16.0.0", 12),    // RFC 1918
      Cidr("192.168.0.0", 16),   // RFC 1918
      Cidr("100.64.0.0", 10),    // RFC 6598 carrier-grade NAT
      Cidr("169.254.0.0", 16),   // link-local, including cloud metadata 169.254.169.254
      Cidr("192.0.0.0", 24),     // IETF protocol assignments
      Cidr("192.0.2.0", 24),     // TEST-NET-1
      Cidr("198.18.0.0", 15),    // benchmarking
      Cidr("198.51.100.0", 24),  // TEST-NET-2
      Cidr("203.0.113.0", 24),   // TEST-NET-3
      Cidr("224.0.0.0", 4),      // multicast
      Cidr("240.0.0.0", 4),      // reserved, including broadcast 255.255.255.255
      // IPv6 (RFC 6890 / IANA IPv6 special-purpose registry).
      Cidr("::1", 128),       // loopback
      Cidr("::", 128),        // unspecified
      Cidr("fc00::", 7),      // unique local
      Cidr("fe80::", 10),     // link-local
      Cidr("ff00::", 8),      // multicast
      Cidr("64:ff9b::", 96),  // NAT64 well-known prefix (RFC 6052)
      Cidr("2001::", 32),     // Teredo (RFC 4380)
      Cidr("2002::", 16),     // 6to4 (RFC 3056)
  };
  return kDenied;
}

PeerPolicy::PeerPolicy(const ServerConfig& config)
    : allowed_(config.allowed_peer_ips), allow_loopback_(config.allow_loopback_peers) {
  // Operator denials first, then the built-in list; allow-loopback-peers removes only the
  // built-in loopback entries, so an explicit denied-peer-ip=127.0.0.1 still holds.
  denied_ = config.denied_peer_ips;
  for (const IpRange& r : DefaultDenied()) {
    if (allow_loopback_ && IsLoopbackRange(r)) {
      continue;
    }
    denied_.push_back(r);
  }
}

bool PeerPolicy::IsAllowedOne(const IpAddress& peer) const {
  return InAny(allowed_, peer) || !InAny(denied_, peer);
}

bool PeerPolicy::IsAllowed(const IpAddress& peer) const {
  if (InAny(allowed_, peer)) {
    return true;
  }
  if (InAny(denied_, peer)) {
    return false;
  }
  if (std::optional<IpAddress> v4 = peer.EmbeddedV4()) {
    return IsAllowedOne(*v4);
  }
  return true;
}

}  // namespace turnpike::turn
