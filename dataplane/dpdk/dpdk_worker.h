// One DPDK worker: an lcore that polls one RX queue, runs a turn::Engine, answers ARP, ICMP echo
// and neighbour discovery for the node's addresses, and transmits on one TX queue. Relay
// "sockets" are entries of a port table (a relay port belongs to the worker that opened it).
#pragma once

#include <rte_mbuf.h>
#include <rte_mempool.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "dataplane/backend.h"
#include "dataplane/packet/frame.h"
#include "dataplane/packet/neighbor_table.h"
#include "dataplane/packet/wire.h"
#include "turn/engine.h"

namespace turnpike::dataplane {

class DpdkWorker final : public turn::RelayTransport {
 public:
  DpdkWorker(uint32_t index, const ServerConfig& config, turn::NodeState* node, uint16_t port,
             uint16_t queue, rte_mempool* pool, const packet::MacAddress& mac,
             const std::atomic<bool>* stop);
  ~DpdkWorker() override;

  // The lcore body: polls until *stop, then closes every allocation.
  void Run();
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
  struct RelayEntry {
    uint32_t tag_plus_one = 0;  // 0: closed
    bool dont_fragment = false;
  };

  void HandleFrame(rte_mbuf* m);
  // ARP, ICMP echo, ND: answers in place (true: `m` was queued for TX or freed).
  bool HandleControl(rte_mbuf* m, std::span<uint8_t> frame, const packet::FrameInfo& info);
  void Learn(std::span<const uint8_t> frame, const packet::FrameInfo& info);
  void FlushTx();  // engine descriptors -> frames -> TX queue
  void SendDesc(const turn::TxDesc& d);
  void Transmit(rte_mbuf* m);
  void DrainTx();
  // The next hop's MAC for `dst`, or nullopt (an ARP request / NS went out, the packet is
  // dropped and counted: no queueing yet).
  std::optional<packet::MacAddress> NextHopMac(const IpAddress& dst);
  void SendNeighborRequest(const IpAddress& target, std::optional<packet::MacAddress> unicast);
  std::optional<SocketAddress> SourceOf(turn::SocketId socket) const;
  RelayEntry* RelayAt(const IpAddress& ip, uint16_t port);
  uint64_t NowSeconds() const { return now_ns_ / 1'000'000'000u; }

  const uint32_t index_;
  const ServerConfig& config_;
  const uint16_t port_;
  const uint16_t queue_;
  rte_mempool* const pool_;
  const packet::MacAddress mac_;
  const std::atomic<bool>* const stop_;
  std::vector<IpAddress> ours_;  // every dpdk-address
  uint64_t now_ns_ = 0;
  uint16_t ipv4_id_ = 0;

  std::unique_ptr<turn::Engine> engine_;
  std::unique_ptr<turn::TxBatch> tx_;
  packet::NeighborTable neighbors_;
  // Relay port tables: [0] for the IPv4 relay address, [1] for the IPv6 one (one each).
  std::vector<RelayEntry> relays_[2];
  IpAddress relay_ip_[2];
  bool has_relay_ip_[2] = {false, false};

  rte_mbuf* held_[kBurst];  // received mbufs the TxBatch may point into
  uint16_t n_held_ = 0;
  rte_mbuf* tx_burst_[kBurst];
  uint16_t n_tx_ = 0;
  rte_mbuf* hairpin_[kBurst];  // sent to our own addresses: looped into the next RX burst
  uint16_t n_hairpin_ = 0;

  CommandQueue commands_;
  EventBuffer events_;
  IoCounters counters_;
};

}  // namespace turnpike::dataplane
