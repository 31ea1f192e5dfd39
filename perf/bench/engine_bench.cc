// Engine costs without I/O: the per-packet relay paths and a full authenticated Allocate.
// Sockets are replaced by an in-memory relay transport, so the figures are the engine's own
// share of a packet's cost; the backend adds its receive/send work on top.
#include <map>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "turn/engine.h"

namespace turnpike::turn {
namespace {

using stun::MessageBuilder;
using stun::MessageClass;
using stun::MessageView;
using stun::Method;
namespace attr = stun::attr;

constexpr char kSecret[] = "bench-secret";
constexpr char kRealm[] = "bench.org";
constexpr SocketId kListener = 1;

class NullRelays : public RelayTransport {
 public:
  absl::StatusOr<SocketId> OpenRelay(const SocketAddress&, uint32_t tag) override {
    last_tag = tag;
    return next_id++;
  }
  void CloseRelay(SocketId) override {}
  uint32_t last_tag = 0;
  SocketId next_id = 100;
};

SocketAddress Addr(const char* text) { return *SocketAddress::Parse(text); }

struct Fixture {
  explicit Fixture(uint32_t max_allocations = 16384) {
    config.listening_ips = {*IpAddress::Parse("192.0.2.1")};
    config.relay_ips = config.listening_ips;
    config.min_port = 20000;
    config.max_port = 29999;
    config.realm = kRealm;
    config.use_auth_secret = true;
    config.static_auth_secrets = {kSecret};
    node = std::make_unique<NodeState>(config);
    EngineOptions options;
    options.max_allocations = max_allocations;
    engine = std::make_unique<Engine>(config, options, node.get(), &relays);
  }

  std::vector<uint8_t> Request(Method method, const std::function<void(MessageBuilder&)>& fill,
                               const std::string& nonce, uint8_t tid_seed) {
    std::vector<uint8_t> buf(512);
    stun::TransactionId tid{};
    tid[0] = tid_seed;
    tid[1] = static_cast<uint8_t>(++counter);
    tid[2] = static_cast<uint8_t>(counter >> 8);
    MessageBuilder b(buf, method, MessageClass::kRequest, tid.data());
    fill(b);
    if (!nonce.empty()) {
      b.AddString(attr::kUsername, username);
      b.AddString(attr::kRealm, kRealm);
      b.AddString(attr::kNonce, nonce);
      b.AddMessageIntegrity(key);
    }
    b.AddFingerprint();
    buf.resize(b.size());
    return buf;
  }

  std::vector<uint8_t> Send(const SocketAddress& client, std::span<const uint8_t> bytes) {
    engine->OnClientPacket(kListener, server, client, bytes, tx);
    std::vector<uint8_t> out;
    if (tx.size() > 0) {
      out.assign(tx[0].head, tx[0].head + tx[0].head_len);
    }
    tx.Clear();
    return out;
  }

  std::string Nonce(const SocketAddress& client) {
    auto reply = Send(client, Request(Method::kAllocate, Udp, "", 1));
    return std::string(*MessageView::Parse(reply, nullptr)->FindString(attr::kNonce));
  }

  static void Udp(MessageBuilder& b) { b.AddU32(attr::kRequestedTransport, 17u << 24); }

  // Allocates for `client` and binds channel 0x4000 to `peer`; returns the relay tag.
  uint32_t AllocateAndBind(const SocketAddress& client, const SocketAddress& peer) {
    std::string nonce = Nonce(client);
    Send(client, Request(Method::kAllocate, Udp, nonce, 2));
    uint32_t tag = relays.last_tag;
    Send(client, Request(
                     Method::kChannelBind,
                     [&](MessageBuilder& b) {
                       b.AddU32(attr::kChannelNumber, 0x4000u << 16);
                       b.AddXorAddress(attr::kXorPeerAddress, peer);
                     },
                     nonce, 3));
    return tag;
  }

  ServerConfig config;
  NullRelays relays;
  std::unique_ptr<NodeState> node;
  std::unique_ptr<Engine> engine;
  TxBatch tx;
  SocketAddress server = Addr("192.0.2.1:3478");
  std::string username = std::to_string(::time(nullptr) + 86400) + ":bench";
  std::array<uint8_t, 16> key = stun::LongTermKeyMd5(
      username, kRealm, Authenticator::RestPassword(kSecret, username));
  uint32_t counter = 0;
};

// Client -> peer: ChannelData lookup and one TX descriptor, in bursts of 32 as a backend
// delivers them.
void BM_ChannelDataToPeer(benchmark::State& state) {
  Fixture f;
  const int allocations = static_cast<int>(state.range(0));
  std::vector<SocketAddress> clients;
  for (int i = 0; i < allocations; ++i) {
    SocketAddress client = Addr("198.51.100.1:1");
    client.port = static_cast<uint16_t>(10000 + i);
    f.AllocateAndBind(client, Addr("198.51.99.9:4000"));
    clients.push_back(client);
  }
  std::vector<uint8_t> packet(4 + 172);
  stun::WriteChannelDataHeader(packet.data(), 0x4000, 172);
  size_t next = 0;
  for (auto _ : state) {
    for (int i = 0; i < 32; ++i) {
      f.engine->OnClientPacket(kListener, f.server, clients[next], packet, f.tx);
      next = next + 1 == clients.size() ? 0 : next + 1;
    }
    benchmark::DoNotOptimize(f.tx[0].body);
    f.tx.Clear();
  }
  if (f.engine->counters().to_peer_packets == 0) {
    state.SkipWithError("nothing relayed");
  }
  state.SetItemsProcessed(state.iterations() * 32);
}
BENCHMARK(BM_ChannelDataToPeer)->Arg(1)->Arg(1000)->Arg(10000);

// Peer -> client over a bound channel: permission scan, 4-byte header, one TX descriptor.
void BM_PeerToClientChannelData(benchmark::State& state) {
  Fixture f(16384);
  const int allocations = static_cast<int>(state.range(0));
  std::vector<uint32_t> tags;
  for (int i = 0; i < allocations; ++i) {
    SocketAddress client = Addr("198.51.100.1:1");
    client.port = static_cast<uint16_t>(10000 + i);
    tags.push_back(f.AllocateAndBind(client, Addr("198.51.99.9:4000")));
  }
  std::vector<uint8_t> payload(172, 0xab);
  const SocketAddress peer = Addr("198.51.99.9:4000");
  size_t next = 0;
  for (auto _ : state) {
    for (int i = 0; i < 32; ++i) {
      f.engine->OnPeerPacket(tags[next], peer, payload, f.tx);
      next = next + 1 == tags.size() ? 0 : next + 1;
    }
    benchmark::DoNotOptimize(f.tx[0].head);
    f.tx.Clear();
  }
  if (f.engine->counters().to_client_packets == 0) {
    state.SkipWithError("nothing relayed");
  }
  state.SetItemsProcessed(state.iterations() * 32);
}
BENCHMARK(BM_PeerToClientChannelData)->Arg(1)->Arg(10000);

// Peer -> client without a channel: a Data indication header built per packet.
void BM_PeerToClientDataIndication(benchmark::State& state) {
  Fixture f;
  SocketAddress client = Addr("198.51.100.1:10000");
  uint32_t tag = f.AllocateAndBind(client, Addr("198.51.99.9:4000"));
  const SocketAddress peer = Addr("198.51.99.9:4001");  // same IP: permitted, no channel
  std::vector<uint8_t> payload(172, 0xab);
  for (auto _ : state) {
    for (int i = 0; i < 32; ++i) {
      f.engine->OnPeerPacket(tag, peer, payload, f.tx);
    }
    benchmark::DoNotOptimize(f.tx[0].head);
    f.tx.Clear();
  }
  if (f.engine->counters().to_client_packets == 0) {
    state.SkipWithError("nothing relayed");
  }
  state.SetItemsProcessed(state.iterations() * 32);
}
BENCHMARK(BM_PeerToClientDataIndication);

// A whole authenticated allocation life: 401 challenge, authenticated Allocate (REST
// password, MD5 key, MESSAGE-INTEGRITY check and signing, port from the shared pool),
// then Refresh with lifetime 0 to give it back.
void BM_AllocateWithAuth(benchmark::State& state) {
  Fixture f;
  SocketAddress client = Addr("198.51.100.1:10000");
  auto challenge = f.Request(Method::kAllocate, Fixture::Udp, "", 1);
  for (auto _ : state) {
    std::string nonce(*MessageView::Parse(f.Send(client, challenge), nullptr)
                           ->FindString(attr::kNonce));
    auto reply = f.Send(client, f.Request(Method::kAllocate, Fixture::Udp, nonce, 2));
    auto del = f.Send(client, f.Request(
                                  Method::kRefresh,
                                  [](MessageBuilder& b) { b.AddU32(attr::kLifetime, 0); },
                                  nonce, 3));
    benchmark::DoNotOptimize(reply.data());
    benchmark::DoNotOptimize(del.data());
  }
  if (f.engine->counters().allocate_results[size_t(AllocateResult::kSuccess)] == 0) {
    state.SkipWithError("no allocation succeeded");
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_AllocateWithAuth);

}  // namespace
}  // namespace turnpike::turn
