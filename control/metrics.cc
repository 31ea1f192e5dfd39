// Prometheus rendering for GET /metrics; see metrics.h and the list in docs/control-plane.md.
// Names follow the Prometheus conventions promtool checks: `turnpike_` prefix, base units
// (bytes, seconds), `_total` on counters, HELP and TYPE before each family.
#include "control/metrics.h"

#include <string_view>
#include <utility>

#include "fmt/format.h"

namespace turnpike::control {
namespace {

class Writer {
 public:
  void Family(std::string_view name, std::string_view type, std::string_view help) {
    fmt::format_to(std::back_inserter(out_), "# HELP {} {}\n# TYPE {} {}\n", name, help, name,
                   type);
  }
  void Sample(std::string_view name, std::string_view labels, uint64_t value) {
    fmt::format_to(std::back_inserter(out_), "{}{}{}{} {}\n", name, labels.empty() ? "" : "{",
                   labels, labels.empty() ? "" : "}", value);
  }
  void SampleDouble(std::string_view name, std::string_view labels, double value) {
    fmt::format_to(std::back_inserter(out_), "{}{}{}{} {}\n", name,
                   labels.empty() ? "" : "{", labels, labels.empty() ? "" : "}", value);
  }
  std::string Take() { return std::move(out_); }

 private:
  std::string out_;
};

// Label values here come from our own tables and addresses, but escape anyway (the exposition
// format escapes backslash, double quote and newline).
std::string Escape(std::string_view v) {
  std::string out;
  for (char ch : v) {
    if (ch == '\\') {
      out += "\\\\";
    } else if (ch == '"') {
      out += "\\\"";
    } else if (ch == '\n') {
      out += "\\n";
    } else {
      out += ch;
    }
  }
  return out;
}

std::string Label(std::string_view key, std::string_view value) {
  return fmt::format("{}=\"{}\"", key, Escape(value));
}

}  // namespace

std::string RenderMetrics(const MetricsInput& in) {
  turn::EngineCounters e;
  for (const turn::EngineCounters& w : in.engine) e.Add(w);
  dataplane::IoCounters io;
  for (const dataplane::IoCounters& w : in.io) io.Add(w);

  Writer m;
  m.Family("turnpike_build_info", "gauge", "Build and run information; always 1.");
  m.Sample("turnpike_build_info",
           Label("version", in.version) + "," + Label("backend", in.backend) + "," +
               Label("color", in.color),
           1);
  m.Family("turnpike_start_time_seconds", "gauge", "Unix time the process started.");
  m.SampleDouble("turnpike_start_time_seconds", "", in.start_time_s);
  m.Family("turnpike_draining", "gauge", "1 while the node refuses new allocations (drain).");
  m.Sample("turnpike_draining", "", in.draining ? 1 : 0);
  m.Family("turnpike_ready", "gauge", "1 when /readyz answers 200.");
  m.Sample("turnpike_ready", "", in.ready ? 1 : 0);
  m.Family("turnpike_workers", "gauge", "Data-plane worker threads.");
  m.Sample("turnpike_workers", "", in.engine.size());

  // Gauges: the engines recompute them in their once-a-second sweep.
  m.Family("turnpike_allocations", "gauge",
           "Allocations by client transport and relay address family (up to 1 s old).");
  for (size_t t = 0; t < e.allocations.size(); ++t) {
    const std::string transport =
        Label("transport", turn::ClientTransportName(static_cast<turn::ClientTransport>(t)));
    m.Sample("turnpike_allocations", transport + "," + Label("family", "ipv4"),
             e.allocations[t][0]);
    m.Sample("turnpike_allocations", transport + "," + Label("family", "ipv6"),
             e.allocations[t][1]);
  }
  m.Family("turnpike_permissions", "gauge", "Installed permissions (up to 1 s old).");
  m.Sample("turnpike_permissions", "", e.permissions);
  m.Family("turnpike_channels", "gauge", "Bound channels (up to 1 s old).");
  m.Sample("turnpike_channels", "", e.channels);
  m.Family("turnpike_node_allocations", "gauge",
           "Allocations counted against total-quota (current).");
  m.Sample("turnpike_node_allocations", "", in.node_allocations);
  m.Family("turnpike_allocation_quota", "gauge",
           "Configured quota by scope (total-quota, user-quota); 0 means unlimited.");
  m.Sample("turnpike_allocation_quota", Label("scope", "total"), in.total_quota);
  m.Sample("turnpike_allocation_quota", Label("scope", "user"), in.user_quota);
  m.Family("turnpike_relay_ports_free", "gauge", "Relay ports free per relay address.");
  for (const MetricsInput::Relay& r : in.relays) {
    m.Sample("turnpike_relay_ports_free", Label("relay_ip", r.ip), r.free_ports);
  }
  m.Family("turnpike_relay_ports", "gauge", "Relay ports configured per relay address.");
  for (const MetricsInput::Relay& r : in.relays) {
    m.Sample("turnpike_relay_ports", Label("relay_ip", r.ip), r.total_ports);
  }

  m.Family("turnpike_relayed_packets_total", "counter", "Packets relayed, by direction.");
  m.Sample("turnpike_relayed_packets_total", Label("direction", "to_peer"), e.to_peer_packets);
  m.Sample("turnpike_relayed_packets_total", Label("direction", "to_client"),
           e.to_client_packets);
  m.Family("turnpike_relayed_bytes_total", "counter",
           "Application bytes relayed, by direction.");
  m.Sample("turnpike_relayed_bytes_total", Label("direction", "to_peer"), e.to_peer_bytes);
  m.Sample("turnpike_relayed_bytes_total", Label("direction", "to_client"), e.to_client_bytes);
  m.Family("turnpike_received_packets_total", "counter",
           "Datagrams handed to the engine, by source.");
  m.Sample("turnpike_received_packets_total", Label("source", "client"), e.rx_client_packets);
  m.Sample("turnpike_received_packets_total", Label("source", "peer"), e.rx_peer_packets);
  m.Family("turnpike_socket_packets_total", "counter", "Datagrams through the sockets.");
  m.Sample("turnpike_socket_packets_total", Label("direction", "rx"), io.rx_packets);
  m.Sample("turnpike_socket_packets_total", Label("direction", "tx"), io.tx_packets);
  m.Family("turnpike_socket_bytes_total", "counter", "Bytes through the sockets.");
  m.Sample("turnpike_socket_bytes_total", Label("direction", "rx"), io.rx_bytes);
  m.Sample("turnpike_socket_bytes_total", Label("direction", "tx"), io.tx_bytes);
  m.Family("turnpike_stun_requests_total", "counter", "STUN/TURN requests received.");
  m.Sample("turnpike_stun_requests_total", "", e.stun_requests);
  m.Family("turnpike_binding_requests_total", "counter", "STUN Binding requests received.");
  m.Sample("turnpike_binding_requests_total", "", e.binding_requests);

  m.Family("turnpike_dropped_packets_total", "counter",
           "Packets the engine dropped, by reason.");
  for (size_t i = 0; i < e.drops.size(); ++i) {
    m.Sample("turnpike_dropped_packets_total",
             Label("reason", turn::DropReasonName(static_cast<turn::DropReason>(i))), e.drops[i]);
  }
  m.Family("turnpike_io_dropped_packets_total", "counter",
           "Packets the socket layer dropped, by reason.");
  const std::pair<std::string_view, uint64_t> io_drops[] = {
      {"rx_no_buffer", io.rx_enobufs},   {"rx_truncated", io.rx_truncated},
      {"rx_error", io.rx_errors},        {"tx_no_slot", io.tx_no_slot},
      {"tx_no_sqe", io.tx_no_sqe},       {"tx_too_big", io.tx_too_big},
      {"tx_stale_socket", io.tx_stale_socket},
      {"stream_slow_reader", io.stream_tx_dropped},
      {"rx_not_for_relay", io.rx_exception},
      {"tx_neighbor_unresolved", io.tx_neighbor_pending},
      {"dispatch_ring_full", io.dispatch_drops},
  };
  for (const auto& [reason, value] : io_drops) {
    m.Sample("turnpike_io_dropped_packets_total", Label("reason", reason), value);
  }
  m.Family("turnpike_stream_connections", "gauge", "Open TURN-over-TCP/TLS client connections.");
  m.Sample("turnpike_stream_connections", "", io.streams);
  m.Family("turnpike_stream_accepted_total", "counter", "TCP/TLS client connections accepted.");
  m.Sample("turnpike_stream_accepted_total", "", io.stream_accepted);
  m.Family("turnpike_stream_refused_total", "counter",
           "TCP/TLS connections closed at accept, by limit.");
  m.Sample("turnpike_stream_refused_total", Label("limit", "max_connections"),
           io.stream_refused_total);
  m.Sample("turnpike_stream_refused_total", Label("limit", "max_per_ip"),
           io.stream_refused_per_ip);
  m.Sample("turnpike_stream_refused_total", Label("limit", "accept_error"),
           io.stream_accept_errors);
  m.Family("turnpike_stream_closed_total", "counter",
           "TCP/TLS connections closed, by reason (shutdown not counted).");
  const std::pair<std::string_view, uint64_t> closed[] = {
      {"client", io.stream_closed_by_client},
      {"error", io.stream_errors},
      {"framing", io.stream_framing_errors},
      {"tls", io.stream_tls_failures},
      {"handshake_timeout", io.stream_handshake_timeouts},
      {"idle_timeout", io.stream_idle_timeouts},
  };
  for (const auto& [reason, value] : closed) {
    m.Sample("turnpike_stream_closed_total", Label("reason", reason), value);
  }
  m.Family("turnpike_tls_handshakes_total", "counter", "TLS handshakes completed.");
  m.Sample("turnpike_tls_handshakes_total", "", io.tls_handshakes);

  m.Family("turnpike_send_errors_total", "counter", "Failed sends, by error class.");
  const std::pair<std::string_view, uint64_t> send_errors[] = {
      {"again", io.tx_err_again},       {"unreachable", io.tx_err_unreachable},
      {"denied", io.tx_err_denied},     {"too_big", io.tx_err_too_big},
      {"other", io.tx_err_other},
  };
  for (const auto& [cls, value] : send_errors) {
    m.Sample("turnpike_send_errors_total", Label("class", cls), value);
  }
  m.Family("turnpike_auth_failures_total", "counter", "Authentication failures, by reason.");
  for (size_t i = 0; i < e.auth_failures.size(); ++i) {
    m.Sample("turnpike_auth_failures_total",
             Label("reason", turn::AuthFailureName(static_cast<turn::AuthFailure>(i))),
             e.auth_failures[i]);
  }
  m.Family("turnpike_allocation_requests_total", "counter", "Allocate requests, by result.");
  for (size_t i = 0; i < e.allocate_results.size(); ++i) {
    m.Sample("turnpike_allocation_requests_total",
             Label("result", turn::AllocateResultName(static_cast<turn::AllocateResult>(i))),
             e.allocate_results[i]);
  }
  m.Family("turnpike_quota_rejections_total", "counter",
           "Allocate requests refused by user-quota or total-quota (486).");
  m.Sample("turnpike_quota_rejections_total", "",
           e.allocate_results[static_cast<size_t>(turn::AllocateResult::kQuota)]);
  m.Family("turnpike_allocations_ended_total", "counter", "Allocations ended, by cause.");
  m.Sample("turnpike_allocations_ended_total", Label("cause", "expired"), e.allocations_expired);
  m.Sample("turnpike_allocations_ended_total", Label("cause", "deleted"), e.allocations_deleted);
  m.Family("turnpike_permissions_created_total", "counter", "Permissions installed.");
  m.Sample("turnpike_permissions_created_total", "", e.permissions_created);
  m.Family("turnpike_channels_bound_total", "counter", "Channel bindings made.");
  m.Sample("turnpike_channels_bound_total", "", e.channels_bound);

  m.Family("turnpike_worker_busy_ratio", "gauge",
           "Share of the last second each worker spent handling work rather than waiting.");
  for (size_t w = 0; w < in.busy_ratio.size(); ++w) {
    m.SampleDouble("turnpike_worker_busy_ratio", Label("worker", std::to_string(w)),
                   in.busy_ratio[w]);
  }
  m.Family("turnpike_worker_busy_seconds_total", "counter",
           "Seconds each worker spent handling work rather than waiting.");
  for (size_t w = 0; w < in.io.size(); ++w) {
    m.SampleDouble("turnpike_worker_busy_seconds_total", Label("worker", std::to_string(w)),
                   static_cast<double>(in.io[w].busy_ns) / 1e9);
  }
  m.Family("turnpike_worker_received_packets_total", "counter",
           "Frames or datagrams each worker handled (DPDK: after the distributor).");
  for (size_t w = 0; w < in.io.size(); ++w) {
    m.Sample("turnpike_worker_received_packets_total", Label("worker", std::to_string(w)),
             in.io[w].rx_packets);
  }
  m.Family("turnpike_worker_stage_cycles_total", "counter",
           "DPDK: TSC cycles of each worker's sampled bursts (one port burst in 16) by step; "
           "divided by turnpike_worker_stage_packets_total, cycles per packet.");
  for (size_t w = 0; w < in.io.size(); ++w) {
    const std::string worker = Label("worker", std::to_string(w));
    const std::pair<const char*, uint64_t> steps[] = {
        {"rx", in.io[w].stage_cycles_rx},       {"classify", in.io[w].stage_cycles_classify},
        {"engine", in.io[w].stage_cycles_engine}, {"build", in.io[w].stage_cycles_build},
        {"tx", in.io[w].stage_cycles_tx}};
    for (const auto& [step, cycles] : steps) {
      m.Sample("turnpike_worker_stage_cycles_total", worker + "," + Label("step", step), cycles);
    }
  }
  m.Family("turnpike_worker_stage_packets_total", "counter",
           "DPDK: packets of each worker's sampled bursts.");
  for (size_t w = 0; w < in.io.size(); ++w) {
    m.Sample("turnpike_worker_stage_packets_total", Label("worker", std::to_string(w)),
             in.io[w].stage_packets);
  }
  m.Family("turnpike_dispatched_packets_total", "counter",
           "DPDK: frames put on another worker's ring (distribution, hairpins, ARP / ND copies).");
  m.Sample("turnpike_dispatched_packets_total", "", io.dispatched);
  m.Family("turnpike_neighbor_parked_packets_total", "counter",
           "DPDK: frames held until ARP / ND resolved their next hop (then sent).");
  m.Sample("turnpike_neighbor_parked_packets_total", "", io.tx_neighbor_parked);
  m.Family("turnpike_kernel_exception_packets_total", "counter",
           "DPDK exception path (dpdk-kernel-interface): frames to and from the kernel.");
  m.Sample("turnpike_kernel_exception_packets_total", Label("direction", "to_kernel"),
           io.to_kernel);
  m.Sample("turnpike_kernel_exception_packets_total", Label("direction", "from_kernel"),
           io.from_kernel);
  m.Family("turnpike_worker_allocations", "gauge", "Allocations owned by each worker.");
  for (size_t w = 0; w < in.io.size(); ++w) {
    m.Sample("turnpike_worker_allocations", Label("worker", std::to_string(w)),
             in.io[w].allocations);
  }
  m.Family("turnpike_event_subscribers", "gauge", "Open /v1/events streams.");
  m.Sample("turnpike_event_subscribers", "", in.event_subscribers);
  return m.Take();
}

}  // namespace turnpike::control
