// Reads turnpiked's configuration: a coturn-compatible turnserver.conf (`-c FILE`, key=value
// lines, a bare key means true, repeatable keys accumulate) and the same options on the
// command line as `--key=value` / `--key` (command line wins over the file). Unknown options and
// bad values are errors naming the option; coturn options Turnpike deliberately ignores are
// accepted with a warning (docs/configuration.md lists them).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "turn/config.h"

namespace turnpike {

struct LoadedConfig {
  ServerConfig config;
  std::vector<std::string> warnings;  // one line each, to log after logging is up
  bool help = false;                  // --help / -h was given: print Usage() and exit 0
  bool version = false;               // --version
};

// argv[0] is the program name. Errors are InvalidArgument with a one-line message such as
// "unknown option 'foo' (line 12 of /etc/turnserver.conf)" or "bad value for min-port: 'x'".
absl::StatusOr<LoadedConfig> LoadConfig(int argc, const char* const* argv);

// Parses configuration file text (for tests and fuzzing); `origin` names it in messages.
// Options are applied over `*out`.
absl::Status ParseConfigText(std::string_view text, std::string_view origin, LoadedConfig* out);

// Parses an address range option value: "a.b.c.d", "a-b", or "prefix/len".
absl::StatusOr<IpRange> ParseIpRange(std::string_view text);

std::string Usage();

}  // namespace turnpike
