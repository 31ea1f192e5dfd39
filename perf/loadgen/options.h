// Command-line options of turnpike-loadgen, a TURN relay load generator on kernel UDP sockets.
// Every option is `--key=value`; see kUsage in options.cc for the meaning of each.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "turn/net/socket_address.h"

namespace turnpike::loadgen {

enum DirectionMask : unsigned { kClientToPeer = 1, kPeerToClient = 2, kBoth = 3 };

struct Options {
  SocketAddress server;
  int allocations = 100;
  // Total packets per second offered by the generator, counting both directions together:
  // with direction=both each direction gets rate/2.
  double rate = 10000;
  unsigned directions = kBoth;
  int size = 160;        // ChannelData payload bytes (the application data, without header)
  double duration = 10;  // measurement window, seconds
  double warmup = 2;     // traffic before the window, not counted
  double drain = 0.5;    // receive-only time after the last send
  std::string secret;    // TURN REST shared secret (username "expiry:loadgenK")
  std::string user;      // static long-term credentials when no secret
  std::string password;
  std::string realm;  // only checked against the one the server sends in its 401
  IpAddress peer_ip = IpAddress::Loopback(AddressFamily::kIPv4);
  int threads = 1;     // traffic threads; each sends and receives for its allocations
  int server_pid = 0;  // read /proc/PID/stat around the window when set
  bool json = false;
  int setup_window = 64;      // control transactions in flight during setup / teardown
  int rto_ms = 500;           // RFC 8489 6.2.1 initial RTO
  int max_transmissions = 7;  // RFC 8489 Rc
  bool use_uring = true;      // io=uring|syscall: how ChannelData / peer datagrams are sent
  int burst_us = 100;         // minimum spacing of send bursts
  bool teardown = true;       // Refresh(LIFETIME=0) for every allocation at the end
  int sock_buf = 4 << 20;     // SO_RCVBUF / SO_SNDBUF for every socket
};

extern const char kUsage[];

absl::StatusOr<Options> ParseOptions(int argc, char** argv);

}  // namespace turnpike::loadgen
