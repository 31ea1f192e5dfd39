// Control side of the load generator: the per-allocation sockets and the TURN transactions that
// set allocations up (Allocate -> 401 -> authenticated Allocate -> ChannelBind) and tear them down
// (Refresh with LIFETIME 0). Many transactions are kept in flight at once over one epoll set, each
// retransmitted on timeout as RFC 8489 6.2.1 describes for UDP. The requests and what responses
// mean are perf/common/turn_transaction.h's, shared with the DPDK generator.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "perf/common/turn_transaction.h"
#include "perf/loadgen/options.h"
#include "turn/net/socket_address.h"
#include "turn/stun/message.h"

namespace turnpike::loadgen {

using Step = perf::TurnStep;

struct Allocation {
  int index = 0;
  int client_fd = -1;  // connected to the server
  int peer_fd = -1;    // bound on --peer-ip, connected to the relayed address once known
  SocketAddress peer_local;
  SocketAddress relayed;
  SocketAddress mapped;
  perf::TurnClient turn;  // credentials and the transaction in progress
  uint16_t channel = stun::kMinChannel;
  bool ready = false;  // allocated and channel bound

  // The transaction in progress.
  Step step = Step::kIdle;
  int64_t deadline_ns = 0;
  int64_t rto_ns = 0;
  int transmissions = 0;
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

// Runs Allocate + ChannelBind for every allocation. Allocations that end ready have `ready` set.
ControlStats RunSetup(std::vector<Allocation>& allocations, const Options& options);
// Refresh(LIFETIME=0) for every ready allocation.
ControlStats RunTeardown(std::vector<Allocation>& allocations, const Options& options);

int64_t MonotonicNs();

}  // namespace turnpike::loadgen
