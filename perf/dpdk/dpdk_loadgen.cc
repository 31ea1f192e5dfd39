// turnpike-dpdk-loadgen: a TURN load generator on DPDK (issue 4 item 5).
//
//   turnpike-dpdk-loadgen [options] -- <EAL args>
//
// One DPDK port (net_memif role=client in perf/dpdk-bench.sh), one lcore (the main one) that
// transmits and receives. The generator owns two IPv4 addresses on the link: --client-ip (every
// allocation's client side, one UDP port per allocation) and --peer-ip (every allocation's peer,
// one UDP port per allocation); it answers ARP for both and resolves --server-ip (the relay) by
// ARP, announcing both of its addresses to the relay with ARP requests so the relay does not
// have to resolve them (it drops packets while resolving).
//
// Phase 1 (skipped with --raw): real TURN handshakes for --allocations allocations through the
// relay (perf/dpdk/handshake.h: Allocate -> 401 -> Allocate with REST credentials from
// --secret -> ChannelBind to --peer-ip:<peer-port-base + i>), --window in flight,
// retransmitted on timeout. Any failure ends the run with exit status 1. The relay must not
// rate-limit the 401s (turnpiked --unauth-rate=0).
//
// Phase 2: for --seconds, ChannelData (4-byte header + --payload bytes) from the clients and
// plain UDP (--payload bytes) from the peers to their relayed addresses, alternating, round-robin
// over allocations, at --rate packets/s in total (0: as fast as the port takes them; a full TX
// ring is back-pressure, not loss). Each payload carries a magic, the trial number, the
// allocation, the direction, a sequence number and the TSC at transmission. What the relay
// forwards (UDP to the peers, ChannelData to the clients) is counted, checked against the
// allocation it belongs to (ports, channel) and its latency recorded. After --seconds the
// generator keeps receiving for --drain-ms before counting losses.
//
// --max-loss-pct=L (default: off) searches: if the first trial loses more than L percent, up to
// --search-steps further trials of --trial-seconds bisect the offered rate between 0 and the
// first trial's delivered rate, and the result is the best trial with loss <= L.
//
// --raw: no ARP, no handshakes; frames of the same sizes and layout go to --raw-dst-mac and
// whatever comes back with our magic is counted (the dpdk-testpmd io-forwarding baseline).
//
// Output: a human-readable report per trial and one machine-readable line
//   GEN mode=relay|raw trials=T rate_pps=R seconds=S sent=N received=M delivered_mpps=X
//       offered_mpps=Y loss_pct=W p50_us=A p99_us=B misrouted=K bad_checksums=C
// for the chosen trial; the exit status is 1 when K or C is not 0.
//
// Every frame carries a UDP checksum, as a kernel-stack client's does (computed from a per-
// direction base sum plus the patched fields, not over the whole payload), and one received
// frame in 16 has its checksum verified (bad_checksums: the relay's checksum arithmetic).
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "dataplane/packet/arp.h"
#include "dataplane/packet/checksum.h"
#include "dataplane/packet/frame.h"
#include "dataplane/packet/reply.h"
#include "dataplane/packet/tx_headers.h"
#include "dataplane/packet/wire.h"
#include "perf/dpdk/handshake.h"
#include "perf/dpdk/pcap_export.h"
#include "perf/loadgen/histogram.h"

namespace turnpike::dpdkgen {
namespace {

namespace packet = dataplane::packet;

constexpr uint32_t kMagic = 0xA5C3F00Du;  // first byte 0xA5: never mistaken for ChannelData
constexpr uint16_t kBurst = 32;
constexpr size_t kBodyHeader = 32;  // magic, trial, index, direction, seq, tsc
constexpr size_t kEthIpUdp = 14 + 20 + 8;

std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop.store(true); }

struct Options {
  uint16_t port = 0;
  IpAddress client_ip = *IpAddress::Parse("10.201.0.1");
  IpAddress peer_ip = *IpAddress::Parse("10.201.0.3");
  IpAddress server_ip = *IpAddress::Parse("10.201.0.2");
  uint16_t server_port = 3478;
  uint16_t client_port_base = 10000;
  uint16_t peer_port_base = 30000;
  int allocations = 10000;
  std::string secret;
  std::string user = "user";
  std::string password = "pass";
  std::string realm;
  int window = 256;
  int rto_ms = 250;
  double seconds = 5;
  double rate = 0;  // packets/s, both directions together; 0 = unpaced
  size_t payload = 172;
  int drain_ms = 200;
  double max_loss_pct = -1;  // < 0: no search
  int search_steps = 6;
  double trial_seconds = 2;
  bool raw = false;
  packet::MacAddress raw_dst_mac{{0x02, 0, 0, 0, 0, 0x02}};
  std::string pcap;
  double setup_timeout_s = 120;
  uint16_t queues = 1;  // queue pairs; frames spread over them by their UDP ports, like RSS
  double linger_s = 0;  // stay connected (not polling) after the GEN line, until a signal
};

void Usage() {
  std::fprintf(stderr,
               "usage: turnpike-dpdk-loadgen [options] -- <EAL args>\n"
               "  --port=N                 ethdev port (0)\n"
               "  --client-ip=IP --peer-ip=IP --server-ip=IP --server-port=N\n"
               "                           (10.201.0.1, 10.201.0.3, 10.201.0.2, 3478)\n"
               "  --client-port-base=N --peer-port-base=N  (10000, 30000)\n"
               "  --allocations=N          (10000)\n"
               "  --secret=S | --user=U --password=P   --realm=R (from the 401 if empty)\n"
               "  --window=N --rto-ms=N    handshakes in flight, initial RTO (256, 250)\n"
               "  --seconds=S --rate=PPS   measuring interval, total offered rate (5, 0=max)\n"
               "  --payload=N              bytes after the ChannelData header (172)\n"
               "  --drain-ms=N             receive after sending stops (200)\n"
               "  --max-loss-pct=L --search-steps=N --trial-seconds=S  rate search (off)\n"
               "  --raw --raw-dst-mac=MAC  no handshakes: the testpmd baseline\n"
               "  --pcap=FILE              also write phase-2 traffic + FILE.lua (Pktgen)\n"
               "  --queues=N               queue pairs; each frame goes on the queue a hash of\n"
               "                           its UDP ports picks (as RSS would), ARP on 0 (1)\n"
               "  --linger=S               after the GEN line, keep the port open S seconds or\n"
               "                           until SIGTERM, without polling it (0)\n");
}

std::optional<packet::MacAddress> ParseMac(std::string_view s) {
  packet::MacAddress m;
  unsigned b[6];
  if (std::sscanf(std::string(s).c_str(), "%x:%x:%x:%x:%x:%x", &b[0], &b[1], &b[2], &b[3], &b[4],
                  &b[5]) != 6) {
    return std::nullopt;
  }
  for (int i = 0; i < 6; ++i) m.bytes[i] = static_cast<uint8_t>(b[i]);
  return m;
}

bool ParseOptions(int argc, char** argv, Options* o) {
  for (int i = 1; i < argc; ++i) {
    absl::string_view a = argv[i];
    absl::string_view key = a, value;
    if (size_t eq = a.find('='); eq != absl::string_view::npos) {
      key = a.substr(0, eq);
      value = a.substr(eq + 1);
    }
    auto ip = [&](IpAddress* out) {
      std::optional<IpAddress> p = IpAddress::Parse(std::string_view(value.data(), value.size()));
      if (!p || !p->is_v4()) return false;
      *out = *p;
      return true;
    };
    auto u16 = [&](uint16_t* out) {
      uint32_t v;
      if (!absl::SimpleAtoi(value, &v) || v > 65535) return false;
      *out = static_cast<uint16_t>(v);
      return true;
    };
    bool ok = true;
    if (key == "--port") ok = u16(&o->port);
    else if (key == "--client-ip") ok = ip(&o->client_ip);
    else if (key == "--peer-ip") ok = ip(&o->peer_ip);
    else if (key == "--server-ip") ok = ip(&o->server_ip);
    else if (key == "--server-port") ok = u16(&o->server_port);
    else if (key == "--client-port-base") ok = u16(&o->client_port_base);
    else if (key == "--peer-port-base") ok = u16(&o->peer_port_base);
    else if (key == "--allocations") ok = absl::SimpleAtoi(value, &o->allocations);
    else if (key == "--secret") o->secret = std::string(value);
    else if (key == "--user") o->user = std::string(value);
    else if (key == "--password") o->password = std::string(value);
    else if (key == "--realm") o->realm = std::string(value);
    else if (key == "--window") ok = absl::SimpleAtoi(value, &o->window);
    else if (key == "--rto-ms") ok = absl::SimpleAtoi(value, &o->rto_ms);
    else if (key == "--seconds") ok = absl::SimpleAtod(value, &o->seconds);
    else if (key == "--rate") ok = absl::SimpleAtod(value, &o->rate);
    else if (key == "--payload") ok = absl::SimpleAtoi(value, &o->payload);
    else if (key == "--drain-ms") ok = absl::SimpleAtoi(value, &o->drain_ms);
    else if (key == "--max-loss-pct") ok = absl::SimpleAtod(value, &o->max_loss_pct);
    else if (key == "--search-steps") ok = absl::SimpleAtoi(value, &o->search_steps);
    else if (key == "--trial-seconds") ok = absl::SimpleAtod(value, &o->trial_seconds);
    else if (key == "--setup-timeout") ok = absl::SimpleAtod(value, &o->setup_timeout_s);
    else if (key == "--linger") ok = absl::SimpleAtod(value, &o->linger_s);
    else if (key == "--raw") o->raw = true;
    else if (key == "--raw-dst-mac") {
      std::optional<packet::MacAddress> m = ParseMac(std::string_view(value.data(), value.size()));
      ok = m.has_value();
      if (m) o->raw_dst_mac = *m;
    } else if (key == "--pcap") o->pcap = std::string(value);
    else if (key == "--queues") ok = u16(&o->queues) && o->queues >= 1;
    else if (key == "--help" || key == "-h") {
      Usage();
      std::exit(0);
    } else {
      std::fprintf(stderr, "unknown option %s\n", argv[i]);
      return false;
    }
    if (!ok) {
      std::fprintf(stderr, "bad value in %s\n", argv[i]);
      return false;
    }
  }
  if (o->allocations <= 0 || o->allocations > 0x10000 - std::max(o->client_port_base,
                                                                  o->peer_port_base)) {
    std::fprintf(stderr, "--allocations must be 1..(65536 - port base)\n");
    return false;
  }
  if (o->payload < kBodyHeader || o->payload > 1400) {
    std::fprintf(stderr, "--payload must be %d..1400\n", static_cast<int>(kBodyHeader));
    return false;
  }
  return true;
}

int64_t MonotonicNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

// Per-trial figures.
struct Trial {
  double rate = 0;  // offered, pps (0: unpaced)
  double seconds = 0;
  uint64_t sent[2] = {0, 0};      // [0] client->relay ChannelData, [1] peer->relay UDP
  uint64_t received[2] = {0, 0};  // [0] at the peers (from ChannelData), [1] at the clients
  uint64_t received_in_window = 0;
  uint64_t misrouted = 0;
  uint64_t checked = 0;        // received frames whose UDP checksum was verified
  uint64_t bad_checksums = 0;  // ... and found wrong
  uint64_t tx_full = 0;  // offers the TX ring refused (back-pressure, retried; not loss)
  loadgen::LatencyHistogram latency;

  uint64_t total_sent() const { return sent[0] + sent[1]; }
  uint64_t total_received() const { return received[0] + received[1]; }
  double loss_pct() const {
    const uint64_t s = total_sent();
    if (s == 0) return 100.0;
    const double lost = static_cast<double>(s) - static_cast<double>(total_received());
    return std::max(0.0, 100.0 * lost / static_cast<double>(s));
  }
  double delivered_mpps() const { return received_in_window / seconds / 1e6; }
  double offered_mpps() const { return total_sent() / seconds / 1e6; }
};

class Generator {
 public:
  explicit Generator(const Options& o) : o_(o) {}

  bool Init();
  bool ResolveRelay();
  bool Handshake();
  void BuildTemplates();
  Trial RunTrial(double rate, double seconds);
  bool WritePcap();

 private:
  // Control frames (ARP, STUN): queued, sent with retries so they are not lost to a full ring.
  void QueueControl(rte_mbuf* m);
  void FlushControl();
  void SendUdp(const SocketAddress& src, const SocketAddress& dst, std::span<const uint8_t> data);
  void SendArpRequest(const IpAddress& from, const IpAddress& target);
  // A received burst from each queue: ARP, handshake responses (phase 1), traffic (phase 2).
  void Receive(int64_t now_ns);
  void ReceiveQueue(uint16_t queue, int64_t now_ns);
  uint16_t QueueOf(const rte_mbuf* m) const;
  // Sends a prefix of `frames` (each on QueueOf's queue); returns its length.
  uint16_t TxBurst(rte_mbuf** frames, uint16_t n);
  void HandleTraffic(std::span<const uint8_t> frame, const packet::FrameInfo& info);
  void FillFrame(uint8_t* p, uint64_t k, uint64_t tsc);

  const Options& o_;
  rte_mempool* pool_ = nullptr;
  packet::MacAddress mac_;
  std::optional<packet::MacAddress> relay_mac_;
  std::vector<IpAddress> ours_;
  std::vector<TurnAllocation> allocs_;
  std::optional<Handshakes> handshakes_;
  rte_mbuf* ctl_[256];
  uint16_t n_ctl_ = 0;
  // Phase 2.
  std::vector<uint8_t> templates_[2];  // whole frames; ports, channel and body patched per packet
  // Per direction: the UDP checksum's sum over the pseudo-header and the template's segment with
  // ports, channel and body fields zero; FillFrame adds the patched fields.
  uint32_t base_sum_[2] = {0, 0};
  Trial* trial_ = nullptr;
  uint32_t trial_id_ = 0;
  uint64_t tsc_hz_ = 0;
  uint64_t window_end_tsc_ = 0;
};

bool Generator::Init() {
  if (!rte_eth_dev_is_valid_port(o_.port)) {
    std::fprintf(stderr, "no DPDK port %d (%d available): give the EAL a --vdev\n", o_.port,
                 rte_eth_dev_count_avail());
    return false;
  }
  const int socket = rte_eth_dev_socket_id(o_.port);
  pool_ = rte_pktmbuf_pool_create("dpdkgen_mbufs", 16383, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                  socket < 0 ? SOCKET_ID_ANY : socket);
  if (pool_ == nullptr) {
    std::fprintf(stderr, "mbuf pool: %s (hugepages?)\n", rte_strerror(rte_errno));
    return false;
  }
  rte_eth_conf conf{};
  if (int rc = rte_eth_dev_configure(o_.port, o_.queues, o_.queues, &conf); rc < 0) {
    std::fprintf(stderr, "configure port with %d queue pairs: %s\n", o_.queues,
                 rte_strerror(-rc));
    return false;
  }
  uint16_t nb_rx = 1024, nb_tx = 1024;
  rte_eth_dev_adjust_nb_rx_tx_desc(o_.port, &nb_rx, &nb_tx);
  for (uint16_t q = 0; q < o_.queues; ++q) {
    if (rte_eth_rx_queue_setup(o_.port, q, nb_rx, socket, nullptr, pool_) < 0 ||
        rte_eth_tx_queue_setup(o_.port, q, nb_tx, socket, nullptr) < 0) {
      std::fprintf(stderr, "queue %d setup failed\n", q);
      return false;
    }
  }
  if (int rc = rte_eth_dev_start(o_.port); rc < 0) {
    std::fprintf(stderr, "start port: %s\n", rte_strerror(-rc));
    return false;
  }
  rte_eth_promiscuous_enable(o_.port);
  rte_ether_addr addr{};
  rte_eth_macaddr_get(o_.port, &addr);
  mac_ = packet::MacAddress::From(addr.addr_bytes);
  ours_ = {o_.client_ip, o_.peer_ip};
  tsc_hz_ = rte_get_tsc_hz();
  // memif connects asynchronously: wait for the link.
  const int64_t deadline = MonotonicNs() + 20'000'000'000;
  rte_eth_link link{};
  while (true) {
    rte_eth_link_get_nowait(o_.port, &link);
    if (link.link_status == RTE_ETH_LINK_UP) break;
    if (MonotonicNs() > deadline || g_stop.load()) {
      std::fprintf(stderr, "port %d: link did not come up within 20 s (is the peer running?)\n",
                   o_.port);
      return false;
    }
    rte_delay_ms(10);
  }
  std::printf("port %d up, MAC %s, %u/%u descriptors, TSC %.3f GHz\n", o_.port,
              mac_.ToString().c_str(), nb_rx, nb_tx, static_cast<double>(tsc_hz_) / 1e9);

  allocs_.resize(static_cast<size_t>(o_.allocations));
  for (int i = 0; i < o_.allocations; ++i) {
    TurnAllocation& a = allocs_[i];
    a.index = static_cast<uint32_t>(i);
    a.client = {o_.client_ip, static_cast<uint16_t>(o_.client_port_base + i)};
    a.peer = {o_.peer_ip, static_cast<uint16_t>(o_.peer_port_base + i)};
    a.channel = static_cast<uint16_t>(stun::kMinChannel + (i % 0x1000));
    // --raw: a made-up relayed address (testpmd forwards whatever it gets).
    a.relayed = {o_.server_ip, static_cast<uint16_t>(50000 + (i % 15000))};
  }
  return true;
}

void Generator::QueueControl(rte_mbuf* m) {
  if (n_ctl_ == std::size(ctl_)) FlushControl();
  if (n_ctl_ == std::size(ctl_)) {
    rte_pktmbuf_free(m);
    return;
  }
  ctl_[n_ctl_++] = m;
}

uint16_t Generator::QueueOf(const rte_mbuf* m) const {
  if (o_.queues == 1) return 0;
  const uint8_t* f = rte_pktmbuf_mtod(m, const uint8_t*);
  // IPv4 + UDP frames (all this generator sends besides ARP): ports at 34 and 36.
  if (rte_pktmbuf_data_len(m) < kEthIpUdp || Load16(f + 12) != 0x0800 || f[23] != 17) return 0;
  return static_cast<uint16_t>(((Load16(f + 34) * 7u) ^ Load16(f + 36)) % o_.queues);
}

uint16_t Generator::TxBurst(rte_mbuf** frames, uint16_t n) {
  if (o_.queues == 1) return rte_eth_tx_burst(o_.port, 0, frames, n);
  // In order, each on its own queue; stops at the first a queue does not take.
  uint16_t sent = 0;
  while (sent < n && rte_eth_tx_burst(o_.port, QueueOf(frames[sent]), frames + sent, 1) == 1) {
    ++sent;
  }
  return sent;
}

void Generator::FlushControl() {
  uint16_t done = 0;
  for (int tries = 0; done < n_ctl_ && tries < 1000; ++tries) {
    done += TxBurst(ctl_ + done, static_cast<uint16_t>(n_ctl_ - done));
  }
  for (uint16_t i = done; i < n_ctl_; ++i) rte_pktmbuf_free(ctl_[i]);
  n_ctl_ = 0;
}

void Generator::SendUdp(const SocketAddress& src, const SocketAddress& dst,
                        std::span<const uint8_t> data) {
  rte_mbuf* m = rte_pktmbuf_alloc(pool_);
  if (m == nullptr) return;  // the retransmission timer covers it
  uint8_t* base = static_cast<uint8_t*>(m->buf_addr);
  std::memcpy(base + m->data_off, data.data(), data.size());
  packet::UdpTxParams p;
  p.src_mac = mac_;
  p.dst_mac = *relay_mac_;
  p.src = src;
  p.dst = dst;
  p.dont_fragment = true;
  const std::optional<packet::Prepended> pre = packet::PrependUdpHeaders(
      std::span<uint8_t>(base, m->data_off + data.size()), m->data_off, data.size(), p);
  if (!pre) {
    rte_pktmbuf_free(m);
    return;
  }
  const size_t len = m->data_off + data.size() - pre->frame_offset;
  m->data_off = static_cast<uint16_t>(pre->frame_offset);
  m->data_len = static_cast<uint16_t>(len);
  m->pkt_len = static_cast<uint32_t>(len);
  QueueControl(m);
}

void Generator::SendArpRequest(const IpAddress& from, const IpAddress& target) {
  rte_mbuf* m = rte_pktmbuf_alloc(pool_);
  if (m == nullptr) return;
  std::span<uint8_t> out(rte_pktmbuf_mtod(m, uint8_t*), rte_pktmbuf_tailroom(m));
  const size_t len = packet::BuildArpRequest(mac_, from, target, std::nullopt, std::nullopt, out);
  if (len == 0) {
    rte_pktmbuf_free(m);
    return;
  }
  m->data_len = static_cast<uint16_t>(len);
  m->pkt_len = static_cast<uint32_t>(len);
  QueueControl(m);
}

void Generator::Receive(int64_t now_ns) {
  for (uint16_t q = 0; q < o_.queues; ++q) ReceiveQueue(q, now_ns);
}

void Generator::ReceiveQueue(uint16_t queue, int64_t now_ns) {
  rte_mbuf* rx[kBurst];
  const uint16_t n = rte_eth_rx_burst(o_.port, queue, rx, kBurst);
  for (uint16_t i = 0; i < n; ++i) {
    rte_mbuf* m = rx[i];
    std::span<uint8_t> frame(rte_pktmbuf_mtod(m, uint8_t*), rte_pktmbuf_data_len(m));
    const packet::FrameInfo info = packet::ParseFrame(frame);
    if (!info.ok()) {
      rte_pktmbuf_free(m);
      continue;
    }
    if (info.kind == packet::FrameKind::kArp && !o_.raw) {
      if (std::optional<packet::ArpMessage> arp = packet::ParseArp(frame, info)) {
        if (arp->sender_ip == o_.server_ip && arp->sender_mac.IsUnicast()) {
          relay_mac_ = arp->sender_mac;
        }
      }
      std::span<uint8_t> out(rte_pktmbuf_mtod(m, uint8_t*),
                             rte_pktmbuf_data_len(m) + rte_pktmbuf_tailroom(m));
      const packet::Reply r = packet::BuildArpReply(frame, info, mac_, ours_, out);
      if (r.verdict == packet::ReplyVerdict::kReply) {
        m->data_len = static_cast<uint16_t>(r.length);
        m->pkt_len = static_cast<uint32_t>(r.length);
        QueueControl(m);
        continue;
      }
      rte_pktmbuf_free(m);
      continue;
    }
    if (info.fast_path) {
      if (trial_ != nullptr) {
        HandleTraffic(frame, info);
      } else if (handshakes_ && info.dst_ip == o_.client_ip && info.src_ip == o_.server_ip &&
                 info.src_port == o_.server_port && info.dst_port >= o_.client_port_base) {
        handshakes_->OnMessage(info.dst_port - o_.client_port_base,
                               frame.subspan(info.payload_offset, info.payload_length), now_ns);
      }
    }
    rte_pktmbuf_free(m);
  }
}

bool Generator::ResolveRelay() {
  const int64_t deadline = MonotonicNs() + 10'000'000'000;
  int64_t next_request = 0;
  while (!relay_mac_) {
    const int64_t now = MonotonicNs();
    if (now > deadline || g_stop.load()) {
      std::fprintf(stderr, "no ARP reply from %s within 10 s\n", o_.server_ip.ToString().c_str());
      return false;
    }
    if (now >= next_request) {
      // From both our addresses: the relay learns the peer address from the request too.
      SendArpRequest(o_.client_ip, o_.server_ip);
      SendArpRequest(o_.peer_ip, o_.server_ip);
      next_request = now + 100'000'000;
    }
    FlushControl();
    Receive(now);
    FlushControl();
  }
  std::printf("relay %s is at %s\n", o_.server_ip.ToString().c_str(),
              relay_mac_->ToString().c_str());
  return true;
}

bool Generator::Handshake() {
  HandshakeOptions ho;
  ho.secret = o_.secret;
  ho.user = o_.user;
  ho.password = o_.password;
  ho.realm = o_.realm;
  ho.window = o_.window;
  ho.rto_ms = o_.rto_ms;
  const SocketAddress server{o_.server_ip, o_.server_port};
  handshakes_.emplace(&allocs_, ho, [this, server](const TurnAllocation& a,
                                                   std::span<const uint8_t> bytes) {
    SendUdp(a.client, server, bytes);
  });
  const int64_t t0 = MonotonicNs();
  const int64_t deadline = t0 + static_cast<int64_t>(o_.setup_timeout_s * 1e9);
  int64_t next_arp = t0 + 1'000'000'000;
  while (!handshakes_->done()) {
    const int64_t now = MonotonicNs();
    if (now > deadline || g_stop.load()) {
      std::fprintf(stderr, "handshakes did not finish (%d ok, %d failed of %d)\n",
                   handshakes_->stats().ok, handshakes_->stats().failed, o_.allocations);
      return false;
    }
    if (now >= next_arp) {  // keep the relay's neighbour entry for the peer address fresh
      SendArpRequest(o_.peer_ip, o_.server_ip);
      next_arp = now + 1'000'000'000;
    }
    handshakes_->Poll(now);
    FlushControl();
    Receive(now);
    FlushControl();
  }
  const HandshakeStats& s = handshakes_->stats();
  const double secs = static_cast<double>(MonotonicNs() - t0) / 1e9;
  std::printf("handshakes: %d ok, %d failed in %.2f s (%.0f allocations/s), %d retransmits, "
              "%d integrity failures\n",
              s.ok, s.failed, secs, s.ok / secs, s.retransmits, s.integrity_failures);
  if (s.failed > 0) {
    for (const auto& [code, count] : s.error_codes) {
      std::fprintf(stderr, "  %d failed with %s\n", count,
                   code == -1   ? "timeout"
                   : code == -2 ? "a malformed or unexpected response"
                                : absl::StrFormat("error %d", code).c_str());
    }
    for (const TurnAllocation& a : allocs_) {
      if (a.step == Step::kFailed) {
        std::fprintf(stderr, "  first failure: allocation %u (client %s) code %d\n", a.index,
                     a.client.ToString().c_str(), a.error_code);
        break;
      }
    }
    std::fprintf(stderr, "FAILED: %d of %d allocations did not complete\n", s.failed,
                 o_.allocations);
    return false;
  }
  return true;
}

void Generator::BuildTemplates() {
  const packet::MacAddress dst = o_.raw ? o_.raw_dst_mac : *relay_mac_;
  for (int dir = 0; dir < 2; ++dir) {
    const size_t udp_payload = o_.payload + (dir == 0 ? stun::kChannelDataHeaderSize : 0);
    std::vector<uint8_t>& t = templates_[dir];
    t.assign(kEthIpUdp + udp_payload, 0);
    uint8_t* payload = t.data() + kEthIpUdp;
    if (dir == 0) {
      stun::WriteChannelDataHeader(payload, stun::kMinChannel, static_cast<uint16_t>(o_.payload));
    }
    packet::UdpTxParams p;
    p.src_mac = mac_;
    p.dst_mac = dst;
    p.src = {dir == 0 ? o_.client_ip : o_.peer_ip, 1};
    p.dst = {o_.server_ip, 1};
    p.dont_fragment = true;  // IPv4 ID 0: the IP header is the same for every packet
    packet::PrependUdpHeaders(std::span<uint8_t>(t), kEthIpUdp, udp_payload, p);
    std::vector<uint8_t> segment(t.begin() + 34, t.end());
    segment[0] = segment[1] = segment[2] = segment[3] = 0;  // ports
    segment[6] = segment[7] = 0;                            // checksum field
    if (dir == 0) segment[8] = segment[9] = 0;              // channel number
    base_sum_[dir] = packet::Sum16(segment, packet::PseudoHeaderSum(p.src.ip, p.dst.ip, 17,
                                                                    segment.size()));
  }
  std::printf("frames: %zu bytes (ChannelData, client -> relay), %zu bytes (UDP, peer -> relay)\n",
              templates_[0].size(), templates_[1].size());
}

// Packet k of a trial: allocation (k / 2) mod N, direction k mod 2.
void Generator::FillFrame(uint8_t* p, uint64_t k, uint64_t tsc) {
  const int dir = static_cast<int>(k & 1);
  const uint32_t index = static_cast<uint32_t>((k >> 1) % allocs_.size());
  const TurnAllocation& a = allocs_[index];
  const std::vector<uint8_t>& t = templates_[dir];
  std::memcpy(p, t.data(), t.size());
  uint8_t* body = p + kEthIpUdp;
  if (dir == 0) {
    Store16(p + 34, a.client.port);
    Store16(p + 36, o_.server_port);
    Store16(body, a.channel);
    body += stun::kChannelDataHeaderSize;
  } else {
    Store16(p + 34, a.peer.port);
    Store16(p + 36, a.relayed.port);
  }
  Store32(body, kMagic);
  Store32(body + 4, trial_id_);
  Store32(body + 8, index);
  Store32(body + 12, static_cast<uint32_t>(dir));
  std::memcpy(body + 16, &k, 8);
  std::memcpy(body + 24, &tsc, 8);
  uint32_t sum = packet::Sum16({p + 34, 4}, base_sum_[dir]);
  if (dir == 0) sum += a.channel;
  const uint16_t checksum = packet::Finish(packet::Sum16({body, kBodyHeader}, sum));
  Store16(p + 40, checksum == 0 ? 0xffff : checksum);
}

void Generator::HandleTraffic(std::span<const uint8_t> frame, const packet::FrameInfo& info) {
  if ((trial_->checked + trial_->misrouted + trial_->total_received()) % 16 == 0) {
    ++trial_->checked;
    const std::span<const uint8_t> segment = frame.subspan(info.l4_offset, info.l4_length);
    if (segment.size() < 8 || (segment[6] == 0 && segment[7] == 0) ||
        !packet::UdpChecksumValid(info.src_ip, info.dst_ip, segment)) {
      ++trial_->bad_checksums;
    }
  }
  std::span<const uint8_t> payload = frame.subspan(info.payload_offset, info.payload_length);
  std::optional<uint16_t> channel;
  if (payload.size() >= 4 && (payload[0] & 0xC0) == 0x40) {  // ChannelData
    channel = Load16(payload.data());
    const uint16_t len = Load16(payload.data() + 2);
    if (len + 4u > payload.size()) return;
    payload = payload.subspan(4, len);
  }
  if (payload.size() < kBodyHeader || Load32(payload.data()) != kMagic ||
      Load32(payload.data() + 4) != trial_id_) {
    return;
  }
  const uint32_t index = Load32(payload.data() + 8);
  const uint32_t dir = Load32(payload.data() + 12);
  uint64_t tsc;
  std::memcpy(&tsc, payload.data() + 24, 8);
  const uint64_t now = rte_rdtsc();
  if (index >= allocs_.size() || dir > 1) {
    ++trial_->misrouted;
    return;
  }
  if (!o_.raw) {
    const TurnAllocation& a = allocs_[index];
    const bool ok =
        dir == 0 ? (!channel && info.dst_ip == o_.peer_ip && info.dst_port == a.peer.port &&
                    info.src_port == a.relayed.port)
                 : (channel && *channel == a.channel && info.dst_ip == o_.client_ip &&
                    info.dst_port == a.client.port && info.src_port == o_.server_port);
    if (!ok) {
      ++trial_->misrouted;
      return;
    }
  }
  ++trial_->received[dir];
  if (now < window_end_tsc_) ++trial_->received_in_window;
  trial_->latency.Record(static_cast<int64_t>((now - tsc) * 1e9 / static_cast<double>(tsc_hz_)));
}

Trial Generator::RunTrial(double rate, double seconds) {
  Trial t;
  t.rate = rate;
  t.seconds = seconds;
  ++trial_id_;
  trial_ = &t;
  const uint64_t t0 = rte_rdtsc();
  window_end_tsc_ = t0 + static_cast<uint64_t>(seconds * static_cast<double>(tsc_hz_));
  const uint64_t drain_end = window_end_tsc_ + static_cast<uint64_t>(o_.drain_ms) * tsc_hz_ / 1000;
  const double per_tsc = rate / static_cast<double>(tsc_hz_);
  uint64_t k = 0;
  uint64_t next_arp = t0 + tsc_hz_;
  rte_mbuf* pending[kBurst];
  uint16_t n_pending = 0;
  // The TSC stamp of the oldest pending frame. Frames a full TX ring refused are re-stamped
  // before they are offered again, but only once they have waited kRestampNs: re-stamping all
  // of them on every retry (a checksum update each) took about a tenth of this core while the
  // relay pushed back, time the receive path then lacked. A frame's latency may therefore
  // include up to kRestampNs of waiting in the generator.
  constexpr uint64_t kRestampNs = 2000;
  const uint64_t restamp_tsc = std::max<uint64_t>(1, tsc_hz_ * kRestampNs / 1'000'000'000);
  uint64_t oldest_stamp = 0;
  while (!g_stop.load(std::memory_order_relaxed)) {
    const uint64_t now = rte_rdtsc();
    if (now < window_end_tsc_) {
      // Frames the TX ring did not take are kept and offered again (re-stamped), so a full
      // ring costs a retry, not a rebuild.
      if (n_pending < kBurst) {
        uint16_t want = static_cast<uint16_t>(kBurst - n_pending);
        if (rate > 0) {
          const double allowed = static_cast<double>(now - t0) * per_tsc -
                                 static_cast<double>(k + n_pending);
          want = allowed <= 0 ? 0 : static_cast<uint16_t>(std::min<double>(want, allowed));
        }
        if (want > 0 && rte_pktmbuf_alloc_bulk(pool_, pending + n_pending, want) == 0) {
          if (n_pending == 0) oldest_stamp = now;
          for (uint16_t i = 0; i < want; ++i) {
            rte_mbuf* m = pending[n_pending + i];
            const uint64_t seq = k + n_pending + i;
            const size_t len = templates_[seq & 1].size();
            FillFrame(rte_pktmbuf_mtod(m, uint8_t*), seq, now);
            m->data_len = static_cast<uint16_t>(len);
            m->pkt_len = static_cast<uint32_t>(len);
          }
          n_pending = static_cast<uint16_t>(n_pending + want);
        }
      }
      if (n_pending > 0) {
        if (now - oldest_stamp >= restamp_tsc) {  // (only frames a full ring refused wait)
          for (uint16_t i = 0; i < n_pending; ++i) {
            const uint64_t seq = k + i;
            uint8_t* frame = rte_pktmbuf_mtod(pending[i], uint8_t*);
            uint8_t* body =
                frame + kEthIpUdp + ((seq & 1) == 0 ? stun::kChannelDataHeaderSize : 0);
            uint8_t old_stamp[8];
            std::memcpy(old_stamp, body + 24, 8);
            std::memcpy(body + 24, &now, 8);
            const uint16_t c =
                packet::ChecksumUpdateBytes(Load16(frame + 40), old_stamp, {body + 24, 8});
            Store16(frame + 40, c == 0 ? 0xffff : c);
          }
          oldest_stamp = now;
        }
        const uint16_t sent = TxBurst(pending, n_pending);
        for (uint16_t i = 0; i < sent; ++i) ++t.sent[(k + i) & 1];
        t.tx_full += n_pending - sent;  // back-pressure: offered again next time
        std::copy(pending + sent, pending + n_pending, pending);
        n_pending = static_cast<uint16_t>(n_pending - sent);
        k += sent;
      }
      if (!o_.raw && now >= next_arp) {
        SendArpRequest(o_.peer_ip, o_.server_ip);
        next_arp = now + tsc_hz_;
      }
    } else if (now >= drain_end) {
      break;
    }
    Receive(0);
    if (n_ctl_ > 0) FlushControl();
  }
  rte_pktmbuf_free_bulk(pending, n_pending);
  trial_ = nullptr;
  return t;
}

void PrintTrial(const char* label, const Trial& t) {
  std::printf(
      "%s: rate=%s seconds=%.2f sent=%lu (%lu ChannelData + %lu UDP) received=%lu "
      "(%lu at peers + %lu at clients) delivered=%.3f Mpps offered=%.3f Mpps loss=%.4f%% "
      "p50=%.1f us p99=%.1f us max=%.1f us misrouted=%lu tx_full=%lu checked=%lu "
      "bad_checksums=%lu\n",
      label, t.rate > 0 ? absl::StrFormat("%.0f", t.rate).c_str() : "max", t.seconds,
      t.total_sent(), t.sent[0], t.sent[1], t.total_received(), t.received[0], t.received[1],
      t.delivered_mpps(), t.offered_mpps(), t.loss_pct(), t.latency.Quantile(0.5) / 1e3,
      t.latency.Quantile(0.99) / 1e3, static_cast<double>(t.latency.max_ns()) / 1e3,
      t.misrouted, t.tx_full, t.checked, t.bad_checksums);
  std::fflush(stdout);
}

bool Generator::WritePcap() {
  std::vector<std::vector<uint8_t>> frames;
  // Two packets per allocation (one each way): a Pktgen replay loops over the file.
  const uint64_t n = 2 * allocs_.size();
  frames.reserve(n);
  for (uint64_t k = 0; k < n; ++k) {
    std::vector<uint8_t> f(templates_[k & 1].size());
    FillFrame(f.data(), k, 0);
    frames.push_back(std::move(f));
  }
  return WritePcapAndLua(o_.pcap, frames, o_.rate);
}

int Main(int argc, char** argv) {
  int split = argc;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--") == 0) {
      split = i;
      break;
    }
  }
  Options o;
  if (!ParseOptions(split, argv, &o)) {
    Usage();
    return 2;
  }
  std::vector<char*> eal = {argv[0]};
  for (int i = split + 1; i < argc; ++i) eal.push_back(argv[i]);
  eal.push_back(nullptr);
  if (rte_eal_init(static_cast<int>(eal.size() - 1), eal.data()) < 0) {
    std::fprintf(stderr, "EAL init failed: %s\n", rte_strerror(rte_errno));
    return 2;
  }
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  int rc = 1;
  {
    Generator g(o);
    do {
      if (!g.Init()) break;
      if (!o.raw) {
        if (!g.ResolveRelay() || !g.Handshake()) break;
      }
      g.BuildTemplates();
      if (!o.pcap.empty()) {
        if (!g.WritePcap()) break;
        std::printf("wrote %s and %s.lua\n", o.pcap.c_str(), o.pcap.c_str());
      }
      std::vector<Trial> trials;
      trials.push_back(g.RunTrial(o.rate, o.seconds));
      PrintTrial("trial 1", trials.back());
      const Trial* best = &trials.back();
      if (o.max_loss_pct >= 0 && trials.back().loss_pct() > o.max_loss_pct) {
        // Bisect the offered rate in (0, first trial's delivered rate].
        double lo = 0, hi = trials.back().delivered_mpps() * 1e6;
        best = nullptr;
        trials.reserve(o.search_steps + 1);
        double rate = hi;
        for (int s = 0; s < o.search_steps && !g_stop.load(); ++s) {
          trials.push_back(g.RunTrial(rate, o.trial_seconds));
          const Trial& t = trials.back();
          PrintTrial(absl::StrFormat("trial %d", s + 2).c_str(), t);
          if (t.loss_pct() <= o.max_loss_pct) {
            if (best == nullptr || t.delivered_mpps() > best->delivered_mpps()) best = &t;
            lo = rate;
          } else {
            hi = rate;
          }
          rate = (lo + hi) / 2;
        }
        if (best == nullptr) {
          std::fprintf(stderr, "no trial met loss <= %.3f%%\n", o.max_loss_pct);
          best = &trials.front();
        }
      }
      std::printf(
          "GEN mode=%s trials=%zu rate_pps=%.0f seconds=%.2f sent=%lu received=%lu "
          "delivered_mpps=%.4f offered_mpps=%.4f loss_pct=%.4f p50_us=%.1f p99_us=%.1f "
          "misrouted=%lu bad_checksums=%lu\n",
          o.raw ? "raw" : "relay", trials.size(), best->rate, best->seconds, best->total_sent(),
          best->total_received(), best->delivered_mpps(), best->offered_mpps(), best->loss_pct(),
          best->latency.Quantile(0.5) / 1e3, best->latency.Quantile(0.99) / 1e3,
          best->misrouted, best->bad_checksums);
      rc = best->misrouted > 0 || best->bad_checksums > 0 ? 1 : 0;
      std::fflush(stdout);
      // --linger: the peer can be read (metrics) and stopped before this end of the memif
      // link goes away. DPDK 22.11's memif PMD unmaps the shared rings on disconnect while the
      // other side's lcores may be inside rx/tx_burst, which then fault (docs/dpdk.md).
      for (const int64_t end = MonotonicNs() + static_cast<int64_t>(o.linger_s * 1e9);
           !g_stop.load() && MonotonicNs() < end;) {
        rte_delay_us_sleep(50'000);  // sleeps (rte_delay_ms would spin)
      }
    } while (false);
  }
  rte_eth_dev_stop(o.port);
  rte_eth_dev_close(o.port);
  rte_eal_cleanup();
  return rc;
}

}  // namespace
}  // namespace turnpike::dpdkgen

int main(int argc, char** argv) { return turnpike::dpdkgen::Main(argc, argv); }
