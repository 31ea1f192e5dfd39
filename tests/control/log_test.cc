// Tests for logging setup (control/log.h): text and JSON line formats, JSON escaping, levels,
// and reopening the log file after logrotate renamed it.

#include "control/log.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "spdlog/spdlog.h"

namespace turnpike {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class LogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir_template[] = "/tmp/turnpike_log_test.XXXXXX";
    dir_ = mkdtemp(dir_template);
    path_ = dir_ + "/turnpiked.log";
  }
  void TearDown() override {
    // Back to stderr so the file can go.
    ASSERT_TRUE(SetupLogging(ServerConfig{}).ok());
    std::remove(path_.c_str());
    std::remove((path_ + ".1").c_str());
    rmdir(dir_.c_str());
  }

  static std::string ReadAll(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  static std::vector<std::string> Lines(const std::string& text) {
    std::vector<std::string> out = absl::StrSplit(text, '\n', absl::SkipEmpty());
    return out;
  }

  ServerConfig FileConfig(LogFormat format) {
    ServerConfig c;
    c.log_file = path_;
    c.log_format = format;
    return c;
  }

  std::string dir_;
  std::string path_;
};

// A minimal JSON reader for one flat object of string values: enough to prove a line parses
// and to read its fields back, decoding every escape RFC 8259 allows.
std::optional<std::map<std::string, std::string>> ParseFlatJson(std::string_view s) {
  size_t i = 0;
  auto skip_ws = [&] {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) {
      ++i;
    }
  };
  auto read_string = [&]() -> std::optional<std::string> {
    if (i >= s.size() || s[i] != '"') {
      return std::nullopt;
    }
    ++i;
    std::string out;
    while (i < s.size() && s[i] != '"') {
      auto c = static_cast<unsigned char>(s[i]);
      if (c < 0x20) return std::nullopt;  // raw control characters are invalid JSON
      if (c != '\\') {
        out.push_back(static_cast<char>(c));
        ++i;
        continue;
      }
      if (++i >= s.size()) {
        return std::nullopt;
      }
      char e = s[i++];
      switch (e) {
        case '"':
          out.push_back('"');
          break;
        case '\\':
          out.push_back('\\');
          break;
        case '/':
          out.push_back('/');
          break;
        case 'n':
          out.push_back('\n');
          break;
        case 'r':
          out.push_back('\r');
          break;
        case 't':
          out.push_back('\t');
          break;
        case 'b':
          out.push_back('\b');
          break;
        case 'f':
          out.push_back('\f');
          break;
        case 'u': {
          if (i + 4 > s.size()) {
            return std::nullopt;
          }
          unsigned cp = std::stoul(std::string(s.substr(i, 4)), nullptr, 16);
          i += 4;
          if (cp < 0x80) {
            out.push_back(static_cast<char>(cp));
          } else if (cp < 0x800) {
            out.push_back(static_cast<char>(0xc0 | (cp >> 6)));
            out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
          } else {
            out.push_back(static_cast<char>(0xe0 | (cp >> 12)));
            out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
            out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
          }
          break;
        }
        default:
          return std::nullopt;
      }
    }
    if (i >= s.size()) {
      return std::nullopt;
    }
    ++i;
    return out;
  };
  std::map<std::string, std::string> fields;
  skip_ws();
  if (i >= s.size() || s[i++] != '{') {
    return std::nullopt;
  }
  for (;;) {
    skip_ws();
    auto key = read_string();
    if (!key) {
      return std::nullopt;
    }
    skip_ws();
    if (i >= s.size() || s[i++] != ':') {
      return std::nullopt;
    }
    skip_ws();
    auto value = read_string();
    if (!value) {
      return std::nullopt;
    }
    fields[*key] = *value;
    skip_ws();
    if (i < s.size() && s[i] == ',') {
      ++i;
      continue;
    }
    if (i < s.size() && s[i] == '}') {
      ++i;
      break;
    }
    return std::nullopt;
  }
  skip_ws();
  if (i != s.size()) {
    return std::nullopt;
  }
  return fields;
}

const std::regex kTimestamp(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z)");

TEST_F(LogTest, TextLinesHaveUtcTimestampLevelAndMessage) {
  ASSERT_TRUE(SetupLogging(FileConfig(LogFormat::kText)).ok());
  spdlog::info("hello {}", 42);
  spdlog::debug("not shown without verbose");
  spdlog::default_logger()->flush();
  auto lines = Lines(ReadAll(path_));
  ASSERT_EQ(lines.size(), 1u) << ReadAll(path_);
  std::smatch m;
  ASSERT_TRUE(std::regex_match(lines[0], m, std::regex(R"((\S+) info hello 42)"))) << lines[0];
  EXPECT_TRUE(std::regex_match(m[1].str(), kTimestamp)) << m[1];
}

TEST_F(LogTest, VerboseEnablesDebug) {
  ServerConfig c = FileConfig(LogFormat::kText);
  c.verbose = true;
  ASSERT_TRUE(SetupLogging(c).ok());
  spdlog::debug("debug line");
  spdlog::default_logger()->flush();
  EXPECT_THAT(ReadAll(path_), HasSubstr(" debug debug line"));
}

TEST_F(LogTest, JsonLinesParseBackWithEscaping) {
  ASSERT_TRUE(SetupLogging(FileConfig(LogFormat::kJson)).ok());
  const std::string tricky = "quote\" backslash\\ newline\n tab\t bell\x07 del\x7f caf\xc3\xa9 end";
  spdlog::warn("{}", tricky);
  spdlog::info("bad utf8 \xff\xfe end");
  // warn flushes at once: no explicit flush before reading the first line.
  auto lines = Lines(ReadAll(path_));
  ASSERT_GE(lines.size(), 1u);
  auto first = ParseFlatJson(lines[0]);
  ASSERT_TRUE(first.has_value()) << lines[0];
  EXPECT_EQ((*first)["msg"], tricky);
  EXPECT_EQ((*first)["level"], "warning");
  EXPECT_TRUE(std::regex_match((*first)["ts"], kTimestamp)) << (*first)["ts"];
  EXPECT_EQ(first->size(), 3u);

  spdlog::default_logger()->flush();
  lines = Lines(ReadAll(path_));
  ASSERT_EQ(lines.size(), 2u);
  auto second = ParseFlatJson(lines[1]);
  ASSERT_TRUE(second.has_value()) << lines[1];
  EXPECT_EQ((*second)["msg"], "bad utf8 \xef\xbf\xbd\xef\xbf\xbd end");  // U+FFFD each
  EXPECT_EQ((*second)["level"], "info");
}

TEST_F(LogTest, ReopenAfterRenameWritesToTheNewFile) {
  ASSERT_TRUE(SetupLogging(FileConfig(LogFormat::kText)).ok());
  spdlog::info("before rotation");
  ASSERT_EQ(std::rename(path_.c_str(), (path_ + ".1").c_str()), 0);
  spdlog::info("between rename and reopen");
  ReopenLogFile();
  spdlog::info("after rotation");
  spdlog::default_logger()->flush();

  std::string old_file = ReadAll(path_ + ".1");
  std::string new_file = ReadAll(path_);
  EXPECT_THAT(old_file, HasSubstr("before rotation"));
  EXPECT_THAT(old_file, HasSubstr("between rename and reopen"));
  EXPECT_THAT(old_file, Not(HasSubstr("after rotation")));
  EXPECT_THAT(new_file, HasSubstr("after rotation"));
  EXPECT_THAT(new_file, Not(HasSubstr("before rotation")));
}

TEST_F(LogTest, ReopenWhileAnotherThreadLogsLosesNoLine) {
  ASSERT_TRUE(SetupLogging(FileConfig(LogFormat::kText)).ok());
  constexpr int kLines = 20000;
  std::atomic<bool> done{false};
  std::thread writer([&] {
    for (int i = 0; i < kLines; ++i) {
      spdlog::info("line {}", i);
    }
    done = true;
  });
  int reopens = 0;
  while (!done) {
    ReopenLogFile();
    ++reopens;
  }
  writer.join();
  spdlog::default_logger()->flush();
  int seen = 0;
  for (const std::string& line : Lines(ReadAll(path_))) {
    if (line.find(" info line ") != std::string::npos) {
      ++seen;
    }
  }
  EXPECT_EQ(seen, kLines) << "after " << reopens << " reopens";
  EXPECT_GT(reopens, 0);
}

TEST_F(LogTest, UnopenableFileIsAnError) {
  ServerConfig c;
  c.log_file = dir_ + "/no/such/dir/turnpiked.log";
  absl::Status st = SetupLogging(c);
  EXPECT_FALSE(st.ok());
  EXPECT_THAT(std::string(st.message()), HasSubstr("cannot open log file"));
}

TEST_F(LogTest, ReopenIsANoOpForStderr) {
  ASSERT_TRUE(SetupLogging(ServerConfig{}).ok());
  ReopenLogFile();  // must not crash or create anything
  EXPECT_NE(access(path_.c_str(), F_OK), 0);
}

}  // namespace
}  // namespace turnpike
