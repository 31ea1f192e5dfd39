// NodeState's relay port pool split into per-worker ranges (PartitionPorts), which the DPDK
// backend steers to each worker's queue with rte_flow.
#include "turn/node_state.h"

#include <set>

#include "gtest/gtest.h"

namespace turnpike::turn {
namespace {

ServerConfig Config(uint16_t min_port, uint16_t max_port) {
  ServerConfig c;
  c.listening_ips = {*IpAddress::Parse("10.0.0.2")};
  c.relay_ips = c.listening_ips;
  c.min_port = min_port;
  c.max_port = max_port;
  return c;
}

TEST(NodeStatePartsTest, RangesCoverThePortRangeOnceAndPartOfInvertsThem) {
  for (uint32_t parts : {1u, 2u, 3u, 7u, 64u}) {
    NodeState node(Config(49152, 49152 + 999));
    node.PartitionPorts(parts);
    ASSERT_EQ(node.parts(), parts);
    uint32_t next = 49152;
    for (uint32_t p = 0; p < parts; ++p) {
      const auto [first, last] = node.PartRange(p);
      EXPECT_EQ(first, next) << "parts " << parts << " part " << p;
      EXPECT_GE(last, first);
      // Near-equal: sizes differ by at most one.
      EXPECT_LE(last - first + 1u, 1000u / parts + 1u);
      EXPECT_GE(last - first + 1u, 1000u / parts);
      for (uint32_t port = first; port <= last; ++port) {
        ASSERT_EQ(node.PartOf(static_cast<uint16_t>(port)), p) << "port " << port;
      }
      next = last + 1u;
    }
    EXPECT_EQ(next, 49152u + 1000u);
  }
  NodeState tiny(Config(40000, 40002));
  tiny.PartitionPorts(8);  // more parts than ports: one port each
  EXPECT_EQ(tiny.parts(), 3u);
}

TEST(NodeStatePartsTest, TakePortPrefersItsPartThenTakesFromTheOthers) {
  const IpAddress relay = *IpAddress::Parse("10.0.0.2");
  NodeState node(Config(40000, 40099));
  node.PartitionPorts(2);
  EXPECT_EQ(node.FreePorts(relay), 100u);
  std::set<uint16_t> taken;
  for (int i = 0; i < 50; ++i) {
    auto grant = node.TakePort(relay, false, false, 0, 1);
    ASSERT_TRUE(grant.has_value());
    EXPECT_EQ(node.PartOf(grant->port), 1u) << grant->port;
    EXPECT_TRUE(taken.insert(grant->port).second);
  }
  // Part 1 is used up: its worker gets part 0's ports (steered to the other queue, still
  // relayed: the workers hand such frames over).
  auto spill = node.TakePort(relay, false, false, 0, 1);
  ASSERT_TRUE(spill.has_value());
  EXPECT_EQ(node.PartOf(spill->port), 0u);
  // A returned port goes back to its own part.
  node.ReturnPort(relay, 40070);
  auto again = node.TakePort(relay, false, false, 0, 1);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->port, 40070);
  EXPECT_EQ(node.FreePorts(relay), 49u);
}

TEST(NodeStatePartsTest, EvenPortReservationAcrossAPartBoundary) {
  const IpAddress relay = *IpAddress::Parse("10.0.0.2");
  // Three parts of 40000..40008: 40000-40002, 40003-40005, 40006-40008.
  NodeState node(Config(40000, 40008));
  node.PartitionPorts(3);
  ASSERT_EQ(node.PartOf(40002), 0u);
  ASSERT_EQ(node.PartOf(40003), 1u);
  std::set<uint16_t> all;
  for (int i = 0; i < 9; ++i) all.insert(node.TakePort(relay, false, false, 0, 0)->port);
  EXPECT_EQ(all.size(), 9u);
  EXPECT_FALSE(node.TakePort(relay, false, false, 0, 0).has_value());
  // Only 40002 (part 0) and its successor 40003 (part 1) free: part 1's request for an even
  // port with the next one reserved finds 40002 in part 0 and takes 40003 from part 1.
  node.ReturnPort(relay, 40003);
  EXPECT_FALSE(node.TakePort(relay, true, true, 0, 1).has_value());  // 40003 is odd
  node.ReturnPort(relay, 40002);
  auto grant = node.TakePort(relay, true, true, 0, 1);
  ASSERT_TRUE(grant.has_value());
  EXPECT_EQ(grant->port, 40002);
  EXPECT_NE(grant->token, 0u);
  EXPECT_EQ(node.FreePorts(relay), 0u);
  auto reserved = node.TakeReserved(grant->token, 0);
  ASSERT_TRUE(reserved.has_value());
  EXPECT_EQ(reserved->second, 40003);
  // Returned ports land in their own part again.
  node.ReturnPort(relay, 40003);
  EXPECT_EQ(node.TakePort(relay, false, false, 0, 2)->port, 40003);
}

}  // namespace
}  // namespace turnpike::turn
