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

  std::vector<Sent> FromClient(std::span<const uint8_t> bytes,
                               const SocketAddress& client = Addr("203.0.113.5:40000")) {
    engine_->OnClientPacket(kListener, kServer, client, bytes, tx_);
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
  std::string Nonce(const SocketAddress& client = Addr("203.0.113.5:40000")) {
    auto sent = FromClient(Request(Method::kAllocate, UdpTransport, "", "", {}), client);
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
  Allocated Allocate(const SocketAddress& client = Addr("203.0.113.5:40000")) {
    Allocated a;
    a.username = Username();
    a.key = KeyFor(a.username);
    a.nonce = Nonce(client);
    auto sent =
        FromClient(Request(Method::kAllocate, UdpTransport, a.username, a.nonce, a.key), client);
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
                                             const SocketAddress& client = Addr("203.0.113.5:40000")) {
    auto sent = FromClient(Request(method, fill, a.username, a.nonce, a.key), client);
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

  static constexpr SocketId kListener = 7;
  const SocketAddress kServer = Addr("192.0.2.10:3478");
  ServerConfig config_ = DefaultConfig();
  RecordingRelays relays_;
  std::unique_ptr<NodeState> node_;
  std::unique_ptr<Engine> engine_;
  TxBatch tx_;
  uint64_t now_ns_ = 1'000'000'000'000ull;
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
  ASSERT_EQ(Call(a, Method::kChannelBind, [&](MessageBuilder& m) {
              m.AddU32(attr::kChannelNumber, 0x4003u << 16);
              m.AddXorAddress(attr::kXorPeerAddress, peer);
            }).second, 0);
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

}  // namespace
}  // namespace turnpike::turn
