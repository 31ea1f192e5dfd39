// Tests for the STUN codec (turn/stun/message.h): the RFC 5769 test vectors byte for byte, the
// RFC 8489 Appendix B.1 vector as corrected by erratum 6268, builder round trips, integrity and
// fingerprint checks, every ParseError, truncation and overflow behaviour, and ChannelData.
#include "turn/stun/message.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace turnpike::stun {
namespace {

std::vector<uint8_t> FromHex(std::string_view text) {
  std::vector<uint8_t> out;
  int nibble = -1;
  for (char c : text) {
    int v;
    if (c >= '0' && c <= '9') {
      v = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      v = c - 'a' + 10;
    } else if (c >= 'A' && c <= 'F') {
      v = c - 'A' + 10;
    } else {
      continue;
    }
    if (nibble < 0) {
      nibble = v;
    } else {
      out.push_back(static_cast<uint8_t>(nibble << 4 | v));
      nibble = -1;
    }
  }
  EXPECT_LT(nibble, 0) << "odd number of hex digits";
  return out;
}

std::span<const uint8_t> Bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

std::optional<MessageView> ParseOk(std::span<const uint8_t> data) {
  ParseError error = ParseError::kTooShort;
  std::optional<MessageView> view = MessageView::Parse(data, &error);
  EXPECT_EQ(error, ParseError::kNone);
  return view;
}

ParseError ParseFails(std::span<const uint8_t> data) {
  ParseError error = ParseError::kNone;
  std::optional<MessageView> view = MessageView::Parse(data, &error);
  EXPECT_FALSE(view.has_value());
  return error;
}

// RFC 5769 test vectors, transcribed from the RFC's figures (section number in each name).
constexpr std::string_view kRfc5769SampleRequest =  // 2.1
    "00 01 00 58 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae"
    "80 22 00 10 53 54 55 4e 20 74 65 73 74 20 63 6c 69 65 6e 74"
    "00 24 00 04 6e 00 01 ff"
    "80 29 00 08 93 2f f9 b1 51 26 3b 36"
    "00 06 00 09 65 76 74 6a 3a 68 36 76 59 20 20 20"
    "00 08 00 14 9a ea a7 0c bf d8 cb 56 78 1e f2 b5 b2 d3 f2 49 c1 b5 71 a2"
    "80 28 00 04 e5 7a 3b cf";
constexpr std::string_view kRfc5769Ipv4Response =  // 2.2
    "01 01 00 3c 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae"
    "80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20"
    "00 20 00 08 00 01 a1 47 e1 12 a6 43"
    "00 08 00 14 2b 91 f5 99 fd 9e 90 c3 8c 74 89 f9 2a f9 ba 53 f0 6b e7 d7"
    "80 28 00 04 c0 7d 4c 96";
constexpr std::string_view kRfc5769Ipv6Response =  // 2.3
    "01 01 00 48 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae"
    "80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20"
    "00 20 00 14 00 02 a1 47 01 13 a9 fa a5 d3 f1 79 bc 25 f4 b5 be d2 b9 d9"
    "00 08 00 14 a3 82 95 4e 4b e6 7b f1 17 84 c9 7c 82 92 c2 75 bf e3 ed 41"
    "80 28 00 04 c8 fb 0b 4c";
constexpr std::string_view kRfc5769LongTermRequest =  // 2.4
    "00 01 00 60 21 12 a4 42 78 ad 34 33 c6 ad 72 c0 29 da 41 2e"
    "00 06 00 12 e3 83 9e e3 83 88 e3 83 aa e3 83 83 e3 82 af e3 82 b9 00 00"
    "00 15 00 1c 66 2f 2f 34 39 39 6b 39 35 34 64 36 4f 4c 33 34 6f 4c 39 46"
    "            53 54 76 79 36 34 73 41"
    "00 14 00 0b 65 78 61 6d 70 6c 65 2e 6f 72 67 00"
    "00 08 00 14 f6 70 24 65 6d d6 4a 3e 02 b8 e0 71 2e 85 c9 a2 8c a8 96 66";

// RFC 8489 Appendix B.1 as published: its header length (0x9c) counts the 20-byte header, so no
// conforming parser accepts it, and it lacks the PASSWORD-ALGORITHM that SHA-256 keys need.
constexpr std::string_view kRfc8489B1AsPublished =
    "00 01 00 9c 21 12 a4 42 78 ad 34 33 c6 ad 72 c0 29 da 41 2e"
    "00 1e 00 20 4a 3c f3 8f ef 69 92 bd a9 52 c6 78 04 17 da 0f"
    "            24 81 94 15 56 9e 60 b2 05 c4 6e 41 40 7f 17 04"
    "00 15 00 29 6f 62 4d 61 74 4a 6f 73 32 41 41 41 43 66 2f 2f 34 39 39 6b"
    "            39 35 34 64 36 4f 4c 33 34 6f 4c 39 46 53 54 76 79 36 34 73"
    "            41 00 00 00"
    "00 14 00 0b 65 78 61 6d 70 6c 65 2e 6f 72 67 00"
    "00 1c 00 20 e4 68 6c 8f 0e de b5 90 13 e0 70 90 01 0a 93 ef"
    "            cc bc cc 54 4c 0a 45 d9 f8 30 aa 6d 6f 73 5a 01";
// The same request as corrected by RFC 8489 erratum 6268 (length 0x90, PASSWORD-ALGORITHM
// SHA-256 added, MESSAGE-INTEGRITY-SHA256 recomputed).
constexpr std::string_view kRfc8489B1Erratum6268 =
    "00 01 00 90 21 12 a4 42 78 ad 34 33 c6 ad 72 c0 29 da 41 2e"
    "00 1e 00 20 4a 3c f3 8f ef 69 92 bd a9 52 c6 78 04 17 da 0f"
    "            24 81 94 15 56 9e 60 b2 05 c4 6e 41 40 7f 17 04"
    "00 15 00 29 6f 62 4d 61 74 4a 6f 73 32 41 41 41 43 66 2f 2f 34 39 39 6b"
    "            39 35 34 64 36 4f 4c 33 34 6f 4c 39 46 53 54 76 79 36 34 73"
    "            41 00 00 00"
    "00 14 00 0b 65 78 61 6d 70 6c 65 2e 6f 72 67 00"
    "00 1d 00 04 00 02 00 00"
    "00 1c 00 20 b5 c7 bf 00 5b 6c 52 a2 1c 51 c5 e8 92 f8 19 24"
    "            13 62 96 cb 92 7c 43 14 93 09 27 8c c6 51 8e 65";

constexpr std::string_view kShortTermPassword = "VOkJxbRl1RmTxUk/WvJxBt";
// "マトリックス" (U+30DE U+30C8 U+30EA U+30C3 U+30AF U+30B9) in UTF-8.
constexpr std::string_view kMatrixUser =
    "\xe3\x83\x9e\xe3\x83\x88\xe3\x83\xaa\xe3\x83\x83\xe3\x82\xaf\xe3\x82\xb9";
constexpr std::array<uint8_t, 12> kRfcTxid = {0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34,
                                              0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae};

TEST(Rfc5769, SampleRequestParsesWithItsAttributesIntegrityAndFingerprint) {
  const std::vector<uint8_t> msg = FromHex(kRfc5769SampleRequest);
  ASSERT_EQ(msg.size(), 108u);
  std::optional<MessageView> view = ParseOk(msg);
  ASSERT_TRUE(view.has_value());
  EXPECT_EQ(view->method(), Method::kBinding);
  EXPECT_EQ(view->message_class(), MessageClass::kRequest);
  EXPECT_EQ(view->message_type(), 0x0001);
  EXPECT_EQ(view->transaction_id_array(), kRfcTxid);
  EXPECT_EQ(view->attributes().size(), 6u);
  EXPECT_EQ(view->FindString(attr::kSoftware), "STUN test client");
  EXPECT_EQ(view->FindU32(attr::kPriority), 0x6e0001ffu);
  std::optional<std::span<const uint8_t>> tie = view->FindValue(attr::kIceControlled);
  ASSERT_TRUE(tie.has_value());
  EXPECT_EQ(std::vector<uint8_t>(tie->begin(), tie->end()),
            FromHex("93 2f f9 b1 51 26 3b 36"));
  // The padding is 0x20 in the vector; the value must stop at the 9-byte length.
  EXPECT_EQ(view->FindString(attr::kUsername), "evtj:h6vY");
  EXPECT_TRUE(view->HasFingerprint());
  EXPECT_TRUE(view->HasMessageIntegrity());
  EXPECT_FALSE(view->HasMessageIntegritySha256());
  EXPECT_TRUE(view->CheckMessageIntegrity(Bytes(kShortTermPassword)));
  EXPECT_FALSE(view->CheckMessageIntegrity(Bytes("VOkJxbRl1RmTxUk/WvJxBT")));
  EXPECT_FALSE(view->CheckMessageIntegritySha256(Bytes(kShortTermPassword)));
  std::array<uint16_t, 4> unknown{};
  EXPECT_EQ(view->UnknownComprehensionRequired(unknown), 0u);  // PRIORITY is known
}

TEST(Rfc5769, Ipv4ResponseDecodesXorMappedAddress) {
  const std::vector<uint8_t> msg = FromHex(kRfc5769Ipv4Response);
  ASSERT_EQ(msg.size(), 80u);
  std::optional<MessageView> view = ParseOk(msg);
  ASSERT_TRUE(view.has_value());
  EXPECT_EQ(view->method(), Method::kBinding);
  EXPECT_EQ(view->message_class(), MessageClass::kSuccessResponse);
  EXPECT_EQ(view->FindString(attr::kSoftware), "test vector");
  std::optional<SocketAddress> mapped = view->FindXorAddress(attr::kXorMappedAddress);
  ASSERT_TRUE(mapped.has_value());
  EXPECT_EQ(*mapped, *SocketAddress::Parse("192.0.2.1:32853"));
  EXPECT_TRUE(view->HasFingerprint());
  EXPECT_TRUE(view->CheckMessageIntegrity(Bytes(kShortTermPassword)));
  EXPECT_FALSE(view->CheckMessageIntegrity(Bytes("wrong")));
}

TEST(Rfc5769, Ipv6ResponseDecodesXorMappedAddress) {
  const std::vector<uint8_t> msg = FromHex(kRfc5769Ipv6Response);
  ASSERT_EQ(msg.size(), 92u);
  std::optional<MessageView> view = ParseOk(msg);
  ASSERT_TRUE(view.has_value());
  EXPECT_EQ(view->message_class(), MessageClass::kSuccessResponse);
  std::optional<SocketAddress> mapped = view->FindXorAddress(attr::kXorMappedAddress);
  ASSERT_TRUE(mapped.has_value());
  EXPECT_EQ(*mapped, *SocketAddress::Parse("[2001:db8:1234:5678:11:2233:4455:6677]:32853"));
  EXPECT_TRUE(view->HasFingerprint());
  EXPECT_TRUE(view->CheckMessageIntegrity(Bytes(kShortTermPassword)));
  EXPECT_FALSE(view->CheckMessageIntegrity(Bytes("")));
}

TEST(Rfc5769, LongTermRequestChecksWithMd5Key) {
  const std::vector<uint8_t> msg = FromHex(kRfc5769LongTermRequest);
  ASSERT_EQ(msg.size(), 116u);
  std::optional<MessageView> view = ParseOk(msg);
  ASSERT_TRUE(view.has_value());
  EXPECT_EQ(view->transaction_id_array(),
            (TransactionId{0x78, 0xad, 0x34, 0x33, 0xc6, 0xad, 0x72, 0xc0, 0x29, 0xda, 0x41,
                           0x2e}));
  EXPECT_EQ(view->FindString(attr::kUsername), kMatrixUser);
  EXPECT_EQ(view->FindString(attr::kNonce), "f//499k954d6OL34oL9FSTvy64sA");
  EXPECT_EQ(view->FindString(attr::kRealm), "example.org");
  EXPECT_FALSE(view->HasFingerprint());
  // The RFC's password is "The<U+00AD>M<U+00AA>tr<U+2168>", "TheMatrIX" after SASLprep.
  const std::array<uint8_t, 16> key = LongTermKeyMd5(kMatrixUser, "example.org", "TheMatrIX");
  EXPECT_EQ(std::vector<uint8_t>(key.begin(), key.end()),
            FromHex("e8ca7ad59d5eb0518e312911d2dab2a9"));  // hashlib.md5, independently
  EXPECT_TRUE(view->CheckMessageIntegrity(key));
  const std::array<uint8_t, 16> wrong = LongTermKeyMd5(kMatrixUser, "example.org", "TheMatrix");
  EXPECT_FALSE(view->CheckMessageIntegrity(wrong));
}

TEST(Rfc8489, AppendixB1AsPublishedHasAHeaderLengthNoParserAccepts) {
  const std::vector<uint8_t> msg = FromHex(kRfc8489B1AsPublished);
  ASSERT_EQ(msg.size(), 0x9cu);  // the published length counts the header
  EXPECT_EQ(ParseFails(msg), ParseError::kBadLength);
}

TEST(Rfc8489, AppendixB1Erratum6268ChecksWithSha256KeyAndUserhash) {
  const std::vector<uint8_t> msg = FromHex(kRfc8489B1Erratum6268);
  ASSERT_EQ(msg.size(), 164u);
  std::optional<MessageView> view = ParseOk(msg);
  ASSERT_TRUE(view.has_value());
  EXPECT_FALSE(view->Has(attr::kUsername));
  std::optional<std::span<const uint8_t>> userhash = view->FindValue(attr::kUserhash);
  ASSERT_TRUE(userhash.has_value());
  const std::array<uint8_t, 32> expected_hash = UserHash(kMatrixUser, "example.org");
  EXPECT_TRUE(std::equal(userhash->begin(), userhash->end(), expected_hash.begin(),
                         expected_hash.end()));
  EXPECT_EQ(view->FindString(attr::kNonce), "obMatJos2AAACf//499k954d6OL34oL9FSTvy64sA");
  EXPECT_EQ(view->FindString(attr::kRealm), "example.org");
  EXPECT_EQ(view->FindU32(attr::kPasswordAlgorithm), 0x00020000u);  // SHA-256, no parameters
  EXPECT_TRUE(view->HasMessageIntegritySha256());
  EXPECT_FALSE(view->HasMessageIntegrity());
  const std::array<uint8_t, 32> key = LongTermKeySha256(kMatrixUser, "example.org", "TheMatrIX");
  EXPECT_TRUE(view->CheckMessageIntegritySha256(key));
  // The MD5 key (the default algorithm) does not check, nor does the SHA-1 attribute.
  const std::array<uint8_t, 16> md5 = LongTermKeyMd5(kMatrixUser, "example.org", "TheMatrIX");
  EXPECT_FALSE(view->CheckMessageIntegritySha256(md5));
  EXPECT_FALSE(view->CheckMessageIntegrity(key));
}

TEST(Keys, MatchIndependentlyComputedDigests) {
  // Expected values from Python's hashlib over "alice:example.org:secret".
  const std::array<uint8_t, 16> md5 = LongTermKeyMd5("alice", "example.org", "secret");
  EXPECT_EQ(std::vector<uint8_t>(md5.begin(), md5.end()),
            FromHex("543e1aec5d3614f03141652d6ada51b2"));
  const std::array<uint8_t, 32> sha = LongTermKeySha256("alice", "example.org", "secret");
  EXPECT_EQ(std::vector<uint8_t>(sha.begin(), sha.end()),
            FromHex("d1659fff7a501be15962adc35514ca6a5868905695f2dd1093741f931e000a1f"));
}

TEST(Fingerprint, AnyFlippedByteOfTheRfcRequestIsRejected) {
  const std::vector<uint8_t> original = FromHex(kRfc5769SampleRequest);
  // Skip the header (other errors win there) and check every byte after it, FINGERPRINT's own
  // value included.
  for (size_t i = kHeaderSize; i < original.size(); ++i) {
    std::vector<uint8_t> msg = original;
    msg[i] ^= 0x01;
    if (i == 100 || i == 101) {
      // FINGERPRINT's type turned into another attribute after MESSAGE-INTEGRITY: ignored as
      // RFC 8489 14.5 requires, so the message parses without a fingerprint.
      std::optional<MessageView> view = ParseOk(msg);
      ASSERT_TRUE(view.has_value());
      EXPECT_FALSE(view->HasFingerprint());
      EXPECT_EQ(view->attributes().size(), 5u);
      continue;
    }
    ParseError error = ParseError::kNone;
    std::optional<MessageView> view = MessageView::Parse(msg, &error);
    EXPECT_FALSE(view.has_value()) << "byte " << i;
    EXPECT_NE(error, ParseError::kNone) << "byte " << i;
  }
  std::vector<uint8_t> msg = original;
  msg[105] ^= 0x80;  // inside the CRC value
  EXPECT_EQ(ParseFails(msg), ParseError::kBadFingerprint);
  msg = original;
  msg[30] ^= 0x20;  // a letter of SOFTWARE
  EXPECT_EQ(ParseFails(msg), ParseError::kBadFingerprint);
}

TEST(Fingerprint, ComputeMatchesTheRfcValue) {
  const std::vector<uint8_t> msg = FromHex(kRfc5769SampleRequest);
  EXPECT_EQ(ComputeFingerprint({msg.data(), msg.size() - 8}), 0xe57a3bcfu);
}

TEST(Fingerprint, MustBeLastAndFourBytes) {
  uint8_t buf[128];
  const TransactionId txid{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  MessageBuilder b(buf, Method::kBinding, MessageClass::kRequest, txid.data());
  b.AddFingerprint();
  b.AddString(attr::kSoftware, "late");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(ParseFails(b.bytes()), ParseError::kBadFingerprint);

  MessageBuilder c(buf, Method::kBinding, MessageClass::kRequest, txid.data());
  c.AddAttribute(attr::kFingerprint, std::array<uint8_t, 8>{});
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(ParseFails(c.bytes()), ParseError::kBadFingerprint);
}

TEST(MessageIntegrity, TamperedRfcLongTermRequestFails) {
  const std::array<uint8_t, 16> key = LongTermKeyMd5(kMatrixUser, "example.org", "TheMatrIX");
  const std::vector<uint8_t> original = FromHex(kRfc5769LongTermRequest);
  // No FINGERPRINT here, so only the HMAC can catch a change. Flip each byte covered by it
  // (the MI header too, its type and length are covered) and each byte of the MAC itself.
  for (size_t i = 0; i < original.size(); ++i) {
    std::vector<uint8_t> msg = original;
    msg[i] ^= 0x04;
    std::optional<MessageView> view = MessageView::Parse(msg, nullptr);
    EXPECT_FALSE(view.has_value() && view->CheckMessageIntegrity(key)) << "byte " << i;
  }
}

TEST(MessageIntegrity, BuiltSha1AndSha256VerifyAndEveryFlippedByteFails) {
  const std::array<uint8_t, 16> key = LongTermKeyMd5("alice", "example.org", "secret");
  const std::array<uint8_t, 32> key256 = LongTermKeySha256("alice", "example.org", "secret");
  const TransactionId txid{9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2};
  uint8_t buf[256];
  MessageBuilder b(buf, Method::kAllocate, MessageClass::kRequest, txid.data());
  b.AddString(attr::kUsername, "alice");
  b.AddString(attr::kRealm, "example.org");
  b.AddString(attr::kNonce, "nonce-123");
  b.AddU32(attr::kRequestedTransport, 17u << 24);
  b.AddMessageIntegrity(key);
  b.AddMessageIntegritySha256(key256);
  b.AddFingerprint();
  ASSERT_TRUE(b.ok());
  const std::vector<uint8_t> original(b.bytes().begin(), b.bytes().end());
  std::optional<MessageView> view = ParseOk(original);
  ASSERT_TRUE(view.has_value());
  EXPECT_TRUE(view->HasFingerprint());
  EXPECT_TRUE(view->CheckMessageIntegrity(key));
  EXPECT_TRUE(view->CheckMessageIntegritySha256(key256));
  EXPECT_FALSE(view->CheckMessageIntegrity(key256));
  EXPECT_FALSE(view->CheckMessageIntegritySha256(key));

  const size_t mi256_end = original.size() - 8;
  for (size_t i = 0; i < mi256_end; ++i) {
    std::vector<uint8_t> msg = original;
    msg[i] ^= 0x10;
    // Fix the FINGERPRINT up so the integrity checks themselves are what must catch it.
    const uint32_t crc = ComputeFingerprint({msg.data(), mi256_end});
    msg[mi256_end + 4] = static_cast<uint8_t>(crc >> 24);
    msg[mi256_end + 5] = static_cast<uint8_t>(crc >> 16);
    msg[mi256_end + 6] = static_cast<uint8_t>(crc >> 8);
    msg[mi256_end + 7] = static_cast<uint8_t>(crc);
    std::optional<MessageView> v = MessageView::Parse(msg, nullptr);
    EXPECT_FALSE(v.has_value() && v->CheckMessageIntegritySha256(key256)) << "byte " << i;
    const size_t mi_end = mi256_end - 36;
    if (i < mi_end) {
      EXPECT_FALSE(v.has_value() && v->CheckMessageIntegrity(key)) << "byte " << i;
    }
  }
}

TEST(MessageIntegrity, MatchesAnIndependentOneShotHmacOverAPatchedCopy) {
  const std::string key = "short-term-key";
  const TransactionId txid{1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144};
  uint8_t buf[128];
  MessageBuilder b(buf, Method::kBinding, MessageClass::kRequest, txid.data());
  b.AddString(attr::kUsername, "a:b");
  b.AddMessageIntegrity(Bytes(key));
  b.AddFingerprint();
  ASSERT_TRUE(b.ok());
  std::vector<uint8_t> copy(b.bytes().begin(), b.bytes().end() - 8 - 24);
  const size_t patched = copy.size() + 24 - kHeaderSize;
  copy[2] = static_cast<uint8_t>(patched >> 8);
  copy[3] = static_cast<uint8_t>(patched);
  uint8_t mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  ASSERT_NE(HMAC(EVP_sha1(), key.data(), static_cast<int>(key.size()), copy.data(), copy.size(),
                 mac, &mac_len),
            nullptr);
  ASSERT_EQ(mac_len, 20u);
  EXPECT_EQ(std::memcmp(mac, b.bytes().data() + copy.size() + 4, 20), 0);
}

// MESSAGE-INTEGRITY-SHA256 may be truncated to 16..32 bytes in steps of 4 (RFC 8489 14.6).
TEST(MessageIntegrity, Sha256AcceptsTruncatedValuesOfValidLengthsOnly) {
  const std::array<uint8_t, 32> key = LongTermKeySha256("bob", "example.org", "pw");
  const TransactionId txid{};
  for (size_t len = 8; len <= 36; len += 4) {
    uint8_t buf[128];
    MessageBuilder b(buf, Method::kRefresh, MessageClass::kRequest, txid.data());
    b.AddU32(attr::kLifetime, 600);
    b.AddAttribute(attr::kMessageIntegritySha256, std::vector<uint8_t>(len, 0));
    ASSERT_TRUE(b.ok());
    // Header length already ends at this attribute: an independent one-shot HMAC over the
    // bytes before it gives the expected value.
    const size_t covered = b.size() - 4 - len;
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    ASSERT_NE(HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), buf, covered, mac,
                   &mac_len),
              nullptr);
    std::memcpy(buf + covered + 4, mac, std::min<size_t>(len, 32));
    std::optional<MessageView> view = ParseOk(b.bytes());
    ASSERT_TRUE(view.has_value());
    const bool valid_length = len >= 16 && len <= 32;
    EXPECT_EQ(view->CheckMessageIntegritySha256(key), valid_length) << "length " << len;
    if (valid_length) {
      buf[covered + 4 + len - 1] ^= 1;  // last compared byte
      EXPECT_FALSE(view->CheckMessageIntegritySha256(key)) << "length " << len;
    }
  }
}

TEST(MessageIntegrity, AttributesAfterIntegrityAreIgnored) {
  const std::array<uint8_t, 16> key{};
  const TransactionId txid{};
  uint8_t buf[256];
  MessageBuilder b(buf, Method::kBinding, MessageClass::kRequest, txid.data());
  b.AddString(attr::kUsername, "u");
  b.AddMessageIntegrity(key);
  b.AddString(attr::kSoftware, "ignored");
  b.AddU32(0x0003, 1);  // comprehension-required, unknown, but after MI: not reported
  b.AddMessageIntegritySha256(key);
  b.AddMessageIntegrity(key);  // a second MI after MI-SHA256: ignored too
  b.AddString(attr::kRealm, "ignored");
  b.AddFingerprint();
  ASSERT_TRUE(b.ok());
  std::optional<MessageView> view = ParseOk(b.bytes());
  ASSERT_TRUE(view.has_value());
  EXPECT_FALSE(view->Has(attr::kSoftware));
  EXPECT_FALSE(view->Has(attr::kRealm));
  EXPECT_FALSE(view->Has(0x0003));
  ASSERT_EQ(view->attributes().size(), 4u);  // USERNAME, MI, MI-SHA256, FINGERPRINT
  EXPECT_EQ(view->attributes()[1].type, attr::kMessageIntegrity);
  EXPECT_EQ(view->attributes()[2].type, attr::kMessageIntegritySha256);
  EXPECT_EQ(view->attributes()[3].type, attr::kFingerprint);
  std::array<uint16_t, 4> unknown{};
  EXPECT_EQ(view->UnknownComprehensionRequired(unknown), 0u);
  EXPECT_TRUE(view->HasFingerprint());
  EXPECT_TRUE(view->CheckMessageIntegrity(key));
  // MI-SHA256 covers SOFTWARE and the unknown attribute that the parser skipped.
  EXPECT_TRUE(view->CheckMessageIntegritySha256(key));
}

TEST(Parse, RejectsShortDatagrams) {
  const std::vector<uint8_t> msg = FromHex(kRfc5769SampleRequest);
  for (size_t n = 0; n < kHeaderSize; ++n) {
    EXPECT_EQ(ParseFails({msg.data(), n}), ParseError::kTooShort) << n;
  }
}

TEST(Parse, RejectsTopBitsAndWrongCookie) {
  std::vector<uint8_t> msg = FromHex(kRfc5769SampleRequest);
  msg[0] |= 0x80;
  EXPECT_EQ(ParseFails(msg), ParseError::kNotStun);
  msg[0] = 0x40;
  EXPECT_EQ(ParseFails(msg), ParseError::kNotStun);
  msg = FromHex(kRfc5769SampleRequest);
  msg[7] ^= 0x01;
  EXPECT_EQ(ParseFails(msg), ParseError::kNotStun);
}

TEST(Parse, RejectsHeaderLengthNotMatchingTheDatagram) {
  std::vector<uint8_t> msg = FromHex(kRfc5769SampleRequest);
  msg[3] = 0x59;  // not a multiple of 4
  EXPECT_EQ(ParseFails(msg), ParseError::kBadLength);
  msg[3] = 0x5c;  // longer than the datagram
  EXPECT_EQ(ParseFails(msg), ParseError::kBadLength);
  msg[3] = 0x54;  // shorter than the datagram
  EXPECT_EQ(ParseFails(msg), ParseError::kBadLength);
  msg = FromHex(kRfc5769SampleRequest);
  msg.push_back(0);  // trailing byte after a valid message
  EXPECT_EQ(ParseFails(msg), ParseError::kBadLength);
}

TEST(Parse, EmptyMessageHasNoAttributes) {
  const TransactionId txid{};
  uint8_t buf[kHeaderSize];
  MessageBuilder b(buf, Method::kBinding, MessageClass::kIndication, txid.data());
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b.size(), kHeaderSize);
  std::optional<MessageView> view = ParseOk(b.bytes());
  ASSERT_TRUE(view.has_value());
  EXPECT_EQ(view->message_class(), MessageClass::kIndication);
  EXPECT_TRUE(view->attributes().empty());
  EXPECT_FALSE(view->HasMessageIntegrity());
  EXPECT_FALSE(view->CheckMessageIntegrity(std::array<uint8_t, 16>{}));
  EXPECT_FALSE(view->HasFingerprint());
}

TEST(Parse, AttributeRunningPastTheEndIsTruncated) {
  std::vector<uint8_t> msg = FromHex(kRfc5769LongTermRequest);
  msg[kHeaderSize + 3] = 0x40;  // USERNAME claims 64 bytes
  EXPECT_EQ(ParseFails(msg), ParseError::kTruncatedAttribute);
  msg = FromHex(kRfc5769LongTermRequest);
  msg[msg.size() - 21] = 0x15;  // MI claims 21 bytes: its padding runs past the end
  EXPECT_EQ(ParseFails(msg), ParseError::kTruncatedAttribute);
}

// Cut a valid message at every length, with the header length left alone and with it patched
// to match: never a crash, always a proper error unless the cut is on an attribute boundary.
TEST(Parse, EveryTruncationOfAValidMessageIsHandled) {
  for (std::string_view vector : {kRfc5769SampleRequest, kRfc5769LongTermRequest,
                                  kRfc5769Ipv6Response, kRfc8489B1Erratum6268}) {
    const std::vector<uint8_t> original = FromHex(vector);
    std::optional<MessageView> full = ParseOk(original);
    ASSERT_TRUE(full.has_value());
    std::vector<size_t> boundaries = {kHeaderSize};
    for (const MessageView::Attribute& a : full->attributes()) {
      boundaries.push_back(a.offset + ((a.length + 3u) & ~3u));
    }
    for (size_t n = 0; n < original.size(); ++n) {
      // Exact-size copies so a read past the end shows up under ASan.
      std::vector<uint8_t> cut(original.begin(), original.begin() + n);
      ParseError error = ParseError::kNone;
      EXPECT_FALSE(MessageView::Parse(cut, &error).has_value()) << n;
      EXPECT_EQ(error, n < kHeaderSize ? ParseError::kTooShort : ParseError::kBadLength) << n;
      if (n < kHeaderSize || (n - kHeaderSize) % 4 != 0) {
        continue;
      }
      cut[2] = static_cast<uint8_t>((n - kHeaderSize) >> 8);
      cut[3] = static_cast<uint8_t>(n - kHeaderSize);
      std::optional<MessageView> view = MessageView::Parse(cut, &error);
      const bool on_boundary =
          std::find(boundaries.begin(), boundaries.end(), n) != boundaries.end();
      if (on_boundary) {
        EXPECT_TRUE(view.has_value()) << n;
        EXPECT_EQ(error, ParseError::kNone) << n;
      } else {
        EXPECT_FALSE(view.has_value()) << n;
        EXPECT_EQ(error, ParseError::kTruncatedAttribute) << n;
      }
    }
  }
}

TEST(Parse, AtMostMaxAttributesAreAccepted) {
  const TransactionId txid{};
  uint8_t buf[1024];
  MessageBuilder b(buf, Method::kBinding, MessageClass::kRequest, txid.data());
  for (size_t i = 0; i < kMaxAttributes; ++i) {
    b.AddU32(attr::kPriority, static_cast<uint32_t>(i));
  }
  ASSERT_TRUE(b.ok());
  std::optional<MessageView> view = ParseOk(b.bytes());
  ASSERT_TRUE(view.has_value());
  EXPECT_EQ(view->attributes().size(), kMaxAttributes);
  EXPECT_EQ(view->FindU32(attr::kPriority), 0u);
  b.AddEmpty(attr::kDontFragment);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(ParseFails(b.bytes()), ParseError::kTooManyAttributes);
}

TEST(Builder, EveryAddRoundTrips) {
  const TransactionId txid{0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8};
  const SocketAddress v4 = *SocketAddress::Parse("203.0.113.7:49152");
  const SocketAddress v6 = *SocketAddress::Parse("[2001:db8::42]:3478");
  const std::array<uint8_t, 5> raw = {1, 2, 3, 4, 5};
  const std::array<uint16_t, 3> unknown = {0x0003, 0x7001, 0x0031};
  const std::array<PasswordAlgorithm, 2> algs = {PasswordAlgorithm::kSha256,
                                                 PasswordAlgorithm::kMd5};
  uint8_t buf[512];
  MessageBuilder b(buf, Method::kAllocate, MessageClass::kErrorResponse, txid.data());
  b.AddAttribute(attr::kReservationToken, raw);
  b.AddString(attr::kSoftware, "turnpike");
  b.AddU32(attr::kLifetime, 3600);
  b.AddEmpty(attr::kDontFragment);
  b.AddXorAddress(attr::kXorRelayedAddress, v4);
  b.AddXorAddress(attr::kXorPeerAddress, v6);
  b.AddAddress(attr::kMappedAddress, v4);
  b.AddAddress(attr::kAlternateServer, v6);
  b.AddErrorCode(438, "Stale Nonce");
  b.AddUnknownAttributes(unknown);
  b.AddPasswordAlgorithms(algs);
  b.AddPasswordAlgorithm(PasswordAlgorithm::kSha256);
  ASSERT_TRUE(b.ok());
  // Header length tracks the attributes written.
  EXPECT_EQ(b.size() - kHeaderSize, size_t{buf[2]} << 8 | buf[3]);
  EXPECT_EQ(b.size() % 4, 0u);

  std::optional<MessageView> view = ParseOk(b.bytes());
  ASSERT_TRUE(view.has_value());
  EXPECT_EQ(view->method(), Method::kAllocate);
  EXPECT_EQ(view->message_class(), MessageClass::kErrorResponse);
  EXPECT_EQ(view->message_type(), 0x0113);
  EXPECT_EQ(view->transaction_id_array(), txid);
  EXPECT_EQ(std::memcmp(view->transaction_id(), txid.data(), txid.size()), 0);

  std::optional<std::span<const uint8_t>> token = view->FindValue(attr::kReservationToken);
  ASSERT_TRUE(token.has_value());
  EXPECT_TRUE(std::equal(token->begin(), token->end(), raw.begin(), raw.end()));
  const MessageView::Attribute* token_attr = view->Find(attr::kReservationToken);
  ASSERT_NE(token_attr, nullptr);
  EXPECT_EQ(token_attr->length, 5u);
  EXPECT_EQ(buf[token_attr->offset + 5], 0);  // padding is zeroed
  EXPECT_EQ(view->FindString(attr::kSoftware), "turnpike");
  EXPECT_EQ(view->FindU32(attr::kLifetime), 3600u);
  EXPECT_TRUE(view->Has(attr::kDontFragment));
  EXPECT_EQ(view->Find(attr::kDontFragment)->length, 0u);
  EXPECT_EQ(view->FindXorAddress(attr::kXorRelayedAddress), v4);
  EXPECT_EQ(view->FindXorAddress(attr::kXorPeerAddress), v6);
  EXPECT_EQ(view->FindAddress(attr::kMappedAddress), v4);
  EXPECT_EQ(view->FindAddress(attr::kAlternateServer), v6);
  std::string_view reason;
  EXPECT_EQ(view->FindErrorCode(&reason), 438);
  EXPECT_EQ(reason, "Stale Nonce");
  EXPECT_EQ(view->FindErrorCode(), 438);
  std::optional<std::span<const uint8_t>> ua = view->FindValue(attr::kUnknownAttributes);
  ASSERT_TRUE(ua.has_value());
  EXPECT_EQ(std::vector<uint8_t>(ua->begin(), ua->end()), FromHex("0003 7001 0031"));
  std::optional<std::span<const uint8_t>> pa = view->FindValue(attr::kPasswordAlgorithms);
  ASSERT_TRUE(pa.has_value());
  EXPECT_EQ(std::vector<uint8_t>(pa->begin(), pa->end()), FromHex("0002 0000 0001 0000"));
  EXPECT_EQ(view->FindU32(attr::kPasswordAlgorithm), 0x00020000u);

  EXPECT_FALSE(view->Has(attr::kNonce));
  EXPECT_FALSE(view->FindString(attr::kNonce).has_value());
  EXPECT_FALSE(view->FindU32(attr::kSoftware).has_value());  // not 4 bytes
  EXPECT_FALSE(view->FindXorAddress(attr::kXorMappedAddress).has_value());
}

TEST(Builder, XorAddressWireFormatIsRfc8489) {
  // Rebuild the RFC 5769 2.2 / 2.3 XOR-MAPPED-ADDRESS attributes from the plain addresses.
  uint8_t buf[64];
  MessageBuilder b(buf, Method::kBinding, MessageClass::kSuccessResponse, kRfcTxid.data());
  b.AddXorAddress(attr::kXorMappedAddress, *SocketAddress::Parse("192.0.2.1:32853"));
  b.AddXorAddress(attr::kXorMappedAddress,
                  *SocketAddress::Parse("[2001:db8:1234:5678:11:2233:4455:6677]:32853"));
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(std::vector<uint8_t>(b.bytes().begin() + kHeaderSize, b.bytes().end()),
            FromHex("00 20 00 08 00 01 a1 47 e1 12 a6 43"
                    "00 20 00 14 00 02 a1 47 01 13 a9 fa a5 d3 f1 79 bc 25 f4 b5 be d2 b9 d9"));
}

TEST(Builder, FindAllXorAddressesSkipsAndCountsBadOnes) {
  const TransactionId txid{3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8};
  const SocketAddress a = *SocketAddress::Parse("198.51.100.1:1000");
  const SocketAddress c = *SocketAddress::Parse("[2001:db8::1]:2000");
  uint8_t buf[256];
  MessageBuilder b(buf, Method::kCreatePermission, MessageClass::kRequest, txid.data());
  b.AddXorAddress(attr::kXorPeerAddress, a);
  b.AddAttribute(attr::kXorPeerAddress, FromHex("00 03 12 34 01 02 03 04"));  // bad family
  b.AddAttribute(attr::kXorPeerAddress, FromHex("00 01 12 34 01 02 03"));     // short IPv4
  b.AddAttribute(attr::kXorPeerAddress, FromHex("00 02 12 34 01 02 03 04"));  // short IPv6
  b.AddXorAddress(attr::kXorPeerAddress, c);
  ASSERT_TRUE(b.ok());
  std::optional<MessageView> view = ParseOk(b.bytes());
  ASSERT_TRUE(view.has_value());
  std::array<SocketAddress, 4> out;
  size_t bad = 99;
  EXPECT_EQ(view->FindAllXorAddresses(attr::kXorPeerAddress, out, &bad), 2u);
  EXPECT_EQ(bad, 3u);
  EXPECT_EQ(out[0], a);
  EXPECT_EQ(out[1], c);
  std::array<SocketAddress, 1> one;
  EXPECT_EQ(view->FindAllXorAddresses(attr::kXorPeerAddress, one, nullptr), 1u);
  EXPECT_EQ(one[0], a);
  EXPECT_EQ(view->FindXorAddress(attr::kXorPeerAddress), a);  // the first one
}

TEST(Builder, BadAddressAttributesGiveNullopt) {
  const TransactionId txid{};
  uint8_t buf[128];
  MessageBuilder b(buf, Method::kBinding, MessageClass::kSuccessResponse, txid.data());
  b.AddAttribute(attr::kXorMappedAddress, FromHex("00 01 12 34 01 02 03 04 05"));  // 9 bytes
  b.AddAttribute(attr::kMappedAddress, FromHex("00 02 12 34 01 02 03 04"));  // v6, 8 bytes
  b.AddAttribute(attr::kXorRelayedAddress, FromHex("00"));
  ASSERT_TRUE(b.ok());
  std::optional<MessageView> view = ParseOk(b.bytes());
  ASSERT_TRUE(view.has_value());
  EXPECT_FALSE(view->FindXorAddress(attr::kXorMappedAddress).has_value());
  EXPECT_FALSE(view->FindAddress(attr::kMappedAddress).has_value());
  EXPECT_FALSE(view->FindXorAddress(attr::kXorRelayedAddress).has_value());
}

TEST(Builder, ErrorCodeRoundTripsAndRejectsBadClasses) {
  const TransactionId txid{};
  for (int code : {300, 400, 401, 420, 437, 438, 441, 486, 500, 508, 699}) {
    uint8_t buf[128];
    MessageBuilder b(buf, Method::kRefresh, MessageClass::kErrorResponse, txid.data());
    b.AddErrorCode(code, code == 438 ? "Stale Nonce" : "");
    ASSERT_TRUE(b.ok());
    const MessageView::Attribute* a = nullptr;
    std::optional<MessageView> view = ParseOk(b.bytes());
    ASSERT_TRUE(view.has_value());
    a = view->Find(attr::kErrorCode);
    ASSERT_NE(a, nullptr);
    EXPECT_EQ(buf[a->offset + 2], code / 100);
    EXPECT_EQ(buf[a->offset + 3], code % 100);
    std::string_view reason = "unset";
    EXPECT_EQ(view->FindErrorCode(&reason), code);
    EXPECT_EQ(reason, code == 438 ? "Stale Nonce" : "");
  }
  uint8_t buf[64];
  MessageBuilder b(buf, Method::kRefresh, MessageClass::kErrorResponse, txid.data());
  b.AddAttribute(attr::kErrorCode, FromHex("00 00 02 00"));  // class 2
  ASSERT_TRUE(b.ok());
  EXPECT_FALSE(ParseOk(b.bytes())->FindErrorCode().has_value());
  MessageBuilder c(buf, Method::kRefresh, MessageClass::kErrorResponse, txid.data());
  c.AddAttribute(attr::kErrorCode, FromHex("00 00 04 64"));  // number 100
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE(ParseOk(c.bytes())->FindErrorCode().has_value());
  MessageBuilder d(buf, Method::kRefresh, MessageClass::kErrorResponse, txid.data());
  d.AddAttribute(attr::kErrorCode, FromHex("00 00 04"));  // too short
  ASSERT_TRUE(d.ok());
  EXPECT_FALSE(ParseOk(d.bytes())->FindErrorCode().has_value());
}

// A builder given too small a buffer reports it and never writes past the buffer.
TEST(Builder, OverflowIsReportedAndNeverWritesPastTheBuffer) {
  const TransactionId txid{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  const std::array<uint8_t, 16> key{};
  auto build = [&](std::span<uint8_t> out) {
    MessageBuilder b(out, Method::kAllocate, MessageClass::kSuccessResponse, txid.data());
    b.AddXorAddress(attr::kXorRelayedAddress, *SocketAddress::Parse("[2001:db8::9]:50000"));
    b.AddXorAddress(attr::kXorMappedAddress, *SocketAddress::Parse("192.0.2.9:40000"));
    b.AddU32(attr::kLifetime, 600);
    b.AddString(attr::kSoftware, "turnpike 0.1");
    b.AddMessageIntegrity(key);
    b.AddFingerprint();
    return std::make_pair(b.ok(), b.size());
  };
  std::array<uint8_t, 256> full{};
  const auto [full_ok, needed] = build(full);
  ASSERT_TRUE(full_ok);
  ASSERT_TRUE(ParseOk({full.data(), needed}).has_value());
  for (size_t n = 0; n <= needed; ++n) {
    std::array<uint8_t, 256> buf;
    buf.fill(0xAA);
    const auto [ok, size] = build({buf.data(), n});
    EXPECT_EQ(ok, n == needed) << n;
    EXPECT_LE(size, n) << n;
    for (size_t i = n; i < buf.size(); ++i) {
      ASSERT_EQ(buf[i], 0xAA) << "wrote byte " << i << " with a buffer of " << n;
    }
    if (n >= kHeaderSize) {
      // What was written is still a well-formed (shorter) message.
      EXPECT_EQ(size - kHeaderSize, size_t{buf[2]} << 8 | buf[3]) << n;
    }
  }
}

TEST(Builder, AddsNothingOnceOverflowed) {
  const TransactionId txid{};
  uint8_t buf[32];
  MessageBuilder b(buf, Method::kBinding, MessageClass::kRequest, txid.data());
  b.AddString(attr::kSoftware, "0123456789abcdef");  // 20 bytes: does not fit in 12
  EXPECT_FALSE(b.ok());
  b.AddU32(attr::kLifetime, 1);  // would fit, but the message is already broken
  EXPECT_FALSE(b.ok());
  EXPECT_EQ(b.size(), kHeaderSize);
}

TEST(UnknownAttributes, ComprehensionRequiredUnknownsAreListedOnce) {
  const TransactionId txid{};
  uint8_t buf[256];
  MessageBuilder b(buf, Method::kAllocate, MessageClass::kRequest, txid.data());
  b.AddU32(attr::kRequestedTransport, 17u << 24);
  b.AddU32(0x0003, 0);       // CHANGE-REQUEST (RFC 5780): not ours
  b.AddU32(0x8070, 0);       // comprehension-optional: never listed
  b.AddU32(0x7FFF, 0);
  b.AddU32(0x0003, 0);       // repeated
  b.AddU32(attr::kLifetime, 0);
  b.AddU32(0x0031, 0);
  ASSERT_TRUE(b.ok());
  std::optional<MessageView> view = ParseOk(b.bytes());
  ASSERT_TRUE(view.has_value());
  std::array<uint16_t, 8> out{};
  ASSERT_EQ(view->UnknownComprehensionRequired(out), 3u);
  EXPECT_EQ(out[0], 0x0003);
  EXPECT_EQ(out[1], 0x7FFF);
  EXPECT_EQ(out[2], 0x0031);
  std::array<uint16_t, 2> small{};
  EXPECT_EQ(view->UnknownComprehensionRequired(small), 2u);
}

TEST(UnknownAttributes, KnownSetIsEveryRequiredConstant) {
  for (uint16_t t :
       {attr::kMappedAddress, attr::kUsername, attr::kMessageIntegrity, attr::kErrorCode,
        attr::kUnknownAttributes, attr::kChannelNumber, attr::kLifetime, attr::kXorPeerAddress,
        attr::kData, attr::kRealm, attr::kNonce, attr::kXorRelayedAddress,
        attr::kRequestedAddressFamily, attr::kEvenPort, attr::kRequestedTransport,
        attr::kDontFragment, attr::kMessageIntegritySha256, attr::kPasswordAlgorithm,
        attr::kUserhash, attr::kXorMappedAddress, attr::kReservationToken, attr::kPriority,
        attr::kUseCandidate}) {
    EXPECT_TRUE(attr::IsComprehensionRequired(t)) << t;
    EXPECT_TRUE(attr::IsKnownComprehensionRequired(t)) << t;
  }
  for (uint16_t t : {0x0000, 0x0002, 0x0003, 0x0004, 0x0005, 0x0007, 0x000B, 0x0010, 0x0021,
                     0x0026, 0x7FFF}) {
    EXPECT_FALSE(attr::IsKnownComprehensionRequired(t)) << t;
  }
  for (uint16_t t : {attr::kSoftware, attr::kFingerprint, attr::kIceControlled,
                     attr::kPasswordAlgorithms}) {
    EXPECT_FALSE(attr::IsComprehensionRequired(t)) << t;
    EXPECT_FALSE(attr::IsKnownComprehensionRequired(t)) << t;
  }
}

TEST(MessageType, EncodesTheRfcValues) {
  EXPECT_EQ(EncodeMessageType(Method::kBinding, MessageClass::kRequest), 0x0001);
  EXPECT_EQ(EncodeMessageType(Method::kBinding, MessageClass::kIndication), 0x0011);
  EXPECT_EQ(EncodeMessageType(Method::kBinding, MessageClass::kSuccessResponse), 0x0101);
  EXPECT_EQ(EncodeMessageType(Method::kBinding, MessageClass::kErrorResponse), 0x0111);
  EXPECT_EQ(EncodeMessageType(Method::kAllocate, MessageClass::kRequest), 0x0003);
  EXPECT_EQ(EncodeMessageType(Method::kAllocate, MessageClass::kSuccessResponse), 0x0103);
  EXPECT_EQ(EncodeMessageType(Method::kAllocate, MessageClass::kErrorResponse), 0x0113);
  EXPECT_EQ(EncodeMessageType(Method::kSend, MessageClass::kIndication), 0x0016);
  EXPECT_EQ(EncodeMessageType(Method::kData, MessageClass::kIndication), 0x0017);
  EXPECT_EQ(EncodeMessageType(Method::kChannelBind, MessageClass::kSuccessResponse), 0x0109);
  EXPECT_EQ(EncodeMessageType(static_cast<Method>(0xFFF), MessageClass::kErrorResponse),
            0x3FFF);
}

TEST(MessageType, EveryMethodAndClassRoundTrips) {
  for (uint16_t m = 0; m <= 0xFFF; ++m) {
    for (uint8_t c = 0; c < 4; ++c) {
      const uint16_t type = EncodeMessageType(static_cast<Method>(m), static_cast<MessageClass>(c));
      ASSERT_EQ(type & 0xC000, 0);
      ASSERT_EQ(static_cast<uint16_t>(DecodeMethod(type)), m);
      ASSERT_EQ(static_cast<uint8_t>(DecodeClass(type)), c);
    }
  }
}

TEST(Demux, LooksLikeStun) {
  std::vector<uint8_t> msg = FromHex(kRfc5769SampleRequest);
  EXPECT_TRUE(LooksLikeStun(msg));
  EXPECT_FALSE(LooksLikeStun({msg.data(), 19}));
  msg[0] = 0x04;
  EXPECT_FALSE(LooksLikeStun(msg));
  msg[0] = 0x03;
  EXPECT_TRUE(LooksLikeStun(msg));
  msg[5] = 0;
  EXPECT_FALSE(LooksLikeStun(msg));
  msg = FromHex(kRfc5769SampleRequest);
  msg[3] = 0x57;
  EXPECT_FALSE(LooksLikeStun(msg));
  EXPECT_FALSE(LooksLikeStun(FromHex("40 00 00 10 21 12 a4 42 00 00 00 00 00 00 00 00 00 00 00 00")));
}

TEST(ChannelData, ParsesValidFramesAndIgnoresPadding) {
  std::vector<uint8_t> frame = FromHex("40 00 00 05 68 65 6c 6c 6f 00 00 00");
  EXPECT_TRUE(LooksLikeChannelData(frame));
  std::optional<ChannelDataView> cd = ParseChannelData(frame);
  ASSERT_TRUE(cd.has_value());
  EXPECT_EQ(cd->channel, 0x4000);
  EXPECT_EQ(std::string_view(reinterpret_cast<const char*>(cd->payload.data()),
                             cd->payload.size()),
            "hello");
  EXPECT_EQ(cd->payload.data(), frame.data() + 4);  // zero-copy

  cd = ParseChannelData(FromHex("4f ff 00 00"));
  ASSERT_TRUE(cd.has_value());
  EXPECT_EQ(cd->channel, 0x4FFF);
  EXPECT_TRUE(cd->payload.empty());

  // RFC 5766's upper range, still used by coturn's clients.
  cd = ParseChannelData(FromHex("7f ff 00 01 09"));
  ASSERT_TRUE(cd.has_value());
  EXPECT_EQ(cd->channel, 0x7FFF);

  cd = ParseChannelData(FromHex("41 23 00 03 01 02 03"));  // unpadded, as UDP allows
  ASSERT_TRUE(cd.has_value());
  EXPECT_EQ(cd->channel, 0x4123);
  EXPECT_EQ(cd->payload.size(), 3u);
}

TEST(ChannelData, RejectsBadFrames) {
  EXPECT_FALSE(ParseChannelData(FromHex("40 00 00")).has_value());           // short header
  EXPECT_FALSE(ParseChannelData(FromHex("40 00 00 05 01 02 03 04")).has_value());  // length
  EXPECT_FALSE(ParseChannelData(FromHex("80 00 00 00")).has_value());        // RTP range
  EXPECT_FALSE(ParseChannelData(FromHex("3f ff 00 00")).has_value());
  EXPECT_FALSE(ParseChannelData(FromHex("00 01 00 00")).has_value());        // STUN
  EXPECT_FALSE(LooksLikeChannelData(FromHex("80 00 00 00")));
  EXPECT_FALSE(LooksLikeChannelData(FromHex("40 00 00")));
}

TEST(ChannelData, HeaderWriterRoundTrips) {
  std::array<uint8_t, 8> frame{};
  WriteChannelDataHeader(frame.data(), 0x4ABC, 4);
  frame[4] = 9;
  std::optional<ChannelDataView> cd = ParseChannelData(frame);
  ASSERT_TRUE(cd.has_value());
  EXPECT_EQ(cd->channel, 0x4ABC);
  ASSERT_EQ(cd->payload.size(), 4u);
  EXPECT_EQ(cd->payload[0], 9);
}

}  // namespace
}  // namespace turnpike::stun
