// End-to-end error paths against the real turnpiked on loopback: a client built on the
// project's codec sends deliberately wrong requests and garbage, and checks each answer
// (RFC 8656 / RFC 8489 error codes) and that the server keeps serving. Forbidden peers are
// only named in CreatePermission / ChannelBind; no traffic is ever sent to them.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "turn/auth.h"
#include "turn/stun/message.h"

namespace turnpike {
namespace {

using stun::MessageBuilder;
using stun::MessageClass;
using stun::MessageView;
using stun::Method;
namespace attr = stun::attr;
using Clock = std::chrono::steady_clock;

constexpr char kSecret[] = "integration-secret";
constexpr char kRealm[] = "turnpike.test";
constexpr int kStaleNonceSeconds = 2;

// A port free on 127.0.0.1 for both UDP and TCP right now (turnpiked listens on both).
uint16_t FreeUdpPort() {
  for (int attempt = 0; attempt < 100; ++attempt) {
    int udp = socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(udp, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    socklen_t len = sizeof(a);
    getsockname(udp, reinterpret_cast<sockaddr*>(&a), &len);
    int tcp = socket(AF_INET, SOCK_STREAM, 0);
    const bool both = bind(tcp, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
    close(tcp);
    close(udp);
    if (both) return ntohs(a.sin_port);
  }
  return 0;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A UDP client socket on 127.0.0.1 talking to the server.
class Client {
 public:
  explicit Client(uint16_t server_port) {
    fd_ = socket(AF_INET, SOCK_DGRAM, 0);
    server_.sin_family = AF_INET;
    server_.sin_port = htons(server_port);
    server_.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connect(fd_, reinterpret_cast<sockaddr*>(&server_), sizeof(server_));
  }
  ~Client() { close(fd_); }

  void Send(std::span<const uint8_t> bytes) { send(fd_, bytes.data(), bytes.size(), 0); }

  std::optional<std::vector<uint8_t>> Receive(int timeout_ms) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, timeout_ms) <= 0) {
      return std::nullopt;
    }
    std::vector<uint8_t> buf(2048);
    ssize_t n = recv(fd_, buf.data(), buf.size(), 0);
    if (n < 0) {
      return std::nullopt;
    }
    buf.resize(static_cast<size_t>(n));
    return buf;
  }

  // Sends a request and waits for the response with the same transaction ID, retransmitting
  // a few times as a STUN client would (UDP on loopback rarely needs it).
  std::optional<std::vector<uint8_t>> Transact(std::span<const uint8_t> request) {
    for (int attempt = 0; attempt < 5; ++attempt) {
      Send(request);
      auto deadline = Clock::now() + std::chrono::milliseconds(500);
      while (Clock::now() < deadline) {
        auto reply = Receive(100);
        if (reply && reply->size() >= 20 &&
            std::memcmp(reply->data() + 8, request.data() + 8, 12) == 0) {
          return reply;
        }
      }
    }
    return std::nullopt;
  }

 private:
  int fd_;
  sockaddr_in server_{};
};

struct Creds {
  std::string username;
  std::array<uint8_t, 16> key;
};

Creds RestCreds(const std::string& secret = kSecret) {
  Creds c;
  c.username = std::to_string(::time(nullptr) + 3600) + ":it";
  c.key = stun::LongTermKeyMd5(c.username, kRealm,
                               turn::Authenticator::RestPassword(secret, c.username));
  return c;
}

class ErrorPathsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const char* binary = std::getenv("TURNPIKED");
    ASSERT_NE(binary, nullptr) << "set TURNPIKED to the turnpiked binary";
    port_ = FreeUdpPort();
    char dir_template[] = "/tmp/turnpike-it-XXXXXX";
    dir_ = mkdtemp(dir_template);
    log_path_ = dir_ + "/turnpiked.log";
    uint16_t min_port = static_cast<uint16_t>(30000 + (port_ % 200) * 100);
    std::vector<std::string> args = {
        binary,
        "--listening-ip=127.0.0.1",
        "--listening-port=" + std::to_string(port_),
        "--relay-ip=127.0.0.1",
        "--min-port=" + std::to_string(min_port),
        "--max-port=" + std::to_string(min_port + 99),
        "--use-auth-secret",
        std::string("--static-auth-secret=") + kSecret,
        std::string("--realm=") + kRealm,
        "--stale-nonce=" + std::to_string(kStaleNonceSeconds),
        "--worker-threads=2",
        "--drain-timeout=0",
        "--control-listen=off",
        "--log-file=" + log_path_,
        "--verbose",
    };
    pid_ = fork();
    if (pid_ == 0) {
      int null_fd = open("/dev/null", O_WRONLY);
      dup2(null_fd, STDOUT_FILENO);
      std::vector<char*> argv;
      for (auto& a : args) {
        argv.push_back(a.data());
      }
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    // Ready when it answers a Binding request.
    Client probe(port_);
    auto deadline = Clock::now() + std::chrono::seconds(20);
    bool ready = false;
    while (!ready && Clock::now() < deadline) {
      std::vector<uint8_t> buf(64);
      stun::TransactionId tid{9, 9, 9};
      MessageBuilder b(buf, Method::kBinding, MessageClass::kRequest, tid.data());
      buf.resize(b.size());
      probe.Send(buf);
      ready = probe.Receive(200).has_value();
      int status = 0;
      ASSERT_EQ(waitpid(pid_, &status, WNOHANG), 0) << "turnpiked exited during start-up:\n"
                                                    << ReadFile(log_path_);
    }
    ASSERT_TRUE(ready) << "turnpiked did not answer within 20 s:\n" << ReadFile(log_path_);
  }

  static void TearDownTestSuite() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }

  std::vector<uint8_t> Build(Method method, const std::function<void(MessageBuilder&)>& fill,
                             const Creds* creds, const std::string& nonce,
                             stun::TransactionId* tid_out = nullptr) {
    std::vector<uint8_t> buf(1024);
    stun::TransactionId tid;
    for (auto& b : tid) {
      b = static_cast<uint8_t>(rng_());
    }
    if (tid_out != nullptr) {
      *tid_out = tid;
    }
    MessageBuilder b(buf, method, MessageClass::kRequest, tid.data());
    fill(b);
    if (creds != nullptr) {
      b.AddString(attr::kUsername, creds->username);
      b.AddString(attr::kRealm, kRealm);
      b.AddString(attr::kNonce, nonce);
      b.AddMessageIntegrity(creds->key);
    }
    b.AddFingerprint();
    buf.resize(b.size());
    return buf;
  }

  static void Udp(MessageBuilder& b) { b.AddU32(attr::kRequestedTransport, 17u << 24); }

  // Returns the error code of the reply, 0 for success, -1 for no reply.
  int Code(const std::optional<std::vector<uint8_t>>& reply) {
    if (!reply) {
      return -1;
    }
    auto msg = MessageView::Parse(*reply, nullptr);
    if (!msg) {
      return -2;
    }
    if (msg->message_class() == MessageClass::kSuccessResponse) {
      return 0;
    }
    return msg->FindErrorCode().value_or(-3);
  }

  std::string GetNonce(Client& c) {
    auto reply = c.Transact(Build(Method::kAllocate, Udp, nullptr, ""));
    EXPECT_EQ(Code(reply), 401);
    if (!reply) {
      return "";
    }
    auto msg = MessageView::Parse(*reply, nullptr);
    return std::string(msg->FindString(attr::kNonce).value_or(""));
  }

  static inline pid_t pid_ = -1;
  static inline uint16_t port_ = 0;
  static inline std::string dir_;
  static inline std::string log_path_;
  std::mt19937 rng_{std::random_device{}()};
};

TEST_F(ErrorPathsTest, WrongMessageIntegrityIs401) {
  Client c(port_);
  std::string nonce = GetNonce(c);
  Creds bad = RestCreds("not-the-secret");
  auto reply = c.Transact(Build(Method::kAllocate, Udp, &bad, nonce));
  EXPECT_EQ(Code(reply), 401);
  auto msg = MessageView::Parse(*reply, nullptr);
  EXPECT_FALSE(msg->HasMessageIntegrity());
  EXPECT_TRUE(msg->Has(attr::kNonce));
}

TEST_F(ErrorPathsTest, StaleNonceIs438) {
  Client c(port_);
  std::string nonce = GetNonce(c);
  Creds creds = RestCreds();
  // While the nonce is fresh a Refresh without allocation is 437; once it has aged past
  // stale-nonce, the same request is 438. Poll until then (bounded).
  EXPECT_EQ(Code(c.Transact(Build(Method::kRefresh, [](MessageBuilder&) {}, &creds, nonce))),
            437);
  auto deadline = Clock::now() + std::chrono::seconds(kStaleNonceSeconds + 10);
  int code = 437;
  while (code == 437 && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
    code = Code(c.Transact(Build(Method::kRefresh, [](MessageBuilder&) {}, &creds, nonce)));
  }
  EXPECT_EQ(code, 438);
}

TEST_F(ErrorPathsTest, UnsupportedTransportIs442) {
  Client c(port_);
  std::string nonce = GetNonce(c);
  Creds creds = RestCreds();
  auto tcp = [](MessageBuilder& b) { b.AddU32(attr::kRequestedTransport, 6u << 24); };
  EXPECT_EQ(Code(c.Transact(Build(Method::kAllocate, tcp, &creds, nonce))), 442);
}

TEST_F(ErrorPathsTest, ForbiddenPeersAre403AndMismatchIs437) {
  Client c(port_);
  std::string nonce = GetNonce(c);
  Creds creds = RestCreds();
  auto reply = c.Transact(Build(Method::kAllocate, Udp, &creds, nonce));
  ASSERT_EQ(Code(reply), 0);
  auto msg = MessageView::Parse(*reply, nullptr);
  EXPECT_TRUE(msg->CheckMessageIntegrity(creds.key));
  auto relay = msg->FindXorAddress(attr::kXorRelayedAddress);
  ASSERT_TRUE(relay.has_value());
  EXPECT_EQ(relay->ip.ToString(), "127.0.0.1");

  for (const char* peer : {"127.0.0.1:5000", "10.0.0.1:5000", "169.254.169.254:80",
                           "192.168.0.1:5000", "172.16.0.1:5000", "100.64.0.1:5000",
                           "224.0.0.251:5353", "0.0.0.0:1"}) {
    SCOPED_TRACE(peer);
    auto addr = *SocketAddress::Parse(peer);
    EXPECT_EQ(Code(c.Transact(Build(
                  Method::kCreatePermission,
                  [&](MessageBuilder& b) { b.AddXorAddress(attr::kXorPeerAddress, addr); },
                  &creds, nonce))),
              403);
    EXPECT_EQ(Code(c.Transact(Build(
                  Method::kChannelBind,
                  [&](MessageBuilder& b) {
                    b.AddU32(attr::kChannelNumber, 0x4000u << 16);
                    b.AddXorAddress(attr::kXorPeerAddress, addr);
                  },
                  &creds, nonce))),
              403);
  }
  // A second Allocate on the same 5-tuple (new transaction) is an allocation mismatch.
  EXPECT_EQ(Code(c.Transact(Build(Method::kAllocate, Udp, &creds, nonce))), 437);
  // Clean up.
  EXPECT_EQ(Code(c.Transact(Build(Method::kRefresh,
                                  [](MessageBuilder& b) { b.AddU32(attr::kLifetime, 0); },
                                  &creds, nonce))),
            0);
}

TEST_F(ErrorPathsTest, MalformedDatagramsAreDroppedAndServerKeepsServing) {
  Client c(port_);
  std::mt19937 rng(1234);
  // Random garbage, truncated STUN, STUN with lying lengths, ChannelData without allocation.
  std::vector<uint8_t> request = Build(Method::kAllocate, Udp, nullptr, "");
  for (int i = 0; i < 300; ++i) {
    std::vector<uint8_t> junk(1 + rng() % 200);
    for (auto& b : junk) {
      b = static_cast<uint8_t>(rng());
    }
    c.Send(junk);
    std::vector<uint8_t> cut(request.begin(), request.begin() + (rng() % request.size()));
    c.Send(cut);
    std::vector<uint8_t> lying = request;
    lying[3] = static_cast<uint8_t>(lying[3] + 4);
    c.Send(lying);
    std::vector<uint8_t> cd = {0x40, 0x00, 0x00, 0x04, 1, 2, 3, 4};
    c.Send(cd);
  }
  // None of that gets an answer...
  int answers = 0;
  while (auto reply = c.Receive(300)) {
    ++answers;
  }
  // ... except the truncations that happen to cut at a valid boundary: none do, since the
  // header length must match the datagram. So no answer at all.
  EXPECT_EQ(answers, 0);
  // And the server still works.
  auto reply = c.Transact(Build(Method::kBinding, [](MessageBuilder&) {}, nullptr, ""));
  EXPECT_EQ(Code(reply), 0);
  int status = 0;
  EXPECT_EQ(waitpid(pid_, &status, WNOHANG), 0) << "turnpiked died";
}

// Runs last (gtest keeps file order): SIGTERM stops the daemon cleanly, and the counters it
// logs on exit account for the garbage sent above.
TEST_F(ErrorPathsTest, ZzSigtermStopsCleanlyAndCountsDrops) {
  ASSERT_GT(pid_, 0);
  ASSERT_EQ(kill(pid_, SIGTERM), 0);
  int status = 0;
  auto deadline = Clock::now() + std::chrono::seconds(15);
  pid_t done = 0;
  while (done == 0 && Clock::now() < deadline) {
    done = waitpid(pid_, &status, WNOHANG);
    if (done == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  ASSERT_EQ(done, pid_) << "turnpiked did not exit within 15 s of SIGTERM";
  pid_ = -1;
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  std::string log = ReadFile(log_path_);
  // The exit summary line: "... drops: malformed=N ..." with N >= 600 (garbage + truncated
  // + lying-length datagrams above; random garbage may look like ChannelData instead).
  auto at = log.find("malformed=");
  ASSERT_NE(at, std::string::npos) << log;
  long malformed = std::strtol(log.c_str() + at + 10, nullptr, 10);
  EXPECT_GE(malformed, 600) << log;
}

}  // namespace
}  // namespace turnpike
