#include "dataplane/packet/wire.h"

#include "absl/strings/str_format.h"

namespace turnpike::dataplane::packet {

std::string MacAddress::ToString() const {
  return absl::StrFormat("%02x:%02x:%02x:%02x:%02x:%02x", bytes[0], bytes[1], bytes[2], bytes[3],
                         bytes[4], bytes[5]);
}

}  // namespace turnpike::dataplane::packet
