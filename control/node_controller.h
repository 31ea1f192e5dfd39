// The node's control state behind the REST API and the signal loop: readiness, drain, shutdown,
// configuration reload, the control token, per-worker busy ratios, and the calls that reach into
// the workers (through the backend's command queues, with a timeout so a stuck worker gives an
// error instead of a hung request). Thread-safe; used from HTTP threads and the main thread.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "control/events.h"
#include "dataplane/backend.h"
#include "turn/config.h"
#include "turn/engine.h"

namespace turnpike::control {

// How long the control plane waits for a worker to run a command before answering 503.
inline constexpr std::chrono::milliseconds kWorkerTimeout{2000};

struct ReloadReport {
  std::vector<std::string> applied;  // reloadable options whose value changed
  std::vector<std::string> ignored;  // changed options that need a restart
};

class NodeController {
 public:
  // Reads the configuration again (the daemon passes LoadConfig over its original argv).
  using ConfigLoader = std::function<absl::StatusOr<ServerConfig>()>;

  // `effective` is what the backend runs with (addresses resolved, a generated secret filled
  // in); `loaded` is what the configuration said, to compare a reload against.
  NodeController(dataplane::Backend* backend, ServerConfig effective, ServerConfig loaded,
                 ConfigLoader loader, EventHub* events);
  ~NodeController();

  // Reads the control token (control-token-file, else TURNPIKE_CONTROL_TOKEN). An unreadable or
  // empty token file is an error; no token at all is fine (then /v1 refuses everything).
  absl::Status Init();
  // Starts the once-a-second sampler (busy ratios) and hooks the workers' events.
  void Start();
  void Stop();

  // Probes.
  void SetReady(bool ready) { ready_.store(ready); }
  bool ready() const { return ready_.load() && !draining() && !shutting_down_.load(); }
  bool draining() const;
  bool shutting_down() const { return shutting_down_.load(); }
  // Every worker answers a no-op command within `timeout`.
  absl::Status CheckWorkers(std::chrono::milliseconds timeout);

  // Drain: new Allocates get 403, existing allocations keep working. FailedPrecondition when
  // turning it off during shutdown.
  absl::Status SetDraining(bool on, std::string_view source);
  // SIGTERM: drain on for good.
  void BeginShutdown(uint32_t timeout_s);

  // Reload (SIGHUP, POST /v1/config/reload). Serialised. On error nothing changed.
  absl::StatusOr<ReloadReport> Reload(std::string_view source);

  std::shared_ptr<const ServerConfig> config() const;
  // Constant-time check of an `Authorization: Bearer ...` token. False when no token is set.
  bool CheckToken(std::string_view presented) const;
  bool has_token() const;

  // Allocation calls, routed to the owning worker(s).
  absl::StatusOr<std::vector<turn::AllocationInfo>> ListAllocations();
  absl::StatusOr<turn::AllocationInfo> GetAllocation(uint64_t id);
  absl::Status KillAllocation(uint64_t id);

  std::vector<double> busy_ratios() const;
  dataplane::Backend& backend() { return *backend_; }
  EventHub& events() { return *events_; }
  double start_time_s() const { return start_time_s_; }

 private:
  void SamplerLoop();
  absl::StatusOr<std::string> ReadToken(const ServerConfig& config) const;

  dataplane::Backend* backend_;
  EventHub* events_;
  ConfigLoader loader_;
  const double start_time_s_;

  mutable std::mutex mu_;
  std::shared_ptr<const ServerConfig> config_ ABSL_GUARDED_BY(mu_);
  ServerConfig loaded_ ABSL_GUARDED_BY(mu_);
  std::array<uint8_t, 32> token_hash_ ABSL_GUARDED_BY(mu_){};
  bool has_token_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<double> busy_ratio_ ABSL_GUARDED_BY(mu_);

  std::mutex reload_mu_;  // one reload at a time
  std::atomic<bool> ready_{false};
  std::atomic<bool> shutting_down_{false};

  std::mutex sampler_mu_;
  std::condition_variable sampler_cv_;
  bool sampler_stop_ ABSL_GUARDED_BY(sampler_mu_) = false;
  std::thread sampler_;
};

// "0123456789abcdef": allocation ids in the API are 16 lowercase hex digits (they are 64-bit,
// beyond what a JSON number can carry exactly).
std::string FormatAllocationId(uint64_t id);
// Accepts 1..16 hex digits, either case.
absl::StatusOr<uint64_t> ParseAllocationId(std::string_view text);

}  // namespace turnpike::control
