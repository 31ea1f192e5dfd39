// turnpiked: loads the configuration, sets up logging, starts the data-plane backend and the
// HTTP control plane, then sits in a signal loop on the main thread: SIGTERM drains for
// drain-timeout seconds then stops (a second SIGTERM, or SIGINT, stops at once); SIGHUP reloads
// the configuration and reopens the log file.
//
// Exit codes: 0 clean stop (and --help / --version), 1 start-up failure, 2 configuration error.
#include <fcntl.h>
#include <signal.h>
#include <sys/random.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "control/config.h"
#include "control/events.h"
#include "control/http_server.h"
#include "control/log.h"
#include "control/node_controller.h"
#include "dataplane/uring/uring_backend.h"
#ifdef TURNPIKE_HAVE_DPDK
#include "dataplane/dpdk/dpdk_backend.h"
#endif
#include "spdlog/spdlog.h"
#include "turn/auth.h"
#include "turnpike_version.h"

namespace turnpike {
namespace {

// One line of totals on exit, so a run without the metrics endpoint still shows what was
// relayed and what was dropped and why.
absl::StatusOr<std::unique_ptr<dataplane::Backend>> CreateBackend(const ServerConfig& config) {
  if (config.backend == Backend::kDpdk) {
#ifdef TURNPIKE_HAVE_DPDK
    absl::StatusOr<std::unique_ptr<dataplane::DpdkBackend>> dpdk =
        dataplane::DpdkBackend::Create(config);
    if (!dpdk.ok()) return dpdk.status();
    return std::unique_ptr<dataplane::Backend>(std::move(*dpdk));
#else
    return absl::UnimplementedError(
        "this turnpiked was built without DPDK (install libdpdk-dev and rebuild)");
#endif
  }
  absl::StatusOr<std::unique_ptr<dataplane::UringBackend>> uring =
      dataplane::UringBackend::Create(config);
  if (!uring.ok()) return uring.status();
  return std::unique_ptr<dataplane::Backend>(std::move(*uring));
}

void LogTotals(const dataplane::Backend& backend) {
  turn::EngineCounters e;
  uint64_t tx_dropped = 0;
  uint64_t tx_errors = 0;
  uint64_t rx_enobufs = 0;
  for (size_t w = 0; w < backend.worker_count(); ++w) {
    e.Add(backend.engine_counters(w));
    const dataplane::IoCounters& io = backend.io_counters(w);
    tx_dropped += io.tx_no_slot + io.tx_no_sqe + io.tx_too_big + io.tx_stale_socket;
    tx_errors += io.tx_err_again + io.tx_err_unreachable + io.tx_err_denied + io.tx_err_too_big +
                 io.tx_err_other;
    rx_enobufs += io.rx_enobufs;
  }
  std::string drops;
  for (size_t i = 0; i < e.drops.size(); ++i) {
    drops += fmt::format("{}{}={}", i ? " " : "", turn::DropReasonName(turn::DropReason(i)),
                         e.drops[i]);
  }
  std::string auth;
  for (size_t i = 0; i < e.auth_failures.size(); ++i) {
    auth += fmt::format("{}{}={}", i ? " " : "", turn::AuthFailureName(turn::AuthFailure(i)),
                        e.auth_failures[i]);
  }
  spdlog::info(
      "totals: client_packets={} peer_packets={} relayed_to_peer={} relayed_to_client={} "
      "stun_requests={} allocations_ok={} tx_dropped={} tx_errors={} rx_enobufs={} | drops: {} "
      "| auth_failures: {}",
      e.rx_client_packets, e.rx_peer_packets, e.to_peer_packets, e.to_client_packets,
      e.stun_requests, e.allocate_results[size_t(turn::AllocateResult::kSuccess)], tx_dropped,
      tx_errors, rx_enobufs, drops, auth);
}

int Fail(int code, std::string_view message) {
  std::fprintf(stderr, "turnpiked: %.*s\n", static_cast<int>(message.size()), message.data());
  return code;
}

// 32 hex characters from the kernel's CSPRNG.
std::string RandomHexSecret() {
  uint8_t bytes[16];
  size_t got = 0;
  while (got < sizeof(bytes)) {
    const ssize_t n = getrandom(bytes + got, sizeof(bytes) - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return {};
    }
    got += static_cast<size_t>(n);
  }
  std::string out;
  for (uint8_t b : bytes) out += absl::StrFormat("%02x", b);
  return out;
}

bool HasCredentials(const ServerConfig& c) {
  return !c.users.empty() || !c.static_auth_secrets.empty();
}

std::string ShellQuote(std::string_view s) {
  std::string out = "'";
  for (char ch : s) {
    if (ch == '\'') {
      out += "'\\''";
    } else {
      out += ch;
    }
  }
  return out + "'";
}

// Tells the operator how to use the secret minted for a configuration without credentials.
void PrintDevCredentials(const ServerConfig& config, const SocketAddress& server) {
  const std::string& secret = config.static_auth_secrets.front();
  const int64_t expiry = static_cast<int64_t>(std::time(nullptr)) + 24 * 3600;
  const std::string username = absl::StrFormat("%d:dev", expiry);
  const std::string password = turn::Authenticator::RestPassword(secret, username);
  absl::PrintF(
      "turnpiked: no credentials configured; generated a TURN REST API secret for this run only\n"
      "  static-auth-secret: %s\n"
      "  username:           %s   (valid 24 h)\n"
      "  password:           %s\n"
      "  realm:              %s\n"
      "  try:  turnutils_uclient -y -u %s -w %s -p %d %s\n"
      "        (-y: two clients talk through their relayed addresses; those must be allowed\n"
      "        peers, as loopback is with allow-loopback-peers)\n"
      "  (set static-auth-secret, or user=NAME:PASSWORD with lt-cred-mech, to keep credentials)\n",
      secret, username, password, config.realm, ShellQuote(username), ShellQuote(password),
      server.port, server.ip.ToString());
  std::fflush(stdout);
}

class PidFile {
 public:
  ~PidFile() {
    if (!path_.empty()) unlink(path_.c_str());
  }
  absl::Status Write(const std::string& path) {
    const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
      return absl::UnavailableError(
          absl::StrFormat("cannot write pidfile %s: %s", path, strerror(errno)));
    }
    const std::string text = absl::StrFormat("%d\n", getpid());
    const ssize_t n = write(fd, text.data(), text.size());
    close(fd);
    if (n != static_cast<ssize_t>(text.size())) {
      unlink(path.c_str());
      return absl::UnavailableError(absl::StrFormat("cannot write pidfile %s", path));
    }
    path_ = path;
    return absl::OkStatus();
  }

 private:
  std::string path_;
};

int Main(int argc, char** argv) {
  // Blocked before any thread exists so every thread inherits the mask and only the sigwait
  // loop below ever sees these. SIGPIPE stays blocked for good (no stream sockets care yet).
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  sigaddset(&signals, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  absl::StatusOr<LoadedConfig> loaded = LoadConfig(argc, argv);
  if (!loaded.ok()) return Fail(2, std::string(loaded.status().message()));
  if (loaded->help) {
    std::fputs(Usage().c_str(), stdout);
    return 0;
  }
  if (loaded->version) {
    std::printf("turnpiked %s\n", TURNPIKE_VERSION);
    return 0;
  }
  ServerConfig config = loaded->config;

  if (absl::Status s = SetupLogging(config); !s.ok()) return Fail(1, std::string(s.message()));
  for (const std::string& warning : loaded->warnings) spdlog::warn("{}", warning);

  bool minted_secret = false;
  if (!config.no_auth && !HasCredentials(config)) {
    const std::string secret = RandomHexSecret();
    if (secret.empty()) return Fail(1, "cannot read random bytes for a generated secret");
    config.use_auth_secret = true;
    config.static_auth_secrets = {secret};
    minted_secret = true;
    spdlog::warn("no credentials configured: generated a static-auth-secret for this run");
  }

  absl::StatusOr<std::unique_ptr<dataplane::Backend>> created = CreateBackend(config);
  if (!created.ok()) {
    const std::string message(created.status().message());
    if (!config.log_file.empty()) spdlog::error("start-up failed: {}", message);
    return Fail(1, message);
  }
  dataplane::Backend& backend = **created;

  PidFile pidfile;
  if (!config.pidfile.empty()) {
    if (absl::Status s = pidfile.Write(config.pidfile); !s.ok()) {
      return Fail(1, std::string(s.message()));
    }
  }
  const std::vector<SocketAddress> listening = backend.listening_addresses();
  if (minted_secret) PrintDevCredentials(backend.config(), listening.front());

  // The control plane. A reload reads the same file and command line again.
  control::EventHub events;
  control::NodeController controller(
      &backend, backend.config(), loaded->config,
      [argc, argv]() -> absl::StatusOr<ServerConfig> {
        absl::StatusOr<LoadedConfig> again = LoadConfig(argc, argv);
        if (!again.ok()) return again.status();
        return again->config;
      },
      &events);
  if (absl::Status s = controller.Init(); !s.ok()) return Fail(2, std::string(s.message()));
  control::HttpServer http(&controller);
  std::string control_text = "off";
  if (config.control_enabled) {
    absl::StatusOr<uint16_t> port = http.Start(config.control_ip, config.control_port);
    if (port.ok()) {
      control_text = SocketAddress{config.control_ip, *port}.ToString();
    } else if (config.control_listen_given) {
      return Fail(1, std::string(port.status().message()));
    } else {
      spdlog::warn("{}; running without a control plane", std::string(port.status().message()));
    }
  }

  controller.Start();
  backend.Start();
  controller.SetReady(true);
  std::vector<std::string> listen_text, relay_text;
  for (const SocketAddress& a : listening) listen_text.push_back(a.ToString());
  for (const IpAddress& ip : backend.relay_ips()) relay_text.push_back(ip.ToString());
  const ServerConfig& effective = backend.config();
  std::string transports = effective.no_udp ? "" : "udp";
  if (backend.tcp_enabled()) transports += transports.empty() ? "tcp" : "+tcp";
  if (backend.tls_listening_port() != 0) {
    transports += absl::StrFormat(" tls port %d", backend.tls_listening_port());
  }
  spdlog::info(
      "turnpiked {} ready: listening {} ({}) relay {} ports {}-{} workers {} backend {} "
      "control {}",
      TURNPIKE_VERSION, absl::StrJoin(listen_text, ","), transports,
      absl::StrJoin(relay_text, ","), config.min_port, config.max_port, backend.worker_count(),
      backend.name(), control_text);

  sigset_t wait_set = signals;
  sigdelset(&wait_set, SIGPIPE);
  auto reload = [&controller]() {
    ReopenLogFile();
    // Errors are logged by Reload with the reason; the running configuration stays.
    (void)controller.Reload("SIGHUP");
  };
  bool drain = false;
  for (;;) {
    siginfo_t info;
    const int sig = sigwaitinfo(&wait_set, &info);
    if (sig < 0) continue;  // EINTR
    if (sig == SIGHUP) {
      reload();
      continue;
    }
    drain = sig == SIGTERM && controller.config()->drain_timeout > 0;
    if (!drain) {
      spdlog::info("{}: stopping, closing all allocations", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    }
    break;
  }
  if (drain) {
    // Drain: new Allocates get 403, existing allocations keep relaying and refreshing, /readyz
    // says 503 so load balancers stop sending new sessions. Stop when the time is up, when no
    // allocation is left, or on a second SIGTERM / a SIGINT.
    const uint32_t timeout_s = controller.config()->drain_timeout;
    spdlog::info("SIGTERM: draining for up to {} s (SIGTERM again to stop at once)", timeout_s);
    controller.BeginShutdown(timeout_s);
    timespec start{};
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
      if (backend.node_state().total_allocations() == 0) {
        spdlog::info("drain: no allocation left, stopping");
        break;
      }
      timespec now{};
      clock_gettime(CLOCK_MONOTONIC, &now);
      if (now.tv_sec - start.tv_sec >= static_cast<time_t>(timeout_s)) {
        spdlog::info("drain: {} s elapsed with {} allocations left, stopping", timeout_s,
                     backend.node_state().total_allocations());
        break;
      }
      const timespec poll{0, 200'000'000};  // how often to look at the allocation count
      siginfo_t info;
      const int sig = sigtimedwait(&wait_set, &info, &poll);
      if (sig == SIGHUP) {
        reload();
      } else if (sig == SIGTERM || sig == SIGINT) {
        spdlog::info("{} during drain: stopping now", sig == SIGTERM ? "SIGTERM" : "SIGINT");
        break;
      }
    }
  }
  controller.SetReady(false);
  http.Stop();
  controller.Stop();
  backend.Stop();
  backend.Join();
  LogTotals(backend);
  spdlog::info("turnpiked stopped");
  spdlog::default_logger()->flush();
  return 0;
}

}  // namespace
}  // namespace turnpike

int main(int argc, char** argv) { return turnpike::Main(argc, argv); }
