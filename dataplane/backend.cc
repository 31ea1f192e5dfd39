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

}  // namespace turnpike::dataplane
