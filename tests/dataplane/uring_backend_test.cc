// End-to-end tests of the io_uring backend in-process: a UringBackend with two workers on
// 127.0.0.1 (listening_port 0, so the kernel picks a free port that listening_port() reports),
// driven by plain UDP sockets that speak STUN/TURN through turn/stun/message.h. Loopback only
// (the stream host's tests bind TEST-NET-1 with IP_FREEBIND, and send nothing).
#include "dataplane/uring/uring_backend.h"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/dataplane/udp_test_socket.h"
#include "turn/stun/message.h"

namespace turnpike::dataplane {
namespace {

using stun::MessageBuilder;
using stun::MessageClass;
using stun::MessageView;
using stun::Method;

constexpr int kTimeoutMs = 5000;
constexpr int kPackets = 1000;
constexpr int kWindow = 50;  // datagrams in flight: keeps socket buffers far from overflowing

const IpAddress kLoopback = IpAddress::Loopback(AddressFamily::kIPv4);

using testing::Datagram;
using testing::UdpSocket;

// Polls `done` (counters another thread writes) until it holds or five seconds pass.
template <typename F>
bool WaitFor(F done) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    usleep(1000);
  }
  return true;
}

stun::TransactionId RandomTid() {
  static std::mt19937 rng(std::random_device{}());
  stun::TransactionId tid;
  for (uint8_t& b : tid) b = static_cast<uint8_t>(rng());
  return tid;
}

// Payload number `i`: its index in the first four bytes, then a pattern; sizes vary 20..1019.
std::vector<uint8_t> Payload(uint32_t i) {
  std::vector<uint8_t> p(20 + (i * 37) % 1000);
  p[0] = static_cast<uint8_t>(i >> 24);
  p[1] = static_cast<uint8_t>(i >> 16);
  p[2] = static_cast<uint8_t>(i >> 8);
  p[3] = static_cast<uint8_t>(i);
  for (size_t j = 4; j < p.size(); ++j) p[j] = static_cast<uint8_t>(i * 7 + j);
  return p;
}
uint32_t PayloadIndex(std::span<const uint8_t> p) {
  return p.size() < 4 ? ~0u : (uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 |
                               uint32_t{p[2]} << 8 | p[3]);
}

// Collects payloads that may arrive in any order and checks each is exact and seen once.
class Tally {
 public:
  explicit Tally(int n) : seen_(n, false) {}
  void Add(std::span<const uint8_t> payload) {
    const uint32_t i = PayloadIndex(payload);
    ASSERT_LT(i, seen_.size());
    EXPECT_FALSE(seen_[i]) << "payload " << i << " twice";
    const std::vector<uint8_t> want = Payload(i);
    EXPECT_TRUE(std::equal(payload.begin(), payload.end(), want.begin(), want.end()))
        << "payload " << i << " differs";
    seen_[i] = true;
    ++count_;
  }
  int count() const { return count_; }

 private:
  std::vector<bool> seen_;
  int count_ = 0;
};

class UringBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_.listening_ips = {kLoopback};
    config_.listening_port = 0;  // the kernel picks; listening_port() reads it back
    config_.relay_ips = {kLoopback};
    // A relay range per test process, so parallel test runs rarely compete for ports.
    config_.min_port = static_cast<uint16_t>(20000 + (getpid() % 45) * 200);
    config_.max_port = static_cast<uint16_t>(config_.min_port + 199);
    config_.no_auth = true;
    config_.allow_loopback_peers = true;
    config_.worker_threads = 2;
    config_.max_allocations = 64;
    UringLimits limits;
    limits.rx_buffers = 1024;  // small rings keep the test light; the paths are the same
    limits.tx_slots = 1024;
    limits.sq_entries = 1024;
    auto created = UringBackend::Create(config_, limits);
    ASSERT_TRUE(created.ok()) << created.status();
    backend_ = *std::move(created);
    server_ = backend_->listening_addresses().front();
    backend_->Start();
  }
  void TearDown() override {
    if (backend_) {
      backend_->Stop();
      backend_->Join();
    }
  }

  // Sends a request and returns the response with the same transaction ID.
  std::optional<Datagram> Transact(UdpSocket& client, Method method,
                                   const std::function<void(MessageBuilder&)>& add) {
    const stun::TransactionId tid = RandomTid();
    std::vector<uint8_t> buf(1024);
    MessageBuilder b(buf, method, MessageClass::kRequest, tid.data());
    add(b);
    b.AddFingerprint();
    EXPECT_TRUE(b.ok());
    buf.resize(b.size());
    client.Send(server_, buf);
    for (;;) {
      std::optional<Datagram> d = client.Receive();
      if (!d) return std::nullopt;
      auto msg = MessageView::Parse(d->bytes, nullptr);
      if (msg && std::memcmp(msg->transaction_id(), tid.data(), tid.size()) == 0) return d;
    }
  }

  // Allocate; returns the relayed address.
  std::optional<SocketAddress> Allocate(UdpSocket& client) {
    auto d = Transact(client, Method::kAllocate,
                      [](MessageBuilder& b) { b.AddU32(stun::attr::kRequestedTransport, 17u << 24); });
    if (!d) return std::nullopt;
    auto msg = MessageView::Parse(d->bytes, nullptr);
    EXPECT_TRUE(msg.has_value());
    if (!msg) return std::nullopt;
    EXPECT_EQ(msg->message_class(), MessageClass::kSuccessResponse) << msg->FindErrorCode().value_or(0);
    return msg->FindXorAddress(stun::attr::kXorRelayedAddress);
  }

  bool Succeeds(UdpSocket& client, Method method,
                const std::function<void(MessageBuilder&)>& add) {
    auto d = Transact(client, method, add);
    if (!d) return false;
    auto msg = MessageView::Parse(d->bytes, nullptr);
    return msg && msg->method() == method &&
           msg->message_class() == MessageClass::kSuccessResponse;
  }

  uint64_t EngineSum(uint64_t turn::EngineCounters::*field) const {
    uint64_t sum = 0;
    for (size_t w = 0; w < backend_->worker_count(); ++w) sum += backend_->engine_counters(w).*field;
    return sum;
  }

  ServerConfig config_;
  std::unique_ptr<UringBackend> backend_;
  SocketAddress server_;
};

TEST_F(UringBackendTest, ReportsTheKernelChosenListeningAddress) {
  ASSERT_EQ(backend_->listening_addresses().size(), 1u);
  EXPECT_EQ(server_.ip, kLoopback);
  EXPECT_NE(server_.port, 0);
  EXPECT_EQ(backend_->listening_port(), server_.port);
  EXPECT_EQ(backend_->worker_count(), 2u);
  ASSERT_EQ(backend_->relay_ips().size(), 1u);
  EXPECT_EQ(backend_->relay_ips()[0], kLoopback);
}

TEST_F(UringBackendTest, BindingRequestGetsItsSourceAsXorMappedAddress) {
  UdpSocket client;
  auto d = Transact(client, Method::kBinding, [](MessageBuilder&) {});
  ASSERT_TRUE(d.has_value()) << "no Binding response";
  EXPECT_EQ(d->from, server_);
  auto msg = MessageView::Parse(d->bytes, nullptr);
  ASSERT_TRUE(msg.has_value());
  EXPECT_EQ(msg->method(), Method::kBinding);
  EXPECT_EQ(msg->message_class(), MessageClass::kSuccessResponse);
  auto mapped = msg->FindXorAddress(stun::attr::kXorMappedAddress);
  ASSERT_TRUE(mapped.has_value());
  EXPECT_EQ(*mapped, client.local());
}

TEST_F(UringBackendTest, ManyClientsAreAllAnsweredAcrossWorkers) {
  constexpr int kClients = 16;
  std::vector<std::unique_ptr<UdpSocket>> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(std::make_unique<UdpSocket>());
    auto d = Transact(*clients.back(), Method::kBinding, [](MessageBuilder&) {});
    ASSERT_TRUE(d.has_value()) << "client " << i;
    auto msg = MessageView::Parse(d->bytes, nullptr);
    ASSERT_TRUE(msg.has_value());
    EXPECT_EQ(msg->FindXorAddress(stun::attr::kXorMappedAddress), clients.back()->local());
  }
  // Every request was counted by exactly one worker (the SO_REUSEPORT hash picks which).
  EXPECT_EQ(EngineSum(&turn::EngineCounters::binding_requests), uint64_t{kClients});
  uint64_t rx = 0;
  for (size_t w = 0; w < backend_->worker_count(); ++w) rx += backend_->io_counters(w).rx_packets;
  EXPECT_EQ(rx, uint64_t{kClients});
  // A send's completion may be reaped just after the client already holds the datagram.
  EXPECT_TRUE(WaitFor([&] {
    uint64_t tx = 0;
    for (size_t w = 0; w < backend_->worker_count(); ++w) tx += backend_->io_counters(w).tx_packets;
    return tx == uint64_t{kClients};
  }));
}

TEST_F(UringBackendTest, ChannelDataRelaysBothWaysWithoutLoss) {
  UdpSocket client, peer;
  auto relay = Allocate(client);
  ASSERT_TRUE(relay.has_value());
  EXPECT_EQ(relay->ip, kLoopback);
  EXPECT_GE(relay->port, config_.min_port);
  EXPECT_LE(relay->port, config_.max_port);
  constexpr uint16_t kChannel = 0x4001;
  ASSERT_TRUE(Succeeds(client, Method::kCreatePermission, [&](MessageBuilder& b) {
    b.AddXorAddress(stun::attr::kXorPeerAddress, peer.local());
  }));
  ASSERT_TRUE(Succeeds(client, Method::kChannelBind, [&](MessageBuilder& b) {
    b.AddU32(stun::attr::kChannelNumber, uint32_t{kChannel} << 16);
    b.AddXorAddress(stun::attr::kXorPeerAddress, peer.local());
  }));

  // Client -> peer: ChannelData in, the bare payload out of the relay address.
  Tally to_peer(kPackets);
  for (int base = 0; base < kPackets; base += kWindow) {
    for (int i = base; i < base + kWindow; ++i) {
      std::vector<uint8_t> p = Payload(i);
      std::vector<uint8_t> frame(4 + p.size());
      stun::WriteChannelDataHeader(frame.data(), kChannel, static_cast<uint16_t>(p.size()));
      std::copy(p.begin(), p.end(), frame.begin() + 4);
      client.Send(server_, frame);
    }
    for (int i = base; i < base + kWindow; ++i) {
      auto d = peer.Receive();
      ASSERT_TRUE(d.has_value()) << "peer got " << to_peer.count() << " of " << kPackets;
      EXPECT_EQ(d->from, *relay);
      to_peer.Add(d->bytes);
    }
  }
  EXPECT_EQ(to_peer.count(), kPackets);

  // Peer -> client: the payload to the relay address comes back as ChannelData.
  Tally to_client(kPackets);
  for (int base = 0; base < kPackets; base += kWindow) {
    for (int i = base; i < base + kWindow; ++i) peer.Send(*relay, Payload(i));
    for (int i = base; i < base + kWindow; ++i) {
      auto d = client.Receive();
      ASSERT_TRUE(d.has_value()) << "client got " << to_client.count() << " of " << kPackets;
      EXPECT_EQ(d->from, server_);
      auto cd = stun::ParseChannelData(d->bytes);
      ASSERT_TRUE(cd.has_value());
      EXPECT_EQ(cd->channel, kChannel);
      to_client.Add(cd->payload);
    }
  }
  EXPECT_EQ(to_client.count(), kPackets);
  EXPECT_EQ(EngineSum(&turn::EngineCounters::to_peer_packets), uint64_t{kPackets});
  EXPECT_EQ(EngineSum(&turn::EngineCounters::to_client_packets), uint64_t{kPackets});
}

TEST_F(UringBackendTest, SendAndDataIndicationsRelayBothWaysWithoutLoss) {
  UdpSocket client, peer;
  auto relay = Allocate(client);
  ASSERT_TRUE(relay.has_value());
  ASSERT_TRUE(Succeeds(client, Method::kCreatePermission, [&](MessageBuilder& b) {
    b.AddXorAddress(stun::attr::kXorPeerAddress, peer.local());
  }));

  Tally to_peer(kPackets);
  std::vector<uint8_t> buf(2048);
  for (int base = 0; base < kPackets; base += kWindow) {
    for (int i = base; i < base + kWindow; ++i) {
      const stun::TransactionId tid = RandomTid();
      MessageBuilder b(buf, Method::kSend, MessageClass::kIndication, tid.data());
      b.AddXorAddress(stun::attr::kXorPeerAddress, peer.local());
      b.AddAttribute(stun::attr::kData, Payload(i));
      ASSERT_TRUE(b.ok());
      client.Send(server_, b.bytes());
    }
    for (int i = base; i < base + kWindow; ++i) {
      auto d = peer.Receive();
      ASSERT_TRUE(d.has_value()) << "peer got " << to_peer.count() << " of " << kPackets;
      EXPECT_EQ(d->from, *relay);
      to_peer.Add(d->bytes);
    }
  }
  EXPECT_EQ(to_peer.count(), kPackets);

  Tally to_client(kPackets);
  for (int base = 0; base < kPackets; base += kWindow) {
    for (int i = base; i < base + kWindow; ++i) peer.Send(*relay, Payload(i));
    for (int i = base; i < base + kWindow; ++i) {
      auto d = client.Receive();
      ASSERT_TRUE(d.has_value()) << "client got " << to_client.count() << " of " << kPackets;
      auto msg = MessageView::Parse(d->bytes, nullptr);
      ASSERT_TRUE(msg.has_value());
      EXPECT_EQ(msg->method(), Method::kData);
      EXPECT_EQ(msg->message_class(), MessageClass::kIndication);
      EXPECT_EQ(msg->FindXorAddress(stun::attr::kXorPeerAddress), peer.local());
      auto data = msg->FindValue(stun::attr::kData);
      ASSERT_TRUE(data.has_value());
      to_client.Add(*data);
    }
  }
  EXPECT_EQ(to_client.count(), kPackets);
}

TEST_F(UringBackendTest, StopJoinsWithAllocationsOpenAndReleasesEverySocket) {
  UdpSocket client1, client2;
  auto relay1 = Allocate(client1);
  auto relay2 = Allocate(client2);
  ASSERT_TRUE(relay1.has_value());
  ASSERT_TRUE(relay2.has_value());
  uint64_t open = 0;
  for (size_t w = 0; w < backend_->worker_count(); ++w) open += backend_->io_counters(w).allocations;
  EXPECT_EQ(open, 2u);

  backend_->Stop();
  backend_->Join();
  uint64_t closed = 0;
  for (size_t w = 0; w < backend_->worker_count(); ++w) {
    closed += backend_->io_counters(w).relays_closed;
    EXPECT_EQ(backend_->io_counters(w).allocations, 0u);
  }
  EXPECT_EQ(closed, 2u);

  // Every socket is closed: the listening port and the relay ports bind again without
  // SO_REUSEPORT.
  for (const SocketAddress& a : {server_, *relay1, *relay2}) {
    const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_storage ss;
    const socklen_t len = a.ToSockaddr(&ss);
    EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&ss), len), 0)
        << a.ToString() << ": " << strerror(errno);
    close(fd);
  }
}

TEST(UringBackendCreate, FailsWithOneClearLineWhenThePortIsInUse) {
  UdpSocket holder;  // plain bind, no SO_REUSEPORT
  ServerConfig config;
  config.listening_ips = {kLoopback};
  config.listening_port = holder.local().port;
  config.no_auth = true;
  config.worker_threads = 1;
  auto created = UringBackend::Create(config);
  ASSERT_FALSE(created.ok());
  const std::string message(created.status().message());
  EXPECT_NE(message.find("in use on 127.0.0.1"), std::string::npos) << message;
  EXPECT_NE(message.find(std::to_string(holder.local().port)), std::string::npos) << message;
  EXPECT_EQ(message.find('\n'), std::string::npos);
}

TEST(UringBackendCreate, FailsForAnAddressThatIsNotOnThisHost) {
  ServerConfig config;
  config.listening_ips = {*IpAddress::Parse("192.0.2.1")};  // TEST-NET-1: bind only, no traffic
  config.listening_port = 0;
  config.no_auth = true;
  config.worker_threads = 1;
  auto created = UringBackend::Create(config);
  ASSERT_FALSE(created.ok());
  EXPECT_NE(std::string(created.status().message()).find("not an address of this host"),
            std::string::npos)
      << created.status();
}

TEST(UringBackendCreate, RefusesWildcardListeningAddresses) {
  ServerConfig config;
  config.listening_ips = {IpAddress::Any(AddressFamily::kIPv4)};
  config.listening_port = 0;
  config.no_auth = true;
  config.worker_threads = 1;
  auto created = UringBackend::Create(config);
  ASSERT_FALSE(created.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(created.status())) << created.status();
}

// The stream host of backend=dpdk (uring_backend.h): binds the data plane's addresses before
// the kernel has them, listens for TCP only (UDP on the port is the data plane's), and uses the
// node state it is given.
TEST(UringBackendStreamHost, ListensOnAnAddressTheKernelDoesNotHaveYet) {
  ServerConfig config;
  const IpAddress ip = *IpAddress::Parse("192.0.2.1");  // TEST-NET-1: bind only, no traffic
  config.listening_ips = {ip};
  config.relay_ips = {ip};
  config.listening_port = 34781;  // nothing else binds 192.0.2.1
  config.no_auth = true;
  turn::NodeState node(config);
  StreamHostOptions host;
  host.node = &node;
  host.worker_index = 2;
  host.worker_count = 3;
  auto created = UringBackend::CreateStreamHost(config, host);
  ASSERT_TRUE(created.ok()) << created.status();
  ASSERT_NE(*created, nullptr);
  UringBackend& b = **created;
  EXPECT_EQ(b.worker_count(), 1u);
  EXPECT_TRUE(b.tcp_enabled());
  EXPECT_EQ(b.tls_listening_port(), 0);  // no certificate
  EXPECT_EQ(&b.node_state(), &node);
  EXPECT_TRUE(b.config().no_udp);
  // UDP on the port stays free for the data plane: a socket of ours can take it.
  const int fd = socket(AF_INET, SOCK_DGRAM, 0);
  ASSERT_GE(fd, 0);
  const int on = 1;
  ASSERT_EQ(setsockopt(fd, IPPROTO_IP, IP_FREEBIND, &on, sizeof(on)), 0);
  sockaddr_storage ss;
  const socklen_t len = SocketAddress{ip, config.listening_port}.ToSockaddr(&ss);
  EXPECT_EQ(bind(fd, reinterpret_cast<const sockaddr*>(&ss), len), 0) << strerror(errno);
  close(fd);
  b.Start();
  b.Stop();
  b.Join();
  // Without IP_FREEBIND the same address is refused (the kernel-socket backend proper).
  config.worker_threads = 1;
  auto plain = UringBackend::Create(config);
  ASSERT_FALSE(plain.ok());
  EXPECT_NE(std::string(plain.status().message()).find("not an address of this host"),
            std::string::npos)
      << plain.status();
}

TEST(UringBackendStreamHost, IsNullWithTcpAndTlsOffAndNeedsTheNodeState) {
  ServerConfig config;
  config.listening_ips = {kLoopback};
  config.relay_ips = {kLoopback};
  config.listening_port = 34782;  // never bound: both cases return before binding
  config.no_auth = true;
  turn::NodeState node(config);
  StreamHostOptions host;
  host.node = &node;
  config.no_tcp = true;  // and no certificate: no TLS
  auto none = UringBackend::CreateStreamHost(config, host);
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_EQ(*none, nullptr);
  config.no_tcp = false;
  host.node = nullptr;
  auto orphan = UringBackend::CreateStreamHost(config, host);
  EXPECT_TRUE(absl::IsInvalidArgument(orphan.status())) << orphan.status();
}

}  // namespace
}  // namespace turnpike::dataplane
