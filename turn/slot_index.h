// SlotIndex: the engine's client 5-tuple -> allocation slot index, built for the relay's
// per-packet lookup.
//
// Open addressing with linear probing over 8-byte entries (32 bits of the key's hash and the
// slot), at most half full, so a probe usually reads one cache line and the line can be
// prefetched from the hash alone before a burst's frames are handled (absl's flat_hash_map
// prefetches its control bytes, but the slot it then compares lies anywhere in a 16-slot
// group). Keys are not stored: the caller's `matches(slot)` compares the key with the one its
// slot holds, which the relay reads next anyway. Erase shifts the following entries back (no tombstones), so lookups
// never slow down with churn.
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace turnpike::turn {

class SlotIndex {
 public:
  static constexpr uint32_t kNone = UINT32_MAX;

  // Room for `max_entries` keys (the table has twice as many entries, a power of two).
  explicit SlotIndex(uint32_t max_entries)
      : entries_(std::bit_ceil(std::max<size_t>(16, size_t{max_entries} * 2))),
        mask_(entries_.size() - 1),
        max_(max_entries) {}

  void Prefetch(uint64_t hash) const { __builtin_prefetch(&entries_[hash & mask_]); }

  // The slot whose key has this hash and for which `matches(slot)` is true, or kNone.
  template <typename Matches>
  uint32_t Find(uint64_t hash, Matches&& matches) const {
    const uint32_t h = static_cast<uint32_t>(hash);
    for (size_t i = hash & mask_;; i = (i + 1) & mask_) {
      const Entry& e = entries_[i];
      if (e.slot_plus_one == 0) return kNone;
      if (e.hash == h && matches(e.slot_plus_one - 1)) return e.slot_plus_one - 1;
    }
  }

  // Adds `slot` under `hash` (the caller has checked that the key is not there). False when
  // `max_entries` are in already.
  bool Insert(uint64_t hash, uint32_t slot) {
    if (size_ == max_) return false;
    size_t i = hash & mask_;
    while (entries_[i].slot_plus_one != 0) i = (i + 1) & mask_;
    entries_[i] = Entry{static_cast<uint32_t>(hash), slot + 1};
    ++size_;
    return true;
  }

  // Removes `slot`, inserted under `hash`. False when it is not there.
  bool Erase(uint64_t hash, uint32_t slot) {
    size_t i = hash & mask_;
    for (;; i = (i + 1) & mask_) {
      if (entries_[i].slot_plus_one == 0) return false;
      if (entries_[i].slot_plus_one == slot + 1) break;
    }
    // Backward shift: move each following entry of the run into the hole unless its home
    // position lies cyclically in (hole, its position], where it must stay.
    size_t hole = i;
    for (size_t j = (i + 1) & mask_; entries_[j].slot_plus_one != 0; j = (j + 1) & mask_) {
      const size_t home = entries_[j].hash & mask_;
      const bool stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
      if (!stays) {
        entries_[hole] = entries_[j];
        hole = j;
      }
    }
    entries_[hole] = Entry{};
    --size_;
    return true;
  }

  // Calls f(slot) for every slot in. `f` must not Insert or Erase.
  template <typename F>
  void ForEach(F&& f) const {
    for (const Entry& e : entries_) {
      if (e.slot_plus_one != 0) f(e.slot_plus_one - 1);
    }
  }

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

 private:
  struct Entry {
    uint32_t hash = 0;
    uint32_t slot_plus_one = 0;  // 0: empty
  };
  std::vector<Entry> entries_;
  size_t mask_;
  uint32_t max_;
  size_t size_ = 0;
};

}  // namespace turnpike::turn
