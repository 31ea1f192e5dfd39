// Data side of the load generator: traffic threads that pace ChannelData client->peer and plain
// UDP peer->client over the allocations they own (round robin), receive on the other side with
// epoll + recvmmsg, and record delivery and one-way latency for packets sent inside the window.
//
// Payload (first 24 bytes of the ChannelData application data / peer datagram, little endian):
//   magic u32 "LGEN" | allocation index u32 | sequence u64 | send time u64 (CLOCK_MONOTONIC ns)
#pragma once

#include <cstdint>
#include <vector>

#include "perf/loadgen/control.h"
#include "perf/loadgen/histogram.h"
#include "perf/loadgen/options.h"

namespace turnpike::loadgen {

struct DirectionStats {
  uint64_t sent = 0;         // all sends accepted by the kernel
  uint64_t sent_window = 0;  // of which stamped inside the measurement window
  uint64_t send_errors = 0;
  uint64_t received = 0;  // all valid arrivals
  uint64_t received_window = 0;
  uint64_t misrouted = 0;  // arrived on another allocation's socket or wrong channel
  uint64_t malformed = 0;
  uint64_t silent_allocations = 0;  // sent in the window but got nothing back
  LatencyHistogram latency;         // packets stamped inside the window

  void Merge(const DirectionStats& o) {
    sent += o.sent;
    sent_window += o.sent_window;
    send_errors += o.send_errors;
    received += o.received;
    received_window += o.received_window;
    misrouted += o.misrouted;
    malformed += o.malformed;
    silent_allocations += o.silent_allocations;
    latency.Merge(o.latency);
  }
};

struct Timeline {
  int64_t start_ns;         // first send
  int64_t window_start_ns;  // end of warmup
  int64_t window_end_ns;    // last send
  int64_t stop_ns;          // end of drain
};

struct TrafficResult {
  DirectionStats c2p;  // ChannelData client -> server -> UDP peer
  DirectionStats p2c;  // UDP peer -> server -> ChannelData client
  bool used_uring = false;
};

// Runs options.threads threads over the ready allocations; blocks until timeline.stop_ns.
// The caller samples CPU use around the window from its own thread meanwhile.
TrafficResult RunTraffic(std::vector<Allocation>& allocations, const Options& options,
                         const Timeline& timeline);

}  // namespace turnpike::loadgen
