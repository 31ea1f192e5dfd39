// IP and transport addresses as plain value types. Shared by the STUN codec, the TURN engine
// and both I/O backends; no socket calls happen here except the sockaddr conversions.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "absl/hash/hash.h"

namespace turnpike {

enum class AddressFamily : uint8_t { kIPv4 = 1, kIPv6 = 2 };  // STUN's family codes (RFC 8489 14.1)

// An IPv4 or IPv6 address. IPv4 addresses use the first 4 bytes of `bytes`; the rest stay zero,
// so comparison and hashing can use the whole array.
struct IpAddress {
  AddressFamily family = AddressFamily::kIPv4;
  std::array<uint8_t, 16> bytes{};

  static IpAddress V4(uint32_t host_order);
  static IpAddress V4Bytes(const uint8_t b[4]) {  // inline: per STUN address attribute
    IpAddress a;
    a.family = AddressFamily::kIPv4;
    std::memcpy(a.bytes.data(), b, 4);
    return a;
  }
  static IpAddress V6Bytes(const uint8_t b[16]) {
    IpAddress a;
    a.family = AddressFamily::kIPv6;
    std::memcpy(a.bytes.data(), b, 16);
    return a;
  }
  // Parses dotted-quad or RFC 4291 text; brackets are not accepted here.
  static std::optional<IpAddress> Parse(std::string_view text);
  static IpAddress Any(AddressFamily family);
  static IpAddress Loopback(AddressFamily family);

  bool is_v4() const { return family == AddressFamily::kIPv4; }
  bool is_v6() const { return family == AddressFamily::kIPv6; }
  size_t size() const { return is_v4() ? 4 : 16; }
  uint32_t v4_host_order() const;
  bool IsUnspecified() const;

  // The IPv4 address an IPv6 address embeds, for the forms used to smuggle IPv4 past deny lists:
  // IPv4-mapped ::ffff:a.b.c.d and IPv4-compatible ::a.b.c.d (RFC 4291 2.5.5), NAT64 well-known
  // prefix 64:ff9b::/96 (RFC 6052), 6to4 2002:AABB:CCDD::/16 (RFC 3056) and Teredo 2001::/32
  // (client address, RFC 4380). Returns nullopt for a plain IPv6 address.
  std::optional<IpAddress> EmbeddedV4() const;

  std::string ToString() const;

  // Two 8-byte words: equality and hashing sit on the relay's per-packet path (the defaulted
  // operator== called memcmp for the array).
  uint64_t word(size_t i) const {
    uint64_t w;
    std::memcpy(&w, bytes.data() + 8 * i, 8);
    return w;
  }
  friend bool operator==(const IpAddress& a, const IpAddress& b) {
    return a.family == b.family && a.word(0) == b.word(0) && a.word(1) == b.word(1);
  }
  template <typename H>
  friend H AbslHashValue(H h, const IpAddress& a) {
    return H::combine(std::move(h), a.word(0), a.word(1) ^ static_cast<uint64_t>(a.family));
  }
};

// An IP address and UDP/TCP port.
struct SocketAddress {
  IpAddress ip;
  uint16_t port = 0;

  // "1.2.3.4:5", "[::1]:5". A missing port gives std::nullopt.
  static std::optional<SocketAddress> Parse(std::string_view text);
  static SocketAddress FromSockaddr(const sockaddr* sa);

  AddressFamily family() const { return ip.family; }
  // Fills `out` and returns the length to pass to the socket call.
  socklen_t ToSockaddr(sockaddr_storage* out) const;
  std::string ToString() const;

  friend bool operator==(const SocketAddress&, const SocketAddress&) = default;
  template <typename H>
  friend H AbslHashValue(H h, const SocketAddress& a) {
    return H::combine(std::move(h), a.ip, a.port);
  }
};

// A UDP 5-tuple as the server sees it: which local socket address a packet came in on and from
// where. Allocations are keyed by this (RFC 8656 2.2).
struct FiveTuple {
  SocketAddress client;
  SocketAddress server;
  uint8_t protocol = IPPROTO_UDP;

  friend bool operator==(const FiveTuple&, const FiveTuple&) = default;
  template <typename H>
  friend H AbslHashValue(H h, const FiveTuple& t) {
    return H::combine(std::move(h), t.client.ip, t.server.ip,
                      (uint64_t{t.client.port} << 32) | (uint64_t{t.server.port} << 16) |
                          t.protocol);
  }
};

// The engine's per-packet hash of a FiveTuple (every relayed client packet looks its allocation
// up by it): the eight words folded into two, then two 64x64->128 multiply-folds, where absl's
// generic combine does one per word. Both words of the first fold carry a per-process seed (as
// wyhash does), so which tuples share a hash depends on a value not known outside the process.
extern const uint64_t kFiveTupleHashSeed[2];
struct FiveTupleHash {
  static uint64_t MulFold(uint64_t a, uint64_t b) {
    const __uint128_t m = static_cast<__uint128_t>(a) * b;
    return static_cast<uint64_t>(m) ^ static_cast<uint64_t>(m >> 64);
  }
  size_t operator()(const FiveTuple& t) const {
    const uint64_t ports = (uint64_t{t.client.port} << 48) | (uint64_t{t.server.port} << 32) |
                           (uint64_t{t.protocol} << 8) |
                           (static_cast<uint64_t>(t.client.ip.family) << 4) |
                           static_cast<uint64_t>(t.server.ip.family);
    const uint64_t a = t.client.ip.word(0) ^ (t.server.ip.word(1) * 0x9E3779B97F4A7C15ull);
    const uint64_t b = t.client.ip.word(1) ^ (t.server.ip.word(0) * 0xC2B2AE3D27D4EB4Full);
    const uint64_t h = MulFold(a ^ kFiveTupleHashSeed[0], b ^ kFiveTupleHashSeed[1]);
    return MulFold(h ^ ports, 0xE7037ED1A0B428DBull ^ kFiveTupleHashSeed[0]);
  }
};

}  // namespace turnpike
