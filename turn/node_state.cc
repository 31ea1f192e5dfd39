#include "turn/node_state.h"

#include <openssl/rand.h>

#include <algorithm>

namespace turnpike::turn {
namespace {
// RFC 8656 7.2: a reservation is held for 30 seconds.
constexpr uint64_t kReservationSeconds = 30;

// The port order must not be guessable from one observed port: seed with 256 bits, not the
// 32 bits a single random_device draw gives.
std::mt19937_64 SeedFromRandomDevice() {
  std::random_device rd;
  std::seed_seq seq{rd(), rd(), rd(), rd(), rd(), rd(), rd(), rd()};
  return std::mt19937_64(seq);
}

// RESERVATION-TOKENs are bearer secrets for 30 s: draw them from the CSPRNG.
uint64_t RandomToken() {
  uint64_t token = 0;
  if (RAND_bytes(reinterpret_cast<unsigned char*>(&token), sizeof(token)) != 1) {
    std::random_device rd;
    token = (uint64_t{rd()} << 32) | rd();
  }
  return token;
}
}  // namespace

NodeState::NodeState(const ServerConfig& config)
    : min_port_(config.min_port),
      max_port_(config.max_port),
      user_quota_(config.user_quota),
      total_quota_(config.total_quota),
      max_allocations_(config.max_allocations),
      rng_(SeedFromRandomDevice()),
      stream_max_(config.stream_max_connections),
      stream_max_per_ip_(std::max<uint32_t>(1, config.stream_max_per_ip)) {
  if (RAND_bytes(nonce_secret_.data(), static_cast<int>(nonce_secret_.size())) != 1) {
    std::random_device rd;
    for (uint8_t& b : nonce_secret_) {
      b = static_cast<uint8_t>(rd());
    }
  }
  std::vector<IpAddress> ips = config.relay_ips;
  if (ips.empty()) {
    ips = config.listening_ips;
  }
  std::lock_guard lock(mu_);
  for (const IpAddress& ip : ips) {
    if (FindPool(ip) != nullptr) {
      continue;
    }
    Pool pool;
    pool.ip = ip;
    pool.in_use.assign(size_t{max_port_} - min_port_ + 1, false);
    pool.free.resize(1);
    for (uint32_t p = min_port_; p <= max_port_; ++p) {
      pool.free[0].push_back(static_cast<uint16_t>(p));
    }
    std::shuffle(pool.free[0].begin(), pool.free[0].end(), rng_);
    pools_.push_back(std::move(pool));
  }
}

void NodeState::PartitionPorts(uint32_t parts) {
  std::lock_guard lock(mu_);
  const uint32_t size = uint32_t{max_port_} - min_port_ + 1;
  parts_ = std::clamp<uint32_t>(parts, 1, size);
  for (Pool& pool : pools_) {
    std::vector<uint16_t> all;
    for (const std::vector<uint16_t>& part : pool.free) {
      all.insert(all.end(), part.begin(), part.end());
    }
    pool.free.assign(parts_, {});
    for (uint16_t port : all) pool.free[PartOf(port)].push_back(port);  // stays shuffled
  }
}

std::pair<uint16_t, uint16_t> NodeState::PartRange(uint32_t part) const {
  const uint64_t size = uint64_t{max_port_} - min_port_ + 1;
  const uint64_t first = min_port_ + size * part / parts_;
  const uint64_t last = min_port_ + size * (part + 1) / parts_ - 1;
  return {static_cast<uint16_t>(first), static_cast<uint16_t>(last)};
}

uint32_t NodeState::PartOf(uint16_t port) const {
  const uint64_t size = uint64_t{max_port_} - min_port_ + 1;
  // The inverse of PartRange: the largest part whose first port is at most `port`.
  uint32_t part = static_cast<uint32_t>((uint64_t{port} - min_port_) * parts_ / size);
  while (part + 1 < parts_ && PartRange(part + 1).first <= port) ++part;
  return part;
}

void NodeState::Free(Pool& pool, uint16_t port) {
  pool.in_use[port - min_port_] = false;
  std::vector<uint16_t>& free = pool.free[PartOf(port)];
  free.push_back(port);
  // Keep the order unpredictable: swap the returned port to a random place.
  std::uniform_int_distribution<size_t> pick(0, free.size() - 1);
  std::swap(free.back(), free[pick(rng_)]);
}

NodeState::Pool* NodeState::FindPool(const IpAddress& ip) {
  for (Pool& pool : pools_) {
    if (pool.ip == ip) {
      return &pool;
    }
  }
  return nullptr;
}

void NodeState::ExpireReservations(uint64_t now_s) {
  for (auto it = reservations_.begin(); it != reservations_.end();) {
    if (it->second.expires_s <= now_s) {
      Pool* pool = FindPool(it->second.ip);
      if (pool != nullptr) {
        Free(*pool, it->second.port);
      }
      reservations_.erase(it++);
    } else {
      ++it;
    }
  }
}

std::optional<NodeState::PortGrant> NodeState::TakePort(const IpAddress& relay_ip, bool even,
                                                        bool reserve_next, uint64_t now_s,
                                                        uint32_t part) {
  std::lock_guard lock(mu_);
  ExpireReservations(now_s);
  Pool* pool = FindPool(relay_ip);
  if (pool == nullptr) {
    return std::nullopt;
  }
  // Each free list is shuffled, so scanning from the back finds a random suitable port; `part`'s
  // own list first. A reserving request needs an even port whose successor is free too.
  for (uint32_t k = 0; k < parts_; ++k) {
    std::vector<uint16_t>& free = pool->free[(part + k) % parts_];
    for (size_t i = free.size(); i-- > 0;) {
      uint16_t port = free[i];
      if (even && (port % 2) != 0) {
        continue;
      }
      if (reserve_next && (port == max_port_ || pool->in_use[port + 1 - min_port_])) {
        continue;
      }
      free[i] = free.back();
      free.pop_back();
      pool->in_use[port - min_port_] = true;
      PortGrant grant{port, 0};
      if (reserve_next) {
        uint16_t next = port + 1;
        std::vector<uint16_t>& next_free = pool->free[PartOf(next)];
        auto it = std::find(next_free.begin(), next_free.end(), next);
        *it = next_free.back();
        next_free.pop_back();
        pool->in_use[next - min_port_] = true;
        do {
          grant.token = RandomToken();
        } while (grant.token == 0 || reservations_.contains(grant.token));
        reservations_[grant.token] = Reservation{relay_ip, next, now_s + kReservationSeconds};
      }
      return grant;
    }
  }
  return std::nullopt;
}

std::optional<std::pair<IpAddress, uint16_t>> NodeState::TakeReserved(uint64_t token,
                                                                      uint64_t now_s) {
  std::lock_guard lock(mu_);
  ExpireReservations(now_s);
  auto it = reservations_.find(token);
  if (it == reservations_.end()) {
    return std::nullopt;
  }
  auto result = std::make_pair(it->second.ip, it->second.port);
  reservations_.erase(it);  // the port stays in use, now by the allocation
  return result;
}

void NodeState::ReturnPort(const IpAddress& relay_ip, uint16_t port) {
  std::lock_guard lock(mu_);
  Pool* pool = FindPool(relay_ip);
  if (pool == nullptr || port < min_port_ || port > max_port_ || !pool->in_use[port - min_port_]) {
    return;
  }
  Free(*pool, port);
}

size_t NodeState::FreePorts(const IpAddress& relay_ip) const {
  std::lock_guard lock(mu_);
  for (const Pool& pool : pools_) {
    if (pool.ip == relay_ip) {
      size_t n = 0;
      for (const std::vector<uint16_t>& part : pool.free) n += part.size();
      return n;
    }
  }
  return 0;
}

QuotaResult NodeState::Admit(std::string_view user) {
  std::lock_guard lock(mu_);
  if (draining_) {
    return QuotaResult::kDraining;
  }
  if (total_quota_ != 0 && total_ >= total_quota_) {
    return QuotaResult::kTotalQuota;
  }
  if (total_ >= max_allocations_) {
    return QuotaResult::kCapacity;
  }
  uint32_t& count = per_user_[std::string(user)];
  if (user_quota_ != 0 && count >= user_quota_) {
    if (count == 0) {
      per_user_.erase(std::string(user));
    }
    return QuotaResult::kUserQuota;
  }
  ++count;
  ++total_;
  return QuotaResult::kOk;
}

void NodeState::Leave(std::string_view user) {
  std::lock_guard lock(mu_);
  auto it = per_user_.find(absl::string_view(user.data(), user.size()));
  if (it != per_user_.end() && --it->second == 0) {
    per_user_.erase(it);
  }
  if (total_ > 0) {
    --total_;
  }
}

void NodeState::SetQuotas(uint32_t user_quota, uint32_t total_quota) {
  std::lock_guard lock(mu_);
  user_quota_ = user_quota;
  total_quota_ = total_quota;
}

size_t NodeState::total_allocations() const {
  std::lock_guard lock(mu_);
  return total_;
}

void NodeState::SetDraining(bool draining) {
  std::lock_guard lock(mu_);
  draining_ = draining;
}

bool NodeState::draining() const {
  std::lock_guard lock(mu_);
  return draining_;
}

std::optional<IpAddress> NodeState::RelayIp(AddressFamily family) const {
  std::lock_guard lock(mu_);
  for (const Pool& pool : pools_) {
    if (pool.ip.family == family) {
      return pool.ip;
    }
  }
  return std::nullopt;
}

StreamVerdict NodeState::EnterStream(const IpAddress& ip) {
  std::lock_guard lock(streams_mu_);
  if (streams_ >= stream_max_) {
    return StreamVerdict::kTotal;
  }
  uint32_t& count = streams_per_ip_[ip];
  if (count >= stream_max_per_ip_) {
    return StreamVerdict::kPerIp;
  }
  ++count;
  ++streams_;
  return StreamVerdict::kOk;
}

void NodeState::LeaveStream(const IpAddress& ip) {
  std::lock_guard lock(streams_mu_);
  auto it = streams_per_ip_.find(ip);
  if (it == streams_per_ip_.end()) {
    return;
  }
  if (--it->second == 0) {
    streams_per_ip_.erase(it);
  }
  --streams_;
}

size_t NodeState::stream_count() const {
  std::lock_guard lock(streams_mu_);
  return streams_;
}

}  // namespace turnpike::turn
