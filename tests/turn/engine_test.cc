// TURN engine behaviour without sockets: requests go in as bytes, responses and relayed
// datagrams come out of the TxBatch. The relay transport records what the engine opens.
#include "turn/engine.h"

#include <cstring>
#include <ctime>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace turnpike::turn {
namespace {

using stun::MessageBuilder;
using stun::MessageClass;
using stun::MessageView;
using stun::Method;
namespace attr = stun::attr;

constexpr char kSecret[] = "s3cret";
constexpr char kRealm[] = "example.org";

class RecordingRelays : public RelayTransport {
 public:
  absl::StatusOr<SocketId> OpenRelay(const SocketAddress& address, uint32_t tag) override {
    if (refuse_ports > 0) {
      --refuse_ports;
      return absl::UnavailableError("port in use");
    }
    SocketId id = next_id++;
    open[id] = {address, tag};
    return id;
  }
  void CloseRelay(SocketId socket) override { open.erase(socket); }
  absl::Status SetDontFragment(SocketId socket) override {
    if (!df_supported) {
      return absl::UnimplementedError("no");
    }
    df.push_back(socket);
    return absl::OkStatus();
  }

  struct Relay {
    SocketAddress address;
    uint32_t tag;
  };
  std::map<SocketId, Relay> open;
  std::vector<SocketId> df;
  SocketId next_id = 1000;
  int refuse_ports = 0;
  bool df_supported = true;
};

SocketAddress Addr(const char* text) { return *SocketAddress::Parse(text); }

struct Sent {
  SocketId socket;
  SocketAddress dst;
  std::vector<uint8_t> bytes;
};

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override { Build(); }

  void Build() {
    engine_.reset();
    node_ = std::make_unique<NodeState>(config_);
    EngineOptions options;
    options.max_allocations = 64;
    options.worker_count = worker_count_;
    engine_ = std::make_unique<Engine>(config_, options, node_.get(), &relays_);
    engine_->SetNow(now_ns_);
  }

  ServerConfig DefaultConfig() {
    ServerConfig c;
    c.listening_ips = {*IpAddress::Parse("192.0.2.10")};
    c.relay_ips = {*IpAddress::Parse("192.0.2.10")};
    c.min_port = 50000;
    c.max_port = 50099;
    c.realm = kRealm;
    c.use_auth_secret = true;
    c.static_auth_secrets = {"old-secret", kSecret};
    return c;
  }

  void Advance(uint64_t seconds) {
    now_ns_ += seconds * 1'000'000'000ull;
    engine_->SetNow(now_ns_);
  }

  std::vector<Sent> Drain() {
    std::vector<Sent> out;
    for (size_t i = 0; i < tx_.size(); ++i) {
      TxDesc& d = tx_[i];
      Sent s{d.socket, d.dst, {}};
      s.bytes.assign(d.head, d.head + d.head_len);
      if (d.body_len > 0) {
        s.bytes.insert(s.bytes.end(), d.body, d.body + d.body_len);
      }
      s.bytes.insert(s.bytes.end(), d.tail_pad, 0);
      out.push_back(std::move(s));
    }
    tx_.Clear();
    return out;
  }

  // Over TCP/TLS the "listener" is the backend's connection id (kStream here): responses and
  // relayed data go back on it.
  static SocketId ListenerFor(ClientTransport transport) {
    return transport == ClientTransport::kUdp ? kListener : kStream;
  }
  FiveTuple TupleFor(const SocketAddress& client, ClientTransport transport) const {
    return {client, kServer,
            transport == ClientTransport::kUdp ? uint8_t{IPPROTO_UDP} : uint8_t{IPPROTO_TCP}};
  }
  std::vector<Sent> FromClient(std::span<const uint8_t> bytes,
                               const SocketAddress& client = Addr("203.0.113.5:40000"),
                               ClientTransport transport = ClientTransport::kUdp) {
    engine_->OnClientPacket(ListenerFor(transport), kServer, client, bytes, tx_, transport);
    return Drain();
  }
  std::vector<Sent> FromPeer(uint32_t tag, const SocketAddress& peer,
                             std::span<const uint8_t> bytes) {
    engine_->OnPeerPacket(tag, peer, bytes, tx_);
    return Drain();
  }

  // Credentials the TURN REST way.
  std::string Username(int64_t ttl = 3600) {
    return std::to_string(static_cast<int64_t>(::time(nullptr)) + ttl) + ":alice";
  }
  std::array<uint8_t, 16> KeyFor(const std::string& username, const std::string& secret = kSecret) {
    return stun::LongTermKeyMd5(username, kRealm, Authenticator::RestPassword(secret, username));
  }

  // Builds a request; `fill` adds the method's attributes. With `nonce` non-empty it adds
  // USERNAME, REALM, NONCE and MESSAGE-INTEGRITY.
  template <typename Fill>
  std::vector<uint8_t> Request(Method method, Fill fill, const std::string& username,
                               const std::string& nonce, std::span<const uint8_t> key,
                               bool fingerprint = true) {
    std::vector<uint8_t> buf(1024);
    stun::TransactionId tid;
    for (auto& b : tid) {
      b = static_cast<uint8_t>(rng_());
    }
    last_tid_ = tid;
    MessageBuilder b(buf, method, MessageClass::kRequest, tid.data());
    fill(b);
    if (!nonce.empty()) {
      b.AddString(attr::kUsername, username);
      b.AddString(attr::kRealm, kRealm);
      b.AddString(attr::kNonce, nonce);
      b.AddMessageIntegrity(key);
    }
    if (fingerprint) {
      b.AddFingerprint();
    }
    buf.resize(b.size());
    return buf;
  }

  static void UdpTransport(MessageBuilder& b) { b.AddU32(attr::kRequestedTransport, 17u << 24); }

  // Gets a nonce with an unauthenticated Allocate.
  std::string Nonce(const SocketAddress& client = Addr("203.0.113.5:40000"),
                    ClientTransport transport = ClientTransport::kUdp) {
    auto sent =
        FromClient(Request(Method::kAllocate, UdpTransport, "", "", {}), client, transport);
    EXPECT_EQ(sent.size(), 1u);
    auto msg = MessageView::Parse(sent[0].bytes, nullptr);
    EXPECT_TRUE(msg.has_value());
    EXPECT_EQ(msg->FindErrorCode(), 401);
    return std::string(*msg->FindString(attr::kNonce));
  }

  struct Allocated {
    uint32_t tag;
    SocketAddress relay;
    std::string username;
    std::array<uint8_t, 16> key;
    std::string nonce;
  };
  Allocated Allocate(const SocketAddress& client = Addr("203.0.113.5:40000"),
                     ClientTransport transport = ClientTransport::kUdp) {
    Allocated a;
    a.username = Username();
    a.key = KeyFor(a.username);
    a.nonce = Nonce(client, transport);
    auto sent = FromClient(Request(Method::kAllocate, UdpTransport, a.username, a.nonce, a.key),
                           client, transport);
    EXPECT_EQ(sent.size(), 1u);
    auto msg = MessageView::Parse(sent[0].bytes, nullptr);
    EXPECT_TRUE(msg.has_value());
    EXPECT_EQ(msg->message_class(), MessageClass::kSuccessResponse);
    EXPECT_TRUE(msg->CheckMessageIntegrity(a.key));
    a.relay = *msg->FindXorAddress(attr::kXorRelayedAddress);
    for (auto& [id, relay] : relays_.open) {
      if (relay.address == a.relay) {
        a.tag = relay.tag;
      }
    }
    return a;
  }

  // Sends an authenticated request on an allocation and returns the parsed single reply.
  template <typename Fill>
  std::pair<std::vector<uint8_t>, int> Call(const Allocated& a, Method method, Fill fill,
                                             const SocketAddress& client = Addr("203.0.113.5:40000"),
                                             ClientTransport transport = ClientTransport::kUdp) {
    auto sent = FromClient(Request(method, fill, a.username, a.nonce, a.key), client, transport);
    EXPECT_EQ(sent.size(), 1u);
    if (sent.empty()) {
      return {{}, -1};
    }
    auto msg = MessageView::Parse(sent[0].bytes, nullptr);
    EXPECT_TRUE(msg.has_value());
    EXPECT_EQ(std::memcmp(msg->transaction_id(), last_tid_.data(), 12), 0);
    int code = msg->message_class() == MessageClass::kSuccessResponse ? 0
                                                                        : msg->FindErrorCode().value_or(-1);
    return {sent[0].bytes, code};
  }

  // ChannelBind of `number` to `peer` on an allocation: the reply's error code (0: success).
  int BindChannel(const Allocated& a, uint16_t number, const SocketAddress& peer,
                  const SocketAddress& client = Addr("203.0.113.5:40000"),
                  ClientTransport transport = ClientTransport::kUdp) {
    return Call(a, Method::kChannelBind, [&](MessageBuilder& b) {
             b.AddU32(attr::kChannelNumber, uint32_t{number} << 16);
             b.AddXorAddress(attr::kXorPeerAddress, peer);
           }, client, transport).second;
  }

  static constexpr SocketId kListener = 7;
  static constexpr SocketId kStream = 42;  // a TCP/TLS connection's id in the backend
  const SocketAddress kServer = Addr("192.0.2.10:3478");
  ServerConfig config_ = DefaultConfig();
  RecordingRelays relays_;
  std::unique_ptr<NodeState> node_;
  std::unique_ptr<Engine> engine_;
  TxBatch tx_;
  uint64_t now_ns_ = 1'000'000'000'000ull;
  uint32_t worker_count_ = 1;  // EngineOptions::worker_count for Build()
  std::mt19937 rng_{42};
  stun::TransactionId last_tid_{};
};

TEST_F(EngineTest, BindingRequestGetsXorMappedAddress) {
  auto sent = FromClient(Request(Method::kBinding, [](MessageBuilder&) {}, "", "", {}));
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].socket, kListener);
  EXPECT_EQ(sent[0].dst, Addr("203.0.113.5:40000"));
  auto msg = MessageView::Parse(sent[0].bytes, nullptr);
  ASSERT_TRUE(msg.has_value());
  EXPECT_EQ(msg->message_class(), MessageClass::kSuccessResponse);
  EXPECT_EQ(msg->FindXorAddress(attr::kXorMappedAddress), Addr("203.0.113.5:40000"));
  EXPECT_TRUE(msg->HasFingerprint());
  EXPECT_FALSE(msg->Has(attr::kSoftware));  // off by default
}

TEST_F(EngineTest, UnauthenticatedAllocateIsChallengedWithRealmNonceAndAlgorithms) {
  auto sent = FromClient(Request(Method::kAllocate, UdpTransport, "", "", {}));
  ASSERT_EQ(sent.size(), 1u);
  auto msg = MessageView::Parse(sent[0].bytes, nullptr);
  ASSERT_TRUE(msg.has_value());
  std::string_view reason = "x";
  EXPECT_EQ(msg->FindErrorCode(&reason), 401);
  EXPECT_TRUE(reason.empty());
  EXPECT_EQ(msg->FindString(attr::kRealm), kRealm);
  auto nonce = msg->FindString(attr::kNonce);
  ASSERT_TRUE(nonce.has_value());
  EXPECT_TRUE(nonce->starts_with("obMatJos2"));
  EXPECT_TRUE(msg->Has(attr::kPasswordAlgorithms));
  EXPECT_FALSE(msg->HasMessageIntegrity());
  EXPECT_TRUE(relays_.open.empty());
  EXPECT_EQ(engine_->counters().auth_failures[size_t(AuthFailure::kMissingCredentials)], 1u);
}

TEST_F(EngineTest, AuthenticatedAllocateSucceedsWithRestCredentials) {
  Allocated a = Allocate();
  EXPECT_EQ(a.relay.ip, *IpAddress::Parse("192.0.2.10"));
  EXPECT_GE(a.relay.port, 50000);
  EXPECT_LE(a.relay.port, 50099);
  EXPECT_EQ(relays_.open.size(), 1u);
  EXPECT_EQ(engine_->allocation_count(), 1u);
  EXPECT_EQ(node_->total_allocations(), 1u);
}

TEST_F(EngineTest, RotatedSecretStillAuthenticates) {
  std::string user = Username();
  auto key = KeyFor(user, "old-secret");
  std::string nonce = Nonce();
  auto sent = FromClient(Request(Method::kAllocate, UdpTransport, user, nonce, key));
  ASSERT_EQ(sent.size(), 1u);
  auto msg = MessageView::Parse(sent[0].bytes, nullptr);
  EXPECT_EQ(msg->message_class(), MessageClass::kSuccessResponse);
  EXPECT_TRUE(msg->CheckMessageIntegrity(key));
}

TEST_F(EngineTest, WrongMessageIntegrityIs401) {
  std::string user = Username();
  auto key = KeyFor(user, "wrong-secret");
  std::string nonce = Nonce();
  auto sent = FromClient(Request(Method::kAllocate, UdpTransport, user, nonce, key));
  ASSERT_EQ(sent.size(), 1u);
  auto msg = MessageView::Parse(sent[0].bytes, nullptr);
  EXPECT_EQ(msg->FindErrorCode(), 401);
  EXPECT_FALSE(msg->HasMessageIntegrity());
  EXPECT_TRUE(relays_.open.empty());
  EXPECT_EQ(engine_->counters().auth_failures[size_t(AuthFailure::kBadIntegrity)], 1u);
}

TEST_F(EngineTest, ExpiredRestUsernameIs401) {
  std::string user = Username(-10);
  std::string nonce = Nonce();
  auto sent = FromClient(Request(Method::kAllocate, UdpTransport, user, nonce, KeyFor(user)));
  auto msg = MessageView::Parse(sent.at(0).bytes, nullptr);
  EXPECT_EQ(msg->FindErrorCode(), 401);
  EXPECT_EQ(engine_->counters().auth_failures[size_t(AuthFailure::kExpiredUsername)], 1u);
}

TEST_F(EngineTest, StaleNonceIs438WithFreshNonce) {
  std::string user = Username();
  std::string nonce = Nonce();
  Advance(config_.stale_nonce_seconds + 1);
  auto sent = FromClient(Request(Method::kAllocate, UdpTransport, user, nonce, KeyFor(user)));
  auto msg = MessageView::Parse(sent.at(0).bytes, nullptr);
  EXPECT_EQ(msg->FindErrorCode(), 438);
  auto fresh = msg->FindString(attr::kNonce);
  ASSERT_TRUE(fresh.has_value());
  EXPECT_NE(*fresh, nonce);
  // The fresh nonce works.
  sent = FromClient(Request(Method::kAllocate, UdpTransport, user, std::string(*fresh),
                            KeyFor(user)));
  msg = MessageView::Parse(sent.at(0).bytes, nullptr);
  EXPECT_EQ(msg->message_class(), MessageClass::kSuccessResponse);
}

TEST_F(EngineTest, StaleNonceZeroMeansNoExpiry) {
  config_.stale_nonce_seconds = 0;  // coturn's meaning: unlimited nonce lifetime
  Build();
  std::string user = Username();
  std::string nonce = Nonce();
  Advance(100000);
  auto sent = FromClient(Request(Method::kAllocate, UdpTransport, user, nonce, KeyFor(user)));
  auto msg = MessageView::Parse(sent.at(0).bytes, nullptr);
  EXPECT_EQ(msg->message_class(), MessageClass::kSuccessResponse);
}

TEST_F(EngineTest, NonceIsBoundToClientAddress) {
  std::string user = Username();
  std::string nonce = Nonce(Addr("203.0.113.5:40000"));
  auto sent = FromClient(Request(Method::kAllocate, UdpTransport, user, nonce, KeyFor(user)),
                         Addr("203.0.113.6:40000"));
  auto msg = MessageView::Parse(sent.at(0).bytes, nullptr);
  EXPECT_EQ(msg->FindErrorCode(), 438);
}

TEST_F(EngineTest, UsernameWithoutIntegrityIsChallenged) {
  auto sent = FromClient(Request(
      Method::kAllocate,
      [](MessageBuilder& b) {
        UdpTransport(b);
        b.AddString(attr::kUsername, "bob");
      },
      "", "", {}));
  auto msg = MessageView::Parse(sent.at(0).bytes, nullptr);
  EXPECT_EQ(msg->FindErrorCode(), 401);
}

TEST_F(EngineTest, IntegrityWithoutNonceIs400) {
  std::string user = Username();
  auto key = KeyFor(user);
  auto sent = FromClient(Request(
      Method::kAllocate,
      [&](MessageBuilder& b) {
        UdpTransport(b);
        b.AddString(attr::kUsername, user);
        b.AddString(attr::kRealm, kRealm);
        b.AddMessageIntegrity(key);
      },
      "", "", {}));
  auto msg = MessageView::Parse(sent.at(0).bytes, nullptr);
  EXPECT_EQ(msg->FindErrorCode(), 400);
}

TEST_F(EngineTest, UnsupportedTransportIs442) {
  std::string user = Username();
  std::string nonce = Nonce();
  auto sent = FromClient(Request(
      Method::kAllocate, [](MessageBuilder& b) { b.AddU32(attr::kRequestedTransport, 6u << 24); },
      user, nonce, KeyFor(user)));
  auto msg = MessageView::Parse(sent.at(0).bytes, nullptr);
  EXPECT_EQ(msg->FindErrorCode(), 442);
  EXPECT_TRUE(msg->CheckMessageIntegrity(KeyFor(user)));  // authenticated errors are signed
  EXPECT_TRUE(relays_.open.empty());
}

TEST_F(EngineTest, MissingRequestedTransportIs400) {
  std::string user = Username();
  std::string nonce = Nonce();
  auto sent = FromClient(
      Request(Method::kAllocate, [](MessageBuilder&) {}, user, nonce, KeyFor(user)));
  auto msg = MessageView::Parse(sent.at(0).bytes, nullptr);
  EXPECT_EQ(msg->FindErrorCode(), 400);
}

TEST_F(EngineTest, SecondAllocateOnSameTupleIs437ButRetransmissionIsAnsweredAgain) {
  Allocated a = Allocate();
  // Retransmission: same transaction ID -> success again with the same relay address.
  std::vector<uint8_t> buf(512);
  MessageBuilder b(buf, Method::kAllocate, MessageClass::kRequest, last_tid_.data());
  UdpTransport(b);
  b.AddString(attr::kUsername, a.username);
  b.AddString(attr::kRealm, kRealm);
  b.AddString(attr::kNonce, a.nonce);
  b.AddMessageIntegrity(a.key);
  buf.resize(b.size());
  auto sent = FromClient(buf);
  auto msg = MessageView::Parse(sent.at(0).bytes, nullptr);
  EXPECT_EQ(msg->message_class(), MessageClass::kSuccessResponse);
  EXPECT_EQ(msg->FindXorAddress(attr::kXorRelayedAddress), a.relay);
  EXPECT_EQ(relays_.open.size(), 1u);
  // A new transaction -> 437.
  auto [bytes, code] = Call(a, Method::kAllocate, UdpTransport);
  EXPECT_EQ(code, 437);
}

TEST_F(EngineTest, RequestsWithoutAllocationAre437) {
  std::string user = Username();
  std::string nonce = Nonce();
  auto sent = FromClient(Request(Method::kRefresh, [](MessageBuilder&) {}, user, nonce,
                                 KeyFor(user)));
  auto msg = MessageView::Parse(sent.at(0).bytes, nullptr);
  EXPECT_EQ(msg->FindErrorCode(), 437);
}

TEST_F(EngineTest, OtherUserOnAllocationIs441) {
  Allocated a = Allocate();
  Allocated other = a;
  other.username = std::to_string(::time(nullptr) + 100) + ":mallory";
  other.key = KeyFor(other.username);
  auto [bytes, code] = Call(other, Method::kRefresh, [](MessageBuilder&) {});
  EXPECT_EQ(code, 441);
}

TEST_F(EngineTest, ForbiddenPeerIs403OnCreatePermissionAndChannelBind) {
  Allocated a = Allocate();
  for (const char* peer : {"127.0.0.1:9", "10.1.2.3:9", "169.254.169.254:80", "192.168.1.1:9",
                           "224.0.0.1:9", "0.0.0.0:9"}) {
    SCOPED_TRACE(peer);
    auto [b1, c1] = Call(a, Method::kCreatePermission, [&](MessageBuilder& b) {
      b.AddXorAddress(attr::kXorPeerAddress, Addr(peer));
    });
    EXPECT_EQ(c1, 403);
    auto [b2, c2] = Call(a, Method::kChannelBind, [&](MessageBuilder& b) {
      b.AddU32(attr::kChannelNumber, 0x4001u << 16);
      b.AddXorAddress(attr::kXorPeerAddress, Addr(peer));
    });
    EXPECT_EQ(c2, 403);
  }
  // One forbidden peer among allowed ones refuses the whole request (RFC 8656 9.2).
  auto [b3, c3] = Call(a, Method::kCreatePermission, [&](MessageBuilder& b) {
    b.AddXorAddress(attr::kXorPeerAddress, Addr("198.51.99.1:9"));
    b.AddXorAddress(attr::kXorPeerAddress, Addr("10.0.0.1:9"));
  });
  EXPECT_EQ(c3, 403);
  std::vector<uint8_t> payload = {1, 2, 3};
  EXPECT_TRUE(FromPeer(a.tag, Addr("198.51.99.1:9"), payload).empty());
}

TEST_F(EngineTest, AllowLoopbackPeersOpensLoopbackOnly) {
  config_.allow_loopback_peers = true;
  Build();
  Allocated a = Allocate();
  auto [b1, c1] = Call(a, Method::kCreatePermission, [&](MessageBuilder& b) {
    b.AddXorAddress(attr::kXorPeerAddress, Addr("127.0.0.1:9"));
  });
  EXPECT_EQ(c1, 0);
  auto [b2, c2] = Call(a, Method::kCreatePermission, [&](MessageBuilder& b) {
    b.AddXorAddress(attr::kXorPeerAddress, Addr("10.0.0.1:9"));
  });
  EXPECT_EQ(c2, 403);
}

TEST_F(EngineTest, ChannelDataRelaysBothWaysZeroCopy) {
  Allocated a = Allocate();
  const SocketAddress peer = Addr("198.51.99.7:6000");
  auto [resp, code] = Call(a, Method::kChannelBind, [&](MessageBuilder& b) {
    b.AddU32(attr::kChannelNumber, 0x4001u << 16);
    b.AddXorAddress(attr::kXorPeerAddress, peer);
  });
  ASSERT_EQ(code, 0);
  EXPECT_TRUE(MessageView::Parse(resp, nullptr)->CheckMessageIntegrity(a.key));

  // Client -> peer: the payload leaves the relay socket without the 4-byte header.
  std::vector<uint8_t> cd = {0x40, 0x01, 0x00, 0x05, 'h', 'e', 'l', 'l', 'o', 0, 0, 0};
  engine_->OnClientPacket(kListener, kServer, Addr("203.0.113.5:40000"), cd, tx_);
  ASSERT_EQ(tx_.size(), 1u);
  EXPECT_EQ(tx_[0].body, cd.data() + 4);  // points into the received buffer
  auto sent = Drain();
  EXPECT_EQ(sent[0].dst, peer);
  EXPECT_EQ(relays_.open.at(sent[0].socket).address, a.relay);
  EXPECT_EQ(sent[0].bytes, std::vector<uint8_t>({'h', 'e', 'l', 'l', 'o'}));

  // Peer -> client comes back as ChannelData on the listener.
  std::vector<uint8_t> reply = {'w', 'o', 'r', 'l', 'd', '!'};
  sent = FromPeer(a.tag, peer, reply);
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].socket, kListener);
  EXPECT_EQ(sent[0].dst, Addr("203.0.113.5:40000"));
  auto view = stun::ParseChannelData(sent[0].bytes);
  ASSERT_TRUE(view.has_value());
  EXPECT_EQ(view->channel, 0x4001);
  EXPECT_EQ(std::vector<uint8_t>(view->payload.begin(), view->payload.end()), reply);
  EXPECT_EQ(engine_->counters().to_peer_packets, 1u);
  EXPECT_EQ(engine_->counters().to_client_packets, 1u);
  EXPECT_EQ(engine_->counters().to_client_bytes, reply.size());
}

// The burst path: PrefetchClient's hash handed back with the datagram finds the allocation as
// a lookup without it does, and a hash of another 5-tuple does not.
TEST_F(EngineTest, ChannelDataWithThePrefetchHashIsRelayedLikeWithout) {
  Allocated a = Allocate();
  const SocketAddress peer = Addr("198.51.99.7:6000");
  ASSERT_EQ(BindChannel(a, 0x4001, peer), 0);
  const SocketAddress client = Addr("203.0.113.5:40000");
  const std::vector<uint8_t> cd = {0x40, 0x01, 0x00, 0x02, 'h', 'i'};
  const Engine::TupleHash hash = engine_->PrefetchClient(kServer, client);
  EXPECT_EQ(hash.value, FiveTupleHash{}(FiveTuple{client, kServer, IPPROTO_UDP}));
  engine_->OnClientPacket(kListener, kServer, client, cd, tx_, hash);
  auto sent = Drain();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].dst, peer);
  EXPECT_EQ(sent[0].bytes, std::vector<uint8_t>({'h', 'i'}));

  const Engine::TupleHash other = engine_->PrefetchClient(kServer, Addr("203.0.113.5:40001"));
  engine_->OnClientPacket(kListener, kServer, client, cd, tx_, other);
  EXPECT_TRUE(Drain().empty());
  EXPECT_EQ(engine_->counters().drops[static_cast<size_t>(DropReason::kNoAllocation)], 1u);
  EXPECT_EQ(engine_->counters().to_peer_packets, 1u);
}

TEST_F(EngineTest, SendAndDataIndicationsNeedPermission) {
  Allocated a = Allocate();
  const SocketAddress peer = Addr("198.51.99.8:7000");
  std::vector<uint8_t> payload = {9, 8, 7, 6, 5};
  auto send = [&] {
    std::vector<uint8_t> buf(256);
    stun::TransactionId tid{};
    MessageBuilder b(buf, Method::kSend, MessageClass::kIndication, tid.data());
    b.AddXorAddress(attr::kXorPeerAddress, peer);
    b.AddAttribute(attr::kData, payload);
    buf.resize(b.size());
    return FromClient(buf);
  };
  EXPECT_TRUE(send().empty());
  EXPECT_EQ(engine_->counters().dropped(DropReason::kNoPermission), 1u);
  EXPECT_TRUE(FromPeer(a.tag, peer, payload).empty());
  EXPECT_EQ(engine_->counters().dropped(DropReason::kNoPermission), 2u);

  auto [resp, code] = Call(a, Method::kCreatePermission, [&](MessageBuilder& b) {
    b.AddXorAddress(attr::kXorPeerAddress, Addr("198.51.99.8:1"));  // port is ignored
  });
  ASSERT_EQ(code, 0);
  auto sent = send();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].dst, peer);
  EXPECT_EQ(sent[0].bytes, payload);

  sent = FromPeer(a.tag, peer, payload);
  ASSERT_EQ(sent.size(), 1u);
  auto msg = MessageView::Parse(sent[0].bytes, nullptr);
  ASSERT_TRUE(msg.has_value());
  EXPECT_EQ(msg->method(), Method::kData);
  EXPECT_EQ(msg->message_class(), MessageClass::kIndication);
  EXPECT_EQ(msg->FindXorAddress(attr::kXorPeerAddress), peer);
  auto data = msg->FindValue(attr::kData);
  ASSERT_TRUE(data.has_value());
  EXPECT_EQ(std::vector<uint8_t>(data->begin(), data->end()), payload);
  EXPECT_EQ(sent[0].bytes.size() % 4, 0u);
}

TEST_F(EngineTest, PermissionsAndChannelsExpire) {
  Allocated a = Allocate();
  const SocketAddress peer = Addr("198.51.99.9:7000");
  auto [resp, code] = Call(a, Method::kChannelBind, [&](MessageBuilder& b) {
    b.AddU32(attr::kChannelNumber, 0x4002u << 16);
    b.AddXorAddress(attr::kXorPeerAddress, peer);
  });
  ASSERT_EQ(code, 0);
  // Keep the allocation alive; let the permission (300 s) lapse.
  auto [r2, c2] = Call(a, Method::kRefresh, [](MessageBuilder& b) {
    b.AddU32(attr::kLifetime, 3600);
  });
  ASSERT_EQ(c2, 0);
  Advance(config_.permission_lifetime + 1);
  engine_->Tick();
  std::vector<uint8_t> payload = {1};
  EXPECT_TRUE(FromPeer(a.tag, peer, payload).empty());
  EXPECT_EQ(engine_->counters().dropped(DropReason::kNoPermission), 1u);
  Advance(config_.channel_lifetime);
  engine_->Tick();
  std::vector<uint8_t> cd = {0x40, 0x02, 0x00, 0x01, 'x'};
  EXPECT_TRUE(FromClient(cd).empty());
  EXPECT_EQ(engine_->counters().dropped(DropReason::kUnknownChannel), 1u);
}

TEST_F(EngineTest, SweepUpdatesGauges) {
  Allocated a = Allocate();
  auto [r, code] = Call(a, Method::kChannelBind, [&](MessageBuilder& m) {
    m.AddU32(attr::kChannelNumber, 0x4001u << 16);
    m.AddXorAddress(attr::kXorPeerAddress, Addr("198.51.99.1:9"));
  });
  ASSERT_EQ(code, 0);
  Advance(1);
  engine_->Tick();
  EXPECT_EQ(engine_->counters().allocations[0][0], 1u);  // UDP client, IPv4 relay
  EXPECT_EQ(engine_->counters().allocations[0][1], 0u);
  EXPECT_EQ(engine_->counters().permissions, 1u);
  EXPECT_EQ(engine_->counters().channels, 1u);
}

TEST_F(EngineTest, AllocationExpiresAndFreesItsPort) {
  Allocated a = Allocate();
  ASSERT_EQ(relays_.open.size(), 1u);
  size_t free_before = node_->FreePorts(a.relay.ip);
  Advance(config_.default_allocate_lifetime + 1);
  engine_->Tick();
  EXPECT_TRUE(relays_.open.empty());
  EXPECT_EQ(engine_->allocation_count(), 0u);
  EXPECT_EQ(node_->FreePorts(a.relay.ip), free_before + 1);
  EXPECT_EQ(node_->total_allocations(), 0u);
  EXPECT_EQ(engine_->counters().allocations_expired, 1u);
}

TEST_F(EngineTest, RefreshWithZeroLifetimeDeletes) {
  Allocated a = Allocate();
  auto [resp, code] = Call(a, Method::kRefresh, [](MessageBuilder& b) {
    b.AddU32(attr::kLifetime, 0);
  });
  EXPECT_EQ(code, 0);
  auto msg = MessageView::Parse(resp, nullptr);
  EXPECT_EQ(msg->FindU32(attr::kLifetime), 0u);
  EXPECT_TRUE(relays_.open.empty());
  EXPECT_EQ(engine_->allocation_count(), 0u);
  auto [r2, c2] = Call(a, Method::kRefresh, [](MessageBuilder&) {});
  EXPECT_EQ(c2, 437);
}

TEST_F(EngineTest, LifetimeIsClampedToMaximum) {
  Allocated a = Allocate();
  auto [resp, code] = Call(a, Method::kRefresh, [](MessageBuilder& b) {
    b.AddU32(attr::kLifetime, 999999);
  });
  ASSERT_EQ(code, 0);
  EXPECT_EQ(MessageView::Parse(resp, nullptr)->FindU32(attr::kLifetime),
            config_.max_allocate_lifetime);
}

TEST_F(EngineTest, UserQuotaIs486) {
  config_.user_quota = 1;
  Build();
  std::string user = Username();
  auto key = KeyFor(user);
  SocketAddress c1 = Addr("203.0.113.5:1000"), c2 = Addr("203.0.113.5:1001");
  auto sent = FromClient(Request(Method::kAllocate, UdpTransport, user, Nonce(c1), key), c1);
  EXPECT_EQ(MessageView::Parse(sent.at(0).bytes, nullptr)->message_class(),
            MessageClass::kSuccessResponse);
  sent = FromClient(Request(Method::kAllocate, UdpTransport, user, Nonce(c2), key), c2);
  EXPECT_EQ(MessageView::Parse(sent.at(0).bytes, nullptr)->FindErrorCode(), 486);
}

TEST_F(EngineTest, PortExhaustionIs508) {
  config_.min_port = 50000;
  config_.max_port = 50001;
  Build();
  Allocate(Addr("203.0.113.5:1"));
  Allocate(Addr("203.0.113.5:2"));
  SocketAddress c3 = Addr("203.0.113.5:3");
  std::string user = Username();
  auto sent = FromClient(Request(Method::kAllocate, UdpTransport, user, Nonce(c3), KeyFor(user)),
                         c3);
  EXPECT_EQ(MessageView::Parse(sent.at(0).bytes, nullptr)->FindErrorCode(), 508);
  EXPECT_EQ(node_->total_allocations(), 2u);  // the failed one was not counted
}

TEST_F(EngineTest, PortHeldByAnotherProcessIsSkipped) {
  relays_.refuse_ports = 3;
  Allocated a = Allocate();
  EXPECT_EQ(relays_.open.size(), 1u);
}

TEST_F(EngineTest, EvenPortWithReservationAndToken) {
  std::string user = Username();
  auto key = KeyFor(user);
  SocketAddress c1 = Addr("203.0.113.5:1"), c2 = Addr("203.0.113.5:2");
  auto sent = FromClient(Request(
      Method::kAllocate,
      [](MessageBuilder& b) {
        UdpTransport(b);
        uint8_t even[1] = {0x80};
        b.AddAttribute(attr::kEvenPort, even);
      },
      user, Nonce(c1), key), c1);
  auto msg = MessageView::Parse(sent.at(0).bytes, nullptr);
  ASSERT_EQ(msg->message_class(), MessageClass::kSuccessResponse);
  auto relay = *msg->FindXorAddress(attr::kXorRelayedAddress);
  EXPECT_EQ(relay.port % 2, 0);
  auto token = msg->FindValue(attr::kReservationToken);
  ASSERT_TRUE(token.has_value());
  std::vector<uint8_t> token_bytes(token->begin(), token->end());
  sent = FromClient(Request(
      Method::kAllocate,
      [&](MessageBuilder& b) {
        UdpTransport(b);
        b.AddAttribute(attr::kReservationToken, token_bytes);
      },
      user, Nonce(c2), key), c2);
  msg = MessageView::Parse(sent.at(0).bytes, nullptr);
  ASSERT_EQ(msg->message_class(), MessageClass::kSuccessResponse);
  EXPECT_EQ(msg->FindXorAddress(attr::kXorRelayedAddress)->port, relay.port + 1);
}

TEST_F(EngineTest, DontFragmentUnsupportedIs420) {
  relays_.df_supported = false;
  std::string user = Username();
  auto sent = FromClient(Request(
      Method::kAllocate,
      [](MessageBuilder& b) {
        UdpTransport(b);
        b.AddEmpty(attr::kDontFragment);
      },
      user, Nonce(), KeyFor(user)));
  auto msg = MessageView::Parse(sent.at(0).bytes, nullptr);
  EXPECT_EQ(msg->FindErrorCode(), 420);
  uint16_t unknown[4];
  auto value = msg->FindValue(attr::kUnknownAttributes);
  ASSERT_TRUE(value.has_value());
  ASSERT_EQ(value->size(), 2u);
  EXPECT_EQ(((*value)[0] << 8) | (*value)[1], attr::kDontFragment);
  (void)unknown;
  EXPECT_TRUE(relays_.open.empty());
  EXPECT_EQ(node_->total_allocations(), 0u);
}

TEST_F(EngineTest, DontFragmentRefusedGivesBackTheEvenPortReservation) {
  relays_.df_supported = false;
  const IpAddress relay_ip = *IpAddress::Parse("192.0.2.10");
  const size_t free_before = node_->FreePorts(relay_ip);
  std::string user = Username();
  auto sent = FromClient(Request(
      Method::kAllocate,
      [](MessageBuilder& b) {
        UdpTransport(b);
        uint8_t even[1] = {0x80};  // R: reserve the next port too
        b.AddAttribute(attr::kEvenPort, even);
        b.AddEmpty(attr::kDontFragment);
      },
      user, Nonce(), KeyFor(user)));
  auto msg = MessageView::Parse(sent.at(0).bytes, nullptr);
  EXPECT_EQ(msg->FindErrorCode(), 420);
  EXPECT_TRUE(relays_.open.empty());
  EXPECT_EQ(node_->total_allocations(), 0u);
  EXPECT_EQ(node_->FreePorts(relay_ip), free_before);  // both the port and the reserved one
}

TEST_F(EngineTest, UnknownComprehensionRequiredAttributeIs420) {
  Allocated a = Allocate();
  auto [resp, code] = Call(a, Method::kRefresh, [](MessageBuilder& b) {
    uint8_t v[4] = {};
    b.AddAttribute(0x0077, v);
  });
  EXPECT_EQ(code, 420);
}

TEST_F(EngineTest, ChannelNumberOutOfRangeAndRebindingAre400) {
  Allocated a = Allocate();
  auto bind = [&](uint32_t number, const char* peer) {
    return Call(a, Method::kChannelBind, [&](MessageBuilder& b) {
      b.AddU32(attr::kChannelNumber, number << 16);
      b.AddXorAddress(attr::kXorPeerAddress, Addr(peer));
    }).second;
  };
  EXPECT_EQ(bind(0x3FFF, "198.51.99.1:1"), 400);
  EXPECT_EQ(bind(0x8000, "198.51.99.1:1"), 400);
  EXPECT_EQ(bind(0x7FFF, "198.51.99.3:1"), 0);  // RFC 5766 range, as coturn clients use
  EXPECT_EQ(bind(0x4000, "198.51.99.1:1"), 0);
  EXPECT_EQ(bind(0x4000, "198.51.99.1:1"), 0);  // refresh
  EXPECT_EQ(bind(0x4000, "198.51.99.2:1"), 400);  // channel taken by another peer
  EXPECT_EQ(bind(0x4001, "198.51.99.1:1"), 400);  // peer already on another channel
}

TEST_F(EngineTest, MalformedAndTruncatedDatagramsAreDroppedAndCounted) {
  Allocated a = Allocate();
  std::vector<uint8_t> junk = {0xde, 0xad, 0xbe, 0xef, 0x00};
  EXPECT_TRUE(FromClient(junk).empty());
  auto request = Request(Method::kBinding, [](MessageBuilder&) {}, "", "", {});
  for (size_t len = 0; len < request.size(); ++len) {
    std::vector<uint8_t> cut(request.begin(), request.begin() + len);
    EXPECT_TRUE(FromClient(cut).empty()) << len;
  }
  request.back() ^= 1;  // corrupt FINGERPRINT
  EXPECT_TRUE(FromClient(request).empty());
  EXPECT_GE(engine_->counters().dropped(DropReason::kBadFingerprint), 1u);
  std::vector<uint8_t> short_cd = {0x40, 0x01, 0x00, 0x10, 1, 2};  // says 16, has 2
  EXPECT_TRUE(FromClient(short_cd).empty());
  EXPECT_GE(engine_->counters().dropped(DropReason::kMalformed), 2u);
  EXPECT_EQ(engine_->allocation_count(), 1u);
}

TEST_F(EngineTest, MaxBpsDropsExcess) {
  config_.max_bps = 1000;
  Build();
  Allocated a = Allocate();
  const SocketAddress peer = Addr("198.51.99.10:7000");
  auto [r, code] = Call(a, Method::kCreatePermission, [&](MessageBuilder& b) {
    b.AddXorAddress(attr::kXorPeerAddress, peer);
  });
  ASSERT_EQ(code, 0);
  Advance(1);  // fill the bucket
  std::vector<uint8_t> payload(400, 1);
  size_t delivered = 0;
  for (int i = 0; i < 5; ++i) {
    delivered += FromPeer(a.tag, peer, payload).size();
  }
  EXPECT_EQ(delivered, 2u);  // 1000 bytes of budget: two 400-byte packets
  EXPECT_EQ(engine_->counters().dropped(DropReason::kBandwidth), 3u);
}

TEST_F(EngineTest, ExternalIpIsAdvertised) {
  config_.external_ips = {{*IpAddress::Parse("198.51.100.77"), false, {}}};
  Build();
  Allocated a = Allocate();
  EXPECT_EQ(a.relay.ip, *IpAddress::Parse("198.51.100.77"));
}

TEST_F(EngineTest, StaticUserAndSha256PasswordAlgorithm) {
  config_.use_auth_secret = false;
  config_.static_auth_secrets.clear();
  config_.lt_cred_mech = true;
  config_.users = {{"bob", "hunter2", ""}};
  Build();
  std::string nonce = Nonce();
  auto key = stun::LongTermKeySha256("bob", kRealm, "hunter2");
  std::vector<uint8_t> buf(512);
  stun::TransactionId tid{1, 2, 3};
  MessageBuilder b(buf, Method::kAllocate, MessageClass::kRequest, tid.data());
  UdpTransport(b);
  static constexpr stun::PasswordAlgorithm kAlgs[] = {stun::PasswordAlgorithm::kMd5,
                                                      stun::PasswordAlgorithm::kSha256};
  b.AddPasswordAlgorithms(kAlgs);
  b.AddPasswordAlgorithm(stun::PasswordAlgorithm::kSha256);
  auto hash = stun::UserHash("bob", kRealm);
  b.AddAttribute(attr::kUserhash, hash);
  b.AddString(attr::kRealm, kRealm);
  b.AddString(attr::kNonce, nonce);
  b.AddMessageIntegritySha256(key);
  buf.resize(b.size());
  auto sent = FromClient(buf);
  auto msg = MessageView::Parse(sent.at(0).bytes, nullptr);
  ASSERT_TRUE(msg.has_value());
  EXPECT_EQ(msg->message_class(), MessageClass::kSuccessResponse);
  EXPECT_TRUE(msg->CheckMessageIntegritySha256(key));
  EXPECT_FALSE(msg->HasMessageIntegrity());
}

TEST_F(EngineTest, BidDownOfPasswordAlgorithmsIs400) {
  config_.use_auth_secret = false;
  config_.lt_cred_mech = true;
  config_.users = {{"bob", "hunter2", ""}};
  Build();
  std::string nonce = Nonce();
  auto key = stun::LongTermKeyMd5("bob", kRealm, "hunter2");
  std::vector<uint8_t> buf(512);
  stun::TransactionId tid{4};
  MessageBuilder b(buf, Method::kAllocate, MessageClass::kRequest, tid.data());
  UdpTransport(b);
  static constexpr stun::PasswordAlgorithm kOnlyMd5[] = {stun::PasswordAlgorithm::kMd5};
  b.AddPasswordAlgorithms(kOnlyMd5);  // not what the server offered
  b.AddPasswordAlgorithm(stun::PasswordAlgorithm::kMd5);
  b.AddString(attr::kUsername, "bob");
  b.AddString(attr::kRealm, kRealm);
  b.AddString(attr::kNonce, nonce);
  b.AddMessageIntegrity(key);
  buf.resize(b.size());
  auto sent = FromClient(buf);
  auto msg = MessageView::Parse(sent.at(0).bytes, nullptr);
  EXPECT_EQ(msg->FindErrorCode(), 400);
}

TEST_F(EngineTest, DrainingRefusesNewAllocationsButKeepsOldOnes) {
  Allocated a = Allocate(Addr("203.0.113.5:1"));
  node_->SetDraining(true);
  SocketAddress c2 = Addr("203.0.113.5:2");
  std::string user = Username();
  auto sent = FromClient(Request(Method::kAllocate, UdpTransport, user, Nonce(c2), KeyFor(user)),
                         c2);
  EXPECT_EQ(MessageView::Parse(sent.at(0).bytes, nullptr)->FindErrorCode(), 403);
  auto [r, code] = Call(a, Method::kRefresh, [](MessageBuilder&) {}, Addr("203.0.113.5:1"));
  EXPECT_EQ(code, 0);
}


TEST_F(EngineTest, ListAndKillAllocationsById) {
  Allocated a = Allocate(Addr("203.0.113.5:1"));
  Allocated b = Allocate(Addr("203.0.113.5:2"));
  auto [r, code] = Call(a, Method::kChannelBind, [&](MessageBuilder& m) {
    m.AddU32(attr::kChannelNumber, 0x4001u << 16);
    m.AddXorAddress(attr::kXorPeerAddress, Addr("198.51.99.1:9"));
  }, Addr("203.0.113.5:1"));
  ASSERT_EQ(code, 0);
  std::vector<AllocationInfo> list;
  engine_->ListAllocations(&list);
  ASSERT_EQ(list.size(), 2u);
  const AllocationInfo* info_a = nullptr;
  for (const auto& info : list) {
    if (info.tuple.client == Addr("203.0.113.5:1")) {
      info_a = &info;
    }
  }
  ASSERT_NE(info_a, nullptr);
  EXPECT_EQ(info_a->relay, a.relay);
  EXPECT_EQ(info_a->username, a.username);
  EXPECT_EQ(info_a->lifetime_left_s, config_.default_allocate_lifetime);
  ASSERT_EQ(info_a->channels.size(), 1u);
  EXPECT_EQ(info_a->channels[0].number, 0x4001);
  ASSERT_EQ(info_a->permissions.size(), 1u);
  EXPECT_EQ(Engine::WorkerOf(info_a->id), 0u);

  const uint64_t id = info_a->id;
  EXPECT_FALSE(engine_->KillAllocation(id ^ (uint64_t{1} << 24)));  // wrong generation
  EXPECT_TRUE(engine_->KillAllocation(id));
  EXPECT_FALSE(engine_->KillAllocation(id));  // already gone
  EXPECT_EQ(engine_->allocation_count(), 1u);
  EXPECT_EQ(relays_.open.size(), 1u);
  EXPECT_EQ(node_->total_allocations(), 1u);
  // The killed client's next request finds no allocation.
  auto [r2, c2] = Call(a, Method::kRefresh, [](MessageBuilder&) {}, Addr("203.0.113.5:1"));
  EXPECT_EQ(c2, 437);
  // A new allocation reusing the slot gets a different id.
  Allocate(Addr("203.0.113.5:3"));
  list.clear();
  engine_->ListAllocations(&list);
  for (const auto& info : list) {
    EXPECT_NE(info.id, id);
  }
  (void)b;
}

TEST_F(EngineTest, ReconfigureSwapsSecretsAndPeerPolicyKeepingAllocations) {
  Allocated a = Allocate();
  const SocketAddress private_peer = Addr("10.1.2.3:9");
  auto bind = [&](const Allocated& who) {
    return Call(who, Method::kCreatePermission, [&](MessageBuilder& m) {
      m.AddXorAddress(attr::kXorPeerAddress, private_peer);
    }).second;
  };
  EXPECT_EQ(bind(a), 403);
  ServerConfig next = config_;
  next.static_auth_secrets = {"rotated"};
  next.allowed_peer_ips = {{*IpAddress::Parse("10.1.2.0"), *IpAddress::Parse("10.1.2.255")}};
  engine_->Reconfigure(next);
  EXPECT_EQ(engine_->allocation_count(), 1u);
  // The allocation's old credentials no longer verify; the new secret's do.
  auto [r1, c1] = Call(a, Method::kRefresh, [](MessageBuilder&) {});
  EXPECT_EQ(c1, 401);
  Allocated renewed = a;
  renewed.key = KeyFor(a.username, "rotated");
  EXPECT_EQ(bind(renewed), 0);
}


// Review finding: an Allocate between an allocation's expiry and the next sweep used to orphan
// the old slot (relay socket, port, quota) for good.
TEST_F(EngineTest, AllocateOnExpiredButUnsweptTupleReleasesTheOldAllocation) {
  Allocated a = Allocate();
  const SocketAddress peer = Addr("198.51.99.5:9");
  ASSERT_EQ(Call(a, Method::kCreatePermission, [&](MessageBuilder& m) {
              m.AddXorAddress(attr::kXorPeerAddress, peer);
            }).second, 0);
  Advance(config_.default_allocate_lifetime + 1);  // expired; no Tick yet
  Allocated b = Allocate();
  EXPECT_EQ(relays_.open.size(), 1u);
  EXPECT_EQ(node_->total_allocations(), 1u);
  EXPECT_EQ(engine_->allocation_count(), 1u);
  std::vector<uint8_t> payload = {1, 2};
  if (b.tag != a.tag) {
    EXPECT_TRUE(FromPeer(a.tag, peer, payload).empty());  // the old relay no longer forwards
  }
  engine_->CloseAll();
  EXPECT_TRUE(relays_.open.empty());
  EXPECT_EQ(node_->total_allocations(), 0u);
}

TEST_F(EngineTest, RefreshBelowDefaultLifetimeGetsTheDefault) {
  Allocated a = Allocate();
  auto [resp, code] = Call(a, Method::kRefresh, [](MessageBuilder& m) {
    m.AddU32(attr::kLifetime, 1);
  });
  ASSERT_EQ(code, 0);
  EXPECT_EQ(MessageView::Parse(resp, nullptr)->FindU32(attr::kLifetime),
            config_.default_allocate_lifetime);
}

TEST_F(EngineTest, CreatePermissionWithTwentyPeersInstallsEveryOne) {
  Allocated a = Allocate();
  auto [resp, code] = Call(a, Method::kCreatePermission, [&](MessageBuilder& m) {
    for (int i = 1; i <= 20; ++i) {
      SocketAddress peer = Addr("198.51.99.1:9");
      peer.ip.bytes[3] = static_cast<uint8_t>(i);
      m.AddXorAddress(attr::kXorPeerAddress, peer);
    }
  });
  ASSERT_EQ(code, 0);
  std::vector<uint8_t> payload = {7};
  EXPECT_EQ(FromPeer(a.tag, Addr("198.51.99.20:9"), payload).size(), 1u);
}

TEST_F(EngineTest, BindingWithUnknownComprehensionRequiredAttributeIs420) {
  auto sent = FromClient(Request(Method::kBinding, [](MessageBuilder& m) {
    uint8_t v[4] = {};
    m.AddAttribute(0x0077, v);
  }, "", "", {}));
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(MessageView::Parse(sent[0].bytes, nullptr)->FindErrorCode(), 420);
}

TEST_F(EngineTest, ChannelDataNeedsALivePermission) {
  Allocated a = Allocate();
  const SocketAddress peer = Addr("198.51.99.9:7000");
  ASSERT_EQ(BindChannel(a, 0x4003, peer), 0);
  ASSERT_EQ(Call(a, Method::kRefresh, [](MessageBuilder& m) {
              m.AddU32(attr::kLifetime, 3600);
            }).second, 0);
  Advance(config_.permission_lifetime + 1);  // permission gone, channel still bound
  std::vector<uint8_t> cd = {0x40, 0x03, 0x00, 0x01, 'x'};
  EXPECT_TRUE(FromClient(cd).empty());
  EXPECT_EQ(engine_->counters().dropped(DropReason::kNoPermission), 1u);
}


TEST_F(EngineTest, UnauthenticatedAnswersAreRateLimitedPerSource) {
  config_.unauth_rate = 10;
  config_.unauth_burst = 20;
  Build();
  auto binding = Request(Method::kBinding, [](MessageBuilder&) {}, "", "", {});
  size_t answered = 0;
  for (int i = 0; i < 2000; ++i) {  // 2,000 requests within one instant from one source
    answered += FromClient(binding).size();
  }
  EXPECT_EQ(answered, 20u);
  EXPECT_EQ(engine_->counters().dropped(DropReason::kRateLimited), 1980u);
  // Another source has its own budget.
  EXPECT_EQ(FromClient(binding, Addr("198.51.99.77:5000")).size(), 1u);
  // One second later the source has earned `unauth_rate` more answers.
  Advance(1);
  answered = 0;
  for (int i = 0; i < 100; ++i) {
    answered += FromClient(binding).size();
  }
  EXPECT_EQ(answered, 10u);
}

TEST_F(EngineTest, MinimalRequestsGetTheShortChallengeWhichStillAuthenticates) {
  // A bare Allocate (20-byte header + REQUESTED-TRANSPORT, no FINGERPRINT).
  auto bare = Request(Method::kAllocate, UdpTransport, "", "", {}, /*fingerprint=*/false);
  ASSERT_EQ(bare.size(), 28u);
  auto sent = FromClient(bare);
  ASSERT_EQ(sent.size(), 1u);
  auto msg = MessageView::Parse(sent[0].bytes, nullptr);
  EXPECT_EQ(msg->FindErrorCode(), 401);
  EXPECT_FALSE(msg->Has(attr::kPasswordAlgorithms));
  std::string nonce(*msg->FindString(attr::kNonce));
  EXPECT_FALSE(nonce.starts_with("obMatJos2"));
  std::string user = Username();
  sent = FromClient(Request(Method::kAllocate, UdpTransport, user, nonce, KeyFor(user)));
  EXPECT_EQ(MessageView::Parse(sent.at(0).bytes, nullptr)->message_class(),
            MessageClass::kSuccessResponse);
}

TEST_F(EngineTest, TamperedNonceFeatureBitsAreRefused) {
  std::string nonce = Nonce();
  ASSERT_TRUE(nonce.starts_with("obMatJos2"));
  nonce[9] = nonce[9] == 'A' ? 'B' : 'A';  // flip the announced security features
  std::string user = Username();
  auto sent = FromClient(Request(Method::kAllocate, UdpTransport, user, nonce, KeyFor(user)));
  EXPECT_EQ(MessageView::Parse(sent.at(0).bytes, nullptr)->FindErrorCode(), 438);
}

// Reflection: what an unauthenticated request can make the server send, on the wire (IPv4 and
// UDP headers, 28 bytes, counted on both sides). Printed for docs/security.md.
TEST_F(EngineTest, UnauthenticatedResponsesStayWithinTwiceTheRequestOnTheWire) {
  auto ratio = [](size_t request, size_t response) {
    return static_cast<double>(response + 28) / static_cast<double>(request + 28);
  };
  struct Case {
    const char* name;
    std::vector<uint8_t> request;
  };
  std::string user = Username();
  std::vector<Case> cases = {
      {"minimal Binding", Request(Method::kBinding, [](MessageBuilder&) {}, "", "", {}, false)},
      {"minimal unauthenticated Allocate", Request(Method::kAllocate, UdpTransport, "", "", {},
                                                   false)},
      {"minimal unauthenticated Refresh",
       Request(Method::kRefresh, [](MessageBuilder&) {}, "", "", {}, false)},
      {"bad-integrity Allocate",
       Request(Method::kAllocate, UdpTransport, user, Nonce(), KeyFor(user, "wrong"), false)},
  };
  for (const Case& c : cases) {
    auto sent = FromClient(c.request);
    ASSERT_EQ(sent.size(), 1u) << c.name;
    double r = ratio(c.request.size(), sent[0].bytes.size());
    std::printf("ratio %-34s request %3zu B, response %3zu B, on the wire %.2f\n", c.name,
                c.request.size(), sent[0].bytes.size(), r);
    EXPECT_LE(r, 2.0) << c.name;
  }
}


TEST_F(EngineTest, DualAllocationRelaysBothFamilies) {
  config_.relay_ips = {*IpAddress::Parse("192.0.2.10"), *IpAddress::Parse("2001:db8::10")};
  Build();
  std::string user = Username();
  auto key = KeyFor(user);
  auto sent = FromClient(Request(Method::kAllocate, [](MessageBuilder& b) {
    UdpTransport(b);
    uint8_t v6[4] = {0x02, 0, 0, 0};
    b.AddAttribute(attr::kAdditionalAddressFamily, v6);
  }, user, Nonce(), key));
  auto msg = MessageView::Parse(sent.at(0).bytes, nullptr);
  ASSERT_EQ(msg->message_class(), MessageClass::kSuccessResponse);
  SocketAddress relays[4];
  size_t bad = 0;
  ASSERT_EQ(msg->FindAllXorAddresses(attr::kXorRelayedAddress, relays, &bad), 2u);
  EXPECT_TRUE(relays[0].ip.is_v4());
  EXPECT_TRUE(relays[1].ip.is_v6());
  EXPECT_EQ(relays_.open.size(), 2u);

  Allocated a{0, relays[0], user, key, std::string(*MessageView::Parse(
      FromClient(Request(Method::kAllocate, UdpTransport, "", "", {}), Addr("203.0.113.5:40000"))
          .at(0).bytes, nullptr)->FindString(attr::kNonce))};
  // Permissions for a peer of each family; the IPv6 one goes out of the IPv6 relay.
  const SocketAddress peer4 = Addr("198.51.99.1:9");
  const SocketAddress peer6 = Addr("[2606:4700::1111]:9");
  ASSERT_EQ(Call(a, Method::kCreatePermission, [&](MessageBuilder& b) {
              b.AddXorAddress(attr::kXorPeerAddress, peer4);
              b.AddXorAddress(attr::kXorPeerAddress, peer6);
            }).second, 0);
  std::vector<uint8_t> buf(256);
  stun::TransactionId tid{};
  MessageBuilder b(buf, Method::kSend, MessageClass::kIndication, tid.data());
  b.AddXorAddress(attr::kXorPeerAddress, peer6);
  std::vector<uint8_t> payload = {1, 2, 3};
  b.AddAttribute(attr::kData, payload);
  buf.resize(b.size());
  auto out = FromClient(buf);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(relays_.open.at(out[0].socket).address, relays[1]);
  // Packets from the IPv6 peer on the IPv6 relay reach the client.
  uint32_t tag6 = 0;
  for (auto& [id, r] : relays_.open) {
    if (r.address == relays[1]) tag6 = r.tag;
  }
  EXPECT_EQ(FromPeer(tag6, peer6, payload).size(), 1u);
  // Deleting releases both relays.
  ASSERT_EQ(Call(a, Method::kRefresh, [](MessageBuilder& m) { m.AddU32(attr::kLifetime, 0); })
                .second, 0);
  EXPECT_TRUE(relays_.open.empty());
}

TEST_F(EngineTest, DualAllocationWithoutIpv6RelayReportsAddressErrorCode) {
  std::string user = Username();
  auto sent = FromClient(Request(Method::kAllocate, [](MessageBuilder& b) {
    UdpTransport(b);
    uint8_t v6[4] = {0x02, 0, 0, 0};
    b.AddAttribute(attr::kAdditionalAddressFamily, v6);
  }, user, Nonce(), KeyFor(user)));
  auto msg = MessageView::Parse(sent.at(0).bytes, nullptr);
  ASSERT_EQ(msg->message_class(), MessageClass::kSuccessResponse);
  auto error = msg->FindValue(attr::kAddressErrorCode);
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ((*error)[0], 0x02);
  EXPECT_EQ((*error)[2] * 100 + (*error)[3], 440);
  EXPECT_EQ(relays_.open.size(), 1u);
}

TEST_F(EngineTest, AdditionalFamilyIpv4OrWithRequestedFamilyIs400) {
  std::string user = Username();
  std::string nonce = Nonce();
  auto v4 = FromClient(Request(Method::kAllocate, [](MessageBuilder& b) {
    UdpTransport(b);
    uint8_t fam[4] = {0x01, 0, 0, 0};
    b.AddAttribute(attr::kAdditionalAddressFamily, fam);
  }, user, nonce, KeyFor(user)));
  EXPECT_EQ(MessageView::Parse(v4.at(0).bytes, nullptr)->FindErrorCode(), 400);
  auto both = FromClient(Request(Method::kAllocate, [](MessageBuilder& b) {
    UdpTransport(b);
    uint8_t fam[4] = {0x02, 0, 0, 0};
    b.AddAttribute(attr::kRequestedAddressFamily, fam);
    b.AddAttribute(attr::kAdditionalAddressFamily, fam);
  }, user, nonce, KeyFor(user)));
  EXPECT_EQ(MessageView::Parse(both.at(0).bytes, nullptr)->FindErrorCode(), 400);
}

TEST_F(EngineTest, PeerOfTheOtherFamilyIs443) {
  Allocated a = Allocate();  // IPv4 only
  EXPECT_EQ(Call(a, Method::kCreatePermission, [&](MessageBuilder& b) {
              b.AddXorAddress(attr::kXorPeerAddress, Addr("[2606:4700::1111]:9"));
            }).second, 443);
}


TEST_F(EngineTest, ForbiddenIpv6FormsAre403OnAnIpv6Allocation) {
  config_.relay_ips = {*IpAddress::Parse("192.0.2.10"), *IpAddress::Parse("2001:db8::10")};
  Build();
  std::string user = Username();
  auto key = KeyFor(user);
  std::string nonce = Nonce();
  auto sent = FromClient(Request(Method::kAllocate, [](MessageBuilder& b) {
    UdpTransport(b);
    uint8_t v6[4] = {0x02, 0, 0, 0};
    b.AddAttribute(attr::kRequestedAddressFamily, v6);
  }, user, nonce, key));
  auto msg = MessageView::Parse(sent.at(0).bytes, nullptr);
  ASSERT_EQ(msg->message_class(), MessageClass::kSuccessResponse);
  ASSERT_TRUE(msg->FindXorAddress(attr::kXorRelayedAddress)->ip.is_v6());
  Allocated a{0, *msg->FindXorAddress(attr::kXorRelayedAddress), user, key, nonce};
  for (const char* peer : {"[::ffff:127.0.0.1]:9", "[::ffff:169.254.169.254]:80",
                           "[64:ff9b::a9fe:a9fe]:80", "[2002:7f00:1::1]:9", "[::127.0.0.1]:9",
                           "[::1]:9", "[::]:9", "[fe80::1]:9", "[fc00::1]:9", "[ff02::1]:9",
                           "[::ffff:10.0.0.1]:9", "[2001:0:4136:e378:8000:63bf:3fff:fdd2]:9"}) {
    SCOPED_TRACE(peer);
    EXPECT_EQ(Call(a, Method::kCreatePermission, [&](MessageBuilder& b) {
                b.AddXorAddress(attr::kXorPeerAddress, Addr(peer));
              }).second, 403);
    EXPECT_EQ(Call(a, Method::kChannelBind, [&](MessageBuilder& b) {
                b.AddU32(attr::kChannelNumber, 0x4000u << 16);
                b.AddXorAddress(attr::kXorPeerAddress, Addr(peer));
              }).second, 403);
  }
  EXPECT_EQ(Call(a, Method::kCreatePermission, [&](MessageBuilder& b) {
              b.AddXorAddress(attr::kXorPeerAddress, Addr("[2606:4700::1111]:9"));
            }).second, 0);
}


class RecordingSink : public EngineEventSink {
 public:
  void OnAllocationCreated(const AllocationInfo& info) override { created.push_back(info); }
  void OnAllocationDeleted(uint64_t id, std::string_view username,
                           AllocationEnd reason) override {
    deleted.push_back({id, std::string(username), reason});
  }
  struct Deleted {
    uint64_t id;
    std::string username;
    AllocationEnd reason;
  };
  std::vector<AllocationInfo> created;
  std::vector<Deleted> deleted;
};

TEST_F(EngineTest, EventSinkSeesEveryAllocationStartAndEndWithItsReason) {
  RecordingSink sink;
  engine_->SetEventSink(&sink);
  Allocated a = Allocate(Addr("203.0.113.5:1"));
  Allocated b = Allocate(Addr("203.0.113.5:2"));
  Allocate(Addr("203.0.113.5:3"));
  ASSERT_EQ(sink.created.size(), 3u);
  EXPECT_EQ(sink.created[0].relay, a.relay);
  EXPECT_EQ(sink.created[0].username, a.username);
  ASSERT_EQ(Call(a, Method::kRefresh, [](MessageBuilder& m) { m.AddU32(attr::kLifetime, 0); },
                 Addr("203.0.113.5:1")).second, 0);
  EXPECT_TRUE(engine_->KillAllocation(sink.created[1].id));
  engine_->CloseAll();
  ASSERT_EQ(sink.deleted.size(), 3u);
  EXPECT_EQ(sink.deleted[0].id, sink.created[0].id);
  EXPECT_EQ(sink.deleted[0].reason, AllocationEnd::kRefreshZero);
  EXPECT_EQ(sink.deleted[1].id, sink.created[1].id);
  EXPECT_EQ(sink.deleted[1].reason, AllocationEnd::kKilled);
  EXPECT_EQ(sink.deleted[2].reason, AllocationEnd::kShutdown);
  EXPECT_EQ(AllocationEndName(AllocationEnd::kExpired), "expired");
  (void)b;
}


// ---------------------------------------------------------------------------------------------
// Stream clients (TURN over TCP and TLS), RFC 6062 refusal, bps-capacity, node-wide
// max-allocations and connection caps.

// ChannelData for `channel` carrying `payload` as a client sends it (no stream padding: the
// backend's framer hands over whole messages without it).
std::vector<uint8_t> ChannelData(uint16_t channel, const std::vector<uint8_t>& payload) {
  std::vector<uint8_t> cd(4 + payload.size());
  cd[0] = static_cast<uint8_t>(channel >> 8);
  cd[1] = static_cast<uint8_t>(channel);
  cd[2] = static_cast<uint8_t>(payload.size() >> 8);
  cd[3] = static_cast<uint8_t>(payload.size());
  std::copy(payload.begin(), payload.end(), cd.begin() + 4);
  return cd;
}

std::vector<uint8_t> Payload(size_t n, uint8_t seed) {
  std::vector<uint8_t> p(n);
  for (size_t i = 0; i < n; ++i) {
    p[i] = static_cast<uint8_t>(seed + i * 7 + 1);  // no zero bytes, so padding is visible
  }
  return p;
}

TEST_F(EngineTest, StreamClientsAllocateAndGetChannelDataPaddedToFourBytes) {
  const SocketAddress peer_ch = Addr("198.51.99.20:6000");   // reached through a channel
  const SocketAddress peer_ind = Addr("198.51.99.21:6000");  // reached through indications
  struct Client {
    ClientTransport transport;
    SocketAddress address;
  };
  const Client clients[] = {{ClientTransport::kTcp, Addr("203.0.113.5:40001")},
                            {ClientTransport::kTls, Addr("203.0.113.5:40002")},
                            {ClientTransport::kUdp, Addr("203.0.113.5:40003")}};
  for (const Client& c : clients) {
    SCOPED_TRACE(ClientTransportName(c.transport));
    const SocketId listener = ListenerFor(c.transport);
    Allocated a = Allocate(c.address, c.transport);
    ASSERT_TRUE(engine_->HasAllocation(TupleFor(c.address, c.transport)));
    auto [r1, c1] = Call(a, Method::kCreatePermission, [&](MessageBuilder& b) {
      b.AddXorAddress(attr::kXorPeerAddress, peer_ind);
    }, c.address, c.transport);
    ASSERT_EQ(c1, 0);
    EXPECT_TRUE(MessageView::Parse(r1, nullptr)->CheckMessageIntegrity(a.key));
    auto [r2, c2] = Call(a, Method::kChannelBind, [&](MessageBuilder& b) {
      b.AddU32(attr::kChannelNumber, 0x4005u << 16);
      b.AddXorAddress(attr::kXorPeerAddress, peer_ch);
    }, c.address, c.transport);
    ASSERT_EQ(c2, 0);

    // Client -> peer over the channel: the payload alone leaves the relay socket.
    std::vector<uint8_t> up = Payload(5, 0x30);
    auto sent = FromClient(ChannelData(0x4005, up), c.address, c.transport);
    ASSERT_EQ(sent.size(), 1u);
    EXPECT_EQ(sent[0].dst, peer_ch);
    EXPECT_EQ(relays_.open.at(sent[0].socket).address, a.relay);
    EXPECT_EQ(sent[0].bytes, up);

    for (size_t n = 1; n <= 8; ++n) {
      SCOPED_TRACE(n);
      const std::vector<uint8_t> payload = Payload(n, static_cast<uint8_t>(n));
      // Peer -> client through the channel.
      engine_->OnPeerPacket(a.tag, peer_ch, payload, tx_);
      ASSERT_EQ(tx_.size(), 1u);
      const size_t want_pad = c.transport == ClientTransport::kUdp ? 0 : (4 - n % 4) % 4;
      EXPECT_EQ(tx_[0].tail_pad, want_pad);
      EXPECT_EQ(tx_[0].head_len, 4u);
      EXPECT_EQ(tx_[0].body_len, n);
      EXPECT_EQ(tx_[0].body, payload.data());  // still zero-copy
      EXPECT_EQ(tx_[0].size(), 4 + n + want_pad);
      if (c.transport != ClientTransport::kUdp) {
        EXPECT_EQ(tx_[0].size() % 4, 0u);
      }
      sent = Drain();
      EXPECT_EQ(sent[0].socket, listener);
      EXPECT_EQ(sent[0].dst, c.address);
      auto view = stun::ParseChannelData(sent[0].bytes);
      ASSERT_TRUE(view.has_value());
      EXPECT_EQ(view->channel, 0x4005);
      // The length field counts the payload only, never the padding.
      EXPECT_EQ((size_t{sent[0].bytes[2]} << 8) | sent[0].bytes[3], n);
      EXPECT_EQ(std::vector<uint8_t>(view->payload.begin(), view->payload.end()), payload);
      for (size_t i = 4 + n; i < sent[0].bytes.size(); ++i) {
        EXPECT_EQ(sent[0].bytes[i], 0) << "padding byte " << i;
      }

      // Peer -> client without a channel: a Data indication, padded whatever the transport.
      sent = FromPeer(a.tag, peer_ind, payload);
      ASSERT_EQ(sent.size(), 1u);
      EXPECT_EQ(sent[0].socket, listener);
      EXPECT_EQ(sent[0].dst, c.address);
      auto msg = MessageView::Parse(sent[0].bytes, nullptr);
      ASSERT_TRUE(msg.has_value());
      EXPECT_EQ(msg->method(), Method::kData);
      EXPECT_EQ(msg->message_class(), MessageClass::kIndication);
      EXPECT_EQ(msg->FindXorAddress(attr::kXorPeerAddress), peer_ind);
      auto data = msg->FindValue(attr::kData);
      ASSERT_TRUE(data.has_value());
      EXPECT_EQ(std::vector<uint8_t>(data->begin(), data->end()), payload);
      EXPECT_EQ(sent[0].bytes.size() % 4, 0u);
    }
  }
  // The sweep's gauges split allocations by client transport.
  Advance(1);
  engine_->Tick();
  for (size_t t = 0; t < 3; ++t) {
    EXPECT_EQ(engine_->counters().allocations[t][0], 1u) << t;
    EXPECT_EQ(engine_->counters().allocations[t][1], 0u) << t;
  }
  EXPECT_EQ(ClientTransportName(ClientTransport::kUdp), "udp");
  EXPECT_EQ(ClientTransportName(ClientTransport::kTcp), "tcp");
  EXPECT_EQ(ClientTransportName(ClientTransport::kTls), "tls");
}

TEST_F(EngineTest, SameClientAddressOverUdpAndTcpIsTwoAllocations) {
  RecordingSink sink;
  engine_->SetEventSink(&sink);
  const SocketAddress client = Addr("203.0.113.5:40000");
  Allocated udp = Allocate(client, ClientTransport::kUdp);
  Allocated tcp = Allocate(client, ClientTransport::kTcp);  // not 437: another 5-tuple
  EXPECT_NE(udp.relay, tcp.relay);
  EXPECT_NE(udp.tag, tcp.tag);
  EXPECT_EQ(relays_.open.size(), 2u);
  EXPECT_EQ(engine_->allocation_count(), 2u);
  EXPECT_EQ(node_->total_allocations(), 2u);
  ASSERT_EQ(sink.created.size(), 2u);
  EXPECT_EQ(sink.created[0].transport, ClientTransport::kUdp);
  EXPECT_EQ(sink.created[0].tuple, TupleFor(client, ClientTransport::kUdp));
  EXPECT_EQ(sink.created[1].transport, ClientTransport::kTcp);
  EXPECT_EQ(sink.created[1].tuple, TupleFor(client, ClientTransport::kTcp));
  EXPECT_EQ(sink.created[1].tuple.protocol, IPPROTO_TCP);
  EXPECT_TRUE(engine_->HasAllocation(TupleFor(client, ClientTransport::kUdp)));
  EXPECT_TRUE(engine_->HasAllocation(TupleFor(client, ClientTransport::kTcp)));

  // The same channel number on both, to different peers: each transport reaches its own.
  const SocketAddress peer_u = Addr("198.51.99.30:1000"), peer_t = Addr("198.51.99.31:1000");
  ASSERT_EQ(Call(udp, Method::kChannelBind, [&](MessageBuilder& b) {
              b.AddU32(attr::kChannelNumber, 0x4001u << 16);
              b.AddXorAddress(attr::kXorPeerAddress, peer_u);
            }, client, ClientTransport::kUdp).second, 0);
  ASSERT_EQ(Call(tcp, Method::kChannelBind, [&](MessageBuilder& b) {
              b.AddU32(attr::kChannelNumber, 0x4001u << 16);
              b.AddXorAddress(attr::kXorPeerAddress, peer_t);
            }, client, ClientTransport::kTcp).second, 0);
  std::vector<uint8_t> p = Payload(3, 9);
  auto sent = FromClient(ChannelData(0x4001, p), client, ClientTransport::kUdp);
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].dst, peer_u);
  EXPECT_EQ(relays_.open.at(sent[0].socket).address, udp.relay);
  sent = FromClient(ChannelData(0x4001, p), client, ClientTransport::kTcp);
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].dst, peer_t);
  EXPECT_EQ(relays_.open.at(sent[0].socket).address, tcp.relay);
  sent = FromPeer(udp.tag, peer_u, p);
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].socket, kListener);
  EXPECT_EQ(sent[0].bytes.size(), 4u + 3u);  // UDP: unpadded
  sent = FromPeer(tcp.tag, peer_t, p);
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].socket, kStream);
  EXPECT_EQ(sent[0].bytes.size(), 8u);  // TCP: padded
  // A peer permitted on one allocation is not permitted on the other.
  EXPECT_TRUE(FromPeer(udp.tag, peer_t, p).empty());
  EXPECT_EQ(engine_->counters().dropped(DropReason::kNoPermission), 1u);

  // The control plane sees both, with their transports.
  std::vector<AllocationInfo> list;
  engine_->ListAllocations(&list);
  ASSERT_EQ(list.size(), 2u);
  int udp_seen = 0, tcp_seen = 0;
  for (const AllocationInfo& info : list) {
    EXPECT_EQ(info.tuple.client, client);
    if (info.transport == ClientTransport::kUdp) {
      ++udp_seen;
      EXPECT_EQ(info.relay, udp.relay);
    } else if (info.transport == ClientTransport::kTcp) {
      ++tcp_seen;
      EXPECT_EQ(info.relay, tcp.relay);
    }
  }
  EXPECT_EQ(udp_seen, 1);
  EXPECT_EQ(tcp_seen, 1);

  // Deleting the TCP one leaves the UDP one alone.
  ASSERT_EQ(Call(tcp, Method::kRefresh, [](MessageBuilder& b) { b.AddU32(attr::kLifetime, 0); },
                 client, ClientTransport::kTcp).second, 0);
  EXPECT_FALSE(engine_->HasAllocation(TupleFor(client, ClientTransport::kTcp)));
  EXPECT_TRUE(engine_->HasAllocation(TupleFor(client, ClientTransport::kUdp)));
  EXPECT_EQ(relays_.open.size(), 1u);
  EXPECT_EQ(Call(udp, Method::kRefresh, [](MessageBuilder&) {}, client).second, 0);
  EXPECT_EQ(Call(tcp, Method::kRefresh, [](MessageBuilder&) {}, client, ClientTransport::kTcp)
                .second,
            437);
}

TEST_F(EngineTest, StreamCloseEndsTheAllocation) {
  RecordingSink sink;
  engine_->SetEventSink(&sink);
  const SocketAddress client = Addr("203.0.113.5:40000");
  const FiveTuple tuple = TupleFor(client, ClientTransport::kTcp);
  const size_t free_before = node_->FreePorts(*IpAddress::Parse("192.0.2.10"));
  Allocated a = Allocate(client, ClientTransport::kTcp);
  const SocketAddress peer = Addr("198.51.99.40:5000");
  ASSERT_EQ(Call(a, Method::kCreatePermission, [&](MessageBuilder& b) {
              b.AddXorAddress(attr::kXorPeerAddress, peer);
            }, client, ClientTransport::kTcp).second, 0);
  ASSERT_EQ(relays_.open.size(), 1u);
  EXPECT_EQ(node_->FreePorts(a.relay.ip), free_before - 1);
  EXPECT_EQ(node_->total_allocations(), 1u);
  ASSERT_TRUE(engine_->HasAllocation(tuple));

  engine_->OnStreamClosed(tuple);
  EXPECT_TRUE(relays_.open.empty());                        // relay socket closed
  EXPECT_EQ(node_->FreePorts(a.relay.ip), free_before);     // port returned
  EXPECT_EQ(node_->total_allocations(), 0u);                // quota released
  EXPECT_EQ(engine_->allocation_count(), 0u);
  EXPECT_FALSE(engine_->HasAllocation(tuple));
  EXPECT_EQ(engine_->counters().allocations_deleted, 1u);
  ASSERT_EQ(sink.created.size(), 1u);
  ASSERT_EQ(sink.deleted.size(), 1u);
  EXPECT_EQ(sink.deleted[0].id, sink.created[0].id);
  EXPECT_EQ(sink.deleted[0].username, a.username);
  EXPECT_EQ(sink.deleted[0].reason, AllocationEnd::kClientClosed);
  EXPECT_EQ(AllocationEndName(AllocationEnd::kClientClosed), "closed");
  // The relay is gone for peers too.
  EXPECT_TRUE(FromPeer(a.tag, peer, Payload(4, 1)).empty());
  EXPECT_EQ(engine_->counters().dropped(DropReason::kNoAllocation), 1u);

  // A second close of the same connection is a no-op.
  engine_->OnStreamClosed(tuple);
  EXPECT_EQ(sink.deleted.size(), 1u);
  EXPECT_EQ(engine_->counters().allocations_deleted, 1u);
  EXPECT_EQ(node_->total_allocations(), 0u);

  // The user's quota is really free again: with user-quota 1 a new connection may allocate.
  config_.user_quota = 1;
  Build();
  engine_->SetEventSink(&sink);
  std::string user = Username();
  auto key = KeyFor(user);
  const SocketAddress c1 = Addr("203.0.113.5:41000"), c2 = Addr("203.0.113.5:41001");
  auto ok = [](const std::vector<Sent>& s) {
    return s.size() == 1 && MessageView::Parse(s[0].bytes, nullptr)->message_class() ==
                                MessageClass::kSuccessResponse;
  };
  EXPECT_TRUE(ok(FromClient(Request(Method::kAllocate, UdpTransport, user,
                                    Nonce(c1, ClientTransport::kTcp), key),
                            c1, ClientTransport::kTcp)));
  engine_->OnStreamClosed(TupleFor(c1, ClientTransport::kTcp));
  EXPECT_TRUE(ok(FromClient(Request(Method::kAllocate, UdpTransport, user,
                                    Nonce(c2, ClientTransport::kTcp), key),
                            c2, ClientTransport::kTcp)));
}

TEST_F(EngineTest, StreamCloseOfAnUnknownTupleDoesNothing) {
  RecordingSink sink;
  engine_->SetEventSink(&sink);
  const SocketAddress client = Addr("203.0.113.5:40000");
  Allocated tcp = Allocate(client, ClientTransport::kTcp);
  // Another client port, another client IP, another server address: none of them is ours.
  engine_->OnStreamClosed(TupleFor(Addr("203.0.113.5:40001"), ClientTransport::kTcp));
  engine_->OnStreamClosed(TupleFor(Addr("203.0.113.6:40000"), ClientTransport::kTcp));
  engine_->OnStreamClosed(FiveTuple{client, Addr("192.0.2.10:443"), IPPROTO_TCP});
  engine_->OnStreamClosed(FiveTuple{});
  EXPECT_TRUE(sink.deleted.empty());
  EXPECT_EQ(engine_->allocation_count(), 1u);
  EXPECT_EQ(relays_.open.size(), 1u);
  EXPECT_EQ(node_->total_allocations(), 1u);
  EXPECT_TRUE(engine_->HasAllocation(TupleFor(client, ClientTransport::kTcp)));
  EXPECT_EQ(engine_->counters().allocations_deleted, 0u);
  (void)tcp;
}

// A UDP allocation has no connection; a close for a UDP 5-tuple (which no backend should
// report) must not end it.
TEST_F(EngineTest, StreamCloseForAUdpTupleLeavesTheUdpAllocation) {
  RecordingSink sink;
  engine_->SetEventSink(&sink);
  const SocketAddress client = Addr("203.0.113.5:40000");
  Allocated udp = Allocate(client, ClientTransport::kUdp);
  engine_->OnStreamClosed(TupleFor(client, ClientTransport::kUdp));
  EXPECT_TRUE(sink.deleted.empty());
  EXPECT_EQ(engine_->allocation_count(), 1u);
  EXPECT_EQ(relays_.open.size(), 1u);
  EXPECT_TRUE(engine_->HasAllocation(TupleFor(client, ClientTransport::kUdp)));
  (void)udp;
}

TEST_F(EngineTest, HasAllocationFollowsTheLifetime) {
  const SocketAddress client = Addr("203.0.113.5:40000");
  const FiveTuple tcp = TupleFor(client, ClientTransport::kTcp);
  const FiveTuple udp = TupleFor(client, ClientTransport::kUdp);
  EXPECT_FALSE(engine_->HasAllocation(tcp));
  Allocated a = Allocate(client, ClientTransport::kTcp);
  EXPECT_TRUE(engine_->HasAllocation(tcp));
  EXPECT_FALSE(engine_->HasAllocation(udp));  // same address, other protocol
  EXPECT_FALSE(engine_->HasAllocation(TupleFor(Addr("203.0.113.5:40001"),
                                               ClientTransport::kTcp)));
  Advance(config_.default_allocate_lifetime - 1);
  EXPECT_TRUE(engine_->HasAllocation(tcp));
  Advance(1);  // expired, not swept yet
  EXPECT_FALSE(engine_->HasAllocation(tcp));
  EXPECT_EQ(relays_.open.size(), 1u);  // HasAllocation is a query: it releases nothing
  engine_->Tick();
  EXPECT_FALSE(engine_->HasAllocation(tcp));
  EXPECT_TRUE(relays_.open.empty());
  EXPECT_EQ(engine_->counters().allocations_expired, 1u);

  // And false after a zero-lifetime Refresh.
  Allocated b = Allocate(client, ClientTransport::kTcp);
  ASSERT_TRUE(engine_->HasAllocation(tcp));
  ASSERT_EQ(Call(b, Method::kRefresh, [](MessageBuilder& m) { m.AddU32(attr::kLifetime, 0); },
                 client, ClientTransport::kTcp).second, 0);
  EXPECT_FALSE(engine_->HasAllocation(tcp));
  (void)a;
}

TEST_F(EngineTest, ConnectAndConnectionBindAre403UnknownMethodIs400) {
  struct Case {
    uint16_t method;
    int code;
  };
  const Case cases[] = {{0x00A, 403}, {0x00B, 403}, {0x0FF, 400}, {0x00C, 400}};
  const SocketAddress client = Addr("203.0.113.5:40000");
  Allocated a = Allocate(client, ClientTransport::kTcp);  // an allocation changes nothing
  std::string user = Username();
  for (ClientTransport transport : {ClientTransport::kUdp, ClientTransport::kTcp}) {
    for (const Case& c : cases) {
      for (bool with_credentials : {false, true}) {
        SCOPED_TRACE(testing::Message() << ClientTransportName(transport) << " method 0x"
                                        << std::hex << c.method << " credentials "
                                        << with_credentials);
        auto fill = [](MessageBuilder& b) {
          b.AddXorAddress(attr::kXorPeerAddress, Addr("198.51.99.50:80"));
        };
        auto request = with_credentials
                           ? Request(static_cast<Method>(c.method), fill, a.username, a.nonce,
                                     a.key)
                           : Request(static_cast<Method>(c.method), fill, "", "", {});
        auto sent = FromClient(request, client, transport);
        ASSERT_EQ(sent.size(), 1u);
        EXPECT_EQ(sent[0].socket, ListenerFor(transport));
        auto msg = MessageView::Parse(sent[0].bytes, nullptr);
        ASSERT_TRUE(msg.has_value());
        EXPECT_EQ(msg->message_class(), MessageClass::kErrorResponse);
        EXPECT_EQ(static_cast<uint16_t>(msg->method()), c.method);
        EXPECT_EQ(std::memcmp(msg->transaction_id(), last_tid_.data(), 12), 0);
        EXPECT_EQ(msg->FindErrorCode(), c.code);
        EXPECT_TRUE(msg->HasFingerprint());
      }
    }
  }
  EXPECT_EQ(relays_.open.size(), 1u);  // nothing opened for TCP relaying
  EXPECT_EQ(engine_->allocation_count(), 1u);
  (void)user;
}

TEST_F(EngineTest, BpsCapacityDropsExcessInBothDirections) {
  config_.bps_capacity = 1000;
  Build();  // worker_count 1: this worker's share is all 1000 bytes per second
  const SocketAddress client = Addr("203.0.113.5:40000");
  const SocketAddress peer = Addr("198.51.99.60:7000");
  Allocated a = Allocate(client);
  ASSERT_EQ(BindChannel(a, 0x4001, peer), 0);
  const std::vector<uint8_t> payload(600, 0x5A);
  const std::vector<uint8_t> cd = ChannelData(0x4001, payload);
  auto burst = [&](size_t* to_peer, size_t* to_client) {
    *to_peer = *to_client = 0;
    for (int i = 0; i < 3; ++i) {
      *to_peer += FromClient(cd, client).size();
    }
    for (int i = 0; i < 3; ++i) {
      *to_client += FromPeer(a.tag, peer, payload).size();
    }
  };
  size_t up = 0, down = 0;
  burst(&up, &down);
  EXPECT_EQ(up, 1u);    // 600 of 1000; the next 600 would exceed it
  EXPECT_EQ(down, 1u);  // the other direction has its own budget
  EXPECT_EQ(engine_->counters().dropped(DropReason::kNodeBandwidth), 4u);
  EXPECT_EQ(engine_->counters().dropped(DropReason::kBandwidth), 0u);  // max-bps is off
  EXPECT_EQ(engine_->counters().to_peer_packets, 1u);
  EXPECT_EQ(engine_->counters().to_client_packets, 1u);

  Advance(1);  // a second later: a second's worth again
  burst(&up, &down);
  EXPECT_EQ(up, 1u);
  EXPECT_EQ(down, 1u);
  EXPECT_EQ(engine_->counters().dropped(DropReason::kNodeBandwidth), 8u);

  Advance(10);  // idle time does not bank more than one second
  burst(&up, &down);
  EXPECT_EQ(up, 1u);
  EXPECT_EQ(down, 1u);
  EXPECT_EQ(engine_->counters().dropped(DropReason::kNodeBandwidth), 12u);

  // Send indications are charged to the same budget as ChannelData.
  Advance(1);
  auto send = [&] {
    std::vector<uint8_t> buf(1024);
    stun::TransactionId tid{};
    MessageBuilder b(buf, Method::kSend, MessageClass::kIndication, tid.data());
    b.AddXorAddress(attr::kXorPeerAddress, peer);
    b.AddAttribute(attr::kData, payload);
    buf.resize(b.size());
    return FromClient(buf, client).size();
  };
  EXPECT_EQ(send(), 1u);
  EXPECT_EQ(send(), 0u);
  EXPECT_EQ(FromClient(cd, client).size(), 0u);
  EXPECT_EQ(engine_->counters().dropped(DropReason::kNodeBandwidth), 14u);
}

// A packet dropped for a full TX batch after it was charged gets its bytes back: the
// allocation's max-bps and the node's bps-capacity budgets count only what was sent.
TEST_F(EngineTest, TxFullDropRefundsTheBandwidthBudgets) {
  config_.max_bps = 1000;
  config_.bps_capacity = 1000;
  Build();
  const SocketAddress client = Addr("203.0.113.5:40000");
  Allocated a = Allocate(client);
  const SocketAddress peer = Addr("198.51.99.11:7000");
  ASSERT_EQ(BindChannel(a, 0x4001, peer), 0);
  Advance(1);  // fill the buckets
  const std::vector<uint8_t> payload(600, 1);
  const std::vector<uint8_t> cd = ChannelData(0x4001, payload);
  for (bool to_peer : {true, false}) {
    while (tx_.Next() != nullptr) {
    }
    if (to_peer) {
      engine_->OnClientPacket(kListener, kServer, client, cd, tx_);
    } else {
      engine_->OnPeerPacket(a.tag, peer, payload, tx_);
    }
    tx_.Clear();
    EXPECT_EQ(engine_->counters().dropped(DropReason::kTxFull), to_peer ? 1u : 2u);
    // 600 of 1000 bytes: sent only if the dropped packet's 600 came back.
    EXPECT_EQ(to_peer ? FromClient(cd, client).size() : FromPeer(a.tag, peer, payload).size(),
              1u)
        << (to_peer ? "to the peer" : "to the client");
  }
  EXPECT_EQ(engine_->counters().dropped(DropReason::kBandwidth), 0u);
  EXPECT_EQ(engine_->counters().dropped(DropReason::kNodeBandwidth), 0u);
}

// bps-capacity changed by a reload (Reconfigure) applies from the next packet: off, on, off.
TEST_F(EngineTest, BpsCapacityFollowsReconfigure) {
  Build();  // bps-capacity 0: no node limit
  const SocketAddress client = Addr("203.0.113.5:40000");
  const SocketAddress peer = Addr("198.51.99.62:7000");
  Allocated a = Allocate(client);
  ASSERT_EQ(BindChannel(a, 0x4001, peer), 0);
  const std::vector<uint8_t> cd = ChannelData(0x4001, std::vector<uint8_t>(600, 0x5A));
  auto relayed = [&] {
    size_t n = 0;
    for (int i = 0; i < 3; ++i) n += FromClient(cd, client).size();
    return n;
  };
  EXPECT_EQ(relayed(), 3u);
  ServerConfig limited = config_;
  limited.bps_capacity = 1000;
  engine_->Reconfigure(limited);
  Advance(2);
  EXPECT_EQ(relayed(), 1u);  // 600 of the 1000 bytes a second, then 400 left
  EXPECT_EQ(engine_->counters().dropped(DropReason::kNodeBandwidth), 2u);
  engine_->Reconfigure(config_);
  EXPECT_EQ(relayed(), 3u);
}

TEST_F(EngineTest, BpsCapacityIsSplitAcrossWorkers) {
  config_.bps_capacity = 1000;
  worker_count_ = 2;
  Build();  // this worker's share: 500 bytes per second
  const SocketAddress client = Addr("203.0.113.5:40000");
  const SocketAddress peer = Addr("198.51.99.61:7000");
  Allocated a = Allocate(client, ClientTransport::kTcp);
  ASSERT_EQ(BindChannel(a, 0x4001, peer, client, ClientTransport::kTcp), 0);
  // 600 bytes never fit in a 500-byte share, however long we wait.
  const std::vector<uint8_t> big(600, 1);
  EXPECT_TRUE(FromClient(ChannelData(0x4001, big), client, ClientTransport::kTcp).empty());
  EXPECT_TRUE(FromPeer(a.tag, peer, big).empty());
  Advance(5);
  EXPECT_TRUE(FromClient(ChannelData(0x4001, big), client, ClientTransport::kTcp).empty());
  EXPECT_TRUE(FromPeer(a.tag, peer, big).empty());
  EXPECT_EQ(engine_->counters().dropped(DropReason::kNodeBandwidth), 4u);
  // 400 bytes: one per second in each direction (400 of 500, then 100 left).
  const std::vector<uint8_t> mid(400, 2);
  for (int second = 0; second < 2; ++second) {
    SCOPED_TRACE(second);
    Advance(1);
    EXPECT_EQ(FromClient(ChannelData(0x4001, mid), client, ClientTransport::kTcp).size(), 1u);
    EXPECT_TRUE(FromClient(ChannelData(0x4001, mid), client, ClientTransport::kTcp).empty());
    EXPECT_EQ(FromPeer(a.tag, peer, mid).size(), 1u);
    EXPECT_TRUE(FromPeer(a.tag, peer, mid).empty());
    // The 100 bytes left still pass.
    const std::vector<uint8_t> small(100, 3);
    EXPECT_EQ(FromClient(ChannelData(0x4001, small), client, ClientTransport::kTcp).size(), 1u);
    EXPECT_EQ(FromPeer(a.tag, peer, small).size(), 1u);
    EXPECT_TRUE(FromPeer(a.tag, peer, std::vector<uint8_t>(1, 4)).empty());
  }
  EXPECT_EQ(engine_->counters().dropped(DropReason::kNodeBandwidth), 4u + 2 * 3);
  // Half a second refills half the share.
  now_ns_ += 500'000'000;
  engine_->SetNow(now_ns_);
  EXPECT_EQ(FromPeer(a.tag, peer, std::vector<uint8_t>(250, 5)).size(), 1u);
  EXPECT_TRUE(FromPeer(a.tag, peer, std::vector<uint8_t>(1, 5)).empty());
}

TEST_F(EngineTest, MaxAllocationsIsEnforcedAcrossWorkers) {
  config_.max_allocations = 2;
  Build();
  // A second worker on the same node: its own table (64 slots), the node's shared limits.
  EngineOptions options;
  options.worker_index = 1;
  options.max_allocations = 64;
  auto other = std::make_unique<Engine>(config_, options, node_.get(), &relays_);
  other->SetNow(now_ns_);
  auto on_other = [&](auto&& fn) {
    std::swap(engine_, other);
    fn();
    std::swap(engine_, other);
  };
  auto try_allocate = [&](const SocketAddress& client) {
    std::string user = Username();
    auto sent = FromClient(Request(Method::kAllocate, UdpTransport, user, Nonce(client),
                                   KeyFor(user)), client);
    EXPECT_EQ(sent.size(), 1u);
    auto msg = MessageView::Parse(sent.at(0).bytes, nullptr);
    return msg->message_class() == MessageClass::kSuccessResponse
               ? 0
               : msg->FindErrorCode().value_or(-1);
  };
  const SocketAddress c1 = Addr("203.0.113.5:1"), c2 = Addr("203.0.113.5:2"),
                      c3 = Addr("203.0.113.5:3"), c4 = Addr("203.0.113.5:4");
  Allocated a1 = Allocate(c1);
  Allocated a2;
  on_other([&] { a2 = Allocate(c2); });
  EXPECT_EQ(node_->total_allocations(), 2u);
  EXPECT_EQ(engine_->allocation_count(), 1u);
  EXPECT_EQ(other->allocation_count(), 1u);
  // The node is full: neither worker may allocate, though both have free slots.
  EXPECT_EQ(try_allocate(c3), 508);
  int code = 0;
  on_other([&] { code = try_allocate(c4); });
  EXPECT_EQ(code, 508);
  EXPECT_EQ(node_->total_allocations(), 2u);
  EXPECT_EQ(relays_.open.size(), 2u);  // no relay opened for the refused ones
  EXPECT_EQ(engine_->counters().allocate_results[size_t(AllocateResult::kNoPorts)], 1u);
  // One ends on the other worker: this worker may allocate again, once.
  on_other([&] {
    EXPECT_EQ(Call(a2, Method::kRefresh, [](MessageBuilder& b) { b.AddU32(attr::kLifetime, 0); },
                   c2).second, 0);
  });
  EXPECT_EQ(node_->total_allocations(), 1u);
  EXPECT_EQ(try_allocate(c3), 0);
  EXPECT_EQ(node_->total_allocations(), 2u);
  EXPECT_EQ(try_allocate(c4), 508);
  (void)a1;
  other.reset();  // before the fixture's NodeState goes
}

TEST_F(EngineTest, UnauthenticatedSizeBudgetAppliesToUdpOnly) {
  for (bool with_transport : {false, true}) {
    SCOPED_TRACE(with_transport ? "28-byte Allocate" : "20-byte Allocate");
    auto bare = with_transport
                    ? Request(Method::kAllocate, UdpTransport, "", "", {}, /*fingerprint=*/false)
                    : Request(Method::kAllocate, [](MessageBuilder&) {}, "", "", {}, false);
    ASSERT_EQ(bare.size(), with_transport ? 28u : 20u);

    // UDP: the short challenge, within twice the request on the wire.
    const SocketAddress udp_client = Addr("203.0.113.5:40000");
    auto sent = FromClient(bare, udp_client, ClientTransport::kUdp);
    ASSERT_EQ(sent.size(), 1u);
    auto msg = MessageView::Parse(sent[0].bytes, nullptr);
    ASSERT_TRUE(msg.has_value());
    EXPECT_EQ(msg->FindErrorCode(), 401);
    EXPECT_EQ(msg->FindString(attr::kRealm), kRealm);
    EXPECT_FALSE(msg->Has(attr::kPasswordAlgorithms));
    ASSERT_TRUE(msg->FindString(attr::kNonce).has_value());
    EXPECT_FALSE(msg->FindString(attr::kNonce)->starts_with("obMatJos2"));
    EXPECT_LE(sent[0].bytes.size() + 28, 2 * (bare.size() + 28));

    // TCP: no reflection over a handshaken stream, so the full challenge.
    const SocketAddress tcp_client = Addr("203.0.113.6:40000");
    sent = FromClient(bare, tcp_client, ClientTransport::kTcp);
    ASSERT_EQ(sent.size(), 1u);
    EXPECT_EQ(sent[0].socket, kStream);
    msg = MessageView::Parse(sent[0].bytes, nullptr);
    ASSERT_TRUE(msg.has_value());
    EXPECT_EQ(msg->FindErrorCode(), 401);
    EXPECT_EQ(msg->FindString(attr::kRealm), kRealm);
    EXPECT_TRUE(msg->Has(attr::kPasswordAlgorithms));
    auto nonce = msg->FindString(attr::kNonce);
    ASSERT_TRUE(nonce.has_value());
    EXPECT_TRUE(nonce->starts_with("obMatJos2"));
    EXPECT_GT(sent[0].bytes.size() + 28, 2 * (bare.size() + 28));  // over the UDP budget
    // ... and the full nonce authenticates an Allocate on that connection.
    std::string user = Username();
    sent = FromClient(Request(Method::kAllocate, UdpTransport, user, std::string(*nonce),
                              KeyFor(user)),
                      tcp_client, ClientTransport::kTcp);
    ASSERT_EQ(sent.size(), 1u);
    EXPECT_EQ(MessageView::Parse(sent[0].bytes, nullptr)->message_class(),
              MessageClass::kSuccessResponse);
    engine_->OnStreamClosed(TupleFor(tcp_client, ClientTransport::kTcp));
  }
  EXPECT_EQ(engine_->counters().dropped(DropReason::kAmplification), 0u);
}

TEST_F(EngineTest, ChallengeTooBigForUdpIsDroppedButAnsweredOverTcp) {
  config_.software_attribute = true;
  config_.realm = std::string(64, 'r');  // no short form fits twice a 20-byte request
  Build();
  auto bare = Request(Method::kAllocate, [](MessageBuilder&) {}, "", "", {}, false);
  ASSERT_EQ(bare.size(), 20u);
  EXPECT_TRUE(FromClient(bare, Addr("203.0.113.5:40000"), ClientTransport::kUdp).empty());
  EXPECT_EQ(engine_->counters().dropped(DropReason::kAmplification), 1u);
  for (ClientTransport t : {ClientTransport::kTcp, ClientTransport::kTls}) {
    auto sent = FromClient(bare, Addr("203.0.113.5:40000"), t);
    ASSERT_EQ(sent.size(), 1u) << ClientTransportName(t);
    auto msg = MessageView::Parse(sent[0].bytes, nullptr);
    ASSERT_TRUE(msg.has_value());
    EXPECT_EQ(msg->FindErrorCode(), 401);
    EXPECT_EQ(msg->FindString(attr::kRealm), config_.realm);
    EXPECT_TRUE(msg->Has(attr::kPasswordAlgorithms));
    EXPECT_TRUE(msg->Has(attr::kSoftware));
  }
  EXPECT_EQ(engine_->counters().dropped(DropReason::kAmplification), 1u);
}

TEST(NodeStateStreams, TotalAndPerIpCaps) {
  ServerConfig config;
  config.stream_max_connections = 3;
  config.stream_max_per_ip = 2;
  NodeState node(config);
  const IpAddress a = *IpAddress::Parse("203.0.113.1");
  const IpAddress b = *IpAddress::Parse("203.0.113.2");
  const IpAddress c = *IpAddress::Parse("2001:db8::3");
  const IpAddress d = *IpAddress::Parse("198.51.100.4");
  EXPECT_EQ(node.stream_count(), 0u);
  EXPECT_EQ(node.EnterStream(a), StreamVerdict::kOk);
  EXPECT_EQ(node.EnterStream(a), StreamVerdict::kOk);
  EXPECT_EQ(node.EnterStream(a), StreamVerdict::kPerIp);  // a has 2
  EXPECT_EQ(node.stream_count(), 2u);
  EXPECT_EQ(node.EnterStream(b), StreamVerdict::kOk);
  EXPECT_EQ(node.stream_count(), 3u);
  EXPECT_EQ(node.EnterStream(c), StreamVerdict::kTotal);  // node full
  EXPECT_EQ(node.EnterStream(b), StreamVerdict::kTotal);  // the node cap is checked first
  EXPECT_EQ(node.stream_count(), 3u);

  // Leaving frees a place on the node and for that address.
  node.LeaveStream(a);
  EXPECT_EQ(node.stream_count(), 2u);
  EXPECT_EQ(node.EnterStream(c), StreamVerdict::kOk);
  EXPECT_EQ(node.EnterStream(a), StreamVerdict::kTotal);
  node.LeaveStream(c);
  EXPECT_EQ(node.EnterStream(a), StreamVerdict::kOk);
  EXPECT_EQ(node.EnterStream(a), StreamVerdict::kTotal);
  EXPECT_EQ(node.stream_count(), 3u);

  // Addresses that hold no connection: harmless.
  node.LeaveStream(d);  // never seen
  node.LeaveStream(c);  // was refused, then left already
  EXPECT_EQ(node.stream_count(), 3u);
  node.LeaveStream(b);
  node.LeaveStream(b);  // one more than it had
  EXPECT_EQ(node.stream_count(), 2u);
  EXPECT_EQ(node.EnterStream(a), StreamVerdict::kPerIp);  // a still holds 2
  node.LeaveStream(a);
  node.LeaveStream(a);
  node.LeaveStream(a);
  EXPECT_EQ(node.stream_count(), 0u);  // no underflow
  EXPECT_EQ(node.EnterStream(a), StreamVerdict::kOk);
  EXPECT_EQ(node.EnterStream(a), StreamVerdict::kOk);
  EXPECT_EQ(node.EnterStream(a), StreamVerdict::kPerIp);
  EXPECT_EQ(node.EnterStream(d), StreamVerdict::kOk);
  EXPECT_EQ(node.EnterStream(d), StreamVerdict::kTotal);
}

TEST(NodeStateStreams, PerIpCountIsExact) {
  // Thousands of distinct sources, one connection each: none is refused for another's count
  // (no hashed buckets), and each second connection is.
  ServerConfig config;
  config.stream_max_connections = 100000;
  config.stream_max_per_ip = 1;
  NodeState node(config);
  std::vector<IpAddress> ips;
  for (uint32_t i = 0; i < 5000; ++i) {
    ips.push_back(*IpAddress::Parse("10." + std::to_string(i >> 16) + "." +
                                    std::to_string((i >> 8) & 0xFF) + "." +
                                    std::to_string(i & 0xFF)));
    ips.push_back(*IpAddress::Parse("2001:db8::" + std::to_string(i)));
  }
  size_t ok = 0;
  for (const IpAddress& ip : ips) {
    ok += node.EnterStream(ip) == StreamVerdict::kOk ? 1 : 0;
  }
  EXPECT_EQ(ok, ips.size());
  EXPECT_EQ(node.stream_count(), ips.size());
  size_t per_ip = 0;
  for (const IpAddress& ip : ips) {
    per_ip += node.EnterStream(ip) == StreamVerdict::kPerIp ? 1 : 0;
  }
  EXPECT_EQ(per_ip, ips.size());
  for (const IpAddress& ip : ips) {
    node.LeaveStream(ip);
  }
  EXPECT_EQ(node.stream_count(), 0u);
  EXPECT_EQ(node.EnterStream(ips[0]), StreamVerdict::kOk);
}

}  // namespace
}  // namespace turnpike::turn
