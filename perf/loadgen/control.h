// Control side of the load generator: the per-allocation sockets and the TURN transactions that
// set allocations up (Allocate -> 401 -> authenticated Allocate -> ChannelBind) and tear them down
// (Refresh with LIFETIME 0). Many transactions are kept in flight at once over one epoll set, each
// retransmitted on timeout as RFC 8489 6.2.1 describes for UDP.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "perf/loadgen/options.h"
#include "turn/net/socket_address.h"
#include "turn/stun/message.h"

namespace turnpike::loadgen {

enum class Step : uint8_t {
  kIdle,
  kAllocateProbe,  // unauthenticated Allocate, expecting 401 with REALM and NONCE
  kAllocate,       // authenticated Allocate
  kChannelBind,
  kRefreshZero,  // Refresh LIFETIME=0 (RFC 8656 7)
  kDone,
  kFailed,
};

struct Allocation {
  int index = 0;
  int client_fd = -1;  // connected to the server
  int peer_fd = -1;    // bound on --peer-ip, connected to the relayed address once known
  SocketAddress peer_local;
  SocketAddress relayed;
  SocketAddress mapped;
  std::string username;
  std::string password;
  std::string realm;
  std::string nonce;
  std::array<uint8_t, 16> key{};
  bool have_key = false;
  uint16_t channel = stun::kMinChannel;
  bool ready = false;  // allocated and channel bound

  // The transaction in progress.
  Step step = Step::kIdle;
  stun::TransactionId txid{};
  std::array<uint8_t, 768> request{};
  size_t request_len = 0;
  int64_t deadline_ns = 0;
  int64_t rto_ns = 0;
  int transmissions = 0;
  int nonce_retries = 0;
  int reopen_retries = 0;
  int error_code = 0;  // last failure: STUN error code, or -1 timeout, -2 malformed
};

struct ControlStats {
  int ok = 0;
  int failed = 0;
  int timeouts = 0;
  int retransmits = 0;
  int integrity_failures = 0;  // responses whose MESSAGE-INTEGRITY did not check; dropped
  int reopened = 0;            // 437 on Allocate: retried from a new source port
  std::map<int, int> error_codes;
  double seconds = 0;
};

// Opens the client and peer sockets and fills in credentials for allocations [0, n).
absl::StatusOr<std::vector<Allocation>> CreateAllocations(const Options& options);

// TURN REST (draft-uberti-behave-turn-rest): password = base64(HMAC-SHA1(secret, username)).
std::string RestPassword(std::string_view secret, std::string_view username);

// Runs Allocate + ChannelBind for every allocation. Allocations that end ready have `ready` set.
ControlStats RunSetup(std::vector<Allocation>& allocations, const Options& options);
// Refresh(LIFETIME=0) for every ready allocation.
ControlStats RunTeardown(std::vector<Allocation>& allocations, const Options& options);

int64_t MonotonicNs();

}  // namespace turnpike::loadgen
