// Tests for dataplane/packet/checksum.h: RFC 1071 and RFC 1624 worked examples, the tshark-checked
// vectors, a byte-pair reference sum over every length and alignment, and incremental updates
// against full recomputation over many random rewrites.
#include "dataplane/packet/checksum.h"

#include <random>

#include "gtest/gtest.h"
#include "tests/dataplane/packet/test_util.h"
#include "tests/dataplane/packet/vectors.h"

namespace turnpike::dataplane::packet {
namespace {

using testing::Bytes;
using testing::Ip;

// The textbook definition, one big-endian 16-bit word at a time.
uint16_t ReferenceFoldedSum(std::span<const uint8_t> data) {
  uint64_t sum = 0;
  for (size_t i = 0; i < data.size(); i += 2) {
    sum += uint32_t{data[i]} << 8;
    if (i + 1 < data.size()) {
      sum += data[i + 1];
    }
  }
  while (sum >> 16) {
    sum = (sum & 0xffff) + (sum >> 16);
  }
  return static_cast<uint16_t>(sum);
}

Bytes RandomBytes(std::mt19937& rng, size_t n) {
  Bytes b(n);
  for (auto& x : b) {
    x = static_cast<uint8_t>(rng());
  }
  return b;
}

IpAddress RandomIp(std::mt19937& rng, bool v6) {
  uint8_t b[16];
  for (auto& x : b) {
    x = static_cast<uint8_t>(rng());
  }
  return v6 ? IpAddress::V6Bytes(b) : IpAddress::V4Bytes(b);
}

TEST(Checksum, MatchesTheRfc1071WorkedExample) {
  // RFC 1071 3: bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2.
  const uint8_t data[] = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
  EXPECT_EQ(Fold(Sum16(data)), 0xddf2);
  EXPECT_EQ(InternetChecksum(data), 0x220d);
}

TEST(Checksum, PadsAnOddTrailingByteAsTheHighHalfOfAWord) {
  const uint8_t one[] = {0x01};
  EXPECT_EQ(Fold(Sum16(one)), 0x0100);
  const uint8_t three[] = {0xab, 0xcd, 0xef};
  EXPECT_EQ(Fold(Sum16(three)), 0x9ace);  // abcd + ef00 = 1 9acd -> 9ace
  EXPECT_EQ(Fold(Sum16({})), 0);
}

TEST(Checksum, WordAtATimeSumEqualsReferenceForEveryLengthAndAlignment) {
  std::mt19937 rng(1071);
  const Bytes buffer = RandomBytes(rng, 300);
  for (size_t offset = 0; offset < 8; ++offset) {
    for (size_t length = 0; length + offset <= buffer.size(); ++length) {
      std::span<const uint8_t> s(buffer.data() + offset, length);
      ASSERT_EQ(Fold(Sum16(s)), ReferenceFoldedSum(s)) << offset << " " << length;
    }
  }
}

TEST(Checksum, AllOnesDataDoesNotOverflowTheAccumulator) {
  const Bytes ones(65535, 0xff);
  EXPECT_EQ(Fold(Sum16(ones)), ReferenceFoldedSum(ones));
}

TEST(Checksum, ChainsOverEvenChunks) {
  std::mt19937 rng(7);
  const Bytes b = RandomBytes(rng, 101);
  const std::span<const uint8_t> s(b);
  EXPECT_EQ(Fold(Sum16(s.subspan(40), Sum16(s.first(40)))), Fold(Sum16(s)));
  EXPECT_EQ(Fold(Sum16(s.subspan(98), Sum16(s.subspan(2, 96), Sum16(s.first(2))))), Fold(Sum16(s)));
}

TEST(Checksum, Ipv4HeaderOfTheWellKnownExample) {
  // The header every tutorial uses (192.168.0.1 -> 192.168.0.199, UDP); checksum b861.
  Bytes header = {0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
                  0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7};
  EXPECT_EQ(Ipv4HeaderChecksum(header), 0xb861);
  EXPECT_TRUE(Ipv4HeaderChecksumValid(header));
  header[10] = 0x12;  // the field's content does not affect the computation
  EXPECT_EQ(Ipv4HeaderChecksum(header), 0xb861);
  EXPECT_FALSE(Ipv4HeaderChecksumValid(header));
}

TEST(Checksum, ReproducesTheTsharkCheckedVectors) {
  using namespace testdata;
  // IPv4 headers (tshark: 0x252b, 0x7949).
  EXPECT_EQ(Ipv4HeaderChecksum(std::span(kUdp4Frame).subspan(14, 20)), 0x252b);
  EXPECT_EQ(Ipv4HeaderChecksum(std::span(kIcmpEchoRequestFrame).subspan(14, 20)), 0x7949);
  // UDP over IPv4 and IPv6 (tshark: 0x880b, 0x4229).
  EXPECT_EQ(UdpChecksum(testing::kPeer4, testing::kOur4, std::span(kUdp4Frame).subspan(34)),
            0x880b);
  EXPECT_EQ(UdpChecksum(testing::kPeer6, testing::kOur6, std::span(kUdp6Frame).subspan(54)),
            0x4229);
  EXPECT_TRUE(UdpChecksumValid(testing::kPeer4, testing::kOur4, std::span(kUdp4Frame).subspan(34)));
  EXPECT_TRUE(UdpChecksumValid(testing::kPeer6, testing::kOur6, std::span(kUdp6Frame).subspan(54)));
  // ICMP (tshark: 0xb3ba) and ICMPv6 (tshark: 0xdfca, NS 0x976b).
  Bytes icmp(kIcmpEchoRequestFrame.begin() + 34, kIcmpEchoRequestFrame.end());
  EXPECT_EQ(Fold(Sum16(icmp)), 0xffff);
  icmp[2] = icmp[3] = 0;
  EXPECT_EQ(InternetChecksum(icmp), 0xb3ba);
  EXPECT_EQ(Icmpv6Checksum(testing::kPeer6, testing::kOur6,
                           std::span(kIcmpv6EchoRequestFrame).subspan(54)),
            0xdfca);
  EXPECT_EQ(Icmpv6Checksum(testing::kPeer6, Ip("ff02::1:ff00:2"),
                           std::span(kNeighborSolicitationFrame).subspan(54)),
            0x976b);
  // The same bytes with the addresses swapped in the wrong order still verify (the pseudo-header
  // sum is symmetric), but any other address does not.
  EXPECT_TRUE(UdpChecksumValid(testing::kOur4, testing::kPeer4, std::span(kUdp4Frame).subspan(34)));
  EXPECT_FALSE(
      UdpChecksumValid(testing::kPeer4, Ip("10.200.0.3"), std::span(kUdp4Frame).subspan(34)));
}

TEST(Checksum, ZeroUdpChecksumMeansNoneOverIpv4AndIsRefusedOverIpv6) {
  Bytes v4(testdata::kUdp4Frame.begin() + 34, testdata::kUdp4Frame.end());
  v4[6] = v4[7] = 0;
  EXPECT_TRUE(UdpChecksumValid(testing::kPeer4, testing::kOur4, v4));
  Bytes v6(testdata::kUdp6Frame.begin() + 54, testdata::kUdp6Frame.end());
  v6[6] = v6[7] = 0;
  EXPECT_FALSE(UdpChecksumValid(testing::kPeer6, testing::kOur6, v6));
}

TEST(Checksum, ComputedZeroUdpChecksumIsSentAsAllOnes) {
  // Append a word equal to the checksum of the rest: the data then sums to 0xffff and the
  // computed checksum is 0, which RFC 768 transmits as 0xffff.
  Bytes segment(testdata::kUdp4Frame.begin() + 34, testdata::kUdp4Frame.end());
  segment.push_back(0);
  segment.push_back(0);
  Store16(&segment[4], static_cast<uint16_t>(segment.size()));
  const uint16_t c = UdpChecksum(testing::kPeer4, testing::kOur4, segment);
  Store16(&segment[segment.size() - 2], c);
  EXPECT_EQ(UdpChecksum(testing::kPeer4, testing::kOur4, segment), 0xffff);
  Store16(&segment[6], 0xffff);
  EXPECT_TRUE(UdpChecksumValid(testing::kPeer4, testing::kOur4, segment));
}

TEST(Checksum, OffloadSeedIsThePseudoHeaderSumThatHardwareCompletes) {
  for (bool v6 : {false, true}) {
    const IpAddress src = v6 ? testing::kPeer6 : testing::kPeer4;
    const IpAddress dst = v6 ? testing::kOur6 : testing::kOur4;
    Bytes segment = v6 ? Bytes(testdata::kUdp6Frame.begin() + 54, testdata::kUdp6Frame.end())
                       : Bytes(testdata::kUdp4Frame.begin() + 34, testdata::kUdp4Frame.end());
    const uint16_t software = Load16(&segment[6]);
    // Pseudo-header bytes laid out by hand, summed by the reference.
    Bytes pseudo(src.bytes.begin(), src.bytes.begin() + src.size());
    pseudo.insert(pseudo.end(), dst.bytes.begin(), dst.bytes.begin() + dst.size());
    if (v6) {
      pseudo.insert(pseudo.end(), {0, 0, 0, static_cast<uint8_t>(segment.size()), 0, 0, 0, 17});
    } else {
      pseudo.insert(pseudo.end(), {0, 17, 0, static_cast<uint8_t>(segment.size())});
    }
    const uint16_t seed = UdpPseudoHeaderChecksum(src, dst, static_cast<uint16_t>(segment.size()));
    EXPECT_EQ(seed, ReferenceFoldedSum(pseudo));
    // What the NIC does: sum header and payload starting from the seed in the field, complement.
    Store16(&segment[6], seed);
    EXPECT_EQ(Finish(Sum16(segment)), software) << v6;
  }
}

TEST(Checksum, Rfc1624Equation3WorkedExample) {
  // RFC 1624 4: m = 0x5555 -> 0x3285 with the other words summing to 0xcd7a; HC = 0xdd2f and the
  // recomputed HC' is 0x0000, which eqn. 3 reproduces (eqn. 2 of RFC 1141 would give 0xffff).
  EXPECT_EQ(ChecksumUpdate16(0xdd2f, 0x5555, 0x3285), 0x0000);
}

TEST(Checksum, IncrementalUpdatesEqualRecomputationOverRandomRewrites) {
  std::mt19937 rng(1624);
  for (int i = 0; i < 20000; ++i) {
    Bytes data = RandomBytes(rng, 2 * (4 + rng() % 40));
    if (i % 16 == 0) {
      std::fill(data.begin(), data.end(), 0xff);  // sums that wrap as far as they can
    }
    const uint16_t before = InternetChecksum(data);
    const size_t words = data.size() / 2;
    switch (i % 3) {
      case 0: {
        const size_t at = 2 * (rng() % words);
        const uint16_t old_word = Load16(&data[at]);
        const uint16_t new_word = i % 32 == 0 ? 0 : static_cast<uint16_t>(rng());
        Store16(&data[at], new_word);
        ASSERT_EQ(ChecksumUpdate16(before, old_word, new_word), InternetChecksum(data)) << i;
        break;
      }
      case 1: {
        const size_t at = 2 * (rng() % (words - 1));
        const uint32_t old_value = Load32(&data[at]);
        const uint32_t new_value = static_cast<uint32_t>(rng());
        Store32(&data[at], new_value);
        ASSERT_EQ(ChecksumUpdate32(before, old_value, new_value), InternetChecksum(data)) << i;
        break;
      }
      default: {
        const size_t length = data.size() >= 16 ? 16 : 4;
        const size_t at = 2 * (rng() % ((data.size() - length) / 2 + 1));
        const Bytes old_bytes(data.begin() + at, data.begin() + at + length);
        const Bytes new_bytes = RandomBytes(rng, length);
        std::copy(new_bytes.begin(), new_bytes.end(), data.begin() + at);
        ASSERT_EQ(ChecksumUpdateBytes(before, old_bytes, new_bytes), InternetChecksum(data)) << i;
        break;
      }
    }
  }
}

TEST(Checksum, EndpointRewriteUpdateEqualsRecomputedUdpChecksum) {
  std::mt19937 rng(768);
  for (int i = 0; i < 20000; ++i) {
    const bool v6 = i % 2 == 1;
    SocketAddress src{RandomIp(rng, v6), static_cast<uint16_t>(rng())};
    SocketAddress dst{RandomIp(rng, v6), static_cast<uint16_t>(rng())};
    Bytes segment = RandomBytes(rng, 8 + rng() % 64);  // odd payload lengths included
    Store16(&segment[0], src.port);
    Store16(&segment[2], dst.port);
    Store16(&segment[4], static_cast<uint16_t>(segment.size()));
    Store16(&segment[6], UdpChecksum(src.ip, dst.ip, segment));

    // Rewrite either side; the other keeps its address.
    const bool rewrite_src = rng() % 2 == 0;
    SocketAddress& side = rewrite_src ? src : dst;
    const SocketAddress from = side;
    side = {RandomIp(rng, v6), static_cast<uint16_t>(rng())};
    Store16(&segment[rewrite_src ? 0 : 2], side.port);
    const uint16_t updated = UdpChecksumUpdateEndpoint(Load16(&segment[6]), from, side);
    ASSERT_EQ(updated, UdpChecksum(src.ip, dst.ip, segment)) << i;
    Store16(&segment[6], updated);
    ASSERT_TRUE(UdpChecksumValid(src.ip, dst.ip, segment)) << i;
  }
}

TEST(Checksum, EndpointRewriteKeepsAbsentIpv4ChecksumAbsent) {
  EXPECT_EQ(UdpChecksumUpdateEndpoint(0, testing::Sa("10.0.0.1:1"), testing::Sa("10.0.0.2:2")), 0);
}

TEST(Checksum, Icmpv6ChecksumRejectsCorruption) {
  Bytes message(testdata::kIcmpv6EchoRequestFrame.begin() + 54,
                testdata::kIcmpv6EchoRequestFrame.end());
  EXPECT_TRUE(Icmpv6ChecksumValid(testing::kPeer6, testing::kOur6, message));
  message.back() ^= 1;
  EXPECT_FALSE(Icmpv6ChecksumValid(testing::kPeer6, testing::kOur6, message));
  EXPECT_FALSE(Icmpv6ChecksumValid(testing::kPeer6, testing::kOur6, std::span(message).first(3)));
}

TEST(Checksum, PayloadSumFromAReceivedChecksumEqualsTheSumOfThePayload) {
  std::mt19937 rng(768);
  for (int i = 0; i < 2000; ++i) {
    const bool v6 = i % 2 == 1;
    const IpAddress src = RandomIp(rng, v6);
    const IpAddress dst = RandomIp(rng, v6);
    Bytes segment = RandomBytes(rng, 8 + rng() % 300);
    Store16(&segment[4], static_cast<uint16_t>(segment.size()));
    Store16(&segment[6], UdpChecksum(src, dst, segment));
    const std::optional<uint16_t> sum = UdpPayloadSumFromChecksum(
        src, dst, std::span(segment).first(8), static_cast<uint16_t>(segment.size()));
    ASSERT_TRUE(sum.has_value());
    // Equal as one's-complement values: 0x0000 and 0xffff are both zero.
    const uint16_t expected = ReferenceFoldedSum(std::span(segment).subspan(8));
    ASSERT_EQ(Fold(uint32_t{*sum} + 1), Fold(uint32_t{expected} + 1)) << i;
  }
  Bytes none(8, 0);
  EXPECT_FALSE(UdpPayloadSumFromChecksum(Ip("10.0.0.1"), Ip("10.0.0.2"), none, 8).has_value());
}

TEST(Checksum, SubspanSumFromTheBytesAroundItEqualsTheSumOfTheSubspan) {
  std::mt19937 rng(1071);
  for (int i = 0; i < 20000; ++i) {
    Bytes payload = RandomBytes(rng, 1 + rng() % 200);
    if (i % 16 == 0) std::fill(payload.begin(), payload.end(), 0xff);
    const size_t begin = rng() % (payload.size() + 1);  // odd and even offsets and lengths
    const size_t length = rng() % (payload.size() - begin + 1);
    const std::span<const uint8_t> body = std::span(payload).subspan(begin, length);
    const uint16_t got = SubspanSum(payload, ReferenceFoldedSum(payload), body);
    const uint16_t expected = ReferenceFoldedSum(body);
    ASSERT_EQ(Fold(uint32_t{got} + 1), Fold(uint32_t{expected} + 1))
        << i << " size " << payload.size() << " begin " << begin << " length " << length;
  }
}

}  // namespace
}  // namespace turnpike::dataplane::packet
