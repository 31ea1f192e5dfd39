// Event ring for GET /v1/events; see events.h.
#include "control/events.h"

namespace turnpike::control {

void EventHub::PushLocked(std::string type, std::string json) {
  ring_.push_back(Event{next_seq_++, std::move(type), std::move(json)});
  while (ring_.size() > capacity_) ring_.pop_front();
}

uint64_t EventHub::Publish(std::string type, std::string json) {
  uint64_t seq;
  {
    std::lock_guard lock(mu_);
    seq = next_seq_;
    PushLocked(std::move(type), std::move(json));
  }
  cv_.notify_all();
  return seq;
}

void EventHub::PublishAll(std::vector<std::pair<std::string, std::string>> events) {
  if (events.empty()) return;
  {
    std::lock_guard lock(mu_);
    for (auto& [type, json] : events) PushLocked(std::move(type), std::move(json));
  }
  cv_.notify_all();
}

std::vector<Event> EventHub::WaitFrom(uint64_t* next, std::chrono::milliseconds wait,
                                      uint64_t* missed) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, wait, [&] { return shutdown_ || next_seq_ > *next; });
  *missed = 0;
  std::vector<Event> out;
  if (shutdown_) return out;
  const uint64_t first = ring_.empty() ? next_seq_ : ring_.front().seq;
  if (*next < first) {
    *missed = first - *next;
    *next = first;
  }
  for (const Event& e : ring_) {
    if (e.seq >= *next) out.push_back(e);
  }
  *next = next_seq_;
  return out;
}

uint64_t EventHub::next_seq() const {
  std::lock_guard lock(mu_);
  return next_seq_;
}

bool EventHub::AddSubscriber(size_t max) {
  std::lock_guard lock(mu_);
  if (subscribers_ >= max || shutdown_) return false;
  ++subscribers_;
  return true;
}

void EventHub::RemoveSubscriber() {
  std::lock_guard lock(mu_);
  if (subscribers_ > 0) --subscribers_;
}

size_t EventHub::subscribers() const {
  std::lock_guard lock(mu_);
  return subscribers_;
}

void EventHub::Shutdown() {
  {
    std::lock_guard lock(mu_);
    shutdown_ = true;
  }
  cv_.notify_all();
}

bool EventHub::shut_down() const {
  std::lock_guard lock(mu_);
  return shutdown_;
}

}  // namespace turnpike::control
