#include "perf/dpdk/handshake.h"

#include <algorithm>
#include <cstring>
#include <ctime>
#include <random>

#include "absl/strings/str_format.h"
#include "turn/auth.h"

namespace turnpike::dpdkgen {
namespace {

using stun::MessageBuilder;
using stun::MessageClass;
using stun::MessageView;
using stun::Method;
namespace attr = stun::attr;

constexpr uint32_t kTransportUdp = 17;  // REQUESTED-TRANSPORT (RFC 8656 18.7)
constexpr int kMaxNonceRetries = 3;
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
      a.username = absl::StrFormat("%d:dpdkgen%d", expiry, a.index);
      a.password = turn::Authenticator::RestPassword(options_.secret, a.username);
    } else {
      a.username = options_.user;
      a.password = options_.password;
    }
    a.realm = options_.realm;
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
  for (size_t i = 0; i < a.txid.size(); i += 8) {
    const uint64_t r = SplitMix(rng_state_);
    std::memcpy(a.txid.data() + i, &r, std::min<size_t>(8, a.txid.size() - i));
  }
  const Method method = a.step == Step::kChannelBind ? Method::kChannelBind : Method::kAllocate;
  MessageBuilder b(a.request, method, MessageClass::kRequest, a.txid.data());
  if (a.step == Step::kChannelBind) {
    b.AddU32(attr::kChannelNumber, static_cast<uint32_t>(a.channel) << 16);
    b.AddXorAddress(attr::kXorPeerAddress, a.peer);
  } else {
    b.AddU32(attr::kRequestedTransport, kTransportUdp << 24);
  }
  if (a.step != Step::kAllocateProbe) {
    b.AddString(attr::kUsername, a.username);
    b.AddString(attr::kRealm, a.realm);
    b.AddString(attr::kNonce, a.nonce);
    b.AddMessageIntegrity(a.key);
  }
  b.AddFingerprint();
  if (!b.ok()) {
    Finish(a, false, -2);
    return;
  }
  a.request_len = b.size();
  a.transmissions = 0;
  a.rto_ns = int64_t{options_.rto_ms} * 1'000'000;
  Transmit(a, now_ns);
}

void Handshakes::Transmit(TurnAllocation& a, int64_t now_ns) {
  ++a.transmissions;
  send_(a, std::span<const uint8_t>(a.request.data(), a.request_len));
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
  if (!stun::LooksLikeStun(data)) return;
  stun::ParseError err;
  std::optional<MessageView> view = MessageView::Parse(data, &err);
  if (!view) return;
  if (std::memcmp(view->transaction_id(), a.txid.data(), a.txid.size()) != 0) return;
  const MessageClass cls = view->message_class();
  if (cls == MessageClass::kSuccessResponse) {
    if (a.have_key && view->HasMessageIntegrity() && !view->CheckMessageIntegrity(a.key)) {
      ++stats_.integrity_failures;  // RFC 8489 9.2.4: as if never received
      return;
    }
    switch (a.step) {
      case Step::kAllocateProbe:  // a server without authentication
      case Step::kAllocate: {
        std::optional<SocketAddress> relayed = view->FindXorAddress(attr::kXorRelayedAddress);
        if (!relayed) {
          Finish(a, false, -2);
          return;
        }
        a.relayed = *relayed;
        a.step = Step::kChannelBind;
        Start(a, now_ns);
        return;
      }
      case Step::kChannelBind:
        Finish(a, true, 0);
        return;
      default:
        return;
    }
  }
  if (cls != MessageClass::kErrorResponse) return;
  const int code = view->FindErrorCode().value_or(-2);
  const bool probe_401 = code == 401 && a.step == Step::kAllocateProbe;
  const bool stale = code == 438 && a.nonce_retries < kMaxNonceRetries;  // RFC 8489 9.2.5
  if (probe_401 || stale) {
    std::optional<std::string_view> realm = view->FindString(attr::kRealm);
    std::optional<std::string_view> nonce = view->FindString(attr::kNonce);
    if (!nonce || (!realm && a.realm.empty())) {
      Finish(a, false, code);
      return;
    }
    if (stale) ++a.nonce_retries;
    if (realm) a.realm = std::string(*realm);
    a.nonce = std::string(*nonce);
    a.key = stun::LongTermKeyMd5(a.username, a.realm, a.password);
    a.have_key = true;
    if (a.step == Step::kAllocateProbe) a.step = Step::kAllocate;
    Start(a, now_ns);
    return;
  }
  Finish(a, false, code);
}

}  // namespace turnpike::dpdkgen
