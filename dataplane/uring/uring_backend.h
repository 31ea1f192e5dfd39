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
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "turn/config.h"
#include "turn/counters.h"
#include "turn/engine.h"
#include "turn/net/socket_address.h"
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

// Per-worker I/O counters. Written by the worker thread only, without atomics; read by the
// control side without a lock. A read may be stale or see counters of one struct from slightly
// different moments; that is fine for metrics (64-bit loads do not tear on x86-64).
struct alignas(64) UringCounters {
  uint64_t rx_packets = 0;
  uint64_t rx_bytes = 0;
  uint64_t rx_enobufs = 0;        // buffer ring ran dry: the kernel dropped datagrams
  uint64_t rx_truncated = 0;      // datagram larger than a receive buffer
  uint64_t rx_errors = 0;         // other recv errors (and malformed recvmsg headers)
  uint64_t rx_rearms = 0;         // multishot recv re-armed after it ended
  uint64_t tx_packets = 0;        // sendmsg completed
  uint64_t tx_bytes = 0;
  uint64_t tx_no_slot = 0;        // dropped: every TX slot in flight
  uint64_t tx_no_sqe = 0;         // dropped: SQ full even after a submit
  uint64_t tx_too_big = 0;        // dropped: larger than a TX slot
  uint64_t tx_stale_socket = 0;   // dropped: relay socket closed before the batch was sent
  uint64_t tx_err_again = 0;      // EAGAIN / ENOBUFS / ENOMEM: socket or host out of buffers
  uint64_t tx_err_unreachable = 0;  // ENETUNREACH / EHOSTUNREACH / EADDRNOTAVAIL / ECONNREFUSED
  uint64_t tx_err_denied = 0;     // EPERM / EACCES (firewall)
  uint64_t tx_err_too_big = 0;    // EMSGSIZE
  uint64_t tx_err_other = 0;
  uint64_t relays_opened = 0;
  uint64_t relays_closed = 0;
  uint64_t relay_open_failures = 0;
  uint64_t bursts = 0;            // loop iterations that handled at least one CQE
  uint64_t ticks = 0;
  uint64_t allocations = 0;       // gauge: the engine's allocation count after the last burst
  // Time spent between waking up and going back to wait (handling completions, sending,
  // timers, control commands), for the busy-ratio metric; the rest of the wall time is waiting.
  // One extra vDSO clock read per loop iteration.
  uint64_t busy_ns = 0;
  uint64_t loop_iterations = 0;   // every pass, idle ticks included: the /healthz heartbeat
  uint64_t commands = 0;          // control-plane commands run

  // TURN over TCP and TLS (uring_streams.cc).
  uint64_t streams = 0;                   // gauge: open client connections
  uint64_t stream_accepted = 0;           // connections taken (TCP and TLS)
  uint64_t stream_refused_total = 0;      // closed at accept: stream-max-connections
  uint64_t stream_refused_per_ip = 0;     // closed at accept: stream-max-per-ip
  uint64_t stream_accept_errors = 0;      // accept failed (EMFILE, ...)
  uint64_t stream_closed_by_client = 0;   // EOF or TLS close_notify
  uint64_t stream_errors = 0;             // reset, send or receive error
  uint64_t stream_framing_errors = 0;     // not STUN/ChannelData framing: closed
  uint64_t stream_tls_failures = 0;       // handshake failure or bad record: closed
  uint64_t stream_handshake_timeouts = 0; // no TLS / first message within the deadline
  uint64_t stream_idle_timeouts = 0;      // no allocation and nothing sent for too long
  uint64_t stream_tx_dropped = 0;         // message dropped: the client reads too slowly
  uint64_t tls_handshakes = 0;            // TLS handshakes completed
};

// What a control-plane command returns, filled on the worker's thread.
struct WorkerReply {
  bool found = false;                             // kKillAllocation: the id existed
  std::vector<turn::AllocationInfo> allocations;  // kListAllocations
};

// A control-plane command for one worker. It runs on the worker's own thread between bursts,
// because the engine's tables belong to that thread; `done` is then called there too (keep it
// short: fulfil a promise, never block).
struct WorkerCommand {
  enum class Kind : uint8_t { kPing, kListAllocations, kKillAllocation, kReconfigure };
  Kind kind = Kind::kPing;
  uint64_t allocation_id = 0;                  // kKillAllocation
  std::shared_ptr<const ServerConfig> config;  // kReconfigure (the engine copies it)
  std::function<void(WorkerReply&&)> done;     // may be empty
};

// An allocation event for the control plane's event stream, gathered on a worker and handed
// over once per loop iteration.
struct WorkerEvent {
  enum class Kind : uint8_t { kAllocationCreated, kAllocationDeleted };
  Kind kind = Kind::kAllocationCreated;
  uint32_t worker = 0;
  uint64_t id = 0;
  std::string username;
  std::string client;   // client address:port (created only)
  std::string relay;    // relayed address:port (created only)
  std::string reason;   // refresh / expired / killed / shutdown (deleted only)
};
using WorkerEventCallback = std::function<void(std::vector<WorkerEvent>&& events)>;

class UringWorker;

class UringBackend {
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
  ~UringBackend();  // stops and joins if still running
  UringBackend(const UringBackend&) = delete;
  UringBackend& operator=(const UringBackend&) = delete;

  // Spawns the worker threads. Call once.
  void Start();
  // Asks every worker to close its allocations and exit. Thread-safe, returns at once, may be
  // called more than once. Not async-signal-safe: call it from a signal loop, not a handler.
  void Stop();
  // Waits for the workers to exit. Safe to call when not started.
  void Join();

  // The configuration the workers run with: listening and relay IPs and port resolved.
  const ServerConfig& config() const { return config_; }
  uint16_t listening_port() const { return config_.listening_port; }
  std::vector<SocketAddress> listening_addresses() const;
  const std::vector<IpAddress>& relay_ips() const { return config_.relay_ips; }
  turn::NodeState& node_state() { return *node_; }

  // Per-worker counters, for metrics. Lock-free, possibly stale reads (see UringCounters).
  size_t worker_count() const { return workers_.size(); }
  const turn::EngineCounters& engine_counters(size_t worker) const;
  const UringCounters& io_counters(size_t worker) const;

  // Queues `command` on worker `worker` (thread-safe, any thread) and wakes it. False when no
  // such worker. The command runs on the worker's next loop iteration (immediately if idle).
  bool Post(size_t worker, WorkerCommand command);
  // Post + wait for the reply. DeadlineExceeded when the worker does not answer within
  // `timeout` (stuck or stopped): the caller answers 503, never hangs.
  absl::StatusOr<WorkerReply> Call(size_t worker, WorkerCommand command,
                                   std::chrono::milliseconds timeout);
  // Where allocation events go (set before Start; called on worker threads).
  void SetEventCallback(WorkerEventCallback callback);

  // TLS: the port it listens on (0 when TLS is off) and a certificate reload (SIGHUP): new
  // connections use the new certificate, open ones keep theirs. An error keeps the old one.
  uint16_t tls_listening_port() const { return tls_ != nullptr ? config_.tls_listening_port : 0; }
  bool tcp_enabled() const { return !config_.no_tcp; }
  absl::Status ReloadTls(const ServerConfig& config);

 private:
  UringBackend();

  ServerConfig config_;  // effective; engines hold a reference, so it never moves
  std::unique_ptr<turn::NodeState> node_;
  std::unique_ptr<TlsContext> tls_;  // null when TLS is off
  std::vector<std::unique_ptr<UringWorker>> workers_;
  std::vector<std::thread> threads_;
  std::atomic<bool> stop_{false};
  WorkerEventCallback event_callback_;
};

}  // namespace turnpike::dataplane
