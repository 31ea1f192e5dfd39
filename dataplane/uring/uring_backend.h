// The kernel-socket data plane: UDP sockets driven by io_uring (liburing), one worker thread per
// core, each with its own ring, TURN engine, listening sockets and relay sockets.
//
//   client --UDP--> listener socket (SO_REUSEPORT group, one socket per worker per listening IP)
//        multishot recvmsg + provided-buffer ring --> Engine::OnClientPacket --> TxBatch
//   peer ----UDP--> relay socket (opened by the worker's engine through RelayTransport)
//        multishot recvmsg + provided-buffer ring --> Engine::OnPeerPacket ---> TxBatch
//   TxBatch --> copy into a preallocated TX slot --> IORING_OP_SENDMSG, one submit per burst
//
//   client --TCP/TLS--> stream listener (SO_REUSEPORT group per worker) --> multishot accept
//        multishot recv + provided-buffer ring --> [TLS: OpenSSL memory BIOs] --> StreamFramer
//        --> Engine::OnClientPacket, one whole message at a time --> TxBatch --> the
//        connection's send buffer --> IORING_OP_SEND (one in flight per connection)
//
// The kernel's SO_REUSEPORT hash keeps a client 5-tuple (or TCP connection) on one worker, and
// that worker opens the allocation's relay socket, so both directions of an allocation stay on
// one thread. Only turn::NodeState (ports, quotas, connection caps) is shared, and only on the
// allocation and accept paths.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "turn/config.h"
#include "turn/counters.h"
#include "turn/engine.h"
#include "turn/net/socket_address.h"
#include "dataplane/backend.h"
#include "dataplane/tls/tls_session.h"
#include "turn/node_state.h"

namespace turnpike::dataplane {

// Sizes per worker. The defaults cost about 16 MiB of memory per worker (8 MiB of receive
// buffers, 8 MiB of TX slots).
struct UringLimits {
  uint32_t sq_entries = 4096;      // submission queue; the CQ is four times larger
  uint32_t rx_buffers = 4096;      // provided-buffer ring entries (power of two)
  uint32_t rx_buffer_size = 2048;  // bytes per receive buffer, including the recvmsg header
  uint32_t tx_slots = 4096;        // datagrams in flight on the TX side
  uint32_t tx_slot_size = 2048;    // largest datagram we send
  uint32_t cqe_burst = 256;        // CQEs handled per loop iteration
  uint32_t tick_ms = 100;          // engine timer period
};

using UringCounters = IoCounters;

// Told of a stream host's relay socket bound (open) or about to close.
using RelayObserver = std::function<void(const SocketAddress& relay, bool open)>;
// What became of a datagram offered to a NodeSender.
enum class NodeSend : uint8_t {
  kNotTaken,  // the kernel's to deliver (its own socket holds the destination)
  kQueued,    // on its way to the other backend
  kDropped,   // the other backend's queue was full
};
// Takes a datagram a relay socket of the stream host would send to one of the node's own
// addresses, which the kernel would deliver locally.
using NodeSender = std::function<NodeSend(const SocketAddress& src, const SocketAddress& dst,
                                          std::span<const uint8_t> payload)>;

// TURN over TCP and TLS for a node whose UDP another backend serves: backend=dpdk with
// dpdk-kernel-interface, where the node's kernel holds the data plane's addresses on the TAP
// interface. One worker with the stream listeners only; the relays of its allocations are kernel
// sockets too, reached through that backend's exception path. Sockets are bound with IP_FREEBIND:
// the addresses reach the TAP interface only after start-up.
struct StreamHostOptions {
  turn::NodeState* node = nullptr;  // the other backend's: one pool of relay ports and quotas
  uint32_t worker_index = 0;        // after the other backend's workers (allocation ids, events)
  uint32_t worker_count = 1;  // the node's workers, this one included: bps-capacity share and
                              // the allocation table's size (PerWorkerAllocations)
  // Told of every relay socket bound (true) and closed (false), on the stream host's thread:
  // the other backend sends UDP for those ports to the kernel.
  RelayObserver on_relay;
  // Relay datagrams to the node's own listening or relay addresses go here first, on the
  // stream host's thread: the other backend's relays are not the kernel's sockets.
  NodeSender to_node;
};

class UringWorker;

class UringBackend final : public Backend {
 public:
  // Resolves addresses, checks limits, creates every ring, socket and engine, and binds the
  // listening sockets, so that start-up problems come back here as one Status (port in use, no
  // permission, address not on this host, io_uring refused) before any thread starts.
  //
  // listening_port 0 asks the kernel for a free port (tests); listening_port() reports it.
  // Empty listening_ips means every address of this host (getifaddrs), never a wildcard, so the
  // engine always knows the local address of a packet. Empty relay_ips means the listening IPs
  // (loopback only when nothing else of that family exists).
  static absl::StatusOr<std::unique_ptr<UringBackend>> Create(const ServerConfig& config,
                                                              const UringLimits& limits = {});
  // The stream host above. `config` gives the listening and relay addresses (none picked here)
  // and the listening port. Null when the configuration turns both TCP and TLS off.
  static absl::StatusOr<std::unique_ptr<UringBackend>> CreateStreamHost(
      const ServerConfig& config, const StreamHostOptions& options,
      const UringLimits& limits = {});
  ~UringBackend() override;  // stops and joins if still running
  UringBackend(const UringBackend&) = delete;
  UringBackend& operator=(const UringBackend&) = delete;

  std::string_view name() const override { return "uring"; }
  void Start() override;
  void Stop() override;
  void Join() override;

  // The configuration the workers run with: listening and relay IPs and port resolved.
  const ServerConfig& config() const override { return config_; }
  uint16_t listening_port() const { return config_.listening_port; }
  std::vector<SocketAddress> listening_addresses() const override;
  const std::vector<IpAddress>& relay_ips() const override { return config_.relay_ips; }
  turn::NodeState& node_state() override { return *node_; }

  size_t worker_count() const override { return workers_.size(); }
  const turn::EngineCounters& engine_counters(size_t worker) const override;
  const IoCounters& io_counters(size_t worker) const override;
  bool Post(size_t worker, WorkerCommand command) override;
  void SetEventCallback(WorkerEventCallback callback) override;

  // TLS: the port it listens on (0 when TLS is off) and a certificate reload (SIGHUP): new
  // connections use the new certificate, open ones keep theirs. An error keeps the old one.
  uint16_t tls_listening_port() const override {
    return tls_ != nullptr ? config_.tls_listening_port : 0;
  }
  bool tcp_enabled() const override { return !config_.no_tcp; }
  absl::Status ReloadTls(const ServerConfig& config) override;

 private:
  UringBackend();
  // Create, or CreateStreamHost when `host` is set.
  static absl::StatusOr<std::unique_ptr<UringBackend>> Build(const ServerConfig& config,
                                                             const UringLimits& limits,
                                                             const StreamHostOptions* host);

  ServerConfig config_;  // effective; engines hold a reference, so it never moves
  std::unique_ptr<turn::NodeState> own_node_;  // null for a stream host
  turn::NodeState* node_ = nullptr;
  std::unique_ptr<TlsContext> tls_;  // null when TLS is off
  std::vector<std::unique_ptr<UringWorker>> workers_;
  std::vector<std::thread> threads_;
  std::atomic<bool> stop_{false};
  WorkerEventCallback event_callback_;
};

}  // namespace turnpike::dataplane
