// Writes the DPDK load generator's phase-2 traffic (after the TURN handshakes) to a classic pcap
// file plus a Pktgen-DPDK Lua script that replays it, for users with Pktgen on real NICs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace turnpike::dpdkgen {

// `path`: the pcap (LINKTYPE_ETHERNET, microsecond timestamps); `path` + ".lua": the script.
// `rate_pps` (0: line rate) goes into the script as a comment and a starting rate.
bool WritePcapAndLua(const std::string& path, const std::vector<std::vector<uint8_t>>& frames,
                     double rate_pps);

}  // namespace turnpike::dpdkgen
