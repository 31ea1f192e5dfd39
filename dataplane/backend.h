// What the control plane and the daemon see of a data-plane backend, whichever it is: the
// kernel-socket backend (dataplane/uring) or the DPDK one (dataplane/dpdk). Both host one
// turn::Engine per worker and take control-plane commands through a per-worker queue; this
// header holds the types they share and the interface turnpiked drives them through.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "turn/config.h"
#include "turn/counters.h"
#include "turn/engine.h"
#include "turn/net/socket_address.h"
#include "turn/node_state.h"

namespace turnpike::dataplane {

// Per-worker I/O counters. Written by the worker thread only, without atomics; read by the
// control side without a lock. A read may be stale or see counters of one struct from slightly
// different moments; that is fine for metrics (64-bit loads do not tear on x86-64).
struct alignas(64) IoCounters {
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

  // DPDK (dataplane/dpdk).
  uint64_t rx_exception = 0;        // not for the relay and not to the kernel: dropped
  uint64_t tx_neighbor_pending = 0;  // dropped: next hop unresolved (queue full or timed out)
  uint64_t dispatched = 0;          // frames handed to the worker that owns them (multi-worker)
  uint64_t dispatch_drops = 0;      // dropped: that worker's ring was full
  uint64_t to_kernel = 0;           // frames handed to the kernel (dpdk-kernel-interface)
  uint64_t from_kernel = 0;         // frames the kernel sent through it
  uint64_t tx_neighbor_parked = 0;  // frames held while ARP / ND resolved their next hop
  // Where a worker's time per packet goes, VPP "show runtime" style: TSC cycles of one port
  // burst in 16 (a sample), split by step, and the packets of those bursts. Divided, each is
  // cycles per packet: receiving (rte_eth_rx_burst), classifying (parse, route, prefetch),
  // the engine (and the in-place checks), building the frames to send, sending
  // (rte_eth_tx_burst and the free of refused frames).
  uint64_t stage_packets = 0;
  uint64_t stage_cycles_rx = 0;
  uint64_t stage_cycles_classify = 0;
  uint64_t stage_cycles_engine = 0;
  uint64_t stage_cycles_build = 0;
  uint64_t stage_cycles_tx = 0;

  // Adds every field of `o` (gauges too: a node-wide sum of per-worker gauges). A new counter
  // goes above this line, in Add, and (if last) in tests/dataplane/backend_test.cc's bound.
  void Add(const IoCounters& o);
};

// Each worker's allocation table size for max-allocations spread over `workers`. The node-wide
// limit is enforced by NodeState; clients are spread by a hash (SO_REUSEPORT's or the DPDK
// distributor's), not perfectly, so a worker's table holds twice its even share (plus slack for
// small nodes), never more than the whole: one busy worker does not answer 508 while the node
// has room, and memory stays near max-allocations rather than workers times it.
uint32_t PerWorkerAllocations(uint32_t max_allocations, uint32_t workers);

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

// Allocation events of one worker, gathered on its thread (the engine's sink) and handed to the
// control plane once per loop iteration by Flush().
class EventBuffer final : public turn::EngineEventSink {
 public:
  explicit EventBuffer(uint32_t worker) : worker_(worker) {}
  // Set before the worker runs; nullptr or an empty function: events are not gathered.
  void SetCallback(const WorkerEventCallback* callback) { callback_ = callback; }
  bool empty() const { return events_.empty(); }
  void Flush();

  void OnAllocationCreated(const turn::AllocationInfo& info) override;
  void OnAllocationDeleted(uint64_t id, std::string_view username,
                           turn::AllocationEnd reason) override;

 private:
  bool enabled() const { return callback_ != nullptr && *callback_; }
  const uint32_t worker_;
  const WorkerEventCallback* callback_ = nullptr;
  std::vector<WorkerEvent> events_;
};

// A worker's control-plane command queue. Post() from any thread; the worker reads pending()
// (one relaxed load) once per loop iteration and calls RunAll() only when it is set, so an
// iteration without a command takes no lock.
class CommandQueue {
 public:
  void Post(WorkerCommand command);
  bool pending() const { return pending_.load(std::memory_order_relaxed); }
  // Runs every queued command against `engine` on the calling (worker) thread, calling
  // `after_kill` after an allocation was ended (the backend flushes what the engine queued),
  // counting each in `*ran` before its `done` is called (so a caller woken by `done` sees it).
  void RunAll(turn::Engine& engine, const std::function<void()>& after_kill, uint64_t* ran);

 private:
  std::atomic<bool> pending_{false};
  std::mutex mu_;
  std::vector<WorkerCommand> queued_;   // guarded by mu_
  std::vector<WorkerCommand> running_;  // worker thread only
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual std::string_view name() const = 0;  // "uring", "dpdk" (metrics, logs)
  // Spawns the workers. Call once.
  virtual void Start() = 0;
  // Asks every worker to close its allocations and exit. Thread-safe, returns at once, may be
  // called more than once. Not async-signal-safe.
  virtual void Stop() = 0;
  // Waits for the workers to exit. Safe to call when not started.
  virtual void Join() = 0;

  // The configuration the workers run with (addresses and ports resolved).
  virtual const ServerConfig& config() const = 0;
  virtual std::vector<SocketAddress> listening_addresses() const = 0;
  virtual const std::vector<IpAddress>& relay_ips() const = 0;
  virtual turn::NodeState& node_state() = 0;

  // Per-worker counters, for metrics. Lock-free, possibly stale reads (see IoCounters).
  virtual size_t worker_count() const = 0;
  virtual const turn::EngineCounters& engine_counters(size_t worker) const = 0;
  virtual const IoCounters& io_counters(size_t worker) const = 0;

  // Queues `command` on worker `worker` (thread-safe, any thread) and wakes it. False when no
  // such worker. The command runs on the worker's next loop iteration.
  virtual bool Post(size_t worker, WorkerCommand command) = 0;
  // Post + wait for the reply. DeadlineExceeded when the worker does not answer within
  // `timeout` (stuck or stopped): the caller answers 503, never hangs.
  absl::StatusOr<WorkerReply> Call(size_t worker, WorkerCommand command,
                                   std::chrono::milliseconds timeout);
  // Where allocation events go (set before Start; called on worker threads).
  virtual void SetEventCallback(WorkerEventCallback callback) = 0;

  // Stream transports, where the backend has them.
  virtual uint16_t tls_listening_port() const { return 0; }
  virtual bool tcp_enabled() const { return false; }
  // Certificate reload (SIGHUP); backends without TLS accept it and do nothing.
  virtual absl::Status ReloadTls(const ServerConfig& config) {
    (void)config;
    return absl::OkStatus();
  }
};

}  // namespace turnpike::dataplane
