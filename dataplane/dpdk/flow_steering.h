// rte_flow rules that steer each worker's relay port range to its RX queue, so both directions
// of an allocation arrive at the worker that owns it without crossing a ring (dpdk_worker.h).
// NodeState::PartitionPorts hands each worker's engine ports from its own range.
#pragma once

#include <rte_flow.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "turn/net/socket_address.h"

namespace turnpike::dataplane {

// A block of UDP ports a rule matches: `size` is a power of two and `base` a multiple of it,
// so the rule is dst_port & ~(size - 1) == base.
struct PortBlock {
  uint16_t base = 0;
  uint32_t size = 1;
  friend bool operator==(const PortBlock&, const PortBlock&) = default;
};

// The fewest such blocks that cover first..last exactly (as a CIDR split of an address range).
std::vector<PortBlock> PortBlocks(uint16_t first, uint16_t last);

// One rule's items and actions: ETH / IPv4 or IPv6 (destination = `ip`) / UDP (destination
// port & ~(block.size - 1) == block.base) -> QUEUE `queue`. The pattern and actions point into
// the object itself, so it is built in place and never copied.
struct SteeringRule {
  SteeringRule(const IpAddress& ip, PortBlock block, uint16_t queue);
  SteeringRule(const SteeringRule&) = delete;
  SteeringRule& operator=(const SteeringRule&) = delete;

  rte_flow_attr attr{};
  rte_flow_item_ipv4 ip4_spec{}, ip4_mask{};
  rte_flow_item_ipv6 ip6_spec{}, ip6_mask{};
  rte_flow_item_udp udp_spec{}, udp_mask{};
  rte_flow_item pattern[4]{};
  rte_flow_action_queue queue{};
  rte_flow_action actions[2]{};
};

// What the steering needs to know: per worker (= RX queue index) its port range.
struct SteeringPlan {
  std::vector<IpAddress> relay_ips;                   // one per family at most
  std::vector<std::pair<uint16_t, uint16_t>> ranges;  // [worker] = first..last port
};

struct SteeringResult {
  size_t rules = 0;
  size_t split = 0;  // blocks the port refused whole and took as smaller blocks
};

// Installs the plan's rules on `port` (ingress, IP destination = the relay address, UDP
// destination port in a block -> QUEUE worker). A block the port refuses (some PMDs match
// only whole ports, e.g. net_tap) is split in two and retried, down to single ports, up to
// `max_rules` rules in all. On failure every rule installed so far is removed and the error
// says what the port refused.
absl::StatusOr<SteeringResult> SteerRelayPorts(uint16_t port, const SteeringPlan& plan,
                                               size_t max_rules);

}  // namespace turnpike::dataplane
