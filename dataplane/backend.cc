// The part of dataplane::Backend that is the same for every backend.
#include "dataplane/backend.h"

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

}  // namespace turnpike::dataplane
