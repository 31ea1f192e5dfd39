// libFuzzer target for the TURN engine (turn/engine.h) with authentication on: datagrams from
// two clients and from peers, and clock steps, against an Engine with an in-memory relay
// transport (as tests/turn/engine_test.cc does). Before the fuzzer's input the harness fetches
// a nonce for each client and makes one valid authenticated Allocate for client 0 with TURN
// REST credentials, so the input reaches post-authentication paths (Refresh, CreatePermission,
// ChannelBind, Send, ChannelData, peer data) as well as the pre-authentication ones.
//
// Input: a sequence of records  [op (1 byte)] [length (2 bytes, big endian)] [body]
//   op & 3 == 0  raw datagram from client (op & 4 ? 1 : 0)
//   op & 3 == 1  the body parsed as STUN and re-signed by the harness for client (op & 4):
//                USERNAME, REALM, NONCE and MESSAGE-INTEGRITY replaced with valid ones (and
//                FINGERPRINT if op & 8), so the fuzzer needs no HMACs; sent raw if unparsable
//   op & 3 == 2  datagram from a peer to relay tag (op >> 2) & 7: body = port (2 bytes) then
//                family (1 byte: even IPv4 + 4 bytes, odd IPv6 + 16 bytes) then payload
//   op & 3 == 3  clock step of (op >> 2) * 7 seconds, then Tick()
// Client 0 speaks UDP, client 1 TCP (messages as the stream framer yields them), so both
// transports' paths are reached. Every datagram the engine emits toward a client must parse as
// STUN or ChannelData, and ChannelData toward the TCP client must carry its padding (RFC 8656
// 12.5); closing the TCP client's connection must end its allocation; the relay sockets must
// all be closed after CloseAll(). Any violation aborts.
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "spdlog/spdlog.h"
#include "turn/auth.h"
#include "turn/engine.h"
#include "turn/stun/message.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using turnpike::IpAddress;
using turnpike::SocketAddress;
using turnpike::ServerConfig;
using namespace turnpike::turn;  // NOLINT: harness-local brevity
namespace stun = turnpike::stun;
namespace attr = turnpike::stun::attr;

constexpr char kSecret[] = "fuzz-secret";
constexpr char kRealm[] = "fuzz.example";
constexpr SocketId kListener = 7;
constexpr uint32_t kMaxAllocations = 8;

class MemoryRelays : public RelayTransport {
 public:
  absl::StatusOr<SocketId> OpenRelay(const SocketAddress& address, uint32_t tag) override {
    SocketId id = next_id_++;
    open_[id] = tag;
    (void)address;
    return id;
  }
  void CloseRelay(SocketId socket) override {
    FUZZ_CHECK(open_.erase(socket) == 1);  // closing what was never opened is a bug
  }
  absl::Status SetDontFragment(SocketId socket) override {
    FUZZ_CHECK(open_.contains(socket));
    return absl::OkStatus();
  }
  size_t open_count() const { return open_.size(); }

 private:
  std::map<SocketId, uint32_t> open_;
  SocketId next_id_ = 1000;
};

const ServerConfig& Config() {
  static const ServerConfig* config = [] {
    auto* c = new ServerConfig;
    c->listening_ips = {*IpAddress::Parse("192.0.2.10")};
    c->relay_ips = {*IpAddress::Parse("192.0.2.10")};
    c->min_port = 50000;
    c->max_port = 50031;
    c->realm = kRealm;
    c->use_auth_secret = true;
    c->static_auth_secrets = {kSecret};
    c->user_quota = 4;
    c->max_allocations = kMaxAllocations;
    // The seeds are captures of turnutils_uclient talking to an echo peer on 127.0.0.1; the
    // rest of the default deny list still applies.
    c->allow_loopback_peers = true;
    return c;
  }();
  return *config;
}

struct Client {
  SocketAddress address;
  std::string nonce;
};

struct Harness {
  Harness()
      : node(Config()),
        engine(Config(), EngineOptions{0, kMaxAllocations}, &node, &relays) {
    engine.SetNow(now_ns);
    clients[0].address = *SocketAddress::Parse("203.0.113.5:40000");
    clients[1].address = *SocketAddress::Parse("[2001:db8::5]:40001");
    username = std::to_string(static_cast<int64_t>(::time(nullptr)) + 86400) + ":fuzz";
    key = stun::LongTermKeyMd5(username, kRealm, Authenticator::RestPassword(kSecret, username));
  }

  // Sends `bytes` from client `c`, checks and drains what comes back, and keeps the newest
  // nonce the server handed that client.
  void FromClient(int c, std::span<const uint8_t> bytes) {
    engine.OnClientPacket(kListener, server, clients[c].address, bytes, tx,
                          c == 1 ? ClientTransport::kTcp : ClientTransport::kUdp);
    Drain();
  }

  void Drain() {
    static uint8_t out[TxDesc::kHeadCapacity + 70000];
    for (size_t i = 0; i < tx.size(); ++i) {
      const TxDesc& d = tx[i];
      FUZZ_CHECK(d.head_len <= TxDesc::kHeadCapacity);
      FUZZ_CHECK(d.tail_pad < 4);
      FUZZ_CHECK(d.size() <= sizeof(out));
      std::memcpy(out, d.head, d.head_len);
      if (d.body_len > 0) {
        std::memcpy(out + d.head_len, d.body, d.body_len);
      }
      std::memset(out + d.head_len + d.body_len, 0, d.tail_pad);
      std::span<const uint8_t> bytes(out, d.size());
      if (d.socket != kListener) {
        continue;  // relayed to a peer: the payload is the client's, anything goes
      }
      int c = d.dst == clients[0].address ? 0 : d.dst == clients[1].address ? 1 : -1;
      FUZZ_CHECK(c >= 0);  // the listener only ever answers the clients that wrote to it
      if (stun::LooksLikeChannelData(bytes)) {
        FUZZ_CHECK(stun::ParseChannelData(bytes).has_value());
        FUZZ_CHECK(c == 0 || bytes.size() % 4 == 0);  // streams: padded
        continue;
      }
      stun::ParseError err;
      auto msg = stun::MessageView::Parse(bytes, &err);
      FUZZ_CHECK(msg.has_value());  // the engine never writes a malformed message
      FUZZ_CHECK(msg->message_class() != stun::MessageClass::kRequest);
      if (auto nonce = msg->FindString(attr::kNonce)) {
        clients[c].nonce.assign(nonce->data(), nonce->size());
      }
    }
    tx.Clear();
  }

  // Rebuilds a STUN message with valid credentials for client `c`.
  bool Sign(int c, std::span<const uint8_t> body, bool fingerprint, std::vector<uint8_t>* out) {
    auto msg = stun::MessageView::Parse(body, nullptr);
    if (!msg) {
      return false;
    }
    out->resize(body.size() + 256);
    const uint16_t type = msg->message_type();
    stun::MessageBuilder b(*out, stun::DecodeMethod(type), stun::DecodeClass(type),
                           msg->transaction_id());
    for (const auto& a : msg->attributes()) {
      switch (a.type) {
        case attr::kUsername:
        case attr::kRealm:
        case attr::kNonce:
        case attr::kMessageIntegrity:
        case attr::kMessageIntegritySha256:
        case attr::kFingerprint:
        case attr::kUserhash:
          break;
        default:
          b.AddAttribute(a.type, msg->Value(a));
      }
    }
    b.AddString(attr::kUsername, username);
    b.AddString(attr::kRealm, kRealm);
    b.AddString(attr::kNonce, clients[c].nonce);
    b.AddMessageIntegrity(key);
    if (fingerprint) {
      b.AddFingerprint();
    }
    if (!b.ok()) {
      return false;
    }
    out->resize(b.size());
    return true;
  }

  // An Allocate request, unauthenticated (for the 401 and its nonce) or signed.
  std::vector<uint8_t> Allocate(int c, bool signed_request) {
    std::vector<uint8_t> buf(512);
    const uint8_t tid[12] = {'f', 'u', 'z', 'z', 'a', 'l', 'l', 'o', 'c', 0, 0,
                             static_cast<uint8_t>(signed_request)};
    stun::MessageBuilder b(buf, stun::Method::kAllocate, stun::MessageClass::kRequest, tid);
    b.AddU32(attr::kRequestedTransport, 17u << 24);
    buf.resize(b.size());
    if (!signed_request) {
      return buf;
    }
    std::vector<uint8_t> out;
    FUZZ_CHECK(Sign(c, buf, true, &out));
    return out;
  }

  void Start() {
    FromClient(0, Allocate(0, false));
    FromClient(1, Allocate(1, false));
    FUZZ_CHECK(!clients[0].nonce.empty() && !clients[1].nonce.empty());
    FromClient(0, Allocate(0, true));
    FUZZ_CHECK(engine.allocation_count() == 1);  // the harness's credentials work
  }

  void Step(uint64_t seconds) {
    now_ns += seconds * 1'000'000'000ull;
    engine.SetNow(now_ns);
    engine.Tick();
    Drain();
  }

  void FromPeer(uint32_t tag, std::span<const uint8_t> body) {
    if (body.size() < 3) {
      return;
    }
    SocketAddress peer;
    peer.port = static_cast<uint16_t>((body[0] << 8) | body[1]);
    const bool v6 = (body[2] & 1) != 0;
    const size_t ip_len = v6 ? 16 : 4;
    body = body.subspan(3);
    if (body.size() < ip_len) {
      return;
    }
    peer.ip.family = v6 ? turnpike::AddressFamily::kIPv6 : turnpike::AddressFamily::kIPv4;
    std::memcpy(peer.ip.bytes.data(), body.data(), ip_len);
    engine.OnPeerPacket(tag, peer, body.subspan(ip_len), tx);
    Drain();
  }

  MemoryRelays relays;
  NodeState node;
  Engine engine;
  TxBatch tx;
  uint64_t now_ns = 1'000'000'000'000ull;
  const SocketAddress server = *SocketAddress::Parse("192.0.2.10:3478");
  Client clients[2];
  std::string username;
  std::array<uint8_t, 16> key{};
};

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto h = std::make_unique<Harness>();
  h->Start();
  std::vector<uint8_t> signed_buf;
  size_t pos = 0;
  int records = 0;
  while (size - pos >= 3 && records++ < 256) {
    const uint8_t op = data[pos];
    size_t len = (size_t{data[pos + 1]} << 8) | data[pos + 2];
    pos += 3;
    len = std::min(len, size - pos);
    std::span<const uint8_t> body(data + pos, len);
    pos += len;
    const int c = (op >> 2) & 1;
    switch (op & 3) {
      case 0:
        h->FromClient(c, body);
        break;
      case 1:
        if (h->Sign(c, body, (op & 8) != 0, &signed_buf)) {
          h->FromClient(c, signed_buf);
        } else {
          h->FromClient(c, body);
        }
        break;
      case 2:
        h->FromPeer((op >> 2) & 7, body);
        break;
      case 3:
        h->Step(static_cast<uint64_t>(op >> 2) * 7);
        break;
    }
  }
  std::vector<AllocationInfo> infos;
  h->engine.ListAllocations(&infos);
  FUZZ_CHECK(infos.size() == h->engine.allocation_count());
  FUZZ_CHECK(infos.size() <= kMaxAllocations);
  if (!infos.empty() && (size & 1) != 0) {
    FUZZ_CHECK(h->engine.KillAllocation(infos[0].id));
    FUZZ_CHECK(!h->engine.KillAllocation(infos[0].id));
  }
  const turnpike::FiveTuple stream_client{h->clients[1].address, h->server, IPPROTO_TCP};
  h->engine.OnStreamClosed(stream_client);
  FUZZ_CHECK(!h->engine.HasAllocation(stream_client));
  h->engine.CloseAll();
  FUZZ_CHECK(h->engine.allocation_count() == 0);
  FUZZ_CHECK(h->relays.open_count() == 0);  // every relay socket opened was closed
  return 0;
}
