// OpenSSL glue for TURN over TLS; see tls_session.h.
#include "dataplane/tls/tls_session.h"

#include <openssl/err.h>
#include <openssl/x509.h>

#include <cstring>

#include "absl/strings/str_format.h"

namespace turnpike::dataplane {
namespace {

std::string OpenSslError() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

int PasswordCallback(char* buf, int size, int /*rwflag*/, void* userdata) {
  const auto* password = static_cast<const std::string*>(userdata);
  if (password == nullptr || password->size() > static_cast<size_t>(size)) return 0;
  std::memcpy(buf, password->data(), password->size());
  return static_cast<int>(password->size());
}

}  // namespace

absl::StatusOr<SslCtxPtr> BuildServerContext(const ServerConfig& config) {
  if (config.cert_file.empty()) {
    return absl::InvalidArgumentError("TLS needs a certificate: set cert= (and pkey=)");
  }
  ERR_clear_error();
  SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()), SslCtxFree{});
  if (ctx == nullptr) return absl::InternalError("SSL_CTX_new: " + OpenSslError());
  SSL_CTX_set_min_proto_version(ctx.get(), config.no_tlsv1_2 ? TLS1_3_VERSION : TLS1_2_VERSION);
  // No renegotiation (a client-driven CPU sink), no compression; release idle buffers, since a
  // node holds thousands of mostly idle connections.
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                     SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_RELEASE_BUFFERS);
  if (!config.cipher_list.empty() &&
      SSL_CTX_set_cipher_list(ctx.get(), config.cipher_list.c_str()) != 1) {
    return absl::InvalidArgumentError(
        absl::StrFormat("cipher-list '%s' selects no cipher: %s", config.cipher_list,
                        OpenSslError()));
  }
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), config.cert_file.c_str()) != 1) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "cannot load the certificate chain from cert=%s (a PEM file, leaf first, readable by "
        "this user): %s",
        config.cert_file, OpenSslError()));
  }
  const std::string& key_file = config.pkey_file.empty() ? config.cert_file : config.pkey_file;
  std::string password = config.pkey_password;
  SSL_CTX_set_default_passwd_cb(ctx.get(), PasswordCallback);
  SSL_CTX_set_default_passwd_cb_userdata(ctx.get(), &password);
  const int key_ok = SSL_CTX_use_PrivateKey_file(ctx.get(), key_file.c_str(), SSL_FILETYPE_PEM);
  SSL_CTX_set_default_passwd_cb_userdata(ctx.get(), nullptr);  // `password` dies here
  if (key_ok != 1) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "cannot load the private key from pkey=%s (PEM; an encrypted key needs pkey-pwd): %s",
        key_file, OpenSslError()));
  }
  if (SSL_CTX_check_private_key(ctx.get()) != 1) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "the private key in %s does not match the certificate in %s", key_file,
        config.cert_file));
  }
  return ctx;
}

absl::StatusOr<std::unique_ptr<TlsContext>> TlsContext::Create(const ServerConfig& config) {
  absl::StatusOr<SslCtxPtr> ctx = BuildServerContext(config);
  if (!ctx.ok()) return ctx.status();
  std::unique_ptr<TlsContext> out(new TlsContext());
  out->ctx_ = *std::move(ctx);
  return out;
}

absl::Status TlsContext::Reload(const ServerConfig& config) {
  absl::StatusOr<SslCtxPtr> ctx = BuildServerContext(config);
  if (!ctx.ok()) return ctx.status();
  std::lock_guard lock(mu_);
  ctx_ = *std::move(ctx);
  return absl::OkStatus();
}

SslCtxPtr TlsContext::Get() const {
  std::lock_guard lock(mu_);
  return ctx_;
}

std::string TlsContext::Describe() const {
  SslCtxPtr ctx = Get();
  X509* cert = SSL_CTX_get0_certificate(ctx.get());
  if (cert == nullptr) return "no certificate";
  char subject[256] = {};
  X509_NAME_oneline(X509_get_subject_name(cert), subject, sizeof(subject));
  std::string not_after;
  if (BIO* bio = BIO_new(BIO_s_mem())) {
    ASN1_TIME_print(bio, X509_get0_notAfter(cert));
    char buf[64] = {};
    const int n = BIO_read(bio, buf, sizeof(buf) - 1);
    if (n > 0) not_after.assign(buf, static_cast<size_t>(n));
    BIO_free(bio);
  }
  return absl::StrFormat("%s, valid until %s", subject, not_after);
}

TlsSession::TlsSession(SSL_CTX* ctx) {
  ssl_ = SSL_new(ctx);
  if (ssl_ == nullptr) return;
  rbio_ = BIO_new(BIO_s_mem());
  wbio_ = BIO_new(BIO_s_mem());
  if (rbio_ == nullptr || wbio_ == nullptr) {
    BIO_free(rbio_);
    BIO_free(wbio_);
    SSL_free(ssl_);
    ssl_ = nullptr;
    return;
  }
  BIO_set_mem_eof_return(rbio_, -1);  // an empty read BIO means "want more", not EOF
  SSL_set_bio(ssl_, rbio_, wbio_);
  SSL_set_accept_state(ssl_);
}

TlsSession::~TlsSession() {
  if (ssl_ != nullptr) SSL_free(ssl_);  // frees both BIOs
}

void TlsSession::SetError() { error_ = OpenSslError(); }

void TlsSession::DrainOut(std::vector<uint8_t>* out) {
  const size_t pending = BIO_ctrl_pending(wbio_);
  if (pending == 0) return;
  const size_t at = out->size();
  out->resize(at + pending);
  const int n = BIO_read(wbio_, out->data() + at, static_cast<int>(pending));
  out->resize(at + (n > 0 ? static_cast<size_t>(n) : 0));
}

TlsSession::Result TlsSession::Receive(std::span<const uint8_t> ciphertext,
                                       std::span<uint8_t> scratch, std::vector<uint8_t>* out,
                                       absl::FunctionRef<void(std::span<const uint8_t>)> on_plain) {
  if (ssl_ == nullptr) return Result::kFailed;
  ERR_clear_error();
  if (!ciphertext.empty() &&
      BIO_write(rbio_, ciphertext.data(), static_cast<int>(ciphertext.size())) !=
          static_cast<int>(ciphertext.size())) {
    SetError();
    return Result::kFailed;
  }
  if (!handshake_done_) {
    const int r = SSL_do_handshake(ssl_);
    if (r != 1) {
      const int err = SSL_get_error(ssl_, r);
      DrainOut(out);  // a handshake alert still goes out
      if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return Result::kOk;
      SetError();
      return Result::kFailed;
    }
    handshake_done_ = true;
  }
  for (;;) {
    const int n = SSL_read(ssl_, scratch.data(), static_cast<int>(scratch.size()));
    if (n > 0) {
      on_plain(scratch.first(static_cast<size_t>(n)));
      continue;
    }
    const int err = SSL_get_error(ssl_, n);
    DrainOut(out);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return Result::kOk;
    if (err == SSL_ERROR_ZERO_RETURN) return Result::kClosed;
    SetError();
    return Result::kFailed;
  }
}

bool TlsSession::Send(std::span<const uint8_t> plaintext, std::vector<uint8_t>* out) {
  if (ssl_ == nullptr || !handshake_done_) return false;
  ERR_clear_error();
  const int n = SSL_write(ssl_, plaintext.data(), static_cast<int>(plaintext.size()));
  DrainOut(out);
  if (n != static_cast<int>(plaintext.size())) {
    SetError();
    return false;
  }
  return true;
}

}  // namespace turnpike::dataplane
