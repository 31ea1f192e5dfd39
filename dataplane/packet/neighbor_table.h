// The neighbour table of one data-plane core: next-hop IP -> MAC, filled by ARP and Neighbor
// Discovery (neighbor_learning.h) and consulted for every packet the TX path sends. Entries move
// through the states of RFC 4861 7.3.2 in simplified form:
//
//   (absent) --Resolve--> INCOMPLETE --Learn--> REACHABLE --reachable_seconds--> STALE
//                           | incomplete_seconds                  stale_seconds |
//                           v                                                  v
//                        (dead: reusable, removed by Sweep)             (dead, likewise)
//
// STALE is REACHABLE past its expiry: the MAC is still used (a relayed stream does not stall)
// while Resolve asks the caller to re-confirm it with a unicast request once per
// retransmit_seconds; an answer makes the entry REACHABLE again.
//
// Packets to an INCOMPLETE neighbour are parked by the caller (e.g. on a per-core mbuf ring);
// the table only counts them so the bound holds, and Learn returns how many were parked when the
// address resolves. Time is the caller's `now` in seconds (a per-core clock read once per burst).
//
// Fixed capacity chosen at construction: the hash map is reserved so that inserts and erases at
// or below capacity never allocate (a test churns it under an allocation counter). Lookups are
// O(1) (Resolve on a hit: about 50 ns with 4096 entries, conditions as in frame.h); Sweep is
// O(size) and belongs in a timer, not per packet.
//
// In front of the hash map sits a small direct-mapped cache of answers given during the current
// second (`now`): a Resolve that returned kSend without a request, and a Learn. Within one value
// of `now` neither answer can change except through Learn, Erase or Sweep, which update or clear
// the cache, so a hit returns exactly what the map would (and a repeated Learn of the same MAC,
// which every relayed packet from an on-link client asks for, is a no-op). The relay's packets
// go to a few next hops (a gateway, or on-link peers), so most lookups are hits.
#pragma once

#include <array>
#include <cstdint>
#include <optional>

#include "absl/container/flat_hash_map.h"
#include "dataplane/packet/wire.h"
#include "turn/net/socket_address.h"

namespace turnpike::dataplane::packet {

enum class NeighborState : uint8_t { kIncomplete, kReachable, kStale };

struct NeighborTableOptions {
  size_t capacity = 1024;
  uint32_t reachable_seconds = 30;  // RFC 4861 REACHABLE_TIME
  uint32_t stale_seconds = 60;      // how long a stale MAC stays usable without an answer
  uint32_t incomplete_seconds = 3;  // MAX_MULTICAST_SOLICIT (3) x RETRANS_TIMER (1 s)
  uint32_t retransmit_seconds = 1;  // RETRANS_TIMER: at most one request per neighbour per this
  uint8_t max_queued = 3;           // packets parked per unresolved neighbour (at least 1)
};

class NeighborTable {
 public:
  explicit NeighborTable(const NeighborTableOptions& options);
  NeighborTable(const NeighborTable&) = delete;
  NeighborTable& operator=(const NeighborTable&) = delete;

  enum class Disposition : uint8_t {
    kSend,   // send to `mac` now
    kQueue,  // park the packet until Learn resolves the address
    kDrop,   // the neighbour's queue or the table is full, or the caller cannot queue
  };
  struct Resolution {
    Disposition disposition = Disposition::kDrop;
    MacAddress mac;  // valid with kSend
    // Send an ARP request / NS as well: unicast to `mac` with kSend (refreshing a stale entry),
    // broadcast / solicited-node multicast otherwise.
    bool send_request = false;
  };

  // Decides what to do with a packet about to go to next hop `ip`, creating an INCOMPLETE entry
  // for an unknown address (kQueue + send_request) when there is room. `can_queue` false: the
  // caller has no room to park the packet, so it is never counted as parked and kQueue becomes
  // kDrop, but resolution goes on as usual (the entry is created, requests are asked for), so
  // that the next hop's later packets find its MAC.
  Resolution Resolve(const IpAddress& ip, uint64_t now, bool can_queue = true);

  // The usable MAC (REACHABLE or STALE) without side effects.
  std::optional<MacAddress> Lookup(const IpAddress& ip, uint64_t now) const;
  // The live state, nullopt when absent or dead.
  std::optional<NeighborState> StateOf(const IpAddress& ip, uint64_t now) const;

  enum class LearnResult : uint8_t {
    kResolved,  // was INCOMPLETE: send the `queued` parked packets to the new MAC
    kUpdated,   // was known: MAC and expiry refreshed
    kCreated,   // new REACHABLE entry (or a dead one's slot reused)
    kIgnored,   // unknown or dead, and `create` false
    kFull,      // unknown and no room
  };
  struct Learned {
    LearnResult result = LearnResult::kIgnored;
    uint8_t queued = 0;
  };
  // Records that `ip` is at `mac` as of `now`. `create`: add an unknown address (ARP/NS for one of
  // our addresses, RFC 826 / RFC 4861 7.2.3); otherwise only live entries are refreshed. An NA
  // without the Override flag must not change a known MAC (RFC 4861 7.2.5): check Lookup first.
  Learned Learn(const IpAddress& ip, const MacAddress& mac, uint64_t now, bool create);

  bool Erase(const IpAddress& ip);
  // Removes dead entries; returns how many. O(size): call it from a timer.
  size_t Sweep(uint64_t now);

  size_t size() const { return entries_.size(); }
  size_t capacity() const { return options_.capacity; }
  const NeighborTableOptions& options() const { return options_; }

 private:
  struct Entry {
    MacAddress mac;
    bool resolved = false;  // REACHABLE/STALE once true, INCOMPLETE before
    uint8_t queued = 0;
    uint64_t expires = 0;       // INCOMPLETE: gives up; REACHABLE: becomes STALE
    uint64_t last_request = 0;  // when the last request was asked for
  };

  struct Hot {
    IpAddress ip;
    MacAddress mac;
    uint64_t now = ~uint64_t{0};  // the second this answer holds for; ~0: empty
    bool learned = false;         // set by Learn (a repeated Learn is then a no-op)
  };
  static constexpr size_t kHotSlots = 64;
  static size_t HotSlot(const IpAddress& ip) {
    const size_t last = ip.is_v4() ? 3 : 15;
    return (ip.bytes[last] ^ (ip.bytes[last - 1] << 3)) % kHotSlots;
  }

  // The entry's state at `now`, nullopt when dead.
  std::optional<NeighborState> Live(const Entry& e, uint64_t now) const;
  void StartResolution(Entry& e, uint64_t now, bool queued);

  NeighborTableOptions options_;
  absl::flat_hash_map<IpAddress, Entry> entries_;
  std::array<Hot, kHotSlots> hot_{};
};

}  // namespace turnpike::dataplane::packet
