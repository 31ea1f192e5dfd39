// Logging setup: one spdlog logger, made the process default, writing text or JSON lines to a
// file, stdout, stderr or syslog. Control-path only: workers never log per packet.
//
//   text: 2024-05-01T12:00:00.123456Z info relay started on 0.0.0.0:3478
//   json: {"ts":"2024-05-01T12:00:00.123456Z","level":"info","msg":"relay started ..."}
//
// The file sink is our own (not spdlog's basic_file_sink) so that SIGHUP can reopen the file
// under the sink's own mutex after logrotate renamed it, and so that a file we cannot open is an
// absl::Status rather than a spdlog exception.

#include "control/log.h"

#include <fcntl.h>
#include <syslog.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <iterator>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "spdlog/pattern_formatter.h"
#include "spdlog/sinks/base_sink.h"
#include "spdlog/sinks/stdout_sinks.h"
#include "spdlog/sinks/syslog_sink.h"
#include "spdlog/spdlog.h"

namespace turnpike {
namespace {

// "2024-05-01T12:00:00.123456Z": UTC with microseconds, so lines from several nodes sort.
void AppendTimestamp(spdlog::log_clock::time_point tp, spdlog::memory_buf_t& dest) {
  auto since_epoch = tp.time_since_epoch();
  auto secs = std::chrono::duration_cast<std::chrono::seconds>(since_epoch);
  auto micros = std::chrono::duration_cast<std::chrono::microseconds>(since_epoch - secs);
  std::time_t t = secs.count();
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[40];
  int n = std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900,
                        tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                        static_cast<int>(micros.count()));
  dest.append(buf, buf + n);
}

void Append(spdlog::memory_buf_t& dest, std::string_view s) {
  dest.append(s.data(), s.data() + s.size());
}

std::string_view LevelName(spdlog::level::level_enum level) {
  auto name = spdlog::level::to_string_view(level);
  return {name.data(), name.size()};
}

std::string_view Payload(const spdlog::details::log_msg& msg) {
  return {msg.payload.data(), msg.payload.size()};
}

// Length of the valid UTF-8 sequence at the start of `s`, or 0 when it is not one (overlong
// forms, surrogates and code points past U+10FFFF are invalid, RFC 3629).
size_t Utf8SequenceLength(std::string_view s) {
  auto b = [&s](size_t i) { return static_cast<uint8_t>(s[i]); };
  uint8_t c = b(0);
  size_t len = 0;
  uint32_t cp = 0;
  if (c >= 0xc2 && c <= 0xdf) {
    len = 2;
    cp = c & 0x1f;
  } else if (c >= 0xe0 && c <= 0xef) {
    len = 3;
    cp = c & 0x0f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    len = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (s.size() < len) {
    return 0;
  }
  for (size_t i = 1; i < len; ++i) {
    if ((b(i) & 0xc0) != 0x80) {
      return 0;
    }
    cp = (cp << 6) | (b(i) & 0x3f);
  }
  if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
      (len == 4 && (cp < 0x10000 || cp > 0x10ffff))) {
    return 0;
  }
  return len;
}

// A JSON string body (RFC 8259 7): quotes, backslashes and control characters escaped; bytes
// that are not valid UTF-8 (a username copied from a packet, say) become U+FFFD so that every
// line stays parseable.
void AppendJsonString(std::string_view s, spdlog::memory_buf_t& dest) {
  static constexpr char kHex[] = "0123456789abcdef";
  size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<uint8_t>(s[i]);
    if (c >= 0x80) {
      size_t len = Utf8SequenceLength(s.substr(i));
      if (len == 0) {
        Append(dest, "\\ufffd");
        ++i;
      } else {
        Append(dest, s.substr(i, len));
        i += len;
      }
      continue;
    }
    switch (c) {
      case '"':
        Append(dest, "\\\"");
        break;
      case '\\':
        Append(dest, "\\\\");
        break;
      case '\n':
        Append(dest, "\\n");
        break;
      case '\r':
        Append(dest, "\\r");
        break;
      case '\t':
        Append(dest, "\\t");
        break;
      case '\b':
        Append(dest, "\\b");
        break;
      case '\f':
        Append(dest, "\\f");
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char esc[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xf]};
          dest.append(esc, esc + 6);
        } else {
          dest.push_back(static_cast<char>(c));
        }
    }
    ++i;
  }
}

class TextFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    AppendTimestamp(msg.time, dest);
    dest.push_back(' ');
    Append(dest, LevelName(msg.level));
    dest.push_back(' ');
    Append(dest, Payload(msg));
    dest.push_back('\n');
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<TextFormatter>();
  }
};

class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    Append(dest, "{\"ts\":\"");
    AppendTimestamp(msg.time, dest);
    Append(dest, "\",\"level\":\"");
    Append(dest, LevelName(msg.level));
    Append(dest, "\",\"msg\":\"");
    AppendJsonString(Payload(msg), dest);
    Append(dest, "\"}\n");
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>();
  }
};

// Appends to a file; Reopen() swaps in a freshly opened file under the sink's own mutex, so a
// line being written from another thread goes wholly to the old file or wholly to the new one.
class ReopenableFileSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  static absl::StatusOr<std::shared_ptr<ReopenableFileSink>> Open(std::string path) {
    FILE* f = OpenFile(path);
    if (f == nullptr) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot open log file '", path, "': ", std::strerror(errno)));
    }
    return std::shared_ptr<ReopenableFileSink>(new ReopenableFileSink(std::move(path), f));
  }

  ~ReopenableFileSink() override {
    if (file_ != nullptr) {
      std::fclose(file_);
    }
  }

  absl::Status Reopen() {
    // Open outside the lock: only the pointer swap needs it.
    FILE* fresh = OpenFile(path_);
    if (fresh == nullptr) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot reopen log file '", path_, "': ", std::strerror(errno)));
    }
    FILE* old = nullptr;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      // Flush under the lock: a buffer left in the old stream could end in half a line, and
      // closing it later would append that half after lines the new stream wrote (same file
      // when it was not renamed), tearing a line in two.
      std::fflush(file_);
      old = file_;
      file_ = fresh;
    }
    std::fclose(old);
    return absl::OkStatus();
  }

  const std::string& path() const { return path_; }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t buf;
    formatter_->format(msg, buf);
    std::fwrite(buf.data(), 1, buf.size(), file_);
  }
  void flush_() override { std::fflush(file_); }

 private:
  ReopenableFileSink(std::string path, FILE* f) : path_(std::move(path)), file_(f) {}

  static FILE* OpenFile(const std::string& path) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0) {
      return nullptr;
    }
    FILE* f = ::fdopen(fd, "a");
    if (f == nullptr) {
      int saved = errno;
      ::close(fd);
      errno = saved;
    }
    return f;
  }

  const std::string path_;
  FILE* file_;  // guarded by mutex_ (base_sink's)
};

std::mutex g_sink_mu;
std::shared_ptr<ReopenableFileSink> g_file_sink;  // guarded by g_sink_mu; null unless a file

std::unique_ptr<spdlog::formatter> MakeFormatter(LogFormat format) {
  if (format == LogFormat::kJson) {
    return std::make_unique<JsonFormatter>();
  }
  return std::make_unique<TextFormatter>();
}

}  // namespace

absl::Status SetupLogging(const ServerConfig& config) {
  std::shared_ptr<spdlog::sinks::sink> sink;
  std::shared_ptr<ReopenableFileSink> file_sink;
  const std::string& target = config.log_file;
  if (target.empty() || target == "stderr") {
    sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  } else if (target == "stdout" || target == "-") {
    sink = std::make_shared<spdlog::sinks::stdout_sink_mt>();
  } else if (target == "syslog") {
    // syslog stamps time and priority itself; JSON keeps its whole line for log shippers.
    bool json = config.log_format == LogFormat::kJson;
    sink = std::make_shared<spdlog::sinks::syslog_sink_mt>("turnpiked", LOG_PID, LOG_DAEMON,
                                                           /*enable_formatting=*/json);
  } else {
    auto opened = ReopenableFileSink::Open(target);
    if (!opened.ok()) {
      return opened.status();
    }
    file_sink = *opened;
    sink = file_sink;
  }

  auto logger = std::make_shared<spdlog::logger>("turnpiked", std::move(sink));
  logger->set_formatter(MakeFormatter(config.log_format));
  logger->set_level(config.verbose ? spdlog::level::debug : spdlog::level::info);
  logger->flush_on(spdlog::level::warn);
  {
    std::lock_guard<std::mutex> lock(g_sink_mu);
    g_file_sink = std::move(file_sink);
  }
  spdlog::set_default_logger(std::move(logger));
  spdlog::flush_every(std::chrono::seconds(1));
  return absl::OkStatus();
}

void ReopenLogFile() {
  std::shared_ptr<ReopenableFileSink> sink;
  {
    std::lock_guard<std::mutex> lock(g_sink_mu);
    sink = g_file_sink;
  }
  if (sink == nullptr) {
    return;
  }
  absl::Status st = sink->Reopen();
  if (!st.ok()) {
    // Keeps writing to the old (renamed) file: losing the log is worse than a stale name.
    spdlog::error("{}", std::string(st.message()));
  } else {
    spdlog::info("reopened log file {}", sink->path());
  }
}

}  // namespace turnpike
