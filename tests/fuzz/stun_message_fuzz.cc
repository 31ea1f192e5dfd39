// libFuzzer target for the STUN/TURN codec (turn/stun/message.h): the parser every datagram on a
// TURN port meets before authentication. Parses the input, runs every accessor on the result,
// then rebuilds the message with MessageBuilder and checks that it parses back to the same
// attributes, with integrity and fingerprint that verify. Also feeds the input to the
// ChannelData parser. Any mismatch aborts, so the fuzzer reports it like a crash.
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>

#include "turn/stun/message.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using turnpike::SocketAddress;
namespace stun = turnpike::stun;
namespace attr = turnpike::stun::attr;

constexpr uint16_t kAddressTypes[] = {attr::kMappedAddress, attr::kXorPeerAddress,
                                      attr::kXorRelayedAddress, attr::kXorMappedAddress,
                                      attr::kAlternateServer};
constexpr std::array<uint8_t, 16> kMd5Key = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
constexpr std::array<uint8_t, 32> kSha256Key = {0xAA, 0xBB, 0xCC};

bool IsIntegrityOrFingerprint(uint16_t type) {
  return type == attr::kMessageIntegrity || type == attr::kMessageIntegritySha256 ||
         type == attr::kFingerprint;
}

// Every read-only accessor, on every attribute type the server looks at.
void Exercise(const stun::MessageView& msg) {
  (void)msg.message_type();
  (void)msg.transaction_id_array();
  size_t value_bytes = 0;
  for (const auto& a : msg.attributes()) {
    FUZZ_CHECK(size_t{a.offset} + a.length <= msg.bytes().size());
    value_bytes += msg.Value(a).size();
    FUZZ_CHECK(msg.Find(a.type) != nullptr);
    auto s = msg.FindString(a.type);
    FUZZ_CHECK(s.has_value());
    (void)msg.FindU32(a.type);
    (void)msg.FindValue(a.type);
    (void)msg.FindXorAddress(a.type);
    (void)msg.FindAddress(a.type);
  }
  FUZZ_CHECK(value_bytes <= msg.bytes().size());
  for (uint16_t type : kAddressTypes) {
    std::array<SocketAddress, stun::kMaxAttributes> all;
    size_t bad = 0;
    size_t n = msg.FindAllXorAddresses(type, all, &bad);
    FUZZ_CHECK(n + bad <= msg.attributes().size());
    if (auto first = msg.FindXorAddress(type)) {
      FUZZ_CHECK(n > 0);
      FUZZ_CHECK(all[0] == *first);  // the first good one is the first one
    }
  }
  std::string_view reason;
  if (auto code = msg.FindErrorCode(&reason)) {
    FUZZ_CHECK(*code >= 300 && *code <= 699);
  }
  std::array<uint16_t, stun::kMaxAttributes> unknown;
  size_t n_unknown = msg.UnknownComprehensionRequired(unknown);
  for (size_t i = 0; i < n_unknown; ++i) {
    FUZZ_CHECK(attr::IsComprehensionRequired(unknown[i]));
    FUZZ_CHECK(!attr::IsKnownComprehensionRequired(unknown[i]));
    FUZZ_CHECK(msg.Has(unknown[i]));
  }
  (void)msg.CheckMessageIntegrity(kMd5Key);
  (void)msg.CheckMessageIntegritySha256(kSha256Key);
  (void)msg.CheckMessageIntegrity({});
  (void)msg.CheckMessageIntegritySha256({});
}

// Rebuilds `msg` attribute by attribute, signs it, and checks it reads back the same.
void RoundTrip(const stun::MessageView& msg) {
  static uint8_t buf[70000];
  const uint16_t type = msg.message_type();
  stun::MessageBuilder b(buf, stun::DecodeMethod(type), stun::DecodeClass(type),
                         msg.transaction_id());
  size_t copied = 0;
  for (const auto& a : msg.attributes()) {
    if (!IsIntegrityOrFingerprint(a.type)) {
      b.AddAttribute(a.type, msg.Value(a));
      ++copied;
    }
  }
  b.AddMessageIntegrity(kMd5Key);
  b.AddMessageIntegritySha256(kSha256Key);
  b.AddFingerprint();
  if (!b.ok() || copied + 3 > stun::kMaxAttributes) {
    return;  // too big to sign, or too many attributes to parse back: not a round trip case
  }
  stun::ParseError err;
  auto again = stun::MessageView::Parse(b.bytes(), &err);
  FUZZ_CHECK(again.has_value());
  FUZZ_CHECK(again->message_type() == type);
  FUZZ_CHECK(std::memcmp(again->transaction_id(), msg.transaction_id(), 12) == 0);
  FUZZ_CHECK(again->attributes().size() == copied + 3);
  size_t i = 0;
  for (const auto& a : msg.attributes()) {
    if (IsIntegrityOrFingerprint(a.type)) {
      continue;
    }
    const auto& r = again->attributes()[i++];
    FUZZ_CHECK(r.type == a.type && r.length == a.length);
    FUZZ_CHECK(std::memcmp(again->Value(r).data(), msg.Value(a).data(), a.length) == 0);
  }
  FUZZ_CHECK(again->CheckMessageIntegrity(kMd5Key));
  FUZZ_CHECK(again->CheckMessageIntegritySha256(kSha256Key));
  FUZZ_CHECK(again->HasFingerprint());

  // Typed attributes written back by their builder must decode to the same values.
  static uint8_t typed_buf[70000];
  stun::MessageBuilder t(typed_buf, stun::DecodeMethod(type), stun::DecodeClass(type),
                         msg.transaction_id());
  std::string_view reason;
  auto code = msg.FindErrorCode(&reason);
  if (code) {
    t.AddErrorCode(*code, reason);
  }
  for (uint16_t at : kAddressTypes) {
    if (auto addr = msg.FindXorAddress(at)) {
      t.AddXorAddress(0x7F00 + at, *addr);  // distinct types, so each is found again
    }
    if (auto addr = msg.FindAddress(at)) {
      t.AddAddress(0x7E00 + at, *addr);
    }
  }
  std::array<uint16_t, stun::kMaxAttributes> unknown;
  size_t n_unknown = msg.UnknownComprehensionRequired(unknown);
  t.AddUnknownAttributes({unknown.data(), n_unknown});
  if (!t.ok()) {
    return;
  }
  auto typed = stun::MessageView::Parse(t.bytes(), &err);
  FUZZ_CHECK(typed.has_value());
  if (code) {
    std::string_view reason2;
    FUZZ_CHECK(typed->FindErrorCode(&reason2) == code);
    FUZZ_CHECK(reason2 == reason);
  }
  for (uint16_t at : kAddressTypes) {
    if (auto addr = msg.FindXorAddress(at)) {
      FUZZ_CHECK(typed->FindXorAddress(0x7F00 + at) == addr);
    }
    if (auto addr = msg.FindAddress(at)) {
      FUZZ_CHECK(typed->FindAddress(0x7E00 + at) == addr);
    }
  }
  auto list = typed->FindValue(attr::kUnknownAttributes);
  FUZZ_CHECK(list.has_value() && list->size() == 2 * n_unknown);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> input(data, size);
  stun::ParseError err;
  auto msg = stun::MessageView::Parse(input, &err);
  FUZZ_CHECK(msg.has_value() == (err == stun::ParseError::kNone));
  if (msg) {
    FUZZ_CHECK(msg->bytes().size() == size);
    Exercise(*msg);
    RoundTrip(*msg);
  }
  (void)stun::LooksLikeStun(input);
  if (auto cd = stun::ParseChannelData(input)) {
    FUZZ_CHECK(cd->channel >= stun::kMinChannel && cd->channel <= stun::kMaxChannel);
    FUZZ_CHECK(cd->payload.size() + stun::kChannelDataHeaderSize <= size);
  }
  return 0;
}
