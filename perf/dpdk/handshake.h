// TURN set-up for the DPDK load generator, independent of the transport: for each allocation
// Allocate (expecting 401 with REALM and NONCE) -> Allocate with REST credentials ->
// ChannelBind to the allocation's own peer address, with a window of transactions in flight and
// RFC 8489 6.2.1 retransmissions. The caller moves the bytes: `send` is called with each request
// (first transmission and retransmissions), and responses are fed back with OnMessage. The
// requests and what responses mean are perf/common/turn_transaction.h's, as for
// perf/loadgen/control.cc (which is tied to kernel sockets and epoll); no sockets and no DPDK
// types here.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "perf/common/turn_transaction.h"
#include "turn/net/socket_address.h"
#include "turn/stun/message.h"

namespace turnpike::dpdkgen {

using Step = perf::TurnStep;  // kRefreshZero unused

struct TurnAllocation {
  uint32_t index = 0;
  SocketAddress client;   // our source address for this allocation
  SocketAddress peer;     // the peer address we ChannelBind to (ours too)
  SocketAddress relayed;  // XOR-RELAYED-ADDRESS from the server
  uint16_t channel = stun::kMinChannel;
  perf::TurnClient turn;  // credentials and the transaction in progress

  Step step = Step::kIdle;
  int64_t deadline_ns = 0;
  int64_t rto_ns = 0;
  int transmissions = 0;
  int error_code = 0;  // last failure: STUN error code, -1 timeout, -2 malformed / unexpected
};

struct HandshakeOptions {
  std::string secret;  // TURN REST shared secret (empty: `user` / `password` for everyone)
  std::string user;
  std::string password;
  std::string realm;
  int window = 256;          // transactions in flight
  int rto_ms = 250;          // initial RTO
  int max_transmissions = 7; // RFC 8489 Rc
};

struct HandshakeStats {
  int ok = 0;
  int failed = 0;
  int retransmits = 0;
  int integrity_failures = 0;
  std::map<int, int> error_codes;
};

class Handshakes {
 public:
  using SendFn = std::function<void(const TurnAllocation&, std::span<const uint8_t>)>;

  // Fills in usernames and passwords (REST: "<expiry>:dpdkgen<i>").
  Handshakes(std::vector<TurnAllocation>* allocations, HandshakeOptions options, SendFn send);

  // Starts transactions while the window has room and retransmits or fails those past their
  // deadline. Call often (every loop iteration is fine: it is cheap when nothing is due).
  void Poll(int64_t now_ns);
  // A datagram received on allocation `index`'s client address.
  void OnMessage(uint32_t index, std::span<const uint8_t> data, int64_t now_ns);

  bool done() const { return finished_ == allocations_->size(); }
  const HandshakeStats& stats() const { return stats_; }

 private:
  void Start(TurnAllocation& a, int64_t now_ns);
  void Transmit(TurnAllocation& a, int64_t now_ns);
  void Finish(TurnAllocation& a, bool ok, int code);

  std::vector<TurnAllocation>* allocations_;
  HandshakeOptions options_;
  SendFn send_;
  HandshakeStats stats_;
  std::vector<uint32_t> active_;
  size_t next_ = 0;
  size_t finished_ = 0;
  int in_flight_ = 0;
  int64_t next_check_ns_ = 0;
  uint64_t rng_state_;
};

}  // namespace turnpike::dpdkgen
