// TURN over TCP and TLS on the io_uring worker: accepting, reading, framing, TLS, sending and
// closing client connections. The engine sees each whole message exactly as it sees a UDP
// datagram (Engine::OnClientPacket with ClientTransport kTcp or kTls) and answers through the
// same TxBatch; FlushTx hands descriptors addressed to a connection to StreamSend.
//
// Limits that keep a slow or half-open client from exhausting the worker:
//  - NodeState caps connections per node (stream-max-connections) and per source IP
//    (stream-max-per-ip); beyond them a connection is closed at accept, before any TLS work.
//  - A connection must finish TLS and deliver one whole TURN message within
//    stream-handshake-timeout, and one without an allocation that sends nothing for
//    stream-idle-timeout is closed (SweepStreams, once a second).
//  - Receive memory is the shared provided-buffer ring plus a framer buffer of one TX slot per
//    connection (no declared length is ever allocated); send memory per connection is bounded
//    by kMaxPendingBytes, beyond which messages to that client are dropped whole and counted.
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "dataplane/uring/uring_ids.h"
#include "dataplane/uring/uring_worker.h"
#include "spdlog/spdlog.h"

namespace turnpike::dataplane {
namespace {

using namespace uring_ids;  // NOLINT: the worker's own encodings

// Bytes queued for one client beyond which further messages to it are dropped (whole messages,
// so framing survives): about 2 s of a 1 Mbit/s video stream.
constexpr size_t kMaxPendingBytes = 256 * 1024;
// A send buffer that grew past this during a burst is given back once drained.
constexpr size_t kKeepCapacity = 64 * 1024;

SocketAddress SockName(int fd, bool peer) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  const int rc = peer ? getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len)
                      : getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  if (rc != 0) return SocketAddress{};
  return SocketAddress::FromSockaddr(reinterpret_cast<const sockaddr*>(&ss));
}

}  // namespace

turn::SocketId UringWorker::ConnId(uint32_t index) const {
  return kConnBit | ((conns_[index].gen & kConnGenMask) << kIndexBits) | index;
}

UringWorker::Conn* UringWorker::ConnFor(turn::SocketId socket) {
  const uint32_t index = SlotOf(socket);
  if (index >= conns_.size()) return nullptr;
  Conn& c = conns_[index];
  if (c.state != Conn::State::kOpen ||
      ((socket >> kIndexBits) & kConnGenMask) != (c.gen & kConnGenMask)) {
    return nullptr;
  }
  return &c;
}

void UringWorker::ArmStreamListener(uint32_t index) {
  io_uring_sqe* sqe = GetSqe();
  if (sqe == nullptr) {
    rearm_needed_ = true;
    return;
  }
  io_uring_prep_multishot_accept(sqe, stream_listeners_[index].fd, nullptr, nullptr,
                                 SOCK_NONBLOCK | SOCK_CLOEXEC);
  io_uring_sqe_set_data64(sqe, UserData(kStreamAccept, 0, index));
  stream_listeners_[index].armed = true;
}

void UringWorker::ArmConnRecv(uint32_t index) {
  Conn& c = conns_[index];
  io_uring_sqe* sqe = GetSqe();
  if (sqe == nullptr) {
    rearm_needed_ = true;
    return;
  }
  io_uring_prep_recv_multishot(sqe, c.fd, nullptr, 0, 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = kBufferGroup;
  io_uring_sqe_set_data64(sqe, UserData(kConnRecv, c.gen, index));
  c.recv_armed = true;
}

void UringWorker::HandleAccept(const io_uring_cqe* cqe, uint32_t index) {
  if (index >= stream_listeners_.size()) return;
  StreamListener& l = stream_listeners_[index];
  const bool more = (cqe->flags & IORING_CQE_F_MORE) != 0;
  if (!more) {
    l.armed = false;
    if (cqe->res >= 0 && !stop_->load(std::memory_order_relaxed)) {
      ArmStreamListener(index);
    } else if (cqe->res != -ECANCELED) {
      stream_rearm_due_ = true;  // EMFILE and friends: try again at the next sweep, not now
    }
  }
  if (cqe->res < 0) {
    if (cqe->res != -ECANCELED) ++counters_.stream_accept_errors;
    return;
  }
  const int fd = cqe->res;
  if (stop_->load(std::memory_order_relaxed)) {
    close(fd);
    return;
  }
  const SocketAddress peer = SockName(fd, /*peer=*/true);
  switch (node_->EnterStream(peer.ip)) {
    case turn::StreamVerdict::kOk:
      break;
    case turn::StreamVerdict::kTotal:
      ++counters_.stream_refused_total;
      close(fd);
      return;
    case turn::StreamVerdict::kPerIp:
      ++counters_.stream_refused_per_ip;
      close(fd);
      return;
  }
  SslCtxPtr ctx;
  if (l.tls) ctx = tls_ != nullptr ? tls_->Get() : nullptr;
  if (free_conns_.empty() || (l.tls && ctx == nullptr)) {
    node_->LeaveStream(peer.ip);
    ++counters_.stream_refused_total;
    close(fd);
    return;
  }
  const int on = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));  // media: no Nagle delay
  const uint32_t ci = free_conns_.back();
  free_conns_.pop_back();
  Conn& c = conns_[ci];
  c.state = Conn::State::kOpen;
  c.fd = fd;
  c.tls = l.tls;
  c.peer = peer;
  c.local = SockName(fd, /*peer=*/false);
  c.established = false;
  c.kick_queued = false;
  c.opened_ns = MonotonicNs();
  c.last_message_ns = c.opened_ns;
  c.doomed = false;
  c.framer = std::make_unique<turn::StreamFramer>(limits_.tx_slot_size);
  ++counters_.stream_accepted;
  ++counters_.streams;
  if (c.tls) {
    c.session = std::make_unique<TlsSession>(ctx.get());
    if (!c.session->ok()) {
      ++counters_.stream_tls_failures;
      CloseConn(ci, CloseReason::kTls);
      return;
    }
  }
  ArmConnRecv(ci);
}

void UringWorker::HandleConnRecv(const io_uring_cqe* cqe, uint32_t index) {
  const bool has_buffer = (cqe->flags & IORING_CQE_F_BUFFER) != 0;
  const uint16_t bid = static_cast<uint16_t>(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
  const bool more = (cqe->flags & IORING_CQE_F_MORE) != 0;
  const bool live = index < conns_.size() && conns_[index].state == Conn::State::kOpen &&
                    (conns_[index].gen & kGenMask) == UdGen(cqe->user_data);
  if (live && !more) conns_[index].recv_armed = false;

  bool keep = live;
  if (live) {
    Conn& c = conns_[index];
    if (cqe->res == 0) {
      ++counters_.stream_closed_by_client;
      CloseConn(index, CloseReason::kClient);
      keep = false;
    } else if (cqe->res < 0) {
      if (cqe->res == -ENOBUFS) {
        ++counters_.rx_enobufs;  // re-armed below; the bytes wait in the socket
      } else if (cqe->res != -ECANCELED) {
        ++counters_.stream_errors;
        CloseConn(index, CloseReason::kError);
        keep = false;
      }
    } else if (has_buffer) {
      const std::span<const uint8_t> bytes(RxBuffer(bid), static_cast<size_t>(cqe->res));
      counters_.rx_bytes += bytes.size();
      if (!c.tls) {
        FeedFramer(index, bytes);
      } else {
        const bool was_done = c.session->handshake_done();
        // Closing this connection from inside Receive (a framing error, a failed send) would
        // free the session under OpenSSL's feet: CloseConn defers while busy_conn_ is set.
        busy_conn_ = index;
        const TlsSession::Result r = c.session->Receive(
            bytes, stream_scratch_, &c.pending,
            [this, index](std::span<const uint8_t> plain) { FeedFramer(index, plain); });
        busy_conn_ = kNoConn;
        if (!was_done && c.session->handshake_done()) ++counters_.tls_handshakes;
        if (c.doomed) {
          CloseConn(index, c.doom_reason);
        } else if (c.state == Conn::State::kOpen) {
          if (r == TlsSession::Result::kClosed) {
            ++counters_.stream_closed_by_client;
            CloseConn(index, CloseReason::kClient);
          } else if (r == TlsSession::Result::kFailed) {
            ++counters_.stream_tls_failures;
            SPDLOG_DEBUG("TLS from {} failed: {}", c.peer.ToString(), c.session->error());
            CloseConn(index, CloseReason::kTls);
          } else if (!c.pending.empty()) {
            QueueKick(index);  // handshake messages, session tickets
          }
        }
      }
      keep = conns_[index].state == Conn::State::kOpen;
    }
  }
  if (has_buffer) pending_bids_.push_back(bid);
  if (keep && !more && !stop_->load(std::memory_order_relaxed)) {
    ++counters_.rx_rearms;
    ArmConnRecv(index);
  }
}

void UringWorker::FeedFramer(uint32_t index, std::span<const uint8_t> bytes) {
  Conn& c = conns_[index];
  if (c.state != Conn::State::kOpen || c.doomed) return;
  const turn::SocketId id = ConnId(index);
  const turn::ClientTransport transport =
      c.tls ? turn::ClientTransport::kTls : turn::ClientTransport::kTcp;
  const uint8_t* chunk_begin = bytes.data();
  const uint8_t* chunk_end = bytes.data() + bytes.size();
  const absl::Status status =
      c.framer->Feed(bytes, [&](std::span<const uint8_t> message, bool /*channel_data*/) {
        if (tx_->size() + kTxHeadroom > turn::TxBatch::kCapacity) FlushTx();
        ++counters_.rx_packets;
        c.established = true;
        c.last_message_ns = MonotonicNs();
        engine_->OnClientPacket(id, c.local, c.peer, message, *tx_, transport);
        // A message completed in the framer's own buffer is overwritten by the next bytes
        // kept there: send what points into it now.
        if (message.data() < chunk_begin || message.data() >= chunk_end) FlushTx();
      });
  // TLS plaintext lives in the scratch buffer, reused by the next record: flush before it is.
  if (c.tls) FlushTx();
  if (!status.ok() && c.state == Conn::State::kOpen) {
    ++counters_.stream_framing_errors;
    SPDLOG_DEBUG("closing {}: stream framing error {}", c.peer.ToString(),
                 static_cast<int>(c.framer->error()));
    CloseConn(index, CloseReason::kFraming);
  }
}

void UringWorker::StreamSend(const turn::TxDesc& d) {
  Conn* c = ConnFor(d.socket);
  if (c == nullptr || c->doomed) {
    ++counters_.tx_stale_socket;
    return;
  }
  const size_t size = d.size();
  if (c->pending.size() + size > kMaxPendingBytes) {
    ++counters_.stream_tx_dropped;
    return;
  }
  if (!c->tls) {
    c->pending.insert(c->pending.end(), d.head, d.head + d.head_len);
    if (d.body_len > 0) c->pending.insert(c->pending.end(), d.body, d.body + d.body_len);
    c->pending.resize(c->pending.size() + d.tail_pad, 0);
  } else {
    // One TLS record per message: assemble it first, in a buffer of its own (stream_scratch_
    // may hold plaintext the framer has not consumed yet: this runs inside FeedFramer).
    if (size > stream_tx_scratch_.size()) {
      ++counters_.tx_too_big;
      return;
    }
    uint8_t* out = stream_tx_scratch_.data();
    std::memcpy(out, d.head, d.head_len);
    if (d.body_len > 0) std::memcpy(out + d.head_len, d.body, d.body_len);
    std::memset(out + d.head_len + d.body_len, 0, d.tail_pad);
    if (!c->session->Send({out, size}, &c->pending)) {
      ++counters_.stream_tls_failures;
      CloseConn(SlotOf(d.socket), CloseReason::kTls);
      return;
    }
  }
  ++counters_.tx_packets;
  counters_.tx_bytes += size;
  QueueKick(SlotOf(d.socket));
}

void UringWorker::QueueKick(uint32_t index) {
  Conn& c = conns_[index];
  if (c.kick_queued) return;
  c.kick_queued = true;
  kicks_.push_back(index);
}

void UringWorker::KickSends() {
  kicks_running_.swap(kicks_);  // StartSend may queue a connection again
  for (uint32_t index : kicks_running_) {
    Conn& c = conns_[index];
    c.kick_queued = false;
    if (c.state == Conn::State::kOpen && !c.send_inflight && !c.pending.empty()) {
      StartSend(index);
    }
  }
  kicks_running_.clear();
}

void UringWorker::StartSend(uint32_t index) {
  Conn& c = conns_[index];
  if (c.sending.empty()) {
    c.sending.swap(c.pending);
    c.sent = 0;
  }
  if (c.sending.empty()) return;
  io_uring_sqe* sqe = GetSqe();
  if (sqe == nullptr) {
    // SQ full even after a submit: try again with this connection's next message or close.
    QueueKick(index);
    return;
  }
  io_uring_prep_send(sqe, c.fd, c.sending.data() + c.sent, c.sending.size() - c.sent,
                     MSG_NOSIGNAL);
  io_uring_sqe_set_data64(sqe, UserData(kConnSend, c.gen, index));
  c.send_inflight = true;
}

void UringWorker::HandleConnSend(const io_uring_cqe* cqe, uint32_t index) {
  if (index >= conns_.size()) return;
  Conn& c = conns_[index];
  if ((c.gen & kGenMask) != UdGen(cqe->user_data) || !c.send_inflight) return;
  c.send_inflight = false;
  if (c.state == Conn::State::kClosing) {
    FreeConn(index);
    return;
  }
  if (cqe->res < 0) {
    ++counters_.stream_errors;
    CloseConn(index, CloseReason::kError);
    return;
  }
  c.sent += static_cast<size_t>(cqe->res);
  if (c.sent < c.sending.size()) {
    StartSend(index);  // short write: the rest
    return;
  }
  c.sent = 0;
  c.sending.clear();
  if (c.sending.capacity() > kKeepCapacity) c.sending.shrink_to_fit();
  if (!c.pending.empty()) StartSend(index);
}

void UringWorker::CloseConn(uint32_t index, CloseReason reason) {
  Conn& c = conns_[index];
  if (c.state != Conn::State::kOpen) return;
  if (index == busy_conn_) {
    if (!c.doomed) c.doom_reason = reason;
    c.doomed = true;
    return;
  }
  SPDLOG_DEBUG("closing {} connection from {} ({})", c.tls ? "TLS" : "TCP", c.peer.ToString(),
               static_cast<int>(reason));
  engine_->OnStreamClosed(FiveTuple{c.peer, c.local, IPPROTO_TCP});
  node_->LeaveStream(c.peer.ip);
  if (c.recv_armed) CancelNow(UserData(kConnRecv, c.gen, index));
  c.recv_armed = false;
  if (reason == CloseReason::kTls && !c.send_inflight && !c.pending.empty()) {
    // The TLS alert that says why (e.g. protocol_version): one best-effort, non-blocking send.
    [[maybe_unused]] ssize_t n =
        send(c.fd, c.pending.data(), c.pending.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  }
  // A send queued this iteration still sits in the SQ and names the fd by number: hand it to
  // the kernel before the number is closed and possibly reused by the next accept or socket.
  if (c.send_inflight && io_uring_sq_ready(&ring_) > 0) io_uring_submit(&ring_);
  // shutdown() first: it wakes a send blocked on a full socket buffer, whose CQE frees the slot.
  shutdown(c.fd, SHUT_RDWR);
  close(c.fd);
  c.fd = -1;
  c.session.reset();
  c.framer.reset();
  c.pending.clear();
  c.state = Conn::State::kClosing;
  --counters_.streams;
  if (!c.send_inflight) FreeConn(index);
}

void UringWorker::FreeConn(uint32_t index) {
  Conn& c = conns_[index];
  c.sending.clear();
  c.sending.shrink_to_fit();
  c.pending.shrink_to_fit();
  c.sent = 0;
  c.state = Conn::State::kFree;
  ++c.gen;  // late CQEs and stale SocketIds of this connection no longer match
  free_conns_.push_back(index);
}

void UringWorker::SweepStreams() {
  if (stream_rearm_due_) {
    stream_rearm_due_ = false;
    for (uint32_t i = 0; i < stream_listeners_.size(); ++i) {
      if (!stream_listeners_[i].armed) ArmStreamListener(i);
    }
  }
  if (counters_.streams == 0) return;
  const uint64_t now = MonotonicNs();
  const uint64_t handshake_ns = uint64_t{config_->stream_handshake_timeout} * 1'000'000'000u;
  const uint64_t idle_ns = uint64_t{config_->stream_idle_timeout} * 1'000'000'000u;
  for (uint32_t i = 0; i < conns_.size(); ++i) {
    Conn& c = conns_[i];
    if (c.state != Conn::State::kOpen) continue;
    if (!c.established) {
      if (now - c.opened_ns >= handshake_ns) {
        ++counters_.stream_handshake_timeouts;
        CloseConn(i, CloseReason::kHandshake);
      }
    } else if (now - c.last_message_ns >= idle_ns &&
               !engine_->HasAllocation(FiveTuple{c.peer, c.local, IPPROTO_TCP})) {
      ++counters_.stream_idle_timeouts;
      CloseConn(i, CloseReason::kIdle);
    }
  }
}

// Shutdown: the engine has closed every allocation already; drop the connections without the
// per-connection cancel (the worker cancels everything at once next).
void UringWorker::CloseStreams() {
  for (Conn& c : conns_) {
    if (c.state != Conn::State::kOpen) continue;
    node_->LeaveStream(c.peer.ip);
    shutdown(c.fd, SHUT_RDWR);
    close(c.fd);
    c.fd = -1;
    c.state = Conn::State::kClosing;
    c.session.reset();
    c.framer.reset();
  }
  counters_.streams = 0;
}

}  // namespace turnpike::dataplane
