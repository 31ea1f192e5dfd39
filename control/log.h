// Logging setup over spdlog: text or JSON lines, to stderr, stdout, syslog or a file that
// SIGHUP reopens (for logrotate). Everything else in the process logs through spdlog's default
// logger; nothing logs per packet.
#pragma once

#include "absl/status/status.h"
#include "turn/config.h"

namespace turnpike {

absl::Status SetupLogging(const ServerConfig& config);
// Reopens the log file (after logrotate moved it). Safe to call from the main thread at any
// time; a no-op when logging to stderr/stdout/syslog.
void ReopenLogFile();

}  // namespace turnpike
