#include "perf/dpdk/handshake.h"

#include <algorithm>
#include <ctime>
#include <random>

#include "absl/strings/str_format.h"
#include "turn/auth.h"

namespace turnpike::dpdkgen {
namespace {

constexpr int64_t kRm = 16;  // RFC 8489 6.2.1

uint64_t SplitMix(uint64_t& s) {
  uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace

Handshakes::Handshakes(std::vector<TurnAllocation>* allocations, HandshakeOptions options,
                       SendFn send)
    : allocations_(allocations),
      options_(std::move(options)),
      send_(std::move(send)),
      rng_state_(std::random_device{}()) {
  const long expiry = static_cast<long>(time(nullptr)) + 86400;
  for (TurnAllocation& a : *allocations_) {
    if (!options_.secret.empty()) {
      a.turn.username = absl::StrFormat("%d:dpdkgen%d", expiry, a.index);
      a.turn.password = turn::Authenticator::RestPassword(options_.secret, a.turn.username);
    } else {
      a.turn.username = options_.user;
      a.turn.password = options_.password;
    }
    a.turn.realm = options_.realm;
  }
}

void Handshakes::Finish(TurnAllocation& a, bool ok, int code) {
  --in_flight_;
  ++finished_;
  if (ok) {
    a.step = Step::kDone;
    ++stats_.ok;
  } else {
    a.step = Step::kFailed;
    a.error_code = code;
    ++stats_.failed;
    ++stats_.error_codes[code];
  }
}

void Handshakes::Start(TurnAllocation& a, int64_t now_ns) {
  if (!perf::BuildTurnRequest(a.turn, a.step, a.channel, a.peer,
                              [this] { return SplitMix(rng_state_); })) {
    Finish(a, false, -2);
    return;
  }
  a.transmissions = 0;
  a.rto_ns = int64_t{options_.rto_ms} * 1'000'000;
  Transmit(a, now_ns);
}

void Handshakes::Transmit(TurnAllocation& a, int64_t now_ns) {
  ++a.transmissions;
  send_(a, std::span<const uint8_t>(a.turn.request.data(), a.turn.request_len));
  a.deadline_ns = now_ns + (a.transmissions >= options_.max_transmissions
                                ? kRm * int64_t{options_.rto_ms} * 1'000'000
                                : a.rto_ns);
  a.rto_ns *= 2;
}

void Handshakes::Poll(int64_t now_ns) {
  std::vector<TurnAllocation>& all = *allocations_;
  bool started = false;
  while (in_flight_ < options_.window && next_ < all.size()) {
    TurnAllocation& a = all[next_++];
    a.step = Step::kAllocateProbe;
    ++in_flight_;
    active_.push_back(a.index);
    Start(a, now_ns);
    started = true;
  }
  if (!started && now_ns < next_check_ns_) return;
  int64_t nearest = now_ns + 1'000'000'000;
  size_t w = 0;
  for (uint32_t i : active_) {
    TurnAllocation& a = all[i];
    if (a.step == Step::kDone || a.step == Step::kFailed) continue;
    if (a.deadline_ns <= now_ns) {
      if (a.transmissions >= options_.max_transmissions) {
        Finish(a, false, -1);
        continue;
      }
      ++stats_.retransmits;
      Transmit(a, now_ns);
    }
    nearest = std::min(nearest, a.deadline_ns);
    active_[w++] = i;
  }
  active_.resize(w);
  // Finished transactions free window slots: re-check soon so new ones start promptly.
  next_check_ns_ = std::min(nearest, now_ns + 1'000'000);
}

void Handshakes::OnMessage(uint32_t index, std::span<const uint8_t> data, int64_t now_ns) {
  if (index >= allocations_->size()) return;
  TurnAllocation& a = (*allocations_)[index];
  if (a.step == Step::kDone || a.step == Step::kFailed || a.step == Step::kIdle) return;
  const perf::TurnResponse r = perf::OnTurnResponse(a.turn, a.step, data);
  switch (r.kind) {
    case perf::TurnResponse::Kind::kIgnore:
      if (r.integrity_failure) ++stats_.integrity_failures;
      return;
    case perf::TurnResponse::Kind::kSuccess:
      if (a.step == Step::kChannelBind) {
        Finish(a, true, 0);
        return;
      }
      a.relayed = *r.relayed;
      a.step = Step::kChannelBind;
      Start(a, now_ns);
      return;
    case perf::TurnResponse::Kind::kSendAgain:
      if (a.step == Step::kAllocateProbe) a.step = Step::kAllocate;
      Start(a, now_ns);
      return;
    case perf::TurnResponse::Kind::kError:
      Finish(a, false, r.code);
      return;
  }
}

}  // namespace turnpike::dpdkgen
