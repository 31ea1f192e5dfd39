#include "perf/dpdk/pcap_export.h"

#include <cstdio>
#include <cstring>

namespace turnpike::dpdkgen {
namespace {

struct PcapFileHeader {
  uint32_t magic = 0xa1b2c3d4;  // microsecond timestamps, host byte order
  uint16_t version_major = 2;
  uint16_t version_minor = 4;
  int32_t thiszone = 0;
  uint32_t sigfigs = 0;
  uint32_t snaplen = 65535;
  uint32_t linktype = 1;  // LINKTYPE_ETHERNET
};

struct PcapRecordHeader {
  uint32_t ts_sec;
  uint32_t ts_usec;
  uint32_t incl_len;
  uint32_t orig_len;
};

}  // namespace

bool WritePcapAndLua(const std::string& path, const std::vector<std::vector<uint8_t>>& frames,
                     double rate_pps) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) {
    std::perror(path.c_str());
    return false;
  }
  PcapFileHeader h;
  bool ok = std::fwrite(&h, sizeof(h), 1, f) == 1;
  uint64_t usec = 0;
  for (const std::vector<uint8_t>& frame : frames) {
    PcapRecordHeader r{static_cast<uint32_t>(usec / 1000000), static_cast<uint32_t>(usec % 1000000),
                       static_cast<uint32_t>(frame.size()), static_cast<uint32_t>(frame.size())};
    ok = ok && std::fwrite(&r, sizeof(r), 1, f) == 1 &&
         std::fwrite(frame.data(), frame.size(), 1, f) == 1;
    ++usec;
  }
  ok = std::fclose(f) == 0 && ok;
  if (!ok) {
    std::fprintf(stderr, "writing %s failed\n", path.c_str());
    return false;
  }
  const std::string lua_path = path + ".lua";
  FILE* l = std::fopen(lua_path.c_str(), "w");
  if (l == nullptr) {
    std::perror(lua_path.c_str());
    return false;
  }
  std::fprintf(l,
               "-- Pktgen-DPDK replay of turnpike-dpdk-loadgen phase-2 traffic (%zu frames:\n"
               "-- ChannelData from the clients and UDP from the peers, alternating, one pair per\n"
               "-- allocation). The frames are only relayed while the allocations exist: run\n"
               "-- turnpike-dpdk-loadgen (same --allocations, addresses and relay) first, so the\n"
               "-- handshakes are done, then within the allocation lifetime start Pktgen with the\n"
               "-- pcap on the port facing the relay, e.g.\n"
               "--   pktgen -l 0-2 -n 4 -- -P -m \"[1:2].0\" -s 0:%s -f %s\n"
               "-- The destination MAC in the frames is the relay's as resolved by the generator;\n"
               "-- UDP checksums are 0 (no checksum, legal over IPv4).\n"
               "-- Offered rate when written: %s.\n"
               "package.path = package.path .. \";?.lua;test/?.lua;app/?.lua;\"\n"
               "require \"Pktgen\"\n"
               "local port = \"0\"\n"
               "pktgen.pcap(port, \"on\")\n"
               "pktgen.set(port, \"rate\", 100)  -- percent of line rate; lower it to pace\n"
               "pktgen.start(port)\n"
               "pktgen.delay(10000)\n"
               "pktgen.stop(port)\n"
               "printf(\"%%s\\n\", \"replay done\")\n",
               frames.size(), path.c_str(), lua_path.c_str(),
               rate_pps > 0 ? (std::to_string(static_cast<long>(rate_pps)) + " pps").c_str()
                            : "unpaced");
  return std::fclose(l) == 0;
}

}  // namespace turnpike::dpdkgen
