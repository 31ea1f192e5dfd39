// The server's configuration as the engine and backends see it: plain values, already checked.
// control/config.cc fills it from a coturn-style file and the command line.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "turn/net/socket_address.h"

namespace turnpike {

// An inclusive address range; a single address has first == last. Both ends share a family.
struct IpRange {
  IpAddress first;
  IpAddress last;
  bool Contains(const IpAddress& a) const;
  friend bool operator==(const IpRange&, const IpRange&) = default;
};

// `user=name:password` or `user=name:0xKEY` (KEY = hex MD5(name:realm:password), coturn style).
struct StaticUser {
  std::string name;
  std::string password;  // empty when `key_hex` is used
  std::string key_hex;   // 32 hex digits, or empty
};

// `external-ip=PUBLIC[/PRIVATE]`: report PUBLIC in XOR-RELAYED-ADDRESS for relays on PRIVATE
// (or on every relay address of the family when PRIVATE is absent).
struct ExternalIp {
  IpAddress public_ip;
  bool has_private = false;
  IpAddress private_ip;
};

// `dpdk-address=10.200.0.2/24`: an address the DPDK data plane owns, with its on-link prefix.
struct InterfaceAddress {
  IpAddress ip;
  uint8_t prefix = 0;
  bool OnLink(const IpAddress& other) const;  // same family and same first `prefix` bits
  friend bool operator==(const InterfaceAddress&, const InterfaceAddress&) = default;
};

enum class LogFormat : uint8_t { kText, kJson };
enum class Backend : uint8_t { kUring, kDpdk };
// dpdk-queues: how several DPDK workers share the port (dataplane/dpdk/dpdk_worker.h).
//   kAuto: a queue pair per worker when the port spreads received frames itself (RSS) and has
//          enough queues, else kOne.
//   kOne: one pair, polled by worker 0, which hands other workers their frames.
//   kPerWorker: a pair per worker even without RSS (memif: the peer picks the ring it sends
//          on, and must open as many as there are workers).
enum class DpdkQueues : uint8_t { kAuto, kOne, kPerWorker };

struct ServerConfig {
  // Listening and relaying.
  std::vector<IpAddress> listening_ips;  // empty: 0.0.0.0 (and :: when IPv6 is up)
  uint16_t listening_port = 3478;
  std::vector<IpAddress> relay_ips;      // empty: the listening IPs, or the first non-wildcard
  std::vector<ExternalIp> external_ips;
  uint16_t min_port = 20000;
  uint16_t max_port = 29999;

  // Authentication (RFC 8489 9.2 long-term credentials; TURN REST API).
  std::string realm = "turnpike.local";
  bool lt_cred_mech = false;
  bool use_auth_secret = false;
  std::vector<std::string> static_auth_secrets;  // first one mints, all verify (rotation)
  std::vector<StaticUser> users;
  bool no_auth = false;                           // `no-auth`: open relay, for tests only
  uint32_t stale_nonce_seconds = 600;             // coturn `stale-nonce`
  bool software_attribute = false;                // SOFTWARE in responses (off by default)

  // Peer address policy. Secure defaults live in turn/peer_policy.cc.
  std::vector<IpRange> denied_peer_ips;
  std::vector<IpRange> allowed_peer_ips;
  bool allow_loopback_peers = false;
  bool no_multicast_peers = true;  // multicast is in the default deny list either way

  // Lifetimes (RFC 8656 defaults) and limits.
  uint32_t default_allocate_lifetime = 600;
  uint32_t max_allocate_lifetime = 3600;
  uint32_t permission_lifetime = 300;
  uint32_t channel_lifetime = 600;
  uint32_t user_quota = 0;    // allocations per user, 0 = unlimited
  uint32_t total_quota = 0;   // allocations on the node, 0 = unlimited
  uint64_t max_bps = 0;       // per allocation, bytes per second; 0 = unlimited
  uint32_t max_allocations = 32768;  // table size, split across workers
  uint64_t bps_capacity = 0;  // `bps-capacity`: the node's relayed bytes per second in each
                              // direction (client->peer, peer->client); 0 = unlimited. Split
                              // evenly across workers; excess dropped and counted.
  // Unauthenticated responses (Binding, 401, 438, unauthenticated 400/420) per source IP:
  // a token bucket of `unauth_burst` refilled at `unauth_rate` per second; beyond it requests
  // are dropped silently and counted (reflection and amplification resistance).
  uint32_t unauth_rate = 50;   // 0: no limit
  uint32_t unauth_burst = 100;

  // Stream transports: TURN over TCP and TLS (RFC 8656 3.1, RFC 8489 6.2.2). TCP listens on
  // listening-port next to UDP; TLS on tls-listening-port once a certificate is given.
  bool no_udp = false;                  // `no-udp`: no UDP listener (relaying stays UDP)
  bool no_tcp = false;                  // `no-tcp`: no TCP listener
  bool no_tls = false;                  // `no-tls`: no TLS listener even with a certificate
  uint16_t tls_listening_port = 443;    // coturn's default is 5349
  std::string cert_file;                // `cert`: PEM chain, leaf first
  std::string pkey_file;                // `pkey`: PEM private key (default: the cert file)
  std::string pkey_password;            // `pkey-pwd`
  std::string cipher_list;              // `cipher-list`: TLS 1.2 ciphers, OpenSSL syntax
  bool no_tlsv1_2 = false;              // `no-tlsv1_2`: TLS 1.3 only (1.0/1.1 are never offered)
  uint32_t stream_max_connections = 20000;  // TCP+TLS connections on the node
  uint32_t stream_max_per_ip = 100;         // TCP+TLS connections from one client IP
  uint32_t stream_handshake_timeout = 10;   // s to finish TLS and send a first whole message
  uint32_t stream_idle_timeout = 60;        // s a connection without an allocation may idle

  // Process.
  std::string log_file;  // empty: stderr; "stdout" / "syslog" as in coturn are accepted
  LogFormat log_format = LogFormat::kText;
  bool verbose = false;
  std::string pidfile;
  uint32_t worker_threads = 0;  // 0: one per online CPU
  Backend backend = Backend::kUring;

  // DPDK backend (docs/dpdk.md).
  std::string dpdk_args;                       // passed to rte_eal_init verbatim (split on spaces)
  uint16_t dpdk_port = 0;                      // ethdev port id
  bool dpdk_no_checksum_offload = false;       // software TX checksums even with offload
  DpdkQueues dpdk_queues = DpdkQueues::kAuto;
  // A TAP interface of this name hands the kernel what is not for the relay (TCP for the
  // control API, SSH ...) and sends what the kernel sends; empty: such frames are dropped.
  std::string dpdk_kernel_interface;
  std::vector<InterfaceAddress> dpdk_addresses;  // the data plane's own addresses
  std::vector<IpAddress> dpdk_gateways;          // next hop for off-link peers, one per family

  // Control plane (REST API, metrics, probes; control/http_server.cc, docs/control-plane.md).
  bool control_enabled = true;                     // `control-listen=off` turns it off
  bool control_listen_given = false;               // set explicitly (bind failure is then fatal)
  IpAddress control_ip = IpAddress::Loopback(AddressFamily::kIPv4);
  uint16_t control_port = 9641;                    // coturn's Prometheus port
  std::string control_token_file;                  // bearer token for /v1 (else the env var)
  bool control_open_probes = true;                 // /metrics /ping /healthz /readyz need no token
  std::string deployment_color;                    // "path" in GET /ping (blue/green)
  uint32_t drain_timeout = 30;                     // SIGTERM: seconds of drain before stopping
};

}  // namespace turnpike
