// ARP for Ethernet and IPv4 (RFC 826): answering requests for the data plane's own addresses,
// and building requests to resolve a next hop. The neighbour table (neighbor_table.h) holds
// the answers; neighbor_learning.h extracts them from received ARP.
#pragma once

#include <cstdint>
#include <optional>
#include <span>

#include "dataplane/packet/frame.h"
#include "dataplane/packet/reply.h"
#include "dataplane/packet/wire.h"
#include "turn/net/socket_address.h"

namespace turnpike::dataplane::packet {

struct ArpMessage {
  uint16_t op = 0;  // kArpOpRequest or kArpOpReply
  MacAddress sender_mac;
  IpAddress sender_ip;
  MacAddress target_mac;
  IpAddress target_ip;
};

// The fields of an ARP frame that ParseFrame accepted (kind kArp, ok()). nullopt for any other
// frame and for opcodes other than request and reply.
std::optional<ArpMessage> ParseArp(std::span<const uint8_t> frame, const FrameInfo& info);

// Answers an ARP request whose target is one of `ours` (RFC 826 "packet reception"), including
// RFC 5227 probes (sender IP 0.0.0.0), which we answer to defend the address. The reply goes to
// the requester's hardware address, keeps the request's VLAN tag and is padded to 60 bytes.
// Requests from a group or zero sender MAC, or from `our_mac` itself, are ignored.
Reply BuildArpReply(std::span<const uint8_t> request, const FrameInfo& info,
                    const MacAddress& our_mac, std::span<const IpAddress> ours,
                    std::span<uint8_t> out);

// An ARP request for `target` from (our_mac, our_ip): broadcast, or unicast to `unicast_to` to
// re-confirm a known neighbour (RFC 1122 2.3.2.1). Returns the frame length (60, or 64 with a
// tag), or 0 when `out` is too small or an address is not IPv4.
size_t BuildArpRequest(const MacAddress& our_mac, const IpAddress& our_ip, const IpAddress& target,
                       std::optional<MacAddress> unicast_to, std::optional<uint16_t> vlan_tci,
                       std::span<uint8_t> out);

}  // namespace turnpike::dataplane::packet
