// The DPDK data plane (backend=dpdk): the TURN engine on DPDK lcores, packets straight from the
// port's queues, no kernel in the path.
//
//   rte_eth_rx_burst --> packet::ParseFrame --> ARP / ICMP echo / ND answered in place
//                                          \--> UDP to listening-port --> Engine::OnClientPacket
//                                          \--> UDP to an open relay port --> Engine::OnPeerPacket
//                                          \--> anything else: to the kernel through the
//                                               dpdk-kernel-interface TAP port, or dropped and
//                                               counted (rx_exception)
//   TxBatch --> the received mbuf reused (or a new one): Ethernet/IP/UDP headers prepended in
//           its headroom --> next hop from the neighbour table (ARP / ND, or the gateway)
//           --> rte_eth_tx_burst
//
// One worker per non-main lcore: a queue pair each where the port has RSS (relay ports steered
// by rte_flow where it can), else worker 0 polls the one pair and hands frames to their owners
// in software (dpdk_worker.h).
//
// TURN over TCP and TLS: with dpdk-kernel-interface, a stream host (uring_backend.h) serves the
// connections from the node's kernel, which gets them through the exception path; the relays of
// their allocations are kernel sockets, reached the same way. It counts as the last worker.
// docs/dpdk.md says how to run it all and what is missing.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "dataplane/backend.h"
#include "dataplane/uring/uring_backend.h"

namespace turnpike::dataplane {

struct DpdkFabric;
class DpdkWorker;

class DpdkBackend final : public Backend {
 public:
  // Initialises the EAL with dpdk-args, configures and starts dpdk-port, and builds the worker.
  // Errors say what to do (no hugepages, no such port, too few lcores, bad EAL arguments).
  // The EAL can be initialised once per process.
  static absl::StatusOr<std::unique_ptr<DpdkBackend>> Create(const ServerConfig& config);
  ~DpdkBackend() override;
  DpdkBackend(const DpdkBackend&) = delete;
  DpdkBackend& operator=(const DpdkBackend&) = delete;

  std::string_view name() const override { return "dpdk"; }
  void Start() override;
  // With a stream host, Stop asks it alone and Join stops the DPDK workers once it has exited
  // (they carry its kernel's last segments through the exception path).
  void Stop() override;
  void Join() override;
  const ServerConfig& config() const override { return config_; }
  std::vector<SocketAddress> listening_addresses() const override;
  const std::vector<IpAddress>& relay_ips() const override { return config_.relay_ips; }
  turn::NodeState& node_state() override { return *node_; }
  size_t worker_count() const override { return workers_.size() + (streams_ ? 1 : 0); }
  const turn::EngineCounters& engine_counters(size_t worker) const override;
  const IoCounters& io_counters(size_t worker) const override;
  bool Post(size_t worker, WorkerCommand command) override;
  void SetEventCallback(WorkerEventCallback callback) override;
  uint16_t tls_listening_port() const override {
    return streams_ ? streams_->tls_listening_port() : 0;
  }
  bool tcp_enabled() const override { return streams_ && streams_->tcp_enabled(); }
  absl::Status ReloadTls(const ServerConfig& config) override;

 private:
  DpdkBackend() = default;

  ServerConfig config_;
  std::unique_ptr<turn::NodeState> node_;
  std::unique_ptr<DpdkFabric> fabric_;  // the workers' rings and relay-port owners
  std::vector<std::unique_ptr<DpdkWorker>> workers_;
  // TURN over TCP / TLS from the kernel side (null without dpdk-kernel-interface, with both
  // off, or when it could not start and TLS was not asked for); worker workers_.size(). Uses
  // node_.
  std::unique_ptr<UringBackend> streams_;
  std::vector<unsigned> lcores_;
  uint16_t port_ = 0;
  int kernel_port_ = -1;  // dpdk-kernel-interface's TAP port
  bool port_started_ = false;
  size_t steering_rules_ = 0;  // rte_flow rules on the port (flushed before it closes)
  bool started_ = false;
  bool joined_ = false;
  std::atomic<bool> stop_{false};
  WorkerEventCallback event_callback_;
};

}  // namespace turnpike::dataplane
