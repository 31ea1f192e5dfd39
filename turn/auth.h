// Long-term credential checks for TURN requests (RFC 8489 9.2) with static users and the TURN
// REST API scheme (draft-uberti-behave-turn-rest-00: username "expiry:user", password
// base64(HMAC-SHA1(secret, username))), plus stateless nonces: no per-client state is kept
// before a request authenticates.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "turn/config.h"
#include "turn/net/socket_address.h"
#include "turn/stun/message.h"

namespace turnpike::turn {

// The key for one request: MD5 (16 bytes) or SHA-256 (32 bytes) per PASSWORD-ALGORITHM.
struct AuthKey {
  std::array<uint8_t, 32> bytes{};
  uint8_t size = 0;
  std::span<const uint8_t> span() const { return {bytes.data(), size}; }
};

struct AuthResult {
  enum class Status : uint8_t {
    kOk,
    kChallenge,       // no credentials: 401 with REALM and NONCE
    kBadIntegrity,    // 401
    kUnknownUser,     // 401
    kExpired,         // 401 (REST username past expiry)
    kStaleNonce,      // 438
    kBadRequest,      // 400
  };
  Status status = Status::kChallenge;
  AuthKey key;              // valid when kOk
  bool sha256_mi = false;   // request used MESSAGE-INTEGRITY-SHA256: answer with it too
  std::string_view username;  // into the request, or into the user table for USERHASH
};

class Authenticator {
 public:
  // `nonce_secret`: 32 random bytes per process (nonces do not survive restarts, which only
  // costs clients one 438 round trip).
  Authenticator(const ServerConfig& config, std::span<const uint8_t> nonce_secret);

  // Checks a request's credentials. `now_s` is monotonic seconds for the nonce, `wall_s` the
  // UNIX time for REST username expiry.
  AuthResult Check(const stun::MessageView& request, const SocketAddress& client, uint64_t now_s,
                   uint64_t wall_s) const;

  // Writes a fresh nonce for `client` into `out` (at least kNonceSize bytes) and returns its
  // length. `full` announces the RFC 8489 security features (the "obMatJos2" cookie, 29
  // characters); the short form (16) leaves them out, for responses that must stay small.
  // Both are stateless: issue time and an HMAC over it and the client's address and port.
  static constexpr size_t kNonceSize = 29;
  size_t MakeNonce(const SocketAddress& client, uint64_t now_s, bool full, char* out) const;

  std::string_view realm() const { return realm_; }
  bool open() const { return open_; }

  // TURN REST password for `username` under `secret`.
  static std::string RestPassword(std::string_view secret, std::string_view username);

 private:
  enum class NonceCheck : uint8_t { kOk, kStale, kInvalid };
  NonceCheck CheckNonce(std::string_view nonce, const SocketAddress& client,
                        uint64_t now_s) const;
  void NonceMac(bool full, uint32_t issued, const SocketAddress& client, uint8_t out[6]) const;
  bool KeyFor(std::string_view username, stun::PasswordAlgorithm alg,
              const stun::MessageView& request, AuthResult* result, uint64_t wall_s) const;

  struct User {
    std::string name;
    std::array<uint8_t, 16> md5_key{};
    std::array<uint8_t, 32> sha256_key{};
    bool has_sha256 = false;  // false for `user=name:0xKEY` (password unknown)
  };

  std::string realm_;
  bool open_ = false;
  bool use_auth_secret_ = false;
  std::vector<std::string> secrets_;
  uint32_t stale_nonce_seconds_;  // 0: never stale
  std::array<uint8_t, 32> nonce_secret_{};
  std::array<uint8_t, 3> features_{};     // RFC 8489 18.6.1 security feature bits
  std::array<char, 4> feature_chars_{};   // their base64, as the nonce carries them
  absl::flat_hash_map<std::string, User> users_;
  // 32-byte binary USERHASH -> user name. Names, not pointers: flat_hash_map moves its values.
  absl::flat_hash_map<std::string, std::string> by_userhash_;
};

}  // namespace turnpike::turn
