#include "turn/auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <charconv>
#include <cstring>

#include "absl/strings/escaping.h"

namespace turnpike::turn {
namespace {

using stun::MessageView;
using stun::PasswordAlgorithm;

// RFC 8489 9.2: the nonce cookie announces the security features the server supports.
// Nonce layout: [cookie + 4 feature chars] + 8 hex digits of issue time + 8 base64 chars of
// HMAC-SHA256(secret, form, time, client address) truncated to 48 bits. The short form (no
// cookie) is used where the full 401 would break the response-size budget (Engine), so the
// feature characters are covered by the MAC through the form byte and cannot be flipped.
constexpr std::string_view kNonceCookie = "obMatJos2";
constexpr size_t kFeatureChars = 4;  // base64 of 24 bits
constexpr size_t kTimeChars = 8;     // hex seconds
constexpr size_t kMacBytes = 6;
constexpr size_t kMacChars = 8;      // base64 of 6 bytes
constexpr size_t kShortNonceSize = kTimeChars + kMacChars;
static_assert(kNonceCookie.size() + kFeatureChars + kShortNonceSize ==
              Authenticator::kNonceSize);

// Security feature bits (RFC 8489 18.6.1): bit 0 is the most significant bit of the first byte.
constexpr uint8_t kFeaturePasswordAlgorithms = 0x80;
constexpr uint8_t kFeatureUsernameAnonymity = 0x40;

// The list we offer in PASSWORD-ALGORITHMS; a client that uses the mechanism must echo it.
constexpr PasswordAlgorithm kOffered[] = {PasswordAlgorithm::kMd5, PasswordAlgorithm::kSha256};

// Debian's Abseil has its own string_view type; its heterogeneous lookups want that one.
absl::string_view Absl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

bool ParseHexKey(std::string_view hex, std::array<uint8_t, 16>* out) {
  if (hex.size() != 32) {
    return false;
  }
  for (size_t i = 0; i < 16; ++i) {
    auto [p, ec] = std::from_chars(hex.data() + 2 * i, hex.data() + 2 * i + 2, (*out)[i], 16);
    if (ec != std::errc() || p != hex.data() + 2 * i + 2) {
      return false;
    }
  }
  return true;
}

// PASSWORD-ALGORITHMS in a request must equal what we offered (RFC 8489 9.2.4, bid-down
// protection). Its value is a list of (algorithm u16, params length u16, params padded).
bool MatchesOffered(std::span<const uint8_t> value) {
  size_t off = 0;
  size_t i = 0;
  while (off + 4 <= value.size()) {
    uint16_t alg = static_cast<uint16_t>(value[off] << 8 | value[off + 1]);
    uint16_t len = static_cast<uint16_t>(value[off + 2] << 8 | value[off + 3]);
    off += 4 + ((len + 3u) & ~3u);
    if (i >= std::size(kOffered) || alg != static_cast<uint16_t>(kOffered[i])) {
      return false;
    }
    ++i;
  }
  return off == value.size() && i == std::size(kOffered);
}

}  // namespace

Authenticator::Authenticator(const ServerConfig& config, std::span<const uint8_t> nonce_secret)
    : realm_(config.realm),
      open_(config.no_auth),
      use_auth_secret_(config.use_auth_secret),
      secrets_(config.static_auth_secrets),
      stale_nonce_seconds_(config.stale_nonce_seconds) {
  std::memcpy(nonce_secret_.data(), nonce_secret.data(),
              std::min(nonce_secret.size(), nonce_secret_.size()));
  for (const StaticUser& u : config.users) {
    User user;
    user.name = u.name;
    if (!u.key_hex.empty()) {
      std::string_view hex = u.key_hex;
      if (hex.starts_with("0x") || hex.starts_with("0X")) {
        hex.remove_prefix(2);
      }
      if (!ParseHexKey(hex, &user.md5_key)) {
        continue;  // the config parser already refused such a key
      }
    } else {
      user.md5_key = stun::LongTermKeyMd5(u.name, realm_, u.password);
      user.sha256_key = stun::LongTermKeySha256(u.name, realm_, u.password);
      user.has_sha256 = true;
    }
    users_[u.name] = std::move(user);
  }
  for (const auto& [name, user] : users_) {
    auto hash = stun::UserHash(name, realm_);
    by_userhash_[std::string(reinterpret_cast<const char*>(hash.data()), hash.size())] = name;
  }
  features_[0] = kFeaturePasswordAlgorithms;
  if (!by_userhash_.empty()) {
    features_[0] |= kFeatureUsernameAnonymity;
  }
  char encoded[kFeatureChars + 1];
  EVP_EncodeBlock(reinterpret_cast<uint8_t*>(encoded), features_.data(), 3);
  std::memcpy(feature_chars_.data(), encoded, kFeatureChars);
}

std::string Authenticator::RestPassword(std::string_view secret, std::string_view username) {
  uint8_t mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  HMAC(EVP_sha1(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const uint8_t*>(username.data()), username.size(), mac, &mac_len);
  return absl::Base64Escape(absl::string_view(reinterpret_cast<const char*>(mac), mac_len));
}

void Authenticator::NonceMac(bool full, uint32_t issued, const SocketAddress& client,
                             uint8_t out[kMacBytes]) const {
  uint8_t input[1 + 4 + 1 + 16 + 2];
  input[0] = full ? features_[0] : 0;  // the announced features (none in the short form)
  input[1] = static_cast<uint8_t>(issued >> 24);
  input[2] = static_cast<uint8_t>(issued >> 16);
  input[3] = static_cast<uint8_t>(issued >> 8);
  input[4] = static_cast<uint8_t>(issued);
  input[5] = static_cast<uint8_t>(client.ip.family);
  std::memcpy(input + 6, client.ip.bytes.data(), 16);
  input[22] = static_cast<uint8_t>(client.port >> 8);
  input[23] = static_cast<uint8_t>(client.port);
  uint8_t mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  HMAC(EVP_sha256(), nonce_secret_.data(), nonce_secret_.size(), input, sizeof(input), mac,
       &mac_len);
  std::memcpy(out, mac, kMacBytes);
}

size_t Authenticator::MakeNonce(const SocketAddress& client, uint64_t now_s, bool full,
                                char* out) const {
  char* p = out;
  if (full) {
    std::memcpy(p, kNonceCookie.data(), kNonceCookie.size());
    p += kNonceCookie.size();
    std::memcpy(p, feature_chars_.data(), kFeatureChars);
    p += kFeatureChars;
  }
  uint32_t issued = static_cast<uint32_t>(now_s);
  static constexpr char kHex[] = "0123456789abcdef";
  for (int i = 7; i >= 0; --i) {
    *p++ = kHex[(issued >> (4 * i)) & 0xF];
  }
  uint8_t mac[kMacBytes];
  NonceMac(full, issued, client, mac);
  char encoded[kMacChars + 1];  // EVP_EncodeBlock adds a NUL; 6 bytes -> 8 chars, no padding
  EVP_EncodeBlock(reinterpret_cast<uint8_t*>(encoded), mac, kMacBytes);
  std::memcpy(p, encoded, kMacChars);
  p += kMacChars;
  return static_cast<size_t>(p - out);
}

Authenticator::NonceCheck Authenticator::CheckNonce(std::string_view nonce,
                                                    const SocketAddress& client,
                                                    uint64_t now_s) const {
  bool full = false;
  if (nonce.size() == kNonceSize && nonce.starts_with(kNonceCookie)) {
    full = true;
    if (nonce.substr(kNonceCookie.size(), kFeatureChars) !=
        std::string_view(feature_chars_.data(), kFeatureChars)) {
      return NonceCheck::kInvalid;
    }
    nonce.remove_prefix(kNonceCookie.size() + kFeatureChars);
  } else if (nonce.size() != kShortNonceSize) {
    return NonceCheck::kInvalid;
  }
  std::string_view time_text = nonce.substr(0, kTimeChars);
  uint32_t issued = 0;
  for (char c : time_text) {  // lower-case hex only: one text per nonce
    int digit = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
    if (digit < 0) {
      return NonceCheck::kInvalid;
    }
    issued = issued << 4 | static_cast<uint32_t>(digit);
  }
  uint8_t mac[kMacBytes];
  NonceMac(full, issued, client, mac);
  char encoded[kMacChars + 1];
  EVP_EncodeBlock(reinterpret_cast<uint8_t*>(encoded), mac, kMacBytes);
  if (CRYPTO_memcmp(encoded, nonce.data() + kTimeChars, kMacChars) != 0) {
    return NonceCheck::kInvalid;
  }
  uint32_t now = static_cast<uint32_t>(now_s);
  // stale-nonce=0 means nonces never expire, as in coturn (the config warns about it).
  if (stale_nonce_seconds_ != 0 && now - issued >= stale_nonce_seconds_) {
    // unsigned arithmetic: a time in the future counts as stale too
    return NonceCheck::kStale;
  }
  return NonceCheck::kOk;
}

bool Authenticator::KeyFor(std::string_view username, PasswordAlgorithm alg,
                           const MessageView& request, AuthResult* result,
                           uint64_t wall_s) const {
  bool sha256 = result->sha256_mi;
  auto verify = [&](std::span<const uint8_t> key) {
    return sha256 ? request.CheckMessageIntegritySha256(key)
                  : request.CheckMessageIntegrity(key);
  };
  auto accept = [&](std::span<const uint8_t> key) {
    std::memcpy(result->key.bytes.data(), key.data(), key.size());
    result->key.size = static_cast<uint8_t>(key.size());
    result->status = AuthResult::Status::kOk;
  };

  auto it = users_.find(Absl(username));
  if (it != users_.end()) {
    const User& user = it->second;
    if (alg == PasswordAlgorithm::kSha256) {
      if (!user.has_sha256) {
        result->status = AuthResult::Status::kUnknownUser;
        return false;
      }
      if (!verify(user.sha256_key)) {
        result->status = AuthResult::Status::kBadIntegrity;
        return false;
      }
      accept(user.sha256_key);
      return true;
    }
    if (!verify(user.md5_key)) {
      result->status = AuthResult::Status::kBadIntegrity;
      return false;
    }
    accept(user.md5_key);
    return true;
  }

  if (!use_auth_secret_ || secrets_.empty()) {
    result->status = AuthResult::Status::kUnknownUser;
    return false;
  }
  // TURN REST: "expiry:userid" (the expiry may also be the whole name).
  std::string_view expiry_text = username.substr(0, username.find(':'));
  uint64_t expiry = 0;
  auto [end, ec] = std::from_chars(expiry_text.data(),
                                   expiry_text.data() + expiry_text.size(), expiry);
  if (ec != std::errc() || end != expiry_text.data() + expiry_text.size()) {
    result->status = AuthResult::Status::kUnknownUser;
    return false;
  }
  if (expiry < wall_s) {
    result->status = AuthResult::Status::kExpired;
    return false;
  }
  for (const std::string& secret : secrets_) {
    std::string password = RestPassword(secret, username);
    if (alg == PasswordAlgorithm::kSha256) {
      auto key = stun::LongTermKeySha256(username, realm_, password);
      if (verify(key)) {
        accept(key);
        return true;
      }
    } else {
      auto key = stun::LongTermKeyMd5(username, realm_, password);
      if (verify(key)) {
        accept(key);
        return true;
      }
    }
  }
  result->status = AuthResult::Status::kBadIntegrity;
  return false;
}

AuthResult Authenticator::Check(const MessageView& request, const SocketAddress& client,
                                uint64_t now_s, uint64_t wall_s) const {
  AuthResult result;
  if (open_) {
    result.status = AuthResult::Status::kOk;
    return result;
  }
  // RFC 8489 9.2.4: no integrity attribute -> challenge with REALM and NONCE.
  if (!request.HasMessageIntegrity() && !request.HasMessageIntegritySha256()) {
    result.status = AuthResult::Status::kChallenge;
    return result;
  }
  auto username = request.FindString(stun::attr::kUsername);
  auto userhash = request.FindValue(stun::attr::kUserhash);
  auto realm = request.FindString(stun::attr::kRealm);
  auto nonce = request.FindString(stun::attr::kNonce);
  if ((!username && !userhash) || !realm || !nonce) {
    result.status = AuthResult::Status::kBadRequest;
    return result;
  }
  switch (CheckNonce(*nonce, client, now_s)) {
    case NonceCheck::kOk:
      break;
    case NonceCheck::kStale:
    case NonceCheck::kInvalid:
      // An unknown or forged nonce is answered like a stale one: the client retries with the
      // fresh nonce we send, and we keep no state either way.
      result.status = AuthResult::Status::kStaleNonce;
      return result;
  }

  // Password algorithm negotiation (RFC 8489 9.2.4). A client that ignores the mechanism
  // (RFC 5389 clients, browsers today) sends neither attribute and gets MD5.
  PasswordAlgorithm alg = PasswordAlgorithm::kMd5;
  auto algorithms = request.FindValue(stun::attr::kPasswordAlgorithms);
  auto algorithm = request.FindU32(stun::attr::kPasswordAlgorithm);
  if (algorithms.has_value() != algorithm.has_value()) {
    result.status = AuthResult::Status::kBadRequest;
    return result;
  }
  if (algorithms) {
    uint16_t chosen = static_cast<uint16_t>(*algorithm >> 16);
    if (!MatchesOffered(*algorithms) ||
        (chosen != static_cast<uint16_t>(PasswordAlgorithm::kMd5) &&
         chosen != static_cast<uint16_t>(PasswordAlgorithm::kSha256))) {
      result.status = AuthResult::Status::kBadRequest;
      return result;
    }
    alg = static_cast<PasswordAlgorithm>(chosen);
  }
  result.sha256_mi = request.HasMessageIntegritySha256();

  std::string_view name;
  if (username) {
    name = *username;
  } else {
    if (userhash->size() != 32) {
      result.status = AuthResult::Status::kBadRequest;
      return result;
    }
    auto it = by_userhash_.find(
        absl::string_view(reinterpret_cast<const char*>(userhash->data()), userhash->size()));
    if (it == by_userhash_.end()) {
      result.status = AuthResult::Status::kUnknownUser;
      return result;
    }
    name = it->second;
  }
  result.username = name;
  KeyFor(name, alg, request, &result, wall_s);
  return result;
}

}  // namespace turnpike::turn
