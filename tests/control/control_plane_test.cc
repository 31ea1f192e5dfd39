// Unit tests for the control plane's pieces that need no running daemon: Prometheus rendering,
// the event ring, allocation id text, and the uring worker's command queue (a real backend on
// loopback with port 0).
#include <chrono>
#include <string>

#include "control/events.h"
#include "control/metrics.h"
#include "control/node_controller.h"
#include "dataplane/uring/uring_backend.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace turnpike::control {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(MetricsTest, SumsWorkersAndLabelsEveryReason) {
  MetricsInput in;
  in.version = "1.2.3";
  in.backend = "uring";
  in.engine.resize(2);
  in.io.resize(2);
  in.engine[0].to_peer_packets = 5;
  in.engine[1].to_peer_packets = 7;
  in.engine[1].allocations[0][0] = 3;  // udp, ipv4
  in.engine[0].allocations[2][1] = 2;  // tls, ipv6
  in.engine[0].Drop(turn::DropReason::kNoPermission);
  in.engine[1].Allocate(turn::AllocateResult::kQuota);
  in.io[1].busy_ns = 1'500'000'000;
  in.io[1].stage_packets = 32;
  in.io[1].stage_cycles_engine = 3200;
  in.io[0].streams = 1;
  in.io[1].streams = 3;
  in.io[1].stream_handshake_timeouts = 1;
  in.busy_ratio = {0.25, 0.5};
  in.relays.push_back({"127.0.0.1", 90, 100});
  const std::string text = RenderMetrics(in);
  EXPECT_THAT(text, HasSubstr("turnpike_build_info{version=\"1.2.3\",backend=\"uring\",color=\"\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("turnpike_relayed_packets_total{direction=\"to_peer\"} 12\n"));
  EXPECT_THAT(text, HasSubstr("turnpike_allocations{transport=\"udp\",family=\"ipv4\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("turnpike_allocations{transport=\"tls\",family=\"ipv6\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("turnpike_stream_connections 4\n"));
  EXPECT_THAT(text, HasSubstr("turnpike_stream_closed_total{reason=\"handshake_timeout\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("turnpike_dropped_packets_total{reason=\"" +
                              std::string(turn::DropReasonName(turn::DropReason::kNoPermission)) +
                              "\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("turnpike_quota_rejections_total 1\n"));
  EXPECT_THAT(text, HasSubstr("turnpike_worker_busy_ratio{worker=\"1\"} 0.5\n"));
  EXPECT_THAT(text, HasSubstr("turnpike_worker_busy_seconds_total{worker=\"1\"} 1.5\n"));
  EXPECT_THAT(text, HasSubstr("turnpike_worker_stage_cycles_total{worker=\"1\",step=\"engine\"} "
                              "3200\n"));
  EXPECT_THAT(text, HasSubstr("turnpike_worker_stage_packets_total{worker=\"1\"} 32\n"));
  EXPECT_THAT(text, HasSubstr("turnpike_relay_ports_free{relay_ip=\"127.0.0.1\"} 90\n"));
  // Every family has HELP and TYPE, and every counter ends in _total.
  size_t pos = 0;
  while ((pos = text.find("# TYPE ", pos)) != std::string::npos) {
    const size_t end = text.find('\n', pos);
    const std::string line = text.substr(pos, end - pos);
    if (line.ends_with(" counter")) {
      EXPECT_THAT(line, HasSubstr("_total counter")) << line;
    }
    const std::string name = line.substr(7, line.find(' ', 7) - 7);
    EXPECT_THAT(text, HasSubstr("# HELP " + name + " ")) << name;
    pos = end;
  }
}

TEST(MetricsTest, EscapesLabelValues) {
  MetricsInput in;
  in.color = "a\"b\\c";
  EXPECT_THAT(RenderMetrics(in), HasSubstr("color=\"a\\\"b\\\\c\""));
}

TEST(EventHubTest, DeliversInOrderAndReportsMissedEvents) {
  EventHub hub(4);
  uint64_t next = hub.next_seq();
  hub.Publish("a", "{}");
  hub.Publish("b", "{}");
  uint64_t missed = 0;
  std::vector<Event> got = hub.WaitFrom(&next, std::chrono::milliseconds(0), &missed);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].type, "a");
  EXPECT_EQ(got[1].type, "b");
  EXPECT_EQ(missed, 0u);
  for (int i = 0; i < 6; ++i) hub.Publish("x" + std::to_string(i), "{}");
  got = hub.WaitFrom(&next, std::chrono::milliseconds(0), &missed);
  EXPECT_EQ(missed, 2u);  // the ring holds 4 of the 6
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(got.front().type, "x2");
  got = hub.WaitFrom(&next, std::chrono::milliseconds(10), &missed);
  EXPECT_TRUE(got.empty());
}

TEST(EventHubTest, LimitsSubscribersAndShutsDown) {
  EventHub hub;
  EXPECT_TRUE(hub.AddSubscriber(1));
  EXPECT_FALSE(hub.AddSubscriber(1));
  hub.RemoveSubscriber();
  EXPECT_TRUE(hub.AddSubscriber(1));
  hub.Shutdown();
  uint64_t next = hub.next_seq(), missed = 0;
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(hub.WaitFrom(&next, std::chrono::seconds(10), &missed).empty());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST(AllocationIdTest, RoundTripsAndRejectsBadText) {
  EXPECT_EQ(FormatAllocationId(0x0100000300000005), "0100000300000005");
  EXPECT_EQ(*ParseAllocationId("0100000300000005"), 0x0100000300000005u);
  EXPECT_EQ(*ParseAllocationId("ABCdef"), 0xabcdefu);
  EXPECT_FALSE(ParseAllocationId("").ok());
  EXPECT_FALSE(ParseAllocationId("12345678901234567").ok());
  EXPECT_FALSE(ParseAllocationId("xyz").ok());
  EXPECT_FALSE(ParseAllocationId("-1").ok());
}

TEST(WorkerCommandTest, CommandsRunOnTheWorkerAndTimeOutWhenItIsStopped) {
  ServerConfig config;
  config.listening_ips = {IpAddress::Loopback(AddressFamily::kIPv4)};
  config.listening_port = 0;
  config.relay_ips = config.listening_ips;
  config.min_port = 41000;
  config.max_port = 41100;
  config.worker_threads = 2;
  config.max_allocations = 64;
  auto backend = dataplane::UringBackend::Create(config);
  ASSERT_TRUE(backend.ok()) << backend.status();
  (*backend)->Start();
  dataplane::WorkerCommand ping;
  auto r = (*backend)->Call(1, ping, std::chrono::milliseconds(2000));
  ASSERT_TRUE(r.ok()) << r.status();
  dataplane::WorkerCommand list;
  list.kind = dataplane::WorkerCommand::Kind::kListAllocations;
  r = (*backend)->Call(0, list, std::chrono::milliseconds(2000));
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->allocations.empty());
  dataplane::WorkerCommand kill;
  kill.kind = dataplane::WorkerCommand::Kind::kKillAllocation;
  kill.allocation_id = 42;
  r = (*backend)->Call(0, kill, std::chrono::milliseconds(2000));
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->found);
  EXPECT_GE((*backend)->io_counters(0).commands, 2u);
  EXPECT_EQ((*backend)->Call(7, ping, std::chrono::milliseconds(10)).status().code(),
            absl::StatusCode::kNotFound);
  (*backend)->Stop();
  (*backend)->Join();
  // A stopped worker never answers: the caller gets DeadlineExceeded, not a hang.
  r = (*backend)->Call(0, ping, std::chrono::milliseconds(100));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded);
}

}  // namespace
}  // namespace turnpike::control
