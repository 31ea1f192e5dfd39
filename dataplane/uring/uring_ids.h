// Encodings shared by the io_uring worker's files (uring_worker.cc, uring_streams.cc): what a
// CQE's user_data says, and what the SocketIds the engine holds mean.
#pragma once

#include <time.h>

#include <cstdint>

#include "turn/engine.h"

namespace turnpike::dataplane::uring_ids {

// user_data layout: kind (8 bits) | generation (24 bits) | index (32 bits). The generation lets
// a CQE that was already in flight when its socket closed be told apart from one of the
// socket that reused the slot.
enum Kind : uint8_t {
  kListenerRecv = 1,
  kRelayRecv = 2,
  kTxDone = 3,
  kWakeRead = 4,
  kIgnore = 5,
  kStreamAccept = 6,
  kConnRecv = 7,
  kConnSend = 8,
};
inline constexpr uint32_t kGenMask = 0xFFFFFF;

inline uint64_t UserData(Kind kind, uint32_t gen, uint32_t index) {
  return (uint64_t{kind} << 56) | (uint64_t{gen & kGenMask} << 32) | index;
}
inline Kind UdKind(uint64_t ud) { return static_cast<Kind>(ud >> 56); }
inline uint32_t UdGen(uint64_t ud) { return static_cast<uint32_t>(ud >> 32) & kGenMask; }
inline uint32_t UdIndex(uint64_t ud) { return static_cast<uint32_t>(ud); }

// SocketId layout: UDP listeners are their index (below kConnBit); relays set bit 31, client
// connections bit 30; then a generation (10 bits for connections, 11 for relays) and a 20-bit
// slot index.
inline constexpr turn::SocketId kRelayBit = 0x80000000u;
inline constexpr turn::SocketId kConnBit = 0x40000000u;
inline constexpr uint32_t kIndexBits = 20;
inline constexpr uint32_t kMaxSlots = 1u << kIndexBits;
inline constexpr uint32_t kRelayGenMask = 0x7FF;
inline constexpr uint32_t kConnGenMask = 0x3FF;

inline turn::SocketId RelayId(uint32_t index, uint32_t gen) {
  return kRelayBit | ((gen & kRelayGenMask) << kIndexBits) | index;
}
inline bool IsRelay(turn::SocketId id) { return (id & kRelayBit) != 0; }
inline bool IsConn(turn::SocketId id) { return (id & (kRelayBit | kConnBit)) == kConnBit; }
inline uint32_t SlotOf(turn::SocketId id) { return id & (kMaxSlots - 1); }

inline constexpr uint16_t kBufferGroup = 0;
// Room left in the TxBatch before handing the engine another message; one message produces at
// most one descriptor today, the margin is for responses that may grow into two.
inline constexpr size_t kTxHeadroom = 4;

inline uint64_t MonotonicNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
}

}  // namespace turnpike::dataplane::uring_ids
