// The load generators' TURN client transactions (perf/common/turn_transaction.h): the requests
// as a server reads them, and what each kind of answer means.
#include "perf/common/turn_transaction.h"

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "turn/stun/message.h"

namespace turnpike::perf {
namespace {

using stun::MessageBuilder;
using stun::MessageClass;
using stun::MessageView;
using stun::Method;
namespace attr = stun::attr;

const SocketAddress kPeer{*IpAddress::Parse("192.0.2.7"), 4000};
const SocketAddress kRelayed{*IpAddress::Parse("192.0.2.1"), 49152};

uint64_t Counter() {
  static uint64_t n = 0;
  return ++n;
}

TurnClient Client() {
  TurnClient c;
  c.username = "1700000000:alice";
  c.password = "secret-password";
  return c;
}

MessageView Parse(const TurnClient& c) {
  stun::ParseError err;
  std::optional<MessageView> v =
      MessageView::Parse(std::span<const uint8_t>(c.request.data(), c.request_len), &err);
  EXPECT_TRUE(v.has_value());
  return *v;
}

// An answer of `cls` to the client's transaction in progress, with what `add` puts in it.
template <typename Add>
std::vector<uint8_t> Answer(const TurnClient& c, Method method, MessageClass cls, Add add) {
  std::vector<uint8_t> out(512);
  MessageBuilder b(out, method, cls, c.txid.data());
  add(b);
  b.AddFingerprint();
  EXPECT_TRUE(b.ok());
  out.resize(b.size());
  return out;
}

std::vector<uint8_t> Challenge(const TurnClient& c, int code, const char* nonce) {
  return Answer(c, Method::kAllocate, MessageClass::kErrorResponse, [&](MessageBuilder& b) {
    b.AddErrorCode(code, code == 401 ? "Unauthorized" : "Stale Nonce");
    b.AddString(attr::kRealm, "perf.test");
    b.AddString(attr::kNonce, nonce);
  });
}

TEST(TurnTransaction, TheProbeCarriesNoCredentialsAndA401BringsThem) {
  TurnClient c = Client();
  ASSERT_TRUE(BuildTurnRequest(c, TurnStep::kAllocateProbe, 0, kPeer, Counter));
  MessageView probe = Parse(c);
  EXPECT_EQ(probe.method(), Method::kAllocate);
  EXPECT_EQ(probe.FindU32(attr::kRequestedTransport), 17u << 24);
  EXPECT_FALSE(probe.Has(attr::kUsername));
  EXPECT_FALSE(probe.HasMessageIntegrity());

  const TurnResponse r = OnTurnResponse(c, TurnStep::kAllocateProbe, Challenge(c, 401, "n1"));
  EXPECT_EQ(r.kind, TurnResponse::Kind::kSendAgain);
  EXPECT_EQ(c.realm, "perf.test");
  EXPECT_EQ(c.nonce, "n1");
  ASSERT_TRUE(c.have_key);
  EXPECT_EQ(c.key, stun::LongTermKeyMd5(c.username, "perf.test", c.password));

  const stun::TransactionId before = c.txid;
  ASSERT_TRUE(BuildTurnRequest(c, TurnStep::kAllocate, 0, kPeer, Counter));
  EXPECT_NE(c.txid, before);  // a new transaction
  MessageView allocate = Parse(c);
  EXPECT_EQ(allocate.FindString(attr::kUsername), c.username);
  EXPECT_EQ(allocate.FindString(attr::kNonce), "n1");
  EXPECT_TRUE(allocate.CheckMessageIntegrity(c.key));
}

TEST(TurnTransaction, AnAllocateSucceedsOnlyWithARelayedAddress) {
  TurnClient c = Client();
  c.realm = "perf.test";
  c.nonce = "n";
  c.key = stun::LongTermKeyMd5(c.username, c.realm, c.password);
  c.have_key = true;
  ASSERT_TRUE(BuildTurnRequest(c, TurnStep::kAllocate, 0, kPeer, Counter));
  const auto without = Answer(c, Method::kAllocate, MessageClass::kSuccessResponse,
                              [&](MessageBuilder& b) { b.AddMessageIntegrity(c.key); });
  TurnResponse r = OnTurnResponse(c, TurnStep::kAllocate, without);
  EXPECT_EQ(r.kind, TurnResponse::Kind::kError);
  EXPECT_EQ(r.code, -2);

  const auto with =
      Answer(c, Method::kAllocate, MessageClass::kSuccessResponse, [&](MessageBuilder& b) {
        b.AddXorAddress(attr::kXorRelayedAddress, kRelayed);
        b.AddXorAddress(attr::kXorMappedAddress, kPeer);
        b.AddMessageIntegrity(c.key);
      });
  r = OnTurnResponse(c, TurnStep::kAllocate, with);
  EXPECT_EQ(r.kind, TurnResponse::Kind::kSuccess);
  EXPECT_EQ(r.relayed, kRelayed);
  EXPECT_EQ(r.mapped, kPeer);

  // Signed with another key: ignored, as if lost (RFC 8489 9.2.4).
  std::array<uint8_t, 16> wrong{};
  const auto forged =
      Answer(c, Method::kAllocate, MessageClass::kSuccessResponse, [&](MessageBuilder& b) {
        b.AddXorAddress(attr::kXorRelayedAddress, kRelayed);
        b.AddMessageIntegrity(wrong);
      });
  r = OnTurnResponse(c, TurnStep::kAllocate, forged);
  EXPECT_EQ(r.kind, TurnResponse::Kind::kIgnore);
  EXPECT_TRUE(r.integrity_failure);

  // Another transaction's answer: ignored.
  TurnClient other = c;
  other.txid[0] ^= 1;
  r = OnTurnResponse(
      c, TurnStep::kAllocate,
      Answer(other, Method::kAllocate, MessageClass::kSuccessResponse,
             [&](MessageBuilder& b) { b.AddXorAddress(attr::kXorRelayedAddress, kRelayed); }));
  EXPECT_EQ(r.kind, TurnResponse::Kind::kIgnore);
  EXPECT_FALSE(r.integrity_failure);
}

TEST(TurnTransaction, StaleNoncesAreTakenThreeTimesThenTheErrorStands) {
  TurnClient c = Client();
  c.realm = "perf.test";
  ASSERT_TRUE(BuildTurnRequest(c, TurnStep::kChannelBind, 0x4001, kPeer, Counter));
  MessageView bind = Parse(c);
  EXPECT_EQ(bind.method(), Method::kChannelBind);
  EXPECT_EQ(bind.FindU32(attr::kChannelNumber), 0x4001u << 16);
  EXPECT_EQ(bind.FindXorAddress(attr::kXorPeerAddress), kPeer);
  for (int i = 0; i < kMaxNonceRetries; ++i) {
    const TurnResponse r = OnTurnResponse(c, TurnStep::kChannelBind, Challenge(c, 438, "fresh"));
    EXPECT_EQ(r.kind, TurnResponse::Kind::kSendAgain) << i;
  }
  const TurnResponse r = OnTurnResponse(c, TurnStep::kChannelBind, Challenge(c, 438, "fresh"));
  EXPECT_EQ(r.kind, TurnResponse::Kind::kError);
  EXPECT_EQ(r.code, 438);
  // A 401 to an authenticated request is an error too (wrong credentials).
  EXPECT_EQ(OnTurnResponse(c, TurnStep::kAllocate, Challenge(c, 401, "x")).code, 401);
}

TEST(TurnTransaction, RefreshZeroAsksForLifetimeZero) {
  TurnClient c = Client();
  ASSERT_TRUE(BuildTurnRequest(c, TurnStep::kRefreshZero, 0, kPeer, Counter));
  MessageView refresh = Parse(c);
  EXPECT_EQ(refresh.method(), Method::kRefresh);
  EXPECT_EQ(refresh.FindU32(attr::kLifetime), 0u);
  EXPECT_FALSE(BuildTurnRequest(c, TurnStep::kDone, 0, kPeer, Counter));
}

}  // namespace
}  // namespace turnpike::perf
