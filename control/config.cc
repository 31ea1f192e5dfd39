// turnpiked's configuration reader: coturn's turnserver.conf syntax and option names, so an
// operator can point Turnpike at the file coturn used, plus the same options on the command line.
// Runs once at start-up on the main thread; nothing here is on the packet path.
//
// File syntax, as coturn's read_config_file() accepts it: one option per line; the key ends at
// the first space, tab or '='; the value starts after that run of separators; a line whose first
// non-blank character is '#' is a comment (a '#' later in the line is part of the value, since
// coturn keeps it and passwords may contain it); a value that starts with a double quote loses
// it and any trailing double quotes.

#include "control/config.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_format.h"

namespace turnpike {
namespace {

// absl::StrCat and friends take absl::string_view, which in this Abseil build is not
// std::string_view; these small helpers keep the file on std::string_view.
std::string Cat(std::initializer_list<std::string_view> parts) {
  std::string out;
  for (std::string_view p : parts) {
    out.append(p);
  }
  return out;
}

std::string ToLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

std::string_view Strip(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) {
    s.remove_prefix(1);
  }
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) {
    s.remove_suffix(1);
  }
  return s;
}

// How an option takes its value (getopt_long's no_argument / required_argument /
// optional_argument, which coturn uses).
enum class Arity : uint8_t { kFlag, kValue, kOptionalValue };

// Where an option was given, for error messages: "at FILE:LINE" or "(command line)".
struct Where {
  std::string_view file;  // empty: the command line
  int line = 0;

  std::string ToString() const {
    if (file.empty()) {
      return "(command line)";
    }
    return Cat({"at ", file, ":", std::to_string(line)});
  }
};

// Parsing state that outlives one file or one command line: LoadConfig reads the file, then
// the command line, then settles the options whose meaning depends on others.
struct ParseState {
  LoadedConfig* out = nullptr;
  bool command_line = false;
  absl::flat_hash_set<std::string> given;           // option names seen, file or command line
  absl::flat_hash_set<std::string> cleared_by_cli;  // repeatable lists the command line reset
  absl::flat_hash_set<std::string> warned;          // one warning per ignored option
  bool syslog = false;                              // coturn's `syslog` beats `log-file`
};

// A setter for a valued option: parses `value` into the config, or returns false with a short
// reason in `detail` (may stay empty) for the caller to wrap into "bad value ... for ...".
using ValueSetter = bool (*)(std::string_view value, ParseState& s, std::string* detail);
using FlagSetter = void (*)(bool value, ParseState& s);
using ListClearer = void (*)(ServerConfig& c);

struct Option {
  std::string_view name;
  Arity arity;
  std::string_view placeholder;  // for Usage(); empty for flags
  std::string_view help;
  FlagSetter set_flag = nullptr;    // kFlag
  ValueSetter set_value = nullptr;  // kValue, kOptionalValue (an empty value means bare)
  ListClearer clear = nullptr;      // repeatable: the command line replaces the file's list
};

bool ParseUnsigned(std::string_view text, uint64_t min, uint64_t max, uint64_t* out,
                   std::string* detail) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) {
    *detail = "expected a whole number";
    return false;
  }
  if (v < min || v > max) {
    *detail = Cat({"expected ", std::to_string(min), "..", std::to_string(max)});
    return false;
  }
  *out = v;
  return true;
}

template <typename T>
bool SetUnsigned(std::string_view text, uint64_t min, uint64_t max, T* field, std::string* detail) {
  uint64_t v = 0;
  if (!ParseUnsigned(text, min, max, &v, detail)) {
    return false;
  }
  *field = static_cast<T>(v);
  return true;
}

std::optional<bool> ParseBool(std::string_view text) {
  // coturn's get_bool_value() also takes on/off; an empty value is a bare key.
  std::string lower = ToLower(text);
  if (lower.empty() || lower == "true" || lower == "1" || lower == "yes" || lower == "on") {
    return true;
  }
  if (lower == "false" || lower == "0" || lower == "no" || lower == "off") {
    return false;
  }
  return std::nullopt;
}

bool ParseIp(std::string_view text, IpAddress* out, std::string* detail) {
  auto ip = IpAddress::Parse(text);
  if (!ip) {
    *detail = "not an IP address";
    return false;
  }
  *out = *ip;
  return true;
}

bool AddRange(std::string_view text, std::vector<IpRange>* list, std::string* detail) {
  auto range = ParseIpRange(text);
  if (!range.ok()) {
    *detail = std::string(range.status().message());
    return false;
  }
  list->push_back(*range);
  return true;
}

bool IsHex(std::string_view s) {
  for (char ch : s) {
    if (!std::isxdigit(static_cast<unsigned char>(ch))) {
      return false;
    }
  }
  return true;
}

bool ParseUser(std::string_view text, StaticUser* out, std::string* detail) {
  size_t colon = text.find(':');
  if (colon == std::string_view::npos) {
    *detail = "expected name:password or name:0xKEY";
    return false;
  }
  std::string_view name = text.substr(0, colon);
  std::string_view secret = text.substr(colon + 1);
  if (name.empty()) {
    *detail = "empty user name";
    return false;
  }
  if (name.size() > 512) {  // RFC 8489 14.3: USERNAME is less than 513 bytes
    *detail = "user name longer than 512 bytes";
    return false;
  }
  if (secret.empty()) {
    *detail = "empty password";
    return false;
  }
  out->name = std::string(name);
  out->password.clear();
  out->key_hex.clear();
  if (secret.size() > 2 && secret[0] == '0' && (secret[1] == 'x' || secret[1] == 'X')) {
    // coturn reads a 0x value as the hex MD5 key, never as a password.
    std::string_view hex = secret.substr(2);
    if (hex.size() != 32 || !IsHex(hex)) {
      *detail = "a 0x key needs exactly 32 hex digits (hex MD5 of name:realm:password)";
      return false;
    }
    out->key_hex = ToLower(hex);
  } else {
    out->password = std::string(secret);
  }
  return true;
}

bool ParseExternalIp(std::string_view text, ExternalIp* out, std::string* detail) {
  size_t slash = text.find('/');
  std::string_view pub = text.substr(0, slash);
  if (!ParseIp(pub, &out->public_ip, detail)) {
    *detail = "expected PUBLIC-IP or PUBLIC-IP/PRIVATE-IP";
    return false;
  }
  out->has_private = slash != std::string_view::npos;
  if (out->has_private) {
    if (!ParseIp(text.substr(slash + 1), &out->private_ip, detail)) {
      *detail = "expected PUBLIC-IP or PUBLIC-IP/PRIVATE-IP";
      return false;
    }
    if (out->private_ip.family != out->public_ip.family) {
      *detail = "public and private addresses differ in family";
      return false;
    }
  }
  return true;
}

ServerConfig& Cfg(ParseState& s) { return s.out->config; }

// Every option Turnpike implements, coturn's name where coturn has one. Usage() and
// docs/configuration.md follow this table.
const Option kOptions[] = {
    // Listening and relaying.
    {"listening-ip", Arity::kValue, "IP", "address to listen on (repeatable; default: all)",
     nullptr,
     [](std::string_view v, ParseState& s, std::string* d) {
       IpAddress ip;
       if (!ParseIp(v, &ip, d)) {
         return false;
       }
       Cfg(s).listening_ips.push_back(ip);
       return true;
     },
     [](ServerConfig& c) { c.listening_ips.clear(); }},
    {"listening-port", Arity::kValue, "PORT", "UDP port for STUN/TURN (default 3478)", nullptr,
     [](std::string_view v, ParseState& s, std::string* d) {
       return SetUnsigned(v, 0, 65535, &Cfg(s).listening_port, d);
     }},
    {"relay-ip", Arity::kValue, "IP", "local address for relay sockets (repeatable)", nullptr,
     [](std::string_view v, ParseState& s, std::string* d) {
       IpAddress ip;
       if (!ParseIp(v, &ip, d)) {
         return false;
       }
       Cfg(s).relay_ips.push_back(ip);
       return true;
     },
     [](ServerConfig& c) { c.relay_ips.clear(); }},
    {"external-ip", Arity::kValue, "PUBLIC[/PRIVATE]",
     "address reported in XOR-RELAYED-ADDRESS behind 1:1 NAT (repeatable)", nullptr,
     [](std::string_view v, ParseState& s, std::string* d) {
       ExternalIp e;
       if (!ParseExternalIp(v, &e, d)) {
         return false;
       }
       Cfg(s).external_ips.push_back(e);
       return true;
     },
     [](ServerConfig& c) { c.external_ips.clear(); }},
    {"min-port", Arity::kValue, "PORT", "lowest relay port (default 20000)", nullptr,
     [](std::string_view v, ParseState& s, std::string* d) {
       return SetUnsigned(v, 1, 65535, &Cfg(s).min_port, d);
     }},
    {"max-port", Arity::kValue, "PORT", "highest relay port (default 29999)", nullptr,
     [](std::string_view v, ParseState& s, std::string* d) {
       return SetUnsigned(v, 1, 65535, &Cfg(s).max_port, d);
     }},

    // Stream transports: TURN over TCP and TLS (RFC 8656 3.1).
    {"no-udp", Arity::kFlag, "", "no UDP listener (relaying stays UDP)",
     [](bool v, ParseState& s) { Cfg(s).no_udp = v; }},
    {"no-tcp", Arity::kFlag, "", "no TCP listener on listening-port",
     [](bool v, ParseState& s) { Cfg(s).no_tcp = v; }},
    {"no-tls", Arity::kFlag, "", "no TLS listener even when cert is given",
     [](bool v, ParseState& s) { Cfg(s).no_tls = v; }},
    {"tls-listening-port", Arity::kValue, "PORT",
     "TLS port for TURN, used when cert is given (default 443; coturn's is 5349)", nullptr,
     [](std::string_view v, ParseState& s, std::string* d) {
       return SetUnsigned(v, 0, 65535, &Cfg(s).tls_listening_port, d);
     }},
    {"cert", Arity::kValue, "PATH", "TLS certificate chain, PEM, leaf first (turns TLS on)",
     nullptr,
     [](std::string_view v, ParseState& s, std::string*) {
       Cfg(s).cert_file = std::string(v);
       return true;
     }},
    {"pkey", Arity::kValue, "PATH", "TLS private key, PEM (default: the cert file)", nullptr,
     [](std::string_view v, ParseState& s, std::string*) {
       Cfg(s).pkey_file = std::string(v);
       return true;
     }},
    {"pkey-pwd", Arity::kValue, "PASSWORD", "password of an encrypted pkey", nullptr,
     [](std::string_view v, ParseState& s, std::string*) {
       Cfg(s).pkey_password = std::string(v);
       return true;
     }},
    {"cipher-list", Arity::kValue, "CIPHERS",
     "TLS 1.2 cipher suites, OpenSSL syntax (default: OpenSSL's)", nullptr,
     [](std::string_view v, ParseState& s, std::string*) {
       Cfg(s).cipher_list = std::string(v);
       return true;
     }},
    {"no-tlsv1_2", Arity::kFlag, "", "TLS 1.3 only (TLS 1.0/1.1 are never offered)",
     [](bool v, ParseState& s) { Cfg(s).no_tlsv1_2 = v; }},
    {"stream-max-connections", Arity::kValue, "N",
     "TCP+TLS connections on this node (default 20000)", nullptr,
     [](std::string_view v, ParseState& s, std::string* d) {
       return SetUnsigned(v, 1, 10'000'000, &Cfg(s).stream_max_connections, d);
     }},
    {"stream-max-per-ip", Arity::kValue, "N",
     "TCP+TLS connections from one client IP (default 100)", nullptr,
     [](std::string_view v, ParseState& s, std::string* d) {
       return SetUnsigned(v, 1, 10'000'000, &Cfg(s).stream_max_per_ip, d);
     }},
    {"stream-handshake-timeout", Arity::kValue, "SECONDS",
     "time to finish TLS and send a first whole TURN message (default 10)", nullptr,
     [](std::string_view v, ParseState& s, std::string* d) {
       return SetUnsigned(v, 1, 3600, &Cfg(s).stream_handshake_timeout, d);
     }},
    {"stream-idle-timeout", Arity::kValue, "SECONDS",
     "idle time before closing a connection without an allocation (default 60)", nullptr,
     [](std::string_view v, ParseState& s, std::string* d) {
       return SetUnsigned(v, 1, 86400, &Cfg(s).stream_idle_timeout, d);
     }},

    // Authentication.
    {"realm", Arity::kValue, "REALM", "realm for long-term credentials (default turnpike.local)",
     nullptr,
     [](std::string_view v, ParseState& s, std::string* d) {
       if (v.size() > 763) {  // RFC 8489 14.9: fewer than 128 characters, at most 763 bytes
         *d = "longer than 763 bytes";
         return false;
       }
       for (char ch : v) {
         if (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f) {
           *d = "contains a control character";
           return false;
         }
       }
       Cfg(s).realm = std::string(v);
       return true;
     }},
    {"lt-cred-mech", Arity::kFlag, "", "long-term credentials with user= accounts",
     [](bool v, ParseState& s) { Cfg(s).lt_cred_mech = v; }},
    {"use-auth-secret", Arity::kFlag, "", "TURN REST API credentials from static-auth-secret",
     [](bool v, ParseState& s) { Cfg(s).use_auth_secret = v; }},
    {"static-auth-secret", Arity::kValue, "SECRET",
     "TURN REST API shared secret (repeatable: the first mints, all verify)", nullptr,
     [](std::string_view v, ParseState& s, std::string*) {
       Cfg(s).static_auth_secrets.emplace_back(v);
       return true;
     },
     [](ServerConfig& c) { c.static_auth_secrets.clear(); }},
    {"user", Arity::kValue, "NAME:PASSWORD|NAME:0xKEY", "static long-term user (repeatable)",
     nullptr,
     [](std::string_view v, ParseState& s, std::string* d) {
       StaticUser u;
       if (!ParseUser(v, &u, d)) {
         return false;
       }
       Cfg(s).users.push_back(std::move(u));
       return true;
     },
     [](ServerConfig& c) { c.users.clear(); }},
    {"no-auth", Arity::kFlag, "", "no authentication at all: an open relay, for tests only",
     [](bool v, ParseState& s) { Cfg(s).no_auth = v; }},
    {"stale-nonce", Arity::kOptionalValue, "SECONDS", "nonce lifetime (bare: 600)", nullptr,
     [](std::string_view v, ParseState& s, std::string* d) {
       if (v.empty()) {
         Cfg(s).stale_nonce_seconds = 600;
         return true;
       }
       return SetUnsigned(v, 0, 86400, &Cfg(s).stale_nonce_seconds, d);
     }},

    // Peer address policy.
    {"denied-peer-ip", Arity::kValue, "IP|IP-IP|IP/LEN",
     "peer addresses to refuse, checked before the built-in list (repeatable)", nullptr,
     [](std::string_view v, ParseState& s, std::string* d) {
       return AddRange(v, &Cfg(s).denied_peer_ips, d);
     },
     [](ServerConfig& c) { c.denied_peer_ips.clear(); }},
    {"allowed-peer-ip", Arity::kValue, "IP|IP-IP|IP/LEN",
     "peer addresses to allow even if denied (repeatable)", nullptr,
     [](std::string_view v, ParseState& s, std::string* d) {
       return AddRange(v, &Cfg(s).allowed_peer_ips, d);
     },
     [](ServerConfig& c) { c.allowed_peer_ips.clear(); }},
    {"allow-loopback-peers", Arity::kFlag, "", "let clients relay to 127.0.0.0/8 and ::1",
     [](bool v, ParseState& s) { Cfg(s).allow_loopback_peers = v; }},
    {"no-multicast-peers", Arity::kFlag, "", "refuse multicast peers (always the case)",
     [](bool v, ParseState& s) { Cfg(s).no_multicast_peers = v; }},

    // Lifetimes and limits.
    {"default-allocate-lifetime", Arity::kValue, "SECONDS",
     "allocation lifetime when the client asks none (default 600)", nullptr,
     [](std::string_view v, ParseState& s, std::string* d) {
       return SetUnsigned(v, 1, 86400, &Cfg(s).default_allocate_lifetime, d);
     }},
    {"max-allocate-lifetime", Arity::kValue, "SECONDS", "longest allocation lifetime (3600)",
     nullptr,
     [](std::string_view v, ParseState& s, std::string* d) {
       return SetUnsigned(v, 1, 86400, &Cfg(s).max_allocate_lifetime, d);
     }},
    {"permission-lifetime", Arity::kValue, "SECONDS", "permission lifetime (300, RFC 8656)",
     nullptr,
     [](std::string_view v, ParseState& s, std::string* d) {
       return SetUnsigned(v, 1, 86400, &Cfg(s).permission_lifetime, d);
     }},
    {"channel-lifetime", Arity::kValue, "SECONDS", "channel binding lifetime (600, RFC 8656)",
     nullptr,
     [](std::string_view v, ParseState& s, std::string* d) {
       return SetUnsigned(v, 1, 86400, &Cfg(s).channel_lifetime, d);
     }},
    {"user-quota", Arity::kValue, "N", "allocations per user (0: unlimited)", nullptr,
     [](std::string_view v, ParseState& s, std::string* d) {
       return SetUnsigned(v, 0, std::numeric_limits<uint32_t>::max(), &Cfg(s).user_quota, d);
     }},
    {"total-quota", Arity::kValue, "N", "allocations on this node (0: unlimited)", nullptr,
     [](std::string_view v, ParseState& s, std::string* d) {
       return SetUnsigned(v, 0, std::numeric_limits<uint32_t>::max(), &Cfg(s).total_quota, d);
     }},
    {"max-bps", Arity::kValue, "BYTES", "bytes per second per allocation (0: unlimited)", nullptr,
     [](std::string_view v, ParseState& s, std::string* d) {
       return SetUnsigned(v, 0, std::numeric_limits<uint64_t>::max(), &Cfg(s).max_bps, d);
     }},
    {"bps-capacity", Arity::kValue, "BYTES",
     "relayed bytes per second on this node, each direction (0: unlimited)", nullptr,
     [](std::string_view v, ParseState& s, std::string* d) {
       return SetUnsigned(v, 0, std::numeric_limits<uint64_t>::max(), &Cfg(s).bps_capacity, d);
     }},
    {"max-allocations", Arity::kValue, "N", "allocation table size (default 32768)", nullptr,
     [](std::string_view v, ParseState& s, std::string* d) {
       return SetUnsigned(v, 1, 1u << 24, &Cfg(s).max_allocations, d);
     }},
    {"unauth-rate", Arity::kValue, "N",
     "unauthenticated answers per second per source IP (default 50, 0: unlimited)", nullptr,
     [](std::string_view v, ParseState& s, std::string* d) {
       return SetUnsigned(v, 0, 1'000'000, &Cfg(s).unauth_rate, d);
     }},
    {"unauth-burst", Arity::kValue, "N",
     "burst of unauthenticated answers per source IP (default 100)", nullptr,
     [](std::string_view v, ParseState& s, std::string* d) {
       return SetUnsigned(v, 1, 1'000'000, &Cfg(s).unauth_burst, d);
     }},

    // Responses.
    {"software-attribute", Arity::kFlag, "", "send SOFTWARE in responses (default off)",
     [](bool v, ParseState& s) { Cfg(s).software_attribute = v; }},
    {"no-software-attribute", Arity::kFlag, "", "do not send SOFTWARE (the default)",
     [](bool v, ParseState& s) { Cfg(s).software_attribute = !v; }},
    {"prod", Arity::kFlag, "", "coturn's old name for no-software-attribute",
     [](bool v, ParseState& s) { Cfg(s).software_attribute = !v; }},

    // Process.
    {"log-file", Arity::kValue, "PATH|stdout|stderr|syslog|-",
     "where to log (default stderr; '-' is stdout)", nullptr,
     [](std::string_view v, ParseState& s, std::string*) {
       Cfg(s).log_file = v == "-" ? "stdout" : std::string(v);
       return true;
     }},
    {"syslog", Arity::kFlag, "", "log to syslog (beats log-file, as in coturn)",
     [](bool v, ParseState& s) { s.syslog = v; }},
    {"log-format", Arity::kValue, "text|json", "log line format (default text)", nullptr,
     [](std::string_view v, ParseState& s, std::string* d) {
       if (v == "text") {
         Cfg(s).log_format = LogFormat::kText;
       } else if (v == "json") {
         Cfg(s).log_format = LogFormat::kJson;
       } else {
         *d = "expected text or json";
         return false;
       }
       return true;
     }},
    {"verbose", Arity::kFlag, "", "debug logging",
     [](bool v, ParseState& s) { Cfg(s).verbose = v; }},
    {"Verbose", Arity::kFlag, "", "coturn's extra verbose mode; same as verbose",
     [](bool v, ParseState& s) { Cfg(s).verbose = v; }},
    {"pidfile", Arity::kValue, "PATH", "write the process id here", nullptr,
     [](std::string_view v, ParseState& s, std::string*) {
       Cfg(s).pidfile = std::string(v);
       return true;
     }},
    {"worker-threads", Arity::kValue, "N", "data-plane workers (0: one per online CPU)", nullptr,
     [](std::string_view v, ParseState& s, std::string* d) {
       return SetUnsigned(v, 0, 1024, &Cfg(s).worker_threads, d);
     }},
    {"dpdk-args", Arity::kValue, "ARGS",
     "EAL arguments for backend=dpdk, passed verbatim (lcores, vdevs; docs/configuration.md)",
     nullptr,
     [](std::string_view v, ParseState& s, std::string*) {
       Cfg(s).dpdk_args = std::string(v);
       return true;
     }},
    {"dpdk-port", Arity::kValue, "ID", "DPDK ethdev port id (default 0)", nullptr,
     [](std::string_view v, ParseState& s, std::string* d) {
       return SetUnsigned(v, 0, 1023, &Cfg(s).dpdk_port, d);
     }},
    {"dpdk-no-checksum-offload", Arity::kFlag, "",
     "compute TX checksums in software even when the port offers offload",
     [](bool v, ParseState& s) { Cfg(s).dpdk_no_checksum_offload = v; }},
    {"dpdk-queues", Arity::kValue, "auto|one|per-worker",
     "queue pairs of the DPDK port with several workers (default auto: one per worker where "
     "the port has RSS)",
     nullptr,
     [](std::string_view v, ParseState& s, std::string* d) {
       if (v == "auto") {
         Cfg(s).dpdk_queues = DpdkQueues::kAuto;
       } else if (v == "one") {
         Cfg(s).dpdk_queues = DpdkQueues::kOne;
       } else if (v == "per-worker") {
         Cfg(s).dpdk_queues = DpdkQueues::kPerWorker;
       } else {
         *d = "expected auto, one or per-worker";
         return false;
       }
       return true;
     }},
    {"dpdk-kernel-interface", Arity::kValue, "NAME",
     "a TAP interface through which the kernel gets what is not for the relay (docs/dpdk.md)",
     nullptr,
     [](std::string_view v, ParseState& s, std::string* d) {
       // An interface name: at most IFNAMSIZ - 1 characters, no '/', ':', ',' or spaces
       // (the last two would break the TAP driver's device arguments).
       const bool ok = !v.empty() && v.size() <= 15 &&
                       std::all_of(v.begin(), v.end(), [](char c) {
                         return std::isalnum(static_cast<unsigned char>(c)) || c == '-' ||
                                c == '_' || c == '.';
                       });
       if (!ok) {
         *d = "expected an interface name of 1-15 letters, digits, '-', '_' or '.'";
         return false;
       }
       Cfg(s).dpdk_kernel_interface = std::string(v);
       return true;
     }},
    {"dpdk-address", Arity::kValue, "IP/LEN",
     "an address the DPDK data plane owns, with its prefix (repeatable)", nullptr,
     [](std::string_view v, ParseState& s, std::string* d) {
       const size_t slash = v.find('/');
       auto ip = IpAddress::Parse(v.substr(0, slash));
       if (!ip || slash == std::string_view::npos) {
         *d = "expected an address with its prefix length, e.g. 10.200.0.2/24";
         return false;
       }
       uint32_t len = 0;
       if (!SetUnsigned(v.substr(slash + 1), 0, ip->is_v4() ? 32 : 128, &len, d)) {
         return false;
       }
       Cfg(s).dpdk_addresses.push_back({*ip, static_cast<uint8_t>(len)});
       return true;
     },
     [](ServerConfig& c) { c.dpdk_addresses.clear(); }},
    {"dpdk-gateway", Arity::kValue, "IP",
     "next hop for off-link destinations, one per family (repeatable)", nullptr,
     [](std::string_view v, ParseState& s, std::string* d) {
       auto ip = IpAddress::Parse(v);
       if (!ip) {
         *d = "expected an IPv4 or IPv6 address";
         return false;
       }
       Cfg(s).dpdk_gateways.push_back(*ip);
       return true;
     },
     [](ServerConfig& c) { c.dpdk_gateways.clear(); }},
    {"backend", Arity::kValue, "uring|dpdk", "packet I/O backend (default uring)", nullptr,
     [](std::string_view v, ParseState& s, std::string* d) {
       if (v == "uring") {
         Cfg(s).backend = Backend::kUring;
       } else if (v == "dpdk") {
         Cfg(s).backend = Backend::kDpdk;
       } else {
         *d = "expected uring or dpdk";
         return false;
       }
       return true;
     }},

    // Control plane (docs/control-plane.md).
    {"control-listen", Arity::kValue, "IP:PORT|off",
     "REST API and /metrics address (default 127.0.0.1:9641)", nullptr,
     [](std::string_view v, ParseState& s, std::string* d) {
       ServerConfig& c = Cfg(s);
       c.control_listen_given = true;
       if (v == "off") {
         c.control_enabled = false;
         return true;
       }
       // IPv4 "a.b.c.d:port" or IPv6 "[addr]:port".
       size_t colon = v.rfind(':');
       if (colon == std::string_view::npos) {
         *d = "expected IP:PORT, [IPv6]:PORT or off";
         return false;
       }
       std::string_view host = v.substr(0, colon);
       if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
         host = host.substr(1, host.size() - 2);
       } else if (host.find(':') != std::string_view::npos) {
         *d = "write an IPv6 address in brackets: [::1]:9641";
         return false;
       }
       IpAddress ip;
       if (!ParseIp(host, &ip, d)) {
         return false;
       }
       uint16_t port = 0;
       if (!SetUnsigned(v.substr(colon + 1), 0, 65535, &port, d)) {
         return false;
       }
       c.control_enabled = true;
       c.control_ip = ip;
       c.control_port = port;
       return true;
     }},
    {"control-token-file", Arity::kValue, "PATH",
     "file holding the bearer token for /v1 (else TURNPIKE_CONTROL_TOKEN)", nullptr,
     [](std::string_view v, ParseState& s, std::string*) {
       Cfg(s).control_token_file = std::string(v);
       return true;
     }},
    {"control-open-probes", Arity::kFlag, "",
     "/metrics, /ping, /healthz, /readyz without a token (default on)",
     [](bool v, ParseState& s) { Cfg(s).control_open_probes = v; }},
    {"deployment-color", Arity::kValue, "NAME", "colour reported by GET /ping (blue/green)",
     nullptr,
     [](std::string_view v, ParseState& s, std::string* d) {
       if (v.size() > 64) {
         *d = "longer than 64 characters";
         return false;
       }
       for (char ch : v) {
         if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-' && ch != '_' &&
             ch != '.') {
           *d = "use letters, digits, '-', '_' or '.'";
           return false;
         }
       }
       Cfg(s).deployment_color = std::string(v);
       return true;
     }},
    {"drain-timeout", Arity::kValue, "SECONDS",
     "on SIGTERM, refuse new allocations this long before stopping (default 30)", nullptr,
     [](std::string_view v, ParseState& s, std::string* d) {
       return SetUnsigned(v, 0, 86400, &Cfg(s).drain_timeout, d);
     }},
};

// coturn options Turnpike accepts and ignores, with the reason the operator sees. Anything in
// `turnserver --help` or `man turnserver` (coturn 4.6) that kOptions does not implement belongs
// here, so a coturn file never fails to load; a name in neither table is a typo and an error.
struct IgnoredOption {
  std::string_view name;
  Arity arity;
  std::string_view why;
};

constexpr std::string_view kOldTls =
    "Turnpike never offers TLS below 1.2 (TLS 1.0/1.1 and SSL are never offered)";
constexpr std::string_view kNoDh =
    "Turnpike loads no finite-field DH parameters (key exchange uses OpenSSL's default groups)";
constexpr std::string_view kNoDb =
    "Turnpike has no user database; use user= lines or static-auth-secret";
constexpr std::string_view kNoCli = "Turnpike has no telnet CLI; use the REST control API";
constexpr std::string_view kNoWeb = "Turnpike has no web admin; use the REST control API";
constexpr std::string_view kLog = "Turnpike's log format is fixed (see log-format)";

const IgnoredOption kIgnored[] = {
    // Protocol switches with one fixed behaviour in Turnpike.
    {"fingerprint", Arity::kFlag, "Turnpike checks and answers FINGERPRINT per RFC 8489"},
    {"no-rfc5780", Arity::kFlag, "Turnpike does not implement RFC 5780 NAT discovery"},
    {"response-origin-only-with-rfc5780", Arity::kFlag,
     "Turnpike does not implement RFC 5780 NAT discovery"},
    {"no-stun-backward-compatibility", Arity::kFlag,
     "Turnpike speaks RFC 8489 STUN only (no RFC 3489 MAPPED-ADDRESS-only clients)"},
    {"mobility", Arity::kFlag, "Turnpike does not implement MICE mobility"},
    {"secure-stun", Arity::kFlag, "Turnpike answers Binding requests without credentials"},
    {"check-origin-consistency", Arity::kFlag, "Turnpike does not use ORIGIN"},
    {"no-stun", Arity::kFlag, "Turnpike always answers STUN Binding requests"},
    {"stun-only", Arity::kFlag, "Turnpike always serves TURN"},
    {"server-relay", Arity::kFlag, "Turnpike does not support coturn's server relay"},
    {"alternate-server", Arity::kValue, "Turnpike does not send ALTERNATE-SERVER redirects"},
    {"tls-alternate-server", Arity::kValue, "Turnpike does not send ALTERNATE-SERVER redirects"},
    {"aux-server", Arity::kValue, "Turnpike listens on listening-ip:listening-port only"},
    {"alt-listening-port", Arity::kValue, "Turnpike does not implement RFC 5780 NAT discovery"},
    {"alt-tls-listening-port", Arity::kValue, "Turnpike does not implement RFC 5780 NAT discovery"},
    {"rest-api-separator", Arity::kValue,
     "Turnpike's TURN REST usernames always use ':' (expiry:user)"},
    {"max-allocate-timeout", Arity::kValue, "Turnpike allocates in one request"},
    {"allocation-default-address-family", Arity::kValue,
     "Turnpike relays on the family REQUESTED-ADDRESS-FAMILY asks for (default the client's)"},
    {"keep-address-family", Arity::kFlag,
     "Turnpike relays on the family REQUESTED-ADDRESS-FAMILY asks for (default the client's)"},
    {"no-loopback-peers", Arity::kFlag,
     "loopback peers are denied unless allow-loopback-peers is given"},
    {"no-dynamic-ip-list", Arity::kFlag, "Turnpike's peer lists come from this file only"},
    {"no-dynamic-realms", Arity::kFlag, "Turnpike has one realm"},
    {"no-auth-pings", Arity::kFlag, kNoDb},
    {"oauth", Arity::kFlag, "Turnpike does not implement third-party (OAuth) authorization"},
    {"server-name", Arity::kValue, "Turnpike does not use the OAuth server name"},
    {"udp-self-balance", Arity::kFlag, "Turnpike spreads load over worker-threads itself"},
    {"relay-threads", Arity::kValue, "use worker-threads"},
    {"ne", Arity::kValue, "coturn's network engine choice does not apply (see backend)"},
    {"listening-device", Arity::kValue, "bind by address with listening-ip"},
    {"relay-device", Arity::kValue, "bind by address with relay-ip"},
    {"tcp-proxy-port", Arity::kValue,
     "Turnpike does not accept the PROXY protocol from load balancers"},
    {"acme-redirect", Arity::kValue, "Turnpike serves no HTTP on the TURN port"},

    // TCP, TLS and DTLS switches Turnpike does not need.
    {"no-dtls", Arity::kFlag, "Turnpike has no DTLS listener"},
    {"no-udp-relay", Arity::kFlag, "Turnpike relays over UDP only"},
    {"no-tcp-relay", Arity::kFlag,
     "RFC 6062 TCP relaying is never offered; Connect requests get 403"},
    {"CA-file", Arity::kValue, "Turnpike does not authenticate clients by certificate"},
    {"ec-curve-name", Arity::kValue, "Turnpike uses OpenSSL's default key-exchange groups"},
    {"dh-file", Arity::kValue, kNoDh},
    {"dh566", Arity::kFlag, kNoDh},
    {"dh1066", Arity::kFlag, kNoDh},
    {"dh2066", Arity::kFlag, kNoDh},
    {"no-tlsv1", Arity::kFlag, kOldTls},
    {"no-tlsv1_1", Arity::kFlag, kOldTls},
    {"no-sslv2", Arity::kFlag, kOldTls},
    {"no-sslv3", Arity::kFlag, kOldTls},

    // User databases and statistics stores.
    {"userdb", Arity::kValue, kNoDb},
    {"db", Arity::kValue, kNoDb},
    {"psql-userdb", Arity::kValue, kNoDb},
    {"sql-userdb", Arity::kValue, kNoDb},
    {"mysql-userdb", Arity::kValue, kNoDb},
    {"mongo-userdb", Arity::kValue, kNoDb},
    {"redis-userdb", Arity::kValue, kNoDb},
    {"redis-statsdb", Arity::kValue, "Turnpike exports statistics on /metrics"},
    {"secret-key-file", Arity::kValue, kNoDb},

    // Management interfaces.
    {"no-cli", Arity::kFlag, kNoCli},
    {"cli-ip", Arity::kValue, kNoCli},
    {"cli-port", Arity::kValue, kNoCli},
    {"cli-password", Arity::kValue, kNoCli},
    {"cli-max-output-sessions", Arity::kValue, kNoCli},
    {"web-admin", Arity::kFlag, kNoWeb},
    {"web-admin-ip", Arity::kValue, kNoWeb},
    {"web-admin-port", Arity::kValue, kNoWeb},
    {"web-admin-listen-on-workers", Arity::kFlag, kNoWeb},
    {"prometheus", Arity::kFlag, "Turnpike always serves /metrics on the control API"},
    {"prometheus-port", Arity::kValue, "Turnpike always serves /metrics on the control API"},
    {"prometheus-username-labels", Arity::kFlag, "Turnpike's metrics carry no usernames"},

    // Logging and process management.
    {"no-stdout-log", Arity::kFlag, "Turnpike logs to one place: log-file (default stderr)"},
    {"simple-log", Arity::kFlag, "Turnpike never rotates; logrotate + SIGHUP reopens log-file"},
    {"new-log-timestamp", Arity::kFlag, kLog},
    {"new-log-timestamp-format", Arity::kValue, kLog},
    {"syslog-facility", Arity::kValue, "Turnpike logs to syslog as LOG_DAEMON"},
    {"log-binding", Arity::kFlag, "Turnpike never logs per packet"},
    {"daemon", Arity::kFlag, "run Turnpike under systemd or a container runtime instead"},
    {"proc-user", Arity::kValue, "start Turnpike as the right user (systemd User=)"},
    {"proc-group", Arity::kValue, "start Turnpike as the right group (systemd Group=)"},
};

// coturn's one-letter options, for command lines carried over from coturn units.
struct ShortOption {
  char letter;
  std::string_view name;
};
const ShortOption kShort[] = {
    {'L', "listening-ip"},
    {'p', "listening-port"},
    {'E', "relay-ip"},
    {'X', "external-ip"},
    {'v', "verbose"},
    {'V', "Verbose"},
    {'a', "lt-cred-mech"},
    {'z', "no-auth"},
    {'u', "user"},
    {'r', "realm"},
    {'q', "user-quota"},
    {'Q', "total-quota"},
    {'s', "max-bps"},
    {'l', "log-file"},
    {'f', "fingerprint"},
    {'d', "listening-device"},
    {'i', "relay-device"},
    {'m', "relay-threads"},
    {'o', "daemon"},
    {'S', "stun-only"},
    {'C', "rest-api-separator"},
    {'K', "keep-address-family"},
    {'B', "bps-capacity"},
    {'b', "userdb"},
    {'e', "psql-userdb"},
    {'M', "mysql-userdb"},
    {'J', "mongo-userdb"},
    {'N', "redis-userdb"},
    {'O', "redis-statsdb"},
};

const Option* FindOption(std::string_view name) {
  for (const Option& o : kOptions) {
    if (o.name == name) {
      return &o;
    }
  }
  return nullptr;
}

const IgnoredOption* FindIgnored(std::string_view name) {
  for (const IgnoredOption& o : kIgnored) {
    if (o.name == name) {
      return &o;
    }
  }
  return nullptr;
}

absl::Status BadValue(std::string_view name, std::string_view value, const Where& where,
                      std::string_view detail) {
  std::string msg = Cat({"bad value '", value, "' for ", name, " ", where.ToString()});
  if (!detail.empty()) {
    msg += Cat({": ", detail});
  }
  return absl::InvalidArgumentError(msg);
}

// Applies one option. `has_value` is false for a bare key.
absl::Status Apply(ParseState& s, std::string_view name, std::string_view value, bool has_value,
                   const Where& where) {
  if (has_value && value.empty()) {
    has_value = false;  // `key=` is a bare key, as in coturn
  }
  if (const Option* o = FindOption(name)) {
    if (o->arity == Arity::kFlag) {
      std::optional<bool> b = ParseBool(has_value ? value : "");
      if (!b) {
        return BadValue(name, value, where, "expected true/false, yes/no, on/off or 1/0");
      }
      o->set_flag(*b, s);
    } else {
      if (o->arity == Arity::kValue && !has_value) {
        return absl::InvalidArgumentError(Cat({"missing value for ", name, " ", where.ToString()}));
      }
      if (o->clear != nullptr && s.command_line &&
          s.cleared_by_cli.insert(std::string(o->name)).second) {
        o->clear(s.out->config);  // the command line's list replaces the file's
      }
      std::string detail;
      if (!o->set_value(has_value ? value : "", s, &detail)) {
        return BadValue(name, value, where, detail);
      }
    }
    s.given.insert(std::string(name));
    return absl::OkStatus();
  }
  if (const IgnoredOption* ig = FindIgnored(name)) {
    if (s.warned.insert(std::string(name)).second) {
      s.out->warnings.push_back(
          Cat({"ignoring coturn option '", name, "' ", where.ToString(), ": ", ig->why}));
    }
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(Cat({"unknown option '", name, "' ", where.ToString()}));
}

bool IsBlank(char ch) { return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\v' || ch == '\f'; }

absl::Status ApplyText(ParseState& s, std::string_view text, std::string_view origin) {
  int line_no = 0;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    ++line_no;

    while (!line.empty() && IsBlank(line.front())) {
      line.remove_prefix(1);
    }
    while (!line.empty() && IsBlank(line.back())) {
      line.remove_suffix(1);
    }
    if (line.empty() || line.front() == '#') {
      continue;
    }
    size_t sep = line.find_first_of(" \t=");
    std::string_view key = line.substr(0, sep);
    std::string_view value;
    if (sep != std::string_view::npos) {
      value = line.substr(sep);
      while (!value.empty() &&
             (value.front() == ' ' || value.front() == '\t' || value.front() == '=')) {
        value.remove_prefix(1);
      }
      if (!value.empty() && value.front() == '"') {
        value.remove_prefix(1);
        while (!value.empty() && value.back() == '"') {
          value.remove_suffix(1);
        }
      }
    }
    absl::Status st = Apply(s, key, value, !value.empty(), Where{origin, line_no});
    if (!st.ok()) {
      return st;
    }
  }
  return absl::OkStatus();
}

// One option from the command line, after -c/--help/--version are taken out.
struct CliOption {
  std::string name;
  std::string value;
  bool has_value = false;
};

Arity ArityOf(std::string_view name, bool* known) {
  *known = true;
  if (const Option* o = FindOption(name)) {
    return o->arity;
  }
  if (const IgnoredOption* ig = FindIgnored(name)) {
    return ig->arity;
  }
  *known = false;
  return Arity::kFlag;
}

// A following argument can be an option's value unless it looks like an option itself
// (a lone "-" is a value: coturn's log-file=- means stdout).
bool LooksLikeOption(const char* arg) { return arg[0] == '-' && arg[1] != '\0'; }

struct CommandLine {
  std::optional<std::string> conf_file;
  bool help = false;
  bool version = false;
  std::vector<CliOption> options;
};

absl::StatusOr<CommandLine> TokenizeCommandLine(int argc, const char* const* argv) {
  CommandLine cl;
  const Where where;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    std::string name;
    std::string value;
    bool has_value = false;
    std::string shown;  // the option as typed, for "unknown option" messages
    if (arg.starts_with("--") && arg.size() > 2) {
      std::string_view body = arg.substr(2);
      size_t eq = body.find('=');
      name = std::string(body.substr(0, eq));
      if (eq != std::string_view::npos) {
        value = std::string(body.substr(eq + 1));
        has_value = true;
      }
      shown = Cat({"--", name});
    } else if (arg.size() >= 2 && arg[0] == '-' && arg[1] != '-') {
      char letter = arg[1];
      std::string_view rest = arg.substr(2);
      shown = std::string(arg.substr(0, 2));
      if (letter == 'c') {
        name = "conf-file";
      } else if (letter == 'h') {
        name = "help";
      } else if (letter == 'n') {
        name = "n";  // coturn: "do not read a configuration file"; Turnpike never reads one unasked
      } else {
        for (const ShortOption& so : kShort) {
          if (so.letter == letter) {
            name = std::string(so.name);
          }
        }
      }
      if (name.empty()) {
        return absl::InvalidArgumentError(Cat({"unknown option '", shown, "' ", where.ToString()}));
      }
      if (rest.starts_with("=")) {
        value = std::string(rest.substr(1));
        has_value = true;
      } else if (!rest.empty()) {
        bool known = false;
        Arity arity = name == "conf-file" ? Arity::kValue : ArityOf(name, &known);
        if (arity == Arity::kFlag) {
          return absl::InvalidArgumentError(Cat({"unknown option '", arg, "' ", where.ToString()}));
        }
        value = std::string(rest);  // getopt's -p3478
        has_value = true;
      }
    } else {
      return absl::InvalidArgumentError(
          Cat({"unexpected argument '", arg, "' ", where.ToString()}));
    }

    if (name == "help" || name == "version" || name == "n") {
      if (has_value) {
        return BadValue(name, value, where, "takes no value");
      }
      cl.help = cl.help || name == "help";
      cl.version = cl.version || name == "version";
      continue;
    }
    bool known = true;
    Arity arity = name == "conf-file" ? Arity::kValue : ArityOf(name, &known);
    if (!known) {
      return absl::InvalidArgumentError(Cat({"unknown option '", shown, "' ", where.ToString()}));
    }
    if (arity == Arity::kValue && !has_value) {
      if (i + 1 < argc && !LooksLikeOption(argv[i + 1])) {
        value = argv[++i];
        has_value = true;
      } else {
        return absl::InvalidArgumentError(Cat({"missing value for ", name, " ", where.ToString()}));
      }
    }
    if (name == "conf-file") {
      if (value.empty()) {
        return absl::InvalidArgumentError(Cat({"missing value for conf-file ", where.ToString()}));
      }
      if (cl.conf_file) {
        return absl::InvalidArgumentError(Cat(
            {"more than one configuration file given ('", *cl.conf_file, "' and '", value, "')"}));
      }
      cl.conf_file = value;
      continue;
    }
    cl.options.push_back(CliOption{std::move(name), std::move(value), has_value});
  }
  return cl;
}

absl::Status ReadFile(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        Cat({"cannot read configuration file '", path, "': ", std::strerror(errno)}));
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) {
    return absl::InvalidArgumentError(
        Cat({"cannot read configuration file '", path, "': ", std::strerror(errno)}));
  }
  *out = ss.str();
  return absl::OkStatus();
}

// Checks and implications that need the whole configuration.
absl::Status Finalize(ParseState& s) {
  ServerConfig& c = s.out->config;
  if (c.min_port > c.max_port) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "bad value: min-port (%d) is greater than max-port (%d)", c.min_port, c.max_port));
  }
  if (c.default_allocate_lifetime > c.max_allocate_lifetime) {
    if (s.given.contains("default-allocate-lifetime")) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "bad value: default-allocate-lifetime (%d) is greater than max-allocate-lifetime (%d)",
          c.default_allocate_lifetime, c.max_allocate_lifetime));
    }
    c.default_allocate_lifetime = c.max_allocate_lifetime;
  }
  if (s.syslog) {
    c.log_file = "syslog";
  }

  // Authentication. coturn treats user= as implying lt-cred-mech and static-auth-secret as
  // implying use-auth-secret; an explicit setting (even =false) is respected.
  if (c.no_auth) {
    if (c.lt_cred_mech || c.use_auth_secret) {
      return absl::InvalidArgumentError(
          "no-auth cannot be combined with lt-cred-mech or use-auth-secret (give "
          "--lt-cred-mech=false / --use-auth-secret=false to override a file)");
    }
    if (!c.users.empty() || !c.static_auth_secrets.empty()) {
      s.out->warnings.push_back("no-auth is set: user and static-auth-secret entries are unused");
    }
    s.out->warnings.push_back(
        "no-auth is set: anyone can allocate relays on this server; use it for tests only");
  } else {
    if (!c.users.empty() && !s.given.contains("lt-cred-mech")) {
      c.lt_cred_mech = true;
    }
    if (!c.static_auth_secrets.empty() && !s.given.contains("use-auth-secret")) {
      c.use_auth_secret = true;
    }
  }
  if (c.use_auth_secret && c.static_auth_secrets.empty()) {
    return absl::InvalidArgumentError(
        "use-auth-secret needs at least one static-auth-secret (Turnpike reads secrets from "
        "the configuration only)");
  }
  if (c.lt_cred_mech && c.users.empty() && !c.use_auth_secret) {
    return absl::InvalidArgumentError(
        "lt-cred-mech is set but there is no user= entry and no use-auth-secret: every "
        "client would be refused");
  }
  if (c.stale_nonce_seconds == 0) {
    s.out->warnings.push_back(
        "stale-nonce=0 (unlimited in coturn) is treated as 600 seconds: Turnpike's nonces "
        "always expire");
  }
  if (c.allow_loopback_peers) {
    s.out->warnings.push_back(
        "allow-loopback-peers is set: clients can reach services on this host's loopback; use "
        "it for tests only");
  }

  // Stream transports. TLS listens only when a certificate is given, as in coturn.
  if (!c.pkey_file.empty() && c.cert_file.empty()) {
    return absl::InvalidArgumentError(
        "pkey is set but cert is not: give the certificate chain with cert (PEM, leaf first)");
  }
  if (!c.cert_file.empty() && c.pkey_file.empty()) {
    c.pkey_file = c.cert_file;  // coturn's default: one PEM file holding chain and key
  }
  const bool tls = !c.cert_file.empty() && !c.no_tls;
  if (c.no_udp && c.no_tcp && !tls) {
    return absl::InvalidArgumentError(
        "no-udp and no-tcp are set and TLS is off (no cert, or no-tls): there is nothing to "
        "listen on");
  }
  if (tls && !c.no_tcp && c.tls_listening_port == c.listening_port && c.listening_port != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "bad value: tls-listening-port (%d) equals listening-port: TLS and plain TCP cannot "
        "share a port (choose another tls-listening-port, or set no-tcp)",
        c.tls_listening_port));
  }
  if (c.cert_file.empty()) {
    for (std::string_view name : {"pkey-pwd", "cipher-list", "no-tlsv1_2", "tls-listening-port"}) {
      if (s.given.contains(std::string(name))) {
        s.out->warnings.push_back(
            Cat({name, " is set but cert is not: there is no TLS listener, so it has no effect"}));
      }
    }
  }

  // DPDK: the data plane's addresses are its own (the kernel does not have them), so listening
  // and relay addresses default to them and must be among them.
  if (c.backend == Backend::kDpdk) {
    if (c.dpdk_addresses.empty()) {
      return absl::InvalidArgumentError(
          "backend=dpdk needs the data plane's address: dpdk-address=IP/LEN (e.g. "
          "10.200.0.2/24; repeat it for IPv6)");
    }
    auto owned = [&c](const IpAddress& ip) {
      for (const InterfaceAddress& a : c.dpdk_addresses) {
        if (a.ip == ip) return true;
      }
      return false;
    };
    if (c.listening_ips.empty()) {
      for (const InterfaceAddress& a : c.dpdk_addresses) c.listening_ips.push_back(a.ip);
    }
    if (c.relay_ips.empty()) {
      for (const InterfaceAddress& a : c.dpdk_addresses) c.relay_ips.push_back(a.ip);
    }
    for (const std::vector<IpAddress>* list : {&c.listening_ips, &c.relay_ips}) {
      for (const IpAddress& ip : *list) {
        if (!owned(ip)) {
          return absl::InvalidArgumentError(absl::StrFormat(
              "backend=dpdk: %s is not one of the dpdk-address values (listening-ip and "
              "relay-ip must be addresses the data plane owns)",
              ip.ToString()));
        }
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<IpRange> ParseIpRange(std::string_view text) {
  text = Strip(text);
  constexpr std::string_view kForms = "expected IP, FIRST-LAST or PREFIX/LEN";
  size_t slash = text.find('/');
  if (slash != std::string_view::npos) {
    auto ip = IpAddress::Parse(Strip(text.substr(0, slash)));
    std::string_view len_text = Strip(text.substr(slash + 1));
    if (!ip) {
      return absl::InvalidArgumentError(std::string(kForms));
    }
    unsigned bits = ip->is_v4() ? 32 : 128;
    unsigned len = 0;
    auto [end, ec] = std::from_chars(len_text.data(), len_text.data() + len_text.size(), len);
    if (len_text.empty() || ec != std::errc() || end != len_text.data() + len_text.size() ||
        len > bits) {
      return absl::InvalidArgumentError(Cat({"prefix length must be 0..", std::to_string(bits)}));
    }
    // Host bits below the prefix are cleared (10.1.2.3/8 means 10.0.0.0/8).
    IpRange r{*ip, *ip};
    for (unsigned i = 0; i < bits / 8; ++i) {
      unsigned keep = len > i * 8 ? std::min(8u, len - i * 8) : 0;
      uint8_t mask = keep == 0 ? 0 : static_cast<uint8_t>(0xff << (8 - keep));
      r.first.bytes[i] = ip->bytes[i] & mask;
      r.last.bytes[i] = ip->bytes[i] | static_cast<uint8_t>(~mask);
    }
    return r;
  }
  size_t dash = text.find('-');
  if (dash != std::string_view::npos) {
    auto first = IpAddress::Parse(Strip(text.substr(0, dash)));
    auto last = IpAddress::Parse(Strip(text.substr(dash + 1)));
    if (!first || !last) {
      return absl::InvalidArgumentError(std::string(kForms));
    }
    if (first->family != last->family) {
      return absl::InvalidArgumentError("range ends differ in address family");
    }
    if (std::memcmp(first->bytes.data(), last->bytes.data(), first->size()) > 0) {
      return absl::InvalidArgumentError("range start is after its end");
    }
    return IpRange{*first, *last};
  }
  auto ip = IpAddress::Parse(text);
  if (!ip) {
    return absl::InvalidArgumentError(std::string(kForms));
  }
  return IpRange{*ip, *ip};
}

absl::Status ParseConfigText(std::string_view text, std::string_view origin, LoadedConfig* out) {
  ParseState s;
  s.out = out;
  return ApplyText(s, text, origin);
}

absl::StatusOr<LoadedConfig> LoadConfig(int argc, const char* const* argv) {
  absl::StatusOr<CommandLine> cl = TokenizeCommandLine(argc, argv);
  if (!cl.ok()) {
    return cl.status();
  }
  LoadedConfig loaded;
  loaded.help = cl->help;
  loaded.version = cl->version;
  if (loaded.help || loaded.version) {
    return loaded;  // the caller prints and exits; a broken file must not stop --help
  }
  ParseState s;
  s.out = &loaded;
  if (cl->conf_file) {
    std::string text;
    absl::Status st = ReadFile(*cl->conf_file, &text);
    if (st.ok()) {
      st = ApplyText(s, text, *cl->conf_file);
    }
    if (!st.ok()) {
      return st;
    }
  }
  s.command_line = true;
  for (const CliOption& o : cl->options) {
    absl::Status st = Apply(s, o.name, o.value, o.has_value, Where{});
    if (!st.ok()) {
      return st;
    }
  }
  absl::Status st = Finalize(s);
  if (!st.ok()) {
    return st;
  }
  return loaded;
}

std::string Usage() {
  std::string out =
      "Usage: turnpiked [-c FILE] [--option[=value] ...]\n"
      "\n"
      "Reads a coturn-style turnserver.conf (-c FILE, --conf-file=FILE), then the command line,\n"
      "which wins. Every option below works in the file as `option=value` (or a bare `option`\n"
      "for a flag) and on the command line as `--option=value`. Flags take an optional\n"
      "=true/false. coturn options Turnpike does not implement are accepted with a warning;\n"
      "see docs/configuration.md.\n"
      "\n"
      "  -c, --conf-file=FILE         configuration file\n"
      "  -h, --help                   this text\n"
      "      --version                print the version\n";
  for (const Option& o : kOptions) {
    std::string left = Cat({"--", o.name});
    if (o.arity == Arity::kValue) {
      left += Cat({"=", o.placeholder});
    } else if (o.arity == Arity::kOptionalValue) {
      left += Cat({"[=", o.placeholder, "]"});
    }
    std::string prefix = "      ";
    for (const ShortOption& so : kShort) {
      if (so.name == o.name) {
        prefix = Cat({"  -", std::string(1, so.letter), ", "});
      }
    }
    out += Cat({prefix, left});
    if (prefix.size() + left.size() < 30) {
      out.append(30 - prefix.size() - left.size(), ' ');
    } else {
      out += Cat({"\n", std::string(30, ' ')});
    }
    out += Cat({" ", o.help, "\n"});
  }
  return out;
}

}  // namespace turnpike
