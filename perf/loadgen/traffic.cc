#include "perf/loadgen/traffic.h"

#include <liburing.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <thread>

namespace turnpike::loadgen {
namespace {

constexpr uint32_t kMagic = 0x4E45474C;  // "LGEN" little endian
constexpr size_t kPayloadHeader = 24;
constexpr int kRecvBatch = 64;
constexpr size_t kRecvBufSize = 2048;
constexpr unsigned kUringDepth = 1024;
constexpr uint64_t kMaxBurst = 4096;  // never catch up more than this in one go

void PutU32(uint8_t* p, uint32_t v) { memcpy(p, &v, 4); }
void PutU64(uint8_t* p, uint64_t v) { memcpy(p, &v, 8); }
uint32_t GetU32(const uint8_t* p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}
uint64_t GetU64(const uint8_t* p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
}

struct Local {
  int client_fd;
  int peer_fd;
  uint32_t index;
  uint16_t channel;
  uint32_t delivered_c2p = 0;  // in-window arrivals, to spot allocations that relay nothing
  uint32_t delivered_p2c = 0;
};

// Sends through io_uring when available: one io_uring_enter submits a whole burst spread over
// many sockets, which sendmmsg (one socket per call) cannot do with one socket per allocation.
class Sender {
 public:
  Sender(size_t packet_size, bool want_uring) : packet_size_(packet_size) {
    if (want_uring && io_uring_queue_init(kUringDepth, &ring_, 0) == 0) {
      uring_ = true;
      slots_.resize(kUringDepth);
      for (auto& s : slots_) s.buf.resize(packet_size);
      for (unsigned i = 0; i < kUringDepth; ++i) free_.push_back(i);
    } else {
      single_.resize(packet_size);
    }
  }
  ~Sender() {
    if (uring_) {
      Flush();
      while (outstanding_ > 0) Reap(true);
      io_uring_queue_exit(&ring_);
    }
  }
  bool uring() const { return uring_; }

  // Buffer for the next packet; Commit sends it. `stats`/`in_window` let a failed completion be
  // charged back to the right counters.
  uint8_t* Next() {
    if (!uring_) return single_.data();
    while (free_.empty()) {
      Flush();
      Reap(true);
    }
    current_ = free_.back();
    return slots_[current_].buf.data();
  }
  void Commit(int fd, size_t len, DirectionStats* stats, bool in_window) {
    if (!uring_) {
      if (send(fd, single_.data(), len, MSG_DONTWAIT) == static_cast<ssize_t>(len)) {
        ++stats->sent;
        stats->sent_window += in_window;
      } else {
        ++stats->send_errors;
      }
      return;
    }
    free_.pop_back();
    Slot& s = slots_[current_];
    s.stats = stats;
    s.in_window = in_window;
    s.len = len;
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (sqe == nullptr) {
      Flush();
      sqe = io_uring_get_sqe(&ring_);
    }
    io_uring_prep_send(sqe, fd, s.buf.data(), len, MSG_DONTWAIT);
    io_uring_sqe_set_data64(sqe, current_);
    ++queued_;
  }
  void Flush() {
    if (!uring_ || queued_ == 0) return;
    int n = io_uring_submit(&ring_);
    if (n > 0) {
      outstanding_ += static_cast<unsigned>(n);
      queued_ -= static_cast<unsigned>(n);
    }
  }
  void Reap(bool wait) {
    if (!uring_) return;
    io_uring_cqe* cqe;
    if (wait && outstanding_ > 0) io_uring_wait_cqe(&ring_, &cqe);
    unsigned head, seen = 0;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      unsigned slot = static_cast<unsigned>(io_uring_cqe_get_data64(cqe));
      Slot& s = slots_[slot];
      if (cqe->res == static_cast<int>(s.len)) {
        ++s.stats->sent;
        s.stats->sent_window += s.in_window;
      } else {
        ++s.stats->send_errors;
      }
      free_.push_back(slot);
      ++seen;
    }
    io_uring_cq_advance(&ring_, seen);
    outstanding_ -= seen;
  }

 private:
  struct Slot {
    std::vector<uint8_t> buf;
    DirectionStats* stats = nullptr;
    size_t len = 0;
    bool in_window = false;
  };
  size_t packet_size_;
  bool uring_ = false;
  io_uring ring_{};
  std::vector<Slot> slots_;
  std::vector<unsigned> free_;
  unsigned current_ = 0;
  unsigned queued_ = 0;
  unsigned outstanding_ = 0;
  std::vector<uint8_t> single_;
};

struct alignas(64) Worker {
  std::vector<Local> locals;
  const Options* opt;
  Timeline tl;
  double rate;  // this thread's share, packets/s over both directions
  TrafficResult result;

  void Receive(Local& l, bool on_peer, mmsghdr* msgs, int n) {
    for (int i = 0; i < n; ++i) {
      const uint8_t* p = static_cast<const uint8_t*>(msgs[i].msg_hdr.msg_iov->iov_base);
      size_t len = msgs[i].msg_len;
      DirectionStats& st = on_peer ? result.c2p : result.p2c;
      if (!on_peer) {
        // ChannelData from the server (RFC 8656 12.4); anything else (late STUN) is skipped.
        auto cd = stun::ParseChannelData({p, len});
        if (!cd) {
          ++st.malformed;
          continue;
        }
        if (cd->channel != l.channel) {
          ++st.misrouted;
          continue;
        }
        p = cd->payload.data();
        len = cd->payload.size();
      }
      if (len < kPayloadHeader || GetU32(p) != kMagic) {
        ++st.malformed;
        continue;
      }
      if (GetU32(p + 4) != l.index) {
        ++st.misrouted;
        continue;
      }
      int64_t now;
      timespec ts;
      clock_gettime(CLOCK_MONOTONIC, &ts);
      now = int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
      int64_t sent_at = static_cast<int64_t>(GetU64(p + 16));
      ++st.received;
      if (sent_at >= tl.window_start_ns && sent_at < tl.window_end_ns) {
        ++st.received_window;
        ++(on_peer ? l.delivered_c2p : l.delivered_p2c);
        st.latency.Record(now - sent_at);
      }
    }
  }

  void Run() {
    prctl(PR_SET_TIMERSLACK, 1UL);  // the default 50 us slack would blur the pacing
    const Options& o = *opt;
    Sender sender(kChannelDataHeaderPlus(o.size), o.use_uring);
    result.used_uring = sender.uring();
    int ep = epoll_create1(EPOLL_CLOEXEC);
    for (size_t i = 0; i < locals.size(); ++i) {
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u64 = (i << 1);
      epoll_ctl(ep, EPOLL_CTL_ADD, locals[i].client_fd, &ev);
      ev.data.u64 = (i << 1) | 1;
      epoll_ctl(ep, EPOLL_CTL_ADD, locals[i].peer_fd, &ev);
    }
    std::vector<uint8_t> rbufs(kRecvBatch * kRecvBufSize);
    std::vector<iovec> iovs(kRecvBatch);
    std::vector<mmsghdr> msgs(kRecvBatch);
    for (int i = 0; i < kRecvBatch; ++i) {
      iovs[i] = {rbufs.data() + i * kRecvBufSize, kRecvBufSize};
    }
    std::vector<epoll_event> events(512);

    const bool both = o.directions == kBoth;
    const int64_t burst_ns = int64_t{o.burst_us} * 1000;
    uint64_t scheduled = 0;  // packets whose send time has come and that were issued
    uint64_t seq = 0;
    size_t rr = 0;
    int64_t last_burst = 0;
    while (true) {
      int64_t now = MonotonicNs();
      if (now >= tl.stop_ns) break;
      int64_t next_wake = tl.stop_ns;
      if (now >= tl.start_ns && now < tl.window_end_ns) {
        uint64_t due = static_cast<uint64_t>(static_cast<double>(now - tl.start_ns) * rate / 1e9);
        // Only when the burst spacing has passed, so that high rates go out in bursts.
        if (due > scheduled && now - last_burst >= burst_ns) {
          uint64_t todo = std::min(due - scheduled, kMaxBurst);
          bool in_window = now >= tl.window_start_ns;
          for (uint64_t k = 0; k < todo; ++k) {
            uint64_t n = scheduled + k;
            bool c2p = both ? (n & 1) == 0 : o.directions == kClientToPeer;
            const Local& l = locals[rr];
            if (!both || (n & 1) == 1) rr = rr + 1 == locals.size() ? 0 : rr + 1;
            uint8_t* buf = sender.Next();
            uint8_t* payload = c2p ? buf + stun::kChannelDataHeaderSize : buf;
            PutU32(payload, kMagic);
            PutU32(payload + 4, l.index);
            PutU64(payload + 8, seq++);
            // Stamped right before the send is queued: the latency includes our own queueing.
            PutU64(payload + 16, static_cast<uint64_t>(MonotonicNs()));
            if (c2p) {
              stun::WriteChannelDataHeader(buf, l.channel, static_cast<uint16_t>(o.size));
              sender.Commit(l.client_fd, stun::kChannelDataHeaderSize + o.size, &result.c2p,
                            in_window);
            } else {
              sender.Commit(l.peer_fd, static_cast<size_t>(o.size), &result.p2c, in_window);
            }
          }
          scheduled += todo;
          last_burst = now;
          sender.Flush();
        }
        sender.Reap(false);
        int64_t next_due =
            tl.start_ns + static_cast<int64_t>(static_cast<double>(scheduled + 1) * 1e9 / rate);
        next_wake = std::max(next_due, last_burst + burst_ns);
        next_wake = std::min(next_wake, tl.window_end_ns);
      } else if (now < tl.start_ns) {
        next_wake = tl.start_ns;
      }
      int64_t wait = std::max<int64_t>(next_wake - MonotonicNs(), 0);
      wait = std::min<int64_t>(wait, 10000000);
      timespec to{static_cast<time_t>(wait / 1000000000), static_cast<long>(wait % 1000000000)};
      int n = epoll_pwait2(ep, events.data(), static_cast<int>(events.size()), &to, nullptr);
      for (int e = 0; e < n; ++e) {
        uint64_t key = events[e].data.u64;
        Local& l = locals[key >> 1];
        bool on_peer = key & 1;
        for (int i = 0; i < kRecvBatch; ++i) {
          msgs[i].msg_hdr = {};
          msgs[i].msg_hdr.msg_iov = &iovs[i];
          msgs[i].msg_hdr.msg_iovlen = 1;
        }
        int got = recvmmsg(on_peer ? l.peer_fd : l.client_fd, msgs.data(), kRecvBatch, MSG_DONTWAIT,
                           nullptr);
        if (got > 0) Receive(l, on_peer, msgs.data(), got);
      }
    }
    close(ep);
    // Every allocation gets packets in both directions in the window unless the rate is tiny.
    bool enough = rate * static_cast<double>(tl.window_end_ns - tl.window_start_ns) / 1e9 >=
                  4.0 * static_cast<double>(locals.size());
    for (const Local& l : locals) {
      if (enough && (o.directions & kClientToPeer) && l.delivered_c2p == 0) {
        ++result.c2p.silent_allocations;
      }
      if (enough && (o.directions & kPeerToClient) && l.delivered_p2c == 0) {
        ++result.p2c.silent_allocations;
      }
    }
  }

  static size_t kChannelDataHeaderPlus(int size) {
    return stun::kChannelDataHeaderSize + static_cast<size_t>(size);
  }
};

}  // namespace

TrafficResult RunTraffic(std::vector<Allocation>& allocs, const Options& opt, const Timeline& tl) {
  std::vector<const Allocation*> ready;
  for (const auto& a : allocs) {
    if (a.ready) ready.push_back(&a);
  }
  TrafficResult total;
  if (ready.empty()) return total;
  int threads = std::min<int>(opt.threads, static_cast<int>(ready.size()));
  std::vector<std::unique_ptr<Worker>> workers;
  for (int t = 0; t < threads; ++t) {
    auto w = std::make_unique<Worker>();
    w->opt = &opt;
    w->tl = tl;
    w->rate = opt.rate / threads;
    workers.push_back(std::move(w));
  }
  for (size_t i = 0; i < ready.size(); ++i) {
    const Allocation& a = *ready[i];
    workers[i % threads]->locals.push_back(
        {a.client_fd, a.peer_fd, static_cast<uint32_t>(a.index), a.channel});
  }
  std::vector<std::thread> running;
  for (auto& w : workers) running.emplace_back([&w] { w->Run(); });
  for (auto& t : running) t.join();
  total.used_uring = true;
  for (auto& w : workers) {
    total.c2p.Merge(w->result.c2p);
    total.p2c.Merge(w->result.p2c);
    total.used_uring = total.used_uring && w->result.used_uring;
  }
  return total;
}

}  // namespace turnpike::loadgen
