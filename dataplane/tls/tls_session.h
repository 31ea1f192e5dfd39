// TLS for TURN over TLS (RFC 8656 3.1), server side, on OpenSSL 3 with memory BIOs: the I/O
// backend owns the socket and its io_uring reads and writes; OpenSSL only transforms bytes.
//
//   recv() ciphertext --> TlsSession::Receive --> plaintext --> StreamFramer --> Engine
//   Engine TxDesc --> TlsSession::Send --> ciphertext appended to the connection's send buffer
//
// TlsContext holds the SSL_CTX (certificate, key, versions, ciphers). Reload() builds a new one
// from the files and swaps it in for connections accepted afterwards; a session keeps the
// context it started with (SSL_new takes a reference), so a reload drops no session.
#pragma once

#include <openssl/ssl.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "turn/config.h"

namespace turnpike::dataplane {

struct SslCtxFree {
  void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};
using SslCtxPtr = std::shared_ptr<SSL_CTX>;

class TlsContext {
 public:
  // Loads cert_file / pkey_file (pkey_password, cipher_list, no_tlsv1_2) from `config`.
  // Errors name the file and OpenSSL's reason.
  static absl::StatusOr<std::unique_ptr<TlsContext>> Create(const ServerConfig& config);

  // Re-reads the files named in `config`. On error the current context stays in use.
  absl::Status Reload(const ServerConfig& config);
  // The context for a new connection. Thread-safe (a mutex; accept path only).
  SslCtxPtr Get() const;
  // Subject of the loaded leaf certificate and its notAfter, for the start-up log.
  std::string Describe() const;

 private:
  TlsContext() = default;
  mutable std::mutex mu_;
  SslCtxPtr ctx_ ABSL_GUARDED_BY(mu_);
};

// Builds a server SSL_CTX (TLS 1.2 and 1.3; 1.3 only with no_tlsv1_2).
absl::StatusOr<SslCtxPtr> BuildServerContext(const ServerConfig& config);

// One connection's TLS state machine over memory BIOs.
class TlsSession {
 public:
  enum class Result : uint8_t {
    kOk,      // keep going (handshake in progress, or plaintext delivered)
    kClosed,  // the client sent close_notify
    kFailed,  // handshake failure or a bad record: close the connection
  };

  explicit TlsSession(SSL_CTX* ctx);
  ~TlsSession();
  TlsSession(const TlsSession&) = delete;
  TlsSession& operator=(const TlsSession&) = delete;

  bool ok() const { return ssl_ != nullptr; }
  bool handshake_done() const { return handshake_done_; }

  // Consumes ciphertext from the socket. Plaintext goes to `on_plain` in chunks that live in
  // `scratch` until the callback returns; ciphertext OpenSSL wants sent (handshake messages,
  // session tickets, alerts) is appended to `out`.
  Result Receive(std::span<const uint8_t> ciphertext, std::span<uint8_t> scratch,
                 std::vector<uint8_t>* out,
                 absl::FunctionRef<void(std::span<const uint8_t>)> on_plain);
  // Encrypts `plaintext` (one TLS record) and appends it to `out`. False before the handshake
  // is done or on failure.
  bool Send(std::span<const uint8_t> plaintext, std::vector<uint8_t>* out);
  // OpenSSL's reason for the last failure (for a debug log line).
  const std::string& error() const { return error_; }

 private:
  void DrainOut(std::vector<uint8_t>* out);
  void SetError();

  SSL* ssl_ = nullptr;
  BIO* rbio_ = nullptr;  // owned by ssl_
  BIO* wbio_ = nullptr;  // owned by ssl_
  bool handshake_done_ = false;
  std::string error_;
};

}  // namespace turnpike::dataplane
