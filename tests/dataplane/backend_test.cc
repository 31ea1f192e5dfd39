// Unit tests of the backend-neutral pieces in dataplane/backend.h.
#include "dataplane/backend.h"

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "gtest/gtest.h"

namespace turnpike::dataplane {
namespace {

// The counters are a run of uint64_t fields ending with stage_cycles_tx; Add must sum each
// one (a field missing from Add would read as zero in /metrics and the telemetry).
constexpr size_t kCounterWords = offsetof(IoCounters, stage_cycles_tx) / 8 + 1;

uint64_t Word(const IoCounters& c, size_t i) {
  uint64_t w;
  std::memcpy(&w, reinterpret_cast<const unsigned char*>(&c) + i * 8, 8);
  return w;
}

void SetWord(IoCounters& c, size_t i, uint64_t w) {
  std::memcpy(reinterpret_cast<unsigned char*>(&c) + i * 8, &w, 8);
}

TEST(IoCountersTest, AddSumsEveryField) {
  IoCounters a;
  IoCounters b;
  for (size_t i = 0; i < kCounterWords; ++i) {
    SetWord(a, i, 1000 + i);
    SetWord(b, i, 7 * i + 1);
  }
  IoCounters sum = a;
  sum.Add(b);
  for (size_t i = 0; i < kCounterWords; ++i) {
    EXPECT_EQ(Word(sum, i), 1000 + i + 7 * i + 1) << "field " << i << " is not summed by Add";
  }
}

TEST(PerWorkerAllocationsTest, TwiceTheEvenShareWithSlackNeverMoreThanTheWhole) {
  EXPECT_EQ(PerWorkerAllocations(10000, 1), 10000u);
  EXPECT_EQ(PerWorkerAllocations(10000, 2), 10000u);       // 2 * 5000 + 64 > 10000
  EXPECT_EQ(PerWorkerAllocations(10000, 4), 5064u);        // 2 * 2500 + 64
  EXPECT_EQ(PerWorkerAllocations(10001, 4), 5066u);        // the share rounds up: 2501
  EXPECT_EQ(PerWorkerAllocations(100, 8), 90u);            // 2 * 13 + 64
  EXPECT_EQ(PerWorkerAllocations(10, 8), 10u);
  EXPECT_EQ(PerWorkerAllocations(1000, 0), 1000u);         // zero workers read as one
}

}  // namespace
}  // namespace turnpike::dataplane
