// One io_uring data-plane worker: a thread that owns a ring, a provided-buffer ring for receive,
// a TX slot pool, its listening sockets (one per listening IP, in the SO_REUSEPORT group of that
// address), the relay sockets its engine opens, and that engine. Nothing here is touched by
// another thread except the counters (read-only, stale reads accepted) and the wake eventfd.
//
// Loop: submit + wait (one io_uring_enter, bounded by the next 100 ms tick) -> SetNow once ->
// for each CQE: recv -> engine -> TxBatch, send completion -> free slot -> copy TxBatch into TX
// slots as SENDMSG SQEs -> return receive buffers to the ring -> Tick when due.
#pragma once

#include <liburing.h>
#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "absl/base/thread_annotations.h"

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "dataplane/uring/uring_backend.h"
#include "turn/config.h"
#include "dataplane/tls/tls_session.h"
#include "turn/engine.h"
#include "turn/stream_framer.h"

namespace turnpike::dataplane {

class alignas(64) UringWorker final : public turn::RelayTransport {
 public:
  UringWorker(uint32_t index, const UringLimits& limits, const std::atomic<bool>* stop);
  ~UringWorker() override;
  UringWorker(const UringWorker&) = delete;
  UringWorker& operator=(const UringWorker&) = delete;

  // Creates the ring, buffer ring, TX pool and wake eventfd. Control path, before Run().
  absl::Status Init();
  // Takes ownership of a bound listening socket. Its SocketId is its position.
  void AddListener(int fd, const SocketAddress& local);
  // Takes ownership of a listening TCP socket (listen() called). `tls`: TLS on it, with
  // certificates from SetTlsContext.
  void AddStreamListener(int fd, const SocketAddress& local, bool tls);
  // Not owned; set before Run() when a TLS listener exists.
  void SetTlsContext(const TlsContext* tls) { tls_ = tls; }
  // Relay sockets may bind an address not on an interface yet (a stream host's, uring_backend.h).
  void SetNonLocalRelays(bool on) { nonlocal_relays_ = on; }
  // Called on this worker's thread when a relay socket is bound (true) and before it is closed
  // (false): a stream host tells the DPDK data plane which relay ports are the kernel's.
  void SetRelayObserver(RelayObserver observer) { relay_observer_ = std::move(observer); }
  // Relay datagrams to `node_ips` are offered to `sender` first (StreamHostOptions::to_node).
  void SetNodeSender(std::vector<IpAddress> node_ips, NodeSender sender) {
    node_ips_ = std::move(node_ips);
    node_sender_ = std::move(sender);
  }
  // Creates this worker's engine. `config` and `node` must outlive the worker.
  void CreateEngine(const ServerConfig& config, const turn::EngineOptions& options,
                    turn::NodeState* node);

  // The thread body: runs until *stop is set and Wake() called (or the next tick), then closes
  // every allocation and releases all I/O resources.
  void Run();
  // Thread-safe: makes a blocked Run() look at the stop flag now.
  void Wake();
  // Thread-safe: queues a control-plane command and wakes the worker.
  void Post(WorkerCommand command);
  // Set before Run(); called on this worker's thread with its allocation events.
  void SetEventCallback(const WorkerEventCallback* callback) { events_.SetCallback(callback); }

  const turn::EngineCounters& engine_counters() const { return engine_->counters(); }
  const UringCounters& counters() const { return counters_; }

  // turn::RelayTransport, called by the engine on this worker's thread.
  absl::StatusOr<turn::SocketId> OpenRelay(const SocketAddress& address, uint32_t tag) override;
  void CloseRelay(turn::SocketId socket) override;
  absl::Status SetDontFragment(turn::SocketId socket) override;


 private:
  struct Listener {
    int fd = -1;
    SocketAddress local;
    bool armed = false;
  };
  struct Relay {
    int fd = -1;
    SocketAddress address;  // bound
    uint32_t tag = 0;
    uint32_t gen = 0;  // bumped on close so late CQEs and stale SocketIds are recognised
    bool armed = false;
    bool v6 = false;
  };
  struct TxSlot {
    msghdr msg;
    iovec iov;
    sockaddr_storage addr;
  };
  struct StreamListener {
    int fd = -1;
    SocketAddress local;
    bool tls = false;
    bool armed = false;
  };
  enum class CloseReason : uint8_t { kClient, kError, kFraming, kTls, kHandshake, kIdle };
  // A TCP or TLS client connection. Its receive side is a multishot recv on the shared
  // provided-buffer ring; its send side is two buffers: `pending` collects what the engine
  // sends, `sending` is the one IORING_OP_SEND in flight.
  struct Conn {
    enum class State : uint8_t { kFree, kOpen, kClosing };  // kClosing: waits for its send
    State state = State::kFree;
    bool tls = false;
    bool recv_armed = false;
    bool send_inflight = false;
    bool established = false;  // TLS done (if TLS) and a first whole message received
    bool kick_queued = false;
    bool doomed = false;  // closed while busy in TLS Receive: CloseConn runs after it
    CloseReason doom_reason{};
    int fd = -1;
    uint32_t gen = 0;  // bumped when the slot is freed
    SocketAddress local;
    SocketAddress peer;
    uint64_t opened_ns = 0;
    uint64_t last_message_ns = 0;
    std::unique_ptr<TlsSession> session;
    std::unique_ptr<turn::StreamFramer> framer;
    std::vector<uint8_t> pending;
    std::vector<uint8_t> sending;
    size_t sent = 0;
  };

  io_uring_sqe* GetSqe();
  void ArmListener(uint32_t index);
  void ArmRelay(uint32_t index);
  void ArmWake();
  void RetryArms();
  void HandleCqe(const io_uring_cqe* cqe);
  void HandleRecv(const io_uring_cqe* cqe, bool listener, uint32_t index);
  void HandleTxDone(const io_uring_cqe* cqe, uint32_t slot);
  int FdFor(turn::SocketId socket) const;
  // Cancels the request with `user_data` synchronously (asynchronously on old kernels), so
  // that its socket can be closed and its slot reused at once.
  void CancelNow(uint64_t user_data);

  // Streams (uring_streams.cc).
  void ArmStreamListener(uint32_t index);
  void ArmConnRecv(uint32_t index);
  void HandleAccept(const io_uring_cqe* cqe, uint32_t index);
  void HandleConnRecv(const io_uring_cqe* cqe, uint32_t index);
  void HandleConnSend(const io_uring_cqe* cqe, uint32_t index);
  void FeedFramer(uint32_t index, std::span<const uint8_t> bytes);
  // Appends one TxDesc for a connection to its send buffer (TLS: encrypted).
  void StreamSend(const turn::TxDesc& d);
  void QueueKick(uint32_t index);
  void KickSends();
  void StartSend(uint32_t index);
  void CloseConn(uint32_t index, CloseReason reason);
  void FreeConn(uint32_t index);
  Conn* ConnFor(turn::SocketId socket);
  turn::SocketId ConnId(uint32_t index) const;
  void SweepStreams();
  void CloseStreams();
  void FlushTx();
  void RecycleBuffers();
  void Shutdown();
  void RunCommands();
  uint8_t* RxBuffer(uint16_t bid) const {
    return rx_mem_ + static_cast<size_t>(bid) * limits_.rx_buffer_size;
  }
  uint8_t* TxBuffer(uint32_t slot) const {
    return tx_mem_ + static_cast<size_t>(slot) * limits_.tx_slot_size;
  }

  const uint32_t index_;
  const UringLimits limits_;
  const std::atomic<bool>* stop_;

  io_uring ring_{};
  bool ring_ok_ = false;
  io_uring_buf_ring* buf_ring_ = nullptr;
  size_t buf_ring_bytes_ = 0;
  bool buf_ring_registered_ = false;
  uint8_t* rx_mem_ = nullptr;
  size_t rx_mem_bytes_ = 0;
  msghdr recv_msg_{};  // template for multishot recvmsg: name space only, no control data
  std::vector<uint16_t> pending_bids_;  // received buffers to give back after the next flush

  uint8_t* tx_mem_ = nullptr;
  size_t tx_mem_bytes_ = 0;
  std::vector<TxSlot> tx_slots_;
  std::vector<uint32_t> free_tx_;
  std::unique_ptr<turn::TxBatch> tx_;

  int wake_fd_ = -1;
  uint64_t wake_value_ = 0;
  bool wake_armed_ = false;
  bool rearm_needed_ = false;  // an arm failed for want of an SQE; retried each iteration

  std::vector<Listener> listeners_;
  std::vector<StreamListener> stream_listeners_;
  std::vector<Conn> conns_;
  std::vector<uint32_t> free_conns_;
  std::vector<uint32_t> kicks_;          // connections with new bytes to send this iteration
  std::vector<uint32_t> kicks_running_;
  static constexpr uint32_t kNoConn = ~uint32_t{0};
  uint32_t busy_conn_ = kNoConn;         // connection inside TlsSession::Receive
  std::vector<uint8_t> stream_scratch_;     // TLS plaintext being framed
  std::vector<uint8_t> stream_tx_scratch_;  // one outgoing message assembled for SSL_write
  const TlsContext* tls_ = nullptr;
  bool nonlocal_relays_ = false;
  RelayObserver relay_observer_;
  std::vector<IpAddress> node_ips_;
  NodeSender node_sender_;
  std::vector<uint8_t> node_scratch_;  // one datagram for node_sender_
  // Offers a relay datagram to node_sender_; true when it took it.
  bool SendToNode(const turn::TxDesc& d);
  turn::NodeState* node_ = nullptr;
  const ServerConfig* config_ = nullptr;
  uint64_t next_stream_sweep_ns_ = 0;
  bool stream_rearm_due_ = false;  // an accept ended on an error: re-arm at the next tick
  std::vector<Relay> relays_;
  std::vector<uint32_t> free_relays_;

  std::unique_ptr<turn::Engine> engine_;
  UringCounters counters_;

  // Control-plane commands (see CommandQueue: one relaxed load per loop iteration).
  CommandQueue commands_;
  EventBuffer events_;  // the engine's event sink; flushed once per loop iteration
};

}  // namespace turnpike::dataplane
