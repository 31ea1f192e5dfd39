// libFuzzer target for the coturn-compatible configuration reader (control/config.h): arbitrary
// turnserver.conf text through ParseConfigText, and each line through the address parsers the
// reader uses (ParseIpRange, IpAddress::Parse, SocketAddress::Parse). Configuration is trusted
// input, but a typo in it must give an error message, never a crash or a hang.
// tests/fuzz/config.dict lists the option names so the fuzzer reaches the value parsers.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "control/config.h"
#include "turn/net/socket_address.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

void CheckLine(std::string_view line) {
  if (auto range = turnpike::ParseIpRange(line); range.ok()) {
    FUZZ_CHECK(range->first.family == range->last.family);
    FUZZ_CHECK(std::memcmp(range->first.bytes.data(), range->last.bytes.data(),
                           range->first.size()) <= 0);
  }
  if (auto ip = turnpike::IpAddress::Parse(line)) {
    // What parses must print and parse back to the same address.
    auto again = turnpike::IpAddress::Parse(ip->ToString());
    FUZZ_CHECK(again.has_value() && *again == *ip);
  }
  (void)turnpike::SocketAddress::Parse(line);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  turnpike::LoadedConfig loaded;
  absl::Status status = turnpike::ParseConfigText(text, "fuzz.conf", &loaded);
  if (!status.ok()) {
    FUZZ_CHECK(!status.message().empty());
  }
  // Applying the same text twice over a configuration must not crash either (repeatable keys
  // accumulate).
  (void)turnpike::ParseConfigText(text, "fuzz.conf", &loaded);

  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) {
      end = text.size();
    }
    CheckLine(text.substr(start, end - start));
    start = end + 1;
  }
  return 0;
}
