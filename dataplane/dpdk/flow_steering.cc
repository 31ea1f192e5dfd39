// Relay port steering with rte_flow (flow_steering.h): aligned port blocks, one rule each,
// split where the port refuses a block.
#include "dataplane/dpdk/flow_steering.h"

#include <rte_byteorder.h>

#include <cstring>

#include "absl/strings/str_format.h"

namespace turnpike::dataplane {

std::vector<PortBlock> PortBlocks(uint16_t first, uint16_t last) {
  std::vector<PortBlock> blocks;
  uint32_t at = first;
  while (at <= last) {
    // The largest aligned block starting at `at` that does not pass `last`.
    uint32_t size = at == 0 ? 65536 : (at & -at);
    while (at + size - 1 > last) size /= 2;
    blocks.push_back({static_cast<uint16_t>(at), size});
    at += size;
  }
  return blocks;
}

SteeringRule::SteeringRule(const IpAddress& ip, PortBlock block, uint16_t queue_index) {
  attr.ingress = 1;
  pattern[0].type = RTE_FLOW_ITEM_TYPE_ETH;
  if (ip.is_v4()) {
    std::memcpy(&ip4_spec.hdr.dst_addr, ip.bytes.data(), 4);  // network order, as on the wire
    ip4_mask.hdr.dst_addr = UINT32_MAX;
    pattern[1] = {RTE_FLOW_ITEM_TYPE_IPV4, &ip4_spec, nullptr, &ip4_mask};
  } else {
    std::memcpy(ip6_spec.hdr.dst_addr, ip.bytes.data(), 16);
    std::memset(ip6_mask.hdr.dst_addr, 0xff, 16);
    pattern[1] = {RTE_FLOW_ITEM_TYPE_IPV6, &ip6_spec, nullptr, &ip6_mask};
  }
  udp_spec.hdr.dst_port = rte_cpu_to_be_16(block.base);
  udp_mask.hdr.dst_port = rte_cpu_to_be_16(static_cast<uint16_t>(~(block.size - 1)));
  pattern[2] = {RTE_FLOW_ITEM_TYPE_UDP, &udp_spec, nullptr, &udp_mask};
  pattern[3].type = RTE_FLOW_ITEM_TYPE_END;
  queue.index = queue_index;
  actions[0] = {RTE_FLOW_ACTION_TYPE_QUEUE, &queue};
  actions[1].type = RTE_FLOW_ACTION_TYPE_END;
}

absl::StatusOr<SteeringResult> SteerRelayPorts(uint16_t port, const SteeringPlan& plan,
                                               size_t max_rules) {
  SteeringResult result;
  size_t ports = 0;  // what single-port rules for everything would take
  for (const auto& [first, last] : plan.ranges) ports += last - first + 1u;
  ports *= plan.relay_ips.size();
  std::vector<rte_flow*> created;
  auto fail = [&](const std::string& why) {
    for (rte_flow* f : created) rte_flow_destroy(port, f, nullptr);
    return absl::UnavailableError(why);
  };
  for (const IpAddress& ip : plan.relay_ips) {
    for (size_t w = 0; w < plan.ranges.size(); ++w) {
      std::vector<PortBlock> todo = PortBlocks(plan.ranges[w].first, plan.ranges[w].second);
      while (!todo.empty()) {
        const PortBlock block = todo.back();
        todo.pop_back();
        if (created.size() == max_rules) {
          return fail(absl::StrFormat("more than %d rules would be needed", max_rules));
        }
        rte_flow_error error{};
        const SteeringRule rule(ip, block, static_cast<uint16_t>(w));
        rte_flow* f = nullptr;
        if (rte_flow_validate(port, &rule.attr, rule.pattern, rule.actions, &error) == 0) {
          f = rte_flow_create(port, &rule.attr, rule.pattern, rule.actions, &error);
        }
        if (f != nullptr) {
          created.push_back(f);
          continue;
        }
        if (result.split == 0 && ports > max_rules) {
          // A port that refuses a block may match whole ports only (net_tap validates a
          // masked port but cannot create it): rather than thousands of rules made and removed,
          // give up now if single-port rules could not cover the ranges.
          return fail(absl::StrFormat(
              "port %d refused a rule for %s ports %d-%d (%s), and %d single-port rules would "
              "exceed %d",
              port, ip.ToString(), block.base, block.base + block.size - 1,
              error.message != nullptr ? error.message : "no reason", ports, max_rules));
        }
        if (block.size == 1) {
          return fail(absl::StrFormat("port %d refused a rule for %s port %d -> queue %d: %s", port,
                                      ip.ToString(), block.base, w,
                                      error.message != nullptr ? error.message : "no reason"));
        }
        ++result.split;  // try both halves (the lower one first)
        const uint32_t half = block.size / 2;
        todo.push_back({static_cast<uint16_t>(block.base + half), half});
        todo.push_back({block.base, half});
      }
    }
  }
  result.rules = created.size();
  return result;
}

}  // namespace turnpike::dataplane
