// SlotIndex against a reference map, with hashes chosen to collide and to wrap around the end
// of the table, so that the backward shift of Erase is exercised in every position.
#include "turn/slot_index.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>

namespace turnpike::turn {
namespace {

// Every slot's key is the slot number; its hash comes from the test.
struct Model {
  std::map<uint32_t, uint64_t> hash_of;  // slot -> hash
};

void ExpectSame(const SlotIndex& index, const Model& model, uint32_t max_slot) {
  ASSERT_EQ(index.size(), model.hash_of.size());
  for (uint32_t slot = 0; slot < max_slot; ++slot) {
    const auto it = model.hash_of.find(slot);
    const uint64_t hash = it != model.hash_of.end() ? it->second : slot * 7919u;
    const uint32_t found = index.Find(hash, [&](uint32_t s) { return s == slot; });
    EXPECT_EQ(found, it != model.hash_of.end() ? slot : SlotIndex::kNone) << "slot " << slot;
  }
  std::set<uint32_t> seen;
  index.ForEach([&](uint32_t slot) { EXPECT_TRUE(seen.insert(slot).second); });
  EXPECT_EQ(seen.size(), model.hash_of.size());
}

TEST(SlotIndexTest, FindsWhatWasInsertedAndNotWhatWasErased) {
  SlotIndex index(8);  // 16 entries
  EXPECT_EQ(index.Find(5, [](uint32_t) { return true; }), SlotIndex::kNone);
  ASSERT_TRUE(index.Insert(5, 3));
  EXPECT_EQ(index.Find(5, [](uint32_t s) { return s == 3; }), 3u);
  EXPECT_EQ(index.Find(5, [](uint32_t) { return false; }), SlotIndex::kNone);  // other key
  EXPECT_EQ(index.Find(6, [](uint32_t) { return true; }), SlotIndex::kNone);   // other hash
  EXPECT_FALSE(index.Erase(5, 4));
  EXPECT_TRUE(index.Erase(5, 3));
  EXPECT_EQ(index.Find(5, [](uint32_t) { return true; }), SlotIndex::kNone);
  EXPECT_TRUE(index.empty());
}

TEST(SlotIndexTest, RefusesMoreThanItsCapacity) {
  SlotIndex index(3);
  for (uint32_t s = 0; s < 3; ++s) EXPECT_TRUE(index.Insert(s, s));
  EXPECT_FALSE(index.Insert(9, 9));
  EXPECT_EQ(index.size(), 3u);
}

TEST(SlotIndexTest, RandomChurnWithCollisionsMatchesAModel) {
  constexpr uint32_t kMax = 24;  // 64 entries
  std::mt19937 rng(42);
  for (const uint64_t hash_range : {uint64_t{4}, uint64_t{64}, uint64_t{1} << 40}) {
    SlotIndex index(kMax);
    Model model;
    for (int step = 0; step < 4000; ++step) {
      const uint32_t slot = rng() % 40;
      if (model.hash_of.count(slot) != 0) {
        ASSERT_TRUE(index.Erase(model.hash_of[slot], slot));
        model.hash_of.erase(slot);
      } else if (model.hash_of.size() < kMax) {
        // Small ranges pile keys onto a few home positions; 60-63 wrap around the end.
        const uint64_t hash = hash_range == 4 ? 60 + rng() % 4 : rng() % hash_range;
        ASSERT_TRUE(index.Insert(hash, slot));
        model.hash_of[slot] = hash;
      }
      if (step % 50 == 0) ExpectSame(index, model, 40);
    }
    ExpectSame(index, model, 40);
  }
}

}  // namespace
}  // namespace turnpike::turn
