// Start-up and lifecycle of the io_uring backend: resolves the addresses to serve, binds every
// listening socket before any thread runs (so errors come back as one Status), builds one
// UringWorker per thread, and starts, stops and joins them.
#include "dataplane/uring/uring_backend.h"

#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <future>
#include <string>

#include "absl/strings/str_format.h"
#include "dataplane/uring/uring_worker.h"
#include "dataplane/uring/socket_buffers.h"
#include "spdlog/spdlog.h"

namespace turnpike::dataplane {
namespace {

bool IsLoopback(const IpAddress& ip) {
  if (ip.is_v4()) return ip.bytes[0] == 127;
  return ip == IpAddress::Loopback(AddressFamily::kIPv6);
}

bool IsV6LinkLocal(const IpAddress& ip) {
  return ip.is_v6() && ip.bytes[0] == 0xfe && (ip.bytes[1] & 0xc0) == 0x80;
}

// Every usable address of this host, like coturn does when no listening-ip is given. IPv6
// link-local addresses are skipped: they need a scope id that SocketAddress does not carry.
absl::StatusOr<std::vector<IpAddress>> LocalAddresses() {
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) {
    return absl::UnavailableError(absl::StrFormat("getifaddrs: %s", strerror(errno)));
  }
  std::vector<IpAddress> out;
  for (ifaddrs* ifa = list; ifa != nullptr; ifa = ifa->ifa_next) {
    if (ifa->ifa_addr == nullptr || (ifa->ifa_flags & IFF_UP) == 0) continue;
    const int family = ifa->ifa_addr->sa_family;
    if (family != AF_INET && family != AF_INET6) continue;
    const IpAddress ip = SocketAddress::FromSockaddr(ifa->ifa_addr).ip;
    if (ip.IsUnspecified() || IsV6LinkLocal(ip)) continue;
    if (std::find(out.begin(), out.end(), ip) == out.end()) out.push_back(ip);
  }
  freeifaddrs(list);
  if (out.empty()) return absl::UnavailableError("no local IP address found (getifaddrs)");
  return out;
}

// Relay addresses default to the listening ones, except that loopback is only used for a family
// with nothing else: a relay address on 127.0.0.1 is useless to any remote client.
std::vector<IpAddress> DefaultRelayIps(const std::vector<IpAddress>& listening) {
  std::vector<IpAddress> out;
  for (const IpAddress& ip : listening) {
    if (!IsLoopback(ip)) out.push_back(ip);
  }
  for (const IpAddress& ip : listening) {
    if (!IsLoopback(ip)) continue;
    const bool family_covered = std::any_of(out.begin(), out.end(), [&](const IpAddress& o) {
      return o.family == ip.family && !IsLoopback(o);
    });
    if (!family_covered) out.push_back(ip);
  }
  return out;
}

std::string BindError(const SocketAddress& addr, int err, std::string_view what) {
  switch (err) {
    case EADDRINUSE:
      return absl::StrFormat(
          "port %d is in use on %s (another TURN server running? stop it or change %s)",
          addr.port, addr.ip.ToString(),
          what == "relay-ip" ? "min-port/max-port"
          : what == "tls-listening-port" ? "tls-listening-port" : "listening-port");
    case EACCES:
    case EPERM:
      return absl::StrFormat(
          "no permission to bind %s (ports below 1024 need root or CAP_NET_BIND_SERVICE)",
          addr.ToString());
    case EADDRNOTAVAIL:
      return absl::StrFormat("%s is not an address of this host (check %s)", addr.ip.ToString(),
                             what);
    default:
      return absl::StrFormat("cannot bind %s: %s", addr.ToString(), strerror(err));
  }
}

// A UDP socket bound to `addr`. `reuseport` joins the address's SO_REUSEPORT group, in which the
// kernel hashes each client 5-tuple to one socket, i.e. one worker.
// `nonlocal`: the address need not be on an interface yet (AllowNonLocalBind).
absl::StatusOr<int> BindUdp(const SocketAddress& addr, bool reuseport, std::string_view what,
                            bool nonlocal = false) {
  const int domain = addr.ip.is_v4() ? AF_INET : AF_INET6;
  const int fd = socket(domain, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_UDP);
  if (fd < 0) {
    return absl::UnavailableError(absl::StrFormat("socket: %s", strerror(errno)));
  }
  const int on = 1;
  if (domain == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
  if (nonlocal) AllowNonLocalBind(fd, domain);
  if (reuseport) {
    SizeSocketBuffers(fd, kListenerRcvBuf, kListenerSndBuf);
  }
  if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) != 0) {
    const int err = errno;
    close(fd);
    return absl::UnavailableError(absl::StrFormat("SO_REUSEPORT: %s", strerror(err)));
  }
  sockaddr_storage ss;
  const socklen_t len = addr.ToSockaddr(&ss);
  if (bind(fd, reinterpret_cast<const sockaddr*>(&ss), len) != 0) {
    const int err = errno;
    close(fd);
    if (err == EADDRINUSE) return absl::AlreadyExistsError(BindError(addr, err, what));
    if (err == EACCES || err == EPERM) return absl::PermissionDeniedError(BindError(addr, err, what));
    return absl::UnavailableError(BindError(addr, err, what));
  }
  return fd;
}

// A listening TCP socket bound to `addr` (TURN over TCP or TLS). `reuseport` as for BindUdp: the
// kernel hashes each connection to one worker's socket.
absl::StatusOr<int> BindTcp(const SocketAddress& addr, bool reuseport, std::string_view what,
                            bool nonlocal = false) {
  const int domain = addr.ip.is_v4() ? AF_INET : AF_INET6;
  const int fd = socket(domain, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
  if (fd < 0) {
    return absl::UnavailableError(absl::StrFormat("socket: %s", strerror(errno)));
  }
  const int on = 1;
  if (domain == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
  if (nonlocal) AllowNonLocalBind(fd, domain);
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));  // restart over TIME_WAIT
  if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) != 0) {
    const int err = errno;
    close(fd);
    return absl::UnavailableError(absl::StrFormat("SO_REUSEPORT: %s", strerror(err)));
  }
  sockaddr_storage ss;
  const socklen_t len = addr.ToSockaddr(&ss);
  if (bind(fd, reinterpret_cast<const sockaddr*>(&ss), len) != 0) {
    const int err = errno;
    close(fd);
    std::string message = BindError(addr, err, what);
    if (what == "tls-listening-port") message += " (TCP, for TLS)";
    else message += " (TCP)";
    if (err == EADDRINUSE) return absl::AlreadyExistsError(message);
    if (err == EACCES || err == EPERM) return absl::PermissionDeniedError(message);
    return absl::UnavailableError(message);
  }
  if (reuseport && listen(fd, 1024) != 0) {
    const int err = errno;
    close(fd);
    return absl::UnavailableError(absl::StrFormat("listen %s: %s", addr.ToString(), strerror(err)));
  }
  return fd;
}

uint16_t BoundPort(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return 0;
  return SocketAddress::FromSockaddr(reinterpret_cast<const sockaddr*>(&ss)).port;
}

// Multishot recvmsg (IORING_RECV_MULTISHOT on RECVMSG) arrived in Linux 6.0.
absl::Status CheckKernel() {
  utsname u{};
  if (uname(&u) != 0) return absl::OkStatus();
  int major = 0, minor = 0;
  if (std::sscanf(u.release, "%d.%d", &major, &minor) != 2) return absl::OkStatus();
  if (major < 6) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "backend=uring needs Linux 6.0 or newer for multishot recvmsg (this is %s)", u.release));
  }
  return absl::OkStatus();
}

// Every relay socket is a file descriptor: make sure the limit allows max-allocations of them
// (one each; the rare dual-stack allocation takes two).
void RaiseFileLimit(uint64_t needed) {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < needed) {
    rl.rlim_cur = (rl.rlim_max == RLIM_INFINITY) ? needed : std::min<rlim_t>(rl.rlim_max, needed);
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < needed) {
    spdlog::warn(
        "open-file limit is {} but max-allocations and stream-max-connections may need {} "
        "sockets; allocations and connections past the limit will fail (raise LimitNOFILE / "
        "ulimit -n, or lower them)",
        static_cast<uint64_t>(rl.rlim_cur), needed);
  }
}

}  // namespace

UringBackend::UringBackend() = default;

UringBackend::~UringBackend() {
  Stop();
  Join();
}

absl::StatusOr<std::unique_ptr<UringBackend>> UringBackend::Create(const ServerConfig& config,
                                                                   const UringLimits& limits) {
  return Build(config, limits, nullptr);
}

absl::StatusOr<std::unique_ptr<UringBackend>> UringBackend::CreateStreamHost(
    const ServerConfig& config, const StreamHostOptions& options, const UringLimits& limits) {
  const bool tls = !config.no_tls && !config.cert_file.empty();
  if (config.no_tcp && !tls) return std::unique_ptr<UringBackend>();
  if (options.node == nullptr || config.listening_ips.empty() || config.relay_ips.empty() ||
      config.listening_port == 0) {
    return absl::InvalidArgumentError(
        "a stream host needs the node state, listening and relay addresses and the port");
  }
  return Build(config, limits, &options);
}

absl::StatusOr<std::unique_ptr<UringBackend>> UringBackend::Build(const ServerConfig& config,
                                                                  const UringLimits& limits,
                                                                  const StreamHostOptions* host) {
  if (absl::Status s = CheckKernel(); !s.ok()) return s;
  std::unique_ptr<UringBackend> backend(new UringBackend());
  ServerConfig& cfg = backend->config_;
  cfg = config;
  // A stream host's addresses are the other backend's (bound before they reach an interface),
  // and UDP to the listening port is that backend's.
  const bool nonlocal = host != nullptr;
  if (host != nullptr) cfg.no_udp = true;

  bool auto_listen = false;
  if (cfg.listening_ips.empty()) {
    absl::StatusOr<std::vector<IpAddress>> local = LocalAddresses();
    if (!local.ok()) return local.status();
    cfg.listening_ips = *std::move(local);
    auto_listen = true;
  }
  for (const IpAddress& ip : cfg.listening_ips) {
    if (ip.IsUnspecified()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "listening-ip %s: wildcard addresses are not supported by backend=uring; list the "
          "addresses or leave listening-ip unset to use every local address",
          ip.ToString()));
    }
  }
  if (cfg.relay_ips.empty()) cfg.relay_ips = DefaultRelayIps(cfg.listening_ips);
  if (cfg.min_port > cfg.max_port) {
    return absl::InvalidArgumentError("min-port is larger than max-port");
  }

  const uint32_t workers =
      host != nullptr          ? 1
      : cfg.worker_threads > 0 ? cfg.worker_threads
                               : std::max(1u, std::thread::hardware_concurrency());
  // max-allocations is enforced node-wide (NodeState); each worker's table is sized by
  // PerWorkerAllocations (the kernel's SO_REUSEPORT hash does not spread clients perfectly).
  const uint32_t node_workers = host != nullptr ? host->worker_count : workers;
  const uint32_t per_worker = PerWorkerAllocations(cfg.max_allocations, node_workers);

  // Pick the port with a probe socket outside the SO_REUSEPORT group. A plain bind fails when
  // anyone holds the port, even another process with SO_REUSEPORT that our group would
  // otherwise silently share traffic with. It also lets listening_port 0 pick a free port.
  std::vector<IpAddress> usable;
  for (const IpAddress& ip : cfg.listening_ips) {
    if (host != nullptr) {  // the port is given, and UDP on it is not ours
      usable.push_back(ip);
      continue;
    }
    absl::StatusOr<int> probe = BindUdp(SocketAddress{ip, cfg.listening_port}, false,
                                        "listening-ip");
    if (!probe.ok()) {
      // An auto-detected address may vanish or still be tentative (IPv6 DAD): skip it.
      if (auto_listen && !absl::IsAlreadyExists(probe.status()) &&
          !absl::IsPermissionDenied(probe.status())) {
        spdlog::warn("not listening on {}: {}", ip.ToString(), std::string(probe.status().message()));
        continue;
      }
      return probe.status();
    }
    if (cfg.listening_port == 0) {
      // The kernel picked a free UDP port; TCP listens on the same number, so retry until
      // the number is free for TCP too (tests run many servers side by side).
      int udp = *probe;
      for (int attempt = 0; !cfg.no_tcp && attempt < 32; ++attempt) {
        absl::StatusOr<int> tcp = BindTcp(SocketAddress{ip, BoundPort(udp)}, false, "listening-port");
        if (tcp.ok()) {
          close(*tcp);
          break;
        }
        absl::StatusOr<int> again = BindUdp(SocketAddress{ip, 0}, false, "listening-ip");
        close(udp);
        if (!again.ok()) return again.status();
        udp = *again;
      }
      cfg.listening_port = BoundPort(udp);
      probe = udp;
    }
    close(*probe);
    usable.push_back(ip);
  }
  if (usable.empty()) return absl::UnavailableError("no usable listening address");
  cfg.listening_ips = usable;

  // TURN over TCP on the same port, and over TLS on tls-listening-port when a certificate is
  // given. Probed the same way (plain bind, outside the SO_REUSEPORT group).
  for (const IpAddress& ip : cfg.listening_ips) {
    if (cfg.no_tcp) break;
    absl::StatusOr<int> probe = BindTcp(SocketAddress{ip, cfg.listening_port}, false,
                                        "listening-port", nonlocal);
    if (!probe.ok()) return probe.status();
    close(*probe);
  }
  const bool tls = !cfg.no_tls && !cfg.cert_file.empty();
  if (tls) {
    absl::StatusOr<std::unique_ptr<TlsContext>> ctx = TlsContext::Create(cfg);
    if (!ctx.ok()) return ctx.status();
    backend->tls_ = *std::move(ctx);
    for (const IpAddress& ip : cfg.listening_ips) {
      absl::StatusOr<int> probe = BindTcp(SocketAddress{ip, cfg.tls_listening_port}, false,
                                          "tls-listening-port", nonlocal);
      if (!probe.ok()) return probe.status();
      if (cfg.tls_listening_port == 0) cfg.tls_listening_port = BoundPort(*probe);
      close(*probe);
    }
  } else if (!cfg.no_tls) {
    spdlog::info("TLS is off: no certificate (set cert= and pkey= to serve TURN over TLS)");
  }
  const bool streams = !cfg.no_tcp || tls;

  // A relay IP that is not on this host would fail every Allocate with 508; say so now.
  for (const IpAddress& ip : cfg.relay_ips) {
    absl::StatusOr<int> probe = BindUdp(SocketAddress{ip, 0}, false, "relay-ip", nonlocal);
    if (!probe.ok()) return probe.status();
    close(*probe);
  }

  // No more relay sockets than relay ports can exist, however large max-allocations is.
  const uint64_t relay_ports = uint64_t{cfg.max_port} - cfg.min_port + 1;
  RaiseFileLimit(std::min<uint64_t>(uint64_t{per_worker} * workers,
                                    relay_ports * cfg.relay_ips.size()) +
                 uint64_t{workers} * (cfg.listening_ips.size() * 3 + 4) + 64 +
                 (streams ? cfg.stream_max_connections : 0));

  if (host != nullptr) {
    backend->node_ = host->node;
  } else {
    backend->own_node_ = std::make_unique<turn::NodeState>(cfg);
    backend->node_ = backend->own_node_.get();
  }
  for (uint32_t w = 0; w < workers; ++w) {
    const uint32_t index = host != nullptr ? host->worker_index : w;
    auto worker = std::make_unique<UringWorker>(index, limits, &backend->stop_);
    if (absl::Status s = worker->Init(); !s.ok()) return s;
    worker->SetNonLocalRelays(nonlocal);
    if (host != nullptr) {
      worker->SetRelayObserver(host->on_relay);
      if (host->to_node) {
        std::vector<IpAddress> node_ips = cfg.listening_ips;
        node_ips.insert(node_ips.end(), cfg.relay_ips.begin(), cfg.relay_ips.end());
        worker->SetNodeSender(std::move(node_ips), host->to_node);
      }
    }
    for (const IpAddress& ip : cfg.listening_ips) {
      const SocketAddress addr{ip, cfg.listening_port};
      if (!cfg.no_udp) {
        absl::StatusOr<int> fd = BindUdp(addr, /*reuseport=*/true, "listening-ip");
        if (!fd.ok()) return fd.status();
        worker->AddListener(*fd, addr);
      }
      if (!cfg.no_tcp) {
        absl::StatusOr<int> fd = BindTcp(addr, /*reuseport=*/true, "listening-port", nonlocal);
        if (!fd.ok()) return fd.status();
        worker->AddStreamListener(*fd, addr, /*tls=*/false);
      }
      if (tls) {
        const SocketAddress tls_addr{ip, cfg.tls_listening_port};
        absl::StatusOr<int> fd =
            BindTcp(tls_addr, /*reuseport=*/true, "tls-listening-port", nonlocal);
        if (!fd.ok()) return fd.status();
        worker->AddStreamListener(*fd, tls_addr, /*tls=*/true);
      }
    }
    worker->SetTlsContext(backend->tls_.get());
    turn::EngineOptions options;
    options.worker_index = index;
    options.max_allocations = per_worker;
    options.worker_count = node_workers;
    worker->CreateEngine(backend->config_, options, backend->node_);
    backend->workers_.push_back(std::move(worker));
  }
  return backend;
}

void UringBackend::Start() {
  if (!threads_.empty()) return;
  for (auto& worker : workers_) {
    UringWorker* w = worker.get();
    threads_.emplace_back([w] { w->Run(); });
  }
}

void UringBackend::Stop() {
  stop_.store(true, std::memory_order_relaxed);
  for (auto& worker : workers_) worker->Wake();
}

void UringBackend::Join() {
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
}

std::vector<SocketAddress> UringBackend::listening_addresses() const {
  std::vector<SocketAddress> out;
  for (const IpAddress& ip : config_.listening_ips) {
    out.push_back(SocketAddress{ip, config_.listening_port});
  }
  return out;
}

const turn::EngineCounters& UringBackend::engine_counters(size_t worker) const {
  return workers_[worker]->engine_counters();
}

const IoCounters& UringBackend::io_counters(size_t worker) const {
  return workers_[worker]->counters();
}

bool UringBackend::Post(size_t worker, WorkerCommand command) {
  if (worker >= workers_.size()) return false;
  workers_[worker]->Post(std::move(command));
  return true;
}

absl::Status UringBackend::ReloadTls(const ServerConfig& config) {
  if (tls_ == nullptr) {
    if (!config.cert_file.empty() && !config.no_tls) {
      return absl::FailedPreconditionError(
          "TLS was off at start-up; restart turnpiked to open the TLS listener");
    }
    return absl::OkStatus();
  }
  // The files named now (they may have changed), with the versions and ciphers of now.
  ServerConfig next = config_;
  next.cert_file = config.cert_file;
  next.pkey_file = config.pkey_file;
  next.pkey_password = config.pkey_password;
  next.cipher_list = config.cipher_list;
  if (absl::Status s = tls_->Reload(next); !s.ok()) return s;
  spdlog::info("TLS certificate reloaded: {}", tls_->Describe());
  return absl::OkStatus();
}

void UringBackend::SetEventCallback(WorkerEventCallback callback) {
  event_callback_ = std::move(callback);
  for (auto& worker : workers_) worker->SetEventCallback(&event_callback_);
}

}  // namespace turnpike::dataplane
