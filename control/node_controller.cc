// Drain, reload, token and worker calls for the control plane; see node_controller.h.
#include "control/node_controller.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <time.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <future>
#include <sstream>

#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"
#include "spdlog/spdlog.h"

namespace turnpike::control {
namespace {

double WallSeconds() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

uint64_t MonotonicNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
}

std::array<uint8_t, 32> Sha256(std::string_view s) {
  std::array<uint8_t, 32> out{};
  SHA256(reinterpret_cast<const unsigned char*>(s.data()), s.size(), out.data());
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\n' ||
                        s.front() == '\r')) {
    s.remove_prefix(1);
  }
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\n' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

bool SameUsers(const std::vector<StaticUser>& a, const std::vector<StaticUser>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].name != b[i].name || a[i].password != b[i].password ||
        a[i].key_hex != b[i].key_hex) {
      return false;
    }
  }
  return true;
}

bool SameExternal(const std::vector<ExternalIp>& a, const std::vector<ExternalIp>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!(a[i].public_ip == b[i].public_ip) || a[i].has_private != b[i].has_private ||
        (a[i].has_private && !(a[i].private_ip == b[i].private_ip))) {
      return false;
    }
  }
  return true;
}

bool HasCredentials(const ServerConfig& c) {
  return !c.users.empty() || !c.static_auth_secrets.empty();
}

}  // namespace

std::string FormatAllocationId(uint64_t id) { return absl::StrFormat("%016x", id); }

absl::StatusOr<uint64_t> ParseAllocationId(std::string_view text) {
  if (text.empty() || text.size() > 16) {
    return absl::InvalidArgumentError("allocation id must be 1 to 16 hex digits");
  }
  uint64_t v = 0;
  for (char ch : text) {
    int d;
    if (ch >= '0' && ch <= '9') {
      d = ch - '0';
    } else if (ch >= 'a' && ch <= 'f') {
      d = ch - 'a' + 10;
    } else if (ch >= 'A' && ch <= 'F') {
      d = ch - 'A' + 10;
    } else {
      return absl::InvalidArgumentError("allocation id must be 1 to 16 hex digits");
    }
    v = (v << 4) | static_cast<uint64_t>(d);
  }
  return v;
}

NodeController::NodeController(dataplane::Backend* backend, ServerConfig effective,
                               ServerConfig loaded, ConfigLoader loader, EventHub* events)
    : backend_(backend),
      events_(events),
      loader_(std::move(loader)),
      start_time_s_(WallSeconds()),
      config_(std::make_shared<const ServerConfig>(std::move(effective))),
      loaded_(std::move(loaded)),
      busy_ratio_(backend->worker_count(), 0.0) {}

NodeController::~NodeController() { Stop(); }

absl::StatusOr<std::string> NodeController::ReadToken(const ServerConfig& config) const {
  if (!config.control_token_file.empty()) {
    std::ifstream in(config.control_token_file, std::ios::binary);
    if (!in) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "cannot read control-token-file %s: %s", config.control_token_file, strerror(errno)));
    }
    std::ostringstream ss;
    ss << in.rdbuf();
    std::string token(Trim(ss.str()));
    if (token.empty()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("control-token-file %s is empty", config.control_token_file));
    }
    return token;
  }
  const char* env = std::getenv("TURNPIKE_CONTROL_TOKEN");
  if (env != nullptr) return std::string(Trim(env));
  return std::string();
}

absl::Status NodeController::Init() {
  absl::StatusOr<std::string> token = ReadToken(*config());
  if (!token.ok()) return token.status();
  std::lock_guard lock(mu_);
  has_token_ = !token->empty();
  token_hash_ = Sha256(*token);
  if (!has_token_) {
    spdlog::warn(
        "no control token (control-token-file or TURNPIKE_CONTROL_TOKEN): the /v1 REST API "
        "refuses every request");
  }
  return absl::OkStatus();
}

void NodeController::Start() {
  EventHub* hub = events_;
  backend_->SetEventCallback([hub](std::vector<dataplane::WorkerEvent>&& batch) {
    std::vector<std::pair<std::string, std::string>> out;
    out.reserve(batch.size());
    for (const dataplane::WorkerEvent& e : batch) {
      nlohmann::json j;
      const bool created = e.kind == dataplane::WorkerEvent::Kind::kAllocationCreated;
      j["type"] = created ? "allocation_created" : "allocation_deleted";
      j["id"] = FormatAllocationId(e.id);
      j["worker"] = e.worker;
      j["username"] = e.username;
      if (created) {
        j["client"] = e.client;
        j["relay"] = e.relay;
      } else {
        j["reason"] = e.reason;
      }
      j["time"] = WallSeconds();
      out.emplace_back(j["type"].get<std::string>(), j.dump());
    }
    hub->PublishAll(std::move(out));
  });
  sampler_ = std::thread([this] { SamplerLoop(); });
}

void NodeController::Stop() {
  {
    std::lock_guard lock(sampler_mu_);
    sampler_stop_ = true;
  }
  sampler_cv_.notify_all();
  if (sampler_.joinable()) sampler_.join();
}

void NodeController::SamplerLoop() {
  const size_t n = backend_->worker_count();
  std::vector<uint64_t> last_busy(n);
  uint64_t last_ns = MonotonicNs();
  for (size_t w = 0; w < n; ++w) last_busy[w] = backend_->io_counters(w).busy_ns;
  std::unique_lock lock(sampler_mu_);
  while (!sampler_stop_) {
    sampler_cv_.wait_for(lock, std::chrono::seconds(1), [this] { return sampler_stop_; });
    const uint64_t now = MonotonicNs();
    std::vector<double> ratios(n);
    for (size_t w = 0; w < n; ++w) {
      const uint64_t busy = backend_->io_counters(w).busy_ns;
      const double elapsed = static_cast<double>(now - last_ns);
      ratios[w] = elapsed > 0 ? std::clamp(static_cast<double>(busy - last_busy[w]) / elapsed,
                                           0.0, 1.0)
                              : 0.0;
      last_busy[w] = busy;
    }
    last_ns = now;
    std::lock_guard state(mu_);
    busy_ratio_ = std::move(ratios);
  }
}

std::vector<double> NodeController::busy_ratios() const {
  std::lock_guard lock(mu_);
  return busy_ratio_;
}

bool NodeController::draining() const { return backend_->node_state().draining(); }

absl::Status NodeController::CheckWorkers(std::chrono::milliseconds timeout) {
  for (size_t w = 0; w < backend_->worker_count(); ++w) {
    dataplane::WorkerCommand cmd;
    cmd.kind = dataplane::WorkerCommand::Kind::kPing;
    absl::StatusOr<dataplane::WorkerReply> r = backend_->Call(w, std::move(cmd), timeout);
    if (!r.ok()) return absl::UnavailableError(r.status().message());
  }
  return absl::OkStatus();
}

absl::Status NodeController::SetDraining(bool on, std::string_view source) {
  if (!on && shutting_down_.load()) {
    return absl::FailedPreconditionError("the node is shutting down; drain cannot be turned off");
  }
  const bool was = draining();
  backend_->node_state().SetDraining(on);
  if (was != on) {
    spdlog::info("drain {} ({})", on ? "on: new allocations are refused" : "off", source);
    nlohmann::json j{{"type", "drain"}, {"draining", on}, {"source", std::string(source)},
                     {"time", WallSeconds()}};
    events_->Publish("drain", j.dump());
  }
  return absl::OkStatus();
}

void NodeController::BeginShutdown(uint32_t timeout_s) {
  shutting_down_.store(true);
  const bool was = draining();
  backend_->node_state().SetDraining(true);
  nlohmann::json j{{"type", "drain"},          {"draining", true},
                   {"source", "shutdown"},      {"timeout_s", timeout_s},
                   {"time", WallSeconds()}};
  (void)was;
  events_->Publish("drain", j.dump());
}

std::shared_ptr<const ServerConfig> NodeController::config() const {
  std::lock_guard lock(mu_);
  return config_;
}

bool NodeController::has_token() const {
  std::lock_guard lock(mu_);
  return has_token_;
}

bool NodeController::CheckToken(std::string_view presented) const {
  // Hashing both sides makes the comparison constant-time regardless of length.
  const std::array<uint8_t, 32> got = Sha256(presented);
  std::lock_guard lock(mu_);
  return has_token_ && CRYPTO_memcmp(got.data(), token_hash_.data(), got.size()) == 0;
}

absl::StatusOr<ReloadReport> NodeController::Reload(std::string_view source) {
  std::lock_guard reload_lock(reload_mu_);
  absl::StatusOr<ServerConfig> fresh = loader_();
  if (!fresh.ok()) {
    spdlog::error("reload ({}) refused, keeping the running configuration: {}", source,
                  std::string(fresh.status().message()));
    return absl::InvalidArgumentError(
        absl::StrFormat("configuration not reloaded: %s", fresh.status().message()));
  }
  absl::StatusOr<std::string> token = ReadToken(*fresh);
  if (!token.ok()) {
    spdlog::error("reload ({}) refused, keeping the running configuration: {}", source,
                  std::string(token.status().message()));
    return absl::InvalidArgumentError(
        absl::StrFormat("configuration not reloaded: %s", token.status().message()));
  }

  // The certificate is re-read on every reload (renewals keep the file names). A certificate
  // that does not load refuses the whole reload, like a bad option does; open TLS sessions are
  // never touched either way.
  if (absl::Status tls = backend_->ReloadTls(*fresh); !tls.ok()) {
    spdlog::error("reload ({}) refused, keeping the running configuration: {}", source,
                  std::string(tls.message()));
    return absl::InvalidArgumentError(
        absl::StrFormat("configuration not reloaded: %s", tls.message()));
  }

  std::shared_ptr<const ServerConfig> current = config();
  ServerConfig loaded_before;
  {
    std::lock_guard lock(mu_);
    loaded_before = loaded_;
  }
  const ServerConfig& n = *fresh;
  const ServerConfig& o = loaded_before;
  ReloadReport report;
  auto ignored = [&](bool changed, const char* name) {
    if (changed) report.ignored.push_back(name);
  };
  ignored(n.listening_ips != o.listening_ips, "listening-ip");
  ignored(n.listening_port != o.listening_port, "listening-port");
  ignored(n.relay_ips != o.relay_ips, "relay-ip");
  ignored(!SameExternal(n.external_ips, o.external_ips), "external-ip");
  ignored(n.min_port != o.min_port, "min-port");
  ignored(n.max_port != o.max_port, "max-port");
  ignored(n.max_allocations != o.max_allocations, "max-allocations");
  ignored(n.tls_listening_port != o.tls_listening_port, "tls-listening-port");
  ignored(n.no_udp != o.no_udp, "no-udp");
  ignored(n.no_tcp != o.no_tcp, "no-tcp");
  ignored(n.no_tls != o.no_tls, "no-tls");
  ignored(n.no_tlsv1_2 != o.no_tlsv1_2, "no-tlsv1_2");
  ignored(n.stream_max_connections != o.stream_max_connections, "stream-max-connections");
  ignored(n.stream_max_per_ip != o.stream_max_per_ip, "stream-max-per-ip");
  ignored(n.stream_handshake_timeout != o.stream_handshake_timeout, "stream-handshake-timeout");
  ignored(n.stream_idle_timeout != o.stream_idle_timeout, "stream-idle-timeout");
  ignored(n.worker_threads != o.worker_threads, "worker-threads");
  ignored(n.backend != o.backend, "backend");
  ignored(n.log_file != o.log_file, "log-file");
  ignored(n.log_format != o.log_format, "log-format");
  ignored(n.verbose != o.verbose, "verbose");
  ignored(n.pidfile != o.pidfile, "pidfile");
  ignored(n.control_enabled != o.control_enabled || !(n.control_ip == o.control_ip) ||
              n.control_port != o.control_port,
          "control-listen");

  ServerConfig next = *current;
  auto apply = [&](bool changed, const char* name) {
    if (changed) report.applied.push_back(name);
  };
  // A configuration without credentials ran with a generated secret; keep it rather than
  // turning authentication off or refusing everyone.
  const bool keep_generated = !n.no_auth && !HasCredentials(n);
  if (!keep_generated) {
    apply(n.realm != o.realm, "realm");
    apply(n.lt_cred_mech != o.lt_cred_mech, "lt-cred-mech");
    apply(n.use_auth_secret != o.use_auth_secret, "use-auth-secret");
    apply(n.static_auth_secrets != o.static_auth_secrets, "static-auth-secret");
    apply(!SameUsers(n.users, o.users), "user");
    apply(n.no_auth != o.no_auth, "no-auth");
    next.realm = n.realm;
    next.lt_cred_mech = n.lt_cred_mech;
    next.use_auth_secret = n.use_auth_secret;
    next.static_auth_secrets = n.static_auth_secrets;
    next.users = n.users;
    next.no_auth = n.no_auth;
  }
  apply(n.stale_nonce_seconds != o.stale_nonce_seconds, "stale-nonce");
  apply(n.software_attribute != o.software_attribute, "software-attribute");
  apply(n.denied_peer_ips != o.denied_peer_ips, "denied-peer-ip");
  apply(n.allowed_peer_ips != o.allowed_peer_ips, "allowed-peer-ip");
  apply(n.allow_loopback_peers != o.allow_loopback_peers, "allow-loopback-peers");
  apply(n.default_allocate_lifetime != o.default_allocate_lifetime, "default-allocate-lifetime");
  apply(n.max_allocate_lifetime != o.max_allocate_lifetime, "max-allocate-lifetime");
  apply(n.permission_lifetime != o.permission_lifetime, "permission-lifetime");
  apply(n.channel_lifetime != o.channel_lifetime, "channel-lifetime");
  apply(n.user_quota != o.user_quota, "user-quota");
  apply(n.total_quota != o.total_quota, "total-quota");
  apply(n.max_bps != o.max_bps, "max-bps");
  apply(n.bps_capacity != o.bps_capacity, "bps-capacity");
  apply(n.unauth_rate != o.unauth_rate, "unauth-rate");
  apply(n.unauth_burst != o.unauth_burst, "unauth-burst");
  apply(n.cert_file != o.cert_file, "cert");
  apply(n.pkey_file != o.pkey_file, "pkey");
  apply(n.pkey_password != o.pkey_password, "pkey-pwd");
  apply(n.cipher_list != o.cipher_list, "cipher-list");
  apply(n.deployment_color != o.deployment_color, "deployment-color");
  apply(n.control_token_file != o.control_token_file, "control-token-file");
  apply(n.control_open_probes != o.control_open_probes, "control-open-probes");
  apply(n.drain_timeout != o.drain_timeout, "drain-timeout");
  next.stale_nonce_seconds = n.stale_nonce_seconds;
  next.software_attribute = n.software_attribute;
  next.denied_peer_ips = n.denied_peer_ips;
  next.allowed_peer_ips = n.allowed_peer_ips;
  next.allow_loopback_peers = n.allow_loopback_peers;
  next.no_multicast_peers = n.no_multicast_peers;
  next.default_allocate_lifetime = n.default_allocate_lifetime;
  next.max_allocate_lifetime = n.max_allocate_lifetime;
  next.permission_lifetime = n.permission_lifetime;
  next.channel_lifetime = n.channel_lifetime;
  next.user_quota = n.user_quota;
  next.total_quota = n.total_quota;
  next.max_bps = n.max_bps;
  next.bps_capacity = n.bps_capacity;
  next.unauth_rate = n.unauth_rate;
  next.unauth_burst = n.unauth_burst;
  next.cert_file = n.cert_file;
  next.pkey_file = n.pkey_file;
  next.pkey_password = n.pkey_password;
  next.cipher_list = n.cipher_list;
  next.deployment_color = n.deployment_color;
  next.control_token_file = n.control_token_file;
  next.control_open_probes = n.control_open_probes;
  next.drain_timeout = n.drain_timeout;

  // Every worker takes the new rules; the queue is FIFO, so a worker that is slow still applies
  // it in order. A worker that does not answer in time is reported (it applies it when it runs).
  auto shared = std::make_shared<const ServerConfig>(next);
  std::vector<std::string> late;
  for (size_t w = 0; w < backend_->worker_count(); ++w) {
    dataplane::WorkerCommand cmd;
    cmd.kind = dataplane::WorkerCommand::Kind::kReconfigure;
    cmd.config = shared;
    absl::StatusOr<dataplane::WorkerReply> r = backend_->Call(w, std::move(cmd), kWorkerTimeout);
    if (!r.ok()) late.push_back(std::to_string(w));
  }
  backend_->node_state().SetQuotas(next.user_quota, next.total_quota);
  {
    std::lock_guard lock(mu_);
    config_ = shared;
    loaded_ = n;
    has_token_ = !token->empty();
    token_hash_ = Sha256(*token);
  }
  std::string applied;
  for (const std::string& a : report.applied) applied += (applied.empty() ? "" : ",") + a;
  std::string ign;
  for (const std::string& a : report.ignored) ign += (ign.empty() ? "" : ",") + a;
  spdlog::info("configuration reloaded ({}): changed [{}]{}{}", source, applied,
               ign.empty() ? "" : "; need a restart, ignored: [" + ign + "]",
               late.empty() ? "" : "; workers slow to apply it: " + late.front());
  nlohmann::json j{{"type", "config_reloaded"}, {"source", std::string(source)},
                   {"applied", report.applied},  {"ignored", report.ignored},
                   {"time", WallSeconds()}};
  events_->Publish("config_reloaded", j.dump());
  if (!late.empty()) {
    return absl::UnavailableError(absl::StrFormat(
        "configuration stored but worker %s did not confirm within %d ms", late.front(),
        static_cast<int>(kWorkerTimeout.count())));
  }
  return report;
}

absl::StatusOr<std::vector<turn::AllocationInfo>> NodeController::ListAllocations() {
  // Post to every worker first so they list in parallel, then wait for each.
  const size_t n = backend_->worker_count();
  std::vector<std::future<dataplane::WorkerReply>> futures;
  for (size_t w = 0; w < n; ++w) {
    auto promise = std::make_shared<std::promise<dataplane::WorkerReply>>();
    futures.push_back(promise->get_future());
    dataplane::WorkerCommand cmd;
    cmd.kind = dataplane::WorkerCommand::Kind::kListAllocations;
    cmd.done = [promise](dataplane::WorkerReply&& r) { promise->set_value(std::move(r)); };
    backend_->Post(w, std::move(cmd));
  }
  const auto deadline = std::chrono::steady_clock::now() + kWorkerTimeout;
  std::vector<turn::AllocationInfo> all;
  for (size_t w = 0; w < n; ++w) {
    if (futures[w].wait_until(deadline) != std::future_status::ready) {
      return absl::UnavailableError(absl::StrFormat("worker %d did not answer within %d ms", w,
                                                    static_cast<int>(kWorkerTimeout.count())));
    }
    dataplane::WorkerReply r = futures[w].get();
    std::move(r.allocations.begin(), r.allocations.end(), std::back_inserter(all));
  }
  std::sort(all.begin(), all.end(),
            [](const turn::AllocationInfo& a, const turn::AllocationInfo& b) {
              return a.id < b.id;
            });
  return all;
}

absl::StatusOr<turn::AllocationInfo> NodeController::GetAllocation(uint64_t id) {
  const uint32_t w = turn::Engine::WorkerOf(id);
  if (w >= backend_->worker_count()) {
    return absl::NotFoundError(absl::StrFormat("no allocation %s", FormatAllocationId(id)));
  }
  dataplane::WorkerCommand cmd;
  cmd.kind = dataplane::WorkerCommand::Kind::kListAllocations;
  absl::StatusOr<dataplane::WorkerReply> r = backend_->Call(w, std::move(cmd), kWorkerTimeout);
  if (!r.ok()) return absl::UnavailableError(r.status().message());
  for (turn::AllocationInfo& a : r->allocations) {
    if (a.id == id) return std::move(a);
  }
  return absl::NotFoundError(absl::StrFormat("no allocation %s", FormatAllocationId(id)));
}

absl::Status NodeController::KillAllocation(uint64_t id) {
  const uint32_t w = turn::Engine::WorkerOf(id);
  if (w >= backend_->worker_count()) {
    return absl::NotFoundError(absl::StrFormat("no allocation %s", FormatAllocationId(id)));
  }
  dataplane::WorkerCommand cmd;
  cmd.kind = dataplane::WorkerCommand::Kind::kKillAllocation;
  cmd.allocation_id = id;
  absl::StatusOr<dataplane::WorkerReply> r = backend_->Call(w, std::move(cmd), kWorkerTimeout);
  if (!r.ok()) return absl::UnavailableError(r.status().message());
  if (!r->found) {
    return absl::NotFoundError(absl::StrFormat("no allocation %s", FormatAllocationId(id)));
  }
  spdlog::info("allocation {} ended by the control plane", FormatAllocationId(id));
  return absl::OkStatus();
}

}  // namespace turnpike::control
