// The TURN client side that the load generators share (perf/loadgen on kernel sockets,
// perf/dpdk on DPDK): the requests that set an allocation up and tear it down, and what a
// response to the request in progress means. The generators move the bytes and keep the
// retransmission timers (RFC 8489 6.2.1) themselves.
//
//   kAllocateProbe (no credentials) --401 + REALM + NONCE--> kAllocate --> kChannelBind
//   kRefreshZero (LIFETIME 0, RFC 8656 7) to release it
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>

#include "turn/net/socket_address.h"
#include "turn/stun/message.h"

namespace turnpike::perf {

// Where one allocation's set-up or tear-down stands; the middle four are requests.
enum class TurnStep : uint8_t {
  kIdle,
  kAllocateProbe,  // unauthenticated Allocate, expecting 401 with REALM and NONCE
  kAllocate,       // authenticated Allocate
  kChannelBind,
  kRefreshZero,  // Refresh LIFETIME=0 (RFC 8656 7)
  kDone,
  kFailed,
};

// One allocation's credentials and its transaction in progress.
struct TurnClient {
  std::string username;
  std::string password;
  std::string realm;  // the configured one, then the server's
  std::string nonce;
  std::array<uint8_t, 16> key{};  // long-term credential key, once realm and nonce are known
  bool have_key = false;
  int nonce_retries = 0;  // 438 Stale Nonce answers taken (at most kMaxNonceRetries)
  stun::TransactionId txid{};
  std::array<uint8_t, 768> request{};
  size_t request_len = 0;
};

inline constexpr int kMaxNonceRetries = 3;

// Builds the request of step `what` into client.request with a fresh transaction id (from
// `random`): the channel and peer for kChannelBind, credentials on everything but the probe.
// False when it does not fit (a username or realm too long) or `what` is not a request.
bool BuildTurnRequest(TurnClient& client, TurnStep what, uint16_t channel,
                      const SocketAddress& peer, const std::function<uint64_t()>& random);

struct TurnResponse {
  enum class Kind : uint8_t {
    kIgnore,     // not a response to the transaction in progress, or its integrity failed
    kSuccess,    // relayed / mapped set for an Allocate
    kSendAgain,  // 401 to the probe, or 438: realm, nonce and key updated; send kAllocate
                 // (for the probe) or the same request again
    kError,      // code: the STUN error code, or -2 (malformed, or no XOR-RELAYED-ADDRESS)
  };
  Kind kind = Kind::kIgnore;
  int code = 0;
  bool integrity_failure = false;  // kIgnore: MESSAGE-INTEGRITY did not check (RFC 8489 9.2.4)
  std::optional<SocketAddress> relayed;
  std::optional<SocketAddress> mapped;
};

// What `data` (a datagram from the server) means for the request of step `what` in progress.
TurnResponse OnTurnResponse(TurnClient& client, TurnStep what, std::span<const uint8_t> data);

}  // namespace turnpike::perf
