// Start-up and lifecycle of the DPDK backend: EAL, port, mempool, workers on lcores.
#include "dataplane/dpdk/dpdk_backend.h"

#include <rte_bus_vdev.h>
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_flow.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_pdump.h>
#include <rte_ring.h>
#include <rte_telemetry.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "dataplane/dpdk/dpdk_worker.h"
#include "dataplane/dpdk/flow_steering.h"
#include "spdlog/spdlog.h"

namespace turnpike::dataplane {
namespace {

constexpr uint16_t kRxDescriptors = 1024;
constexpr uint16_t kTxDescriptors = 1024;
constexpr uint16_t kKernelDescriptors = 512;  // each way, on the exception path's TAP port
// rte_flow rules for relay port steering at most, over both relay addresses (a port that matches
// whole ports only, such as net_tap, needs one per port and address).
constexpr size_t kMaxSteeringRules = 4096;

std::string EalError(int err) {
  std::string hint;
  switch (err) {
    case ENOMEM:
      hint = " (no hugepages? as root: echo 1024 > /proc/sys/vm/nr_hugepages; mkdir -p "
             "/dev/hugepages; mount -t hugetlbfs nodev /dev/hugepages; or add --no-huge to "
             "dpdk-args for virtual devices)";
      break;
    case EACCES:
    case EPERM:
      hint = " (DPDK needs root, or CAP_SYS_ADMIN and CAP_IPC_LOCK, and access to hugepages)";
      break;
    case EALREADY:
      hint = " (the EAL is already initialised in this process)";
      break;
    case EINVAL:
      hint = " (check dpdk-args: an unknown option or a bad --vdev)";
      break;
    default:
      break;
  }
  return absl::StrFormat("DPDK EAL initialisation failed: %s%s", rte_strerror(err), hint);
}

// The EAL exists once per process, so its telemetry callbacks (plain function pointers, run on
// the EAL's telemetry thread) find the backend here. Reads are of counters written by the
// workers without atomics: stale values are fine, as for /metrics.
std::mutex g_backend_mu;
const DpdkBackend* g_backend = nullptr;  // guarded by g_backend_mu

int TelemetryCounters(const char* /*cmd*/, const char* /*params*/, rte_tel_data* d) {
  std::lock_guard lock(g_backend_mu);  // the backend is not destroyed while this reads it
  if (g_backend == nullptr) return -1;
  turn::EngineCounters e;
  IoCounters io;
  for (size_t w = 0; w < g_backend->worker_count(); ++w) {
    e.Add(g_backend->engine_counters(w));
    io.Add(g_backend->io_counters(w));
  }
  rte_tel_data_start_dict(d);
  rte_tel_data_add_dict_u64(d, "workers", g_backend->worker_count());
  rte_tel_data_add_dict_u64(d, "allocations", io.allocations);
  rte_tel_data_add_dict_u64(d, "rx_packets", io.rx_packets);
  rte_tel_data_add_dict_u64(d, "tx_packets", io.tx_packets);
  rte_tel_data_add_dict_u64(d, "rx_not_for_relay", io.rx_exception);
  rte_tel_data_add_dict_u64(d, "tx_neighbor_unresolved", io.tx_neighbor_pending);
  rte_tel_data_add_dict_u64(d, "tx_ring_full", io.tx_err_again);
  rte_tel_data_add_dict_u64(d, "tx_no_mbuf", io.tx_no_slot);
  rte_tel_data_add_dict_u64(d, "tx_too_big", io.tx_too_big);
  rte_tel_data_add_dict_u64(d, "dispatched", io.dispatched);
  rte_tel_data_add_dict_u64(d, "dispatch_drops", io.dispatch_drops);
  rte_tel_data_add_dict_u64(d, "to_kernel", io.to_kernel);
  rte_tel_data_add_dict_u64(d, "from_kernel", io.from_kernel);
  rte_tel_data_add_dict_u64(d, "tx_neighbor_parked", io.tx_neighbor_parked);
  rte_tel_data_add_dict_u64(d, "bursts", io.bursts);
  rte_tel_data_add_dict_u64(d, "loop_iterations", io.loop_iterations);
  rte_tel_data_add_dict_u64(d, "busy_ns", io.busy_ns);
  rte_tel_data_add_dict_u64(d, "tsc_hz", rte_get_tsc_hz());
  rte_tel_data_add_dict_u64(d, "stage_packets", io.stage_packets);
  rte_tel_data_add_dict_u64(d, "stage_cycles_rx", io.stage_cycles_rx);
  rte_tel_data_add_dict_u64(d, "stage_cycles_classify", io.stage_cycles_classify);
  rte_tel_data_add_dict_u64(d, "stage_cycles_engine", io.stage_cycles_engine);
  rte_tel_data_add_dict_u64(d, "stage_cycles_build", io.stage_cycles_build);
  rte_tel_data_add_dict_u64(d, "stage_cycles_tx", io.stage_cycles_tx);
  rte_tel_data_add_dict_u64(d, "relayed_to_peer", e.to_peer_packets);
  rte_tel_data_add_dict_u64(d, "relayed_to_client", e.to_client_packets);
  rte_tel_data_add_dict_u64(d, "stun_requests", e.stun_requests);
  for (size_t i = 0; i < e.drops.size(); ++i) {
    const std::string name =
        "drop_" + std::string(turn::DropReasonName(static_cast<turn::DropReason>(i)));
    rte_tel_data_add_dict_u64(d, name.c_str(), e.drops[i]);
  }
  return 0;
}

// dpdk-kernel-interface: a net_tap port whose kernel side is `iface`, with the data plane's
// MAC (so the kernel's frames leave with it and frames for it are the kernel's too). Returns
// the port id.
absl::StatusOr<uint16_t> StartKernelPort(const std::string& iface, const packet::MacAddress& mac,
                                         rte_mempool* pool, int socket) {
  const char* const name = "net_tap_kernel";
  const std::string devargs = absl::StrFormat("iface=%s,mac=%s", iface, mac.ToString());
  if (int rc = rte_vdev_init(name, devargs.c_str()); rc != 0) {
    return absl::UnavailableError(absl::StrFormat(
        "dpdk-kernel-interface=%s: cannot create the TAP interface (%s): is the name taken, "
        "or /dev/net/tun missing?",
        iface, rte_strerror(rc < 0 ? -rc : rc)));
  }
  uint16_t port = 0;
  if (rte_eth_dev_get_port_by_name(name, &port) != 0) {
    return absl::InternalError("dpdk-kernel-interface: the TAP port has no port id");
  }
  rte_eth_conf conf{};
  if (int rc = rte_eth_dev_configure(port, 1, 1, &conf); rc < 0) {
    return absl::UnavailableError(
        absl::StrFormat("dpdk-kernel-interface=%s: %s", iface, rte_strerror(-rc)));
  }
  uint16_t nb_rx = kKernelDescriptors, nb_tx = kKernelDescriptors;
  rte_eth_dev_adjust_nb_rx_tx_desc(port, &nb_rx, &nb_tx);
  if (int rc = rte_eth_rx_queue_setup(port, 0, nb_rx, socket, nullptr, pool); rc < 0) {
    return absl::UnavailableError(
        absl::StrFormat("dpdk-kernel-interface=%s: RX queue: %s", iface, rte_strerror(-rc)));
  }
  if (int rc = rte_eth_tx_queue_setup(port, 0, nb_tx, socket, nullptr); rc < 0) {
    return absl::UnavailableError(
        absl::StrFormat("dpdk-kernel-interface=%s: TX queue: %s", iface, rte_strerror(-rc)));
  }
  if (int rc = rte_eth_dev_start(port); rc < 0) {
    return absl::UnavailableError(
        absl::StrFormat("dpdk-kernel-interface=%s: %s", iface, rte_strerror(-rc)));
  }
  return port;
}

// A datagram from a relay of the kernel (src) to the data plane's own address (dst), on the
// stream host's thread: queued for worker 0, which builds the frame. Not taken when a relay of
// the kernel holds dst (the kernel delivers that itself).
NodeSend SendToOwnRelay(DpdkFabric& fabric, const SocketAddress& src, const SocketAddress& dst,
                        std::span<const uint8_t> payload) {
  if (src.ip.family != dst.ip.family ||
      fabric.kernel_relays->open[dst.ip.is_v4() ? 0 : 1][dst.port].load(
          std::memory_order_relaxed) != 0) {
    return NodeSend::kNotTaken;
  }
  auto* d = new NodeDatagram{src, dst, std::vector<uint8_t>(payload.begin(), payload.end())};
  if (rte_ring_sp_enqueue(fabric.from_kernel_relays, d) != 0) {
    delete d;
    return NodeSend::kDropped;
  }
  return NodeSend::kQueued;
}

// Lets `iface` take frames whose source is one of the kernel's own addresses: the data plane's
// relays send to the kernel's from the node's address (net.ipv4.conf.IFACE.accept_local). IPv6
// needs no setting: the kernel takes such frames as they are (dpdk_kernel_test.sh relays both
// ways over each family).
void AcceptLocalSources(const std::string& iface) {
  const std::string path = absl::StrFormat("/proc/sys/net/ipv4/conf/%s/accept_local", iface);
  std::FILE* f = std::fopen(path.c_str(), "w");
  bool ok = f != nullptr && std::fputs("1\n", f) >= 0;
  if (f != nullptr && std::fclose(f) != 0) ok = false;  // the write happens here
  if (!ok) {
    spdlog::warn("cannot set {}: relays of TURN over TCP / TLS clients will not receive from "
                 "the data plane's relays on this node",
                 path);
  }
}

static int LaunchWorker(void* arg) {
  static_cast<DpdkWorker*>(arg)->Run();
  return 0;
}

}  // namespace

absl::StatusOr<std::unique_ptr<DpdkBackend>> DpdkBackend::Create(const ServerConfig& config) {
  std::unique_ptr<DpdkBackend> b(new DpdkBackend());
  b->config_ = config;
  ServerConfig& cfg = b->config_;
  if (cfg.dpdk_addresses.empty()) {
    return absl::InvalidArgumentError("backend=dpdk needs dpdk-address=IP/LEN");
  }
  if (cfg.listening_port == 0) cfg.listening_port = 3478;  // no kernel to pick one

  std::vector<std::string> args = {"turnpiked"};
  for (absl::string_view a : absl::StrSplit(cfg.dpdk_args, ' ', absl::SkipEmpty())) {
    args.emplace_back(a);
  }
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  if (rte_eal_init(static_cast<int>(args.size()), argv.data()) < 0) {
    return absl::UnavailableError(EalError(rte_errno));
  }

  // dpdk-dumpcap / dpdk-pdump attach to a running node as secondary processes (they need the
  // same --file-prefix, and hugepages: a --no-huge primary cannot share its memory).
  if (rte_pdump_init() != 0) {
    spdlog::warn("rte_pdump_init failed ({}): packet capture with dpdk-dumpcap is unavailable",
                 rte_strerror(rte_errno));
  }
  rte_telemetry_register_cmd("/turnpike/counters", TelemetryCounters,
                             "Turnpike's relay counters, summed over workers. No parameters.");

  // The main lcore runs the control plane; every other lcore runs a worker.
  unsigned lcore;
  RTE_LCORE_FOREACH_WORKER(lcore) { b->lcores_.push_back(lcore); }
  if (b->lcores_.empty()) {
    return absl::InvalidArgumentError(
        "dpdk-args must give at least two lcores (e.g. -l 0-1): the main one runs the control "
        "plane, each other one a worker");
  }
  if (b->lcores_.size() > DpdkFabric::kMaxWorkers) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "dpdk-args gives %d worker lcores; at most %d are supported", b->lcores_.size(),
        DpdkFabric::kMaxWorkers));
  }
  const uint32_t workers = static_cast<uint32_t>(b->lcores_.size());

  const uint16_t port = cfg.dpdk_port;
  b->port_ = port;
  if (!rte_eth_dev_is_valid_port(port)) {
    return absl::NotFoundError(absl::StrFormat(
        "no DPDK port %d (%d available): give dpdk-args a --vdev (net_tap0, net_memif0, ...) or "
        "bind a NIC to vfio-pci (docs/dpdk.md)",
        port, rte_eth_dev_count_avail()));
  }
  const int socket = rte_eth_dev_socket_id(port);
  rte_eth_dev_info info{};
  if (int rc = rte_eth_dev_info_get(port, &info); rc != 0) {
    return absl::UnavailableError(
        absl::StrFormat("DPDK port %d: no device info: %s", port, rte_strerror(-rc)));
  }
  // Checksum offload where the port has it (UDP over both families; the IPv4 header too):
  // otherwise the worker derives the UDP checksum from the received one (RFC 1624) or sums it.
  ChecksumOffload offload;
  rte_eth_conf conf{};
  const bool may_offload = !cfg.dpdk_no_checksum_offload;
  if (may_offload && (info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_UDP_CKSUM) != 0) {
    conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_UDP_CKSUM;
    offload.udp = true;
  }
  if (may_offload && (info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_IPV4_CKSUM) != 0) {
    conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_IPV4_CKSUM;
    offload.ipv4 = true;
  }
  // dpdk-queues (turn/config.h): a queue pair per worker where the port spreads frames by RSS
  // (over the IP addresses and UDP ports) or the configuration says the peer does; otherwise
  // one pair through worker 0.
  const uint64_t rss = info.flow_type_rss_offloads & (RTE_ETH_RSS_IP | RTE_ETH_RSS_UDP);
  const bool enough = info.max_rx_queues >= workers && info.max_tx_queues >= workers;
  if (workers > 1 && cfg.dpdk_queues == DpdkQueues::kPerWorker && !enough) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "dpdk-queues=per-worker: port %d has %d RX / %d TX queues for %d workers", port,
        info.max_rx_queues, info.max_tx_queues, workers));
  }
  const bool own_queues =
      workers > 1 && enough &&
      (cfg.dpdk_queues == DpdkQueues::kPerWorker ||
       (cfg.dpdk_queues == DpdkQueues::kAuto && rss != 0));
  const uint16_t queues = own_queues ? static_cast<uint16_t>(workers) : 1;
  // Receive and transmit descriptors of each queue pair, one burst in flight each way,
  // per-lcore caches, and with several workers their rings (full in the worst case) and held
  // bursts.
  const unsigned mbufs = 2 * queues * (kRxDescriptors + kTxDescriptors) + 4096 - 1 +
                         (workers > 1 ? (workers + 1) * (2 * DpdkFabric::kRingSize + 512) : 0) +
                         (cfg.dpdk_kernel_interface.empty() ? 0 : 2 * kKernelDescriptors);
  rte_mempool* pool = rte_pktmbuf_pool_create("turnpike_mbufs", mbufs, 256, 0,
                                              RTE_MBUF_DEFAULT_BUF_SIZE,
                                              socket < 0 ? SOCKET_ID_ANY : socket);
  if (pool == nullptr) {
    return absl::ResourceExhaustedError(
        absl::StrFormat("cannot create the mbuf pool (%d mbufs): %s", mbufs,
                        rte_strerror(rte_errno)));
  }
  if (own_queues && rss != 0) {
    conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
    conf.rx_adv_conf.rss_conf.rss_hf = rss;
  }
  if (int rc = rte_eth_dev_configure(port, queues, queues, &conf); rc < 0) {
    return absl::UnavailableError(absl::StrFormat(
        "configuring DPDK port %d with %d queue pairs: %s", port, queues, rte_strerror(-rc)));
  }
  uint16_t nb_rx = kRxDescriptors, nb_tx = kTxDescriptors;
  rte_eth_dev_adjust_nb_rx_tx_desc(port, &nb_rx, &nb_tx);
  for (uint16_t q = 0; q < queues; ++q) {
    if (int rc = rte_eth_rx_queue_setup(port, q, nb_rx, socket, nullptr, pool); rc < 0) {
      return absl::UnavailableError(absl::StrFormat("RX queue %d: %s", q, rte_strerror(-rc)));
    }
    if (int rc = rte_eth_tx_queue_setup(port, q, nb_tx, socket, nullptr); rc < 0) {
      return absl::UnavailableError(absl::StrFormat("TX queue %d: %s", q, rte_strerror(-rc)));
    }
  }
  if (int rc = rte_eth_dev_start(port); rc < 0) {
    return absl::UnavailableError(
        absl::StrFormat("starting DPDK port %d: %s", port, rte_strerror(-rc)));
  }
  b->port_started_ = true;
  rte_eth_allmulticast_enable(port);  // IPv6 neighbour solicitations arrive on multicast
  rte_ether_addr addr{};
  rte_eth_macaddr_get(port, &addr);
  packet::MacAddress mac = packet::MacAddress::From(addr.addr_bytes);
  const std::string driver = info.driver_name != nullptr ? info.driver_name : "";
  if (driver == "net_tap") {
    // A TAP port reports the kernel interface's own MAC: the data plane is the far end of that
    // link and needs an address of its own (locally administered, derived from the port's).
    mac.bytes[0] = static_cast<uint8_t>((mac.bytes[0] | 0x02) & ~0x01);
    mac.bytes[5] ^= 0x80;
  }
  spdlog::info(
      "DPDK port {} ({}) up: MAC {}, {} queue pair(s) of {} RX / {} TX descriptors, {} mbufs, "
      "TX checksum offload: UDP {}, IPv4 header {}",
      port, driver, mac.ToString(), queues, nb_rx, nb_tx, mbufs, offload.udp ? "yes" : "no",
      offload.ipv4 ? "yes" : "no");

  // With several workers: an RX ring each (frames handed to their owner) and, with one queue
  // pair, a TX ring each (frames worker 0 sends for them); dpdk_worker.h.
  absl::StatusOr<std::unique_ptr<DpdkFabric>> fabric =
      DpdkFabric::Create(workers, own_queues, "tp", socket);
  if (!fabric.ok()) return fabric.status();
  b->fabric_ = *std::move(fabric);
  if (own_queues) {
    spdlog::info(
        "DPDK: {} workers, each on its own queue pair ({}); a frame of another worker's "
        "allocation (relay port, client 5-tuple hash) is handed to it",
        workers, rss != 0 ? "RSS" : "the port's peer spreads frames");
  } else if (workers > 1) {
    spdlog::info(
        "DPDK: {} workers on one queue pair ({}); worker 0 polls the port and hands frames to "
        "their owners (relay port, client 5-tuple hash)",
        workers,
        cfg.dpdk_queues == DpdkQueues::kOne ? "dpdk-queues=one"
        : !enough ? absl::StrFormat("the port has %d RX / %d TX queues", info.max_rx_queues,
                                    info.max_tx_queues)
                  : std::string("the port has no RSS; dpdk-queues=per-worker if its peer "
                                "spreads frames over the queues"));
  }
  if (!cfg.dpdk_kernel_interface.empty()) {
    absl::StatusOr<uint16_t> kernel = StartKernelPort(cfg.dpdk_kernel_interface, mac, pool, socket);
    if (!kernel.ok()) return kernel.status();
    b->fabric_->kernel_port = *kernel;
    b->kernel_port_ = *kernel;
    spdlog::info(
        "DPDK exception path: frames not for the relay go to the kernel through {} (MAC {}; "
        "give it the node's address), and what the kernel sends there leaves on port {}",
        cfg.dpdk_kernel_interface, mac.ToString(), port);
  } else {
    spdlog::info("DPDK: no dpdk-kernel-interface: frames not for the relay are dropped and "
                 "counted (rx_not_for_relay)");
  }
  b->node_ = std::make_unique<turn::NodeState>(cfg);
  // TURN over TCP / TLS: only the node's kernel can terminate the connections here, so only
  // with the exception path. The stream host is the last worker, and the kernel gets UDP to the
  // relay ports it opens.
  const bool tls = !cfg.no_tls && !cfg.cert_file.empty();
  std::string stream_error;
  if (b->kernel_port_ >= 0 && (!cfg.no_tcp || tls)) {
    b->fabric_->kernel_relays = std::make_unique<KernelRelayPorts>();
    StreamHostOptions host;
    host.node = b->node_.get();
    host.worker_index = workers;
    host.worker_count = workers + 1;
    host.on_relay = [ports = b->fabric_->kernel_relays.get()](const SocketAddress& relay,
                                                              bool open) {
      ports->open[relay.ip.is_v4() ? 0 : 1][relay.port].store(open ? 1 : 0,
                                                              std::memory_order_relaxed);
    };
    // The kernel would deliver a datagram from its relay to one of ours locally, where no
    // socket holds the port: worker 0 gets it instead. (The other way, a frame from our
    // address reaches the kernel with accept_local set on its interface.)
    b->fabric_->from_kernel_relays = rte_ring_create(
        "tp_from_kernel", DpdkFabric::kRingSize, socket, RING_F_SP_ENQ | RING_F_SC_DEQ);
    host.to_node = [fabric = b->fabric_.get()](const SocketAddress& src, const SocketAddress& dst,
                                               std::span<const uint8_t> payload) {
      return SendToOwnRelay(*fabric, src, dst, payload);
    };
    absl::StatusOr<std::unique_ptr<UringBackend>> streams =
        b->fabric_->from_kernel_relays == nullptr
            ? absl::StatusOr<std::unique_ptr<UringBackend>>(absl::ResourceExhaustedError(
                  absl::StrFormat("cannot create ring tp_from_kernel: %s",
                                  rte_strerror(rte_errno))))
            : UringBackend::CreateStreamHost(cfg, host);
    if (!streams.ok() && tls) {  // asked for by a certificate: say why it cannot be
      return absl::Status(streams.status().code(),
                          absl::StrFormat("TURN over TCP/TLS from the kernel side (no-tcp and "
                                          "no-tls turn it off): %s",
                                          streams.status().message()));
    }
    if (streams.ok()) {
      b->streams_ = *std::move(streams);
      AcceptLocalSources(cfg.dpdk_kernel_interface);
    } else {
      stream_error = std::string(streams.status().message());
    }
  }
  if (!b->streams_) {
    b->fabric_->kernel_relays.reset();
    if (b->fabric_->from_kernel_relays != nullptr) {
      rte_ring_free(b->fabric_->from_kernel_relays);
      b->fabric_->from_kernel_relays = nullptr;
    }
    if (!stream_error.empty()) {
      // TCP is on by default (as in coturn): a kernel without what the stream host needs, or a
      // port taken, should not stop a node that never asked for it.
      spdlog::warn("DPDK: no TURN over TCP from the kernel side ({}); no-tcp silences this",
                   stream_error);
    }
  } else {
    b->fabric_->engines = workers + 1;
    std::string what;
    if (b->streams_->tcp_enabled()) what = absl::StrFormat("TCP on port %d", cfg.listening_port);
    if (b->streams_->tls_listening_port() != 0) {
      absl::StrAppendFormat(&what, "%sTLS on port %d", what.empty() ? "" : " and ",
                            b->streams_->tls_listening_port());
    }
    spdlog::info(
        "DPDK: TURN over {} served by the node's kernel through {} (worker {}); relays of "
        "those allocations are kernel sockets too, and UDP to their ports goes to the kernel",
        what, cfg.dpdk_kernel_interface, workers);
  }
  if (b->kernel_port_ < 0 && (!cfg.no_tcp || tls)) {
    spdlog::info("DPDK: no TURN over TCP or TLS (it needs dpdk-kernel-interface: the node's "
                 "kernel terminates the connections)");
  }
  if (own_queues) {
    // Each worker's engine takes relay ports from a range of its own, and rte_flow rules put
    // peer packets for that range on the worker's queue, where the port can.
    b->node_->PartitionPorts(workers);
    SteeringPlan plan;
    for (const IpAddress& ip : cfg.relay_ips) {
      const bool family_seen =
          std::any_of(plan.relay_ips.begin(), plan.relay_ips.end(),
                      [&](const IpAddress& p) { return p.family == ip.family; });
      if (!family_seen) plan.relay_ips.push_back(ip);  // one relay address per family
    }
    // (Fewer ranges than workers when there are fewer relay ports: the rest take any port.)
    for (uint32_t w = 0; w < b->node_->parts(); ++w) plan.ranges.push_back(b->node_->PartRange(w));
    absl::StatusOr<SteeringResult> steered = SteerRelayPorts(port, plan, kMaxSteeringRules);
    if (steered.ok()) {
      b->steering_rules_ = steered->rules;
      std::string ranges;
      for (uint32_t w = 0; w < plan.ranges.size(); ++w) {
        absl::StrAppendFormat(&ranges, "%sworker %d: %d-%d", w == 0 ? "" : ", ", w,
                              plan.ranges[w].first, plan.ranges[w].second);
      }
      spdlog::info(
          "DPDK: relay ports steered to their worker's queue by {} rte_flow rules ({} blocks "
          "split for the port); relay ports per worker: {}",
          steered->rules, steered->split, ranges);
    } else {
      b->node_->PartitionPorts(1);
      spdlog::info("DPDK: no rte_flow steering of relay ports ({}); peer packets that land on "
                   "another worker's queue are handed to their owner",
                   std::string(steered.status().message()));
    }
  }
  for (uint32_t w = 0; w < workers; ++w) {
    b->workers_.push_back(std::make_unique<DpdkWorker>(
        w, b->config_, b->node_.get(), b->fabric_.get(), port,
        own_queues ? static_cast<uint16_t>(w) : 0, pool, mac, offload, &b->stop_));
  }
  {
    std::lock_guard lock(g_backend_mu);
    g_backend = b.get();
  }
  return b;
}

DpdkBackend::~DpdkBackend() {
  Stop();
  Join();
  {
    std::lock_guard lock(g_backend_mu);
    if (g_backend == this) g_backend = nullptr;
  }
  streams_.reset();  // its engine uses node_
  workers_.clear();
  fabric_.reset();  // frames still in the rings go back to the pool before the port closes
  if (kernel_port_ >= 0) {  // closing the TAP port removes its interface
    rte_eth_dev_stop(static_cast<uint16_t>(kernel_port_));
    rte_eth_dev_close(static_cast<uint16_t>(kernel_port_));
  }
  if (port_started_) {
    if (steering_rules_ > 0) rte_flow_flush(port_, nullptr);
    rte_eth_dev_stop(port_);
    rte_eth_dev_close(port_);
  }
  rte_eal_cleanup();
}

void DpdkBackend::Start() {
  if (started_) return;
  started_ = true;
  for (size_t i = 0; i < workers_.size(); ++i) {
    rte_eal_remote_launch(LaunchWorker, workers_[i].get(), lcores_[i]);
  }
  if (streams_) streams_->Start();
}

void DpdkBackend::Stop() {
  // The stream host first: the DPDK workers keep serving the exception path until Join has seen
  // it exit, so the kernel's closing segments to TCP / TLS clients still leave.
  if (streams_) {
    streams_->Stop();
  } else {
    stop_.store(true, std::memory_order_relaxed);
  }
}

void DpdkBackend::Join() {
  if (!started_ || joined_) return;
  if (streams_) {
    streams_->Join();
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the kernel's FINs out
    stop_.store(true, std::memory_order_relaxed);
  }
  for (unsigned lcore : lcores_) rte_eal_wait_lcore(lcore);
  joined_ = true;
}

std::vector<SocketAddress> DpdkBackend::listening_addresses() const {
  std::vector<SocketAddress> out;
  for (const IpAddress& ip : config_.listening_ips) out.push_back({ip, config_.listening_port});
  return out;
}

const turn::EngineCounters& DpdkBackend::engine_counters(size_t worker) const {
  if (worker == workers_.size()) return streams_->engine_counters(0);
  return workers_[worker]->engine_counters();
}

const IoCounters& DpdkBackend::io_counters(size_t worker) const {
  if (worker == workers_.size()) return streams_->io_counters(0);
  return workers_[worker]->counters();
}

bool DpdkBackend::Post(size_t worker, WorkerCommand command) {
  if (worker == workers_.size() && streams_) return streams_->Post(0, std::move(command));
  if (worker >= workers_.size()) return false;
  workers_[worker]->Post(std::move(command));  // the worker polls; no wake-up needed
  return true;
}

void DpdkBackend::SetEventCallback(WorkerEventCallback callback) {
  event_callback_ = std::move(callback);
  for (auto& w : workers_) w->SetEventCallback(&event_callback_);
  if (streams_) streams_->SetEventCallback(event_callback_);
}

absl::Status DpdkBackend::ReloadTls(const ServerConfig& config) {
  if (streams_) return streams_->ReloadTls(config);
  // Without the exception path there is no TLS to turn on; the rest of a reload goes ahead.
  if (kernel_port_ >= 0 && !config.cert_file.empty() && !config.no_tls) {
    return absl::FailedPreconditionError(
        "TLS was off at start-up; restart turnpiked to open the TLS listener");
  }
  return absl::OkStatus();
}

}  // namespace turnpike::dataplane
