// GET /metrics: the Prometheus text exposition format (version 0.0.4) built from a snapshot of
// the per-worker counter blocks, read at scrape time. Nothing here touches the packet path: the
// workers' plain counters are copied (possibly a few nanoseconds stale, never torn on x86-64)
// and summed on the HTTP thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dataplane/backend.h"
#include "turn/counters.h"

namespace turnpike::control {

struct MetricsInput {
  std::string version;
  std::string backend;
  std::string color;
  bool draining = false;
  bool ready = false;
  double start_time_s = 0;  // Unix time the process started
  std::vector<turn::EngineCounters> engine;  // one per worker
  std::vector<dataplane::IoCounters> io;  // one per worker
  std::vector<double> busy_ratio;            // one per worker, over the last second
  struct Relay {
    std::string ip;
    uint64_t free_ports = 0;
    uint64_t total_ports = 0;
  };
  std::vector<Relay> relays;
  uint64_t node_allocations = 0;  // NodeState's count (what quotas see)
  uint64_t total_quota = 0;       // 0: unlimited
  uint64_t user_quota = 0;
  uint64_t event_subscribers = 0;
};

std::string RenderMetrics(const MetricsInput& in);

}  // namespace turnpike::control
