// Per-worker counters. Each worker owns one block (no atomics, no sharing); the control plane
// reads them at scrape time and sums across workers. A torn read of a 64-bit counter cannot
// happen on x86-64 and a stale one is acceptable for metrics.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace turnpike::turn {

enum class DropReason : uint8_t {
  kMalformed = 0,       // neither STUN nor ChannelData, or failed to parse
  kBadFingerprint,
  kUnexpectedClass,     // responses or unknown indications sent to the server
  kNoAllocation,        // Send/ChannelData on a 5-tuple without allocation
  kUnknownChannel,
  kNoPermission,        // to or from a peer without permission
  kPeerDenied,          // Send indication to a forbidden peer
  kBandwidth,           // max-bps exceeded
  kTxFull,
  kTooBig,              // would not fit in a datagram
  kRateLimited,         // unauthenticated request over its source's response budget
  kAmplification,       // unauthenticated answer would exceed twice the request on the wire
  kNodeBandwidth,       // bps-capacity (the node's share on this worker) exceeded
  kCount,
};

enum class AuthFailure : uint8_t {
  kMissingCredentials = 0,  // first request of a transaction, answered with 401 + nonce
  kBadIntegrity,
  kUnknownUser,
  kExpiredUsername,         // TURN REST username past its expiry
  kStaleNonce,
  kBadRequest,              // USERNAME without MESSAGE-INTEGRITY, bad PASSWORD-ALGORITHMS, ...
  kCount,
};

enum class AllocateResult : uint8_t {
  kSuccess = 0,
  kAuthRequired,     // 401/438
  kBadRequest,       // 400
  kMismatch,         // 437
  kUnsupportedTransport,  // 442
  kQuota,            // 486
  kNoPorts,          // 508
  kForbidden,        // 403 (draining, or peer)
  kOther,
  kCount,
};

std::string_view DropReasonName(DropReason r);
std::string_view AuthFailureName(AuthFailure r);
std::string_view AllocateResultName(AllocateResult r);

struct alignas(64) EngineCounters {
  uint64_t rx_client_packets = 0;
  uint64_t rx_peer_packets = 0;
  uint64_t to_peer_packets = 0;      // relayed client -> peer
  uint64_t to_peer_bytes = 0;        // application bytes
  uint64_t to_client_packets = 0;    // relayed peer -> client
  uint64_t to_client_bytes = 0;
  uint64_t stun_requests = 0;
  uint64_t binding_requests = 0;
  uint64_t allocations_expired = 0;
  uint64_t allocations_deleted = 0;  // Refresh lifetime 0
  uint64_t permissions_created = 0;
  uint64_t channels_bound = 0;
  // Gauges, recomputed by the engine's once-a-second sweep (so up to a second old).
  // Allocations by client transport (udp, tcp, tls: turn::ClientTransport) and relay family
  // (0 IPv4, 1 IPv6; a dual allocation counts in both).
  std::array<std::array<uint64_t, 2>, 3> allocations{};
  uint64_t permissions = 0;
  uint64_t channels = 0;
  std::array<uint64_t, static_cast<size_t>(DropReason::kCount)> drops{};
  std::array<uint64_t, static_cast<size_t>(AuthFailure::kCount)> auth_failures{};
  std::array<uint64_t, static_cast<size_t>(AllocateResult::kCount)> allocate_results{};

  void Drop(DropReason r) { ++drops[static_cast<size_t>(r)]; }
  void AuthFail(AuthFailure r) { ++auth_failures[static_cast<size_t>(r)]; }
  void Allocate(AllocateResult r) { ++allocate_results[static_cast<size_t>(r)]; }
  uint64_t dropped(DropReason r) const { return drops[static_cast<size_t>(r)]; }

  // Sums another worker's block into this one (control plane, at read time).
  void Add(const EngineCounters& o) {
    rx_client_packets += o.rx_client_packets;
    rx_peer_packets += o.rx_peer_packets;
    to_peer_packets += o.to_peer_packets;
    to_peer_bytes += o.to_peer_bytes;
    to_client_packets += o.to_client_packets;
    to_client_bytes += o.to_client_bytes;
    stun_requests += o.stun_requests;
    binding_requests += o.binding_requests;
    allocations_expired += o.allocations_expired;
    allocations_deleted += o.allocations_deleted;
    permissions_created += o.permissions_created;
    channels_bound += o.channels_bound;
    for (size_t t = 0; t < allocations.size(); ++t) {
      allocations[t][0] += o.allocations[t][0];
      allocations[t][1] += o.allocations[t][1];
    }
    permissions += o.permissions;
    channels += o.channels;
    for (size_t i = 0; i < drops.size(); ++i) drops[i] += o.drops[i];
    for (size_t i = 0; i < auth_failures.size(); ++i) auth_failures[i] += o.auth_failures[i];
    for (size_t i = 0; i < allocate_results.size(); ++i) {
      allocate_results[i] += o.allocate_results[i];
    }
  }
};

}  // namespace turnpike::turn
