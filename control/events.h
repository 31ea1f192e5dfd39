// The control plane's event stream (GET /v1/events, Server-Sent Events): allocation created and
// deleted, drain state and reloads. Producers are the data-plane workers (once per loop
// iteration that had allocation events, never per packet) and the control plane itself;
// consumers are HTTP threads each following one stream. A bounded ring keeps the last events so
// a client can resume with Last-Event-ID; a consumer that falls more than the ring behind is told
// how many events it missed.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"

namespace turnpike::control {

struct Event {
  uint64_t seq = 0;
  std::string type;  // SSE "event:" field, e.g. allocation_created
  std::string json;  // SSE "data:" field, one line of JSON
};

class EventHub {
 public:
  explicit EventHub(size_t capacity = 1024) : capacity_(capacity) {}

  // Appends an event (any thread) and wakes every waiting consumer. Returns its sequence number.
  uint64_t Publish(std::string type, std::string json);
  // Several at once, one lock.
  void PublishAll(std::vector<std::pair<std::string, std::string>> events);

  // Events with seq >= *next, waiting up to `wait` for the first one. Advances *next. Sets
  // *missed to how many were dropped from the ring before the consumer read them. Returns an
  // empty vector on timeout or after Shutdown().
  std::vector<Event> WaitFrom(uint64_t* next, std::chrono::milliseconds wait, uint64_t* missed);
  // Sequence number the next published event will get.
  uint64_t next_seq() const;

  // Limits concurrent streams so they cannot take every HTTP thread. False when full.
  bool AddSubscriber(size_t max);
  void RemoveSubscriber();
  size_t subscribers() const;

  // Wakes every consumer for good (server stopping).
  void Shutdown();
  bool shut_down() const;

 private:
  void PushLocked(std::string type, std::string json) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const size_t capacity_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Event> ring_ ABSL_GUARDED_BY(mu_);
  uint64_t next_seq_ ABSL_GUARDED_BY(mu_) = 1;
  size_t subscribers_ ABSL_GUARDED_BY(mu_) = 0;
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace turnpike::control
