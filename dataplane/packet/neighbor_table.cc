#include "dataplane/packet/neighbor_table.h"

#include <algorithm>

namespace turnpike::dataplane::packet {

NeighborTable::NeighborTable(const NeighborTableOptions& options) : options_(options) {
  options_.max_queued = std::max<uint8_t>(options_.max_queued, 1);
  // Swiss tables keep tombstones after erase and rehash when they use up the growth budget. With
  // room for twice the capacity (and at least 32 so the table is more than one group), live
  // entries stay under 25/32 of the slots, where absl cleans tombstones in place instead of
  // growing: no allocation after this line.
  entries_.reserve(std::max<size_t>(2 * options_.capacity, 32));
}

std::optional<NeighborState> NeighborTable::Live(const Entry& e, uint64_t now) const {
  if (!e.resolved) {
    return now < e.expires ? std::optional(NeighborState::kIncomplete) : std::nullopt;
  }
  if (now < e.expires) {
    return NeighborState::kReachable;
  }
  if (now < e.expires + options_.stale_seconds) {
    return NeighborState::kStale;
  }
  return std::nullopt;
}

void NeighborTable::StartResolution(Entry& e, uint64_t now, bool queued) {
  e = Entry{};
  e.queued = queued ? 1 : 0;
  e.expires = now + options_.incomplete_seconds;
  e.last_request = now;
}

NeighborTable::Resolution NeighborTable::Resolve(const IpAddress& ip, uint64_t now,
                                                 bool can_queue) {
  Resolution r;
  Hot& hot = hot_[HotSlot(ip)];
  if (hot.now == now && hot.ip == ip) {
    r.disposition = Disposition::kSend;
    r.mac = hot.mac;
    return r;
  }
  auto it = entries_.find(ip);
  if (it == entries_.end()) {
    if (entries_.size() >= options_.capacity) {
      return r;  // kDrop
    }
    it = entries_.try_emplace(ip).first;
    StartResolution(it->second, now, can_queue);
    r.disposition = can_queue ? Disposition::kQueue : Disposition::kDrop;
    r.send_request = true;
    return r;
  }
  Entry& e = it->second;
  const std::optional<NeighborState> state = Live(e, now);
  if (!state) {  // dead: resolve afresh in the same slot
    StartResolution(e, now, can_queue);
    r.disposition = can_queue ? Disposition::kQueue : Disposition::kDrop;
    r.send_request = true;
    return r;
  }
  switch (*state) {
    case NeighborState::kReachable:
      r.disposition = Disposition::kSend;
      r.mac = e.mac;
      hot = Hot{ip, e.mac, now, false};
      return r;
    case NeighborState::kStale:
      r.disposition = Disposition::kSend;
      r.mac = e.mac;
      break;
    case NeighborState::kIncomplete:
      if (can_queue && e.queued < options_.max_queued) {
        ++e.queued;
        r.disposition = Disposition::kQueue;
      }
      break;
  }
  const bool request_due = now >= e.last_request + options_.retransmit_seconds;
  if (request_due) {
    e.last_request = now;
    r.send_request = true;
  } else if (r.disposition == Disposition::kSend) {
    hot = Hot{ip, e.mac, now, false};  // STALE, request already asked for this period
  }
  return r;
}

std::optional<MacAddress> NeighborTable::Lookup(const IpAddress& ip, uint64_t now) const {
  auto it = entries_.find(ip);
  if (it == entries_.end()) {
    return std::nullopt;
  }
  const std::optional<NeighborState> state = Live(it->second, now);
  if (!state || *state == NeighborState::kIncomplete) {
    return std::nullopt;
  }
  return it->second.mac;
}

std::optional<NeighborState> NeighborTable::StateOf(const IpAddress& ip, uint64_t now) const {
  auto it = entries_.find(ip);
  return it == entries_.end() ? std::nullopt : Live(it->second, now);
}

NeighborTable::Learned NeighborTable::Learn(const IpAddress& ip, const MacAddress& mac,
                                            uint64_t now, bool create) {
  Learned learned;
  Hot& hot = hot_[HotSlot(ip)];
  if (hot.now == now && hot.learned && hot.ip == ip && hot.mac == mac) {
    learned.result = LearnResult::kUpdated;  // the same Learn earlier this second: nothing changes
    return learned;
  }
  auto it = entries_.find(ip);
  // A dead entry not yet swept counts as absent, but its slot is reused.
  const bool live = it != entries_.end() && Live(it->second, now).has_value();
  if (!live) {
    if (!create) {
      return learned;  // kIgnored
    }
    if (it == entries_.end()) {
      if (entries_.size() >= options_.capacity) {
        learned.result = LearnResult::kFull;
        return learned;
      }
      it = entries_.try_emplace(ip).first;
    }
    learned.result = LearnResult::kCreated;
  } else if (!it->second.resolved) {
    learned.result = LearnResult::kResolved;
    learned.queued = it->second.queued;
  } else {
    learned.result = LearnResult::kUpdated;
  }
  Entry& e = it->second;
  e.mac = mac;
  e.resolved = true;
  e.queued = 0;
  e.expires = now + options_.reachable_seconds;
  hot = Hot{ip, mac, now, true};
  return learned;
}

bool NeighborTable::Erase(const IpAddress& ip) {
  Hot& hot = hot_[HotSlot(ip)];
  if (hot.ip == ip) hot = Hot{};
  return entries_.erase(ip) > 0;
}

size_t NeighborTable::Sweep(uint64_t now) {
  size_t removed = 0;
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (!Live(it->second, now)) {
      entries_.erase(it++);
      ++removed;
    } else {
      ++it;
    }
  }
  if (removed > 0) hot_.fill(Hot{});  // an entry dead at `now` was never cached at `now`; cheap
  return removed;
}

}  // namespace turnpike::dataplane::packet
