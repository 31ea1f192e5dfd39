// Unit tests of the DPDK worker loop (dataplane/dpdk) without a NIC: each port is a pair of
// rte_rings made into an ethdev (net_ring's rte_eth_from_rings), so a test puts frames into a
// worker's RX queue and reads what it transmits, byte for byte. The EAL runs in memory
// (--no-huge --no-shconf, no devices); workers run their real Run() loop on threads.
#include "dataplane/dpdk/dpdk_worker.h"
#include "dataplane/dpdk/flow_steering.h"

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_format.h"
#include "dataplane/packet/arp.h"
#include "dataplane/packet/checksum.h"
#include "dataplane/packet/frame.h"
#include "dataplane/packet/tx_headers.h"
#include "gtest/gtest.h"
#include "perf/dpdk/handshake.h"
#include "turn/node_state.h"

namespace turnpike::dataplane {
namespace {

using Bytes = std::vector<uint8_t>;
using Clock = std::chrono::steady_clock;

const packet::MacAddress kNodeMac{{0x02, 0x00, 0x00, 0x00, 0x00, 0x02}};
const packet::MacAddress kHostMac{{0x02, 0x00, 0x00, 0x00, 0x00, 0x10}};  // clients and peers
rte_mempool* g_pool = nullptr;

IpAddress Ip(const char* text) { return *IpAddress::Parse(text); }

class EalEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    std::vector<std::string> args = {"dpdk_worker_test", "-l", "0", "--no-huge", "-m", "256",
                                      "--no-pci", "--no-shconf", "--log-level=*:warning",
                                      absl::StrFormat("--file-prefix=tp-worker-test-%d", getpid())};
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    ASSERT_GE(rte_eal_init(static_cast<int>(argv.size()), argv.data()), 0)
        << "EAL initialisation failed (needs root)";
    g_pool = rte_pktmbuf_pool_create("wt_pool", 16383, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                     SOCKET_ID_ANY);
    ASSERT_NE(g_pool, nullptr);
  }
  void TearDown() override {
    // The EAL leaves its runtime directory (about 3 MB, one per process id) behind.
    const std::string runtime_dir = rte_eal_get_runtime_dir();
    rte_eal_cleanup();
    if (runtime_dir.find("/tp-worker-test-") != std::string::npos) {
      std::error_code ignored;
      std::filesystem::remove_all(runtime_dir, ignored);
    }
  }
};

// An ethdev with `queues` queue pairs: RX queue q is in[q] (the test enqueues), TX queue q is
// out[q] (the test reads).
struct RingPort {
  std::vector<rte_ring*> in;
  std::vector<rte_ring*> out;
  uint16_t id = 0;
  std::vector<uint64_t> taken;  // frames read per TX queue
  // The mbuf of the last Put and of the last Take (compared as addresses only: the latter is
  // freed): a relayed frame sent in the mbuf it arrived in was relayed in place.
  rte_mbuf* last_put = nullptr;
  rte_mbuf* last_taken = nullptr;

  void Open(uint16_t queues = 1) {
    static int serial = 0;
    const int n = serial++;
    for (uint16_t q = 0; q < queues; ++q) {
      in.push_back(rte_ring_create(absl::StrFormat("wt_in_%d_%d", n, q).c_str(), 1024,
                                   SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ));
      out.push_back(rte_ring_create(absl::StrFormat("wt_out_%d_%d", n, q).c_str(), 1024,
                                    SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ));
      ASSERT_TRUE(in.back() != nullptr && out.back() != nullptr);
    }
    taken.assign(queues, 0);
    const int port = rte_eth_from_rings(absl::StrFormat("wt_port_%d", n).c_str(), in.data(),
                                        queues, out.data(), queues, SOCKET_ID_ANY);
    ASSERT_GE(port, 0);
    id = static_cast<uint16_t>(port);
    rte_eth_conf conf{};
    ASSERT_EQ(rte_eth_dev_configure(id, queues, queues, &conf), 0);
    for (uint16_t q = 0; q < queues; ++q) {
      ASSERT_EQ(rte_eth_rx_queue_setup(id, q, 512, SOCKET_ID_ANY, nullptr, g_pool), 0);
      ASSERT_EQ(rte_eth_tx_queue_setup(id, q, 512, SOCKET_ID_ANY, nullptr), 0);
    }
    ASSERT_EQ(rte_eth_dev_start(id), 0);
  }

  void Close() {
    if (in.empty()) return;
    rte_eth_dev_stop(id);
    rte_eth_dev_close(id);
    for (auto* rings : {&in, &out}) {
      for (rte_ring* r : *rings) {
        void* m;
        while (rte_ring_dequeue(r, &m) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
        rte_ring_free(r);
      }
      rings->clear();
    }
  }

  // Into RX queue `queue`; with queue < 0, the queue a NIC's RSS might pick: a mix of the UDP
  // ports (unrelated to the workers' ownership hash), queue 0 for anything but UDP.
  void Put(const Bytes& frame, int queue = -1) {
    if (queue < 0) {
      const packet::FrameInfo info = packet::ParseFrame(frame);
      queue = info.ok() && info.is_ip() && info.l4_protocol == 17
                  ? static_cast<int>(((info.src_port * 7u) ^ info.dst_port) % in.size())
                  : 0;
    }
    rte_mbuf* m = rte_pktmbuf_alloc(g_pool);
    ASSERT_NE(m, nullptr);
    std::memcpy(rte_pktmbuf_append(m, static_cast<uint16_t>(frame.size())), frame.data(),
                frame.size());
    ASSERT_EQ(rte_ring_enqueue(in[static_cast<size_t>(queue)], m), 0);
    last_put = m;
  }

  // The next transmitted frame (from any TX queue), or an empty one after `wait`.
  Bytes Take(std::chrono::milliseconds wait = std::chrono::milliseconds(2000)) {
    const auto deadline = Clock::now() + wait;
    void* p = nullptr;
    for (size_t q = 0;; q = (q + 1) % out.size()) {
      if (rte_ring_dequeue(out[q], &p) == 0) {
        ++taken[q];
        break;
      }
      if (q + 1 < out.size()) continue;
      if (Clock::now() > deadline) return {};
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    rte_mbuf* m = static_cast<rte_mbuf*>(p);
    const uint8_t* data = rte_pktmbuf_mtod(m, const uint8_t*);
    Bytes frame(data, data + rte_pktmbuf_data_len(m));
    rte_pktmbuf_free(m);
    last_taken = m;
    return frame;
  }
};

Bytes UdpFrame(const SocketAddress& src, const SocketAddress& dst, std::span<const uint8_t> payload,
               const packet::MacAddress& src_mac = kHostMac,
               const packet::MacAddress& dst_mac = kNodeMac) {
  packet::UdpTxParams params;
  params.src_mac = src_mac;
  params.dst_mac = dst_mac;
  params.src = src;
  params.dst = dst;
  return packet::BuildUdpFrame(payload, params);
}

// A parsed UDP frame the worker sent, with its checksums checked.
struct Sent {
  packet::FrameInfo info;
  Bytes payload;
};
std::optional<Sent> ParseUdp(const Bytes& frame) {
  Sent s;
  s.info = packet::ParseFrame(frame);
  if (!s.info.ok() || !s.info.is_ip() || s.info.l4_protocol != 17) return std::nullopt;
  EXPECT_TRUE(packet::UdpChecksumValid(
      s.info.src_ip, s.info.dst_ip,
      std::span<const uint8_t>(frame).subspan(s.info.l4_offset, s.info.l4_length)));
  EXPECT_EQ(s.info.src_mac, kNodeMac);
  s.payload.assign(frame.begin() + s.info.payload_offset,
                   frame.begin() + s.info.payload_offset + s.info.payload_length);
  return s;
}

class DpdkWorkerTest : public ::testing::Test {
 protected:
  // `own_queues`: a queue pair per worker (otherwise one, shared through worker 0).
  // `kernel_relays`: the kernel hosts relays too (a stream host, as dpdk_backend.cc sets up).
  void Start(uint32_t workers, bool kernel_interface, bool own_queues = false,
             bool kernel_relays = false) {
    config_.listening_ips = {kNode};
    config_.relay_ips = {kNode};
    config_.dpdk_addresses = {{kNode, 24}};
    config_.listening_port = 3478;
    config_.min_port = 20000;
    config_.max_port = 20999;
    config_.realm = "worker.test";
    config_.use_auth_secret = true;
    config_.static_auth_secrets = {"s3cret"};
    config_.unauth_rate = 0;
    config_.allowed_peer_ips = {{Ip("10.0.0.1"), Ip("10.0.0.99")}};
    node_ = std::make_unique<turn::NodeState>(config_);
    if (own_queues) node_->PartitionPorts(workers);  // as the backend does
    port_.Open(own_queues ? static_cast<uint16_t>(workers) : 1);
    if (kernel_interface) kernel_.Open();
    static int serial = 0;
    auto fabric =
        DpdkFabric::Create(workers, own_queues, absl::StrFormat("wt%d", serial++), SOCKET_ID_ANY);
    ASSERT_TRUE(fabric.ok()) << fabric.status();
    fabric_ = *std::move(fabric);
    fabric_->kernel_port = kernel_interface ? kernel_.id : -1;
    if (kernel_relays) fabric_->kernel_relays = std::make_unique<KernelRelayPorts>();
    for (uint32_t w = 0; w < workers; ++w) {
      workers_.push_back(std::make_unique<DpdkWorker>(
          w, config_, node_.get(), fabric_.get(), port_.id,
          own_queues ? static_cast<uint16_t>(w) : 0, g_pool, kNodeMac, ChecksumOffload{}, &stop_));
    }
    for (auto& w : workers_) threads_.emplace_back([&w] { w->Run(); });
  }

  // Stops the workers: their counters are then final.
  void Stop() {
    stop_.store(true);
    for (std::thread& t : threads_) t.join();
    threads_.clear();
  }

  // UDP to a relay port no worker has open is dropped, since the kernel has no socket there
  // either, unless the kernel holds that port (a stream host's relay: TURN over TCP / TLS from
  // the kernel side). UDP to the listening port stays the data plane's either way.
  void CheckUnopenedRelayPorts(bool kernel_relays) {
    Start(1, /*kernel_interface=*/true, /*own_queues=*/false, kernel_relays);
    if (kernel_relays) fabric_->kernel_relays->open[0][20123].store(1);  // as on_relay does
    const uint8_t data[] = {'p', 'e', 'e', 'r'};
    const Bytes to_relay = UdpFrame({Ip("10.0.0.10"), 5000}, {kNode, 20123}, data);
    port_.Put(to_relay);
    if (kernel_relays) {
      EXPECT_EQ(kernel_.Take(), to_relay);  // unchanged
    } else {
      EXPECT_TRUE(kernel_.Take(std::chrono::milliseconds(200)).empty());
    }
    // A relay port the kernel does not hold: dropped either way.
    port_.Put(UdpFrame({Ip("10.0.0.10"), 5000}, {kNode, 20124}, data));
    // Not STUN: the engine drops it, and it never reaches the kernel.
    port_.Put(UdpFrame({Ip("10.0.0.10"), 5000}, {kNode, 3478}, data));
    EXPECT_TRUE(kernel_.Take(std::chrono::milliseconds(200)).empty());
    Stop();
    EXPECT_EQ(Total().to_kernel, kernel_relays ? 1u : 0u);
    EXPECT_EQ(Total().rx_exception, kernel_relays ? 1u : 2u);
  }

  void TearDown() override {
    Stop();
    workers_.clear();
    fabric_.reset();
    port_.Close();
    kernel_.Close();
  }

  // The next frame the workers send, after answering their ARP requests for `hosts` (from
  // kHostMac); empty after `wait`. With `skip_stun_to`, STUN to that address (a late answer to
  // a retransmitted request) is skipped too, keeping ChannelData and the frames to peers.
  Bytes TakeAnsweringArp(std::span<const IpAddress> hosts, std::chrono::milliseconds wait,
                         const IpAddress* skip_stun_to = nullptr) {
    for (;;) {
      Bytes frame = port_.Take(wait);
      const packet::FrameInfo info = packet::ParseFrame(frame);
      if (skip_stun_to != nullptr && info.ok() && info.is_ip() && info.dst_ip == *skip_stun_to &&
          info.payload_length > 0 && frame[info.payload_offset] < 0x40) {
        continue;  // STUN (first byte 0 or 1); ChannelData starts with 0x40-0x4F
      }
      if (frame.empty() || info.kind != packet::FrameKind::kArp) return frame;
      Bytes reply(64);
      const packet::Reply r = packet::BuildArpReply(frame, info, kHostMac, hosts, reply);
      if (r.verdict == packet::ReplyVerdict::kReply) {
        reply.resize(r.length);
        port_.Put(reply);
      }
    }
  }

  // Real TURN handshakes for `allocations` (client ports 40000 + index on one address; the
  // DPDK load generator's client, perf/dpdk/handshake.cc), answering ARP for `hosts`.
  void MakeAllocations(std::vector<dpdkgen::TurnAllocation>& allocations,
                       std::span<const IpAddress> hosts) {
    dpdkgen::HandshakeOptions options;
    options.secret = "s3cret";
    options.rto_ms = 1000;  // no retransmission (and late duplicate answer) unless starved
    const SocketAddress server{kNode, 3478};
    dpdkgen::Handshakes handshakes(
        &allocations, options,
        [&](const dpdkgen::TurnAllocation& a, std::span<const uint8_t> request) {
          port_.Put(UdpFrame(a.client, server, request));
        });
    auto now_ns = [] {
      return std::chrono::duration_cast<std::chrono::nanoseconds>(
                 Clock::now().time_since_epoch())
          .count();
    };
    const auto deadline = Clock::now() + std::chrono::seconds(20);
    while (!handshakes.done() && Clock::now() < deadline) {
      handshakes.Poll(now_ns());
      const Bytes frame = TakeAnsweringArp(hosts, std::chrono::milliseconds(5));
      if (frame.empty()) continue;
      const std::optional<Sent> s = ParseUdp(frame);
      ASSERT_TRUE(s.has_value());
      ASSERT_EQ(s->info.dst_ip, allocations[0].client.ip);
      handshakes.OnMessage(s->info.dst_port - 40000u, s->payload, now_ns());
    }
    ASSERT_TRUE(handshakes.done());
    ASSERT_EQ(handshakes.stats().ok, static_cast<int>(allocations.size()));
  }

  IoCounters Total() const {
    IoCounters sum;
    for (const auto& w : workers_) sum.Add(w->counters());
    return sum;
  }

  const IpAddress kNode = Ip("10.0.0.2");
  ServerConfig config_;
  std::unique_ptr<turn::NodeState> node_;
  RingPort port_;
  RingPort kernel_;
  std::unique_ptr<DpdkFabric> fabric_;
  std::vector<std::unique_ptr<DpdkWorker>> workers_;
  std::vector<std::thread> threads_;
  std::atomic<bool> stop_{false};
};

TEST_F(DpdkWorkerTest, AnswersArpAndDropsWhatIsNotForTheRelayWithoutAKernelInterface) {
  Start(1, /*kernel_interface=*/false);
  Bytes request(64);
  request.resize(packet::BuildArpRequest(kHostMac, Ip("10.0.0.10"), kNode, std::nullopt,
                                         std::nullopt, request));
  port_.Put(request);
  const Bytes reply = port_.Take();
  const packet::FrameInfo info = packet::ParseFrame(reply);
  ASSERT_EQ(info.kind, packet::FrameKind::kArp);
  const std::optional<packet::ArpMessage> arp = packet::ParseArp(reply, info);
  ASSERT_TRUE(arp.has_value());
  EXPECT_EQ(arp->op, packet::kArpOpReply);
  EXPECT_EQ(arp->sender_ip, kNode);
  EXPECT_EQ(arp->sender_mac, kNodeMac);
  EXPECT_EQ(arp->target_mac, kHostMac);

  // UDP to a port that is neither the listening port nor an open relay: dropped, counted. The
  // ARP request after them is answered only once the worker has handled them.
  const uint8_t data[] = {1, 2, 3, 4};
  port_.Put(UdpFrame({Ip("10.0.0.10"), 5000}, {kNode, 20500}, data));
  port_.Put(UdpFrame({Ip("10.0.0.10"), 5000}, {kNode, 22}, data));
  port_.Put(request);
  EXPECT_EQ(packet::ParseFrame(port_.Take()).kind, packet::FrameKind::kArp);
  Stop();
  EXPECT_EQ(Total().rx_exception, 2u);
  EXPECT_EQ(Total().to_kernel, 0u);
}

// The sampled step timings (IoCounters::stage_*): one port burst in kStageSample is timed, so
// among 400 one-frame bursts some are (all missed: about 1e-11). Every step of a timed burst
// takes some cycles, and together they take less than the whole run.
TEST_F(DpdkWorkerTest, SampledBurstsAreTimedStepByStep) {
  const uint64_t start_tsc = rte_rdtsc();
  Start(1, /*kernel_interface=*/false);
  Bytes request(64);
  request.resize(packet::BuildArpRequest(kHostMac, Ip("10.0.0.10"), kNode, std::nullopt,
                                         std::nullopt, request));
  constexpr int kFrames = 400;
  for (int i = 0; i < kFrames; ++i) {
    port_.Put(request);
    ASSERT_EQ(packet::ParseFrame(port_.Take()).kind, packet::FrameKind::kArp) << "frame " << i;
  }
  Stop();
  const uint64_t elapsed = rte_rdtsc() - start_tsc;
  const IoCounters c = Total();
  EXPECT_EQ(c.rx_packets, static_cast<uint64_t>(kFrames));
  ASSERT_GT(c.stage_packets, 0u);
  EXPECT_LT(c.stage_packets, static_cast<uint64_t>(kFrames));  // a sample, not every burst
  const uint64_t steps[] = {c.stage_cycles_rx, c.stage_cycles_classify, c.stage_cycles_engine,
                            c.stage_cycles_build, c.stage_cycles_tx};
  uint64_t sum = 0;
  for (size_t i = 0; i < std::size(steps); ++i) {
    EXPECT_GT(steps[i], 0u) << "step " << i;
    sum += steps[i];
  }
  EXPECT_LT(sum, elapsed);
}

TEST_F(DpdkWorkerTest, ExceptionPathHandsTheKernelWhatIsNotForTheRelayAndSendsItsFrames) {
  Start(1, /*kernel_interface=*/true);
  const uint8_t data[] = {'s', 's', 'h'};
  const Bytes to_kernel = UdpFrame({Ip("10.0.0.10"), 5000}, {kNode, 22}, data);
  port_.Put(to_kernel);
  EXPECT_EQ(kernel_.Take(), to_kernel);  // unchanged

  const Bytes from_kernel = UdpFrame({kNode, 22}, {Ip("10.0.0.10"), 5000}, data, kNodeMac,
                                     kHostMac);
  kernel_.Put(from_kernel);
  EXPECT_EQ(port_.Take(), from_kernel);  // out on the port, unchanged

  // An ARP request for the node's address is still the data plane's to answer.
  Bytes request(64);
  request.resize(packet::BuildArpRequest(kHostMac, Ip("10.0.0.10"), kNode, std::nullopt,
                                         std::nullopt, request));
  port_.Put(request);
  EXPECT_EQ(packet::ParseFrame(port_.Take()).kind, packet::FrameKind::kArp);
  EXPECT_TRUE(kernel_.Take(std::chrono::milliseconds(200)).empty());
  Stop();
  EXPECT_EQ(Total().to_kernel, 1u);
  EXPECT_EQ(Total().from_kernel, 1u);
  EXPECT_EQ(Total().rx_exception, 0u);
}

TEST_F(DpdkWorkerTest, UnopenedRelayPortsAreDroppedWithoutKernelRelays) {
  CheckUnopenedRelayPorts(/*kernel_relays=*/false);
}

TEST_F(DpdkWorkerTest, RelayPortsTheKernelHoldsAreTheKernelsOthersDropped) {
  CheckUnopenedRelayPorts(/*kernel_relays=*/true);
}

// Own queues: worker 1 answers ARP on its queue and passes what is not for the relay to the
// kernel through worker 0.
TEST_F(DpdkWorkerTest, OwnQueuesAnswerArpOnTheirQueueAndPassKernelFramesThroughWorkerZero) {
  Start(2, /*kernel_interface=*/true, /*own_queues=*/true);
  Bytes request(64);
  request.resize(packet::BuildArpRequest(kHostMac, Ip("10.0.0.10"), kNode, std::nullopt,
                                         std::nullopt, request));
  port_.Put(request, 1);
  EXPECT_EQ(packet::ParseFrame(port_.Take()).kind, packet::FrameKind::kArp);
  EXPECT_EQ(port_.taken[1], 1u);  // answered by worker 1, on its TX queue
  const uint8_t data[] = {'s', 's', 'h'};
  const Bytes to_kernel = UdpFrame({Ip("10.0.0.10"), 5000}, {kNode, 22}, data);
  port_.Put(to_kernel, 1);
  EXPECT_EQ(kernel_.Take(), to_kernel);
  const Bytes from_kernel = UdpFrame({kNode, 22}, {Ip("10.0.0.10"), 5000}, data, kNodeMac,
                                     kHostMac);
  kernel_.Put(from_kernel);
  EXPECT_EQ(port_.Take(), from_kernel);
  EXPECT_EQ(port_.taken[0], 1u);  // worker 0 serves the kernel's port
  Stop();
  EXPECT_EQ(workers_[1]->counters().rx_packets, 2u);
  EXPECT_EQ(workers_[0]->counters().to_kernel, 1u);
  EXPECT_EQ(Total().rx_exception, 0u);
}

// The whole path on two workers: TURN handshakes (Allocate, 401, Allocate, ChannelBind) for
// allocations spread by the client hash, then ChannelData from every client and UDP from every
// peer. The peers' address is unknown to the node at first: the first relayed frames are parked
// while the node's ARP request is answered here, and nothing is lost. Either on one queue pair
// (worker 0 distributes) or on a pair per worker, where the frames land on queues by a hash
// unrelated to ownership (as a NIC's RSS would put them) and workers hand each other theirs.
class DpdkWorkerQueuesTest : public DpdkWorkerTest, public ::testing::WithParamInterface<bool> {};

INSTANTIATE_TEST_SUITE_P(Queues, DpdkWorkerQueuesTest, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& p) {
                           return p.param ? "OwnQueues" : "OneQueuePair";
                         });

TEST_P(DpdkWorkerQueuesTest, TwoWorkersRelayEveryAllocationBothWaysAndParkWhileArpResolves) {
  const bool own_queues = GetParam();
  Start(2, /*kernel_interface=*/false, own_queues);
  constexpr uint32_t kAllocations = 48;
  const IpAddress client_ip = Ip("10.0.0.10");
  const IpAddress peer_ip = Ip("10.0.0.20");
  std::vector<dpdkgen::TurnAllocation> allocations(kAllocations);
  for (uint32_t i = 0; i < kAllocations; ++i) {
    allocations[i].index = i;
    allocations[i].client = {client_ip, static_cast<uint16_t>(40000 + i)};
    allocations[i].peer = {peer_ip, static_cast<uint16_t>(50000 + i)};
  }
  const SocketAddress server{kNode, 3478};
  const IpAddress hosts[] = {client_ip, peer_ip};
  MakeAllocations(allocations, hosts);
  if (HasFatalFailure()) return;
  auto take = [&](std::chrono::milliseconds wait, bool data_only = false) {
    return TakeAnsweringArp(hosts, wait, data_only ? &client_ip : nullptr);
  };
  if (own_queues) {  // each worker's relays come from its own port range
    for (const dpdkgen::TurnAllocation& a : allocations) {
      const uint8_t owner = fabric_->owners->owner_plus_one[0][a.relayed.port].load();
      ASSERT_NE(owner, 0) << a.relayed.ToString();
      EXPECT_EQ(owner - 1u, node_->PartOf(a.relayed.port)) << a.relayed.ToString();
    }
  }

  // Client -> peer: ChannelData in, plain UDP from the relayed address out, in the mbuf the
  // ChannelData came in (decapsulated in place: that mbuf is held until the frame is built, so
  // a copy could never land in it).
  std::vector<rte_mbuf*> put(kAllocations);
  for (const dpdkgen::TurnAllocation& a : allocations) {
    Bytes cd = {static_cast<uint8_t>(a.channel >> 8), static_cast<uint8_t>(a.channel), 0, 8};
    for (int k = 0; k < 8; ++k) cd.push_back(static_cast<uint8_t>(a.index + k));
    port_.Put(UdpFrame(a.client, server, cd));
    put[a.index] = port_.last_put;
  }
  std::vector<int> to_peer(kAllocations, 0);
  for (uint32_t n = 0; n < kAllocations; ++n) {
    const std::optional<Sent> s = ParseUdp(take(std::chrono::milliseconds(2000), true));
    ASSERT_TRUE(s.has_value()) << "only " << n << " of " << kAllocations << " reached the peers";
    const uint32_t i = s->info.dst_port - 50000u;
    ASSERT_LT(i, kAllocations);
    EXPECT_EQ(s->info.dst_ip, peer_ip);
    EXPECT_EQ(s->info.src(), allocations[i].relayed);
    EXPECT_EQ(s->payload.size(), 8u);
    EXPECT_EQ(s->payload[0], static_cast<uint8_t>(i));
    EXPECT_EQ(port_.last_taken, put[i]) << "allocation " << i << ": not relayed in place";
    ++to_peer[i];
  }
  // Peer -> client: UDP to the relayed address in, ChannelData to the client out (the header
  // prepended in place).
  for (const dpdkgen::TurnAllocation& a : allocations) {
    const uint8_t data[] = {static_cast<uint8_t>(a.index), 0xAB, 0xCD};
    port_.Put(UdpFrame(a.peer, a.relayed, data));
    put[a.index] = port_.last_put;
  }
  std::vector<int> to_client(kAllocations, 0);
  for (uint32_t n = 0; n < kAllocations; ++n) {
    const std::optional<Sent> s = ParseUdp(take(std::chrono::milliseconds(2000), true));
    ASSERT_TRUE(s.has_value()) << "only " << n << " of " << kAllocations << " reached clients";
    const uint32_t i = s->info.dst_port - 40000u;
    ASSERT_LT(i, kAllocations);
    EXPECT_EQ(s->info.src(), server);
    ASSERT_EQ(s->payload.size(), 4u + 3u);  // ChannelData header and data (no padding on UDP)
    EXPECT_EQ((s->payload[0] << 8) | s->payload[1], allocations[i].channel);
    EXPECT_EQ(s->payload[4], static_cast<uint8_t>(i));
    EXPECT_EQ(port_.last_taken, put[i]) << "allocation " << i << ": not relayed in place";
    ++to_client[i];
  }
  Stop();
  for (uint32_t i = 0; i < kAllocations; ++i) {
    EXPECT_EQ(to_peer[i], 1) << "allocation " << i;
    EXPECT_EQ(to_client[i], 1) << "allocation " << i;
  }
  for (const auto& w : workers_) {  // (allocations closed at Stop; relays opened stay counted)
    EXPECT_GT(w->counters().relays_opened, 0u) << "a worker got no allocation";
  }
  EXPECT_EQ(Total().relays_opened, kAllocations);
  const IoCounters total = Total();
  EXPECT_GT(workers_[0]->counters().dispatched, 0u);
  if (own_queues) {  // both polled, handed over and transmitted on their own queues
    EXPECT_GT(workers_[1]->counters().dispatched, 0u);
    EXPECT_GT(port_.taken[0], 0u);
    EXPECT_GT(port_.taken[1], 0u);
  } else {
    EXPECT_EQ(workers_[1]->counters().dispatched, 0u);
  }
  EXPECT_EQ(total.dispatch_drops, 0u);
  EXPECT_GT(total.tx_neighbor_parked, 0u);  // the peers' first frames waited for ARP
  EXPECT_EQ(total.tx_neighbor_pending, 0u);  // and none was dropped
  EXPECT_EQ(total.rx_exception, 0u);
}

// The worker keeps its neighbour answers for the current second in front of the neighbour
// table (DpdkWorker::learned_ and resolved_). A MAC that changes within that second is still
// used from the next frame on: a client whose packets now come from another MAC (replies follow
// them there), a peer that announces a new MAC in an ARP request, and the peer's data frames
// from its old MAC after that. (The steps take milliseconds, so they normally fall within one
// second and exercise the memo; across a second boundary the memo is empty and the test checks
// the table alone.)
TEST_F(DpdkWorkerTest, ANeighborsNewMacIsUsedFromTheNextFrameOn) {
  Start(1, /*kernel_interface=*/false);
  const IpAddress client_ip = Ip("10.0.0.10");
  const IpAddress peer_ip = Ip("10.0.0.20");
  const IpAddress hosts[] = {client_ip, peer_ip};
  std::vector<dpdkgen::TurnAllocation> allocations(1);
  allocations[0].client = {client_ip, 40000};
  allocations[0].peer = {peer_ip, 50000};
  MakeAllocations(allocations, hosts);
  if (HasFatalFailure()) return;
  const dpdkgen::TurnAllocation& a = allocations[0];
  const SocketAddress server{kNode, 3478};
  const uint8_t data[] = {1, 2, 3, 4};
  const Bytes channel_data = {static_cast<uint8_t>(a.channel >> 8),
                              static_cast<uint8_t>(a.channel), 0, 4, 1, 2, 3, 4};
  const packet::MacAddress moved{{0x02, 0x00, 0x00, 0x00, 0x00, 0x21}};
  const packet::MacAddress peer_moved{{0x02, 0x00, 0x00, 0x00, 0x00, 0x22}};
  // Relays one frame and returns where it went.
  auto relay = [&](const Bytes& frame) -> std::optional<Sent> {
    port_.Put(frame);
    return ParseUdp(TakeAnsweringArp(hosts, std::chrono::milliseconds(2000), &client_ip));
  };

  std::optional<Sent> s = relay(UdpFrame(a.peer, a.relayed, data));
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->info.dst(), a.client);
  EXPECT_EQ(s->info.dst_mac, kHostMac);
  s = relay(UdpFrame(a.client, server, channel_data));
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->info.dst(), a.peer);
  EXPECT_EQ(s->info.dst_mac, kHostMac);

  // The client moves: its next packet comes from `moved`, and so must the replies go.
  s = relay(UdpFrame(a.client, server, channel_data, moved));
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->info.dst(), a.peer);
  EXPECT_EQ(s->info.dst_mac, kHostMac);  // the peer has not moved
  s = relay(UdpFrame(a.peer, a.relayed, data));
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->info.dst(), a.client);
  EXPECT_EQ(s->info.dst_mac, moved);

  // The peer announces another MAC in an ARP request for the node's address (the node answers
  // it, to the new MAC); relayed frames follow.
  Bytes arp(64);
  arp.resize(packet::BuildArpRequest(peer_moved, peer_ip, kNode, std::nullopt, std::nullopt, arp));
  ASSERT_FALSE(arp.empty());
  port_.Put(arp);
  const Bytes answer = port_.Take();
  const packet::FrameInfo answer_info = packet::ParseFrame(answer);
  EXPECT_EQ(answer_info.kind, packet::FrameKind::kArp);
  EXPECT_EQ(answer_info.dst_mac, peer_moved);
  s = relay(UdpFrame(a.client, server, channel_data, moved));
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->info.dst(), a.peer);
  EXPECT_EQ(s->info.dst_mac, peer_moved);

  // A data frame from the peer's old MAC after the announcement: learned from, as any on-link
  // sender's frame is (the same source and MAC were already learned earlier this second).
  s = relay(UdpFrame(a.peer, a.relayed, data));
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->info.dst(), a.client);
  s = relay(UdpFrame(a.client, server, channel_data, moved));
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->info.dst(), a.peer);
  EXPECT_EQ(s->info.dst_mac, kHostMac);
  Stop();
  EXPECT_EQ(Total().tx_neighbor_pending, 0u);
}

// Peers nobody answers ARP for fill the worker's parking lot (64 frames for each of four next
// hops: all 256 places). A frame for a fifth, live peer then cannot wait and is dropped, but the
// node still asks for the peer's MAC, and once that is answered the peer's next frame goes out.
TEST_F(DpdkWorkerTest, AFullParkingLotStillResolvesANewNextHop) {
  Start(1, /*kernel_interface=*/false);
  const IpAddress client_ip = Ip("10.0.0.10");
  const IpAddress live_peer = Ip("10.0.0.20");
  constexpr uint32_t kSilent = 4;
  std::vector<dpdkgen::TurnAllocation> allocations(kSilent + 1);
  for (uint32_t i = 0; i <= kSilent; ++i) {
    allocations[i].index = i;
    allocations[i].client = {client_ip, static_cast<uint16_t>(40000 + i)};
    allocations[i].peer = {
        i < kSilent ? Ip(absl::StrFormat("10.0.0.%u", 31 + i).c_str()) : live_peer, 50000};
  }
  const IpAddress clients[] = {client_ip};
  MakeAllocations(allocations, clients);
  if (HasFatalFailure()) return;
  const SocketAddress server{kNode, 3478};
  auto channel_data = [](const dpdkgen::TurnAllocation& a) {
    return Bytes{
        static_cast<uint8_t>(a.channel >> 8), static_cast<uint8_t>(a.channel), 0, 4, 1, 2, 3, 4};
  };
  for (uint32_t i = 0; i < kSilent; ++i) {
    for (int k = 0; k < 64; ++k) {
      port_.Put(UdpFrame(allocations[i].client, server, channel_data(allocations[i])));
    }
  }
  const dpdkgen::TurnAllocation& live = allocations[kSilent];
  port_.Put(UdpFrame(live.client, server, channel_data(live)));

  // The node's ARP requests: one for each silent peer, then one for the live peer, answered.
  // (A late answer to a retransmitted handshake request may go to the client: skipped.)
  auto to_client = [&](const packet::FrameInfo& info) {
    return info.ok() && info.is_ip() && info.dst_ip == client_ip;
  };
  bool asked = false;
  while (!asked) {
    const Bytes frame = port_.Take();
    if (frame.empty()) break;
    const packet::FrameInfo info = packet::ParseFrame(frame);
    if (to_client(info)) continue;
    ASSERT_EQ(info.kind, packet::FrameKind::kArp) << "only ARP requests go out until then";
    const std::optional<packet::ArpMessage> arp = packet::ParseArp(frame, info);
    ASSERT_TRUE(arp.has_value());
    EXPECT_EQ(arp->op, packet::kArpOpRequest);
    if (!(arp->target_ip == live_peer)) continue;
    asked = true;
    Bytes reply(64);
    const IpAddress answered[] = {live_peer};
    const packet::Reply r = packet::BuildArpReply(frame, info, kHostMac, answered, reply);
    ASSERT_EQ(r.verdict, packet::ReplyVerdict::kReply);
    reply.resize(r.length);
    port_.Put(reply);
  }
  ASSERT_TRUE(asked) << "no ARP request for the live peer while the parking lot was full";
  port_.Put(UdpFrame(live.client, server, channel_data(live)));
  std::optional<Sent> s;
  for (Bytes frame = port_.Take(); !frame.empty(); frame = port_.Take()) {
    const packet::FrameInfo info = packet::ParseFrame(frame);
    if (info.kind == packet::FrameKind::kArp || to_client(info)) continue;  // as above
    s = ParseUdp(frame);
    break;
  }
  ASSERT_TRUE(s.has_value()) << "the live peer's second frame was not relayed";
  EXPECT_EQ(s->info.dst(), live.peer);
  EXPECT_EQ(s->info.dst_mac, kHostMac);
  Stop();
  const IoCounters total = Total();
  EXPECT_EQ(total.tx_neighbor_parked, 64u * kSilent);
  // Only the live peer's first frame was dropped: had the parked frames expired during the
  // test (3 s), they would count here too, and the lot would not have been full.
  EXPECT_EQ(total.tx_neighbor_pending, 1u);
}

// Relay port steering (flow_steering.h): the blocks a range splits into, and a port without
// rte_flow (net_ring) refusing the rules, which leaves the workers handing frames over.
TEST(FlowSteeringTest, PortBlocksCoverARangeExactlyWithAlignedPowersOfTwo) {
  EXPECT_EQ(PortBlocks(40000, 40000), (std::vector<PortBlock>{{40000, 1}}));
  EXPECT_EQ(PortBlocks(0, 65535), (std::vector<PortBlock>{{0, 65536}}));
  EXPECT_EQ(PortBlocks(20000, 20015), (std::vector<PortBlock>{{20000, 16}}));
  EXPECT_EQ(PortBlocks(3, 10), (std::vector<PortBlock>{{3, 1}, {4, 4}, {8, 2}, {10, 1}}));
  for (const auto& [first, last] : std::vector<std::pair<uint16_t, uint16_t>>{
           {49152, 65535}, {20000, 29999}, {1, 65534}, {40000, 40499}, {40500, 40999}}) {
    uint32_t next = first;
    for (const PortBlock& b : PortBlocks(first, last)) {
      EXPECT_EQ(b.base, next);
      EXPECT_EQ(b.size & (b.size - 1), 0u) << b.size;
      EXPECT_EQ(b.base % b.size, 0u);
      next = b.base + b.size;
    }
    EXPECT_EQ(next, last + 1u);
    EXPECT_LE(PortBlocks(first, last).size(), 30u);  // at most two per bit
  }
}

TEST(FlowSteeringTest, RuleMatchesTheRelayAddressAndPortBlockInNetworkOrder) {
  const SteeringRule v4(Ip("10.0.0.2"), {20000, 16}, 3);
  EXPECT_EQ(v4.attr.ingress, 1u);
  ASSERT_EQ(v4.pattern[0].type, RTE_FLOW_ITEM_TYPE_ETH);
  ASSERT_EQ(v4.pattern[1].type, RTE_FLOW_ITEM_TYPE_IPV4);
  ASSERT_EQ(v4.pattern[2].type, RTE_FLOW_ITEM_TYPE_UDP);
  EXPECT_EQ(v4.pattern[3].type, RTE_FLOW_ITEM_TYPE_END);
  const auto* ip4 = static_cast<const rte_flow_item_ipv4*>(v4.pattern[1].spec);
  const auto* ip4_mask = static_cast<const rte_flow_item_ipv4*>(v4.pattern[1].mask);
  const uint8_t* dst = reinterpret_cast<const uint8_t*>(&ip4->hdr.dst_addr);
  EXPECT_EQ(Bytes(dst, dst + 4), (Bytes{10, 0, 0, 2}));
  EXPECT_EQ(ip4_mask->hdr.dst_addr, UINT32_MAX);
  const auto* udp = static_cast<const rte_flow_item_udp*>(v4.pattern[2].spec);
  const auto* udp_mask = static_cast<const rte_flow_item_udp*>(v4.pattern[2].mask);
  const uint8_t* port = reinterpret_cast<const uint8_t*>(&udp->hdr.dst_port);
  const uint8_t* mask = reinterpret_cast<const uint8_t*>(&udp_mask->hdr.dst_port);
  EXPECT_EQ(Bytes(port, port + 2), (Bytes{0x4E, 0x20}));  // 20000, big-endian
  EXPECT_EQ(Bytes(mask, mask + 2), (Bytes{0xFF, 0xF0}));  // a block of 16
  EXPECT_EQ(udp_mask->hdr.src_port, 0);
  ASSERT_EQ(v4.actions[0].type, RTE_FLOW_ACTION_TYPE_QUEUE);
  EXPECT_EQ(static_cast<const rte_flow_action_queue*>(v4.actions[0].conf)->index, 3);
  EXPECT_EQ(v4.actions[1].type, RTE_FLOW_ACTION_TYPE_END);

  const IpAddress relay6 = Ip("2001:db8::2");
  const SteeringRule v6(relay6, {40000, 1}, 0);
  ASSERT_EQ(v6.pattern[1].type, RTE_FLOW_ITEM_TYPE_IPV6);
  const auto* ip6 = static_cast<const rte_flow_item_ipv6*>(v6.pattern[1].spec);
  EXPECT_EQ(Bytes(ip6->hdr.dst_addr, ip6->hdr.dst_addr + 16),
            Bytes(relay6.bytes.begin(), relay6.bytes.end()));
  const auto* mask6 = static_cast<const rte_flow_item_udp*>(v6.pattern[2].mask);
  EXPECT_EQ(mask6->hdr.dst_port, 0xFFFF);  // one port
}

TEST_F(DpdkWorkerTest, SteeringOnAPortWithoutRteFlowFailsAndSaysSo) {
  Start(1, /*kernel_interface=*/false);
  SteeringPlan plan;
  plan.relay_ips = {kNode};
  plan.ranges = {{20000, 20499}, {20500, 20999}};
  // Room for single-port rules: blocks are split down to one port before giving up.
  absl::StatusOr<SteeringResult> r = SteerRelayPorts(port_.id, plan, 4096);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("refused a rule for 10.0.0.2 port"), std::string_view::npos)
      << r.status();
  // No room: the first refusal ends it.
  r = SteerRelayPorts(port_.id, plan, 100);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("1000 single-port rules would exceed 100"),
            std::string_view::npos)
      << r.status();
}

}  // namespace
}  // namespace turnpike::dataplane

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new turnpike::dataplane::EalEnvironment);
  return RUN_ALL_TESTS();
}
