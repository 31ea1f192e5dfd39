#include "perf/loadgen/control.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <random>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "turn/auth.h"

namespace turnpike::loadgen {
namespace {

constexpr int64_t kRm = 16;  // RFC 8489 6.2.1: wait Rm * RTO after the last transmission

std::mt19937_64& Rng() {
  static std::mt19937_64 rng{std::random_device{}()};
  return rng;
}

void SetBuffers(int fd, int bytes) {
  // Root can go past net.core.[rw]mem_max with the FORCE variants; fall back otherwise.
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof(bytes)) != 0) {
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof(bytes));
  }
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &bytes, sizeof(bytes)) != 0) {
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof(bytes));
  }
}

absl::StatusOr<int> UdpSocket(AddressFamily family, int buf) {
  int fd = socket(family == AddressFamily::kIPv4 ? AF_INET : AF_INET6,
                  SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return absl::ResourceExhaustedError(
        absl::StrCat("socket: ", strerror(errno), " (raise ulimit -n?)"));
  }
  SetBuffers(fd, buf);
  return fd;
}

// A UDP socket connected to the server; the kernel picks the source port.
absl::StatusOr<int> ClientSocket(const Options& opt) {
  auto fd = UdpSocket(opt.server.family(), opt.sock_buf);
  if (!fd.ok()) return fd.status();
  sockaddr_storage ss;
  socklen_t len = opt.server.ToSockaddr(&ss);
  if (connect(*fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    close(*fd);
    return absl::UnavailableError(
        absl::StrCat("connect ", opt.server.ToString(), ": ", strerror(errno)));
  }
  return *fd;
}

struct Engine {
  std::vector<Allocation>& allocs;
  const Options& opt;
  ControlStats stats;
  int epfd = -1;
  int in_flight = 0;

  void Finish(Allocation& a, bool ok, int code) {
    --in_flight;
    if (ok) {
      a.step = Step::kDone;
      ++stats.ok;
    } else {
      a.step = Step::kFailed;
      a.error_code = code;
      ++stats.failed;
      ++stats.error_codes[code];
      if (code == -1) ++stats.timeouts;
    }
  }

  // Builds the request for a.step with a fresh transaction ID and sends it.
  void Start(Allocation& a) {
    if (!perf::BuildTurnRequest(a.turn, a.step, a.channel, a.peer_local,
                                [] { return Rng()(); })) {
      Finish(a, false, -2);
      return;
    }
    a.transmissions = 0;
    a.rto_ns = int64_t{opt.rto_ms} * 1000000;
    Transmit(a, MonotonicNs());
  }

  void Transmit(Allocation& a, int64_t now) {
    ++a.transmissions;
    // A failed send (ENOBUFS, ECONNREFUSED from an earlier ICMP) is left to the retransmission
    // timer, like a lost datagram.
    (void)send(a.client_fd, a.turn.request.data(), a.turn.request_len, MSG_DONTWAIT);
    a.deadline_ns =
        now +
        (a.transmissions >= opt.max_transmissions ? kRm * int64_t{opt.rto_ms} * 1000000 : a.rto_ns);
    a.rto_ns *= 2;
  }

  void OnTimeout(Allocation& a, int64_t now) {
    if (a.transmissions >= opt.max_transmissions) {
      Finish(a, false, -1);
      return;
    }
    ++stats.retransmits;
    Transmit(a, now);
  }

  void OnMessage(Allocation& a, std::span<const uint8_t> data) {
    if (a.step == Step::kDone || a.step == Step::kFailed || a.step == Step::kIdle) return;
    const perf::TurnResponse r = perf::OnTurnResponse(a.turn, a.step, data);
    switch (r.kind) {
      case perf::TurnResponse::Kind::kIgnore:
        if (r.integrity_failure) ++stats.integrity_failures;
        return;
      case perf::TurnResponse::Kind::kSuccess:
        if (a.step == Step::kChannelBind) {
          a.ready = true;
        } else if (a.step == Step::kRefreshZero) {
          a.ready = false;
        } else {
          a.relayed = *r.relayed;
          if (r.mapped) a.mapped = *r.mapped;
          a.step = Step::kChannelBind;
          Start(a);
          return;
        }
        Finish(a, true, 0);
        return;
      case perf::TurnResponse::Kind::kSendAgain:
        if (a.step == Step::kAllocateProbe) a.step = Step::kAllocate;
        Start(a);
        return;
      case perf::TurnResponse::Kind::kError:
        if (r.code == 437 && (a.step == Step::kAllocateProbe || a.step == Step::kAllocate) &&
            a.reopen_retries < perf::kMaxNonceRetries && Reopen(a)) {
          // RFC 8656 7.2: the server still holds an allocation on this 5-tuple, typically one a
          // previous run released with Refresh(0) on the same ephemeral port moments ago. Take
          // a new source port and start over.
          ++stats.reopened;
          a.step = Step::kAllocateProbe;
          Start(a);
          return;
        }
        Finish(a, false, r.code);
        return;
    }
  }

  bool Reopen(Allocation& a) {
    auto fd = ClientSocket(opt);
    if (!fd.ok()) return false;
    ++a.reopen_retries;
    close(a.client_fd);  // also leaves the epoll set
    a.client_fd = *fd;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u32 = static_cast<uint32_t>(a.index);
    epoll_ctl(epfd, EPOLL_CTL_ADD, a.client_fd, &ev);
    return true;
  }

  void Run(const std::vector<int>& order, Step first) {
    int64_t t0 = MonotonicNs();
    epfd = epoll_create1(EPOLL_CLOEXEC);
    for (int i : order) {
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u32 = static_cast<uint32_t>(i);
      epoll_ctl(epfd, EPOLL_CTL_ADD, allocs[i].client_fd, &ev);
    }
    size_t next = 0;
    std::vector<epoll_event> events(256);
    std::array<uint8_t, 2048> buf;
    std::vector<int> active;
    while (true) {
      while (in_flight < opt.setup_window && next < order.size()) {
        Allocation& a = allocs[order[next++]];
        a.step = first;
        a.turn.nonce_retries = 0;
        a.reopen_retries = 0;
        ++in_flight;
        active.push_back(a.index);
        Start(a);
      }
      // Drop finished transactions from the active list and find the nearest deadline.
      int64_t now = MonotonicNs();
      int64_t nearest = now + 1000000000;
      size_t w = 0;
      for (int i : active) {
        Allocation& a = allocs[i];
        if (a.step == Step::kDone || a.step == Step::kFailed) continue;
        if (a.deadline_ns <= now) OnTimeout(a, now);
        if (a.step == Step::kDone || a.step == Step::kFailed) continue;
        nearest = std::min(nearest, a.deadline_ns);
        active[w++] = i;
      }
      active.resize(w);
      if (active.empty() && next >= order.size()) break;
      if (active.empty()) continue;
      int timeout_ms = static_cast<int>((std::max<int64_t>(nearest - now, 0) + 999999) / 1000000);
      int n = epoll_wait(epfd, events.data(), static_cast<int>(events.size()), timeout_ms);
      for (int e = 0; e < n; ++e) {
        Allocation& a = allocs[events[e].data.u32];
        while (true) {
          ssize_t len = recv(a.client_fd, buf.data(), buf.size(), MSG_DONTWAIT);
          if (len < 0) {
            if (errno == EINTR) continue;
            break;  // EAGAIN, or ECONNREFUSED from an ICMP error: the timer handles it
          }
          OnMessage(a, std::span<const uint8_t>(buf.data(), static_cast<size_t>(len)));
        }
      }
    }
    close(epfd);
    stats.seconds = static_cast<double>(MonotonicNs() - t0) / 1e9;
  }
};

}  // namespace

int64_t MonotonicNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

absl::StatusOr<std::vector<Allocation>> CreateAllocations(const Options& opt) {
  std::vector<Allocation> allocs(static_cast<size_t>(opt.allocations));
  // REST usernames are "<expiry unix time>:<name>"; a day is far more than any run.
  long expiry = static_cast<long>(time(nullptr)) + 86400;
  sockaddr_storage ss;
  for (int i = 0; i < opt.allocations; ++i) {
    Allocation& a = allocs[i];
    a.index = i;
    if (!opt.secret.empty()) {
      a.turn.username = absl::StrFormat("%d:loadgen%d", expiry, i);
      a.turn.password = turn::Authenticator::RestPassword(opt.secret, a.turn.username);
    } else {
      a.turn.username = opt.user;
      a.turn.password = opt.password;
    }
    a.turn.realm = opt.realm;
    auto cfd = ClientSocket(opt);
    if (!cfd.ok()) return cfd.status();
    a.client_fd = *cfd;
    auto pfd = UdpSocket(opt.peer_ip.family, opt.sock_buf);
    if (!pfd.ok()) return pfd.status();
    a.peer_fd = *pfd;
    SocketAddress bind_addr{opt.peer_ip, 0};
    socklen_t len = bind_addr.ToSockaddr(&ss);
    if (bind(a.peer_fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
      return absl::UnavailableError(
          absl::StrCat("bind ", bind_addr.ToString(), ": ", strerror(errno)));
    }
    len = sizeof(ss);
    getsockname(a.peer_fd, reinterpret_cast<sockaddr*>(&ss), &len);
    a.peer_local = SocketAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&ss));
    // Channel numbers are per allocation (RFC 8656 12); spread them anyway so a server that
    // mixed allocations up would be caught by the receivers' checks.
    a.channel = static_cast<uint16_t>(stun::kMinChannel + (i % 0x1000));
  }
  return allocs;
}

ControlStats RunSetup(std::vector<Allocation>& allocs, const Options& opt) {
  Engine engine{allocs, opt, {}};
  std::vector<int> order;
  for (auto& a : allocs) order.push_back(a.index);
  engine.Run(order, Step::kAllocateProbe);
  return engine.stats;
}

ControlStats RunTeardown(std::vector<Allocation>& allocs, const Options& opt) {
  Engine engine{allocs, opt, {}};
  std::vector<int> order;
  for (auto& a : allocs) {
    if (a.ready) order.push_back(a.index);
  }
  engine.Run(order, Step::kRefreshZero);
  return engine.stats;
}

}  // namespace turnpike::loadgen
