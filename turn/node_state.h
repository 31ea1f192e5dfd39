// The little state that all workers share: relay ports, quotas and EVEN-PORT reservations.
// Touched only when an allocation is created, refreshed to zero or expires, never per relayed
// packet, so a mutex is fine here (an Allocate costs a few microseconds of crypto already).
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "turn/config.h"
#include "turn/net/socket_address.h"

namespace turnpike::turn {

// kCapacity: max-allocations reached on the node (508); the quotas are 486.
// Admission of a TCP/TLS client connection: node-wide and per-source caps.
enum class StreamVerdict : uint8_t { kOk, kTotal, kPerIp };

enum class QuotaResult : uint8_t { kOk, kUserQuota, kTotalQuota, kCapacity, kDraining };

class NodeState {
 public:
  explicit NodeState(const ServerConfig& config);

  // Key for stateless nonces, random per process and shared by every worker.
  const std::array<uint8_t, 32>& nonce_secret() const { return nonce_secret_; }

  // Relay ports, per relay IP, handed out in random order (RFC 8656 7.2 advises against
  // predictable ports). `even` asks for an even port; `reserve_next` also holds port+1 and
  // returns a reservation token for it.
  struct PortGrant {
    uint16_t port = 0;
    uint64_t token = 0;  // non-zero when port+1 was reserved
  };
  // With parts (PartitionPorts), `part`'s own range is tried first, then the others.
  std::optional<PortGrant> TakePort(const IpAddress& relay_ip, bool even, bool reserve_next,
                                    uint64_t now_s, uint32_t part = 0);
  // Redeems a RESERVATION-TOKEN: the reserved port, or nullopt if unknown or expired.
  std::optional<std::pair<IpAddress, uint16_t>> TakeReserved(uint64_t token, uint64_t now_s);
  void ReturnPort(const IpAddress& relay_ip, uint16_t port);
  size_t FreePorts(const IpAddress& relay_ip) const;

  // Splits min-port..max-port into `parts` contiguous ranges of near-equal size, range w for
  // worker w, so a NIC can steer each range to its worker's queue (DPDK rte_flow). Call before
  // any port is taken; 1 (the default) is one range.
  void PartitionPorts(uint32_t parts);
  uint32_t parts() const { return parts_; }
  // The first and last port of range `part` (< parts()), and the range a port is in.
  std::pair<uint16_t, uint16_t> PartRange(uint32_t part) const;
  uint32_t PartOf(uint16_t port) const;

  // Allocation quotas (user-quota, total-quota).
  QuotaResult Admit(std::string_view user);
  void Leave(std::string_view user);
  size_t total_allocations() const;
  // Reload: new limits apply to the next Admit; allocations above a lowered limit stay.
  void SetQuotas(uint32_t user_quota, uint32_t total_quota);

  // TCP/TLS connections (stream-max-connections, stream-max-per-ip), counted at accept and
  // released at close; exact per source IP. Accept path only (its own mutex).
  StreamVerdict EnterStream(const IpAddress& ip);
  void LeaveStream(const IpAddress& ip);
  size_t stream_count() const;

  void SetDraining(bool draining);
  bool draining() const;

  // The relay IP for a family, or nullopt when none is configured for it.
  std::optional<IpAddress> RelayIp(AddressFamily family) const;

 private:
  struct Pool {
    IpAddress ip;
    std::vector<std::vector<uint16_t>> free;  // per part, each shuffled
    std::vector<bool> in_use;                 // indexed by port - min_port
  };
  // Puts `port` back on its part's free list at a random place.
  void Free(Pool& pool, uint16_t port) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  struct Reservation {
    IpAddress ip;
    uint16_t port;
    uint64_t expires_s;
  };
  Pool* FindPool(const IpAddress& ip) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ExpireReservations(uint64_t now_s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  std::array<uint8_t, 32> nonce_secret_{};
  const uint16_t min_port_;
  const uint16_t max_port_;
  uint32_t parts_ = 1;  // set before the workers start, then read-only
  mutable std::mutex mu_;
  uint32_t user_quota_ ABSL_GUARDED_BY(mu_);
  uint32_t total_quota_ ABSL_GUARDED_BY(mu_);
  const uint32_t max_allocations_;  // node-wide table capacity (max-allocations)
  std::vector<Pool> pools_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<uint64_t, Reservation> reservations_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, uint32_t> per_user_ ABSL_GUARDED_BY(mu_);
  uint32_t total_ ABSL_GUARDED_BY(mu_) = 0;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  std::mt19937_64 rng_ ABSL_GUARDED_BY(mu_);

  const uint32_t stream_max_;
  const uint32_t stream_max_per_ip_;
  mutable std::mutex streams_mu_;
  absl::flat_hash_map<IpAddress, uint32_t> streams_per_ip_ ABSL_GUARDED_BY(streams_mu_);
  uint32_t streams_ ABSL_GUARDED_BY(streams_mu_) = 0;
};

}  // namespace turnpike::turn
