// End-to-end tests of TURN over TCP and TLS on the io_uring backend (dataplane/uring/
// uring_streams.cc): an in-process UringBackend on 127.0.0.1 (listening_port 0 and
// tls_listening_port 0, so the kernel picks free ports), driven by real TCP sockets and a real
// OpenSSL client speaking STUN/TURN through turn/stun/message.h. The TLS certificates are
// generated here with OpenSSL (self-signed P-256) into a mkdtemp directory. Loopback only.
//
// Every client socket is non-blocking and waited on with poll, retried on EINTR: the backend's
// rings are created on this (the main) thread, and when a ring is torn down the kernel's
// io_uring exit work pokes every task that used it with TWA_SIGNAL, which makes a blocking
// socket call with SO_RCVTIMEO on this thread fail with EINTR in a later test.
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "dataplane/uring/uring_backend.h"
#include "gtest/gtest.h"
#include "tests/dataplane/udp_test_socket.h"
#include "turn/stun/message.h"

namespace turnpike::dataplane {
namespace {

using stun::MessageBuilder;
using stun::MessageClass;
using stun::MessageView;
using stun::Method;
using Clock = std::chrono::steady_clock;

constexpr int kTimeoutMs = 3000;
constexpr uint16_t kChannel = 0x4001;
const IpAddress kLoopback = IpAddress::Loopback(AddressFamily::kIPv4);

int64_t MsSince(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count();
}

int RemainingMs(Clock::time_point deadline) {
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left > 0 ? static_cast<int>(left) : 0;
}

// poll() on one descriptor until `events` or the deadline, retried on EINTR.
bool PollUntil(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    const int r = poll(&p, 1, RemainingMs(deadline));
    if (r == 1) return true;
    if (r < 0 && errno == EINTR) continue;
    return false;
  }
}

void SleepMs(int64_t ms) {
  if (ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

// Polls `done` (counters another thread writes) until it holds or `ms` pass.
template <typename F>
bool WaitFor(F done, int ms = 5000) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(ms);
  while (!done()) {
    if (Clock::now() > deadline) return false;
    SleepMs(2);
  }
  return true;
}

stun::TransactionId RandomTid() {
  static std::mt19937 rng(std::random_device{}());
  stun::TransactionId tid;
  for (uint8_t& b : tid) b = static_cast<uint8_t>(rng());
  return tid;
}

std::string OpenSslErrors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out;
}

// A STUN request with FINGERPRINT.
std::vector<uint8_t> BuildRequest(Method method, const stun::TransactionId& tid,
                                  const std::function<void(MessageBuilder&)>& add = {}) {
  std::vector<uint8_t> buf(1024);
  MessageBuilder b(buf, method, MessageClass::kRequest, tid.data());
  if (add) add(b);
  b.AddFingerprint();
  EXPECT_TRUE(b.ok());
  buf.resize(b.size());
  return buf;
}

// ChannelData for a stream: header, payload, zero padding to a multiple of 4 (RFC 8656 12.5).
std::vector<uint8_t> PaddedChannelData(uint16_t channel, std::span<const uint8_t> payload) {
  std::vector<uint8_t> out(4 + payload.size(), 0);
  stun::WriteChannelDataHeader(out.data(), channel, static_cast<uint16_t>(payload.size()));
  std::copy(payload.begin(), payload.end(), out.begin() + 4);
  out.resize((out.size() + 3) & ~size_t{3}, 0);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Certificates

struct Cert {
  std::string cert_file;
  std::string key_file;
  std::array<uint8_t, 32> fingerprint{};  // SHA-256 of the DER certificate
};

std::array<uint8_t, 32> Fingerprint(X509* x) {
  std::array<uint8_t, 32> out{};
  unsigned int len = 0;
  X509_digest(x, EVP_sha256(), out.data(), &len);
  return out;
}

// A self-signed P-256 certificate for CN=`cn`, written as PEM to `dir`/`name`.crt and .key.
std::optional<Cert> MakeCert(const std::string& dir, const std::string& name,
                             const std::string& cn, long serial) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  if (key == nullptr) return std::nullopt;
  X509* x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), 24 * 3600);
  X509_set_pubkey(x, key);
  X509_NAME* subject = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(x, subject);
  std::optional<Cert> out;
  if (X509_sign(x, key, EVP_sha256()) > 0) {
    Cert c;
    c.cert_file = dir + "/" + name + ".crt";
    c.key_file = dir + "/" + name + ".key";
    FILE* f = fopen(c.cert_file.c_str(), "w");
    FILE* k = fopen(c.key_file.c_str(), "w");
    const bool ok = f != nullptr && k != nullptr && PEM_write_X509(f, x) == 1 &&
                    PEM_write_PrivateKey(k, key, nullptr, nullptr, 0, nullptr, nullptr) == 1;
    if (f != nullptr) fclose(f);
    if (k != nullptr) fclose(k);
    c.fingerprint = Fingerprint(x);
    if (ok) out = c;
  }
  X509_free(x);
  EVP_PKEY_free(key);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Clients

using testing::Datagram;
using testing::UdpSocket;

// A TCP connection to the server, optionally with TLS on top (OpenSSL client, no certificate
// verification: the tests compare fingerprints instead). Non-blocking after the handshake;
// every read and write is bounded by poll.
class Stream {
 public:
  static constexpr int kTimeout = -2;

  ~Stream() {
    if (ssl_ != nullptr) SSL_free(ssl_);
    if (ctx_ != nullptr) SSL_CTX_free(ctx_);
    if (fd_ >= 0) close(fd_);
  }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  // Plain TCP. `rcvbuf` > 0 sets SO_RCVBUF before connecting (a small window).
  static std::unique_ptr<Stream> Tcp(uint16_t port, int rcvbuf = 0) {
    std::unique_ptr<Stream> s(new Stream());
    if (!s->Connect(port, rcvbuf)) return nullptr;
    return s;
  }

  // TLS with the protocol versions in [min_version, max_version]. `seclevel0` lets the client
  // offer TLS 1.0/1.1 (OpenSSL 3 refuses them at its default security level). On failure
  // returns nullptr and fills `error` with the client's view of it.
  static std::unique_ptr<Stream> Tls(uint16_t port, int min_version, int max_version,
                                     std::string* error, bool seclevel0 = false) {
    std::unique_ptr<Stream> s(new Stream());
    if (!s->Connect(port, 0)) {
      *error = "connect failed";
      return nullptr;
    }
    ERR_clear_error();
    s->ctx_ = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(s->ctx_, min_version);
    SSL_CTX_set_max_proto_version(s->ctx_, max_version);
    if (seclevel0) SSL_CTX_set_cipher_list(s->ctx_, "DEFAULT:@SECLEVEL=0");
    SSL_CTX_set_verify(s->ctx_, SSL_VERIFY_NONE, nullptr);
    s->ssl_ = SSL_new(s->ctx_);
    SSL_set_fd(s->ssl_, s->fd_);
    const auto deadline = Clock::now() + std::chrono::milliseconds(kTimeoutMs);
    for (;;) {
      const int r = SSL_connect(s->ssl_);
      if (r == 1) return s;
      const int err = SSL_get_error(s->ssl_, r);
      const int saved_errno = errno;
      if ((err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) &&
          PollUntil(s->fd_, err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline)) {
        continue;
      }
      *error = "SSL_connect: SSL_get_error=" + std::to_string(err) +
               " errno=" + std::to_string(saved_errno) + " " + OpenSslErrors();
      return nullptr;
    }
  }

  int fd() const { return fd_; }
  SocketAddress local() const {
    sockaddr_storage ss{};
    socklen_t len = sizeof(ss);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &len);
    return SocketAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&ss));
  }
  SSL* ssl() const { return ssl_; }
  std::array<uint8_t, 32> PeerFingerprint() const {
    X509* x = SSL_get1_peer_certificate(ssl_);
    if (x == nullptr) return {};
    auto out = Fingerprint(x);
    X509_free(x);
    return out;
  }
  int version() const { return ssl_ != nullptr ? SSL_version(ssl_) : 0; }

  bool Write(std::span<const uint8_t> bytes) {
    const auto deadline = Clock::now() + std::chrono::milliseconds(kTimeoutMs);
    if (ssl_ != nullptr) {
      for (;;) {
        ERR_clear_error();
        const int n = SSL_write(ssl_, bytes.data(), static_cast<int>(bytes.size()));
        if (n == static_cast<int>(bytes.size())) return true;
        const int err = SSL_get_error(ssl_, n);
        const short ev = err == SSL_ERROR_WANT_WRITE ? POLLOUT
                         : err == SSL_ERROR_WANT_READ ? POLLIN
                                                      : 0;
        if (ev == 0 || !PollUntil(fd_, ev, deadline)) return false;
      }
    }
    size_t done = 0;
    while (done < bytes.size()) {
      const ssize_t n = send(fd_, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
      if (n > 0) {
        done += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EAGAIN && PollUntil(fd_, POLLOUT, deadline)) continue;
      return false;
    }
    return true;
  }

  // One read: > 0 bytes, 0 when the connection ended (EOF, reset, TLS failure), kTimeout.
  int ReadSome(uint8_t* buf, size_t len, int timeout_ms) {
    const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      if (ssl_ != nullptr) {
        ERR_clear_error();
        const int n = SSL_read(ssl_, buf, static_cast<int>(len));
        if (n > 0) return n;
        const int err = SSL_get_error(ssl_, n);
        if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) return 0;
        if (!PollUntil(fd_, err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline)) {
          return kTimeout;
        }
        continue;
      }
      const ssize_t n = recv(fd_, buf, len, 0);
      if (n > 0) return static_cast<int>(n);
      if (n == 0) return 0;
      if (errno == EINTR) continue;
      if (errno != EAGAIN) return 0;  // ECONNRESET and friends: the connection ended
      if (!PollUntil(fd_, POLLIN, deadline)) return kTimeout;
    }
  }

  // Exactly `n` bytes (from what was buffered first), or nullopt on timeout or close.
  std::optional<std::vector<uint8_t>> ReadExact(size_t n, int timeout_ms = kTimeoutMs) {
    const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    while (rbuf_.size() < n) {
      uint8_t tmp[65536];
      const int r = ReadSome(tmp, sizeof(tmp), RemainingMs(deadline));
      if (r <= 0) {
        closed_ = r == 0;
        return std::nullopt;
      }
      rbuf_.insert(rbuf_.end(), tmp, tmp + r);
    }
    std::vector<uint8_t> out(rbuf_.begin(), rbuf_.begin() + static_cast<ptrdiff_t>(n));
    rbuf_.erase(rbuf_.begin(), rbuf_.begin() + static_cast<ptrdiff_t>(n));
    return out;
  }

  // One frame as it is on the stream: a STUN message, or ChannelData with its padding.
  std::optional<std::vector<uint8_t>> ReadFrame(int timeout_ms = kTimeoutMs) {
    const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    auto head = ReadExact(4, RemainingMs(deadline));
    if (!head) return std::nullopt;
    const size_t length = size_t{(*head)[2]} << 8 | (*head)[3];
    size_t rest;
    if (((*head)[0] & 0xC0) == 0x00) {
      rest = 16 + length;
    } else if (((*head)[0] & 0xC0) == 0x40) {
      rest = (length + 3) & ~size_t{3};
    } else {
      ADD_FAILURE() << "server sent an unframeable byte " << int{(*head)[0]};
      return std::nullopt;
    }
    auto body = ReadExact(rest, RemainingMs(deadline));
    if (!body) return std::nullopt;
    head->insert(head->end(), body->begin(), body->end());
    return head;
  }

  // Reads frames until the STUN message with `tid` (others are skipped).
  std::optional<std::vector<uint8_t>> ReadResponse(const stun::TransactionId& tid,
                                                   int timeout_ms = kTimeoutMs) {
    const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      auto frame = ReadFrame(RemainingMs(deadline));
      if (!frame) return std::nullopt;
      if (((*frame)[0] & 0xC0) != 0) continue;
      auto msg = MessageView::Parse(*frame, nullptr);
      if (msg && std::memcmp(msg->transaction_id(), tid.data(), tid.size()) == 0) return frame;
    }
  }

  std::optional<std::vector<uint8_t>> Transact(
      Method method, const std::function<void(MessageBuilder&)>& add = {},
      int timeout_ms = kTimeoutMs) {
    const stun::TransactionId tid = RandomTid();
    if (!Write(BuildRequest(method, tid, add))) return std::nullopt;
    return ReadResponse(tid, timeout_ms);
  }

  // Waits for the server to end the connection, discarding anything it sends. True when it
  // did within `timeout_ms`.
  bool WaitClosed(int timeout_ms) {
    const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    if (closed_) return true;
    for (;;) {
      uint8_t tmp[4096];
      const int r = ReadSome(tmp, sizeof(tmp), RemainingMs(deadline));
      if (r == 0) return closed_ = true;
      if (r == kTimeout) return false;
    }
  }

  // True when nothing at all has happened on the connection (no data, no EOF) right now.
  bool Quiet() {
    for (;;) {
      pollfd p{fd_, POLLIN, 0};
      const int r = poll(&p, 1, 0);
      if (r < 0 && errno == EINTR) continue;
      return r == 0;
    }
  }

 private:
  Stream() = default;

  bool Connect(uint16_t port, int rcvbuf) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return false;
    const int on = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));  // our splits stay splits
    if (rcvbuf > 0) setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    fcntl(fd_, F_SETFL, fcntl(fd_, F_GETFL) | O_NONBLOCK);
    sockaddr_storage ss;
    const socklen_t len = SocketAddress{kLoopback, port}.ToSockaddr(&ss);
    if (connect(fd_, reinterpret_cast<sockaddr*>(&ss), len) == 0) return true;
    if (errno != EINPROGRESS && errno != EINTR) return false;
    if (!PollUntil(fd_, POLLOUT, Clock::now() + std::chrono::milliseconds(kTimeoutMs))) {
      return false;
    }
    int err = 0;
    socklen_t err_len = sizeof(err);
    getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &err_len);
    return err == 0;
  }

  int fd_ = -1;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  std::vector<uint8_t> rbuf_;
  bool closed_ = false;
};

struct Parsed {
  std::vector<uint8_t> bytes;
  std::optional<MessageView> msg;
};
Parsed Parse(std::optional<std::vector<uint8_t>> bytes) {
  Parsed p;
  if (bytes) p.bytes = std::move(*bytes);
  if (!p.bytes.empty()) p.msg = MessageView::Parse(p.bytes, nullptr);
  return p;
}

// The response is a Binding success whose XOR-MAPPED-ADDRESS is `client`.
void ExpectBindingSuccess(const std::optional<std::vector<uint8_t>>& bytes,
                          const SocketAddress& client) {
  ASSERT_TRUE(bytes.has_value()) << "no Binding response";
  auto msg = MessageView::Parse(*bytes, nullptr);
  ASSERT_TRUE(msg.has_value());
  EXPECT_EQ(msg->method(), Method::kBinding);
  ASSERT_EQ(msg->message_class(), MessageClass::kSuccessResponse);
  EXPECT_EQ(msg->FindXorAddress(stun::attr::kXorMappedAddress), client);
}

// ---------------------------------------------------------------------------------------------
// Fixture

class StreamTransportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    signal(SIGPIPE, SIG_IGN);  // SSL_write to a connection the server closed
    char tmpl[] = "/tmp/turnpike-stream-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr) << strerror(errno);
    dir_ = tmpl;
    auto a = MakeCert(dir_, "a", "turnpike-test-A", 1);
    ASSERT_TRUE(a.has_value()) << OpenSslErrors();
    cert_a_ = *a;

    config_.listening_ips = {kLoopback};
    config_.listening_port = 0;
    config_.tls_listening_port = 0;
    config_.relay_ips = {kLoopback};
    config_.min_port = static_cast<uint16_t>(30000 + (getpid() % 40) * 200);
    config_.max_port = static_cast<uint16_t>(config_.min_port + 199);
    config_.no_auth = true;
    config_.allow_loopback_peers = true;
    config_.worker_threads = 2;
    config_.max_allocations = 64;
    config_.stream_max_connections = 256;
    config_.cert_file = cert_a_.cert_file;
    config_.pkey_file = cert_a_.key_file;
  }

  void TearDown() override {
    if (backend_) {
      backend_->Stop();
      backend_->Join();
      backend_.reset();
    }
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }

  void Start() {
    UringLimits limits;
    limits.rx_buffers = 1024;
    limits.tx_slots = 1024;
    limits.sq_entries = 1024;
    auto created = UringBackend::Create(config_, limits);
    ASSERT_TRUE(created.ok()) << created.status();
    backend_ = *std::move(created);
    tcp_port_ = backend_->listening_port();
    tls_port_ = backend_->tls_listening_port();
    ASSERT_NE(tcp_port_, 0);
    ASSERT_NE(tls_port_, 0);
    ASSERT_NE(tls_port_, tcp_port_);
    backend_->Start();
  }

  uint64_t IoSum(uint64_t UringCounters::*field) const {
    uint64_t sum = 0;
    for (size_t w = 0; w < backend_->worker_count(); ++w) sum += backend_->io_counters(w).*field;
    return sum;
  }
  uint64_t EngineSum(uint64_t turn::EngineCounters::*field) const {
    uint64_t sum = 0;
    for (size_t w = 0; w < backend_->worker_count(); ++w) {
      sum += backend_->engine_counters(w).*field;
    }
    return sum;
  }

  std::unique_ptr<Stream> Tls13() {
    std::string error;
    auto s = Stream::Tls(tls_port_, TLS1_3_VERSION, TLS1_3_VERSION, &error);
    EXPECT_NE(s, nullptr) << error;
    return s;
  }

  // Allocate (UDP relay), CreatePermission and ChannelBind kChannel to `peer`; the relayed
  // address, or nullopt with a test failure.
  std::optional<SocketAddress> AllocateWithChannel(Stream& client, const UdpSocket& peer) {
    Parsed alloc = Parse(client.Transact(Method::kAllocate, [](MessageBuilder& b) {
      b.AddU32(stun::attr::kRequestedTransport, 17u << 24);
    }));
    EXPECT_TRUE(alloc.msg.has_value()) << "no Allocate response";
    if (!alloc.msg) return std::nullopt;
    EXPECT_EQ(alloc.msg->method(), Method::kAllocate);
    EXPECT_EQ(alloc.msg->message_class(), MessageClass::kSuccessResponse)
        << alloc.msg->FindErrorCode().value_or(0);
    auto relay = alloc.msg->FindXorAddress(stun::attr::kXorRelayedAddress);
    EXPECT_TRUE(relay.has_value());
    if (!relay) return std::nullopt;
    Parsed perm = Parse(client.Transact(Method::kCreatePermission, [&](MessageBuilder& b) {
      b.AddXorAddress(stun::attr::kXorPeerAddress, peer.local());
    }));
    EXPECT_TRUE(perm.msg && perm.msg->message_class() == MessageClass::kSuccessResponse)
        << "CreatePermission failed";
    Parsed bind = Parse(client.Transact(Method::kChannelBind, [&](MessageBuilder& b) {
      b.AddU32(stun::attr::kChannelNumber, uint32_t{kChannel} << 16);
      b.AddXorAddress(stun::attr::kXorPeerAddress, peer.local());
    }));
    EXPECT_TRUE(bind.msg && bind.msg->message_class() == MessageClass::kSuccessResponse)
        << "ChannelBind failed";
    if (!perm.msg || !bind.msg) return std::nullopt;
    return relay;
  }

  std::string dir_;
  Cert cert_a_;
  ServerConfig config_;
  std::unique_ptr<UringBackend> backend_;
  uint16_t tcp_port_ = 0;
  uint16_t tls_port_ = 0;
};

// ---------------------------------------------------------------------------------------------
// 1. TCP Binding

TEST_F(StreamTransportTest, TcpBindingReturnsTheClientAddress) {
  ASSERT_NO_FATAL_FAILURE(Start());
  auto client = Stream::Tcp(tcp_port_);
  ASSERT_NE(client, nullptr);
  ExpectBindingSuccess(client->Transact(Method::kBinding), client->local());
  EXPECT_GE(IoSum(&UringCounters::stream_accepted), 1u);
  EXPECT_EQ(EngineSum(&turn::EngineCounters::binding_requests), 1u);
}

TEST_F(StreamTransportTest, TcpRequestSentOneByteAtATimeIsFramed) {
  ASSERT_NO_FATAL_FAILURE(Start());
  auto client = Stream::Tcp(tcp_port_);
  ASSERT_NE(client, nullptr);
  const stun::TransactionId tid = RandomTid();
  const std::vector<uint8_t> req = BuildRequest(Method::kBinding, tid);
  for (uint8_t byte : req) {
    ASSERT_TRUE(client->Write({&byte, 1}));
    SleepMs(2);
  }
  ExpectBindingSuccess(client->ReadResponse(tid), client->local());
  // All the bytes were received, and they made exactly one message.
  EXPECT_GE(IoSum(&UringCounters::rx_bytes), req.size());
  EXPECT_EQ(IoSum(&UringCounters::rx_packets), 1u);
}

TEST_F(StreamTransportTest, TcpTwoRequestsInOneWriteGetTwoResponses) {
  ASSERT_NO_FATAL_FAILURE(Start());
  auto client = Stream::Tcp(tcp_port_);
  ASSERT_NE(client, nullptr);
  const stun::TransactionId t1 = RandomTid(), t2 = RandomTid();
  std::vector<uint8_t> both = BuildRequest(Method::kBinding, t1);
  const std::vector<uint8_t> second = BuildRequest(Method::kBinding, t2);
  both.insert(both.end(), second.begin(), second.end());
  ASSERT_TRUE(client->Write(both));
  ExpectBindingSuccess(client->ReadResponse(t1), client->local());
  ExpectBindingSuccess(client->ReadResponse(t2), client->local());
}

// A request split mid-message whose second write also carries the next request: the first is
// completed in the framer's buffer, the second is framed in place.
TEST_F(StreamTransportTest, TcpRequestStraddlingWritesFollowedByAnother) {
  ASSERT_NO_FATAL_FAILURE(Start());
  auto client = Stream::Tcp(tcp_port_);
  ASSERT_NE(client, nullptr);
  const stun::TransactionId t1 = RandomTid(), t2 = RandomTid();
  const std::vector<uint8_t> r1 = BuildRequest(Method::kBinding, t1);
  const std::vector<uint8_t> r2 = BuildRequest(Method::kBinding, t2);
  ASSERT_TRUE(client->Write({r1.data(), 10}));
  SleepMs(50);
  std::vector<uint8_t> rest(r1.begin() + 10, r1.end());
  rest.insert(rest.end(), r2.begin(), r2.end());
  ASSERT_TRUE(client->Write(rest));
  ExpectBindingSuccess(client->ReadResponse(t1), client->local());
  ExpectBindingSuccess(client->ReadResponse(t2), client->local());
}

// ---------------------------------------------------------------------------------------------
// 2. TLS Binding

TEST_F(StreamTransportTest, TlsBindingWithTls12AndTls13) {
  ASSERT_NO_FATAL_FAILURE(Start());
  for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
    SCOPED_TRACE(version == TLS1_2_VERSION ? "TLS 1.2" : "TLS 1.3");
    std::string error;
    auto client = Stream::Tls(tls_port_, version, version, &error);
    ASSERT_NE(client, nullptr) << error;
    EXPECT_EQ(client->version(), version);
    EXPECT_EQ(client->PeerFingerprint(), cert_a_.fingerprint);
    ExpectBindingSuccess(client->Transact(Method::kBinding), client->local());
    // And a second one on the same session.
    ExpectBindingSuccess(client->Transact(Method::kBinding), client->local());
  }
  EXPECT_TRUE(WaitFor([&] { return IoSum(&UringCounters::tls_handshakes) == 2; }))
      << IoSum(&UringCounters::tls_handshakes);
  EXPECT_EQ(EngineSum(&turn::EngineCounters::binding_requests), 4u);
}

TEST_F(StreamTransportTest, TlsClientLimitedToTls11IsRefusedPromptly) {
  ASSERT_NO_FATAL_FAILURE(Start());
  const uint64_t failures = IoSum(&UringCounters::stream_tls_failures);
  const auto t0 = Clock::now();
  std::string error;
  auto client = Stream::Tls(tls_port_, TLS1_1_VERSION, TLS1_1_VERSION, &error,
                            /*seclevel0=*/true);
  const int64_t ms = MsSince(t0);
  EXPECT_EQ(client, nullptr) << "a TLS 1.1 handshake succeeded";
  EXPECT_LT(ms, 2000) << error;
  // The server saw the ClientHello and refused it (not a client-side refusal to offer 1.1).
  EXPECT_TRUE(WaitFor([&] { return IoSum(&UringCounters::stream_tls_failures) > failures; },
                      2000));
  EXPECT_EQ(IoSum(&UringCounters::tls_handshakes), 0u);
}

// PRODUCT BUG (see the report): tls_session.cc drains the handshake alert into the connection's send buffer ("a handshake
// alert still goes out"); the client should learn why it was refused (protocol_version), not
// just see the connection drop.
TEST_F(StreamTransportTest, TlsClientLimitedToTls11GetsAProtocolVersionAlert) {
  ASSERT_NO_FATAL_FAILURE(Start());
  std::string error;
  auto client = Stream::Tls(tls_port_, TLS1_1_VERSION, TLS1_1_VERSION, &error,
                            /*seclevel0=*/true);
  ASSERT_EQ(client, nullptr);
  EXPECT_NE(error.find("alert protocol version"), std::string::npos) << error;
}

// A request split across two TLS records, then the next request in a third record: each record's
// plaintext is framed to its end before the next one arrives.
TEST_F(StreamTransportTest, TlsRequestStraddlingRecords) {
  ASSERT_NO_FATAL_FAILURE(Start());
  auto client = Tls13();
  ASSERT_NE(client, nullptr);
  const stun::TransactionId t1 = RandomTid(), t2 = RandomTid();
  const std::vector<uint8_t> r1 = BuildRequest(Method::kBinding, t1);
  const std::vector<uint8_t> r2 = BuildRequest(Method::kBinding, t2);
  ASSERT_TRUE(client->Write({r1.data(), 10}));
  SleepMs(50);
  ASSERT_TRUE(client->Write({r1.data() + 10, r1.size() - 10}));
  ExpectBindingSuccess(client->ReadResponse(t1, 1500), client->local());
  ASSERT_TRUE(client->Write(r2));
  ExpectBindingSuccess(client->ReadResponse(t2, 1500), client->local());
  EXPECT_EQ(IoSum(&UringCounters::stream_framing_errors), 0u);
}

// PRODUCT BUG (see the report): a request split across two TLS records, the second record also
// carrying the next request. The first message completes in the framer's buffer, so
// FeedFramer flushes at once; StreamSend then assembles the TLS response in stream_scratch_,
// which is also where TlsSession::Receive put the record's plaintext, overwriting the second
// request before the framer reaches it (a framing error or a stall, depending on the bytes).
TEST_F(StreamTransportTest, TlsRequestStraddlingRecordsFollowedByAnother) {
  ASSERT_NO_FATAL_FAILURE(Start());
  auto client = Tls13();
  ASSERT_NE(client, nullptr);
  const stun::TransactionId t1 = RandomTid(), t2 = RandomTid();
  const std::vector<uint8_t> r1 = BuildRequest(Method::kBinding, t1);
  const std::vector<uint8_t> r2 = BuildRequest(Method::kBinding, t2);
  ASSERT_TRUE(client->Write({r1.data(), 10}));  // one record
  SleepMs(50);
  std::vector<uint8_t> rest(r1.begin() + 10, r1.end());
  rest.insert(rest.end(), r2.begin(), r2.end());
  ASSERT_TRUE(client->Write(rest));  // another record
  ExpectBindingSuccess(client->ReadResponse(t1, 1500), client->local());
  ExpectBindingSuccess(client->ReadResponse(t2, 1500), client->local());
  EXPECT_EQ(IoSum(&UringCounters::stream_framing_errors), 0u);
}

// ---------------------------------------------------------------------------------------------
// 3. Framing errors

TEST_F(StreamTransportTest, TcpFramingErrorClosesTheConnection) {
  ASSERT_NO_FATAL_FAILURE(Start());
  auto client = Stream::Tcp(tcp_port_);
  ASSERT_NE(client, nullptr);
  ExpectBindingSuccess(client->Transact(Method::kBinding), client->local());  // it works first
  const uint64_t before = IoSum(&UringCounters::stream_framing_errors);
  const std::vector<uint8_t> junk(32, 0xFF);
  ASSERT_TRUE(client->Write(junk));
  EXPECT_TRUE(client->WaitClosed(kTimeoutMs));
  EXPECT_TRUE(WaitFor([&] { return IoSum(&UringCounters::stream_framing_errors) == before + 1; }))
      << IoSum(&UringCounters::stream_framing_errors);
  EXPECT_TRUE(WaitFor([&] { return backend_->node_state().stream_count() == 0; }));
}

TEST_F(StreamTransportTest, TlsFramingErrorClosesTheConnection) {
  ASSERT_NO_FATAL_FAILURE(Start());
  auto client = Tls13();
  ASSERT_NE(client, nullptr);
  ExpectBindingSuccess(client->Transact(Method::kBinding), client->local());
  const uint64_t before = IoSum(&UringCounters::stream_framing_errors);
  const std::vector<uint8_t> junk(32, 0xFF);
  ASSERT_TRUE(client->Write(junk));
  EXPECT_TRUE(client->WaitClosed(kTimeoutMs));
  EXPECT_TRUE(WaitFor([&] { return IoSum(&UringCounters::stream_framing_errors) == before + 1; }))
      << IoSum(&UringCounters::stream_framing_errors);
  EXPECT_TRUE(WaitFor([&] { return backend_->node_state().stream_count() == 0; }));
}

// ---------------------------------------------------------------------------------------------
// 4. Allocation over TCP

TEST_F(StreamTransportTest, AllocationOverTcpRelaysPaddedChannelDataAndEndsWithTheConnection) {
  ASSERT_NO_FATAL_FAILURE(Start());
  auto client = Stream::Tcp(tcp_port_);
  ASSERT_NE(client, nullptr);
  UdpSocket peer;
  auto relay = AllocateWithChannel(*client, peer);
  ASSERT_TRUE(relay.has_value());
  EXPECT_EQ(relay->ip, kLoopback);
  EXPECT_GE(relay->port, config_.min_port);
  EXPECT_LE(relay->port, config_.max_port);
  EXPECT_EQ(backend_->node_state().total_allocations(), 1u);

  // Peer -> client: 5 bytes come as ChannelData padded to 8 (RFC 8656 12.5).
  const std::vector<uint8_t> hello = {'h', 'e', 'l', 'l', 'o'};
  ASSERT_TRUE(peer.Send(*relay, hello));
  auto frame = client->ReadExact(12);
  ASSERT_TRUE(frame.has_value()) << "no ChannelData on the stream";
  const std::vector<uint8_t> want = {0x40, 0x01, 0x00, 0x05, 'h', 'e', 'l', 'l', 'o', 0, 0, 0};
  EXPECT_EQ(*frame, want);

  // Client -> peer: padded ChannelData in, exactly the payload out of the relayed address.
  const std::vector<uint8_t> world = {'w', 'o', 'r', 'l', 'd'};
  ASSERT_TRUE(client->Write(PaddedChannelData(kChannel, world)));
  auto d = peer.Receive();
  ASSERT_TRUE(d.has_value()) << "the peer got nothing";
  EXPECT_EQ(d->from, *relay);
  EXPECT_EQ(d->bytes, world);
  // The padding was consumed: the stream is still in step.
  ExpectBindingSuccess(client->Transact(Method::kBinding), client->local());

  // RFC 6062 Connect is refused with 403 on the connection holding the allocation.
  Parsed connect = Parse(client->Transact(Method::kConnect, [&](MessageBuilder& b) {
    b.AddXorAddress(stun::attr::kXorPeerAddress, peer.local());
  }));
  ASSERT_TRUE(connect.msg.has_value()) << "no Connect response";
  EXPECT_EQ(connect.msg->message_class(), MessageClass::kErrorResponse);
  EXPECT_EQ(connect.msg->FindErrorCode(), 403);

  // Closing the connection ends the allocation.
  client.reset();
  EXPECT_TRUE(WaitFor([&] { return backend_->node_state().total_allocations() == 0; }, 3000))
      << backend_->node_state().total_allocations();
  EXPECT_TRUE(WaitFor([&] { return IoSum(&UringCounters::allocations) == 0; }, 3000));
  EXPECT_TRUE(WaitFor([&] { return backend_->node_state().stream_count() == 0; }, 3000));
  EXPECT_EQ(IoSum(&UringCounters::stream_closed_by_client), 1u);
  // Nothing relays to the old channel any more.
  ASSERT_TRUE(peer.Send(*relay, hello));

  // And on a fresh connection, without an allocation, Connect is 403 too.
  auto other = Stream::Tcp(tcp_port_);
  ASSERT_NE(other, nullptr);
  Parsed again = Parse(other->Transact(Method::kConnect, [&](MessageBuilder& b) {
    b.AddXorAddress(stun::attr::kXorPeerAddress, peer.local());
  }));
  ASSERT_TRUE(again.msg.has_value()) << "no Connect response";
  EXPECT_EQ(again.msg->method(), Method::kConnect);
  EXPECT_EQ(again.msg->message_class(), MessageClass::kErrorResponse);
  EXPECT_EQ(again.msg->FindErrorCode(), 403);
}

TEST_F(StreamTransportTest, AllocationOverTlsRelaysAndEndsWithCloseNotify) {
  ASSERT_NO_FATAL_FAILURE(Start());
  auto client = Tls13();
  ASSERT_NE(client, nullptr);
  UdpSocket peer;
  auto relay = AllocateWithChannel(*client, peer);
  ASSERT_TRUE(relay.has_value());
  EXPECT_EQ(backend_->node_state().total_allocations(), 1u);

  const std::vector<uint8_t> hello = {'h', 'e', 'l', 'l', 'o'};
  ASSERT_TRUE(peer.Send(*relay, hello));
  auto frame = client->ReadExact(12);
  ASSERT_TRUE(frame.has_value()) << "no ChannelData on the TLS stream";
  const std::vector<uint8_t> want = {0x40, 0x01, 0x00, 0x05, 'h', 'e', 'l', 'l', 'o', 0, 0, 0};
  EXPECT_EQ(*frame, want);
  const std::vector<uint8_t> world = {'w', 'o', 'r', 'l', 'd'};
  ASSERT_TRUE(client->Write(PaddedChannelData(kChannel, world)));
  auto d = peer.Receive();
  ASSERT_TRUE(d.has_value()) << "the peer got nothing";
  EXPECT_EQ(d->from, *relay);
  EXPECT_EQ(d->bytes, world);
  ExpectBindingSuccess(client->Transact(Method::kBinding), client->local());

  // close_notify ends the connection and the allocation with it.
  EXPECT_GE(SSL_shutdown(client->ssl()), 0);
  EXPECT_TRUE(WaitFor([&] { return backend_->node_state().total_allocations() == 0; }, 3000))
      << backend_->node_state().total_allocations();
  EXPECT_TRUE(WaitFor([&] { return backend_->node_state().stream_count() == 0; }, 3000));
  EXPECT_EQ(IoSum(&UringCounters::stream_closed_by_client), 1u);
  EXPECT_EQ(IoSum(&UringCounters::stream_tls_failures), 0u);
}

// Many ChannelData messages of assorted sizes in one write (over TLS: spread over records), so
// messages straddle receive buffers and records; and as many back from the peer.
TEST_F(StreamTransportTest, BulkChannelDataBothWaysOverTcpAndTls) {
  ASSERT_NO_FATAL_FAILURE(Start());
  constexpr int kMessages = 100;
  auto payload = [](int i) {
    std::vector<uint8_t> p(1 + (i * 37) % 1200);
    for (size_t j = 0; j < p.size(); ++j) p[j] = static_cast<uint8_t>(i * 11 + j);
    p[0] = static_cast<uint8_t>(i);
    return p;
  };
  for (bool tls : {false, true}) {
    SCOPED_TRACE(tls ? "TLS" : "TCP");
    auto client = tls ? Tls13() : Stream::Tcp(tcp_port_);
    ASSERT_NE(client, nullptr);
    UdpSocket peer;
    auto relay = AllocateWithChannel(*client, peer);
    ASSERT_TRUE(relay.has_value());

    std::vector<uint8_t> all;
    for (int i = 0; i < kMessages; ++i) {
      const std::vector<uint8_t> f = PaddedChannelData(kChannel, payload(i));
      all.insert(all.end(), f.begin(), f.end());
    }
    ASSERT_TRUE(client->Write(all));
    for (int i = 0; i < kMessages; ++i) {
      auto d = peer.Receive();
      ASSERT_TRUE(d.has_value()) << "peer got " << i << " of " << kMessages;
      ASSERT_EQ(d->bytes, payload(i)) << "message " << i;
    }

    for (int i = 0; i < kMessages; ++i) ASSERT_TRUE(peer.Send(*relay, payload(i)));
    for (int i = 0; i < kMessages; ++i) {
      auto f = client->ReadFrame();
      ASSERT_TRUE(f.has_value()) << "client got " << i << " of " << kMessages;
      const std::vector<uint8_t> want = PaddedChannelData(kChannel, payload(i));
      ASSERT_EQ(*f, want) << "message " << i;
    }
    ExpectBindingSuccess(client->Transact(Method::kBinding), client->local());
  }
  EXPECT_EQ(IoSum(&UringCounters::stream_framing_errors), 0u);
}

// ---------------------------------------------------------------------------------------------
// 5. Limits

TEST_F(StreamTransportTest, ConnectionsPerNodeAreCapped) {
  config_.stream_max_connections = 2;
  ASSERT_NO_FATAL_FAILURE(Start());
  auto c1 = Stream::Tcp(tcp_port_);
  ASSERT_NE(c1, nullptr);
  ExpectBindingSuccess(c1->Transact(Method::kBinding), c1->local());
  auto c2 = Tls13();
  ASSERT_NE(c2, nullptr);
  ExpectBindingSuccess(c2->Transact(Method::kBinding), c2->local());
  auto c3 = Stream::Tcp(tcp_port_);
  ASSERT_NE(c3, nullptr);
  EXPECT_TRUE(c3->WaitClosed(1000)) << "connection beyond stream_max_connections not closed";
  EXPECT_TRUE(WaitFor([&] { return IoSum(&UringCounters::stream_refused_total) == 1; }, 2000));
  EXPECT_EQ(IoSum(&UringCounters::stream_refused_per_ip), 0u);
  ExpectBindingSuccess(c1->Transact(Method::kBinding), c1->local());
  ExpectBindingSuccess(c2->Transact(Method::kBinding), c2->local());
}

TEST_F(StreamTransportTest, ConnectionsPerIpAreCapped) {
  config_.stream_max_per_ip = 2;
  ASSERT_NO_FATAL_FAILURE(Start());
  auto c1 = Stream::Tcp(tcp_port_);
  auto c2 = Stream::Tcp(tcp_port_);
  ASSERT_NE(c1, nullptr);
  ASSERT_NE(c2, nullptr);
  // Answered, so both were accepted before the third arrives.
  ExpectBindingSuccess(c1->Transact(Method::kBinding), c1->local());
  ExpectBindingSuccess(c2->Transact(Method::kBinding), c2->local());
  EXPECT_EQ(backend_->node_state().stream_count(), 2u);

  // TLS counts too: the third connection, whichever port, is closed at accept.
  auto c3 = Stream::Tcp(tcp_port_);
  ASSERT_NE(c3, nullptr);
  const auto t0 = Clock::now();
  EXPECT_TRUE(c3->WaitClosed(1000)) << "third connection from 127.0.0.1 not closed";
  EXPECT_LT(MsSince(t0), 1000);
  std::string error;
  auto t3 = Stream::Tls(tls_port_, TLS1_2_VERSION, TLS1_3_VERSION, &error);
  EXPECT_EQ(t3, nullptr) << "TLS connection beyond stream_max_per_ip was served";
  EXPECT_TRUE(WaitFor([&] { return IoSum(&UringCounters::stream_refused_per_ip) == 2; }, 2000))
      << IoSum(&UringCounters::stream_refused_per_ip);

  // The first two still answer.
  ExpectBindingSuccess(c1->Transact(Method::kBinding), c1->local());
  ExpectBindingSuccess(c2->Transact(Method::kBinding), c2->local());

  // Closing one frees its place.
  c1.reset();
  ASSERT_TRUE(WaitFor([&] { return backend_->node_state().stream_count() == 1; }, 2000));
  auto c4 = Stream::Tcp(tcp_port_);
  ASSERT_NE(c4, nullptr);
  ExpectBindingSuccess(c4->Transact(Method::kBinding), c4->local());
}

TEST_F(StreamTransportTest, HandshakeTimeoutClosesSilentTcpAndUnfinishedTlsConnections) {
  config_.stream_handshake_timeout = 1;
  ASSERT_NO_FATAL_FAILURE(Start());
  const uint64_t before = IoSum(&UringCounters::stream_handshake_timeouts);
  const auto t0 = Clock::now();
  auto silent = Stream::Tcp(tcp_port_);
  ASSERT_NE(silent, nullptr);
  // A TLS connection that starts a ClientHello and never finishes it.
  auto stalled = Stream::Tcp(tls_port_);
  ASSERT_NE(stalled, nullptr);
  const std::vector<uint8_t> partial_hello = {0x16, 0x03, 0x01, 0x02, 0x00,
                                              0x01, 0x00, 0x01, 0xfc, 0x03, 0x03};
  ASSERT_TRUE(stalled->Write(partial_hello));
  // A TCP client that sends its request at once is established and stays.
  auto live = Stream::Tcp(tcp_port_);
  ASSERT_NE(live, nullptr);
  ExpectBindingSuccess(live->Transact(Method::kBinding), live->local());

  EXPECT_TRUE(silent->WaitClosed(3500)) << "silent TCP connection still open";
  const int64_t silent_ms = MsSince(t0);
  EXPECT_TRUE(stalled->WaitClosed(std::max<int>(0, 3500 - static_cast<int>(MsSince(t0)))))
      << "unfinished TLS handshake still open";
  const int64_t stalled_ms = MsSince(t0);
  EXPECT_GE(silent_ms, 900);  // not before the timeout
  EXPECT_GE(stalled_ms, 900);
  EXPECT_LE(stalled_ms, 3500);
  EXPECT_TRUE(WaitFor([&] { return IoSum(&UringCounters::stream_handshake_timeouts) ==
                                   before + 2; }, 1000))
      << IoSum(&UringCounters::stream_handshake_timeouts);
  EXPECT_TRUE(live->Quiet());
  ExpectBindingSuccess(live->Transact(Method::kBinding), live->local());
}

TEST_F(StreamTransportTest, IdleTimeoutSparesConnectionsWithAnAllocation) {
  config_.stream_idle_timeout = 1;
  ASSERT_NO_FATAL_FAILURE(Start());
  UdpSocket peer;
  auto holder = Stream::Tcp(tcp_port_);
  ASSERT_NE(holder, nullptr);
  ASSERT_TRUE(AllocateWithChannel(*holder, peer).has_value());
  const auto held_since = Clock::now();

  auto idle = Stream::Tcp(tcp_port_);
  ASSERT_NE(idle, nullptr);
  ExpectBindingSuccess(idle->Transact(Method::kBinding), idle->local());
  const auto t0 = Clock::now();
  EXPECT_TRUE(idle->WaitClosed(4000)) << "idle connection still open";
  EXPECT_GE(MsSince(t0), 900);
  EXPECT_TRUE(WaitFor([&] { return IoSum(&UringCounters::stream_idle_timeouts) == 1; }, 1000))
      << IoSum(&UringCounters::stream_idle_timeouts);

  // The allocation holder has been silent for at least 3 s and is still there.
  const int64_t wait = 3100 - MsSince(held_since);
  SleepMs(wait);
  EXPECT_TRUE(holder->Quiet()) << "the connection holding an allocation was closed";
  ExpectBindingSuccess(holder->Transact(Method::kBinding), holder->local());
  EXPECT_EQ(backend_->node_state().total_allocations(), 1u);
  EXPECT_EQ(IoSum(&UringCounters::stream_idle_timeouts), 1u);
}

// ---------------------------------------------------------------------------------------------
// 6. Certificate reload

TEST_F(StreamTransportTest, CertificateReloadAppliesToNewConnectionsOnly) {
  ASSERT_NO_FATAL_FAILURE(Start());
  auto s1 = Tls13();
  ASSERT_NE(s1, nullptr);
  EXPECT_EQ(s1->PeerFingerprint(), cert_a_.fingerprint);
  ExpectBindingSuccess(s1->Transact(Method::kBinding), s1->local());

  auto b = MakeCert(dir_, "b", "turnpike-test-B", 2);
  ASSERT_TRUE(b.has_value()) << OpenSslErrors();
  ASSERT_NE(b->fingerprint, cert_a_.fingerprint);
  ServerConfig reload = config_;
  reload.cert_file = b->cert_file;
  reload.pkey_file = b->key_file;
  const absl::Status s = backend_->ReloadTls(reload);
  ASSERT_TRUE(s.ok()) << s;

  auto s2 = Tls13();
  ASSERT_NE(s2, nullptr);
  EXPECT_EQ(s2->PeerFingerprint(), b->fingerprint);
  ExpectBindingSuccess(s2->Transact(Method::kBinding), s2->local());
  // The session started on A keeps working.
  ExpectBindingSuccess(s1->Transact(Method::kBinding), s1->local());

  ServerConfig missing = config_;
  missing.cert_file = dir_ + "/missing.crt";
  missing.pkey_file = dir_ + "/missing.key";
  const absl::Status bad = backend_->ReloadTls(missing);
  EXPECT_FALSE(bad.ok());
  EXPECT_NE(std::string(bad.message()).find("missing.crt"), std::string::npos) << bad;

  std::string error;
  auto s3 = Stream::Tls(tls_port_, TLS1_2_VERSION, TLS1_2_VERSION, &error);
  ASSERT_NE(s3, nullptr) << error;
  EXPECT_EQ(s3->PeerFingerprint(), b->fingerprint);
  ExpectBindingSuccess(s3->Transact(Method::kBinding), s3->local());
  ExpectBindingSuccess(s1->Transact(Method::kBinding), s1->local());
}

// ---------------------------------------------------------------------------------------------
// 7. Slow reader

TEST_F(StreamTransportTest, SlowReaderDoesNotStallTheWorker) {
  config_.worker_threads = 1;  // the flooded client and the other one share the worker
  ASSERT_NO_FATAL_FAILURE(Start());
  UdpSocket peer;
  auto slow = Stream::Tcp(tcp_port_, /*rcvbuf=*/4096);
  ASSERT_NE(slow, nullptr);
  auto relay = AllocateWithChannel(*slow, peer);
  ASSERT_TRUE(relay.has_value());
  auto other = Stream::Tcp(tcp_port_);
  ASSERT_NE(other, nullptr);
  ExpectBindingSuccess(other->Transact(Method::kBinding), other->local());

  constexpr int kDatagrams = 20000;
  constexpr size_t kSize = 1000;
  std::atomic<bool> flood_done{false};
  std::thread flood([&] {
    std::vector<uint8_t> p(kSize, 0xAB);
    for (uint32_t i = 0; i < kDatagrams; ++i) {
      p[0] = static_cast<uint8_t>(i >> 24);
      p[1] = static_cast<uint8_t>(i >> 16);
      p[2] = static_cast<uint8_t>(i >> 8);
      p[3] = static_cast<uint8_t>(i);
      peer.Send(*relay, p);
    }
    flood_done = true;
  });
  // While the flood runs (and after), the other client is answered promptly.
  int answered = 0;
  int64_t worst_ms = 0;
  for (int i = 0; i < 10; ++i) {
    const auto t = Clock::now();
    auto r = other->Transact(Method::kBinding, {}, 1000);
    worst_ms = std::max(worst_ms, MsSince(t));
    ExpectBindingSuccess(r, other->local());
    if (r) ++answered;
    SleepMs(20);
  }
  flood.join();
  EXPECT_EQ(answered, 10);
  EXPECT_LT(worst_ms, 1000);

  // The flood exceeded what the slow client's buffers can hold: whole messages were dropped.
  EXPECT_TRUE(WaitFor([&] { return IoSum(&UringCounters::stream_tx_dropped) > 0; }, 2000))
      << "relayed " << EngineSum(&turn::EngineCounters::to_client_packets) << " datagrams";
  ExpectBindingSuccess(other->Transact(Method::kBinding, {}, 1000), other->local());

  // What the slow client does read is whole ChannelData messages, in order.
  int frames = 0;
  int64_t last = -1;
  bool in_order = true;
  for (;;) {
    auto f = slow->ReadFrame(500);
    if (!f) break;
    if (((*f)[0] & 0xC0) != 0x40) continue;  // a STUN response, not relayed data
    ASSERT_EQ(f->size(), 4 + kSize);
    ASSERT_EQ((*f)[0], 0x40);
    ASSERT_EQ((*f)[1], 0x01);
    ASSERT_EQ(size_t{(*f)[2]} << 8 | (*f)[3], kSize);
    const int64_t index = int64_t{(*f)[4]} << 24 | int64_t{(*f)[5]} << 16 |
                          int64_t{(*f)[6]} << 8 | (*f)[7];
    if (index <= last) in_order = false;
    last = index;
    ++frames;
  }
  RecordProperty("frames_read", frames);
  RecordProperty("tx_dropped", static_cast<int>(IoSum(&UringCounters::stream_tx_dropped)));
  RecordProperty("relayed", static_cast<int>(EngineSum(&turn::EngineCounters::to_client_packets)));
  RecordProperty("worst_binding_ms", static_cast<int>(worst_ms));
  EXPECT_GT(frames, 0);
  EXPECT_TRUE(in_order);
  EXPECT_LT(frames, kDatagrams);
  // Every datagram the engine relayed to the slow client was either delivered whole or
  // counted as dropped (the relay socket itself may drop more of the flood, uncounted here).
  EXPECT_EQ(uint64_t(frames) + IoSum(&UringCounters::stream_tx_dropped),
            EngineSum(&turn::EngineCounters::to_client_packets));
  // The slow client's connection survived and still works once it reads.
  ExpectBindingSuccess(slow->Transact(Method::kBinding), slow->local());
  EXPECT_EQ(IoSum(&UringCounters::streams), 2u);
}

}  // namespace
}  // namespace turnpike::dataplane
