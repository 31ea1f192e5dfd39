// IPv6 Neighbor Discovery (RFC 4861) for the data plane's own addresses: answering Neighbor
// Solicitations with solicited Neighbor Advertisements, and building solicitations to resolve a
// next hop. The neighbour table (neighbor_table.h) holds the answers; neighbor_learning.h
// extracts them from received NS/NA.
#pragma once

#include <cstdint>
#include <optional>
#include <span>

#include "dataplane/packet/frame.h"
#include "dataplane/packet/reply.h"
#include "dataplane/packet/wire.h"
#include "turn/net/socket_address.h"

namespace turnpike::dataplane::packet {

// A validated NS or NA.
struct NdMessageInfo {
  uint8_t type = 0;   // kIcmpv6NeighborSolicitation or kIcmpv6NeighborAdvertisement
  uint8_t flags = 0;  // NA: kNaFlagRouter | kNaFlagSolicited | kNaFlagOverride; NS: 0
  IpAddress target;
  // NS: the source link-layer address option; NA: the target link-layer address option.
  std::optional<MacAddress> link_layer;
};

// Validates an NS or NA as RFC 4861 7.1.1 / 7.1.2 require: no extension headers, hop limit 255,
// ICMPv6 code 0 and a valid checksum, at least 24 bytes, a target that is not multicast, options
// of non-zero length that fit exactly; an NS from the unspecified address (DAD) must go to a
// solicited-node address and carry no source link-layer option; an NA to a multicast address
// must not have the Solicited flag. Any other frame gives nullopt.
std::optional<NdMessageInfo> ParseNeighborDiscovery(std::span<const uint8_t> frame,
                                                    const FrameInfo& info);

// Answers a Neighbor Solicitation whose target is one of `ours` (RFC 4861 7.2.4): an NA from the
// target address with Solicited and Override set and our MAC in a target link-layer option,
// to the solicitor (Ethernet destination from its source link-layer option, else the frame's
// source MAC). A DAD solicitation (source ::) is answered to all-nodes ff02::1 without the
// Solicited flag, so that the duplicate gives up our address. Invalid NS: kMalformed.
Reply BuildNeighborAdvertisement(std::span<const uint8_t> request, const FrameInfo& info,
                                 const MacAddress& our_mac, std::span<const IpAddress> ours,
                                 std::span<uint8_t> out);

// A Neighbor Solicitation for `target` from `our_ip` with our MAC as source link-layer option:
// to the target's solicited-node multicast address and its 33:33:ff:xx:xx:xx MAC, or unicast to
// `target` at `unicast_to` to re-confirm a known neighbour (RFC 4861 7.3.3). Returns the frame
// length (86, or 90 with a tag), or 0 when `out` is too small or an address is not IPv6.
size_t BuildNeighborSolicitation(const MacAddress& our_mac, const IpAddress& our_ip,
                                 const IpAddress& target, std::optional<MacAddress> unicast_to,
                                 std::optional<uint16_t> vlan_tci, std::span<uint8_t> out);

// ff02::1:ffXX:XXXX from the low 24 bits of `address` (RFC 4291 2.7.1).
IpAddress SolicitedNodeAddress(const IpAddress& address);
// 33:33 and the low 32 bits of an IPv6 multicast address (RFC 2464 7).
MacAddress Ipv6MulticastMac(const IpAddress& group);
// ff02::1.
IpAddress AllNodesAddress();

}  // namespace turnpike::dataplane::packet
