// A UDP socket on 127.0.0.1 with a kernel-chosen port, for the backend tests (peers and UDP
// clients). Receive polls with a deadline and retries on EINTR (io_uring teardown on another
// thread can interrupt a blocking call). Loopback only.
#pragma once

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <optional>
#include <span>
#include <vector>

#include "gtest/gtest.h"
#include "turn/net/socket_address.h"

namespace turnpike::dataplane::testing {

struct Datagram {
  SocketAddress from;
  std::vector<uint8_t> bytes;
};

class UdpSocket {
 public:
  UdpSocket() {
    fd_ = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    const int size = 4 << 20;  // room for bursts: the tests count every datagram
    setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
    setsockopt(fd_, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
    sockaddr_storage ss;
    const socklen_t len =
        SocketAddress{IpAddress::Loopback(AddressFamily::kIPv4), 0}.ToSockaddr(&ss);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&ss), len), 0) << strerror(errno);
    socklen_t got = sizeof(ss);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &got);
    local_ = SocketAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&ss));
  }
  ~UdpSocket() { close(fd_); }
  UdpSocket(const UdpSocket&) = delete;
  UdpSocket& operator=(const UdpSocket&) = delete;

  const SocketAddress& local() const { return local_; }

  // Sends one datagram; a failure is a test failure (and returns false).
  bool Send(const SocketAddress& to, std::span<const uint8_t> bytes) {
    sockaddr_storage ss;
    const socklen_t len = to.ToSockaddr(&ss);
    const bool ok = sendto(fd_, bytes.data(), bytes.size(), 0,
                           reinterpret_cast<sockaddr*>(&ss), len) ==
                    static_cast<ssize_t>(bytes.size());
    EXPECT_TRUE(ok) << "sendto " << to.ToString() << ": " << strerror(errno);
    return ok;
  }

  std::optional<Datagram> Receive(int timeout_ms = 5000) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() < 0) return std::nullopt;
      pollfd p{fd_, POLLIN, 0};
      const int rc = poll(&p, 1, static_cast<int>(left.count()));
      if (rc < 0 && errno == EINTR) continue;
      if (rc != 1) return std::nullopt;
      break;
    }
    Datagram d;
    d.bytes.resize(65536);
    sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    const ssize_t n =
        recvfrom(fd_, d.bytes.data(), d.bytes.size(), 0, reinterpret_cast<sockaddr*>(&ss), &len);
    if (n < 0) return std::nullopt;
    d.bytes.resize(static_cast<size_t>(n));
    d.from = SocketAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&ss));
    return d;
  }

 private:
  int fd_ = -1;
  SocketAddress local_;
};

}  // namespace turnpike::dataplane::testing
