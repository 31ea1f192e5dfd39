#include "perf/common/turn_transaction.h"

#include <algorithm>
#include <cstring>

namespace turnpike::perf {
namespace {

using stun::MessageBuilder;
using stun::MessageClass;
using stun::MessageView;
using stun::Method;
namespace attr = stun::attr;

constexpr uint32_t kTransportUdp = 17;  // REQUESTED-TRANSPORT protocol number (RFC 8656 18.7)

bool IsAllocate(TurnStep what) {
  return what == TurnStep::kAllocateProbe || what == TurnStep::kAllocate;
}

}  // namespace

bool BuildTurnRequest(TurnClient& client, TurnStep what, uint16_t channel,
                      const SocketAddress& peer, const std::function<uint64_t()>& random) {
  for (size_t i = 0; i < client.txid.size(); i += 8) {
    const uint64_t r = random();
    std::memcpy(client.txid.data() + i, &r, std::min<size_t>(8, client.txid.size() - i));
  }
  const Method method = what == TurnStep::kChannelBind   ? Method::kChannelBind
                        : what == TurnStep::kRefreshZero ? Method::kRefresh
                                                         : Method::kAllocate;
  MessageBuilder b(client.request, method, MessageClass::kRequest, client.txid.data());
  switch (what) {
    case TurnStep::kAllocateProbe:
    case TurnStep::kAllocate:
      b.AddU32(attr::kRequestedTransport, kTransportUdp << 24);
      break;
    case TurnStep::kChannelBind:
      b.AddU32(attr::kChannelNumber, static_cast<uint32_t>(channel) << 16);
      b.AddXorAddress(attr::kXorPeerAddress, peer);
      break;
    case TurnStep::kRefreshZero:
      b.AddU32(attr::kLifetime, 0);
      break;
    default:
      return false;
  }
  if (what != TurnStep::kAllocateProbe) {
    b.AddString(attr::kUsername, client.username);
    b.AddString(attr::kRealm, client.realm);
    b.AddString(attr::kNonce, client.nonce);
    b.AddMessageIntegrity(client.key);
  }
  b.AddFingerprint();
  if (!b.ok()) return false;
  client.request_len = b.size();
  return true;
}

TurnResponse OnTurnResponse(TurnClient& client, TurnStep what, std::span<const uint8_t> data) {
  TurnResponse r;
  if (!stun::LooksLikeStun(data)) return r;  // ChannelData left over from traffic
  stun::ParseError err;
  const std::optional<MessageView> view = MessageView::Parse(data, &err);
  if (!view) return r;
  if (std::memcmp(view->transaction_id(), client.txid.data(), client.txid.size()) != 0) return r;
  const MessageClass cls = view->message_class();
  if (cls == MessageClass::kSuccessResponse) {
    if (client.have_key && view->HasMessageIntegrity() &&
        !view->CheckMessageIntegrity(client.key)) {
      r.integrity_failure = true;  // RFC 8489 9.2.4: as if never received; the timer runs on
      return r;
    }
    if (IsAllocate(what)) {  // the probe succeeds on a server without authentication
      r.relayed = view->FindXorAddress(attr::kXorRelayedAddress);
      r.mapped = view->FindXorAddress(attr::kXorMappedAddress);
      if (!r.relayed) {
        r.kind = TurnResponse::Kind::kError;
        r.code = -2;
        return r;
      }
    }
    r.kind = TurnResponse::Kind::kSuccess;
    return r;
  }
  if (cls != MessageClass::kErrorResponse) return r;
  r.kind = TurnResponse::Kind::kError;
  r.code = view->FindErrorCode().value_or(-2);
  const bool probe_401 = r.code == 401 && what == TurnStep::kAllocateProbe;
  const bool stale = r.code == 438 && client.nonce_retries < kMaxNonceRetries;  // RFC 8489 9.2.5
  if (!probe_401 && !stale) return r;
  const std::optional<std::string_view> realm = view->FindString(attr::kRealm);
  const std::optional<std::string_view> nonce = view->FindString(attr::kNonce);
  if (!nonce || (!realm && client.realm.empty())) return r;
  if (stale) ++client.nonce_retries;
  if (realm) client.realm = std::string(*realm);
  client.nonce = std::string(*nonce);
  client.key = stun::LongTermKeyMd5(client.username, client.realm, client.password);
  client.have_key = true;
  r.kind = TurnResponse::Kind::kSendAgain;
  return r;
}

}  // namespace turnpike::perf
