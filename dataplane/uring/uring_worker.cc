// io_uring worker loop; see uring_worker.h for the data flow.
#include "dataplane/uring/uring_worker.h"

#include "dataplane/uring/socket_buffers.h"
#include "dataplane/uring/uring_ids.h"

#include <errno.h>
#include <netinet/in.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_format.h"
#include "spdlog/spdlog.h"

namespace turnpike::dataplane {
namespace {

using namespace uring_ids;  // NOLINT: the worker's own encodings

void* MapAnonymous(size_t bytes) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}

std::string RingInitError(int err, uint32_t entries) {
  switch (err) {
    case ENOMEM: {
      rlimit rl{};
      getrlimit(RLIMIT_MEMLOCK, &rl);
      return absl::StrFormat(
          "io_uring setup failed: out of memory for a %u-entry ring (locked-memory limit is %d "
          "KiB: raise it with `ulimit -l unlimited` or LimitMEMLOCK=infinity in the systemd "
          "unit, or use fewer worker-threads)",
          entries, rl.rlim_cur == RLIM_INFINITY ? -1 : static_cast<int>(rl.rlim_cur / 1024));
    }
    case EPERM:
      return "io_uring setup failed: operation not permitted (io_uring is disabled by sysctl "
             "kernel.io_uring_disabled or blocked by a seccomp profile; in Docker run with a "
             "profile that allows io_uring)";
    case ENOSYS:
      return "io_uring setup failed: this kernel has no io_uring (Linux 6.0 or newer needed)";
    default:
      return absl::StrFormat("io_uring setup failed: %s", strerror(err));
  }
}

}  // namespace

UringWorker::UringWorker(uint32_t index, const UringLimits& limits,
                         const std::atomic<bool>* stop)
    : index_(index), limits_(limits), stop_(stop), events_(index) {}

UringWorker::~UringWorker() {
  // Engine first: it may still hold relay sockets it wants to close.
  engine_.reset();
  for (Relay& r : relays_) {
    if (r.fd >= 0) close(r.fd);
  }
  for (Listener& l : listeners_) {
    if (l.fd >= 0) close(l.fd);
  }
  for (StreamListener& l : stream_listeners_) {
    if (l.fd >= 0) close(l.fd);
  }
  for (Conn& c : conns_) {
    if (c.fd >= 0) close(c.fd);
  }
  if (ring_ok_) io_uring_queue_exit(&ring_);
  if (wake_fd_ >= 0) close(wake_fd_);
  // Only after the ring is gone can no kernel write land in these.
  if (buf_ring_ != nullptr) munmap(buf_ring_, buf_ring_bytes_);
  if (rx_mem_ != nullptr) munmap(rx_mem_, rx_mem_bytes_);
  if (tx_mem_ != nullptr) munmap(tx_mem_, tx_mem_bytes_);
}

absl::Status UringWorker::Init() {
  const uint32_t n = limits_.rx_buffers;
  if (n == 0 || n > 32768 || (n & (n - 1)) != 0) {
    return absl::InvalidArgumentError("rx_buffers must be a power of two up to 32768");
  }
  if (limits_.rx_buffer_size < 256 || limits_.tx_slot_size < 256 || limits_.tx_slots == 0) {
    return absl::InvalidArgumentError("buffer sizes too small");
  }

  io_uring_params params{};
  params.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN;
  params.cq_entries = limits_.sq_entries * 4;
  int ret = io_uring_queue_init_params(limits_.sq_entries, &ring_, &params);
  if (ret == -EINVAL) {  // older kernels lack COOP_TASKRUN / SUBMIT_ALL
    params = {};
    params.flags = IORING_SETUP_CQSIZE;
    params.cq_entries = limits_.sq_entries * 4;
    ret = io_uring_queue_init_params(limits_.sq_entries, &ring_, &params);
  }
  if (ret < 0) return absl::UnavailableError(RingInitError(-ret, limits_.sq_entries));
  ring_ok_ = true;
  if ((params.features & IORING_FEAT_EXT_ARG) == 0) {
    return absl::FailedPreconditionError(
        "io_uring lacks IORING_FEAT_EXT_ARG (Linux 5.11+ needed; multishot recvmsg needs 6.0)");
  }

  // Provided-buffer ring. liburing 2.3 has no io_uring_setup_buf_ring, so map the ring memory
  // ourselves (page aligned, as the kernel requires) and register it.
  buf_ring_bytes_ = sizeof(io_uring_buf) * n;
  buf_ring_ = static_cast<io_uring_buf_ring*>(MapAnonymous(buf_ring_bytes_));
  rx_mem_bytes_ = static_cast<size_t>(n) * limits_.rx_buffer_size;
  rx_mem_ = static_cast<uint8_t*>(MapAnonymous(rx_mem_bytes_));
  tx_mem_bytes_ = static_cast<size_t>(limits_.tx_slots) * limits_.tx_slot_size;
  tx_mem_ = static_cast<uint8_t*>(MapAnonymous(tx_mem_bytes_));
  if (buf_ring_ == nullptr || rx_mem_ == nullptr || tx_mem_ == nullptr) {
    return absl::ResourceExhaustedError("cannot map io_uring buffer memory");
  }
  io_uring_buf_ring_init(buf_ring_);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uintptr_t>(buf_ring_);
  reg.ring_entries = n;
  reg.bgid = kBufferGroup;
  ret = io_uring_register_buf_ring(&ring_, &reg, 0);
  if (ret < 0) {
    return absl::UnavailableError(absl::StrFormat(
        "io_uring_register_buf_ring failed: %s (provided-buffer rings need Linux 5.19+%s)",
        strerror(-ret), ret == -ENOMEM ? "; raise the locked-memory limit, ulimit -l" : ""));
  }
  buf_ring_registered_ = true;
  const int mask = io_uring_buf_ring_mask(n);
  for (uint32_t i = 0; i < n; ++i) {
    io_uring_buf_ring_add(buf_ring_, RxBuffer(static_cast<uint16_t>(i)), limits_.rx_buffer_size,
                          static_cast<uint16_t>(i), mask, static_cast<int>(i));
  }
  io_uring_buf_ring_advance(buf_ring_, static_cast<int>(n));
  pending_bids_.reserve(n);

  // The multishot recvmsg template: the kernel writes io_uring_recvmsg_out, then the source
  // address (room for IPv6), then the payload into each buffer.
  recv_msg_.msg_namelen = sizeof(sockaddr_in6);
  recv_msg_.msg_controllen = 0;

  tx_slots_.resize(limits_.tx_slots);
  free_tx_.reserve(limits_.tx_slots);
  for (uint32_t i = limits_.tx_slots; i-- > 0;) {
    TxSlot& s = tx_slots_[i];
    std::memset(&s, 0, sizeof(s));
    s.msg.msg_name = &s.addr;
    s.msg.msg_iov = &s.iov;
    s.msg.msg_iovlen = 1;
    s.iov.iov_base = TxBuffer(i);
    free_tx_.push_back(i);
  }
  tx_ = std::make_unique<turn::TxBatch>();

  wake_fd_ = eventfd(0, EFD_CLOEXEC);
  if (wake_fd_ < 0) {
    return absl::UnavailableError(absl::StrFormat("eventfd: %s", strerror(errno)));
  }
  return absl::OkStatus();
}

void UringWorker::AddListener(int fd, const SocketAddress& local) {
  listeners_.push_back(Listener{fd, local, false});
}

void UringWorker::AddStreamListener(int fd, const SocketAddress& local, bool tls) {
  stream_listeners_.push_back(StreamListener{fd, local, tls, false});
}

void UringWorker::CreateEngine(const ServerConfig& config, const turn::EngineOptions& options,
                               turn::NodeState* node) {
  // An allocation holds at most two relay sockets (RFC 8656 ADDITIONAL-ADDRESS-FAMILY).
  const uint32_t relays =
      std::min<uint64_t>(kMaxSlots, uint64_t{options.max_allocations} * 2 + 16);
  relays_.assign(relays, Relay{});
  free_relays_.clear();
  free_relays_.reserve(relays);
  for (uint32_t i = relays; i-- > 0;) free_relays_.push_back(i);
  engine_ = std::make_unique<turn::Engine>(config, options, node, this);
  engine_->SetEventSink(&events_);
  node_ = node;
  config_ = &config;
  if (!stream_listeners_.empty()) {
    // Every connection may land on this worker (the node-wide cap is NodeState's), so the
    // table holds the whole stream-max-connections; a slot costs about 200 bytes until used.
    const uint32_t conns = std::min<uint32_t>(kMaxSlots, config.stream_max_connections);
    conns_.resize(conns);
    free_conns_.reserve(conns);
    for (uint32_t i = conns; i-- > 0;) free_conns_.push_back(i);
    // One assembled frame (TX slot size) or one TLS record of plaintext (16 KiB).
    stream_scratch_.resize(std::max<size_t>(limits_.tx_slot_size, 16384));
    stream_tx_scratch_.resize(limits_.tx_slot_size);
  }
}

void UringWorker::Wake() {
  const uint64_t one = 1;
  // A full eventfd counter (impossible here) or EINTR only delays the stop to the next tick.
  [[maybe_unused]] ssize_t n = write(wake_fd_, &one, sizeof(one));
}

void UringWorker::Post(WorkerCommand command) {
  commands_.Post(std::move(command));
  Wake();
}

void UringWorker::RunCommands() {
  commands_.RunAll(*engine_, [this] { FlushTx(); }, &counters_.commands);
}

io_uring_sqe* UringWorker::GetSqe() {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  if (sqe == nullptr) {
    io_uring_submit(&ring_);
    sqe = io_uring_get_sqe(&ring_);
  }
  return sqe;
}

void UringWorker::ArmListener(uint32_t index) {
  io_uring_sqe* sqe = GetSqe();
  if (sqe == nullptr) {
    rearm_needed_ = true;
    return;
  }
  io_uring_prep_recvmsg_multishot(sqe, listeners_[index].fd, &recv_msg_, 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = kBufferGroup;
  io_uring_sqe_set_data64(sqe, UserData(kListenerRecv, 0, index));
  listeners_[index].armed = true;
}

void UringWorker::ArmRelay(uint32_t index) {
  Relay& r = relays_[index];
  io_uring_sqe* sqe = GetSqe();
  if (sqe == nullptr) {
    rearm_needed_ = true;
    return;
  }
  io_uring_prep_recvmsg_multishot(sqe, r.fd, &recv_msg_, 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = kBufferGroup;
  io_uring_sqe_set_data64(sqe, UserData(kRelayRecv, r.gen, index));
  r.armed = true;
}

void UringWorker::ArmWake() {
  io_uring_sqe* sqe = GetSqe();
  if (sqe == nullptr) {
    rearm_needed_ = true;
    return;
  }
  io_uring_prep_read(sqe, wake_fd_, &wake_value_, sizeof(wake_value_), 0);
  io_uring_sqe_set_data64(sqe, UserData(kWakeRead, 0, 0));
  wake_armed_ = true;
}

// Only after an SQ overflow, which needs thousands of SQEs in one burst.
void UringWorker::RetryArms() {
  rearm_needed_ = false;
  for (uint32_t i = 0; i < listeners_.size(); ++i) {
    if (!listeners_[i].armed) ArmListener(i);
  }
  for (uint32_t i = 0; i < relays_.size(); ++i) {
    if (relays_[i].fd >= 0 && !relays_[i].armed) ArmRelay(i);
  }
  for (uint32_t i = 0; i < stream_listeners_.size(); ++i) {
    if (!stream_listeners_[i].armed) ArmStreamListener(i);
  }
  for (uint32_t i = 0; i < conns_.size(); ++i) {
    if (conns_[i].state == Conn::State::kOpen && !conns_[i].recv_armed) ArmConnRecv(i);
  }
  if (!wake_armed_) ArmWake();
}

absl::StatusOr<turn::SocketId> UringWorker::OpenRelay(const SocketAddress& address,
                                                      uint32_t tag) {
  if (free_relays_.empty()) {
    ++counters_.relay_open_failures;
    return absl::ResourceExhaustedError("relay socket table full");
  }
  const int domain = address.ip.is_v4() ? AF_INET : AF_INET6;
  const int fd = socket(domain, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_UDP);
  if (fd < 0) {
    ++counters_.relay_open_failures;
    return absl::UnavailableError(absl::StrFormat("socket: %s", strerror(errno)));
  }
  const int on = 1;
  if (domain == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
  if (nonlocal_relays_) AllowNonLocalBind(fd, domain);
  SizeSocketBuffers(fd, kRelayRcvBuf, kRelaySndBuf);
  // Let the kernel fragment rather than fail sends on a cached path MTU, unless the client asks
  // for DONT-FRAGMENT (SetDontFragment).
  const int pmtu = IP_PMTUDISC_DONT;
  if (domain == AF_INET) {
    setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &pmtu, sizeof(pmtu));
  } else {
    const int pmtu6 = IPV6_PMTUDISC_DONT;
    setsockopt(fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER, &pmtu6, sizeof(pmtu6));
  }
  sockaddr_storage ss;
  const socklen_t len = address.ToSockaddr(&ss);
  if (bind(fd, reinterpret_cast<const sockaddr*>(&ss), len) != 0) {
    const int err = errno;
    close(fd);
    ++counters_.relay_open_failures;
    return absl::UnavailableError(
        absl::StrFormat("bind %s: %s", address.ToString(), strerror(err)));
  }
  const uint32_t index = free_relays_.back();
  free_relays_.pop_back();
  Relay& r = relays_[index];
  r.fd = fd;
  r.address = address;
  r.tag = tag;
  if (relay_observer_) relay_observer_(address, true);
  r.v6 = domain == AF_INET6;
  r.armed = false;
  ArmRelay(index);
  ++counters_.relays_opened;
  return RelayId(index, r.gen);
}

void UringWorker::CloseRelay(turn::SocketId socket) {
  if (!IsRelay(socket)) return;
  const uint32_t index = SlotOf(socket);
  if (index >= relays_.size()) return;
  Relay& r = relays_[index];
  if (r.fd < 0 || ((socket >> kIndexBits) & kRelayGenMask) != (r.gen & kRelayGenMask)) return;
  // Cancelled synchronously, so that once close() returns the port is really free for
  // NodeState to hand out again (an in-flight request holds a reference to the socket).
  if (r.armed) CancelNow(UserData(kRelayRecv, r.gen, index));
  // Sends queued for this relay this iteration name its fd by number: submit them before the
  // number is closed and possibly reused by the next socket().
  if (io_uring_sq_ready(&ring_) > 0) io_uring_submit(&ring_);
  if (relay_observer_) relay_observer_(r.address, false);
  close(r.fd);
  r.fd = -1;
  r.armed = false;
  ++r.gen;  // late CQEs of the old socket no longer match
  free_relays_.push_back(index);
  ++counters_.relays_closed;
}

void UringWorker::CancelNow(uint64_t user_data) {
  // The request may still sit in the SQ: submit it so the cancel finds it.
  if (io_uring_sq_ready(&ring_) > 0) io_uring_submit(&ring_);
  io_uring_sync_cancel_reg reg{};
  reg.addr = user_data;
  reg.fd = -1;
  reg.timeout.tv_sec = -1;
  reg.timeout.tv_nsec = -1;
  const int ret = io_uring_register_sync_cancel(&ring_, &reg);
  if (ret < 0 && ret != -ENOENT && ret != -EALREADY) {
    // Kernels without sync cancel: cancel asynchronously; the socket is free a moment later.
    io_uring_sqe* sqe = GetSqe();
    if (sqe != nullptr) {
      io_uring_prep_cancel64(sqe, user_data, 0);
      io_uring_sqe_set_data64(sqe, UserData(kIgnore, 0, 0));
    }
  }
}

absl::Status UringWorker::SetDontFragment(turn::SocketId socket) {
  const int fd = IsRelay(socket) ? FdFor(socket) : -1;
  if (fd < 0) return absl::NotFoundError("no such relay socket");
  const int rc = relays_[SlotOf(socket)].v6
                     ? [fd] {
                         const int on = 1;
                         return setsockopt(fd, IPPROTO_IPV6, IPV6_DONTFRAG, &on, sizeof(on));
                       }()
                     : [fd] {
                         const int pmtu = IP_PMTUDISC_DO;
                         return setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &pmtu, sizeof(pmtu));
                       }();
  if (rc != 0) {
    return absl::UnavailableError(absl::StrFormat("DONT-FRAGMENT: %s", strerror(errno)));
  }
  return absl::OkStatus();
}

int UringWorker::FdFor(turn::SocketId socket) const {
  if (!IsRelay(socket)) {
    return socket < listeners_.size() ? listeners_[socket].fd : -1;
  }
  const uint32_t index = SlotOf(socket);
  if (index >= relays_.size()) return -1;
  const Relay& r = relays_[index];
  if (((socket >> kIndexBits) & kRelayGenMask) != (r.gen & kRelayGenMask)) return -1;
  return r.fd;
}

void UringWorker::HandleRecv(const io_uring_cqe* cqe, bool listener, uint32_t index) {
  const bool has_buffer = (cqe->flags & IORING_CQE_F_BUFFER) != 0;
  const uint16_t bid = static_cast<uint16_t>(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
  const bool more = (cqe->flags & IORING_CQE_F_MORE) != 0;

  // Is the socket this CQE belongs to still open (relays close while CQEs are in flight)?
  bool live;
  if (listener) {
    live = index < listeners_.size();
  } else {
    live = index < relays_.size() && relays_[index].fd >= 0 &&
           (relays_[index].gen & kGenMask) == UdGen(cqe->user_data);
  }

  if (cqe->res < 0) {
    if (cqe->res == -ENOBUFS) {
      ++counters_.rx_enobufs;
    } else if (cqe->res != -ECANCELED) {
      ++counters_.rx_errors;
    }
  } else if (has_buffer && live) {
    uint8_t* buf = RxBuffer(bid);
    io_uring_recvmsg_out* out = io_uring_recvmsg_validate(buf, cqe->res, &recv_msg_);
    if (out == nullptr || out->namelen > recv_msg_.msg_namelen) {
      ++counters_.rx_errors;
    } else if ((out->flags & MSG_TRUNC) != 0) {
      ++counters_.rx_truncated;
    } else {
      const auto* name = static_cast<const sockaddr*>(io_uring_recvmsg_name(out));
      const auto* payload = static_cast<const uint8_t*>(io_uring_recvmsg_payload(out, &recv_msg_));
      const uint32_t length = io_uring_recvmsg_payload_length(out, cqe->res, &recv_msg_);
      const SocketAddress from = SocketAddress::FromSockaddr(name);
      ++counters_.rx_packets;
      counters_.rx_bytes += length;
      if (tx_->size() + kTxHeadroom > turn::TxBatch::kCapacity) {
        FlushTx();
        RecycleBuffers();
      }
      std::span<const uint8_t> data(payload, length);
      if (listener) {
        engine_->OnClientPacket(index, listeners_[index].local, from, data, *tx_);
      } else {
        engine_->OnPeerPacket(relays_[index].tag, from, data, *tx_);
      }
    }
  }
  // The buffer goes back only after the TxBatch that may point into it is flushed.
  if (has_buffer) pending_bids_.push_back(bid);

  if (!more && live && !stop_->load(std::memory_order_relaxed)) {
    ++counters_.rx_rearms;
    if (listener) {
      listeners_[index].armed = false;
      ArmListener(index);
    } else {
      relays_[index].armed = false;
      ArmRelay(index);
    }
  } else if (!more && live) {
    if (listener) {
      listeners_[index].armed = false;
    } else {
      relays_[index].armed = false;
    }
  }
}

void UringWorker::HandleTxDone(const io_uring_cqe* cqe, uint32_t slot) {
  free_tx_.push_back(slot);
  const int res = cqe->res;
  if (res >= 0) {
    ++counters_.tx_packets;
    counters_.tx_bytes += static_cast<uint64_t>(res);
    return;
  }
  switch (-res) {
    case EAGAIN:
    case ENOBUFS:
    case ENOMEM:
      ++counters_.tx_err_again;
      break;
    case ENETUNREACH:
    case EHOSTUNREACH:
    case EADDRNOTAVAIL:
    case ECONNREFUSED:
    case ENETDOWN:
    case EHOSTDOWN:
      ++counters_.tx_err_unreachable;
      break;
    case EPERM:
    case EACCES:
      ++counters_.tx_err_denied;
      break;
    case EMSGSIZE:
      ++counters_.tx_err_too_big;
      break;
    default:
      ++counters_.tx_err_other;
      break;
  }
}

void UringWorker::HandleCqe(const io_uring_cqe* cqe) {
  const uint64_t ud = cqe->user_data;
  switch (UdKind(ud)) {
    case kListenerRecv:
      HandleRecv(cqe, /*listener=*/true, UdIndex(ud));
      break;
    case kRelayRecv:
      HandleRecv(cqe, /*listener=*/false, UdIndex(ud));
      break;
    case kTxDone:
      HandleTxDone(cqe, UdIndex(ud));
      break;
    case kWakeRead:
      wake_armed_ = false;
      if (!stop_->load(std::memory_order_relaxed)) ArmWake();
      break;
    case kStreamAccept:
      HandleAccept(cqe, UdIndex(ud));
      break;
    case kConnRecv:
      HandleConnRecv(cqe, UdIndex(ud));
      break;
    case kConnSend:
      HandleConnSend(cqe, UdIndex(ud));
      break;
    default:
      // Cancel completions; a buffer could only come with a recv, never here.
      break;
  }
}

// Copies each descriptor into a TX slot and queues a SENDMSG; submission happens once per loop
// iteration. Measured whole-worker cost (perf/loadgen, 1 worker, 100 allocations, 160-byte
// ChannelData, 100k pkt/s both ways on loopback, busy 2-core host): ~327k relayed packets per
// server CPU-second, most of it in the kernel's UDP send/receive paths.
void UringWorker::FlushTx() {
  turn::TxBatch& batch = *tx_;
  for (size_t i = 0; i < batch.size(); ++i) {
    const turn::TxDesc& d = batch[i];
    if (IsConn(d.socket)) {
      StreamSend(d);
      continue;
    }
    const int fd = FdFor(d.socket);
    if (fd < 0) {
      ++counters_.tx_stale_socket;
      continue;
    }
    if (node_sender_ && IsRelay(d.socket) && SendToNode(d)) continue;
    const size_t size = d.size();
    if (size > limits_.tx_slot_size) {
      ++counters_.tx_too_big;
      continue;
    }
    if (free_tx_.empty()) {
      // Slots come back only through CQEs, which this burst cannot reap; with UDP sends
      // completing inline that means thousands stuck on full socket buffers: drop.
      ++counters_.tx_no_slot;
      continue;
    }
    io_uring_sqe* sqe = GetSqe();  // submits and retries once when the SQ is full
    if (sqe == nullptr) {
      ++counters_.tx_no_sqe;
      continue;
    }
    const uint32_t slot_index = free_tx_.back();
    free_tx_.pop_back();
    TxSlot& slot = tx_slots_[slot_index];
    uint8_t* out = TxBuffer(slot_index);
    std::memcpy(out, d.head, d.head_len);
    if (d.body_len > 0) std::memcpy(out + d.head_len, d.body, d.body_len);
    if (d.tail_pad > 0) std::memset(out + d.head_len + d.body_len, 0, d.tail_pad);
    slot.iov.iov_len = size;
    slot.msg.msg_namelen = d.dst.ToSockaddr(&slot.addr);
    io_uring_prep_sendmsg(sqe, fd, &slot.msg, 0);
    io_uring_sqe_set_data64(sqe, UserData(kTxDone, 0, slot_index));
  }
  batch.Clear();
  if (!kicks_.empty()) KickSends();
}

bool UringWorker::SendToNode(const turn::TxDesc& d) {
  if (std::find(node_ips_.begin(), node_ips_.end(), d.dst.ip) == node_ips_.end()) return false;
  node_scratch_.resize(d.size());
  std::memcpy(node_scratch_.data(), d.head, d.head_len);
  if (d.body_len > 0) std::memcpy(node_scratch_.data() + d.head_len, d.body, d.body_len);
  if (d.tail_pad > 0) std::memset(node_scratch_.data() + d.head_len + d.body_len, 0, d.tail_pad);
  switch (node_sender_(relays_[SlotOf(d.socket)].address, d.dst, node_scratch_)) {
    case NodeSend::kNotTaken:
      return false;
    case NodeSend::kQueued:
      ++counters_.tx_packets;
      counters_.tx_bytes += d.size();
      return true;
    case NodeSend::kDropped:
      ++counters_.tx_err_again;  // as for a full socket buffer
      return true;
  }
  return true;
}

void UringWorker::RecycleBuffers() {
  if (pending_bids_.empty()) return;
  const int mask = io_uring_buf_ring_mask(limits_.rx_buffers);
  int offset = 0;
  for (uint16_t bid : pending_bids_) {
    io_uring_buf_ring_add(buf_ring_, RxBuffer(bid), limits_.rx_buffer_size, bid, mask, offset++);
  }
  io_uring_buf_ring_advance(buf_ring_, offset);
  pending_bids_.clear();
}

void UringWorker::Run() {
  const uint64_t tick_ns = uint64_t{limits_.tick_ms} * 1'000'000u;
  std::vector<io_uring_cqe*> cqes(limits_.cqe_burst);
  for (uint32_t i = 0; i < listeners_.size(); ++i) ArmListener(i);
  for (uint32_t i = 0; i < stream_listeners_.size(); ++i) ArmStreamListener(i);
  ArmWake();

  uint64_t now = MonotonicNs();
  engine_->SetNow(now);
  uint64_t next_tick = now + tick_ns;
  while (!stop_->load(std::memory_order_relaxed)) {
    if (rearm_needed_) RetryArms();
    const uint64_t wait_ns = next_tick > now ? next_tick - now : 0;
    __kernel_timespec ts;
    ts.tv_sec = static_cast<int64_t>(wait_ns / 1'000'000'000u);
    ts.tv_nsec = static_cast<long long>(wait_ns % 1'000'000'000u);
    io_uring_cqe* first = nullptr;
    // One io_uring_enter: submits this iteration's sends and re-arms, then waits for a CQE or
    // the tick. -ETIME and -EINTR are normal wake-ups.
    io_uring_submit_and_wait_timeout(&ring_, &first, 1, &ts, nullptr);

    now = MonotonicNs();
    engine_->SetNow(now);
    const unsigned n = io_uring_peek_batch_cqe(&ring_, cqes.data(), limits_.cqe_burst);
    for (unsigned i = 0; i < n; ++i) HandleCqe(cqes[i]);
    io_uring_cq_advance(&ring_, n);
    FlushTx();
    RecycleBuffers();
    if (n > 0) ++counters_.bursts;

    if (now >= next_tick) {
      engine_->Tick();
      FlushTx();
      if (!conns_.empty() && now >= next_stream_sweep_ns_) {
        SweepStreams();
        next_stream_sweep_ns_ = now + 1'000'000'000u;
      }
      ++counters_.ticks;
      next_tick = now + tick_ns;
    }
    if (commands_.pending()) RunCommands();
    events_.Flush();
    counters_.allocations = engine_->allocation_count();
    ++counters_.loop_iterations;
    counters_.busy_ns += MonotonicNs() - now;
  }
  // Commands queued while stopping still get their reply (a list of what is about to close).
  if (commands_.pending()) RunCommands();
  Shutdown();
}

void UringWorker::Shutdown() {
  engine_->CloseAll();
  FlushTx();
  CloseStreams();
  events_.Flush();
  counters_.allocations = engine_->allocation_count();

  // Cancel every remaining request (listener recvs, the wake read) and let queued sends finish,
  // so no kernel write can land in our buffers after they are unmapped.
  io_uring_submit(&ring_);
  io_uring_sync_cancel_reg reg{};
  reg.flags = IORING_ASYNC_CANCEL_ANY;
  reg.fd = -1;
  reg.timeout.tv_sec = 1;
  io_uring_register_sync_cancel(&ring_, &reg);

  const uint64_t deadline = MonotonicNs() + 1'000'000'000u;
  std::vector<io_uring_cqe*> cqes(limits_.cqe_burst);
  while (free_tx_.size() < limits_.tx_slots && MonotonicNs() < deadline) {
    __kernel_timespec ts{0, 50'000'000};
    io_uring_cqe* first = nullptr;
    io_uring_submit_and_wait_timeout(&ring_, &first, 1, &ts, nullptr);
    const unsigned n = io_uring_peek_batch_cqe(&ring_, cqes.data(), limits_.cqe_burst);
    for (unsigned i = 0; i < n; ++i) {
      if (UdKind(cqes[i]->user_data) == kTxDone) HandleTxDone(cqes[i], UdIndex(cqes[i]->user_data));
    }
    io_uring_cq_advance(&ring_, n);
  }
  for (Listener& l : listeners_) {
    if (l.fd >= 0) close(l.fd);
    l.fd = -1;
  }
  for (StreamListener& l : stream_listeners_) {
    if (l.fd >= 0) close(l.fd);
    l.fd = -1;
  }
  if (free_tx_.size() < limits_.tx_slots) {
    spdlog::warn("worker {}: {} sends still in flight at shutdown", index_,
                 limits_.tx_slots - free_tx_.size());
  }
}

}  // namespace turnpike::dataplane
