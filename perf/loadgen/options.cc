#include "perf/loadgen/options.h"

#include <charconv>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace turnpike::loadgen {

const char kUsage[] = R"(turnpike-loadgen --server=IP:PORT [--key=value ...]

TURN (RFC 8656) load generator over UDP on kernel sockets. Sets up N allocations, each with a
client socket connected to the server and a peer socket on --peer-ip bound to the allocation by
ChannelBind, then sends ChannelData client->peer and plain UDP peer->client at a fixed rate and
measures delivery, loss and one-way latency (sender and receiver share CLOCK_MONOTONIC).

  --server=IP:PORT        TURN server (loopback only)
  --allocations=N         allocations (default 100)
  --rate=PPS              TOTAL packets/s offered, both directions together: with
                          --direction=both each direction gets PPS/2 (default 10000)
  --direction=both|c2p|p2c  c2p = ChannelData client->peer, p2c = UDP peer->client
  --size=BYTES            ChannelData payload bytes, >= 24 (default 160)
  --duration=S            measurement window (default 10)
  --warmup=S              traffic before the window, not counted (default 2)
  --drain=S               receive-only wait after the last send (default 0.5)
  --secret=S              TURN REST secret: username "<expiry>:loadgenK",
                          password base64(HMAC-SHA1(secret, username))
  --user=U --password=P   static long-term credentials instead of --secret
  --realm=R               expected realm (the one from the server's 401 is used)
  --peer-ip=IP            address of the peer sockets (default 127.0.0.1)
  --threads=N             traffic threads, each sending and receiving (default 1)
  --server-pid=PID        report the server's CPU seconds over the window
  --json=0|1              also print a JSON result line
  --setup-window=N        control transactions in flight (default 64)
  --rto-ms=MS             initial retransmission timeout (default 500, RFC 8489)
  --max-transmissions=N   Rc, transmissions per request before giving up (default 7)
  --io=uring|syscall      how data packets are sent (default uring)
  --burst-us=US           minimum spacing of send bursts (default 100)
  --teardown=0|1          Refresh(lifetime 0) every allocation at the end (default 1)
  --sock-buf=BYTES        socket buffer sizes (default 4194304)
)";

namespace {

// This Abseil build keeps its own string_view type, distinct from std::string_view.
absl::string_view Absl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

template <typename T>
absl::Status ParseNumber(std::string_view key, std::string_view value, T* out) {
  bool ok;
  if constexpr (std::is_floating_point_v<T>) {
    ok = absl::SimpleAtod(Absl(value), out);
  } else {
    ok = absl::SimpleAtoi(Absl(value), out);
  }
  if (!ok) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", Absl(key), ": not a number: ", Absl(value)));
  }
  return absl::OkStatus();
}

absl::Status ParseBool(std::string_view key, std::string_view value, bool* out) {
  if (value == "1" || value == "true" || value == "yes" || value.empty()) {
    *out = true;
  } else if (value == "0" || value == "false" || value == "no") {
    *out = false;
  } else {
    return absl::InvalidArgumentError(absl::StrCat("--", Absl(key), ": expected 0 or 1"));
  }
  return absl::OkStatus();
}

bool IsLoopback(const IpAddress& ip) {
  if (ip.is_v4()) return ip.bytes[0] == 127;
  return ip == IpAddress::Loopback(AddressFamily::kIPv6);
}

}  // namespace

absl::StatusOr<Options> ParseOptions(int argc, char** argv) {
  Options o;
  bool have_server = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      return absl::CancelledError("help");
    }
    if (arg.substr(0, 2) != "--") {
      return absl::InvalidArgumentError(absl::StrCat("unexpected argument: ", Absl(arg)));
    }
    arg.remove_prefix(2);
    std::string_view key = arg, value;
    if (size_t eq = arg.find('='); eq != std::string_view::npos) {
      key = arg.substr(0, eq);
      value = arg.substr(eq + 1);
    }
    absl::Status st;
    if (key == "server") {
      auto a = SocketAddress::Parse(value);
      if (!a)
        return absl::InvalidArgumentError(absl::StrCat("--server: bad address ", Absl(value)));
      o.server = *a;
      have_server = true;
    } else if (key == "allocations") {
      st = ParseNumber(key, value, &o.allocations);
    } else if (key == "rate") {
      st = ParseNumber(key, value, &o.rate);
    } else if (key == "direction") {
      if (value == "both") {
        o.directions = kBoth;
      } else if (value == "c2p") {
        o.directions = kClientToPeer;
      } else if (value == "p2c") {
        o.directions = kPeerToClient;
      } else {
        return absl::InvalidArgumentError("--direction: both, c2p or p2c");
      }
    } else if (key == "size") {
      st = ParseNumber(key, value, &o.size);
    } else if (key == "duration") {
      st = ParseNumber(key, value, &o.duration);
    } else if (key == "warmup") {
      st = ParseNumber(key, value, &o.warmup);
    } else if (key == "drain") {
      st = ParseNumber(key, value, &o.drain);
    } else if (key == "secret") {
      o.secret = value;
    } else if (key == "user") {
      o.user = value;
    } else if (key == "password") {
      o.password = value;
    } else if (key == "realm") {
      o.realm = value;
    } else if (key == "peer-ip") {
      auto ip = IpAddress::Parse(value);
      if (!ip)
        return absl::InvalidArgumentError(absl::StrCat("--peer-ip: bad address ", Absl(value)));
      o.peer_ip = *ip;
    } else if (key == "threads") {
      st = ParseNumber(key, value, &o.threads);
    } else if (key == "server-pid") {
      st = ParseNumber(key, value, &o.server_pid);
    } else if (key == "json") {
      st = ParseBool(key, value, &o.json);
    } else if (key == "setup-window") {
      st = ParseNumber(key, value, &o.setup_window);
    } else if (key == "rto-ms") {
      st = ParseNumber(key, value, &o.rto_ms);
    } else if (key == "max-transmissions") {
      st = ParseNumber(key, value, &o.max_transmissions);
    } else if (key == "io") {
      if (value != "uring" && value != "syscall") {
        return absl::InvalidArgumentError("--io: uring or syscall");
      }
      o.use_uring = value == "uring";
    } else if (key == "burst-us") {
      st = ParseNumber(key, value, &o.burst_us);
    } else if (key == "teardown") {
      st = ParseBool(key, value, &o.teardown);
    } else if (key == "sock-buf") {
      st = ParseNumber(key, value, &o.sock_buf);
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unknown option --", Absl(key)));
    }
    if (!st.ok()) return st;
  }
  if (!have_server) return absl::InvalidArgumentError("--server=IP:PORT is required");
  // Network rule of the project: the generator only ever talks to loopback.
  if (!IsLoopback(o.server.ip) || !IsLoopback(o.peer_ip)) {
    return absl::InvalidArgumentError("--server and --peer-ip must be loopback addresses");
  }
  if (o.server.ip.family != o.peer_ip.family) {
    return absl::InvalidArgumentError("--server and --peer-ip must be the same address family");
  }
  if (o.allocations < 1 || o.allocations > 60000) {
    return absl::InvalidArgumentError("--allocations: 1..60000");
  }
  if (o.size < 24 || o.size > 1400) return absl::InvalidArgumentError("--size: 24..1400");
  if (o.rate <= 0 || o.duration <= 0 || o.warmup < 0 || o.drain < 0) {
    return absl::InvalidArgumentError("--rate and --duration must be > 0, warmup/drain >= 0");
  }
  if (o.threads < 1 || o.threads > 64) return absl::InvalidArgumentError("--threads: 1..64");
  if (o.threads > o.allocations) o.threads = o.allocations;
  if (o.secret.empty() && (o.user.empty() || o.password.empty())) {
    return absl::InvalidArgumentError("give --secret or --user and --password");
  }
  if (o.setup_window < 1 || o.rto_ms < 1 || o.max_transmissions < 1 || o.burst_us < 1) {
    return absl::InvalidArgumentError(
        "--setup-window, --rto-ms, --max-transmissions, "
        "--burst-us must be >= 1");
  }
  return o;
}

}  // namespace turnpike::loadgen
