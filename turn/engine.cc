#include "turn/engine.h"

#include <algorithm>
#include <ctime>

#include "absl/container/inlined_vector.h"
#include "spdlog/spdlog.h"
#include "turn/stream_framer.h"
#include "turnpike_version.h"

namespace turnpike::turn {
namespace {

using stun::MessageBuilder;
using stun::MessageClass;
using stun::MessageView;
using stun::Method;
namespace attr = stun::attr;

constexpr uint8_t kProtocolUdp = 17;  // REQUESTED-TRANSPORT (RFC 8656 14.7)
constexpr uint16_t kMethodConnect = 0x00A;         // RFC 6062 4.3
constexpr uint16_t kMethodConnectionBind = 0x00B;  // RFC 6062 4.4
constexpr size_t kMaxPermissions = 256;  // per allocation; beyond that 508
constexpr size_t kMaxChannels = 256;
// Room for every attribute a parsed message can hold, so no XOR-PEER-ADDRESS is ever cut off.
constexpr size_t kMaxPeersPerRequest = stun::kMaxAttributes;
constexpr int kOpenAttempts = 16;  // ports tried when another process holds one
constexpr char kSoftware[] = "Turnpike/" TURNPIKE_VERSION;

// Reason phrases for authenticated errors only: unauthenticated ones go without, to keep
// responses small (reflection).
std::string_view ReasonPhrase(int code) {
  switch (code) {
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 420: return "Unknown Attribute";
    case 437: return "Allocation Mismatch";
    case 438: return "Stale Nonce";
    case 440: return "Address Family not Supported";
    case 441: return "Wrong Credentials";
    case 442: return "Unsupported Transport Protocol";
    case 443: return "Peer Address Family Mismatch";
    case 486: return "Allocation Quota Reached";
    case 508: return "Insufficient Capacity";
    default: return "";
  }
}

// How each failed authentication is counted and answered (RFC 8489 9.2.4).
struct AuthOutcome {
  AuthFailure failure;
  int code;
};
AuthOutcome OutcomeOf(AuthResult::Status status) {
  using S = AuthResult::Status;
  switch (status) {
    case S::kBadIntegrity: return {AuthFailure::kBadIntegrity, 401};
    case S::kUnknownUser: return {AuthFailure::kUnknownUser, 401};
    case S::kExpired: return {AuthFailure::kExpiredUsername, 401};
    case S::kStaleNonce: return {AuthFailure::kStaleNonce, 438};
    case S::kBadRequest: return {AuthFailure::kBadRequest, 400};
    case S::kChallenge:
    case S::kOk:
      break;
  }
  return {AuthFailure::kMissingCredentials, 401};
}

AllocateResult ResultFor(int code) {
  switch (code) {
    case 400: case 420: return AllocateResult::kBadRequest;
    case 401: case 438: return AllocateResult::kAuthRequired;
    case 403: return AllocateResult::kForbidden;
    case 437: return AllocateResult::kMismatch;
    case 442: return AllocateResult::kUnsupportedTransport;
    case 486: return AllocateResult::kQuota;
    case 508: return AllocateResult::kNoPorts;
    default: return AllocateResult::kOther;
  }
}

}  // namespace

std::string_view AllocationEndName(AllocationEnd e) {
  switch (e) {
    case AllocationEnd::kRefreshZero: return "refresh";
    case AllocationEnd::kExpired: return "expired";
    case AllocationEnd::kKilled: return "killed";
    case AllocationEnd::kShutdown: return "shutdown";
    case AllocationEnd::kClientClosed: return "closed";
  }
  return "unknown";
}

std::string_view ClientTransportName(ClientTransport t) {
  switch (t) {
    case ClientTransport::kUdp: return "udp";
    case ClientTransport::kTcp: return "tcp";
    case ClientTransport::kTls: return "tls";
  }
  return "unknown";
}

struct Engine::Allocation {
  struct Permission {
    IpAddress ip;
    uint64_t expires_s;
  };
  struct Channel {
    uint16_t number;
    SocketAddress peer;
    uint64_t expires_s;
  };
  // Read for every relayed packet: kept together at the front, where PrefetchSlot loads them.
  bool in_use = false;
  ClientTransport transport = ClientTransport::kUdp;
  uint32_t generation = 0;  // bumped each time the slot is taken
  uint64_t expires_s = 0;
  SocketId listener = kInvalidSocket;
  SocketId relay_socket = kInvalidSocket;
  // Dual allocation (ADDITIONAL-ADDRESS-FAMILY, RFC 8656 7.2): an IPv6 relay next to the IPv4
  // one, or the error that kept it from being made (ADDRESS-ERROR-CODE), 0 when not asked.
  SocketId relay6_socket = kInvalidSocket;
  FiveTuple tuple;
  SocketAddress relay;  // the bound relay address (the requested family)
  SocketAddress relay6;
  TokenBucket to_peer_bucket;
  TokenBucket to_client_bucket;
  // Per-allocation statistics for the control API.
  uint64_t to_peer_packets = 0;
  uint64_t to_peer_bytes = 0;
  uint64_t to_client_packets = 0;
  uint64_t to_client_bytes = 0;
  absl::InlinedVector<Permission, 4> permissions;
  absl::InlinedVector<Channel, 4> channels;
  // Allocation path only (PrefetchSlot stops here).
  int relay6_error = 0;
  std::string username;
  stun::TransactionId allocate_tid{};  // to answer a retransmitted Allocate (RFC 8656 7.2)
  uint32_t lifetime = 0;
  uint64_t reservation_token = 0;

  bool dual() const { return relay6_socket != kInvalidSocket; }
  bool Serves(AddressFamily family) const {
    return relay.family() == family || (dual() && relay6.family() == family);
  }
  SocketId SocketFor(AddressFamily family) const {
    return dual() && relay6.family() == family ? relay6_socket : relay_socket;
  }

  const Permission* FindPermission(const IpAddress& ip, uint64_t now_s) const {
    for (const Permission& p : permissions) {
      if (p.ip == ip) {
        return p.expires_s > now_s ? &p : nullptr;
      }
    }
    return nullptr;
  }
  const Channel* FindChannel(uint16_t number, uint64_t now_s) const {
    for (const Channel& c : channels) {
      if (c.number == number) {
        return c.expires_s > now_s ? &c : nullptr;
      }
    }
    return nullptr;
  }
  const Channel* FindChannelByPeer(const SocketAddress& peer, uint64_t now_s) const {
    for (const Channel& c : channels) {
      if (c.peer == peer) {
        return c.expires_s > now_s ? &c : nullptr;
      }
    }
    return nullptr;
  }
  void AddPermission(const IpAddress& ip, uint64_t expires_s) {
    for (Permission& p : permissions) {
      if (p.ip == ip) {
        p.expires_s = expires_s;
        return;
      }
    }
    permissions.push_back({ip, expires_s});
  }
};

struct Engine::Request {
  const MessageView& msg;
  SocketId listener;
  const FiveTuple& tuple;
  TxBatch& tx;
  AuthResult auth;
  ClientTransport transport;
};

Engine::Engine(const ServerConfig& config, const EngineOptions& options, NodeState* node,
               RelayTransport* relays)
    : config_(&config),
      options_(options.worker_count == 0 ? EngineOptions{options.worker_index,
                                                         options.max_allocations, 1}
                                         : options),
      node_(node),
      relays_(relays),
      auth_(config, node->nonce_secret()),
      peer_policy_(config),
      source_buckets_(kSourceBuckets),
      slots_(options.max_allocations),
      by_tuple_(options.max_allocations) {
  free_slots_.reserve(options.max_allocations);
  for (uint32_t i = options.max_allocations; i-- > 0;) {
    free_slots_.push_back(i);
  }
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  SetNow(static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000 + static_cast<uint64_t>(ts.tv_nsec));
  // Data indications need a transaction ID; any value works (RFC 8656 11.3), so a per-worker
  // prefix and a counter avoid a random draw per packet.
  indication_tid_[0] = static_cast<uint8_t>(options.worker_index);
  SetNodeShare();
}

void Engine::SetNodeShare() {
  node_share_bps_ = config_->bps_capacity == 0
                        ? 0
                        : std::max<uint64_t>(1, config_->bps_capacity / options_.worker_count);
}

Engine::~Engine() {
  events_ = nullptr;  // the sink's owner may be mid-destruction; shutdown events come from Stop
  CloseAll();
}

// ---------------------------------------------------------------------------------------------
// Receive paths

void Engine::OnClientPacket(SocketId listener, const SocketAddress& server,
                            const SocketAddress& client, std::span<const uint8_t> data,
                            TxBatch& tx, ClientTransport transport) {
  const FiveTuple tuple{client, server,
                        transport == ClientTransport::kUdp ? uint8_t{IPPROTO_UDP}
                                                           : uint8_t{IPPROTO_TCP}};
  HandleClientPacket(listener, tuple, FiveTupleHash{}(tuple), data, tx, transport);
}

void Engine::OnClientPacket(SocketId listener, const SocketAddress& server,
                            const SocketAddress& client, std::span<const uint8_t> data,
                            TxBatch& tx, TupleHash hash) {
  HandleClientPacket(listener, FiveTuple{client, server, uint8_t{IPPROTO_UDP}}, hash.value, data,
                     tx, ClientTransport::kUdp);
}

void Engine::HandleClientPacket(SocketId listener, const FiveTuple& tuple, uint64_t hash,
                                std::span<const uint8_t> data, TxBatch& tx,
                                ClientTransport transport) {
  ++counters_.rx_client_packets;
  if (stun::LooksLikeChannelData(data)) {
    HandleChannelData(data, tuple, hash, tx);
    return;
  }
  if (!stun::LooksLikeStun(data)) {
    counters_.Drop(DropReason::kMalformed);
    return;
  }
  stun::ParseError error = stun::ParseError::kNone;
  auto msg = MessageView::Parse(data, &error);
  if (!msg) {
    counters_.Drop(error == stun::ParseError::kBadFingerprint ? DropReason::kBadFingerprint
                                                              : DropReason::kMalformed);
    return;
  }
  switch (msg->message_class()) {
    case MessageClass::kRequest:
      HandleStun(*msg, listener, tuple, transport, tx);
      return;
    case MessageClass::kIndication:
      if (msg->method() == Method::kSend) {
        HandleSendIndication(*msg, Lookup(tuple), tx);
      } else if (msg->method() != Method::kBinding) {  // Binding indications are keepalives
        counters_.Drop(DropReason::kUnexpectedClass);
      }
      return;
    default:
      counters_.Drop(DropReason::kUnexpectedClass);
      return;
  }
}

Engine::TupleHash Engine::PrefetchClient(const SocketAddress& server,
                                         const SocketAddress& client) const {
  const uint64_t hash = FiveTupleHash{}(FiveTuple{client, server, uint8_t{IPPROTO_UDP}});
  by_tuple_.Prefetch(hash);
  return TupleHash{hash};
}

void Engine::PrefetchPeer(uint32_t tag) const {
  if ((tag >> 1) < slots_.size()) PrefetchSlot(tag >> 1);
}

void Engine::PrefetchSlot(uint32_t slot) const {
  // The per-packet fields: from the start of the struct to relay6_error.
  const Allocation& a = slots_[slot];
  const char* p = reinterpret_cast<const char*>(&a);
  const char* end = reinterpret_cast<const char*>(&a.relay6_error);
  for (; p < end; p += 64) __builtin_prefetch(p);
}

void Engine::OnPeerPacket(uint32_t tag, const SocketAddress& peer, std::span<const uint8_t> data,
                          TxBatch& tx) {
  ++counters_.rx_peer_packets;
  const uint32_t slot = tag >> 1;  // relay tags are slot * 2 + (0: first relay, 1: IPv6 one)
  if (slot >= slots_.size() || !slots_[slot].in_use) {
    counters_.Drop(DropReason::kNoAllocation);
    return;
  }
  Allocation& alloc = slots_[slot];
  if (alloc.expires_s <= now_s_) {  // expired, not swept yet
    counters_.Drop(DropReason::kNoAllocation);
    return;
  }
  // RFC 8656 11.5: only peers with a permission reach the client.
  if (alloc.FindPermission(peer.ip, now_s_) == nullptr) {
    counters_.Drop(DropReason::kNoPermission);
    return;
  }
  if (!ChargeBandwidth(alloc.to_client_bucket, data.size())) {
    counters_.Drop(DropReason::kBandwidth);
    return;
  }
  if (!ChargeNode(node_to_client_, data.size())) {
    Refund(&alloc.to_client_bucket, nullptr, data.size());  // not sent
    counters_.Drop(DropReason::kNodeBandwidth);
    return;
  }
  TxDesc* d = tx.Next();
  if (d == nullptr) {
    Refund(&alloc.to_client_bucket, &node_to_client_, data.size());
    counters_.Drop(DropReason::kTxFull);
    return;
  }
  d->socket = alloc.listener;
  d->dst = alloc.tuple.client;
  d->body = data.data();
  d->body_len = static_cast<uint32_t>(data.size());
  if (const Allocation::Channel* ch = alloc.FindChannelByPeer(peer, now_s_)) {
    // ChannelData; over UDP the padding is optional and we leave it out, over TCP and TLS it
    // is required (RFC 8656 12.5).
    stun::WriteChannelDataHeader(d->head, ch->number, static_cast<uint16_t>(data.size()));
    d->head_len = stun::kChannelDataHeaderSize;
    d->tail_pad = alloc.transport == ClientTransport::kUdp
                      ? 0
                      : static_cast<uint8_t>(StreamChannelDataPadding(data.size()));
  } else {
    // Data indication: header and XOR-PEER-ADDRESS built here, DATA's value is the packet.
    if (data.size() > 0xFFFF - 64) {
      tx.Cancel();
      Refund(&alloc.to_client_bucket, &node_to_client_, data.size());
      counters_.Drop(DropReason::kTooBig);
      return;
    }
    for (int i = 11; i >= 4; --i) {  // bump the counter part of the transaction ID
      if (++indication_tid_[i] != 0) {
        break;
      }
    }
    MessageBuilder b({d->head, TxDesc::kHeadCapacity}, Method::kData, MessageClass::kIndication,
                     indication_tid_.data());
    b.AddXorAddress(attr::kXorPeerAddress, peer);
    size_t at = b.size();
    uint8_t* h = d->head + at;
    h[0] = static_cast<uint8_t>(attr::kData >> 8);
    h[1] = static_cast<uint8_t>(attr::kData);
    h[2] = static_cast<uint8_t>(data.size() >> 8);
    h[3] = static_cast<uint8_t>(data.size());
    d->head_len = static_cast<uint16_t>(at + 4);
    d->tail_pad = static_cast<uint8_t>((4 - data.size() % 4) % 4);
    size_t body_len = d->head_len - stun::kHeaderSize + data.size() + d->tail_pad;
    d->head[2] = static_cast<uint8_t>(body_len >> 8);
    d->head[3] = static_cast<uint8_t>(body_len);
  }
  ++counters_.to_client_packets;
  counters_.to_client_bytes += data.size();
  ++alloc.to_client_packets;
  alloc.to_client_bytes += data.size();
}

void Engine::HandleChannelData(std::span<const uint8_t> data, const FiveTuple& tuple,
                               uint64_t hash, TxBatch& tx) {
  auto cd = stun::ParseChannelData(data);
  if (!cd) {
    counters_.Drop(DropReason::kMalformed);
    return;
  }
  Allocation* alloc = Lookup(tuple, hash);
  if (alloc == nullptr) {
    counters_.Drop(DropReason::kNoAllocation);
    return;
  }
  const Allocation::Channel* ch = alloc->FindChannel(cd->channel, now_s_);
  if (ch == nullptr) {
    counters_.Drop(DropReason::kUnknownChannel);
    return;
  }
  // A channel lives 600 s, its permission 300 s; the client must refresh both (RFC 8656 12),
  // and traffic to a peer whose permission lapsed is dropped, as for Send indications.
  if (alloc->FindPermission(ch->peer.ip, now_s_) == nullptr) {
    counters_.Drop(DropReason::kNoPermission);
    return;
  }
  RelayToPeer(*alloc, ch->peer, cd->payload, tx);
}

void Engine::RelayToPeer(Allocation& alloc, const SocketAddress& peer,
                         std::span<const uint8_t> payload, TxBatch& tx) {
  if (!ChargeBandwidth(alloc.to_peer_bucket, payload.size())) {
    counters_.Drop(DropReason::kBandwidth);
    return;
  }
  if (!ChargeNode(node_to_peer_, payload.size())) {
    Refund(&alloc.to_peer_bucket, nullptr, payload.size());  // not sent
    counters_.Drop(DropReason::kNodeBandwidth);
    return;
  }
  TxDesc* d = tx.Next();
  if (d == nullptr) {
    Refund(&alloc.to_peer_bucket, &node_to_peer_, payload.size());
    counters_.Drop(DropReason::kTxFull);
    return;
  }
  d->socket = alloc.SocketFor(peer.family());
  d->dst = peer;
  d->head_len = 0;
  d->tail_pad = 0;
  d->body = payload.data();
  d->body_len = static_cast<uint32_t>(payload.size());
  ++counters_.to_peer_packets;
  counters_.to_peer_bytes += payload.size();
  ++alloc.to_peer_packets;
  alloc.to_peer_bytes += payload.size();
}

void Engine::HandleSendIndication(const MessageView& msg, Allocation* alloc, TxBatch& tx) {
  if (alloc == nullptr) {
    counters_.Drop(DropReason::kNoAllocation);
    return;
  }
  auto peer = msg.FindXorAddress(attr::kXorPeerAddress);
  auto data = msg.FindValue(attr::kData);
  if (!peer || !data) {
    counters_.Drop(DropReason::kMalformed);
    return;
  }
  // RFC 8656 11.2: silently discard without a permission. Permissions are only installed for
  // peers the policy allows, so no second policy check is needed here.
  if (alloc->FindPermission(peer->ip, now_s_) == nullptr) {
    counters_.Drop(DropReason::kNoPermission);
    return;
  }
  RelayToPeer(*alloc, *peer, *data, tx);
}

bool Engine::ChargeBandwidth(TokenBucket& bucket, size_t bytes) {
  return config_->max_bps == 0 || Refill(bucket, config_->max_bps, now_ns_, bytes);
}

void Engine::Refund(TokenBucket* alloc_bucket, TokenBucket* node_bucket, size_t bytes) {
  if (alloc_bucket != nullptr && config_->max_bps != 0) alloc_bucket->tokens += bytes;
  if (node_bucket != nullptr && node_share_bps_ != 0) node_bucket->tokens += bytes;
}

bool Engine::ChargeNode(TokenBucket& bucket, size_t bytes) {
  return node_share_bps_ == 0 || Refill(bucket, node_share_bps_, now_ns_, bytes);
}

// A token bucket refilled at `rate` bytes per second, holding at most one second's worth.
bool Engine::Refill(TokenBucket& bucket, uint64_t rate, uint64_t now_ns, size_t bytes) {
  const uint64_t elapsed = now_ns - bucket.last_ns;
  bucket.last_ns = now_ns;
  // Per packet the gap is short and the product fits 64 bits, where dividing by a constant is a
  // multiply; a 128-bit division is a library call.
  uint64_t product = 0;
  const __uint128_t add = __builtin_mul_overflow(elapsed, rate, &product)
                              ? static_cast<__uint128_t>(elapsed) * rate / 1'000'000'000
                              : product / 1'000'000'000;
  bucket.tokens = static_cast<uint64_t>(std::min<__uint128_t>(rate, bucket.tokens + add));
  if (bucket.tokens < bytes) {
    return false;
  }
  bucket.tokens -= bytes;
  return true;
}

// ---------------------------------------------------------------------------------------------
// Requests

void Engine::HandleStun(const MessageView& msg, SocketId listener, const FiveTuple& tuple,
                        ClientTransport transport, TxBatch& tx) {
  ++counters_.stun_requests;
  Request req{msg, listener, tuple, tx, {}, transport};
  if (msg.method() == Method::kBinding) {
    HandleBinding(req);
    return;
  }
  const bool turn_method =
      msg.method() == Method::kAllocate || msg.method() == Method::kRefresh ||
      msg.method() == Method::kCreatePermission || msg.method() == Method::kChannelBind;
  if (!turn_method) {
    // RFC 6062 TCP relaying (Connect, ConnectionBind) is a policy refusal: 403, as coturn
    // answers with no-tcp-relay. Unknown methods are malformed: 400 (RFC 8489 6.3.1).
    const uint16_t method = static_cast<uint16_t>(msg.method());
    SendError(req, method == kMethodConnect || method == kMethodConnectionBind ? 403 : 400);
    return;
  }

  req.auth = auth_.Check(msg, tuple.client, now_s_, static_cast<uint64_t>(::time(nullptr)));
  if (req.auth.status != AuthResult::Status::kOk) {
    const AuthOutcome outcome = OutcomeOf(req.auth.status);
    counters_.AuthFail(outcome.failure);
    if (outcome.code == 400) {
      SendError(req, 400);  // no REALM/NONCE: the request was malformed, not unauthenticated
    } else {
      SendChallenge(req, outcome.code);
    }
    return;
  }

  // RFC 8489 6.3.1: unknown comprehension-required attributes -> 420, after authentication.
  uint16_t unknown[16];
  size_t n_unknown = msg.UnknownComprehensionRequired(unknown);
  if (n_unknown > 0) {
    SendError(req, 420, {unknown, n_unknown});
    return;
  }

  Allocation* alloc = Lookup(tuple);
  if (msg.method() == Method::kAllocate) {
    HandleAllocate(req, alloc);
    return;
  }
  if (alloc == nullptr) {
    SendError(req, 437);
    return;
  }
  // RFC 8656 5: every request on an allocation uses the credentials that created it.
  if (!auth_.open() && alloc->username != req.auth.username) {
    SendError(req, 441);
    return;
  }
  switch (msg.method()) {
    case Method::kRefresh:
      HandleRefresh(req, alloc);
      return;
    case Method::kCreatePermission:
      HandleCreatePermission(req, alloc);
      return;
    case Method::kChannelBind:
      HandleChannelBind(req, alloc);
      return;
    default:
      SendError(req, 400);
      return;
  }
}

void Engine::HandleBinding(Request& req) {
  ++counters_.binding_requests;
  if (!AdmitUnauthenticated(req)) {
    return;
  }
  uint16_t unknown[16];
  size_t n_unknown = req.msg.UnknownComprehensionRequired(unknown);
  if (n_unknown > 0) {  // RFC 8489 6.3.1
    SendError(req, 420, {unknown, n_unknown});
    return;
  }
  MessageBuilder b;
  if (!StartResponse(req, MessageClass::kSuccessResponse, &b)) {
    return;
  }
  b.AddXorAddress(attr::kXorMappedAddress, req.tuple.client);
  FinishResponse(req, b);
}

void Engine::HandleAllocate(Request& req, Allocation* existing) {
  const MessageView& msg = req.msg;
  auto fail = [&](int code) {
    counters_.Allocate(ResultFor(code));
    SendError(req, code);
  };
  if (existing != nullptr) {
    // RFC 8656 7.2: a retransmission of the request that created the allocation gets the same
    // success again; anything else on this 5-tuple is a mismatch.
    if (std::memcmp(existing->allocate_tid.data(), msg.transaction_id(),
                    stun::kTransactionIdSize) == 0 &&
        existing->username == req.auth.username) {
      SendAllocateSuccess(req, *existing);
      return;
    }
    fail(437);
    return;
  }

  auto transport = msg.FindU32(attr::kRequestedTransport);
  if (!transport) {
    fail(400);
    return;
  }
  if ((*transport >> 24) != kProtocolUdp) {
    fail(442);
    return;
  }
  const bool has_even_port = msg.Has(attr::kEvenPort);
  auto token_value = msg.FindValue(attr::kReservationToken);
  const bool has_family = msg.Has(attr::kRequestedAddressFamily);
  if ((has_even_port && token_value) || (has_family && token_value) ||
      (token_value && token_value->size() != 8)) {
    fail(400);
    return;
  }

  AddressFamily family = AddressFamily::kIPv4;  // RFC 8656 7.2: IPv4 unless asked otherwise
  if (has_family) {
    auto value = msg.FindValue(attr::kRequestedAddressFamily);
    if (value->size() != 4) {
      fail(400);
      return;
    }
    if ((*value)[0] == 0x01) {
      family = AddressFamily::kIPv4;
    } else if ((*value)[0] == 0x02) {
      family = AddressFamily::kIPv6;
    } else {
      fail(440);
      return;
    }
  }
  bool additional_v6 = false;
  if (auto value = msg.FindValue(attr::kAdditionalAddressFamily)) {
    // RFC 8656 7.2: only IPv6 may be additional, and not together with an explicit family
    // or a reservation.
    if (value->size() != 4 || (*value)[0] != 0x02 || has_family || token_value) {
      fail(400);
      return;
    }
    additional_v6 = true;
  }
  std::optional<IpAddress> relay_ip = node_->RelayIp(family);
  if (!token_value && !relay_ip) {
    fail(440);
    return;
  }

  uint32_t lifetime = config_->default_allocate_lifetime;
  if (auto requested = msg.FindU32(attr::kLifetime)) {
    lifetime = std::max(std::min(*requested, config_->max_allocate_lifetime),
                        config_->default_allocate_lifetime);
  }

  if (free_slots_.empty()) {
    fail(508);
    return;
  }
  switch (node_->Admit(req.auth.username)) {
    case QuotaResult::kOk:
      break;
    case QuotaResult::kUserQuota:
    case QuotaResult::kTotalQuota:
      fail(486);
      return;
    case QuotaResult::kCapacity:
      fail(508);
      return;
    case QuotaResult::kDraining:
      fail(403);
      return;
  }

  // Pick the relay port and open the relay endpoint; a port that another process holds is
  // skipped (given back later would only fail again, so it stays taken while we run).
  SocketAddress relay;
  SocketId socket = kInvalidSocket;
  uint64_t reservation = 0;
  const uint32_t slot = free_slots_.back();
  const uint32_t tag = slot * 2;
  if (token_value) {
    uint64_t token = 0;
    for (uint8_t byte : *token_value) {
      token = token << 8 | byte;
    }
    auto reserved = node_->TakeReserved(token, now_s_);
    if (reserved) {
      relay = {reserved->first, reserved->second};
      auto opened = relays_->OpenRelay(relay, tag);
      if (opened.ok()) {
        socket = *opened;
      } else {
        node_->ReturnPort(relay.ip, relay.port);
      }
    }
  } else {
    bool reserve_next = false;
    if (has_even_port) {
      auto value = msg.FindValue(attr::kEvenPort);
      reserve_next = !value->empty() && ((*value)[0] & 0x80) != 0;
    }
    for (int attempt = 0; attempt < kOpenAttempts && socket == kInvalidSocket; ++attempt) {
      auto grant =
          node_->TakePort(*relay_ip, has_even_port, reserve_next, now_s_, options_.worker_index);
      if (!grant) {
        break;
      }
      relay = {*relay_ip, grant->port};
      auto opened = relays_->OpenRelay(relay, tag);
      if (opened.ok()) {
        socket = *opened;
        reservation = grant->token;
      } else if (grant->token != 0) {
        node_->TakeReserved(grant->token, now_s_);  // drop the reservation with its port
        node_->ReturnPort(relay.ip, static_cast<uint16_t>(relay.port + 1));
      }
    }
  }
  if (socket == kInvalidSocket) {
    node_->Leave(req.auth.username);
    fail(508);
    return;
  }
  // Undoes what was taken for an allocation refused from here on: the relay, its port, the
  // EVEN-PORT reservation of the next port, the quota.
  auto give_back = [&] {
    relays_->CloseRelay(socket);
    node_->ReturnPort(relay.ip, relay.port);
    if (reservation != 0) {
      node_->TakeReserved(reservation, now_s_);  // drop the reservation with its port
      node_->ReturnPort(relay.ip, static_cast<uint16_t>(relay.port + 1));
    }
    node_->Leave(req.auth.username);
  };
  if (msg.Has(attr::kDontFragment) && !relays_->SetDontFragment(socket).ok()) {
    give_back();
    counters_.Allocate(AllocateResult::kBadRequest);
    uint16_t unknown = attr::kDontFragment;
    SendError(req, 420, {&unknown, 1});
    return;
  }

  // There is a free slot, so the index has room, and the 5-tuple has no allocation (Lookup).
  // Refused only if the index had lost track of a freed slot: the allocation would then be
  // unreachable, so it is not made. (Nothing looks the tuple up before the slot is filled.)
  if (!by_tuple_.Insert(FiveTupleHash{}(req.tuple), slot)) {
    SPDLOG_ERROR("allocation index full although slot {} is free: allocation for {} refused",
                 slot, req.tuple.client.ToString());
    give_back();
    fail(508);
    return;
  }
  free_slots_.pop_back();
  Allocation& alloc = slots_[slot];
  const uint32_t generation = alloc.generation + 1;
  alloc = Allocation{};
  alloc.generation = generation;
  alloc.in_use = true;
  alloc.tuple = req.tuple;
  alloc.transport = req.transport;
  alloc.listener = req.listener;
  alloc.relay_socket = socket;
  alloc.relay = relay;
  alloc.lifetime = lifetime;
  alloc.expires_s = now_s_ + lifetime;
  alloc.username = std::string(req.auth.username);
  alloc.reservation_token = reservation;
  std::memcpy(alloc.allocate_tid.data(), msg.transaction_id(), stun::kTransactionIdSize);
  if (additional_v6) {
    OpenIpv6Relay(alloc, tag + 1, msg.Has(attr::kDontFragment));
  }
  counters_.Allocate(AllocateResult::kSuccess);
  if (events_ != nullptr) {
    FillInfo(alloc, &event_scratch_);
    events_->OnAllocationCreated(event_scratch_);
  }
  SPDLOG_DEBUG("allocation {} for {} user '{}' relay {} lifetime {}s", slot,
               req.tuple.client.ToString(), alloc.username, relay.ToString(), lifetime);
  SendAllocateSuccess(req, alloc);
}

void Engine::OpenIpv6Relay(Allocation& alloc, uint32_t tag, bool dont_fragment) {
  std::optional<IpAddress> ip = node_->RelayIp(AddressFamily::kIPv6);
  if (!ip) {
    alloc.relay6_error = 440;
    return;
  }
  for (int attempt = 0; attempt < kOpenAttempts; ++attempt) {
    auto grant = node_->TakePort(*ip, false, false, now_s_, options_.worker_index);
    if (!grant) {
      break;
    }
    SocketAddress relay{*ip, grant->port};
    auto opened = relays_->OpenRelay(relay, tag);
    if (opened.ok()) {
      if (dont_fragment && !relays_->SetDontFragment(*opened).ok()) {
        relays_->CloseRelay(*opened);
        node_->ReturnPort(relay.ip, relay.port);
        break;  // the IPv4 relay took DF, so this cannot happen with the same transport
      }
      alloc.relay6_socket = *opened;
      alloc.relay6 = relay;
      return;
    }
    node_->ReturnPort(relay.ip, relay.port);
  }
  alloc.relay6_error = 508;
}

void Engine::SendAllocateSuccess(Request& req, const Allocation& alloc) {
  MessageBuilder b;
  if (!StartResponse(req, MessageClass::kSuccessResponse, &b)) {
    return;
  }
  b.AddXorAddress(attr::kXorRelayedAddress, Advertised(alloc.relay));
  if (alloc.dual()) {
    b.AddXorAddress(attr::kXorRelayedAddress, Advertised(alloc.relay6));
  } else if (alloc.relay6_error != 0) {
    // ADDRESS-ERROR-CODE (RFC 8656 18.12): family, 13 reserved bits, class, number, reason.
    const std::string_view reason = ReasonPhrase(alloc.relay6_error);
    uint8_t value[4 + 32] = {0x02, 0, static_cast<uint8_t>(alloc.relay6_error / 100),
                             static_cast<uint8_t>(alloc.relay6_error % 100)};
    std::memcpy(value + 4, reason.data(), std::min(reason.size(), size_t{32}));
    b.AddAttribute(attr::kAddressErrorCode, {value, 4 + std::min(reason.size(), size_t{32})});
  }
  uint64_t left = alloc.expires_s > now_s_ ? alloc.expires_s - now_s_ : 0;
  b.AddU32(attr::kLifetime, static_cast<uint32_t>(left));
  if (alloc.reservation_token != 0) {
    uint8_t token[8];
    for (int i = 0; i < 8; ++i) {
      token[i] = static_cast<uint8_t>(alloc.reservation_token >> (56 - 8 * i));
    }
    b.AddAttribute(attr::kReservationToken, token);
  }
  b.AddXorAddress(attr::kXorMappedAddress, req.tuple.client);
  FinishResponse(req, b);
}

void Engine::HandleRefresh(Request& req, Allocation* alloc) {
  const MessageView& msg = req.msg;
  if (auto value = msg.FindValue(attr::kRequestedAddressFamily)) {
    uint8_t wanted = value->empty() ? 0 : (*value)[0];
    if (wanted != 1 && wanted != 2) {
      SendError(req, 400);
      return;
    }
    if (!alloc->Serves(static_cast<AddressFamily>(wanted))) {
      SendError(req, 443);
      return;
    }
  }
  uint32_t lifetime = config_->default_allocate_lifetime;
  if (auto requested = msg.FindU32(attr::kLifetime)) {
    // RFC 8656 7.3: min(requested, maximum), but never below the default.
    lifetime = *requested == 0 ? 0
                               : std::max(std::min(*requested, config_->max_allocate_lifetime),
                                          config_->default_allocate_lifetime);
  }
  if (lifetime == 0) {
    ++counters_.allocations_deleted;
    Release(alloc, AllocationEnd::kRefreshZero);
  } else {
    alloc->expires_s = now_s_ + lifetime;
    alloc->lifetime = lifetime;
  }
  MessageBuilder b;
  if (!StartResponse(req, MessageClass::kSuccessResponse, &b)) {
    return;
  }
  b.AddU32(attr::kLifetime, lifetime);
  FinishResponse(req, b);
}

void Engine::HandleCreatePermission(Request& req, Allocation* alloc) {
  SocketAddress peers[kMaxPeersPerRequest];
  size_t bad = 0;
  size_t n = req.msg.FindAllXorAddresses(attr::kXorPeerAddress, peers, &bad);
  if (n == 0 || bad > 0) {
    SendError(req, 400);
    return;
  }
  // All or nothing (RFC 8656 9.2): check every peer before installing any.
  for (size_t i = 0; i < n; ++i) {
    if (!alloc->Serves(peers[i].family())) {
      SendError(req, 443);
      return;
    }
    if (!peer_policy_.IsAllowed(peers[i].ip)) {
      SPDLOG_DEBUG("permission to {} refused for {}", peers[i].ip.ToString(),
                   req.tuple.client.ToString());
      SendError(req, 403);
      return;
    }
  }
  size_t new_count = alloc->permissions.size();
  for (size_t i = 0; i < n; ++i) {
    bool known = false;
    for (const auto& p : alloc->permissions) {
      known = known || p.ip == peers[i].ip;
    }
    new_count += known ? 0 : 1;
  }
  if (new_count > kMaxPermissions) {
    SendError(req, 508);
    return;
  }
  for (size_t i = 0; i < n; ++i) {
    alloc->AddPermission(peers[i].ip, now_s_ + config_->permission_lifetime);
    ++counters_.permissions_created;
  }
  MessageBuilder b;
  if (!StartResponse(req, MessageClass::kSuccessResponse, &b)) {
    return;
  }
  FinishResponse(req, b);
}

void Engine::HandleChannelBind(Request& req, Allocation* alloc) {
  auto number = req.msg.FindU32(attr::kChannelNumber);
  auto peer = req.msg.FindXorAddress(attr::kXorPeerAddress);
  if (!number || !peer) {
    SendError(req, 400);
    return;
  }
  uint16_t channel = static_cast<uint16_t>(*number >> 16);
  if (channel < stun::kMinChannel || channel > stun::kMaxChannel) {
    SendError(req, 400);
    return;
  }
  if (!alloc->Serves(peer->family())) {
    SendError(req, 443);
    return;
  }
  if (!peer_policy_.IsAllowed(peer->ip)) {
    SendError(req, 403);
    return;
  }
  // RFC 8656 12.2: a channel is bound to one peer and a peer to one channel.
  Allocation::Channel* existing = nullptr;
  for (auto& c : alloc->channels) {
    if (c.number == channel && !(c.peer == *peer)) {
      SendError(req, 400);
      return;
    }
    if (c.peer == *peer && c.number != channel) {
      SendError(req, 400);
      return;
    }
    if (c.number == channel) {
      existing = &c;
    }
  }
  if (existing == nullptr && alloc->channels.size() >= kMaxChannels) {
    SendError(req, 508);
    return;
  }
  if (existing != nullptr) {
    existing->expires_s = now_s_ + config_->channel_lifetime;
  } else {
    alloc->channels.push_back({channel, *peer, now_s_ + config_->channel_lifetime});
    ++counters_.channels_bound;
  }
  alloc->AddPermission(peer->ip, now_s_ + config_->permission_lifetime);
  MessageBuilder b;
  if (!StartResponse(req, MessageClass::kSuccessResponse, &b)) {
    return;
  }
  FinishResponse(req, b);
}

// ---------------------------------------------------------------------------------------------
// Responses

bool Engine::StartResponse(Request& req, MessageClass cls, MessageBuilder* b) {
  TxDesc* d = req.tx.Next();
  if (d == nullptr) {
    counters_.Drop(DropReason::kTxFull);
    return false;
  }
  d->socket = req.listener;
  d->dst = req.tuple.client;
  d->body = nullptr;
  d->body_len = 0;
  d->tail_pad = 0;
  *b = MessageBuilder({d->head, TxDesc::kHeadCapacity}, req.msg.method(), cls,
                      req.msg.transaction_id());
  if (config_->software_attribute) {
    b->AddString(attr::kSoftware, kSoftware);
  }
  return true;
}

void Engine::FinishResponse(Request& req, MessageBuilder& b) {
  if (req.auth.status == AuthResult::Status::kOk && req.auth.key.size > 0) {
    if (req.auth.sha256_mi) {
      b.AddMessageIntegritySha256(req.auth.key.span());
    } else {
      b.AddMessageIntegrity(req.auth.key.span());
    }
  }
  if (req.msg.HasFingerprint()) {
    b.AddFingerprint();
  }
  if (!b.ok()) {  // cannot happen with our sizes; count rather than send garbage
    req.tx.Cancel();
    counters_.Drop(DropReason::kTooBig);
    return;
  }
  req.tx[req.tx.size() - 1].head_len = static_cast<uint16_t>(b.size());
}

void Engine::SendError(Request& req, int code, std::span<const uint16_t> unknown) {
  const bool authenticated = req.auth.status == AuthResult::Status::kOk;
  // Binding's 420 has been admitted in HandleBinding already.
  if (!authenticated && req.msg.method() != Method::kBinding && !AdmitUnauthenticated(req)) {
    return;
  }
  MessageBuilder b;
  if (!StartResponse(req, MessageClass::kErrorResponse, &b)) {
    return;
  }
  b.AddErrorCode(code, authenticated ? ReasonPhrase(code) : std::string_view());
  if (!unknown.empty()) {
    b.AddUnknownAttributes(unknown);
  }
  FinishResponse(req, b);
}

void Engine::SendChallenge(Request& req, int code) {
  if (req.msg.method() == Method::kAllocate) {
    counters_.Allocate(AllocateResult::kAuthRequired);
  }
  if (!AdmitUnauthenticated(req)) {
    return;
  }
  // The full challenge announces RFC 8489's password algorithms (nonce cookie plus
  // PASSWORD-ALGORITHMS); when that would exceed the size budget — a bare 20-28 byte request —
  // the short nonce is sent and the client uses MD5, as every RFC 5389 client does anyway.
  static constexpr stun::PasswordAlgorithm kAlgorithms[] = {stun::PasswordAlgorithm::kMd5,
                                                            stun::PasswordAlgorithm::kSha256};
  const size_t budget = UnauthenticatedBudget(req);
  const size_t realm = (auth_.realm().size() + 3) & ~size_t{3};
  const size_t base = stun::kHeaderSize + 8 /* ERROR-CODE */ + 4 + realm +
                      (req.msg.HasFingerprint() ? 8 : 0) +
                      (config_->software_attribute ? 4 + ((sizeof(kSoftware) + 2) & ~size_t{3}) : 0);
  const size_t full = base + 4 + ((Authenticator::kNonceSize + 3) & ~size_t{3}) + 4 + 8;
  const size_t short_form = base + 4 + 16;
  if (short_form > budget) {
    counters_.Drop(DropReason::kAmplification);
    return;
  }
  const bool announce = full <= budget;
  MessageBuilder b;
  if (!StartResponse(req, MessageClass::kErrorResponse, &b)) {
    return;
  }
  b.AddErrorCode(code, {});
  b.AddString(attr::kRealm, auth_.realm());
  char nonce[Authenticator::kNonceSize];
  size_t len = auth_.MakeNonce(req.tuple.client, now_s_, announce, nonce);
  b.AddString(attr::kNonce, {nonce, len});
  if (announce) {
    b.AddPasswordAlgorithms(kAlgorithms);
  }
  FinishResponse(req, b);  // no integrity: the request did not authenticate
}

bool Engine::AdmitUnauthenticated(const Request& req) {
  if (config_->unauth_rate == 0) {
    return true;
  }
  SourceBucket& bucket =
      source_buckets_[absl::Hash<IpAddress>{}(req.tuple.client.ip) & (kSourceBuckets - 1)];
  const uint64_t cap = uint64_t{config_->unauth_burst} * 1000;
  const uint64_t refill = (now_ns_ - bucket.last_ns) / 1000 * config_->unauth_rate / 1000;
  bucket.milli_tokens = bucket.last_ns == 0 ? cap : std::min(cap, bucket.milli_tokens + refill);
  bucket.last_ns = now_ns_;
  if (bucket.milli_tokens < 1000) {
    counters_.Drop(DropReason::kRateLimited);
    return false;
  }
  bucket.milli_tokens -= 1000;
  return true;
}

size_t Engine::UnauthenticatedBudget(const Request& req) const {
  if (req.transport != ClientTransport::kUdp) {
    return TxDesc::kHeadCapacity;  // a TCP peer has completed a handshake: no reflection
  }
  const size_t overhead = req.tuple.client.ip.is_v4() ? 20 + 8 : 40 + 8;  // IP + UDP headers
  return 2 * (req.msg.bytes().size() + overhead) - overhead;
}

// ---------------------------------------------------------------------------------------------
// Table management

uint32_t Engine::FindSlot(const FiveTuple& tuple, uint64_t hash) const {
  return by_tuple_.Find(hash, [&](uint32_t slot) { return slots_[slot].tuple == tuple; });
}

Engine::Allocation* Engine::Lookup(const FiveTuple& tuple, uint64_t hash) {
  const uint32_t slot = FindSlot(tuple, hash);
  if (slot == SlotIndex::kNone) {
    return nullptr;
  }
  Allocation& alloc = slots_[slot];
  if (alloc.expires_s <= now_s_) {
    // Expired but not swept yet: end it now, so that a new Allocate on this 5-tuple cannot
    // overwrite the table entry and orphan the old slot, relay socket, port and quota.
    ++counters_.allocations_expired;
    Release(&alloc, AllocationEnd::kExpired);
    return nullptr;
  }
  return &alloc;
}

void Engine::Release(Allocation* alloc, AllocationEnd reason) {
  if (events_ != nullptr) {
    events_->OnAllocationDeleted(AllocationId(*alloc), alloc->username, reason);
  }
  uint32_t slot = static_cast<uint32_t>(alloc - slots_.data());
  relays_->CloseRelay(alloc->relay_socket);
  node_->ReturnPort(alloc->relay.ip, alloc->relay.port);
  if (alloc->dual()) {
    relays_->CloseRelay(alloc->relay6_socket);
    node_->ReturnPort(alloc->relay6.ip, alloc->relay6.port);
  }
  node_->Leave(alloc->username);
  by_tuple_.Erase(FiveTupleHash{}(alloc->tuple), slot);
  const uint32_t generation = alloc->generation;
  *alloc = Allocation{};
  alloc->generation = generation;
  free_slots_.push_back(slot);
}

void Engine::Tick() {
  if (now_s_ == last_sweep_s_) {
    return;
  }
  last_sweep_s_ = now_s_;
  std::array<std::array<uint64_t, 2>, 3> by_transport{};
  uint64_t permissions = 0, channels = 0;
  release_scratch_.clear();
  by_tuple_.ForEach([&](uint32_t slot) {
    Allocation& alloc = slots_[slot];
    if (alloc.expires_s <= now_s_) {
      release_scratch_.push_back(slot);  // released below: the index must not change here
      return;
    }
    auto expired = [this](const auto& entry) { return entry.expires_s <= now_s_; };
    alloc.permissions.erase(
        std::remove_if(alloc.permissions.begin(), alloc.permissions.end(), expired),
        alloc.permissions.end());
    alloc.channels.erase(std::remove_if(alloc.channels.begin(), alloc.channels.end(), expired),
                         alloc.channels.end());
    auto& counts = by_transport[static_cast<size_t>(alloc.transport)];
    counts[alloc.relay.ip.is_v4() ? 0 : 1] += 1;
    counts[1] += alloc.dual() ? 1 : 0;
    permissions += alloc.permissions.size();
    channels += alloc.channels.size();
  });
  for (uint32_t slot : release_scratch_) {
    Allocation& alloc = slots_[slot];
    ++counters_.allocations_expired;
    SPDLOG_DEBUG("allocation for {} expired", alloc.tuple.client.ToString());
    Release(&alloc, AllocationEnd::kExpired);
  }
  counters_.allocations = by_transport;
  counters_.permissions = permissions;
  counters_.channels = channels;
}

void Engine::OnStreamClosed(const FiveTuple& tuple) {
  if (tuple.protocol != IPPROTO_TCP) {
    return;  // only a stream has a connection to close
  }
  const uint32_t slot = FindSlot(tuple);
  if (slot == SlotIndex::kNone) {
    return;
  }
  Allocation& alloc = slots_[slot];
  if (alloc.expires_s <= now_s_) {
    ++counters_.allocations_expired;
    Release(&alloc, AllocationEnd::kExpired);
    return;
  }
  ++counters_.allocations_deleted;
  SPDLOG_DEBUG("allocation of {} ended with its connection", alloc.tuple.client.ToString());
  Release(&alloc, AllocationEnd::kClientClosed);
}

bool Engine::HasAllocation(const FiveTuple& tuple) const {
  const uint32_t slot = FindSlot(tuple);
  return slot != SlotIndex::kNone && slots_[slot].expires_s > now_s_;
}

void Engine::CloseAll() {
  release_scratch_.clear();
  by_tuple_.ForEach([&](uint32_t slot) { release_scratch_.push_back(slot); });
  for (uint32_t slot : release_scratch_) Release(&slots_[slot], AllocationEnd::kShutdown);
}

uint64_t Engine::AllocationId(const Allocation& alloc) const {
  const uint64_t slot = static_cast<uint64_t>(&alloc - slots_.data());
  return (uint64_t{options_.worker_index & 0xFF} << 56) | (uint64_t{alloc.generation} << 24) |
         (slot & 0xFFFFFF);
}

void Engine::FillInfo(const Allocation& alloc, AllocationInfo* info) const {
  auto left = [this](uint64_t expires_s) {
    return static_cast<uint32_t>(expires_s > now_s_ ? expires_s - now_s_ : 0);
  };
  info->id = AllocationId(alloc);
  info->tuple = alloc.tuple;
  info->transport = alloc.transport;
  info->relay = alloc.relay;
  info->advertised = Advertised(alloc.relay);
  info->dual = alloc.dual();
  if (alloc.dual()) {
    info->relay6 = alloc.relay6;
    info->advertised6 = Advertised(alloc.relay6);
  }
  info->username = alloc.username;
  info->lifetime_left_s = left(alloc.expires_s);
  info->permissions.clear();
  for (const auto& p : alloc.permissions) {
    if (p.expires_s > now_s_) {
      info->permissions.push_back({p.ip, left(p.expires_s)});
    }
  }
  info->channels.clear();
  for (const auto& c : alloc.channels) {
    if (c.expires_s > now_s_) {
      info->channels.push_back({c.number, c.peer, left(c.expires_s)});
    }
  }
  info->to_peer_packets = alloc.to_peer_packets;
  info->to_peer_bytes = alloc.to_peer_bytes;
  info->to_client_packets = alloc.to_client_packets;
  info->to_client_bytes = alloc.to_client_bytes;
}

void Engine::ListAllocations(std::vector<AllocationInfo>* out) const {
  by_tuple_.ForEach([&](uint32_t slot) {
    const Allocation& alloc = slots_[slot];
    if (alloc.expires_s > now_s_) {
      FillInfo(alloc, &out->emplace_back());
    }
  });
}

bool Engine::KillAllocation(uint64_t id) {
  const uint32_t slot = static_cast<uint32_t>(id & 0xFFFFFF);
  if (WorkerOf(id) != (options_.worker_index & 0xFF) || slot >= slots_.size()) {
    return false;
  }
  Allocation& alloc = slots_[slot];
  if (!alloc.in_use || AllocationId(alloc) != id) {
    return false;
  }
  ++counters_.allocations_deleted;
  SPDLOG_INFO("allocation of {} (user '{}', relay {}) ended by the control plane",
              alloc.tuple.client.ToString(), alloc.username, alloc.relay.ToString());
  Release(&alloc, AllocationEnd::kKilled);
  return true;
}

void Engine::Reconfigure(const ServerConfig& config) {
  auto fresh = std::make_unique<ServerConfig>(config);
  auth_ = Authenticator(*fresh, node_->nonce_secret());
  peer_policy_ = PeerPolicy(*fresh);
  config_ = fresh.get();
  owned_config_ = std::move(fresh);
  SetNodeShare();
}

SocketAddress Engine::Advertised(const SocketAddress& relay) const {
  for (const ExternalIp& ext : config_->external_ips) {
    if (ext.has_private ? ext.private_ip == relay.ip
                        : ext.public_ip.family == relay.ip.family) {
      return {ext.public_ip, relay.port};
    }
  }
  return relay;
}

}  // namespace turnpike::turn
