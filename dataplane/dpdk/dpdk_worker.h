// One DPDK worker: an lcore that runs a turn::Engine over frames from the port. Relay "sockets"
// are entries of a port table (a relay port belongs to the worker that opened it).
//
// Ownership: every packet of one client 5-tuple belongs to the worker a fixed hash of the
// client's address and port and the server address picks (ClientOwner); a peer packet belongs
// to the worker that opened its relay port (RelayPortOwners). Both directions of an allocation
// are therefore handled on one core, whatever queue a frame arrived on.
//
// With one worker it polls the port's RX queue and transmits on its TX queue. With several:
//
// - Own queues (the port has a queue pair per worker, e.g. a NIC with RSS, net_tap, memif
//   with several rings): worker w polls RX queue w and transmits on TX queue w. Where the
//   hardware put a frame on another worker's queue, that worker hands it over:
//
//   port RX queue w --> worker w: parse; owner (as above) is w: handled here
//                   \--> another owner: its RX ring (many producers, one consumer)
//   worker w TX --> port TX queue w
//
// - One queue pair (ports without RSS or with one queue, or dpdk-queues=one): worker 0 polls
//   it and distributes every frame as above; worker w > 0 TX --> its TX ring (one producer,
//   one consumer) --> worker 0 --> port TX.
//
// ARP, ICMP echo and ND are answered by the worker that received them; a copy of every ARP or
// ND frame a neighbour table learns from goes to every other worker. A frame for one of our own
// addresses (relay to relay) is dispatched like a received one.
//
// With dpdk-kernel-interface, worker 0 hands every frame the data plane does not take (not for
// the relay, ARP / ND / ICMP it does not answer) to the kernel through a TAP port, and sends
// what the kernel writes there on the port unchanged (the exception path); other workers pass
// such frames to worker 0 through one ring. Without it they are dropped and counted.
//
// No locks on the path: rte_ring (lock-free), and the owner table is atomics written at
// allocation time.
#pragma once

#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_ring.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "dataplane/backend.h"
#include "dataplane/packet/frame.h"
#include "dataplane/packet/neighbor_table.h"
#include "dataplane/packet/wire.h"
#include "turn/engine.h"

namespace turnpike::dataplane {

// The port's TX checksum offloads the workers use.
struct ChecksumOffload {
  bool udp = false;   // RTE_ETH_TX_OFFLOAD_UDP_CKSUM
  bool ipv4 = false;  // RTE_ETH_TX_OFFLOAD_IPV4_CKSUM
};

// Which worker owns each relay port, per family (0: IPv4, 1: IPv6): the owner's index + 1, or 0.
// Written by the owner when it opens or closes a relay; read by worker 0 to dispatch peer
// packets. A stale read sends a packet to a worker that no longer has the relay, which drops it
// (the owner's own table is authoritative).
struct RelayPortOwners {
  std::array<std::atomic<uint8_t>, 65536> owner_plus_one[2] = {};
};

// The relay ports the node's kernel holds sockets for (a stream host's: TURN over TCP / TLS
// behind the exception path), per family, 1 while open. Written by the stream host's thread;
// read by the workers, whose UDP for these ports goes to the kernel.
struct KernelRelayPorts {
  std::array<std::atomic<uint8_t>, 65536> open[2] = {};
};

// A datagram from one of the kernel's relays (the stream host's) to the data plane's own
// address, on its way to worker 0 (DpdkFabric::from_kernel_relays), which builds the frame. Plain
// memory: the stream host's thread is not an lcore, so it leaves the mbuf pool alone.
struct NodeDatagram {
  SocketAddress src;
  SocketAddress dst;
  std::vector<uint8_t> payload;
};

// What the workers of one port share.
struct DpdkFabric {
  static constexpr uint32_t kMaxWorkers = 64;
  static constexpr unsigned kRingSize = 1024;
  uint32_t workers = 1;
  // Worker w polls RX queue w and transmits on TX queue w (several workers only); otherwise
  // worker 0 alone uses queue 0.
  bool own_queues = false;
  std::vector<rte_ring*> rx;  // per worker: frames dispatched to it (empty with one worker)
  // Per worker: frames for the port, sent by worker 0 ([0] unused; one queue pair only).
  std::vector<rte_ring*> tx;
  std::unique_ptr<RelayPortOwners> owners;  // null with one worker
  // dpdk-kernel-interface: the TAP port to the kernel (exception path), served by worker 0;
  // -1 without one.
  int kernel_port = -1;
  // Several workers: frames for the kernel from workers other than 0 (many producers).
  rte_ring* to_kernel = nullptr;
  // The kernel hosts relays too (TURN over TCP / TLS behind the exception path): UDP to those
  // ports goes to the kernel rather than being dropped. Null when it does not.
  std::unique_ptr<KernelRelayPorts> kernel_relays;
  // With kernel_relays: NodeDatagrams the kernel's relays send to the data plane's own address
  // (the stream host is the one producer), received by worker 0 as if from the port.
  rte_ring* from_kernel_relays = nullptr;
  // Engines of the node when more than the workers (a kernel-side stream host's too): each
  // engine's share of bps-capacity. 0: the workers'.
  uint32_t engines = 0;

  // With several workers, their rings (named `prefix`_rx_<w>, _tx_<w>, _kernel) and the owner
  // table.
  static absl::StatusOr<std::unique_ptr<DpdkFabric>> Create(uint32_t workers, bool own_queues,
                                                            std::string_view prefix, int socket);
  // Frees the rings and the frames still in them.
  ~DpdkFabric();
};

class DpdkWorker final : public turn::RelayTransport {
 public:
  // `fabric` outlives the worker, which polls `queue` of `port` if it is worker 0 or the
  // fabric gives each worker its own queue.
  DpdkWorker(uint32_t index, const ServerConfig& config, turn::NodeState* node,
             const DpdkFabric* fabric, uint16_t port, uint16_t queue, rte_mempool* pool,
             const packet::MacAddress& mac, ChecksumOffload offload,
             const std::atomic<bool>* stop);
  ~DpdkWorker() override;

  // The lcore body: Start, Poll until *stop, Finish.
  void Run();
  // The steps of Run, for a caller that drives the loop itself (perf/dpdk/worker_bench.cc):
  // Start reads the clock and logs the worker's role; Poll is one iteration of the loop (one
  // burst from each source, handled and sent, timers, commands, events); Finish closes every
  // allocation and sends what that produced.
  void Start();
  void Poll();
  void Finish();
  void Post(WorkerCommand command) { commands_.Post(std::move(command)); }
  void SetEventCallback(const WorkerEventCallback* callback) { events_.SetCallback(callback); }
  const turn::EngineCounters& engine_counters() const { return engine_->counters(); }
  const IoCounters& counters() const { return counters_; }

  // turn::RelayTransport (allocation path, this worker's lcore).
  absl::StatusOr<turn::SocketId> OpenRelay(const SocketAddress& address, uint32_t tag) override;
  void CloseRelay(turn::SocketId socket) override;
  absl::Status SetDontFragment(turn::SocketId socket) override;

 private:
  static constexpr uint16_t kBurst = 32;
  // One port burst in this many is timed step by step (IoCounters::stage_*).
  static constexpr uint64_t kStageSample = 16;
  struct RelayEntry {
    uint32_t tag_plus_one = 0;  // 0: closed
    bool dont_fragment = false;
  };

  // Where a received frame goes: the engine's client path (tag: listening address index), its
  // peer path (tag: the relay's engine tag), or neither (ARP, ICMP, ND, or not for the relay).
  struct Route {
    enum Kind : uint8_t { kNone, kClient, kPeer } kind = kNone;
    uint32_t tag = 0;
    turn::Engine::TupleHash hash;  // kClient: the 5-tuple's hash (PrefetchClient)
  };

  // Frames from the port or our own hairpin may belong to another worker (several workers);
  // frames `from_ring` (our RX ring) are ours, and the ARP / ND frames among them are copies
  // to learn from.
  // With `split` set (a sampled burst), the TSC after classifying and after handling go in
  // split[0] and split[1].
  void HandleBurst(rte_mbuf* const* rx, uint16_t n, bool from_ring, uint64_t* split = nullptr);
  // With `owner` non-null, also the index of the worker that owns the frame (ours for
  // everything not relayed).
  // Parses a received frame into `info` (a default FrameInfo for a chained mbuf) and prefetches
  // the relay port entry Classify will read.
  void Parse(rte_mbuf* m, packet::FrameInfo& info);
  Route Classify(const packet::FrameInfo& info, uint32_t* owner);
  uint32_t ClientOwner(const packet::FrameInfo& info) const;
  // Queues `m` for worker `owner`'s RX ring (sent by FlushDispatch).
  void Stage(uint32_t owner, rte_mbuf* m);
  void FlushDispatch();
  // An ARP or ND frame this worker learns from: a copy to every other worker.
  void ShareNeighborFrame(rte_mbuf* m);
  void DrainPeerTx();  // worker 0: the other workers' TX rings onto the port
  void HandleFrame(rte_mbuf* m, const packet::FrameInfo& info, Route route, bool from_ring);
  // On the link of one of our addresses (and not that address itself).
  bool OnLink(const IpAddress& ip) const;
  bool IsGateway(const IpAddress& ip) const;
  // ARP, ICMP echo, ND: answers in place (true: `m` was queued for TX or freed; false: not
  // answered, for the exception path).
  bool HandleControl(rte_mbuf* m, std::span<uint8_t> frame, const packet::FrameInfo& info);
  // A frame the data plane does not take: to the kernel (exception path) or dropped. UDP to the
  // listening port or the relay port range (but for the kernel's own relays, kernel_relays),
  // and fragments or IPv6 extension headers for our addresses, are never the kernel's
  // (RelayOwns): dropped and counted.
  void NotForRelay(rte_mbuf* m, const packet::FrameInfo& info);
  bool RelayOwns(const packet::FrameInfo& info) const;
  // Worker 0: frames for up to `room` NodeDatagrams from the stream host, into `rx`.
  uint16_t TakeNodeDatagrams(rte_mbuf** rx, uint16_t room);
  void DrainToKernel();
  // Worker 0: what the kernel sent on its TAP interface out on the port, and the other
  // workers' frames for the kernel to it. Returns the number of frames moved.
  uint16_t PollKernel();
  void Learn(std::span<const uint8_t> frame, const packet::FrameInfo& info);
  // What is known of a TX descriptor's body when it lies in a received frame: the held_ index
  // of that frame (-1: not in one), and the body's folded sum when the received datagram's
  // checksum gave it.
  struct BodySum {
    bool valid = false;
    uint16_t sum = 0;
    int16_t frame = -1;
  };
  // After the engine handled a frame that will be held_[held]: marks the descriptors from
  // `first_desc` on whose body lies in this frame's payload (and their sums); returns how many.
  uint8_t NoteBodySums(std::span<const uint8_t> frame, const packet::FrameInfo& info,
                       std::span<const uint8_t> payload, size_t first_desc, uint16_t held);
  // The received frame a descriptor's body lies in, made into the frame that sends it when it
  // is the only descriptor in that frame and there is room for the head and the headers before
  // the body (the relay's usual case: ChannelData decapsulated or encapsulated without copying
  // the payload): then sets *payload_offset, where the payload (head + body + padding) starts
  // from the buffer's start. Otherwise returns nullptr and leaves it alone (the caller copies).
  rte_mbuf* ReuseReceived(const turn::TxDesc& d, BodySum body_sum, size_t* payload_offset);
  void FlushTx();  // engine descriptors -> frames -> TX queue
  void SendDesc(const turn::TxDesc& d, BodySum body_sum);
  void Transmit(rte_mbuf* m);
  void DrainTx();
  // Where a frame for `dst` goes next: send to `mac`, park it until ARP / ND answers for `via`
  // (a request went out), or nowhere (no route, or that neighbour's queue is full: counted).
  struct NextHop {
    enum Kind : uint8_t { kSend, kPark, kNone } kind = kNone;
    packet::MacAddress mac;
    IpAddress via;
  };
  NextHop ResolveNextHop(const IpAddress& dst);
  // Parked frames: held with a zero destination MAC until their next hop resolves (Learn),
  // dropped and counted after the neighbour table's incomplete_seconds. With kMaxParked of
  // them, a frame that would wait is dropped instead (the requests still go out).
  void Park(const IpAddress& via, rte_mbuf* m);
  void LearnNeighbor(const IpAddress& ip, const packet::MacAddress& mac, bool create);
  // Sends the parked frames whose next hop now has a MAC, drops the expired ones (`expire`).
  void ReleaseParked(bool expire);
  void SendNeighborRequest(const IpAddress& target, std::optional<packet::MacAddress> unicast);
  // The address a descriptor's socket sends from, and its port in *port; nullptr for a closed
  // relay or an unknown socket. (Not an optional<SocketAddress>: GCC assembled that on the
  // stack and read it back with a load wider than its stores, a stall on every packet.)
  const IpAddress* SourceOf(turn::SocketId socket, uint16_t* port) const;
  RelayEntry* RelayAt(const IpAddress& ip, uint16_t port);
  uint64_t NowSeconds() const { return now_ns_ / 1'000'000'000u; }
  uint64_t ClockNs(uint64_t tsc) const;  // CLOCK_MONOTONIC from a TSC reading (see Start)

  const uint32_t index_;
  const ServerConfig& config_;
  const DpdkFabric* const fabric_;
  const bool polls_port_;  // polls the port and transmits on it (worker 0, or own queues)
  const uint16_t port_;
  const uint16_t queue_;
  rte_mempool* const pool_;
  const packet::MacAddress mac_;
  const ChecksumOffload offload_;
  const std::atomic<bool>* const stop_;
  std::vector<IpAddress> ours_;  // every dpdk-address
  uint16_t ipv4_id_;  // the last IPv4 id sent (see SendDesc)
  uint64_t now_ns_ = 0;
  uint64_t base_tsc_ = 0;  // the clock's anchor (Start)
  uint64_t base_ns_ = 0;
  uint64_t ns_per_cycle_q32_ = 0;  // 32.32 fixed point
  uint64_t next_tick_ns_ = 0;

  std::unique_ptr<turn::Engine> engine_;
  std::unique_ptr<turn::TxBatch> tx_;
  packet::NeighborTable neighbors_;
  // Relay port tables: [0] for the IPv4 relay address, [1] for the IPv6 one (one each).
  std::vector<RelayEntry> relays_[2];
  IpAddress relay_ip_[2];
  bool has_relay_ip_[2] = {false, false};

  BodySum body_sums_[turn::TxBatch::kCapacity];  // per descriptor of tx_
  rte_mbuf* held_[kBurst];  // received mbufs the TxBatch may point into (nullptr: reused)
  uint8_t held_refs_[kBurst];  // how many descriptors point into each
  uint16_t n_held_ = 0;
  rte_mbuf* tx_burst_[kBurst];
  uint16_t n_tx_ = 0;
  static constexpr size_t kMaxParked = 256;
  struct ParkedFrame {
    IpAddress via;
    rte_mbuf* m;
    uint64_t since_s;
  };
  ParkedFrame parked_[kMaxParked];  // in arrival order
  size_t n_parked_ = 0;
  rte_mbuf* to_kernel_[kBurst];  // exception path, sent by DrainToKernel
  uint16_t n_to_kernel_ = 0;
  rte_mbuf* hairpin_[kBurst];  // sent to our own addresses: looped into the next RX burst
  uint16_t n_hairpin_ = 0;
  struct Staged {
    rte_mbuf* frames[kBurst];
    uint16_t n = 0;
  };
  std::vector<Staged> staged_;  // per worker: frames to dispatch (several workers only)

  // What the neighbour path answered during the current second (NowSeconds), in front of
  // OnLink, the gateway choice and the neighbour table: together about 40 cycles of a relayed
  // packet's ~290 in perf/dpdk/worker_bench.cc, for an answer that rarely changes.
  // - learned_: a source address and MAC HandleFrame already passed to the table (or found not
  //   on-link, or a gateway) this second; a repeat is skipped, as the table would ignore it.
  //   (One the table refused for want of room is tried again the next second, not sooner.)
  //   Every Learn that changes the table clears the address's slot.
  // - resolved_: a destination whose next hop ResolveNextHop found REACHABLE or STALE without a
  //   request due this second, and that next hop's MAC. Every Learn that reaches the table and
  //   may change an answer (kCreated, kResolved, kUpdated) and every Sweep clear it.
  // Direct-mapped by the address's last byte; the relay talks to few next hops.
  struct SecondMemo {
    IpAddress ip;
    packet::MacAddress mac;
    uint64_t second = ~uint64_t{0};  // ~0: empty
  };
  static constexpr size_t kMemoSlots = 16;
  static size_t MemoSlot(const IpAddress& ip) {
    return ip.bytes[ip.is_v4() ? 3 : 15] % kMemoSlots;
  }
  std::array<SecondMemo, kMemoSlots> learned_{};
  std::array<SecondMemo, kMemoSlots> resolved_{};

  CommandQueue commands_;
  EventBuffer events_;
  IoCounters counters_;
};

}  // namespace turnpike::dataplane
