#include "turn/net/socket_address.h"

#include <arpa/inet.h>

#include <charconv>
#include <random>

namespace turnpike {

namespace {
uint64_t RandomWord() {
  std::random_device rd;
  return (uint64_t{rd()} << 32) | rd();
}
}  // namespace

const uint64_t kFiveTupleHashSeed[2] = {RandomWord(), RandomWord()};

IpAddress IpAddress::V4(uint32_t host_order) {
  IpAddress a;
  a.family = AddressFamily::kIPv4;
  a.bytes[0] = static_cast<uint8_t>(host_order >> 24);
  a.bytes[1] = static_cast<uint8_t>(host_order >> 16);
  a.bytes[2] = static_cast<uint8_t>(host_order >> 8);
  a.bytes[3] = static_cast<uint8_t>(host_order);
  return a;
}

std::optional<IpAddress> IpAddress::Parse(std::string_view text) {
  if (text.empty() || text.size() >= INET6_ADDRSTRLEN) {
    return std::nullopt;
  }
  char buf[INET6_ADDRSTRLEN];
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  uint8_t raw[16];
  if (inet_pton(AF_INET, buf, raw) == 1) {
    return V4Bytes(raw);
  }
  if (inet_pton(AF_INET6, buf, raw) == 1) {
    return V6Bytes(raw);
  }
  return std::nullopt;
}

IpAddress IpAddress::Any(AddressFamily family) {
  IpAddress a;
  a.family = family;
  return a;
}

IpAddress IpAddress::Loopback(AddressFamily family) {
  IpAddress a;
  a.family = family;
  if (family == AddressFamily::kIPv4) {
    a.bytes[0] = 127;
    a.bytes[3] = 1;
  } else {
    a.bytes[15] = 1;
  }
  return a;
}

uint32_t IpAddress::v4_host_order() const {
  return (uint32_t{bytes[0]} << 24) | (uint32_t{bytes[1]} << 16) | (uint32_t{bytes[2]} << 8) |
         uint32_t{bytes[3]};
}

bool IpAddress::IsUnspecified() const {
  for (size_t i = 0; i < size(); ++i) {
    if (bytes[i] != 0) {
      return false;
    }
  }
  return true;
}

std::optional<IpAddress> IpAddress::EmbeddedV4() const {
  if (!is_v6()) {
    return std::nullopt;
  }
  const uint8_t* b = bytes.data();
  auto zero = [b](int from, int to) {
    for (int i = from; i < to; ++i) {
      if (b[i] != 0) {
        return false;
      }
    }
    return true;
  };
  // ::ffff:a.b.c.d
  if (zero(0, 10) && b[10] == 0xff && b[11] == 0xff) {
    return V4Bytes(b + 12);
  }
  // ::a.b.c.d (deprecated IPv4-compatible); :: and ::1 are IPv6 addresses in their own right.
  if (zero(0, 12) && !(zero(12, 15) && b[15] <= 1)) {
    return V4Bytes(b + 12);
  }
  // 64:ff9b::/96
  if (b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b && zero(4, 12)) {
    return V4Bytes(b + 12);
  }
  // 2002:AABB:CCDD::/16 (6to4)
  if (b[0] == 0x20 && b[1] == 0x02) {
    return V4Bytes(b + 2);
  }
  // 2001:0000::/32 (Teredo): the client's address is the last 32 bits, inverted.
  if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x00 && b[3] == 0x00) {
    uint8_t v4[4] = {static_cast<uint8_t>(~b[12]), static_cast<uint8_t>(~b[13]),
                     static_cast<uint8_t>(~b[14]), static_cast<uint8_t>(~b[15])};
    return V4Bytes(v4);
  }
  return std::nullopt;
}

std::string IpAddress::ToString() const {
  char buf[INET6_ADDRSTRLEN];
  inet_ntop(is_v4() ? AF_INET : AF_INET6, bytes.data(), buf, sizeof(buf));
  return buf;
}

std::optional<SocketAddress> SocketAddress::Parse(std::string_view text) {
  std::string_view host;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return std::nullopt;
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos || text.find(':') != colon) {
      return std::nullopt;
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  auto ip = IpAddress::Parse(host);
  unsigned value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (!ip || port.empty() || ec != std::errc() || end != port.data() + port.size() ||
      value > 65535) {
    return std::nullopt;
  }
  return SocketAddress{*ip, static_cast<uint16_t>(value)};
}

SocketAddress SocketAddress::FromSockaddr(const sockaddr* sa) {
  SocketAddress out;
  if (sa->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    out.ip = IpAddress::V4Bytes(reinterpret_cast<const uint8_t*>(&in->sin_addr));
    out.port = ntohs(in->sin_port);
  } else if (sa->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    out.ip = IpAddress::V6Bytes(reinterpret_cast<const uint8_t*>(&in6->sin6_addr));
    out.port = ntohs(in6->sin6_port);
  }
  return out;
}

socklen_t SocketAddress::ToSockaddr(sockaddr_storage* out) const {
  std::memset(out, 0, sizeof(*out));
  if (ip.is_v4()) {
    auto* in = reinterpret_cast<sockaddr_in*>(out);
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    std::memcpy(&in->sin_addr, ip.bytes.data(), 4);
    return sizeof(sockaddr_in);
  }
  auto* in6 = reinterpret_cast<sockaddr_in6*>(out);
  in6->sin6_family = AF_INET6;
  in6->sin6_port = htons(port);
  std::memcpy(&in6->sin6_addr, ip.bytes.data(), 16);
  return sizeof(sockaddr_in6);
}

std::string SocketAddress::ToString() const {
  if (ip.is_v4()) {
    return ip.ToString() + ":" + std::to_string(port);
  }
  return "[" + ip.ToString() + "]:" + std::to_string(port);
}

}  // namespace turnpike
