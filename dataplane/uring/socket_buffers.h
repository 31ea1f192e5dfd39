// Socket options for the kernel-socket backend: buffer sizing, and binding a non-local address.
//
// Buffer sizing: Linux's default UDP receive buffer (net.core.rmem_default, 208 KiB here) holds
// only a few hundred small datagrams once the per-skb overhead is counted, so a burst into a
// listener that serves many clients overflows it and the kernel drops silently. Root
// (CAP_NET_ADMIN) may exceed net.core.rmem_max with the FORCE variants; others get what
// rmem_max/wmem_max allow.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

namespace turnpike::dataplane {

// Listening sockets carry every client of a worker; relay sockets one allocation each.
inline constexpr int kListenerRcvBuf = 8 << 20;
inline constexpr int kListenerSndBuf = 4 << 20;
inline constexpr int kRelayRcvBuf = 1 << 20;
inline constexpr int kRelaySndBuf = 1 << 20;

inline void SizeSocketBuffers(int fd, int rcvbuf, int sndbuf) {
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)) != 0) {
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
  }
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof(sndbuf)) != 0) {
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
  }
}

// Lets `fd` bind an address that is not (yet) on any interface: a stream host's addresses are
// the DPDK data plane's, given to its TAP interface after start-up (StreamHostOptions).
inline void AllowNonLocalBind(int fd, int domain) {
  const int on = 1;
  if (domain == AF_INET6) {
    setsockopt(fd, IPPROTO_IPV6, IPV6_FREEBIND, &on, sizeof(on));  // Linux 4.15
  } else {
    setsockopt(fd, IPPROTO_IP, IP_FREEBIND, &on, sizeof(on));
  }
}

}  // namespace turnpike::dataplane
