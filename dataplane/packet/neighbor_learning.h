// Learning next-hop MAC addresses from received ARP and Neighbor Discovery: one function that
// turns an ARP request/reply or a validated NS/NA carrying a link-layer address option into an
// (IP, MAC) observation for the neighbour table. Whether to create an entry or only refresh one
// is the caller's policy (RFC 826: create only when we are the target; RFC 4861 7.2.5: an NA
// never creates an entry, and one without Override does not change a known MAC).
#pragma once

#include <cstdint>
#include <optional>
#include <span>

#include "dataplane/packet/frame.h"
#include "dataplane/packet/wire.h"
#include "turn/net/socket_address.h"

namespace turnpike::dataplane::packet {

enum class NeighborSource : uint8_t {
  kArpRequest,
  kArpReply,
  kNeighborSolicitation,
  kNeighborAdvertisement,
};

struct NeighborObservation {
  IpAddress ip;    // the neighbour's address (ARP sender, NS source, NA target)
  MacAddress mac;  // its link-layer address
  NeighborSource source;
  IpAddress target;           // what the message asked about or announced (ARP target, ND target)
  bool solicited = false;     // NA Solicited flag (a reply to our NS)
  bool override_flag = true;  // NA Override flag; true for ARP and NS
};

// nullopt when the frame teaches nothing: not ARP/NS/NA, invalid (see ParseArp and
// ParseNeighborDiscovery), sender IP unspecified (ARP probe, DAD), no link-layer option, or a
// group/zero MAC.
std::optional<NeighborObservation> ExtractNeighbor(std::span<const uint8_t> frame,
                                                   const FrameInfo& info);

}  // namespace turnpike::dataplane::packet
