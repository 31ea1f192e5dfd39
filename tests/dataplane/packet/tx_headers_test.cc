// Tests for dataplane/packet/tx_headers.h: headers prepended into headroom reproduce the
// tshark-checked frames byte for byte, offload mode leaves what DPDK expects, build-then-parse
// round trips over random sizes, refusals write nothing, and the in-place endpoint rewrite keeps
// both checksums equal to a full recomputation.
#include "dataplane/packet/tx_headers.h"

#include <random>

#include "dataplane/packet/checksum.h"
#include "gtest/gtest.h"
#include "tests/dataplane/packet/test_util.h"
#include "tests/dataplane/packet/vectors.h"

namespace turnpike::dataplane::packet {
namespace {

using testing::Bytes;
using testing::Sa;
using testing::ToBytes;

constexpr size_t kHeadroom = 128;  // RTE_PKTMBUF_HEADROOM

// A buffer laid out like an mbuf: headroom, then the payload.
Bytes WithHeadroom(const Bytes& payload, size_t headroom = kHeadroom) {
  Bytes buffer(headroom, 0xcc);
  buffer.insert(buffer.end(), payload.begin(), payload.end());
  return buffer;
}

UdpTxParams PeerToUs(bool v6) {
  UdpTxParams p;
  p.src_mac = testing::kPeerMac;
  p.dst_mac = testing::kOurMac;
  p.src = v6 ? Sa("[2001:db8::1]:50000") : Sa("10.200.0.1:50000");
  p.dst = v6 ? Sa("[2001:db8::2]:3478") : Sa("10.200.0.2:3478");
  p.dont_fragment = true;
  return p;
}

Bytes FrameOf(const Bytes& buffer, const Prepended& where) {
  return Bytes(buffer.begin() + where.frame_offset, buffer.end());
}

TEST(PrependUdpHeaders, ReproducesTheIpv4Vector) {
  Bytes buffer = WithHeadroom(testing::kStunPayload);
  const auto where =
      PrependUdpHeaders(buffer, kHeadroom, testing::kStunPayload.size(), PeerToUs(false));
  ASSERT_TRUE(where.has_value());
  EXPECT_EQ(where->frame_offset, kHeadroom - 42);
  EXPECT_EQ(where->l2_length, 14);
  EXPECT_EQ(where->l3_length, 20);
  EXPECT_EQ(FrameOf(buffer, *where), ToBytes(testdata::kUdp4Frame));
  // The headroom before the frame is untouched.
  EXPECT_EQ(buffer[where->frame_offset - 1], 0xcc);
}

TEST(PrependUdpHeaders, ReproducesTheTaggedIpv4Vector) {
  Bytes buffer = WithHeadroom(testing::kStunPayload);
  UdpTxParams params = PeerToUs(false);
  params.vlan_tci = 0xa064;
  const auto where = PrependUdpHeaders(buffer, kHeadroom, testing::kStunPayload.size(), params);
  ASSERT_TRUE(where.has_value());
  EXPECT_EQ(where->l2_length, 18);
  EXPECT_EQ(FrameOf(buffer, *where), ToBytes(testdata::kUdp4VlanFrame));
}

TEST(PrependUdpHeaders, ReproducesTheIpv6Vector) {
  Bytes buffer = WithHeadroom(testing::kStunPayload);
  const auto where =
      PrependUdpHeaders(buffer, kHeadroom, testing::kStunPayload.size(), PeerToUs(true));
  ASSERT_TRUE(where.has_value());
  EXPECT_EQ(where->frame_offset, kHeadroom - 62);
  EXPECT_EQ(where->l3_length, 40);
  EXPECT_EQ(FrameOf(buffer, *where), ToBytes(testdata::kUdp6Frame));
}

TEST(BuildUdpFrame, IsThePayloadWithPrependUdpHeadersHeaders) {
  EXPECT_EQ(BuildUdpFrame(testing::kStunPayload, PeerToUs(false)), ToBytes(testdata::kUdp4Frame));
  EXPECT_EQ(BuildUdpFrame(testing::kStunPayload, PeerToUs(true)), ToBytes(testdata::kUdp6Frame));
  UdpTxParams tagged = PeerToUs(false);
  tagged.vlan_tci = 0xa064;
  EXPECT_EQ(BuildUdpFrame(testing::kStunPayload, tagged), ToBytes(testdata::kUdp4VlanFrame));
  UdpTxParams mixed = PeerToUs(false);
  mixed.dst = PeerToUs(true).dst;  // families differ: refused
  EXPECT_TRUE(BuildUdpFrame(testing::kStunPayload, mixed).empty());
}

TEST(PrependUdpHeaders, OffloadModeLeavesThePseudoHeaderSum) {
  for (bool v6 : {false, true}) {
    Bytes buffer = WithHeadroom(testing::kStunPayload);
    UdpTxParams params = PeerToUs(v6);
    params.udp_checksum = UdpChecksumMode::kOffload;
    params.ipv4_checksum_offload = true;
    const auto where = PrependUdpHeaders(buffer, kHeadroom, testing::kStunPayload.size(), params);
    ASSERT_TRUE(where.has_value());
    const Bytes frame = FrameOf(buffer, *where);
    const size_t l4 = where->l2_length + where->l3_length;
    EXPECT_EQ(Load16(&frame[l4 + 6]), UdpPseudoHeaderChecksum(params.src.ip, params.dst.ip, 28));
    // The NIC's share: sum UDP header + payload from that seed and complement. The result is
    // the software checksum of the tshark-checked vector.
    const Bytes& expected = v6 ? ToBytes(testdata::kUdp6Frame) : ToBytes(testdata::kUdp4Frame);
    EXPECT_EQ(Finish(Sum16(std::span(frame).subspan(l4))), Load16(&expected[l4 + 6])) << v6;
    if (!v6) {
      EXPECT_EQ(Load16(&frame[24]), 0);  // IPv4 header checksum left to RTE_MBUF_F_TX_IP_CKSUM
    }
  }
}

TEST(PrependUdpHeaders, UsesTheCallersIdOnlyWithoutDf) {
  Bytes buffer = WithHeadroom(testing::kStunPayload);
  UdpTxParams params = PeerToUs(false);
  params.ipv4_id = 0x1234;
  auto where = PrependUdpHeaders(buffer, kHeadroom, testing::kStunPayload.size(), params);
  ASSERT_TRUE(where.has_value());
  EXPECT_EQ(Load16(&buffer[where->frame_offset + 18]), 0);  // DF: atomic, ID 0
  EXPECT_EQ(Load16(&buffer[where->frame_offset + 20]), kIpv4FlagDf);

  params.dont_fragment = false;
  params.ttl = 7;
  params.tos = 0xb8;  // EF
  where = PrependUdpHeaders(buffer, kHeadroom, testing::kStunPayload.size(), params);
  ASSERT_TRUE(where.has_value());
  EXPECT_EQ(Load16(&buffer[where->frame_offset + 18]), 0x1234);
  EXPECT_EQ(Load16(&buffer[where->frame_offset + 20]), 0);
  const FrameInfo info = ParseFrame(FrameOf(buffer, *where));
  ASSERT_TRUE(info.fast_path);  // header checksum still verifies
  EXPECT_EQ(info.ttl, 7);
  EXPECT_EQ(info.tos, 0xb8);
}

TEST(PrependUdpHeaders, WritesTrafficClassAndFlowLabelOverIpv6) {
  Bytes buffer = WithHeadroom(testing::kStunPayload);
  UdpTxParams params = PeerToUs(true);
  params.tos = 0xb8;
  params.ipv6_flow_label = 0xfffff123;  // only the low 20 bits are used
  const auto where = PrependUdpHeaders(buffer, kHeadroom, testing::kStunPayload.size(), params);
  ASSERT_TRUE(where.has_value());
  EXPECT_EQ(Load32(&buffer[where->frame_offset + 14]), 0x6b8ff123u);
  EXPECT_EQ(ParseFrame(FrameOf(buffer, *where)).tos, 0xb8);
}

TEST(PrependUdpHeaders, RoundTripsThroughParseFrame) {
  std::mt19937 rng(42);
  for (int i = 0; i < 2000; ++i) {
    const bool v6 = i % 2 == 1;
    UdpTxParams params;
    params.src_mac = testing::kOurMac;
    params.dst_mac = testing::kPeerMac;
    uint8_t a[16];
    uint8_t b[16];
    for (int k = 0; k < 16; ++k) {
      a[k] = static_cast<uint8_t>(rng());
      b[k] = static_cast<uint8_t>(rng());
    }
    params.src = {v6 ? IpAddress::V6Bytes(a) : IpAddress::V4Bytes(a), static_cast<uint16_t>(rng())};
    params.dst = {v6 ? IpAddress::V6Bytes(b) : IpAddress::V4Bytes(b), static_cast<uint16_t>(rng())};
    params.dont_fragment = rng() % 2 == 0;
    params.ipv4_id = static_cast<uint16_t>(rng());
    if (rng() % 3 == 0) {
      params.vlan_tci = static_cast<uint16_t>(rng());
    }
    Bytes payload(i < 10 ? i : rng() % 1500);
    for (auto& x : payload) {
      x = static_cast<uint8_t>(rng());
    }
    const size_t headroom = UdpHeadersSize(params) + rng() % 64;
    Bytes buffer = WithHeadroom(payload, headroom);
    const auto where = PrependUdpHeaders(buffer, headroom, payload.size(), params);
    ASSERT_TRUE(where.has_value()) << i;
    const Bytes frame = FrameOf(buffer, *where);
    const FrameInfo info = ParseFrame(frame);
    ASSERT_TRUE(info.fast_path) << i << " " << FrameErrorName(info.error);
    EXPECT_EQ(info.src(), params.src);
    EXPECT_EQ(info.dst(), params.dst);
    EXPECT_EQ(info.src_mac, params.src_mac);
    EXPECT_EQ(info.dst_mac, params.dst_mac);
    EXPECT_EQ(info.has_vlan, params.vlan_tci.has_value());
    EXPECT_EQ(info.ttl, kDefaultTtl);
    EXPECT_EQ(info.payload_offset, where->l2_length + where->l3_length + 8);
    EXPECT_EQ(info.payload_length, payload.size());
    ASSERT_TRUE(UdpChecksumValid(frame, info)) << i;
    EXPECT_NE(Load16(&frame[info.l4_offset + 6]), 0);  // never "no checksum"
  }
}

TEST(PrependUdpHeaders, RefusesWithoutWritingAnything) {
  const Bytes payload = testing::kStunPayload;
  struct Case {
    const char* name;
    size_t headroom;
    size_t payload_offset;
    size_t payload_length;
    UdpTxParams params;
  };
  UdpTxParams mixed = PeerToUs(false);
  mixed.dst = Sa("[2001:db8::2]:3478");
  UdpTxParams tagged = PeerToUs(false);
  tagged.vlan_tci = 1;
  const Case cases[] = {
      {"headroom one short", 41, 41, payload.size(), PeerToUs(false)},
      {"headroom one short v6", 61, 61, payload.size(), PeerToUs(true)},
      {"headroom one short tagged", 45, 45, payload.size(), tagged},
      {"payload past the buffer", 128, 128, payload.size() + 1, PeerToUs(false)},
      {"payload offset past the buffer", 128, 1000, 0, PeerToUs(false)},
      {"mixed families", 128, 128, payload.size(), mixed},
  };
  for (const Case& c : cases) {
    Bytes buffer = WithHeadroom(payload, c.headroom);
    const Bytes before = buffer;
    EXPECT_FALSE(PrependUdpHeaders(buffer, c.payload_offset, c.payload_length, c.params)) << c.name;
    EXPECT_EQ(buffer, before) << c.name;
  }
  // Exactly enough headroom works.
  Bytes exact = WithHeadroom(payload, 42);
  const auto where = PrependUdpHeaders(exact, 42, payload.size(), PeerToUs(false));
  ASSERT_TRUE(where.has_value());
  EXPECT_EQ(where->frame_offset, 0);
}

TEST(PrependUdpHeaders, RefusesDatagramsBeyondTheLengthFields) {
  // IPv4: total length 20 + 8 + payload <= 65535. IPv6: UDP length 8 + payload <= 65535.
  Bytes buffer(kHeadroom + 65535, 0);
  EXPECT_TRUE(PrependUdpHeaders(buffer, kHeadroom, 65507, PeerToUs(false)));
  EXPECT_FALSE(PrependUdpHeaders(buffer, kHeadroom, 65508, PeerToUs(false)));
  EXPECT_TRUE(PrependUdpHeaders(buffer, kHeadroom, 65527, PeerToUs(true)));
  EXPECT_FALSE(PrependUdpHeaders(buffer, kHeadroom, 65528, PeerToUs(true)));
}

TEST(RewriteUdpEndpoints, IncrementalChecksumsEqualFullRecomputation) {
  std::mt19937 rng(1624);
  auto random_ip = [&rng](bool v6) {
    uint8_t b[16];
    for (auto& x : b) {
      x = static_cast<uint8_t>(rng());
    }
    return v6 ? IpAddress::V6Bytes(b) : IpAddress::V4Bytes(b);
  };
  for (int i = 0; i < 20000; ++i) {
    const bool v6 = i % 2 == 1;
    UdpTxParams params = PeerToUs(v6);
    params.src = {random_ip(v6), static_cast<uint16_t>(rng())};
    params.dst = {random_ip(v6), static_cast<uint16_t>(rng())};
    params.dont_fragment = rng() % 2 == 0;
    params.ipv4_id = static_cast<uint16_t>(rng());
    Bytes payload(rng() % 200);
    for (auto& x : payload) {
      x = static_cast<uint8_t>(rng());
    }
    Bytes buffer = WithHeadroom(payload, 64);
    const auto where = PrependUdpHeaders(buffer, 64, payload.size(), params);
    ASSERT_TRUE(where.has_value());
    Bytes frame = FrameOf(buffer, *where);
    const bool no_checksum = !v6 && i % 10 == 0;
    if (no_checksum) {
      Store16(&frame[where->l2_length + where->l3_length + 6], 0);
    }
    const FrameInfo info = ParseFrame(frame);
    ASSERT_TRUE(info.fast_path);

    const SocketAddress new_src{random_ip(v6), static_cast<uint16_t>(rng())};
    const SocketAddress new_dst =
        rng() % 4 == 0 ? info.dst() : SocketAddress{random_ip(v6), static_cast<uint16_t>(rng())};
    ASSERT_TRUE(RewriteUdpEndpoints(frame, info, new_src, new_dst));

    const FrameInfo after = ParseFrame(frame);  // verifies the IPv4 header checksum
    ASSERT_TRUE(after.fast_path) << i << " " << FrameErrorName(after.error);
    EXPECT_EQ(after.src(), new_src);
    EXPECT_EQ(after.dst(), new_dst);
    const uint16_t field = Load16(&frame[after.l4_offset + 6]);
    if (no_checksum) {
      EXPECT_EQ(field, 0);
    } else {
      ASSERT_EQ(field, UdpChecksum(new_src.ip, new_dst.ip,
                                   std::span(frame).subspan(after.l4_offset, after.l4_length)))
          << i;
    }
    if (!v6) {
      ASSERT_EQ(Load16(&frame[where->l2_length + 10]),
                Ipv4HeaderChecksum(std::span(frame).subspan(where->l2_length, 20)));
    }
  }
}

TEST(RewriteUdpEndpoints, RefusesOtherFramesAndFamilies) {
  Bytes frame = ToBytes(testdata::kUdp4Frame);
  const Bytes before = frame;
  const FrameInfo info = ParseFrame(frame);
  EXPECT_FALSE(RewriteUdpEndpoints(frame, info, Sa("[::1]:1"), Sa("[::1]:2")));
  EXPECT_FALSE(RewriteUdpEndpoints(frame, info, Sa("10.0.0.1:1"), Sa("[::1]:2")));
  Bytes arp = ToBytes(testdata::kArpRequestFrame);
  EXPECT_FALSE(RewriteUdpEndpoints(arp, ParseFrame(arp), Sa("10.0.0.1:1"), Sa("10.0.0.2:2")));
  EXPECT_EQ(frame, before);
}

TEST(PrependUdpHeaders, AGivenPayloadSumWritesTheSoftwareChecksum) {
  // A relayed ChannelData body: its sum comes from the received datagram's checksum
  // (UdpPayloadSumFromChecksum + SubspanSum) instead of a pass over the payload. The frame must
  // be byte for byte the one kSoftware writes, for both families and odd lengths.
  for (bool v6 : {false, true}) {
    for (size_t n : {size_t{0}, size_t{1}, size_t{28}, size_t{171}, size_t{172}}) {
      Bytes payload(n);
      for (size_t i = 0; i < n; ++i) payload[i] = static_cast<uint8_t>(0xf0 + 37 * i);
      Bytes software = WithHeadroom(payload);
      const auto a = PrependUdpHeaders(software, kHeadroom, n, PeerToUs(v6));
      ASSERT_TRUE(a.has_value());
      UdpTxParams params = PeerToUs(v6);
      params.udp_checksum = UdpChecksumMode::kPayloadSum;
      params.payload_sum = Fold(Sum16(payload));
      Bytes given = WithHeadroom(payload);  // headroom full of 0xcc, checksum field included
      const auto b = PrependUdpHeaders(given, kHeadroom, n, params);
      ASSERT_TRUE(b.has_value());
      EXPECT_EQ(FrameOf(given, *b), FrameOf(software, *a)) << v6 << " " << n;
    }
  }
}

}  // namespace
}  // namespace turnpike::dataplane::packet
