// DPDK worker loop; see dpdk_worker.h and dpdk_backend.h for the data flow.
#include "dataplane/dpdk/dpdk_worker.h"

#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_pause.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <memory>
#include <optional>

#include "absl/strings/str_format.h"
#include "dataplane/packet/arp.h"
#include "dataplane/packet/checksum.h"
#include "dataplane/packet/icmp.h"
#include "dataplane/packet/ndp.h"
#include "dataplane/packet/neighbor_learning.h"
#include "dataplane/packet/tx_headers.h"
#include "spdlog/spdlog.h"

namespace turnpike::dataplane {
namespace {

constexpr turn::SocketId kRelayBit = 0x80000000u;
constexpr uint8_t kProtoUdp = 17;
constexpr uint8_t kProtoIcmp = 1;
constexpr uint8_t kProtoIcmpv6 = 58;
constexpr uint64_t kTickNs = 100'000'000;  // engine timer period, as on the uring backend
constexpr size_t kEthernetHeader = 14;
constexpr size_t kMaxIpPacket = 1500;  // the Ethernet MTU (jumbo frames: not configurable yet)

uint64_t MonotonicNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
}

int FamilyIndex(const IpAddress& ip) { return ip.is_v4() ? 0 : 1; }

packet::NeighborTableOptions NeighborOptions() {
  packet::NeighborTableOptions o;
  o.capacity = 4096;
  o.max_queued = 64;  // frames parked per unresolved next hop (a burst of streams starting)
  return o;
}

}  // namespace

absl::StatusOr<std::unique_ptr<DpdkFabric>> DpdkFabric::Create(uint32_t workers,
                                                              bool own_queues,
                                                              std::string_view prefix,
                                                              int socket) {
  auto fabric = std::make_unique<DpdkFabric>();
  fabric->workers = workers;
  fabric->own_queues = own_queues && workers > 1;
  if (workers <= 1) return fabric;
  fabric->owners = std::make_unique<RelayPortOwners>();
  auto ring = [&](const std::string& name, unsigned flags) -> absl::StatusOr<rte_ring*> {
    rte_ring* r = rte_ring_create(name.c_str(), kRingSize, socket, flags);
    if (r == nullptr) {
      return absl::ResourceExhaustedError(
          absl::StrFormat("cannot create ring %s: %s", name, rte_strerror(rte_errno)));
    }
    return r;
  };
  for (uint32_t w = 0; w < workers; ++w) {
    absl::StatusOr<rte_ring*> rx = ring(absl::StrFormat("%s_rx_%d", prefix, w), RING_F_SC_DEQ);
    if (!rx.ok()) return rx.status();
    fabric->rx.push_back(*rx);
    if (fabric->own_queues) continue;  // each worker transmits on its own queue
    absl::StatusOr<rte_ring*> tx =
        ring(absl::StrFormat("%s_tx_%d", prefix, w), RING_F_SP_ENQ | RING_F_SC_DEQ);
    if (!tx.ok()) return tx.status();
    fabric->tx.push_back(*tx);
  }
  absl::StatusOr<rte_ring*> to_kernel = ring(absl::StrFormat("%s_kernel", prefix), RING_F_SC_DEQ);
  if (!to_kernel.ok()) return to_kernel.status();
  fabric->to_kernel = *to_kernel;
  return fabric;
}

DpdkFabric::~DpdkFabric() {
  std::vector<rte_ring*> all = rx;
  all.insert(all.end(), tx.begin(), tx.end());
  if (to_kernel != nullptr) all.push_back(to_kernel);
  if (from_kernel_relays != nullptr) {
    void* d;
    while (rte_ring_dequeue(from_kernel_relays, &d) == 0) delete static_cast<NodeDatagram*>(d);
    rte_ring_free(from_kernel_relays);
  }
  for (rte_ring* r : all) {
    void* m;
    while (rte_ring_dequeue(r, &m) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
    rte_ring_free(r);
  }
}

DpdkWorker::DpdkWorker(uint32_t index, const ServerConfig& config, turn::NodeState* node,
                       const DpdkFabric* fabric, uint16_t port, uint16_t queue,
                       rte_mempool* pool, const packet::MacAddress& mac, ChecksumOffload offload,
                       const std::atomic<bool>* stop)
    : index_(index),
      config_(config),
      fabric_(fabric),
      polls_port_(index == 0 || fabric->own_queues),
      port_(port),
      queue_(queue),
      pool_(pool),
      mac_(mac),
      offload_(offload),
      stop_(stop),
      ipv4_id_(static_cast<uint16_t>(index)),
      tx_(std::make_unique<turn::TxBatch>()),
      neighbors_(NeighborOptions()),
      events_(index) {
  for (const InterfaceAddress& a : config.dpdk_addresses) ours_.push_back(a.ip);
  for (const IpAddress& ip : config.relay_ips) {
    const int f = FamilyIndex(ip);
    if (has_relay_ip_[f]) continue;  // one relay address per family
    has_relay_ip_[f] = true;
    relay_ip_[f] = ip;
    relays_[f].assign(65536, RelayEntry{});
  }
  if (fabric_->workers > 1) staged_.resize(fabric_->workers);
  turn::EngineOptions options;
  options.worker_index = index;
  options.max_allocations = PerWorkerAllocations(config.max_allocations, fabric_->workers);
  options.worker_count = fabric_->engines != 0 ? fabric_->engines : fabric_->workers;
  engine_ = std::make_unique<turn::Engine>(config, options, node, this);
  engine_->SetEventSink(&events_);
}

DpdkWorker::~DpdkWorker() {
  engine_.reset();
  for (uint16_t i = 0; i < n_held_; ++i) rte_pktmbuf_free(held_[i]);
  for (uint16_t i = 0; i < n_tx_; ++i) rte_pktmbuf_free(tx_burst_[i]);
  for (uint16_t i = 0; i < n_hairpin_; ++i) rte_pktmbuf_free(hairpin_[i]);
  for (uint16_t i = 0; i < n_to_kernel_; ++i) rte_pktmbuf_free(to_kernel_[i]);
  for (size_t i = 0; i < n_parked_; ++i) rte_pktmbuf_free(parked_[i].m);
}

DpdkWorker::RelayEntry* DpdkWorker::RelayAt(const IpAddress& ip, uint16_t port) {
  const int f = FamilyIndex(ip);
  if (!has_relay_ip_[f] || !(relay_ip_[f] == ip)) return nullptr;
  return &relays_[f][port];
}

absl::StatusOr<turn::SocketId> DpdkWorker::OpenRelay(const SocketAddress& address, uint32_t tag) {
  RelayEntry* e = RelayAt(address.ip, address.port);
  if (e == nullptr) {
    ++counters_.relay_open_failures;
    return absl::InvalidArgumentError(
        absl::StrFormat("%s is not this data plane's relay address", address.ip.ToString()));
  }
  if (e->tag_plus_one != 0) {
    ++counters_.relay_open_failures;
    return absl::AlreadyExistsError(absl::StrFormat("relay port %d in use", address.port));
  }
  e->tag_plus_one = tag + 1;
  e->dont_fragment = false;
  if (fabric_->owners != nullptr) {
    fabric_->owners->owner_plus_one[FamilyIndex(address.ip)][address.port].store(
        static_cast<uint8_t>(index_ + 1), std::memory_order_release);
  }
  ++counters_.relays_opened;
  return kRelayBit | (static_cast<turn::SocketId>(FamilyIndex(address.ip)) << 16) | address.port;
}

void DpdkWorker::CloseRelay(turn::SocketId socket) {
  if ((socket & kRelayBit) == 0) return;
  const int f = (socket >> 16) & 1;
  if (!has_relay_ip_[f]) return;
  RelayEntry& e = relays_[f][socket & 0xFFFF];
  if (e.tag_plus_one == 0) return;
  e = RelayEntry{};
  if (fabric_->owners != nullptr) {
    // Only if still ours: the port may already be another worker's (NodeState hands it out
    // again once the engine returns it).
    uint8_t mine = static_cast<uint8_t>(index_ + 1);
    fabric_->owners->owner_plus_one[f][socket & 0xFFFF].compare_exchange_strong(
        mine, 0, std::memory_order_release, std::memory_order_relaxed);
  }
  ++counters_.relays_closed;
}

absl::Status DpdkWorker::SetDontFragment(turn::SocketId socket) {
  if ((socket & kRelayBit) == 0 || !has_relay_ip_[(socket >> 16) & 1]) {
    return absl::NotFoundError("no such relay");
  }
  relays_[(socket >> 16) & 1][socket & 0xFFFF].dont_fragment = true;
  return absl::OkStatus();
}

const IpAddress* DpdkWorker::SourceOf(turn::SocketId socket, uint16_t* port) const {
  if ((socket & kRelayBit) != 0) {
    const int f = (socket >> 16) & 1;
    if (!has_relay_ip_[f]) return nullptr;
    *port = static_cast<uint16_t>(socket & 0xFFFF);
    return &relay_ip_[f];
  }
  if (socket >= config_.listening_ips.size()) return nullptr;
  *port = config_.listening_port;
  return &config_.listening_ips[socket];
}

void DpdkWorker::Run() {
  Start();
  while (!stop_->load(std::memory_order_relaxed)) Poll();
  Finish();
}

uint64_t DpdkWorker::ClockNs(uint64_t tsc) const {
  const __uint128_t cycles = tsc - base_tsc_;
  return base_ns_ + static_cast<uint64_t>((cycles * ns_per_cycle_q32_) >> 32);
}

void DpdkWorker::Start() {
  // The clock is read once per poll: the TSC (no system call) anchored to CLOCK_MONOTONIC once,
  // converted with a 32.32 fixed-point multiply (a 128-bit division per read cost about 5% of
  // the worker in the bench profile).
  base_tsc_ = rte_rdtsc();
  base_ns_ = MonotonicNs();
  ns_per_cycle_q32_ = (uint64_t{1'000'000'000} << 32) / rte_get_tsc_hz();
  now_ns_ = base_ns_;
  engine_->SetNow(now_ns_);
  next_tick_ns_ = now_ns_ + kTickNs;
  if (polls_port_) {
    const char* role = "";
    if (fabric_->workers > 1) {
      role = fabric_->own_queues ? " (handing frames of other workers' allocations to them)"
                                 : " (and distributing to the other workers)";
    }
    spdlog::info("dpdk worker {} polling port {} queue {} on lcore {}{}", index_, port_, queue_,
                 rte_lcore_id(), role);
  } else {
    spdlog::info("dpdk worker {} on lcore {}: frames from worker 0's distributor", index_,
                 rte_lcore_id());
  }
}

void DpdkWorker::Poll() {
  rte_mbuf* rx[kBurst];
  const bool several = fabric_->workers > 1;
  const bool kernel = index_ == 0 && fabric_->kernel_port >= 0;
  // A sampled iteration times each step of its port burst (IoCounters::stage_*).
  const bool sample = polls_port_ && counters_.loop_iterations % kStageSample == 0;
  uint64_t tsc[6] = {};  // rx start, rx end, flush start, flush end, send start, send end
  uint64_t split[2] = {};
  if (sample) tsc[0] = rte_rdtsc();
  uint16_t n = polls_port_ ? rte_eth_rx_burst(port_, queue_, rx, kBurst) : 0;
  const uint16_t from_port = n;
  tsc[1] = rte_rdtsc();
  now_ns_ = ClockNs(tsc[1]);
  if (n_hairpin_ > 0) {  // frames this worker sent to its own addresses, as if received
    const uint16_t take = std::min<uint16_t>(n_hairpin_, static_cast<uint16_t>(kBurst - n));
    std::copy(hairpin_, hairpin_ + take, rx + n);
    std::copy(hairpin_ + take, hairpin_ + n_hairpin_, hairpin_);
    n_hairpin_ = static_cast<uint16_t>(n_hairpin_ - take);
    n = static_cast<uint16_t>(n + take);
  }
  if (kernel && fabric_->from_kernel_relays != nullptr && n < kBurst) {
    // The kernel's relays to ours (TURN over TCP / TLS clients' relays talking to the data
    // plane's), as if received.
    n = static_cast<uint16_t>(n + TakeNodeDatagrams(rx + n, static_cast<uint16_t>(kBurst - n)));
  }
  if (n > 0) {
    engine_->SetNow(now_ns_);
    HandleBurst(rx, n, /*from_ring=*/false, sample ? split : nullptr);
    ++counters_.bursts;
  }
  if (several) {
    const unsigned k = rte_ring_sc_dequeue_burst(fabric_->rx[index_],
                                                 reinterpret_cast<void**>(rx), kBurst, nullptr);
    if (k > 0) {
      engine_->SetNow(now_ns_);
      HandleBurst(rx, static_cast<uint16_t>(k), /*from_ring=*/true);
      ++counters_.bursts;
      n = static_cast<uint16_t>(n + k);
    }
  }
  if (kernel) n = static_cast<uint16_t>(n + PollKernel());
  if (n > 0) {
    if (sample) tsc[2] = rte_rdtsc();
    FlushTx();
    if (sample) tsc[3] = rte_rdtsc();
  }
  if (now_ns_ >= next_tick_ns_) {
    engine_->SetNow(now_ns_);
    engine_->Tick();
    FlushTx();
    if (n_parked_ > 0) ReleaseParked(/*expire=*/true);
    neighbors_.Sweep(NowSeconds());
    resolved_.fill(SecondMemo{});
    ++counters_.ticks;
    next_tick_ns_ = now_ns_ + kTickNs;
  }
  if (commands_.pending()) {
    commands_.RunAll(*engine_, [this] { FlushTx(); }, &counters_.commands);
  }
  events_.Flush();
  if (sample) tsc[4] = rte_rdtsc();
  DrainTx();
  if (sample) tsc[5] = rte_rdtsc();
  DrainToKernel();
  if (index_ == 0 && several && !fabric_->own_queues) DrainPeerTx();
  counters_.allocations = engine_->allocation_count();
  ++counters_.loop_iterations;
  if (n > 0) {
    counters_.busy_ns += ClockNs(rte_rdtsc()) - now_ns_;
  } else {
    rte_pause();
  }
  if (sample && from_port > 0) {
    // (Frames from the hairpin and, with several workers, from the ring are in the burst's
    // handling and sending but not in its count: both are rare.)
    counters_.stage_packets += from_port;
    counters_.stage_cycles_rx += tsc[1] - tsc[0];
    counters_.stage_cycles_classify += split[0] - tsc[1];
    counters_.stage_cycles_engine += split[1] - split[0];
    counters_.stage_cycles_build += tsc[3] - tsc[2];
    counters_.stage_cycles_tx += tsc[5] - tsc[4];
  }
}

void DpdkWorker::Finish() {
  if (commands_.pending()) {
    commands_.RunAll(*engine_, [this] { FlushTx(); }, &counters_.commands);
  }
  engine_->CloseAll();
  FlushTx();
  DrainTx();
  events_.Flush();
  counters_.allocations = engine_->allocation_count();
}

void DpdkWorker::HandleBurst(rte_mbuf* const* rx, uint16_t n, bool from_ring,
                             uint64_t* split) {
  const bool dispatch = !from_ring && fabric_->workers > 1;
  // Three passes, so that the cache misses of the burst overlap: parse every frame and start
  // loading its relay port's entry; route it (handing other workers' frames over) and start
  // loading the engine's 5-tuple probe (client packets) or allocation (peer packets); then
  // handle each frame.
  packet::FrameInfo info[kBurst];
  for (uint16_t i = 0; i < n; ++i) Parse(rx[i], info[i]);
  Route route[kBurst];
  rte_mbuf* mine[kBurst];
  uint16_t kept = 0;  // info[] is compacted as frames are handed over: kept <= i
  for (uint16_t i = 0; i < n; ++i) {
    uint32_t owner = index_;
    if (kept != i) info[kept] = info[i];
    Route r = Classify(info[kept], dispatch ? &owner : nullptr);
    if (owner != index_) {
      Stage(owner, rx[i]);
      continue;
    }
    if (dispatch && r.kind == Route::kNone && info[kept].ok() &&
        (info[kept].kind == packet::FrameKind::kArp ||
         (info[kept].is_ip() && info[kept].l4_protocol == kProtoIcmpv6)) &&
        packet::ExtractNeighbor(
            {rte_pktmbuf_mtod(rx[i], const uint8_t*), rte_pktmbuf_data_len(rx[i])}, info[kept])) {
      ShareNeighborFrame(rx[i]);  // before HandleControl turns it into a reply in place
    }
    if (r.kind == Route::kClient) {
      r.hash = engine_->PrefetchClient(info[kept].dst(), info[kept].src());
    } else if (r.kind == Route::kPeer) {
      engine_->PrefetchPeer(r.tag);
    }
    route[kept] = r;
    mine[kept++] = rx[i];
  }
  if (dispatch) FlushDispatch();
  if (split != nullptr) split[0] = rte_rdtsc();
  for (uint16_t i = 0; i < kept; ++i) HandleFrame(mine[i], info[i], route[i], from_ring);
  if (split != nullptr) split[1] = rte_rdtsc();
}

void DpdkWorker::Parse(rte_mbuf* m, packet::FrameInfo& info) {
  if (m->nb_segs != 1) {  // jumbo chains: not for a TURN relay (HandleFrame counts it)
    std::construct_at(&info);
    return;
  }
  packet::ParseFrame({rte_pktmbuf_mtod(m, uint8_t*), rte_pktmbuf_data_len(m)}, info);
  if (info.ok() && info.is_ip() && info.l4_protocol == kProtoUdp &&
      info.dst_port != config_.listening_port) {
    const int f = FamilyIndex(info.dst_ip);
    if (has_relay_ip_[f]) __builtin_prefetch(&relays_[f][info.dst_port]);  // read by Classify
  }
}

DpdkWorker::Route DpdkWorker::Classify(const packet::FrameInfo& info, uint32_t* owner) {
  Route r;
  if (!info.ok() || !info.is_ip() || info.l4_protocol != kProtoUdp || !info.fast_path) return r;
  if (info.dst_port == config_.listening_port) {
    for (size_t i = 0; i < config_.listening_ips.size(); ++i) {
      if (config_.listening_ips[i] == info.dst_ip) {
        r.kind = Route::kClient;
        r.tag = static_cast<uint32_t>(i);
        if (owner != nullptr) *owner = ClientOwner(info);
        return r;
      }
    }
    return r;
  }
  const int f = FamilyIndex(info.dst_ip);
  if (!has_relay_ip_[f] || !(relay_ip_[f] == info.dst_ip)) return r;
  if (owner != nullptr) {
    const uint8_t o =
        fabric_->owners->owner_plus_one[f][info.dst_port].load(std::memory_order_acquire);
    if (o != 0 && o - 1u != index_) {
      *owner = o - 1u;
      return r;
    }
  }
  if (const RelayEntry& e = relays_[f][info.dst_port]; e.tag_plus_one != 0) {
    r.kind = Route::kPeer;
    r.tag = e.tag_plus_one - 1;
  }
  return r;
}

uint32_t DpdkWorker::ClientOwner(const packet::FrameInfo& info) const {
  // Every packet of one client 5-tuple (Allocate, Refresh, ChannelData ...) must reach the same
  // worker: a fixed mix of the client's address and port and the server address.
  uint64_t h = info.src_ip.word(0) * 0x9E3779B97F4A7C15ull;
  h ^= info.src_ip.word(1) + 0x632BE59BD9B4E019ull + (h << 6) + (h >> 2);
  h ^= ((uint64_t{info.src_port} << 48) ^ info.dst_ip.word(0) ^ info.dst_ip.word(1)) *
       0xC2B2AE3D27D4EB4Full;
  h ^= h >> 31;
  h *= 0xBF58476D1CE4E5B9ull;
  h ^= h >> 29;
  return static_cast<uint32_t>(h % fabric_->workers);
}

void DpdkWorker::Stage(uint32_t owner, rte_mbuf* m) {
  Staged& s = staged_[owner];
  s.frames[s.n++] = m;  // at most one burst per HandleBurst, flushed at its end
}

void DpdkWorker::FlushDispatch() {
  for (uint32_t w = 0; w < staged_.size(); ++w) {
    Staged& s = staged_[w];
    if (s.n == 0) continue;
    const unsigned sent = rte_ring_mp_enqueue_burst(
        fabric_->rx[w], reinterpret_cast<void* const*>(s.frames), s.n, nullptr);
    counters_.dispatched += sent;
    for (uint16_t i = sent; i < s.n; ++i) {
      ++counters_.dispatch_drops;
      rte_pktmbuf_free(s.frames[i]);
    }
    s.n = 0;
  }
}

void DpdkWorker::ShareNeighborFrame(rte_mbuf* m) {
  for (uint32_t w = 0; w < fabric_->workers; ++w) {
    if (w == index_) continue;
    rte_mbuf* copy = rte_pktmbuf_copy(m, pool_, 0, UINT32_MAX);
    if (copy == nullptr) {
      ++counters_.dispatch_drops;
      continue;
    }
    if (rte_ring_mp_enqueue(fabric_->rx[w], copy) != 0) {
      ++counters_.dispatch_drops;
      rte_pktmbuf_free(copy);
      continue;
    }
    ++counters_.dispatched;
  }
}

bool DpdkWorker::RelayOwns(const packet::FrameInfo& info) const {
  if (!info.is_ip() || !packet::IsOurAddress(ours_, info.dst_ip)) return false;
  // Fragments and IPv6 extension headers are not reassembled or walked here; the kernel has no
  // socket for the relay's ports either (but for its own relays: their peers' fragments are
  // lost), so it would only answer "port unreachable".
  if (info.fragment || info.ipv6_extension_headers) return true;
  if (info.l4_protocol != kProtoUdp) return false;
  if (info.dst_port == config_.listening_port) return true;
  if (info.dst_port < config_.min_port || info.dst_port > config_.max_port) return false;
  // A relay port: the kernel's only while a stream host's relay socket holds it.
  return fabric_->kernel_relays == nullptr ||
         fabric_->kernel_relays->open[FamilyIndex(info.dst_ip)][info.dst_port].load(
             std::memory_order_relaxed) == 0;
}

void DpdkWorker::NotForRelay(rte_mbuf* m, const packet::FrameInfo& info) {
  if (fabric_->kernel_port < 0 || RelayOwns(info)) {
    ++counters_.rx_exception;  // dropped: no exception path
    rte_pktmbuf_free(m);
    return;
  }
  if (index_ != 0) {  // worker 0 serves the kernel's port
    if (rte_ring_mp_enqueue(fabric_->to_kernel, m) != 0) {
      ++counters_.rx_exception;
      rte_pktmbuf_free(m);
    }
    return;
  }
  if (n_to_kernel_ == kBurst) DrainToKernel();
  to_kernel_[n_to_kernel_++] = m;
}

uint16_t DpdkWorker::TakeNodeDatagrams(rte_mbuf** rx, uint16_t room) {
  void* taken[kBurst];
  const unsigned k = rte_ring_sc_dequeue_burst(fabric_->from_kernel_relays, taken,
                                               std::min<unsigned>(room, kBurst), nullptr);
  uint16_t n = 0;
  for (unsigned i = 0; i < k; ++i) {
    std::unique_ptr<NodeDatagram> d(static_cast<NodeDatagram*>(taken[i]));
    rte_mbuf* m = rte_pktmbuf_alloc(pool_);
    if (m == nullptr) {
      ++counters_.tx_no_slot;
      continue;
    }
    packet::UdpTxParams params;  // from us to us; software checksums (the receive path reads them)
    params.src_mac = mac_;
    params.dst_mac = mac_;
    params.src = d->src;
    params.dst = d->dst;
    uint8_t* base = static_cast<uint8_t*>(m->buf_addr);
    const size_t offset = m->data_off;
    std::optional<packet::Prepended> p;
    if (d->payload.size() <= rte_pktmbuf_tailroom(m)) {
      std::memcpy(base + offset, d->payload.data(), d->payload.size());
      p = packet::PrependUdpHeaders(std::span<uint8_t>(base, offset + d->payload.size()), offset,
                                    d->payload.size(), params);
    }
    if (!p) {
      ++counters_.tx_too_big;
      rte_pktmbuf_free(m);
      continue;
    }
    const size_t length = offset + d->payload.size() - p->frame_offset;
    m->data_off = static_cast<uint16_t>(p->frame_offset);
    m->data_len = static_cast<uint16_t>(length);
    m->pkt_len = static_cast<uint32_t>(length);
    rx[n++] = m;
  }
  return n;
}

void DpdkWorker::DrainToKernel() {
  if (n_to_kernel_ == 0) return;
  const uint16_t sent = rte_eth_tx_burst(static_cast<uint16_t>(fabric_->kernel_port), 0,
                                         to_kernel_, n_to_kernel_);
  counters_.to_kernel += sent;
  for (uint16_t i = sent; i < n_to_kernel_; ++i) {
    ++counters_.rx_exception;  // the kernel interface's queue is full: dropped
    rte_pktmbuf_free(to_kernel_[i]);
  }
  n_to_kernel_ = 0;
}

uint16_t DpdkWorker::PollKernel() {
  rte_mbuf* burst[kBurst];
  const uint16_t k =
      rte_eth_rx_burst(static_cast<uint16_t>(fabric_->kernel_port), 0, burst, kBurst);
  for (uint16_t i = 0; i < k; ++i) Transmit(burst[i]);  // as the kernel wrote it
  counters_.from_kernel += k;
  if (fabric_->to_kernel == nullptr) return k;
  // The other workers' frames for the kernel.
  const unsigned j = rte_ring_sc_dequeue_burst(fabric_->to_kernel, reinterpret_cast<void**>(burst),
                                               kBurst, nullptr);
  for (unsigned i = 0; i < j; ++i) {
    if (n_to_kernel_ == kBurst) DrainToKernel();
    to_kernel_[n_to_kernel_++] = burst[i];
  }
  return static_cast<uint16_t>(k + j);
}

void DpdkWorker::DrainPeerTx() {
  rte_mbuf* burst[kBurst];
  for (uint32_t w = 1; w < fabric_->workers; ++w) {
    const unsigned k = rte_ring_sc_dequeue_burst(
        fabric_->tx[w], reinterpret_cast<void**>(burst), kBurst, nullptr);
    if (k == 0) continue;
    const uint16_t sent = rte_eth_tx_burst(port_, queue_, burst, static_cast<uint16_t>(k));
    for (unsigned i = sent; i < k; ++i) {
      ++counters_.tx_err_again;  // the port's TX ring is full
      rte_pktmbuf_free(burst[i]);
    }
  }
}

void DpdkWorker::HandleFrame(rte_mbuf* m, const packet::FrameInfo& info, Route route,
                             bool from_ring) {
  if (from_ring && route.kind == Route::kNone && m->nb_segs == 1 && info.ok() &&
      (info.kind == packet::FrameKind::kArp ||
       (info.is_ip() && info.l4_protocol == kProtoIcmpv6))) {
    // A copy of an ARP / ND frame another worker received (and answered, and counted): learn
    // only. (Rings carry nothing else of these kinds: only UDP for the relay is dispatched.)
    Learn({rte_pktmbuf_mtod(m, const uint8_t*), rte_pktmbuf_data_len(m)}, info);
    rte_pktmbuf_free(m);
    return;
  }
  ++counters_.rx_packets;
  counters_.rx_bytes += rte_pktmbuf_pkt_len(m);
  if (m->nb_segs != 1) {
    ++counters_.rx_truncated;
    rte_pktmbuf_free(m);
    return;
  }
  std::span<uint8_t> frame(rte_pktmbuf_mtod(m, uint8_t*), rte_pktmbuf_data_len(m));
  if (!info.ok()) {
    ++counters_.rx_errors;
    rte_pktmbuf_free(m);
    return;
  }
  if (info.kind == packet::FrameKind::kArp ||
      (info.is_ip() && (info.l4_protocol == kProtoIcmp || info.l4_protocol == kProtoIcmpv6))) {
    if (from_ring) {  // never dispatched (see above): not answered
      Learn(frame, info);
      rte_pktmbuf_free(m);
      return;
    }
    if (HandleControl(m, frame, info)) return;
  }
  if (route.kind == Route::kNone) {
    NotForRelay(m, info);
    return;
  }
  // Replies to a client go back to the MAC its packet came from: learn on-link senders (never
  // a gateway's address from a data packet: one forged source would redirect all off-link
  // traffic; gateways are learned from ARP / ND only). A repeat within the same second is a
  // no-op in the table; learned_ skips it before OnLink and IsGateway are asked again.
  const uint64_t second = NowSeconds();
  SecondMemo& seen = learned_[MemoSlot(info.src_ip)];
  if (seen.second != second || !(seen.ip == info.src_ip) || !(seen.mac == info.src_mac)) {
    if (OnLink(info.src_ip) && !IsGateway(info.src_ip)) {
      LearnNeighbor(info.src_ip, info.src_mac, /*create=*/true);
    }
    seen = SecondMemo{info.src_ip, info.src_mac, second};
  }
  const std::span<const uint8_t> payload = frame.subspan(info.payload_offset, info.payload_length);
  // Room for this frame's descriptors and for the frame among the held ones.
  if (tx_->size() + 4 > turn::TxBatch::kCapacity || n_held_ == kBurst) FlushTx();
  const size_t first_desc = tx_->size();
  if (route.kind == Route::kClient) {
    engine_->OnClientPacket(static_cast<turn::SocketId>(route.tag), info.dst(), info.src(),
                            payload, *tx_, route.hash);
  } else {
    // An earlier frame of this burst may have closed the relay (Refresh with lifetime 0).
    const RelayEntry* e = RelayAt(info.dst_ip, info.dst_port);
    if (e->tag_plus_one != route.tag + 1) {
      ++counters_.rx_exception;
      rte_pktmbuf_free(m);
      return;
    }
    engine_->OnPeerPacket(route.tag, info.src(), payload, *tx_);
  }
  // The TxBatch may point into this frame: keep it until FlushTx has sent from it (and reused
  // it for the one descriptor that points into it, if it is only one).
  held_refs_[n_held_] = NoteBodySums(frame, info, payload, first_desc, n_held_);
  held_[n_held_++] = m;
}

uint8_t DpdkWorker::NoteBodySums(std::span<const uint8_t> frame, const packet::FrameInfo& info,
                                 std::span<const uint8_t> payload, size_t first_desc,
                                 uint16_t held) {
  std::optional<uint16_t> payload_sum;
  bool looked = false;
  uint8_t refs = 0;
  for (size_t i = first_desc; i < tx_->size(); ++i) {
    const turn::TxDesc& d = (*tx_)[i];
    BodySum& b = body_sums_[i];
    b = BodySum{};
    if (d.body_len == 0 || d.body < payload.data() ||
        d.body + d.body_len > payload.data() + payload.size()) {
      continue;  // no body, or not from this frame
    }
    b.frame = static_cast<int16_t>(held);
    ++refs;
    if (!looked) {
      payload_sum = packet::UdpPayloadSumFromChecksum(
          info.src_ip, info.dst_ip, frame.subspan(info.l4_offset, 8), info.l4_length);
      looked = true;
    }
    // Without a checksum (IPv4: zero), SendDesc sums the payload.
    if (!payload_sum) continue;
    b.sum = packet::SubspanSum(payload, *payload_sum, {d.body, d.body_len});
    b.valid = true;
  }
  return refs;
}

bool DpdkWorker::HandleControl(rte_mbuf* m, std::span<uint8_t> frame,
                               const packet::FrameInfo& info) {
  Learn(frame, info);
  // Replies are built in place: the output is the mbuf's own data room.
  std::span<uint8_t> out(rte_pktmbuf_mtod(m, uint8_t*),
                         rte_pktmbuf_data_len(m) + rte_pktmbuf_tailroom(m));
  packet::Reply r;
  if (info.kind == packet::FrameKind::kArp) {
    r = packet::BuildArpReply(frame, info, mac_, ours_, out);
  } else if (info.l4_protocol == kProtoIcmp) {
    r = packet::BuildIcmpEchoReply(frame, info, mac_, ours_, out);
  } else {
    r = packet::BuildNeighborAdvertisement(frame, info, mac_, ours_, out);
    if (r.verdict != packet::ReplyVerdict::kReply) {
      r = packet::BuildIcmpv6EchoReply(frame, info, mac_, ours_, out);
    }
  }
  if (r.verdict != packet::ReplyVerdict::kReply) {
    // Not a request for us (an ARP reply to the kernel's request, ICMP errors ...): for the
    // kernel when it has an interface, else dropped (and not counted: link chatter).
    if (fabric_->kernel_port >= 0) return false;
    rte_pktmbuf_free(m);
    return true;
  }
  m->data_len = static_cast<uint16_t>(r.length);
  m->pkt_len = static_cast<uint32_t>(r.length);
  Transmit(m);
  return true;
}

void DpdkWorker::Learn(std::span<const uint8_t> frame, const packet::FrameInfo& info) {
  std::optional<packet::NeighborObservation> seen = packet::ExtractNeighbor(frame, info);
  if (!seen) return;
  // A neighbour that asks for or announces one of our addresses is worth remembering; others
  // only refresh entries we already have.
  const bool about_us = packet::IsOurAddress(ours_, seen->target);
  LearnNeighbor(seen->ip, seen->mac, about_us);
}

void DpdkWorker::LearnNeighbor(const IpAddress& ip, const packet::MacAddress& mac, bool create) {
  const packet::NeighborTable::Learned l = neighbors_.Learn(ip, mac, NowSeconds(), create);
  if (l.result == packet::NeighborTable::LearnResult::kCreated ||
      l.result == packet::NeighborTable::LearnResult::kResolved ||
      l.result == packet::NeighborTable::LearnResult::kUpdated) {
    resolved_.fill(SecondMemo{});  // a next hop's MAC may have changed
    // So may this address's: a data frame from the MAC learned_ holds must be learned again
    // (after an ARP / ND frame announced another MAC, the frame's MAC wins, as in the table).
    SecondMemo& seen = learned_[MemoSlot(ip)];
    if (seen.ip == ip) seen = SecondMemo{};
  }
  // kCreated: the entry had died (no answer within incomplete_seconds) while frames waited.
  if (n_parked_ > 0 && (l.result == packet::NeighborTable::LearnResult::kResolved ||
                        l.result == packet::NeighborTable::LearnResult::kCreated)) {
    ReleaseParked(/*expire=*/false);
  }
}

void DpdkWorker::Park(const IpAddress& via, rte_mbuf* m) {
  if (n_parked_ == kMaxParked) {  // not expected: ResolveNextHop says kPark only with room
    ++counters_.tx_neighbor_pending;
    rte_pktmbuf_free(m);
    return;
  }
  parked_[n_parked_++] = ParkedFrame{via, m, NowSeconds()};
  ++counters_.tx_neighbor_parked;
}

void DpdkWorker::ReleaseParked(bool expire) {
  const uint64_t now = NowSeconds();
  const uint64_t give_up = neighbors_.options().incomplete_seconds;
  size_t kept = 0;
  for (size_t i = 0; i < n_parked_; ++i) {  // in order: a stream's frames stay in sequence
    ParkedFrame& p = parked_[i];
    if (const std::optional<packet::MacAddress> mac = neighbors_.Lookup(p.via, now)) {
      std::memcpy(rte_pktmbuf_mtod(p.m, uint8_t*), mac->bytes.data(), mac->bytes.size());
      Transmit(p.m);
    } else if (expire && now - p.since_s >= give_up) {
      ++counters_.tx_neighbor_pending;  // no answer from the next hop
      rte_pktmbuf_free(p.m);
    } else {
      parked_[kept++] = p;
    }
  }
  n_parked_ = kept;
}

bool DpdkWorker::OnLink(const IpAddress& ip) const {
  for (const InterfaceAddress& a : config_.dpdk_addresses) {
    if (a.OnLink(ip) && !(a.ip == ip)) return true;
  }
  return false;
}

bool DpdkWorker::IsGateway(const IpAddress& ip) const {
  return std::find(config_.dpdk_gateways.begin(), config_.dpdk_gateways.end(), ip) !=
         config_.dpdk_gateways.end();
}

DpdkWorker::NextHop DpdkWorker::ResolveNextHop(const IpAddress& dst) {
  NextHop hop;
  const uint64_t second = NowSeconds();
  SecondMemo& memo = resolved_[MemoSlot(dst)];
  if (memo.second == second && memo.ip == dst) {
    hop.kind = NextHop::kSend;
    hop.mac = memo.mac;
    return hop;
  }
  IpAddress next = dst;
  if (!OnLink(dst)) {
    bool found = false;
    for (const IpAddress& gw : config_.dpdk_gateways) {
      if (gw.family == dst.family) {
        next = gw;
        found = true;
        break;
      }
    }
    if (!found) {
      ++counters_.tx_err_unreachable;
      return hop;
    }
  }
  // With the parking lot full a frame that would wait is dropped, but the table still asks for
  // requests: a new next hop is resolved and a stale one probed even while other, unanswered
  // next hops fill the lot (a client can aim its permitted peers at on-link addresses nobody
  // answers for).
  const packet::NeighborTable::Resolution r =
      neighbors_.Resolve(next, second, /*can_queue=*/n_parked_ < kMaxParked);
  if (r.send_request) {
    SendNeighborRequest(next, r.disposition == packet::NeighborTable::Disposition::kSend
                                  ? std::optional<packet::MacAddress>(r.mac)
                                  : std::nullopt);
  }
  switch (r.disposition) {
    case packet::NeighborTable::Disposition::kSend:
      hop.kind = NextHop::kSend;
      hop.mac = r.mac;
      if (!r.send_request) memo = SecondMemo{dst, r.mac, second};
      break;
    case packet::NeighborTable::Disposition::kQueue:
      hop.kind = NextHop::kPark;
      hop.via = next;
      break;
    case packet::NeighborTable::Disposition::kDrop:
      ++counters_.tx_neighbor_pending;  // its parked frames are at their limit, or the lot is full
      break;
  }
  return hop;
}

void DpdkWorker::SendNeighborRequest(const IpAddress& target,
                                     std::optional<packet::MacAddress> unicast) {
  const IpAddress* source = nullptr;
  for (const InterfaceAddress& a : config_.dpdk_addresses) {
    if (a.ip.family == target.family && (source == nullptr || a.OnLink(target))) {
      source = &a.ip;
    }
  }
  if (source == nullptr) return;
  rte_mbuf* m = rte_pktmbuf_alloc(pool_);
  if (m == nullptr) {
    ++counters_.tx_no_slot;
    return;
  }
  std::span<uint8_t> out(rte_pktmbuf_mtod(m, uint8_t*), rte_pktmbuf_tailroom(m));
  const size_t len = target.is_v4()
                         ? packet::BuildArpRequest(mac_, *source, target, unicast, std::nullopt, out)
                         : packet::BuildNeighborSolicitation(mac_, *source, target, unicast,
                                                             std::nullopt, out);
  if (len == 0) {
    rte_pktmbuf_free(m);
    return;
  }
  m->data_len = static_cast<uint16_t>(len);
  m->pkt_len = static_cast<uint32_t>(len);
  Transmit(m);
}

void DpdkWorker::FlushTx() {
  for (size_t i = 0; i < tx_->size(); ++i) {
    SendDesc((*tx_)[i], body_sums_[i]);
    body_sums_[i] = BodySum{};
  }
  tx_->Clear();
  // Everything the batch pointed into has been sent (copied, or the frame itself reused).
  for (uint16_t i = 0; i < n_held_; ++i) {
    if (held_[i] != nullptr) rte_pktmbuf_free(held_[i]);
  }
  n_held_ = 0;
}

rte_mbuf* DpdkWorker::ReuseReceived(const turn::TxDesc& d, BodySum body_sum,
                                    size_t* payload_offset) {
  if (body_sum.frame < 0 || held_refs_[body_sum.frame] != 1) return nullptr;
  rte_mbuf* m = held_[body_sum.frame];
  // A direct mbuf of one segment that nothing else references (a capture copies, never
  // references) can be rewritten.
  if (m == nullptr || !RTE_MBUF_DIRECT(m) || rte_mbuf_refcnt_read(m) != 1 || m->nb_segs != 1) {
    return nullptr;
  }
  uint8_t* base = static_cast<uint8_t*>(m->buf_addr);
  const size_t body = static_cast<size_t>(d.body - base);
  // Room for the largest headers (Ethernet + VLAN + IPv6 + UDP) and the head before the body,
  // and for the padding after it.
  constexpr size_t kMaxHeaders = 14 + 4 + 40 + 8;
  if (body < d.head_len + kMaxHeaders || body + d.body_len + d.tail_pad > m->buf_len) {
    return nullptr;
  }
  held_[body_sum.frame] = nullptr;  // FlushTx does not free it: it is sent (or parked)
  *payload_offset = body - d.head_len;
  rte_pktmbuf_reset(m);  // offload flags, VLAN, packet type and lengths of the received frame
  return m;
}

void DpdkWorker::SendDesc(const turn::TxDesc& d, BodySum body_sum) {
  uint16_t src_port = 0;
  const IpAddress* src_ip = SourceOf(d.socket, &src_port);
  if (src_ip == nullptr || src_ip->family != d.dst.ip.family) {
    ++counters_.tx_stale_socket;
    return;
  }
  // To one of our own addresses (a relay talking to another relay of this node, as two
  // relay-only browsers do): hairpin back into the receive path instead of onto the wire.
  const bool hairpin = packet::IsOurAddress(ours_, d.dst.ip);
  const size_t size = d.size();
  size_t payload_offset = 0;
  rte_mbuf* m = ReuseReceived(d, body_sum, &payload_offset);
  if (m == nullptr) {
    m = rte_pktmbuf_alloc(pool_);
    if (m == nullptr) {
      ++counters_.tx_no_slot;
      return;
    }
    if (size > rte_pktmbuf_tailroom(m)) {
      ++counters_.tx_too_big;
      rte_pktmbuf_free(m);
      return;
    }
    // Payload at the start of the data room, headers prepended into the headroom before it.
    payload_offset = m->data_off;
    if (d.body_len > 0) {
      std::memcpy(static_cast<uint8_t*>(m->buf_addr) + payload_offset + d.head_len, d.body,
                  d.body_len);
    }
  }
  // Reused or not, the body is in place: the head goes before it, the padding after it.
  uint8_t* base = static_cast<uint8_t*>(m->buf_addr);
  uint8_t* payload = base + payload_offset;
  std::memcpy(payload, d.head, d.head_len);
  if (d.tail_pad > 0) std::memset(payload + d.head_len + d.body_len, 0, d.tail_pad);
  packet::UdpTxParams params;
  params.src_mac = mac_;
  // Hairpin: to ourselves. Otherwise written below, once the frame exists, from the next hop
  // (zero while the frame is parked).
  params.dst_mac = hairpin ? mac_ : packet::MacAddress{};
  params.src.ip = *src_ip;
  params.src.port = src_port;
  params.dst = d.dst;
  if ((d.socket & kRelayBit) != 0) {
    params.dont_fragment = relays_[(d.socket >> 16) & 1][d.socket & 0xFFFF].dont_fragment;
  }
  // Used only without DF (RFC 6864); the workers share the source address, so each takes every
  // workers-th value from its own offset and no two send the same id at once.
  ipv4_id_ = static_cast<uint16_t>(ipv4_id_ + fabric_->workers);
  params.ipv4_id = ipv4_id_;
  // A hairpinned frame never reaches the port: its checksums are written here, since the
  // receive path derives relayed bodies' sums from them.
  if (offload_.udp && !hairpin) {
    params.udp_checksum = packet::UdpChecksumMode::kOffload;
    params.ipv4_checksum_offload = offload_.ipv4;
  } else if (body_sum.valid) {
    // The payload is head + body + zero padding; the body's sum came from the received
    // datagram's checksum, so only the engine's few head bytes are summed here.
    const uint16_t head = packet::Fold(packet::Sum16({d.head, d.head_len}));
    const uint16_t body = d.head_len % 2 != 0 ? packet::Swap16(body_sum.sum) : body_sum.sum;
    params.udp_checksum = packet::UdpChecksumMode::kPayloadSum;
    params.payload_sum = packet::Fold(uint32_t{head} + body);
  }
  // No fragmentation here yet: a datagram that would not fit the link is dropped and counted
  // (the kernel backend would fragment it).
  if (size + packet::UdpHeadersSize(params) - kEthernetHeader > kMaxIpPacket) {
    ++counters_.tx_too_big;
    rte_pktmbuf_free(m);
    return;
  }
  const std::optional<packet::Prepended> p = packet::PrependUdpHeaders(
      std::span<uint8_t>(base, payload_offset + size), payload_offset, size, params);
  if (!p) {
    ++counters_.tx_too_big;
    rte_pktmbuf_free(m);
    return;
  }
  if (params.udp_checksum == packet::UdpChecksumMode::kOffload) {
    m->l2_len = p->l2_length;
    m->l3_len = p->l3_length;
    m->ol_flags |= RTE_MBUF_F_TX_UDP_CKSUM;
    if (d.dst.ip.is_v4()) {
      m->ol_flags |= RTE_MBUF_F_TX_IPV4 | (offload_.ipv4 ? RTE_MBUF_F_TX_IP_CKSUM : 0);
    } else {
      m->ol_flags |= RTE_MBUF_F_TX_IPV6;
    }
  }
  const size_t frame_len = payload_offset + size - p->frame_offset;
  m->data_off = static_cast<uint16_t>(p->frame_offset);
  m->data_len = static_cast<uint16_t>(frame_len);
  m->pkt_len = static_cast<uint32_t>(frame_len);
  if (hairpin) {
    if (n_hairpin_ == kBurst) {
      ++counters_.tx_no_slot;
      rte_pktmbuf_free(m);
      return;
    }
    hairpin_[n_hairpin_++] = m;  // received on the next loop iteration
    ++counters_.tx_packets;
    counters_.tx_bytes += frame_len;
    return;
  }
  // The next hop last: the neighbour table counts a frame it tells us to park, so ask only for
  // a frame that exists (and send no ARP request for one that was never going to leave).
  const NextHop hop = ResolveNextHop(d.dst.ip);
  switch (hop.kind) {
    case NextHop::kSend:
      std::memcpy(rte_pktmbuf_mtod(m, uint8_t*), hop.mac.bytes.data(), hop.mac.bytes.size());
      Transmit(m);
      break;
    case NextHop::kPark:
      Park(hop.via, m);
      break;
    case NextHop::kNone:
      rte_pktmbuf_free(m);
      break;
  }
}

void DpdkWorker::Transmit(rte_mbuf* m) {
  if (n_tx_ == kBurst) DrainTx();
  tx_burst_[n_tx_++] = m;
}

void DpdkWorker::DrainTx() {
  if (n_tx_ == 0) return;
  // A worker that polls the port transmits on its queue; the others hand their frames to
  // worker 0.
  uint16_t sent = 0;
  if (polls_port_) {
    sent = rte_eth_tx_burst(port_, queue_, tx_burst_, n_tx_);
  } else {
    sent = static_cast<uint16_t>(rte_ring_sp_enqueue_burst(
        fabric_->tx[index_], reinterpret_cast<void* const*>(tx_burst_), n_tx_, nullptr));
  }
  for (uint16_t i = 0; i < sent; ++i) {
    ++counters_.tx_packets;
    counters_.tx_bytes += rte_pktmbuf_pkt_len(tx_burst_[i]);
  }
  for (uint16_t i = sent; i < n_tx_; ++i) {
    ++counters_.tx_err_again;  // TX ring (the port's or worker 0's) full
    rte_pktmbuf_free(tx_burst_[i]);
  }
  n_tx_ = 0;
}

}  // namespace turnpike::dataplane
