// Echo replies for the data plane's own addresses: ICMP (RFC 792) and ICMPv6 (RFC 4443 4.2), so
// that `ping` to a DPDK-owned address works. Other ICMP goes to the exception path.
#pragma once

#include <span>

#include "dataplane/packet/frame.h"
#include "dataplane/packet/reply.h"
#include "dataplane/packet/wire.h"
#include "turn/net/socket_address.h"

namespace turnpike::dataplane::packet {

// Answers an ICMP echo request (type 8, code 0, valid checksum, not a fragment) sent to one of
// `ours`. The reply swaps the MAC and IP addresses, keeps the VLAN tag, TOS, identifier,
// sequence and data, drops any IP options, and is sent as an atomic datagram (DF, ID 0, TTL 64;
// it is no larger than the request that reached us). Its ICMP checksum is the request's updated
// for the type change (RFC 1624). Requests from source addresses that must not be answered
// (unspecified, limited broadcast, loopback, multicast, class E) are ignored.
Reply BuildIcmpEchoReply(std::span<const uint8_t> request, const FrameInfo& info,
                         const MacAddress& our_mac, std::span<const IpAddress> ours,
                         std::span<uint8_t> out);

// Answers an ICMPv6 echo request (type 128, code 0, valid checksum, no extension headers) sent to
// one of `ours` (unicast only). Hop limit 64; traffic class kept; flow label 0.
Reply BuildIcmpv6EchoReply(std::span<const uint8_t> request, const FrameInfo& info,
                           const MacAddress& our_mac, std::span<const IpAddress> ours,
                           std::span<uint8_t> out);

}  // namespace turnpike::dataplane::packet
