// turnpike-worker-bench: what the DPDK worker itself spends per relayed packet, on one core, with
// no second process and no NIC.
//
// perf/dpdk-bench.sh measures the relay against dpdk-testpmd over net_memif with the generator
// on the other CPU. On this machine the host's speed swings from minute to minute and memif's
// copies take about 40% of the worker, so the relay's own steps (parse, engine, headers) are
// hard to follow there. This program takes both out:
//
// - The port is net_ring (rte_eth_from_rings): RX and TX queues are rte_rings in this process.
// - The main thread is the worker: each iteration writes a burst of 32 frames into fresh mbufs
//   (as a driver's RX would), enqueues them on the RX ring, runs one DpdkWorker::Poll (the same
//   loop body the lcore runs in turnpiked), and frees what the worker put on the TX ring.
// - The anchor, in the same run and the same loop, replaces the worker's Poll by io forwarding
//   (rte_eth_rx_burst then rte_eth_tx_burst, as dpdk-testpmd's io mode does). The difference is
//   the relay's own cost per packet; the ratio forward/relay is the share of the forwarding rate
//   the relay keeps on this port.
//
// Setup is real: --allocations TURN allocations are made through the worker with the DPDK load
// generator's client (perf/dpdk/handshake.cc: Allocate, 401, Allocate with REST credentials,
// ChannelBind), the node's ARP requests for the client and peer addresses are answered, and a
// check burst of every frame kind is parsed and compared before timing. Then the traffic is what
// perf/dpdk-bench.sh sends: ChannelData from the clients (4 + --payload bytes) and UDP from the
// peers (--payload bytes), alternating, round-robin over the allocations. Every frame put in
// must come out; a frame lost fails the run.
//
// Output: one line per round and mode (cycles per packet, Mpps at the TSC rate, the worker's
// sampled step cycles), then
//   RESULT relay_cycles=X forward_cycles=Y own_cycles=X-Y ratio=Y/X
// from the round with the median ratio. Run as root (the EAL wants it), pinned with --cpu.
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "dataplane/dpdk/dpdk_worker.h"
#include "dataplane/packet/arp.h"
#include "dataplane/packet/checksum.h"
#include "dataplane/packet/frame.h"
#include "dataplane/packet/tx_headers.h"
#include "perf/dpdk/handshake.h"
#include "turn/node_state.h"

namespace turnpike::dpdkgen {
namespace {

namespace packet = dataplane::packet;
using Bytes = std::vector<uint8_t>;
constexpr uint16_t kBurst = 32;
const packet::MacAddress kNodeMac{{0x02, 0x00, 0x00, 0x00, 0x00, 0x02}};
const packet::MacAddress kHostMac{{0x02, 0x00, 0x00, 0x00, 0x00, 0x10}};
const IpAddress kNode = *IpAddress::Parse("10.201.0.2");
const IpAddress kClient = *IpAddress::Parse("10.201.0.1");
const IpAddress kPeer = *IpAddress::Parse("10.201.0.3");
constexpr uint16_t kClientPortBase = 10000;
constexpr uint16_t kPeerPortBase = 30000;

struct Options {
  uint32_t allocations = 10000;
  uint32_t payload = 172;
  uint64_t packets = 8'000'000;  // per round and mode
  int rounds = 5;
  int cpu = 0;
};

bool ParseOptions(int argc, char** argv, Options* o) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    const size_t eq = arg.find('=');
    const std::string_view key = arg.substr(0, eq);
    const std::string_view value = eq == std::string_view::npos ? "" : arg.substr(eq + 1);
    uint64_t v = 0;
    if (key == "--help" || !absl::SimpleAtoi(absl::string_view(value.data(), value.size()), &v)) {
      return false;
    }
    if (key == "--allocations" && v >= 1 && v <= 20000) {
      o->allocations = static_cast<uint32_t>(v);
    } else if (key == "--payload" && v >= 4 && v <= 1400) {
      o->payload = static_cast<uint32_t>(v);
    } else if (key == "--packets" && v >= kBurst) {
      o->packets = v;
    } else if (key == "--rounds" && v >= 1 && v % 2 == 1 && v <= 99) {
      o->rounds = static_cast<int>(v);
    } else if (key == "--cpu" && v < 1024) {
      o->cpu = static_cast<int>(v);
    } else {
      return false;
    }
  }
  return true;
}

// An Ethernet + IPv4 + UDP frame from the hosts' MAC to the node's, with a UDP checksum (as a
// kernel-stack client sends).
Bytes UdpFrame(const SocketAddress& src, const SocketAddress& dst,
               std::span<const uint8_t> payload) {
  packet::UdpTxParams params;
  params.src_mac = kHostMac;
  params.dst_mac = kNodeMac;
  params.src = src;
  params.dst = dst;
  return packet::BuildUdpFrame(payload, params);
}

// The port: RX queue 0 is `in` (we enqueue), TX queue 0 is `out` (we dequeue).
struct RingPort {
  rte_ring* in = nullptr;
  rte_ring* out = nullptr;
  uint16_t id = 0;
};

std::optional<RingPort> OpenPort(rte_mempool* pool) {
  RingPort p;
  p.in = rte_ring_create("wb_in", 1024, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
  p.out = rte_ring_create("wb_out", 1024, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
  if (p.in == nullptr || p.out == nullptr) return std::nullopt;
  const int id = rte_eth_from_rings("wb_port", &p.in, 1, &p.out, 1, SOCKET_ID_ANY);
  if (id < 0) return std::nullopt;
  p.id = static_cast<uint16_t>(id);
  rte_eth_conf conf{};
  if (rte_eth_dev_configure(p.id, 1, 1, &conf) != 0 ||
      rte_eth_rx_queue_setup(p.id, 0, 1024, SOCKET_ID_ANY, nullptr, pool) != 0 ||
      rte_eth_tx_queue_setup(p.id, 0, 1024, SOCKET_ID_ANY, nullptr) != 0 ||
      rte_eth_dev_start(p.id) != 0) {
    return std::nullopt;
  }
  return p;
}

bool Put(const RingPort& port, rte_mempool* pool, const Bytes& frame) {
  rte_mbuf* m = rte_pktmbuf_alloc(pool);
  if (m == nullptr) return false;
  char* data = rte_pktmbuf_append(m, static_cast<uint16_t>(frame.size()));
  if (data != nullptr) std::memcpy(data, frame.data(), frame.size());
  if (data == nullptr || rte_ring_enqueue(port.in, m) != 0) {
    rte_pktmbuf_free(m);
    return false;
  }
  return true;
}

// Everything the worker sent since the last call.
std::vector<Bytes> TakeAll(const RingPort& port) {
  std::vector<Bytes> frames;
  void* p = nullptr;
  while (rte_ring_dequeue(port.out, &p) == 0) {
    rte_mbuf* m = static_cast<rte_mbuf*>(p);
    const uint8_t* data = rte_pktmbuf_mtod(m, const uint8_t*);
    frames.emplace_back(data, data + rte_pktmbuf_data_len(m));
    rte_pktmbuf_free(m);
  }
  return frames;
}

// Answers the node's ARP requests for the client and peer addresses; true if `frame` was one.
bool AnswerArp(const RingPort& port, rte_mempool* pool, const Bytes& frame,
               const packet::FrameInfo& info) {
  if (info.kind != packet::FrameKind::kArp) return false;
  const IpAddress hosts[] = {kClient, kPeer};
  Bytes reply(64);
  const packet::Reply r = packet::BuildArpReply(frame, info, kHostMac, hosts, reply);
  if (r.verdict == packet::ReplyVerdict::kReply) {
    reply.resize(r.length);
    Put(port, pool, reply);
  }
  return true;
}

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// TURN handshakes for every allocation through the worker. Returns false (and says why) unless
// all succeed within 30 seconds.
bool MakeAllocations(dataplane::DpdkWorker& worker, const RingPort& port, rte_mempool* pool,
                     std::vector<TurnAllocation>& allocations, const std::string& secret) {
  HandshakeOptions options;
  options.secret = secret;
  options.rto_ms = 1000;
  const SocketAddress server{kNode, 3478};
  bool put_failed = false;
  Handshakes handshakes(&allocations, options,
                        [&](const TurnAllocation& a, std::span<const uint8_t> request) {
                          if (!Put(port, pool, UdpFrame(a.client, server, request))) {
                            put_failed = true;
                          }
                        });
  const int64_t deadline = NowNs() + 30'000'000'000;
  while (!handshakes.done() && NowNs() < deadline && !put_failed) {
    handshakes.Poll(NowNs());
    worker.Poll();
    for (const Bytes& frame : TakeAll(port)) {
      const packet::FrameInfo info = packet::ParseFrame(frame);
      if (AnswerArp(port, pool, frame, info)) continue;
      if (!info.ok() || !info.is_ip() || info.dst_ip != kClient || info.l4_protocol != 17 ||
          info.dst_port < kClientPortBase ||
          info.dst_port - kClientPortBase >= static_cast<int>(allocations.size())) {
        continue;
      }
      handshakes.OnMessage(
          info.dst_port - kClientPortBase,
          std::span<const uint8_t>(frame).subspan(info.payload_offset, info.payload_length),
          NowNs());
    }
  }
  const HandshakeStats& s = handshakes.stats();
  if (put_failed || s.ok != static_cast<int>(allocations.size())) {
    std::fprintf(stderr, "handshakes: %d of %zu succeeded, %d failed, %d retransmits%s\n", s.ok,
                 allocations.size(), s.failed, s.retransmits,
                 put_failed ? " (a frame could not be queued)" : "");
    for (const auto& [code, count] : s.error_codes) {
      std::fprintf(stderr, "  error %d: %d\n", code, count);
    }
    return false;
  }
  return true;
}

// The traffic: frames[2 i] is allocation i's ChannelData, frames[2 i + 1] its peer's datagram.
// Every frame carries the same payload, so frames of one kind differ only in their UDP header
// and the ChannelData header after it (see Patches).
std::vector<Bytes> Traffic(const std::vector<TurnAllocation>& allocations, uint32_t payload) {
  const SocketAddress server{kNode, 3478};
  Bytes data(payload);
  for (uint32_t k = 0; k < payload; ++k) data[k] = static_cast<uint8_t>(k * 7 + 1);
  std::vector<Bytes> frames;
  for (const TurnAllocation& a : allocations) {
    Bytes cd(4 + payload);
    cd[0] = static_cast<uint8_t>(a.channel >> 8);
    cd[1] = static_cast<uint8_t>(a.channel);
    cd[2] = static_cast<uint8_t>(payload >> 8);
    cd[3] = static_cast<uint8_t>(payload);
    std::copy(data.begin(), data.end(), cd.begin() + 4);
    frames.push_back(UdpFrame(a.client, server, cd));
    frames.push_back(UdpFrame(a.peer, a.relayed, data));
  }
  return frames;
}

// The timed loop writes each frame as perf/dpdk/dpdk_loadgen.cc does: its kind's template (hot
// in the cache) and then the 12 bytes that differ per allocation (ports, length, checksum,
// and the channel number or the payload's first bytes), read in order from one small array.
// Rereading every whole frame from a table of 20,000 would stream 4 MB through this core's
// caches per round, which the generator's core does not do to the relay's.
constexpr size_t kPatchOffset = 14 + 20;  // Ethernet + IPv4 without options: the UDP header
struct Patch {
  uint8_t bytes[12];
  uint8_t kind;  // 0: ChannelData, 1: the peer's datagram
};
std::vector<Patch> Patches(const std::vector<Bytes>& frames) {
  std::vector<Patch> patches(frames.size());
  for (size_t i = 0; i < frames.size(); ++i) {
    std::memcpy(patches[i].bytes, frames[i].data() + kPatchOffset, sizeof patches[i].bytes);
    patches[i].kind = static_cast<uint8_t>(i % 2);
  }
  return patches;
}

// One of each frame kind through the worker, the output checked: the ChannelData comes out as
// the peer's datagram from the relayed address, the peer's datagram as ChannelData to the
// client, both with valid checksums. Returns the first problem, or an empty string.
std::string CheckRelaying(dataplane::DpdkWorker& worker, const RingPort& port, rte_mempool* pool,
                          const std::vector<TurnAllocation>& allocations,
                          const std::vector<Bytes>& frames, uint32_t payload) {
  // First what the handshakes left: a retransmitted request still queued, its late answer.
  while (rte_ring_count(port.in) > 0) worker.Poll();
  worker.Poll();
  TakeAll(port);
  const TurnAllocation& a = allocations.back();
  const size_t i = 2 * (allocations.size() - 1);
  if (!Put(port, pool, frames[i]) || !Put(port, pool, frames[i + 1])) return "cannot queue";
  worker.Poll();
  const std::vector<Bytes> out = TakeAll(port);
  if (out.size() != 2) return absl::StrFormat("%d frames out for 2 in", out.size());
  for (size_t k = 0; k < 2; ++k) {
    const packet::FrameInfo info = packet::ParseFrame(out[k]);
    if (!info.ok() || !info.is_ip() || info.l4_protocol != 17) return "not UDP";
    const std::span<const uint8_t> udp =
        std::span<const uint8_t>(out[k]).subspan(info.l4_offset, info.l4_length);
    if (!packet::UdpChecksumValid(info.src_ip, info.dst_ip, udp)) return "bad UDP checksum";
    const bool to_peer = k == 0;
    const SocketAddress want_src = to_peer ? a.relayed : SocketAddress{kNode, 3478};
    const SocketAddress want_dst = to_peer ? a.peer : a.client;
    if (!(info.src() == want_src) || !(info.dst() == want_dst)) {
      return absl::StrFormat("frame %d: %s -> %s", k, info.src().ToString(), info.dst().ToString());
    }
    const size_t want_len = to_peer ? payload : 4 + payload;
    const uint8_t* body = out[k].data() + info.payload_offset;
    if (info.payload_length != want_len ||
        std::memcmp(body + (to_peer ? 0 : 4), frames[i + 1].data() + frames[i + 1].size() - payload,
                    payload) != 0) {
      return absl::StrFormat("frame %d: payload differs", k);
    }
  }
  return "";
}

struct Figures {
  double cycles_per_packet = 0;
  bool short_run = false;        // the pool ran dry before `packets` frames went in
  int64_t lost = 0;              // frames in minus frames out (negative: frames nobody put in)
  dataplane::IoCounters stages;  // the worker's sampled steps during the run (relay only)
};

// What went wrong in a round's two runs, for its line (empty: nothing).
std::string Trouble(const Figures& forward, const Figures& relay) {
  std::string t;
  for (const auto& [name, f] : {std::pair{"forward", &forward}, std::pair{"relay", &relay}}) {
    if (f->short_run) t += absl::StrFormat("  %s: SHORT RUN (mbuf pool empty)", name);
    if (f->lost > 0) t += absl::StrFormat("  %s: %d FRAMES LOST", name, f->lost);
    if (f->lost < 0) t += absl::StrFormat("  %s: %d UNEXPECTED FRAMES", name, -f->lost);
  }
  return t;
}

// `packets` frames through the port in bursts of 32: through the worker (relay) or forwarded
// unchanged from RX to TX (the anchor).
Figures Run(dataplane::DpdkWorker* worker, const RingPort& port, rte_mempool* pool,
            const std::vector<Bytes>& frames, const std::vector<Patch>& patches, uint64_t packets) {
  const dataplane::IoCounters before =
      worker != nullptr ? worker->counters() : dataplane::IoCounters{};
  rte_mbuf* burst[kBurst];
  uint64_t in = 0;
  uint64_t out = 0;
  size_t next = 0;
  const uint64_t start = rte_rdtsc();
  while (in < packets) {
    if (rte_pktmbuf_alloc_bulk(pool, burst, kBurst) != 0) break;
    for (uint16_t k = 0; k < kBurst; ++k) {
      const Patch& patch = patches[next];
      next = next + 1 == patches.size() ? 0 : next + 1;
      const Bytes& f = frames[patch.kind];  // the kind's template
      uint8_t* p =
          reinterpret_cast<uint8_t*>(rte_pktmbuf_append(burst[k], static_cast<uint16_t>(f.size())));
      if (p == nullptr) continue;  // cannot happen: --payload is at most 1400 bytes
      std::memcpy(p, f.data(), f.size());
      std::memcpy(p + kPatchOffset, patch.bytes, sizeof patch.bytes);
    }
    const unsigned queued =
        rte_ring_sp_enqueue_burst(port.in, reinterpret_cast<void**>(burst), kBurst, nullptr);
    for (unsigned k = queued; k < kBurst; ++k) rte_pktmbuf_free(burst[k]);
    in += queued;
    if (worker != nullptr) {
      worker->Poll();
    } else {
      const uint16_t n = rte_eth_rx_burst(port.id, 0, burst, kBurst);
      const uint16_t sent = rte_eth_tx_burst(port.id, 0, burst, n);
      for (uint16_t k = sent; k < n; ++k) rte_pktmbuf_free(burst[k]);
    }
    const unsigned n =
        rte_ring_sc_dequeue_burst(port.out, reinterpret_cast<void**>(burst), kBurst, nullptr);
    rte_pktmbuf_free_bulk(burst, n);
    out += n;
  }
  const uint64_t cycles = rte_rdtsc() - start;
  Figures f;
  f.short_run = in < packets;
  f.cycles_per_packet = in > 0 ? static_cast<double>(cycles) / static_cast<double>(in) : 0;
  f.lost = static_cast<int64_t>(in) - static_cast<int64_t>(out);
  if (worker != nullptr) {
    const dataplane::IoCounters& after = worker->counters();
    f.stages.stage_packets = after.stage_packets - before.stage_packets;
    f.stages.stage_cycles_rx = after.stage_cycles_rx - before.stage_cycles_rx;
    f.stages.stage_cycles_classify = after.stage_cycles_classify - before.stage_cycles_classify;
    f.stages.stage_cycles_engine = after.stage_cycles_engine - before.stage_cycles_engine;
    f.stages.stage_cycles_build = after.stage_cycles_build - before.stage_cycles_build;
    f.stages.stage_cycles_tx = after.stage_cycles_tx - before.stage_cycles_tx;
  }
  return f;
}

// The whole run inside an initialised EAL; the exit status.
int Bench(const Options& o) {
  rte_mempool* pool =
      rte_pktmbuf_pool_create("wb_pool", 8191, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
  const std::optional<RingPort> port = pool != nullptr ? OpenPort(pool) : std::nullopt;
  if (!port) {
    std::fprintf(stderr, "cannot create the mbuf pool or the ring port: %s\n",
                 rte_strerror(rte_errno));
    return 1;
  }
  // Stopped and closed on every way out (the EAL cleanup frees the rest).
  struct PortCloser {
    uint16_t id;
    ~PortCloser() {
      rte_eth_dev_stop(id);
      rte_eth_dev_close(id);
    }
  } closer{port->id};
  ServerConfig config;
  config.listening_ips = {kNode};
  config.relay_ips = {kNode};
  config.dpdk_addresses = {{kNode, 24}};
  config.listening_port = 3478;
  config.min_port = 20000;
  config.max_port = 39999;  // as perf/dpdk-bench.sh
  config.realm = "bench.turnpike";
  config.use_auth_secret = true;
  config.static_auth_secrets = {"worker-bench-secret"};
  config.unauth_rate = 0;
  config.allowed_peer_ips = {{kPeer, kPeer}};
  turn::NodeState node(config);
  auto fabric = dataplane::DpdkFabric::Create(1, false, "wb", SOCKET_ID_ANY);
  if (!fabric.ok()) {
    std::fprintf(stderr, "%s\n", fabric.status().ToString().c_str());
    return 1;
  }
  const std::atomic<bool> stop{false};
  dataplane::DpdkWorker worker(0, config, &node, fabric->get(), port->id, 0, pool, kNodeMac,
                               dataplane::ChecksumOffload{}, &stop);
  worker.Start();

  std::vector<TurnAllocation> allocations(o.allocations);
  for (uint32_t i = 0; i < o.allocations; ++i) {
    allocations[i].index = i;
    allocations[i].client = {kClient, static_cast<uint16_t>(kClientPortBase + i)};
    allocations[i].peer = {kPeer, static_cast<uint16_t>(kPeerPortBase + i)};
  }
  int rc = 1;
  if (MakeAllocations(worker, *port, pool, allocations, config.static_auth_secrets[0])) {
    const std::vector<Bytes> frames = Traffic(allocations, o.payload);
    const std::vector<Patch> patches = Patches(frames);
    const std::string problem = CheckRelaying(worker, *port, pool, allocations, frames, o.payload);
    if (!problem.empty()) {
      std::fprintf(stderr, "relaying check failed: %s\n", problem.c_str());
    } else {
      rc = 0;
      const double ghz = static_cast<double>(rte_get_tsc_hz()) / 1e9;
      std::printf(
          "%u allocations, frames of %zu and %zu bytes alternating, %llu packets per "
          "round and mode, TSC %.2f GHz, CPU %d\n",
          o.allocations, frames[0].size(), frames[1].size(),
          static_cast<unsigned long long>(o.packets), ghz, o.cpu);
      Run(&worker, *port, pool, frames, patches, o.packets / 8);  // warm-up
      struct Round {
        double relay, forward;
      };
      std::vector<Round> rounds;
      for (int r = 1; r <= o.rounds; ++r) {
        const Figures fwd = Run(nullptr, *port, pool, frames, patches, o.packets);
        const Figures rel = Run(&worker, *port, pool, frames, patches, o.packets);
        const dataplane::IoCounters& s = rel.stages;
        const std::string trouble = Trouble(fwd, rel);
        const double per = s.stage_packets > 0 ? static_cast<double>(s.stage_packets) : 1;
        std::printf(
            "ROUND %d forward_cycles=%.1f relay_cycles=%.1f own_cycles=%.1f "
            "ratio=%.3f relay_mpps=%.2f  steps: rx=%.0f classify=%.0f engine=%.0f "
            "build=%.0f tx=%.0f%s\n",
            r, fwd.cycles_per_packet, rel.cycles_per_packet,
            rel.cycles_per_packet - fwd.cycles_per_packet,
            fwd.cycles_per_packet / rel.cycles_per_packet, ghz * 1e3 / rel.cycles_per_packet,
            s.stage_cycles_rx / per, s.stage_cycles_classify / per, s.stage_cycles_engine / per,
            s.stage_cycles_build / per, s.stage_cycles_tx / per, trouble.c_str());
        if (!trouble.empty()) rc = 1;
        rounds.push_back({rel.cycles_per_packet, fwd.cycles_per_packet});
      }
      std::sort(rounds.begin(), rounds.end(), [](const Round& a, const Round& b) {
        return a.forward / a.relay < b.forward / b.relay;
      });
      const Round& m = rounds[rounds.size() / 2];
      std::printf("RESULT relay_cycles=%.1f forward_cycles=%.1f own_cycles=%.1f ratio=%.3f\n",
                  m.relay, m.forward, m.relay - m.forward, m.forward / m.relay);
    }
  }
  worker.Finish();
  TakeAll(*port);
  return rc;
}

int Main(int argc, char** argv) {
  Options o;
  if (!ParseOptions(argc, argv, &o)) {
    std::fprintf(stderr,
                 "usage: %s [--allocations=N (10000)] [--payload=BYTES (172)]\n"
                 "          [--packets=N per round and mode (8000000)] [--rounds=odd N (5)]\n"
                 "          [--cpu=N (0)]\n",
                 argv[0]);
    return 2;
  }
  const std::string prefix = absl::StrFormat("tp-worker-bench-%d", getpid());
  std::vector<std::string> args = {"turnpike-worker-bench",
                                   "-l",
                                   absl::StrCat(o.cpu),
                                   "--no-huge",
                                   "-m",
                                   "512",
                                   "--no-pci",
                                   "--no-shconf",
                                   "--log-level=*:warning",
                                   "--file-prefix=" + prefix};
  std::vector<char*> argv_eal;
  for (std::string& a : args) argv_eal.push_back(a.data());
  if (rte_eal_init(static_cast<int>(argv_eal.size()), argv_eal.data()) < 0) {
    std::fprintf(stderr, "EAL initialisation failed: %s (run as root)\n", rte_strerror(rte_errno));
    return 1;
  }
  const std::string runtime_dir = rte_eal_get_runtime_dir();
  const int rc = Bench(o);
  rte_eal_cleanup();
  std::error_code ignored;
  std::filesystem::remove_all(runtime_dir, ignored);
  return rc;
}

}  // namespace
}  // namespace turnpike::dpdkgen

int main(int argc, char** argv) { return turnpike::dpdkgen::Main(argc, argv); }
