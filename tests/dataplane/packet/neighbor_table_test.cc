// Tests for dataplane/packet/neighbor_table.h: resolution with a bounded queue and request
// retransmission, expiry through STALE to dead, the capacity limit, and that churning the table
// at capacity never allocates once it is constructed.
#include "dataplane/packet/neighbor_table.h"

#include <atomic>
#include <cstdlib>
#include <new>
#include <random>

#include "gtest/gtest.h"
#include "tests/dataplane/packet/test_util.h"

// Counts global allocations so a test can assert that a stretch of code made none.
namespace {
std::atomic<size_t> g_allocations{0};
}  // namespace

void* operator new(size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) {
    return p;
  }
  throw std::bad_alloc();
}
void* operator new[](size_t size) { return ::operator new(size); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }

namespace turnpike::dataplane::packet {
namespace {

using Disposition = NeighborTable::Disposition;
using LearnResult = NeighborTable::LearnResult;

const MacAddress kMacA{{0x52, 0x54, 0x00, 0x00, 0x00, 0x0a}};
const MacAddress kMacB{{0x52, 0x54, 0x00, 0x00, 0x00, 0x0b}};

IpAddress Host(uint32_t n) { return IpAddress::V4(0x0ac80000u + n); }  // 10.200.x.y

NeighborTableOptions SmallOptions() {
  NeighborTableOptions o;
  o.capacity = 8;
  o.reachable_seconds = 30;
  o.stale_seconds = 60;
  o.incomplete_seconds = 3;
  o.retransmit_seconds = 1;
  o.max_queued = 3;
  return o;
}

TEST(NeighborTable, QueuesUpToTheBoundWhileResolvingAndAsksOncePerSecond) {
  NeighborTable table(SmallOptions());
  const IpAddress ip = Host(1);
  auto r = table.Resolve(ip, 100);
  EXPECT_EQ(r.disposition, Disposition::kQueue);
  EXPECT_TRUE(r.send_request);  // first packet: ask
  EXPECT_EQ(table.StateOf(ip, 100), NeighborState::kIncomplete);
  EXPECT_FALSE(table.Lookup(ip, 100).has_value());

  r = table.Resolve(ip, 100);
  EXPECT_EQ(r.disposition, Disposition::kQueue);
  EXPECT_FALSE(r.send_request);  // asked this second already
  r = table.Resolve(ip, 100);
  EXPECT_EQ(r.disposition, Disposition::kQueue);
  r = table.Resolve(ip, 100);
  EXPECT_EQ(r.disposition, Disposition::kDrop);  // fourth packet: queue of 3 is full
  EXPECT_FALSE(r.send_request);

  r = table.Resolve(ip, 101);
  EXPECT_EQ(r.disposition, Disposition::kDrop);
  EXPECT_TRUE(r.send_request);  // a second later: retransmit even while dropping
  EXPECT_FALSE(table.Resolve(ip, 101).send_request);
}

TEST(NeighborTable, LearningResolvesAndReportsTheParkedPackets) {
  NeighborTable table(SmallOptions());
  const IpAddress ip = Host(1);
  table.Resolve(ip, 100);
  table.Resolve(ip, 100);
  const auto learned = table.Learn(ip, kMacA, 101, /*create=*/false);
  EXPECT_EQ(learned.result, LearnResult::kResolved);
  EXPECT_EQ(learned.queued, 2);
  const auto r = table.Resolve(ip, 101);
  EXPECT_EQ(r.disposition, Disposition::kSend);
  EXPECT_EQ(r.mac, kMacA);
  EXPECT_FALSE(r.send_request);
  EXPECT_EQ(table.Lookup(ip, 101), kMacA);
}

// A caller with no room to park (can_queue false) drops the packet, but the table resolves the
// next hop as usual: a new or dead entry asks for a request, an incomplete one retransmits once
// a second, a stale one is probed. Nothing counts as parked, and the answer resolves the entry.
TEST(NeighborTable, ResolvesWithoutQueueingWhenTheCallerCannotPark) {
  NeighborTable table(SmallOptions());
  const IpAddress ip = Host(1);
  auto r = table.Resolve(ip, 100, /*can_queue=*/false);
  EXPECT_EQ(r.disposition, Disposition::kDrop);
  EXPECT_TRUE(r.send_request);  // the first packet still asks
  EXPECT_EQ(table.StateOf(ip, 100), NeighborState::kIncomplete);
  r = table.Resolve(ip, 100, /*can_queue=*/false);
  EXPECT_EQ(r.disposition, Disposition::kDrop);
  EXPECT_FALSE(r.send_request);  // asked this second already
  r = table.Resolve(ip, 101, /*can_queue=*/false);
  EXPECT_EQ(r.disposition, Disposition::kDrop);
  EXPECT_TRUE(r.send_request);  // retransmitted a second later
  // Room again: the packet is parked, and only it is counted.
  EXPECT_EQ(table.Resolve(ip, 101).disposition, Disposition::kQueue);
  const auto learned = table.Learn(ip, kMacA, 102, /*create=*/false);
  EXPECT_EQ(learned.result, LearnResult::kResolved);
  EXPECT_EQ(learned.queued, 1);
  r = table.Resolve(ip, 102, /*can_queue=*/false);
  EXPECT_EQ(r.disposition, Disposition::kSend);
  EXPECT_EQ(r.mac, kMacA);

  // A stale entry is still used and probed.
  r = table.Resolve(ip, 102 + 30, /*can_queue=*/false);
  EXPECT_EQ(r.disposition, Disposition::kSend);
  EXPECT_EQ(r.mac, kMacA);
  EXPECT_TRUE(r.send_request);

  // A dead entry starts afresh, parking nothing.
  const IpAddress other = Host(2);
  table.Resolve(other, 200);  // one parked; the resolution gives up at 203
  r = table.Resolve(other, 203, /*can_queue=*/false);
  EXPECT_EQ(r.disposition, Disposition::kDrop);
  EXPECT_TRUE(r.send_request);
  const auto relearned = table.Learn(other, kMacB, 203, /*create=*/false);
  EXPECT_EQ(relearned.result, LearnResult::kResolved);
  EXPECT_EQ(relearned.queued, 0);
}

TEST(NeighborTable, ReachableThenStaleThenDead) {
  NeighborTable table(SmallOptions());
  const IpAddress ip = Host(2);
  EXPECT_EQ(table.Learn(ip, kMacA, 1000, /*create=*/true).result, LearnResult::kCreated);

  // Reachable for 30 s: sent with no request.
  for (uint64_t t : {1000, 1015, 1029}) {
    const auto r = table.Resolve(ip, t);
    EXPECT_EQ(r.disposition, Disposition::kSend) << t;
    EXPECT_FALSE(r.send_request) << t;
    EXPECT_EQ(table.StateOf(ip, t), NeighborState::kReachable) << t;
  }
  // Stale from 1030: still sent to the old MAC, with a unicast re-confirmation once a second.
  EXPECT_EQ(table.StateOf(ip, 1030), NeighborState::kStale);
  auto r = table.Resolve(ip, 1030);
  EXPECT_EQ(r.disposition, Disposition::kSend);
  EXPECT_EQ(r.mac, kMacA);
  EXPECT_TRUE(r.send_request);
  EXPECT_FALSE(table.Resolve(ip, 1030).send_request);
  EXPECT_TRUE(table.Resolve(ip, 1031).send_request);
  EXPECT_EQ(table.Lookup(ip, 1089), kMacA);
  // Dead from 1090 (30 + 60 s): unknown again, and the next packet starts a resolution.
  EXPECT_FALSE(table.Lookup(ip, 1090).has_value());
  EXPECT_FALSE(table.StateOf(ip, 1090).has_value());
  r = table.Resolve(ip, 1090);
  EXPECT_EQ(r.disposition, Disposition::kQueue);
  EXPECT_TRUE(r.send_request);
}

TEST(NeighborTable, AnAnswerMakesAStaleEntryReachableAgain) {
  NeighborTable table(SmallOptions());
  const IpAddress ip = Host(3);
  table.Learn(ip, kMacA, 0, true);
  EXPECT_EQ(table.StateOf(ip, 40), NeighborState::kStale);
  const auto learned = table.Learn(ip, kMacB, 40, /*create=*/false);
  EXPECT_EQ(learned.result, LearnResult::kUpdated);
  EXPECT_EQ(learned.queued, 0);
  EXPECT_EQ(table.StateOf(ip, 69), NeighborState::kReachable);
  EXPECT_EQ(table.Lookup(ip, 69), kMacB);
}

TEST(NeighborTable, AnUnansweredResolutionGivesUpAndStartsAfresh) {
  NeighborTable table(SmallOptions());
  const IpAddress ip = Host(4);
  table.Resolve(ip, 10);
  table.Resolve(ip, 10);
  table.Resolve(ip, 10);
  EXPECT_EQ(table.Resolve(ip, 12).disposition, Disposition::kDrop);
  EXPECT_EQ(table.StateOf(ip, 12), NeighborState::kIncomplete);
  EXPECT_FALSE(table.StateOf(ip, 13).has_value());  // 3 s without an answer
  const auto r = table.Resolve(ip, 13);
  EXPECT_EQ(r.disposition, Disposition::kQueue);  // a fresh queue of 3
  EXPECT_TRUE(r.send_request);
  EXPECT_EQ(table.Resolve(ip, 13).disposition, Disposition::kQueue);
  EXPECT_EQ(table.size(), 1);
}

TEST(NeighborTable, OnlyCreatesEntriesWhenAsked) {
  NeighborTable table(SmallOptions());
  EXPECT_EQ(table.Learn(Host(5), kMacA, 0, /*create=*/false).result, LearnResult::kIgnored);
  EXPECT_EQ(table.size(), 0);
  EXPECT_EQ(table.Learn(Host(5), kMacA, 0, /*create=*/true).result, LearnResult::kCreated);
  EXPECT_EQ(table.Learn(Host(5), kMacB, 1, /*create=*/false).result, LearnResult::kUpdated);
  EXPECT_EQ(table.Lookup(Host(5), 1), kMacB);
}

TEST(NeighborTable, TreatsADeadEntryAsUnknownWhenLearning) {
  NeighborTable table(SmallOptions());
  table.Learn(Host(6), kMacA, 0, true);
  EXPECT_EQ(table.Learn(Host(6), kMacB, 90, /*create=*/false).result, LearnResult::kIgnored);
  EXPECT_FALSE(table.Lookup(Host(6), 90).has_value());
  EXPECT_EQ(table.Learn(Host(6), kMacB, 90, /*create=*/true).result, LearnResult::kCreated);
  EXPECT_EQ(table.Lookup(Host(6), 90), kMacB);
  EXPECT_EQ(table.size(), 1);
}

TEST(NeighborTable, KeepsIpv4AndIpv6KeysApart) {
  NeighborTable table(SmallOptions());
  uint8_t v6[16] = {0x0a, 0xc8, 0x00, 0x01};  // same leading bytes as 10.200.0.1
  table.Learn(Host(1), kMacA, 0, true);
  EXPECT_FALSE(table.Lookup(IpAddress::V6Bytes(v6), 0).has_value());
  table.Learn(IpAddress::V6Bytes(v6), kMacB, 0, true);
  EXPECT_EQ(table.Lookup(Host(1), 0), kMacA);
  EXPECT_EQ(table.Lookup(IpAddress::V6Bytes(v6), 0), kMacB);
}

TEST(NeighborTable, RefusesNewNeighboursAtCapacityUntilSwept) {
  NeighborTable table(SmallOptions());
  for (uint32_t i = 0; i < 8; ++i) {
    ASSERT_EQ(table.Learn(Host(i), kMacA, 0, true).result, LearnResult::kCreated);
  }
  EXPECT_EQ(table.size(), 8);
  EXPECT_EQ(table.capacity(), 8);
  EXPECT_EQ(table.Learn(Host(100), kMacA, 0, true).result, LearnResult::kFull);
  const auto r = table.Resolve(Host(100), 0);
  EXPECT_EQ(r.disposition, Disposition::kDrop);
  EXPECT_FALSE(r.send_request);
  // Known entries still work when full.
  EXPECT_EQ(table.Resolve(Host(7), 0).disposition, Disposition::kSend);

  // Nothing is dead yet at 89 s; at 90 s all are, and Sweep makes room.
  EXPECT_EQ(table.Sweep(89), 0);
  EXPECT_EQ(table.Sweep(90), 8);
  EXPECT_EQ(table.size(), 0);
  EXPECT_EQ(table.Learn(Host(100), kMacA, 90, true).result, LearnResult::kCreated);
}

TEST(NeighborTable, ReusesADeadEntrysSlotWithoutSweeping) {
  NeighborTable table(SmallOptions());
  for (uint32_t i = 0; i < 8; ++i) {
    table.Learn(Host(i), kMacA, 0, true);
  }
  // Host(3) is dead at 100 but still occupies its slot: resolving it again needs no room.
  const auto r = table.Resolve(Host(3), 100);
  EXPECT_EQ(r.disposition, Disposition::kQueue);
  EXPECT_TRUE(r.send_request);
  EXPECT_EQ(table.size(), 8);
}

TEST(NeighborTable, SweepKeepsLiveEntries) {
  NeighborTable table(SmallOptions());
  table.Learn(Host(1), kMacA, 0, true);   // dead at 90
  table.Learn(Host(2), kMacA, 50, true);  // dead at 140
  table.Resolve(Host(3), 95);             // incomplete until 98
  EXPECT_EQ(table.Sweep(96), 1);
  EXPECT_EQ(table.size(), 2);
  EXPECT_EQ(table.Sweep(98), 1);
  EXPECT_EQ(table.Lookup(Host(2), 98), kMacA);
  EXPECT_TRUE(table.Erase(Host(2)));
  EXPECT_FALSE(table.Erase(Host(2)));
  EXPECT_EQ(table.size(), 0);
}

TEST(NeighborTable, ZeroQueueBoundStillQueuesOnePacket) {
  NeighborTableOptions o = SmallOptions();
  o.max_queued = 0;
  NeighborTable table(o);
  EXPECT_EQ(table.Resolve(Host(1), 0).disposition, Disposition::kQueue);
  EXPECT_EQ(table.Resolve(Host(1), 0).disposition, Disposition::kDrop);
}

TEST(NeighborTable, ChurnAtCapacityNeverAllocates) {
  for (size_t capacity : {1, 4, 8, 100, 1000, 4096}) {
    NeighborTableOptions o = SmallOptions();
    o.capacity = capacity;
    NeighborTable table(o);
    uint32_t next = 0;
    uint64_t now = 0;
    const size_t before = g_allocations.load();
    for (int round = 0; round < 20; ++round) {
      // Fill to capacity with fresh addresses (leaving tombstones from earlier rounds behind).
      while (table.size() < capacity) {
        if (next % 2 == 0) {
          table.Learn(Host(next), kMacA, now, true);
        } else {
          table.Resolve(Host(next), now);
        }
        ++next;
      }
      table.Learn(Host(next++), kMacA, now, true);  // kFull
      table.Resolve(Host(next++), now);             // kDrop
      // Erase half by hand, let the rest die and sweep them.
      for (uint32_t i = next - capacity - 2; i < next - 2; i += 2) {
        table.Erase(Host(i));
      }
      now += 100;
      table.Sweep(now);
    }
    // Then one in, one out at random, at capacity, for a long time.
    std::mt19937 rng(static_cast<uint32_t>(capacity));
    for (int i = 0; i < 20000; ++i) {
      if (table.size() < capacity) {
        table.Learn(Host(next++), kMacA, now, true);
      } else {
        table.Erase(Host(next - 1 - rng() % (2 * capacity)));
      }
    }
    now += 100;
    table.Sweep(now);
    const size_t allocations = g_allocations.load() - before;
    EXPECT_EQ(allocations, 0u) << "capacity " << capacity;
    EXPECT_EQ(table.size(), 0u);
  }
}

TEST(NeighborTable, ItsCacheOfTheCurrentSecondFollowsEveryChange) {
  NeighborTable t(SmallOptions());
  const IpAddress a = Host(1);
  const IpAddress b = Host(1 + 8 * 256);  // 10.200.8.1: the same cache slot as 10.200.0.1
  ASSERT_EQ(t.Learn(a, kMacA, 100, true).result, LearnResult::kCreated);
  ASSERT_EQ(t.Resolve(a, 100).mac, kMacA);  // cached now
  // A new MAC in the same second: the next Resolve must see it, not the cached answer.
  EXPECT_EQ(t.Learn(a, kMacB, 100, true).result, LearnResult::kUpdated);
  EXPECT_EQ(t.Resolve(a, 100).mac, kMacB);
  // Another address in the same slot evicts it without confusing the two.
  ASSERT_EQ(t.Learn(b, kMacA, 100, true).result, LearnResult::kCreated);
  EXPECT_EQ(t.Resolve(b, 100).mac, kMacA);
  EXPECT_EQ(t.Resolve(a, 100).mac, kMacB);
  // Erased: resolution starts again even within the second.
  ASSERT_TRUE(t.Erase(a));
  const NeighborTable::Resolution r = t.Resolve(a, 100);
  EXPECT_EQ(r.disposition, Disposition::kQueue);
  EXPECT_TRUE(r.send_request);
  // A repeated Learn of the same MAC in the same second changes nothing it reports.
  EXPECT_EQ(t.Learn(b, kMacA, 100, true).result, LearnResult::kUpdated);
  // Next second, an entry past REACHABLE goes STALE and asks for a refresh once, as uncached.
  const NeighborTable::Resolution stale = t.Resolve(b, 131);
  EXPECT_EQ(stale.disposition, Disposition::kSend);
  EXPECT_TRUE(stale.send_request);
  EXPECT_FALSE(t.Resolve(b, 131).send_request);
  EXPECT_TRUE(t.Resolve(b, 132).send_request);
}

}  // namespace
}  // namespace turnpike::dataplane::packet
