// Tests for dataplane/packet/frame.h: the tshark-checked vectors classify as expected, every
// truncation and every inconsistent length field is reported with its own error, and random
// corruption never makes the parser read outside the frame (each case is copied into a buffer of
// exactly its size, so ASan builds catch any overread).
#include "dataplane/packet/frame.h"

#include <random>
#include <set>
#include <string>

#include "gtest/gtest.h"
#include "tests/dataplane/packet/test_util.h"
#include "tests/dataplane/packet/vectors.h"

namespace turnpike::dataplane::packet {
namespace {

using testing::Bytes;
using testing::FixIpv4Checksum;
using testing::ToBytes;

FrameInfo Parse(const Bytes& frame, ParseOptions options = {}) {
  // A heap copy of exactly the frame's size: an overread is an ASan error, not a silent pass.
  const Bytes copy = frame;
  return ParseFrame(copy, options);
}

TEST(ParseFrame, ClassifiesAnArpRequest) {
  const FrameInfo info = Parse(ToBytes(testdata::kArpRequestFrame));
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info.kind, FrameKind::kArp);
  EXPECT_EQ(info.ethertype, kEtherTypeArp);
  EXPECT_TRUE(info.dst_mac.IsBroadcast());
  EXPECT_EQ(info.src_mac, testing::kPeerMac);
  EXPECT_EQ(info.l3_offset, 14);
  EXPECT_FALSE(info.has_vlan);
  EXPECT_FALSE(info.fast_path);
}

TEST(ParseFrame, ClassifiesAnIcmpEchoRequest) {
  const FrameInfo info = Parse(ToBytes(testdata::kIcmpEchoRequestFrame));
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info.kind, FrameKind::kIpv4);
  EXPECT_EQ(info.src_ip, testing::kPeer4);
  EXPECT_EQ(info.dst_ip, testing::kOur4);
  EXPECT_EQ(info.l4_protocol, kIpProtoIcmp);
  EXPECT_EQ(info.ttl, 64);
  EXPECT_EQ(info.l4_offset, 34);
  EXPECT_EQ(info.l4_length, 64);
  EXPECT_FALSE(info.fragment);
  EXPECT_FALSE(info.fast_path);
}

TEST(ParseFrame, FindsTheUdpPayloadOverIpv4) {
  const Bytes frame = ToBytes(testdata::kUdp4Frame);
  const FrameInfo info = Parse(frame);
  ASSERT_TRUE(info.ok()) << FrameErrorName(info.error);
  EXPECT_TRUE(info.fast_path);
  EXPECT_EQ(info.kind, FrameKind::kIpv4);
  EXPECT_EQ(info.src(), testing::Sa("10.200.0.1:50000"));
  EXPECT_EQ(info.dst(), testing::Sa("10.200.0.2:3478"));
  EXPECT_EQ(info.l4_protocol, kIpProtoUdp);
  EXPECT_EQ(info.payload_offset, 42);
  EXPECT_EQ(info.payload_length, 20);
  EXPECT_EQ(Bytes(frame.begin() + info.payload_offset, frame.end()), testing::kStunPayload);
  EXPECT_TRUE(UdpChecksumValid(frame, info));
}

TEST(ParseFrame, ReportsTheVlanTagAndShiftsOffsets) {
  const Bytes frame = ToBytes(testdata::kUdp4VlanFrame);
  const FrameInfo info = Parse(frame);
  ASSERT_TRUE(info.ok());
  EXPECT_TRUE(info.has_vlan);
  EXPECT_EQ(info.vlan_tci, 0xa064);
  EXPECT_EQ(info.ethertype, kEtherTypeIpv4);
  EXPECT_EQ(info.l3_offset, 18);
  EXPECT_EQ(info.payload_offset, 46);
  EXPECT_TRUE(info.fast_path);
  EXPECT_TRUE(UdpChecksumValid(frame, info));
}

TEST(ParseFrame, FindsTheUdpPayloadOverIpv6) {
  const Bytes frame = ToBytes(testdata::kUdp6Frame);
  const FrameInfo info = Parse(frame);
  ASSERT_TRUE(info.ok());
  EXPECT_TRUE(info.fast_path);
  EXPECT_EQ(info.kind, FrameKind::kIpv6);
  EXPECT_EQ(info.src(), testing::Sa("[2001:db8::1]:50000"));
  EXPECT_EQ(info.dst(), testing::Sa("[2001:db8::2]:3478"));
  EXPECT_EQ(info.ttl, 64);
  EXPECT_EQ(info.l4_offset, 54);
  EXPECT_EQ(info.payload_offset, 62);
  EXPECT_EQ(info.payload_length, 20);
  EXPECT_TRUE(UdpChecksumValid(frame, info));
}

// The packet path parses into the same FrameInfo again and again: nothing of the frame before
// may survive (an IPv4 address after an IPv6 one keeps no IPv6 bytes; ARP after UDP has no
// ports, no fast path, no addresses).
TEST(ParseFrame, ParsingInPlaceForgetsTheFrameBefore) {
  const Bytes udp6 = ToBytes(testdata::kUdp6Frame);
  const Bytes udp4 = ToBytes(testdata::kUdp4Frame);
  const Bytes arp = ToBytes(testdata::kArpRequestFrame);
  FrameInfo info;
  ParseFrame(udp6, info);
  ASSERT_TRUE(info.fast_path);
  ParseFrame(udp4, info);
  const FrameInfo fresh4 = ParseFrame(udp4);
  EXPECT_EQ(info.kind, FrameKind::kIpv4);
  EXPECT_EQ(info.src(), fresh4.src());
  EXPECT_EQ(info.dst(), fresh4.dst());
  EXPECT_EQ(info.src_ip.word(1), 0u);
  EXPECT_EQ(info.payload_offset, fresh4.payload_offset);
  EXPECT_EQ(info.l4_length, fresh4.l4_length);
  ParseFrame(arp, info);
  EXPECT_EQ(info.kind, FrameKind::kArp);
  EXPECT_FALSE(info.fast_path);
  EXPECT_EQ(info.src_port, 0);
  EXPECT_EQ(info.dst_port, 0);
  EXPECT_EQ(info.l4_protocol, 0);
  EXPECT_EQ(info.src_ip, IpAddress{});
  EXPECT_EQ(info.payload_length, 0);
  ParseFrame(Bytes(10, 0), info);
  EXPECT_EQ(info.error, FrameError::kEthernetTruncated);
  EXPECT_EQ(info.kind, FrameKind::kOther);
  EXPECT_EQ(info.src_mac, MacAddress{});
}

TEST(ParseFrame, IgnoresEthernetPaddingAfterTheIpPacket) {
  for (const Bytes& base : {ToBytes(testdata::kUdp4Frame), ToBytes(testdata::kUdp6Frame)}) {
    Bytes frame = base;
    frame.insert(frame.end(), 10, 0xee);
    const FrameInfo info = Parse(frame);
    ASSERT_TRUE(info.ok());
    EXPECT_EQ(info.payload_length, 20);
    EXPECT_TRUE(UdpChecksumValid(frame, info));
  }
}

TEST(ParseFrame, DetectsUdpChecksumCorruption) {
  Bytes frame = ToBytes(testdata::kUdp6Frame);
  frame.back() ^= 0x40;
  const FrameInfo info = Parse(frame);
  ASSERT_TRUE(info.fast_path);
  EXPECT_FALSE(UdpChecksumValid(frame, info));
}

struct TruncationCase {
  const char* name;
  Bytes frame;
  // Expected error for a prefix of length n.
  FrameError (*expected)(size_t n);
};

TEST(ParseFrame, ReportsEveryTruncation) {
  const TruncationCase cases[] = {
      {"udp4", ToBytes(testdata::kUdp4Frame),
       [](size_t n) {
         return n < 14   ? FrameError::kEthernetTruncated
                : n < 34 ? FrameError::kIpv4Truncated
                         : FrameError::kIpv4BadTotalLength;
       }},
      {"udp4 vlan", ToBytes(testdata::kUdp4VlanFrame),
       [](size_t n) {
         return n < 14   ? FrameError::kEthernetTruncated
                : n < 18 ? FrameError::kVlanTruncated
                : n < 38 ? FrameError::kIpv4Truncated
                         : FrameError::kIpv4BadTotalLength;
       }},
      {"udp6", ToBytes(testdata::kUdp6Frame),
       [](size_t n) {
         return n < 14   ? FrameError::kEthernetTruncated
                : n < 54 ? FrameError::kIpv6Truncated
                         : FrameError::kIpv6BadPayloadLength;
       }},
      {"arp", ToBytes(testdata::kArpRequestFrame),
       [](size_t n) {
         return n < 14   ? FrameError::kEthernetTruncated
                : n < 42 ? FrameError::kArpTruncated
                         : FrameError::kNone;  // the rest is padding
       }},
  };
  for (const TruncationCase& c : cases) {
    for (size_t n = 0; n < c.frame.size(); ++n) {
      const FrameInfo info = Parse(Bytes(c.frame.begin(), c.frame.begin() + n));
      EXPECT_EQ(info.error, c.expected(n)) << c.name << " length " << n;
      EXPECT_FALSE(info.fast_path) << c.name << " length " << n;
    }
  }
}

// A UDP/IPv4 frame (kUdp4Frame) with `edit` applied and the IPv4 checksum fixed afterwards.
Bytes EditedUdp4(void (*edit)(Bytes&)) {
  Bytes frame = ToBytes(testdata::kUdp4Frame);
  edit(frame);
  FixIpv4Checksum(frame);
  return frame;
}

TEST(ParseFrame, ReportsEachInconsistentIpv4Field) {
  struct Case {
    const char* name;
    void (*edit)(Bytes&);
    FrameError error;
  };
  const Case cases[] = {
      {"version 6", [](Bytes& f) { f[14] = 0x65; }, FrameError::kIpv4BadVersion},
      {"version 0", [](Bytes& f) { f[14] = 0x05; }, FrameError::kIpv4BadVersion},
      {"ihl 4", [](Bytes& f) { f[14] = 0x44; }, FrameError::kIpv4BadHeaderLength},
      {"ihl 0", [](Bytes& f) { f[14] = 0x40; }, FrameError::kIpv4BadHeaderLength},
      {"ihl beyond total length", [](Bytes& f) { f[14] = 0x4f; }, FrameError::kIpv4BadTotalLength},
      {"total length 19", [](Bytes& f) { Store16(&f[16], 19); }, FrameError::kIpv4BadTotalLength},
      {"total length 0", [](Bytes& f) { Store16(&f[16], 0); }, FrameError::kIpv4BadTotalLength},
      {"total length past frame", [](Bytes& f) { Store16(&f[16], 49); },
       FrameError::kIpv4BadTotalLength},
      {"total length 65535", [](Bytes& f) { Store16(&f[16], 0xffff); },
       FrameError::kIpv4BadTotalLength},
      {"ip payload shorter than udp length", [](Bytes& f) { Store16(&f[16], 47); },
       FrameError::kUdpBadLength},
      {"ip payload shorter than a udp header", [](Bytes& f) { Store16(&f[16], 27); },
       FrameError::kUdpTruncated},
      {"ip payload empty", [](Bytes& f) { Store16(&f[16], 20); }, FrameError::kUdpTruncated},
      {"udp length 0", [](Bytes& f) { Store16(&f[38], 0); }, FrameError::kUdpBadLength},
      {"udp length 7", [](Bytes& f) { Store16(&f[38], 7); }, FrameError::kUdpBadLength},
      {"udp length 8", [](Bytes& f) { Store16(&f[38], 8); }, FrameError::kUdpBadLength},
      {"udp length short by one", [](Bytes& f) { Store16(&f[38], 27); }, FrameError::kUdpBadLength},
      {"udp length long by one", [](Bytes& f) { Store16(&f[38], 29); }, FrameError::kUdpBadLength},
      {"udp length 65535", [](Bytes& f) { Store16(&f[38], 0xffff); }, FrameError::kUdpBadLength},
  };
  for (const Case& c : cases) {
    const FrameInfo info = Parse(EditedUdp4(c.edit));
    EXPECT_EQ(info.error, c.error) << c.name << ": got " << FrameErrorName(info.error);
    EXPECT_FALSE(info.fast_path) << c.name;
  }
}

TEST(ParseFrame, VerifiesTheIpv4HeaderChecksumUnlessTheNicDid) {
  Bytes frame = ToBytes(testdata::kUdp4Frame);
  frame[22] = 63;  // TTL changed, checksum not
  EXPECT_EQ(Parse(frame).error, FrameError::kIpv4BadChecksum);
  const FrameInfo trusted = Parse(frame, {.verify_ipv4_checksum = false});
  EXPECT_TRUE(trusted.ok());
  EXPECT_EQ(trusted.ttl, 63);
}

TEST(ParseFrame, KeepsFragmentsOffTheFastPath) {
  const Bytes more = EditedUdp4([](Bytes& f) { Store16(&f[20], kIpv4FlagMf); });
  const Bytes offset = EditedUdp4([](Bytes& f) { Store16(&f[20], 185); });
  const Bytes df = EditedUdp4([](Bytes& f) { Store16(&f[20], kIpv4FlagDf); });
  for (const Bytes& frame : {more, offset}) {
    const FrameInfo info = Parse(frame);
    EXPECT_TRUE(info.ok());
    EXPECT_TRUE(info.fragment);
    EXPECT_FALSE(info.fast_path);
    EXPECT_EQ(info.l4_protocol, kIpProtoUdp);
    EXPECT_EQ(info.src_port, 0);  // the UDP header is not interpreted
  }
  EXPECT_TRUE(Parse(df).fast_path);
}

TEST(ParseFrame, AcceptsIpv4OptionsAndSkipsThem) {
  Bytes frame = ToBytes(testdata::kUdp4Frame);
  frame.insert(frame.begin() + 34, {0x01, 0x01, 0x01, 0x00});  // NOP NOP NOP EOL
  frame[14] = 0x46;
  Store16(&frame[16], 52);
  FixIpv4Checksum(frame);
  const FrameInfo info = Parse(frame);
  ASSERT_TRUE(info.ok()) << FrameErrorName(info.error);
  EXPECT_TRUE(info.ipv4_options);
  EXPECT_EQ(info.l4_offset, 38);
  EXPECT_EQ(info.payload_offset, 46);
  EXPECT_TRUE(info.fast_path);
  EXPECT_TRUE(UdpChecksumValid(frame, info));
}

TEST(ParseFrame, ReportsEachInconsistentIpv6Field) {
  struct Case {
    const char* name;
    void (*edit)(Bytes&);
    FrameError error;
  };
  const Case cases[] = {
      {"version 4", [](Bytes& f) { f[14] = 0x40; }, FrameError::kIpv6BadVersion},
      {"payload length past frame", [](Bytes& f) { Store16(&f[18], 29); },
       FrameError::kIpv6BadPayloadLength},
      {"payload length 65535", [](Bytes& f) { Store16(&f[18], 0xffff); },
       FrameError::kIpv6BadPayloadLength},
      {"payload shorter than udp length", [](Bytes& f) { Store16(&f[18], 27); },
       FrameError::kUdpBadLength},
      {"payload shorter than a udp header", [](Bytes& f) { Store16(&f[18], 4); },
       FrameError::kUdpTruncated},
      {"payload length 0 (jumbogram without hop-by-hop)", [](Bytes& f) { Store16(&f[18], 0); },
       FrameError::kUdpTruncated},
      {"udp length 7", [](Bytes& f) { Store16(&f[58], 7); }, FrameError::kUdpBadLength},
      {"udp length long by one", [](Bytes& f) { Store16(&f[58], 29); }, FrameError::kUdpBadLength},
  };
  for (const Case& c : cases) {
    Bytes frame = ToBytes(testdata::kUdp6Frame);
    c.edit(frame);
    const FrameInfo info = Parse(frame);
    EXPECT_EQ(info.error, c.error) << c.name << ": got " << FrameErrorName(info.error);
    EXPECT_FALSE(info.fast_path) << c.name;
  }
}

TEST(ParseFrame, KeepsIpv6ExtensionHeadersOffTheFastPath) {
  for (uint8_t next_header : {0, 43, 44, 50, 51, 60, 135, 139, 140, 253, 254}) {
    Bytes frame = ToBytes(testdata::kUdp6Frame);
    frame[20] = next_header;
    const FrameInfo info = Parse(frame);
    EXPECT_TRUE(info.ok()) << int{next_header};
    EXPECT_TRUE(info.ipv6_extension_headers) << int{next_header};
    EXPECT_EQ(info.fragment, next_header == 44) << int{next_header};
    EXPECT_EQ(info.l4_protocol, next_header);
    EXPECT_FALSE(info.fast_path) << int{next_header};
  }
  Bytes no_next = ToBytes(testdata::kUdp6Frame);
  no_next[20] = 59;  // No Next Header: not an extension header, not UDP either
  const FrameInfo info = Parse(no_next);
  EXPECT_TRUE(info.ok());
  EXPECT_FALSE(info.ipv6_extension_headers);
  EXPECT_FALSE(info.fast_path);
}

TEST(ParseFrame, RefusesArpForOtherHardwareOrProtocols) {
  struct Case {
    size_t at;
    uint8_t value;
  };
  for (const Case c : {Case{15, 6}, Case{16, 0x86}, Case{18, 8}, Case{19, 16}}) {
    Bytes frame = ToBytes(testdata::kArpRequestFrame);
    frame[c.at] = c.value;
    EXPECT_EQ(Parse(frame).error, FrameError::kArpUnsupported) << c.at;
  }
}

TEST(ParseFrame, TreatsStackedTagsAndLengthFieldsAsOther) {
  const Bytes double_tagged = testing::WithVlan(testdata::kUdp4VlanFrame, 0x0001);
  const Bytes qinq = [] {
    Bytes f = ToBytes(testdata::kUdp4VlanFrame);
    Store16(&f[12], kEtherTypeQinQ);
    return f;
  }();
  const Bytes ieee8023 = [] {
    Bytes f = ToBytes(testdata::kUdp4Frame);
    Store16(&f[12], 48);  // an 802.3 length
    return f;
  }();
  for (const Bytes& frame : {double_tagged, qinq, ieee8023}) {
    const FrameInfo info = Parse(frame);
    EXPECT_TRUE(info.ok());
    EXPECT_EQ(info.kind, FrameKind::kOther);
    EXPECT_FALSE(info.fast_path);
  }
  EXPECT_EQ(Parse(double_tagged).ethertype, kEtherTypeVlan);
  EXPECT_TRUE(Parse(double_tagged).has_vlan);
}

TEST(ParseFrame, EveryErrorHasADistinctName) {
  std::set<std::string> names;
  for (int e = 0; e < static_cast<int>(FrameError::kCount); ++e) {
    const std::string name = FrameErrorName(static_cast<FrameError>(e));
    EXPECT_NE(name, "unknown") << e;
    names.insert(name);
  }
  EXPECT_EQ(names.size(), static_cast<size_t>(FrameError::kCount));
}

TEST(ParseFrame, RandomCorruptionStaysInBoundsAndConsistent) {
  const Bytes seeds[] = {
      ToBytes(testdata::kUdp4Frame),
      ToBytes(testdata::kUdp4VlanFrame),
      ToBytes(testdata::kUdp6Frame),
      ToBytes(testdata::kArpRequestFrame),
      ToBytes(testdata::kIcmpEchoRequestFrame),
      ToBytes(testdata::kNeighborSolicitationFrame),
  };
  std::mt19937 rng(2024);
  int fast = 0;
  for (int i = 0; i < 200000; ++i) {
    Bytes frame = seeds[rng() % std::size(seeds)];
    const int flips = 1 + rng() % 3;
    for (int k = 0; k < flips; ++k) {
      frame[rng() % frame.size()] = static_cast<uint8_t>(rng());
    }
    if (rng() % 4 == 0) {
      frame.resize(rng() % (frame.size() + 1));
    } else if (rng() % 4 == 0) {
      frame.resize(frame.size() + rng() % 16, 0);
    }
    const FrameInfo info = Parse(frame, {.verify_ipv4_checksum = rng() % 2 == 0});
    if (info.is_ip() && info.ok()) {
      ASSERT_LE(size_t{info.l4_offset} + info.l4_length, frame.size());
    }
    if (info.fast_path) {
      ++fast;
      ASSERT_TRUE(info.ok());
      ASSERT_EQ(size_t{info.payload_offset} + info.payload_length,
                size_t{info.l4_offset} + info.l4_length);
      ASSERT_LE(size_t{info.payload_offset} + info.payload_length, frame.size());
      ASSERT_FALSE(info.fragment);
      ASSERT_FALSE(info.ipv6_extension_headers);
    }
  }
  EXPECT_GT(fast, 1000);  // the corpus did exercise the UDP path
}

}  // namespace
}  // namespace turnpike::dataplane::packet
