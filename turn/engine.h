// The TURN engine: one instance per data-plane worker, fed batches of datagrams by an I/O
// backend (dataplane/uring today, dataplane/dpdk later) and answering with TX descriptors.
// It owns that worker's allocations, permissions and channels; nothing in it is shared with
// other workers except NodeState, which is touched only on the allocation path (never per
// relayed packet).
//
//   backend rx --> OnClientPacket / OnPeerPacket --> TxBatch --> backend tx
//                        |  (Allocate / Refresh only)
//                        v
//                    NodeState (ports, quotas, reservations; mutex)
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "turn/auth.h"
#include "turn/config.h"
#include "turn/counters.h"
#include "turn/net/socket_address.h"
#include "turn/node_state.h"
#include "turn/peer_policy.h"
#include "turn/slot_index.h"
#include "turn/stun/message.h"

namespace turnpike::turn {

// A backend's handle for one of its sockets (listener or relay). Opaque to the engine.
using SocketId = uint32_t;
inline constexpr SocketId kInvalidSocket = ~SocketId{0};

// One datagram to send: `head` (built by the engine) then `body` (a range of a received packet,
// zero-copy) then `tail_pad` zero bytes. `body` stays valid until the backend flushes the batch.
struct TxDesc {
  static constexpr size_t kHeadCapacity = 512;  // largest STUN response the engine writes
  SocketId socket;
  SocketAddress dst;
  uint16_t head_len;
  uint8_t tail_pad;
  const uint8_t* body;
  uint32_t body_len;
  alignas(8) uint8_t head[kHeadCapacity];

  size_t size() const { return head_len + body_len + tail_pad; }
};

// Buffered TX for one receive burst. The backend drains it after each burst (or when full).
class TxBatch {
 public:
  static constexpr size_t kCapacity = 64;
  TxDesc* Next() { return size_ < kCapacity ? &descs_[size_++] : nullptr; }
  void Cancel() { --size_; }  // un-take the last Next()
  size_t size() const { return size_; }
  bool full() const { return size_ == kCapacity; }
  TxDesc& operator[](size_t i) { return descs_[i]; }
  void Clear() { size_ = 0; }

 private:
  size_t size_ = 0;
  TxDesc descs_[kCapacity];
};

// Relay sockets live in the backend (a UDP socket per relay port on kernel sockets, a table
// entry on DPDK). Called on the allocation path only, so a virtual call is fine.
class RelayTransport {
 public:
  virtual ~RelayTransport() = default;
  // Opens a relay endpoint bound to `address`. Packets that arrive on it reach
  // Engine::OnPeerPacket with `tag`. Fails when the port cannot be bound.
  virtual absl::StatusOr<SocketId> OpenRelay(const SocketAddress& address, uint32_t tag) = 0;
  virtual void CloseRelay(SocketId socket) = 0;
  // Sets the DF bit on everything the relay sends (DONT-FRAGMENT, RFC 8656 7.2). A transport
  // that cannot returns an error and the engine answers 420 as the RFC asks.
  virtual absl::Status SetDontFragment(SocketId socket) {
    (void)socket;
    return absl::UnimplementedError("DONT-FRAGMENT not supported");
  }
};

// How a client reached us. TCP and TLS clients are framed by the backend (turn/stream_framer.h)
// and handed over one whole message at a time; their 5-tuple has protocol TCP.
enum class ClientTransport : uint8_t { kUdp = 0, kTcp, kTls };
std::string_view ClientTransportName(ClientTransport t);  // "udp", "tcp", "tls"

// One allocation as the control plane sees it (REST API). Times are seconds from now.
struct AllocationInfo {
  struct Permission {
    IpAddress ip;
    uint32_t expires_in_s;
  };
  struct Channel {
    uint16_t number;
    SocketAddress peer;
    uint32_t expires_in_s;
  };
  uint64_t id = 0;  // stable while the allocation lives; see Engine::AllocationId
  FiveTuple tuple;
  ClientTransport transport = ClientTransport::kUdp;
  SocketAddress relay;       // the bound relay address
  SocketAddress advertised;  // what XOR-RELAYED-ADDRESS says (external-ip applied)
  bool dual = false;         // RFC 8656 dual allocation: an IPv6 relay as well
  SocketAddress relay6;
  SocketAddress advertised6;
  std::string username;
  uint32_t lifetime_left_s = 0;
  std::vector<Permission> permissions;
  std::vector<Channel> channels;
  uint64_t to_peer_packets = 0;
  uint64_t to_peer_bytes = 0;
  uint64_t to_client_packets = 0;
  uint64_t to_client_bytes = 0;
};

// Why an allocation ended (for the control plane's event stream).
enum class AllocationEnd : uint8_t {
  kRefreshZero = 0,  // client sent Refresh with LIFETIME 0
  kExpired,          // lifetime ran out
  kKilled,           // KillAllocation (control plane)
  kShutdown,         // CloseAll
  kClientClosed,     // the client's TCP/TLS connection closed (OnStreamClosed)
};
// "refresh", "expired", "killed", "shutdown", "closed"
std::string_view AllocationEndName(AllocationEnd e);

// Allocation life events, called on the worker's own thread on the allocation path only (never
// per relayed packet). Implementations must be cheap and must not call back into the engine.
class EngineEventSink {
 public:
  virtual ~EngineEventSink() = default;
  virtual void OnAllocationCreated(const AllocationInfo& info) = 0;
  virtual void OnAllocationDeleted(uint64_t id, std::string_view username,
                                   AllocationEnd reason) = 0;
};

struct EngineOptions {
  uint32_t worker_index = 0;
  uint32_t max_allocations = 1024;  // this worker's table size
  uint32_t worker_count = 1;        // bps-capacity is split evenly across workers
};

class Engine {
 public:
  Engine(const ServerConfig& config, const EngineOptions& options, NodeState* node,
         RelayTransport* relays);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // The backend sets the clock once per burst (CLOCK_MONOTONIC nanoseconds).
  void SetNow(uint64_t now_ns) { now_ns_ = now_ns; now_s_ = now_ns / 1'000'000'000; }

  // A datagram from a client to one of our listening sockets (STUN/TURN or ChannelData), or one
  // whole message from a TCP/TLS connection (ChannelData without its stream padding).
  // `server` is the local address the packet arrived on (never a wildcard). For streams,
  // `listener` is the backend's id of the connection: responses and relayed data go back on it,
  // and ChannelData toward a stream client is padded to a multiple of 4 (RFC 8656 12.5).
  void OnClientPacket(SocketId listener, const SocketAddress& server,
                      const SocketAddress& client, std::span<const uint8_t> data, TxBatch& tx,
                      ClientTransport transport = ClientTransport::kUdp);
  // A client's UDP 5-tuple hashed as the engine's table hashes it. PrefetchClient returns it;
  // the burst path hands it back with the datagram so that the tuple is hashed once.
  struct TupleHash {
    uint64_t value = 0;
  };
  // The same as above over UDP, with the hash PrefetchClient returned for this server / client.
  void OnClientPacket(SocketId listener, const SocketAddress& server,
                      const SocketAddress& client, std::span<const uint8_t> data, TxBatch& tx,
                      TupleHash hash);
  // The client's TCP/TLS connection closed: its allocation, if any, ends now (a stream
  // allocation lives as long as its connection, RFC 8656 2.1 and coturn).
  void OnStreamClosed(const FiveTuple& tuple);
  // True when `tuple` holds a live allocation (the backend's idle rule for connections).
  bool HasAllocation(const FiveTuple& tuple) const;
  // A datagram from a peer to a relay socket opened with `tag`.
  void OnPeerPacket(uint32_t tag, const SocketAddress& peer, std::span<const uint8_t> data,
                    TxBatch& tx);
  // Prefetch hints for a backend that handles packets in bursts: called for every packet of a
  // burst before the OnClientPacket (UDP) / OnPeerPacket calls, they start loading what those
  // will read first (the 5-tuple table's probe group; the allocation's per-packet fields), so
  // the cache misses of a burst overlap instead of queueing one after another. They change
  // nothing.
  TupleHash PrefetchClient(const SocketAddress& server, const SocketAddress& client) const;
  void PrefetchPeer(uint32_t tag) const;
  // Expires allocations, permissions and channels. Call at least once a second.
  void Tick();
  // Closes every allocation (shutdown).
  void CloseAll();

  // Control-plane calls. They touch the worker's tables, so run them on the worker's own
  // thread (the backend passes them through its command queue).
  void ListAllocations(std::vector<AllocationInfo>* out) const;
  // Ends an allocation at once (relay closed, port and quota returned). False if no such id.
  bool KillAllocation(uint64_t id);
  // Swaps in new credentials, peer lists, lifetimes and max-bps. Existing allocations stay;
  // they meet the new rules on their next request or packet. Addresses and ports are not
  // reloadable (they are bound at start-up) and are ignored here.
  void Reconfigure(const ServerConfig& config);

  // Allocation ids: worker index (8 bits) | slot generation (32 bits) | slot (24 bits), so the
  // control plane can route a command to the owning worker and a reused slot never matches an
  // old id.
  static uint32_t WorkerOf(uint64_t id) { return static_cast<uint32_t>(id >> 56); }

  // Optional; set before the worker starts (nullptr: no events). Not owned.
  void SetEventSink(EngineEventSink* sink) { events_ = sink; }

  const EngineCounters& counters() const { return counters_; }
  size_t allocation_count() const { return by_tuple_.size(); }

 private:
  struct Allocation;
  struct Request;
  struct TokenBucket {  // max-bps, one per direction of an allocation
    uint64_t tokens = 0;
    uint64_t last_ns = 0;
  };

  void HandleStun(const stun::MessageView& msg, SocketId listener, const FiveTuple& tuple,
                  ClientTransport transport, TxBatch& tx);
  void HandleBinding(Request& req);
  void HandleAllocate(Request& req, Allocation* existing);
  void HandleRefresh(Request& req, Allocation* alloc);
  void HandleCreatePermission(Request& req, Allocation* alloc);
  void HandleChannelBind(Request& req, Allocation* alloc);
  void HandleSendIndication(const stun::MessageView& msg, Allocation* alloc, TxBatch& tx);
  void HandleClientPacket(SocketId listener, const FiveTuple& tuple, uint64_t hash,
                          std::span<const uint8_t> data, TxBatch& tx, ClientTransport transport);
  void HandleChannelData(std::span<const uint8_t> data, const FiveTuple& tuple, uint64_t hash,
                         TxBatch& tx);
  // The client -> peer step both ChannelData and Send indications end in: bandwidth, one TX
  // descriptor whose body is the payload in place, counters.
  void RelayToPeer(Allocation& alloc, const SocketAddress& peer, std::span<const uint8_t> payload,
                   TxBatch& tx);

  // Responses go into the next TX descriptor's head; FinishResponse adds integrity (with the
  // request's key and algorithm) and FINGERPRINT (when the request had one).
  bool StartResponse(Request& req, stun::MessageClass cls, stun::MessageBuilder* b);
  void FinishResponse(Request& req, stun::MessageBuilder& b);
  void SendError(Request& req, int code, std::span<const uint16_t> unknown = {});
  void SendChallenge(Request& req, int code);  // 401 / 438 with REALM, NONCE
  void SendAllocateSuccess(Request& req, const Allocation& alloc);
  // Adds the IPv6 relay of a dual allocation; on failure records 440 or 508 for
  // ADDRESS-ERROR-CODE and the allocation goes on with its IPv4 relay only (RFC 8656 7.2).
  void OpenIpv6Relay(Allocation& alloc, uint32_t tag, bool dont_fragment);

  Allocation* Lookup(const FiveTuple& tuple) { return Lookup(tuple, FiveTupleHash{}(tuple)); }
  // `hash` is FiveTupleHash{}(tuple).
  Allocation* Lookup(const FiveTuple& tuple, uint64_t hash);
  // The slot of the allocation on `tuple` (expired or not), or SlotIndex::kNone.
  uint32_t FindSlot(const FiveTuple& tuple) const {
    return FindSlot(tuple, FiveTupleHash{}(tuple));
  }
  uint32_t FindSlot(const FiveTuple& tuple, uint64_t hash) const;
  void PrefetchSlot(uint32_t slot) const;
  void Release(Allocation* alloc, AllocationEnd reason);
  SocketAddress Advertised(const SocketAddress& relay) const;
  bool ChargeBandwidth(TokenBucket& bucket, size_t bytes);
  // bps-capacity: this worker's share of the node's bytes per second, per direction.
  bool ChargeNode(TokenBucket& bucket, size_t bytes);
  // node_share_bps_ from the configuration (start-up and Reconfigure).
  void SetNodeShare();
  // Gives back what ChargeBandwidth (`alloc_bucket`) and ChargeNode (`node_bucket`) took for a
  // packet that is dropped after all (null: not charged).
  void Refund(TokenBucket* alloc_bucket, TokenBucket* node_bucket, size_t bytes);
  static bool Refill(TokenBucket& bucket, uint64_t rate, uint64_t now_ns, size_t bytes);
  // Unauthenticated answers: the source's rate budget, then the size budget (at most twice
  // the request on the wire, IP and UDP headers counted). False: drop silently, counted.
  bool AdmitUnauthenticated(const Request& req);
  size_t UnauthenticatedBudget(const Request& req) const;

  uint64_t AllocationId(const Allocation& alloc) const;
  void FillInfo(const Allocation& alloc, AllocationInfo* info) const;

  EngineEventSink* events_ = nullptr;
  AllocationInfo event_scratch_;  // reused for OnAllocationCreated
  std::unique_ptr<ServerConfig> owned_config_;  // set by Reconfigure
  const ServerConfig* config_;
  EngineOptions options_;
  NodeState* node_;
  RelayTransport* relays_;
  Authenticator auth_;
  PeerPolicy peer_policy_;
  uint64_t now_ns_ = 0;
  uint64_t now_s_ = 0;
  uint64_t last_sweep_s_ = 0;
  stun::TransactionId indication_tid_{};

  // Per-source token buckets for unauthenticated answers: a fixed table indexed by a hash of
  // the source IP (sources that collide share a bucket), so no state is created per request
  // or per source, whatever arrives. Milli-tokens.
  struct SourceBucket {
    uint64_t last_ns = 0;
    uint64_t milli_tokens = 0;
  };
  static constexpr size_t kSourceBuckets = 4096;
  std::vector<SourceBucket> source_buckets_;

  TokenBucket node_to_peer_;    // bps-capacity share, client -> peer
  TokenBucket node_to_client_;  // bps-capacity share, peer -> client
  uint64_t node_share_bps_ = 0;  // bps-capacity / worker_count (at least 1); 0: no node limit

  std::vector<Allocation> slots_;        // preallocated; index = relay tag
  std::vector<uint32_t> free_slots_;
  SlotIndex by_tuple_;  // client 5-tuple -> slot, for every allocation in slots_
  std::vector<uint32_t> release_scratch_;  // Tick, CloseAll: slots to release after a scan
  EngineCounters counters_;
};

}  // namespace turnpike::turn
