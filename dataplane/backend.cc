// The part of dataplane::Backend that is the same for every backend.
#include "dataplane/backend.h"

#include <algorithm>
#include <future>

#include "absl/strings/str_format.h"

namespace turnpike::dataplane {

absl::StatusOr<WorkerReply> Backend::Call(size_t worker, WorkerCommand command,
                                          std::chrono::milliseconds timeout) {
  // Shared so a worker that answers after the caller gave up still has a live promise.
  auto promise = std::make_shared<std::promise<WorkerReply>>();
  std::future<WorkerReply> future = promise->get_future();
  command.done = [promise](WorkerReply&& reply) { promise->set_value(std::move(reply)); };
  if (!Post(worker, std::move(command))) {
    return absl::NotFoundError(absl::StrFormat("no worker %d", worker));
  }
  if (future.wait_for(timeout) != std::future_status::ready) {
    return absl::DeadlineExceededError(absl::StrFormat(
        "worker %d did not answer within %d ms", worker, static_cast<int>(timeout.count())));
  }
  return future.get();
}

void EventBuffer::OnAllocationCreated(const turn::AllocationInfo& info) {
  if (!enabled()) return;
  WorkerEvent e;
  e.kind = WorkerEvent::Kind::kAllocationCreated;
  e.worker = worker_;
  e.id = info.id;
  e.username = info.username;
  e.client = info.tuple.client.ToString();
  e.relay = info.relay.ToString();
  events_.push_back(std::move(e));
}

void EventBuffer::OnAllocationDeleted(uint64_t id, std::string_view username,
                                      turn::AllocationEnd reason) {
  if (!enabled()) return;
  WorkerEvent e;
  e.kind = WorkerEvent::Kind::kAllocationDeleted;
  e.worker = worker_;
  e.id = id;
  e.username = std::string(username);
  e.reason = std::string(turn::AllocationEndName(reason));
  events_.push_back(std::move(e));
}

void EventBuffer::Flush() {
  if (events_.empty() || !enabled()) return;
  std::vector<WorkerEvent> batch;
  batch.swap(events_);
  (*callback_)(std::move(batch));
}

void CommandQueue::Post(WorkerCommand command) {
  std::lock_guard lock(mu_);
  queued_.push_back(std::move(command));
  pending_.store(true, std::memory_order_relaxed);
}

// The engine calls below walk or change the worker's tables (ListAllocations is O(allocations),
// about a microsecond per allocation), which is why they run on the worker's thread and not on
// the HTTP thread.
void CommandQueue::RunAll(turn::Engine& engine, const std::function<void()>& after_kill,
                          uint64_t* ran) {
  {
    std::lock_guard lock(mu_);
    pending_.store(false, std::memory_order_relaxed);
    running_.swap(queued_);
  }
  for (WorkerCommand& c : running_) {
    WorkerReply reply;
    switch (c.kind) {
      case WorkerCommand::Kind::kPing:
        break;
      case WorkerCommand::Kind::kListAllocations:
        engine.ListAllocations(&reply.allocations);
        break;
      case WorkerCommand::Kind::kKillAllocation:
        reply.found = engine.KillAllocation(c.allocation_id);
        if (after_kill) after_kill();
        break;
      case WorkerCommand::Kind::kReconfigure:
        if (c.config != nullptr) engine.Reconfigure(*c.config);
        break;
    }
    ++*ran;
    if (c.done) c.done(std::move(reply));
  }
  running_.clear();
}

void IoCounters::Add(const IoCounters& o) {
  rx_packets += o.rx_packets;
  rx_bytes += o.rx_bytes;
  rx_enobufs += o.rx_enobufs;
  rx_truncated += o.rx_truncated;
  rx_errors += o.rx_errors;
  rx_rearms += o.rx_rearms;
  tx_packets += o.tx_packets;
  tx_bytes += o.tx_bytes;
  tx_no_slot += o.tx_no_slot;
  tx_no_sqe += o.tx_no_sqe;
  tx_too_big += o.tx_too_big;
  tx_stale_socket += o.tx_stale_socket;
  tx_err_again += o.tx_err_again;
  tx_err_unreachable += o.tx_err_unreachable;
  tx_err_denied += o.tx_err_denied;
  tx_err_too_big += o.tx_err_too_big;
  tx_err_other += o.tx_err_other;
  relays_opened += o.relays_opened;
  relays_closed += o.relays_closed;
  relay_open_failures += o.relay_open_failures;
  bursts += o.bursts;
  ticks += o.ticks;
  allocations += o.allocations;
  busy_ns += o.busy_ns;
  loop_iterations += o.loop_iterations;
  commands += o.commands;
  streams += o.streams;
  stream_accepted += o.stream_accepted;
  stream_refused_total += o.stream_refused_total;
  stream_refused_per_ip += o.stream_refused_per_ip;
  stream_accept_errors += o.stream_accept_errors;
  stream_closed_by_client += o.stream_closed_by_client;
  stream_errors += o.stream_errors;
  stream_framing_errors += o.stream_framing_errors;
  stream_tls_failures += o.stream_tls_failures;
  stream_handshake_timeouts += o.stream_handshake_timeouts;
  stream_idle_timeouts += o.stream_idle_timeouts;
  stream_tx_dropped += o.stream_tx_dropped;
  tls_handshakes += o.tls_handshakes;
  rx_exception += o.rx_exception;
  tx_neighbor_pending += o.tx_neighbor_pending;
  dispatched += o.dispatched;
  dispatch_drops += o.dispatch_drops;
  to_kernel += o.to_kernel;
  from_kernel += o.from_kernel;
  tx_neighbor_parked += o.tx_neighbor_parked;
  stage_packets += o.stage_packets;
  stage_cycles_rx += o.stage_cycles_rx;
  stage_cycles_classify += o.stage_cycles_classify;
  stage_cycles_engine += o.stage_cycles_engine;
  stage_cycles_build += o.stage_cycles_build;
  stage_cycles_tx += o.stage_cycles_tx;
}

uint32_t PerWorkerAllocations(uint32_t max_allocations, uint32_t workers) {
  workers = std::max<uint32_t>(1, workers);
  const uint32_t even_share = (max_allocations + workers - 1) / workers;
  return static_cast<uint32_t>(std::min<uint64_t>(max_allocations, uint64_t{even_share} * 2 + 64));
}

}  // namespace turnpike::dataplane
