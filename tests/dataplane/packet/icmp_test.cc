// Tests for dataplane/packet/icmp.h: a real ping request (Linux layout, 56 data bytes) is
// answered with exactly the tshark-checked reply, in a separate buffer and in place, with and
// without IP options; malformed or unanswerable requests get the right verdict.
#include "dataplane/packet/icmp.h"

#include "dataplane/packet/checksum.h"
#include "gtest/gtest.h"
#include "tests/dataplane/packet/test_util.h"
#include "tests/dataplane/packet/vectors.h"

namespace turnpike::dataplane::packet {
namespace {

using testing::Bytes;
using testing::FixIpv4Checksum;
using testing::kOurMac;
using testing::kOurs;
using testing::ToBytes;

Reply Answer4(const Bytes& request, Bytes& out) {
  return BuildIcmpEchoReply(request, ParseFrame(request), kOurMac, kOurs, out);
}
Reply Answer6(const Bytes& request, Bytes& out) {
  return BuildIcmpv6EchoReply(request, ParseFrame(request), kOurMac, kOurs, out);
}

TEST(IcmpEcho, AnswersWithTheExpectedBytes) {
  Bytes out(256, 0xee);
  const Reply r = Answer4(ToBytes(testdata::kIcmpEchoRequestFrame), out);
  ASSERT_EQ(r.verdict, ReplyVerdict::kReply);
  ASSERT_EQ(r.length, testdata::kIcmpEchoReplyFrame.size());
  EXPECT_EQ(Bytes(out.begin(), out.begin() + r.length), ToBytes(testdata::kIcmpEchoReplyFrame));
}

TEST(IcmpEcho, AnswersInPlace) {
  Bytes buffer = ToBytes(testdata::kIcmpEchoRequestFrame);
  const FrameInfo info = ParseFrame(buffer);
  const Reply r = BuildIcmpEchoReply(buffer, info, kOurMac, kOurs, buffer);
  ASSERT_EQ(r.verdict, ReplyVerdict::kReply);
  EXPECT_EQ(buffer, ToBytes(testdata::kIcmpEchoReplyFrame));
}

TEST(IcmpEcho, DropsRequestIpOptionsInPlace) {
  // The request with a 4-byte option (NOP NOP NOP EOL): the reply has none, so its ICMP message
  // moves 4 bytes towards the front of the same buffer.
  Bytes buffer = ToBytes(testdata::kIcmpEchoRequestFrame);
  buffer.insert(buffer.begin() + 34, {0x01, 0x01, 0x01, 0x00});
  buffer[14] = 0x46;
  Store16(&buffer[16], Load16(&buffer[16]) + 4);
  FixIpv4Checksum(buffer);
  const FrameInfo info = ParseFrame(buffer);
  ASSERT_TRUE(info.ok());
  const Reply r = BuildIcmpEchoReply(buffer, info, kOurMac, kOurs, buffer);
  ASSERT_EQ(r.verdict, ReplyVerdict::kReply);
  EXPECT_EQ(Bytes(buffer.begin(), buffer.begin() + r.length),
            ToBytes(testdata::kIcmpEchoReplyFrame));
}

TEST(IcmpEcho, HandlesOddLengthDataAndShortFramesWithPadding) {
  for (size_t data_length : {0, 1, 57}) {
    Bytes request(testdata::kIcmpEchoRequestFrame.begin(),
                  testdata::kIcmpEchoRequestFrame.begin() + 42);
    for (size_t i = 0; i < data_length; ++i) {
      request.push_back(static_cast<uint8_t>(0x30 + i));
    }
    Store16(&request[16], static_cast<uint16_t>(28 + data_length));
    FixIpv4Checksum(request);
    Store16(&request[36], 0);
    Store16(&request[36], InternetChecksum(std::span(request).subspan(34)));
    Bytes out(256, 0xee);
    const Reply r = Answer4(request, out);
    ASSERT_EQ(r.verdict, ReplyVerdict::kReply) << data_length;
    EXPECT_EQ(r.length, std::max<size_t>(60, 42 + data_length));
    const FrameInfo info = ParseFrame(std::span(out).first(r.length));
    ASSERT_TRUE(info.ok());
    EXPECT_EQ(info.l4_length, 8 + data_length);
    EXPECT_EQ(Fold(Sum16(std::span(out).subspan(info.l4_offset, info.l4_length))), 0xffff);
    EXPECT_EQ(out[34], kIcmpEchoReply);
    for (size_t i = 42 + data_length; i < r.length; ++i) {
      EXPECT_EQ(out[i], 0) << "padding at " << i;
    }
  }
}

TEST(IcmpEcho, KeepsTheVlanTag) {
  const Bytes request = testing::WithVlan(testdata::kIcmpEchoRequestFrame, 0x0123);
  Bytes out(256);
  const Reply r = Answer4(request, out);
  ASSERT_EQ(r.verdict, ReplyVerdict::kReply);
  EXPECT_EQ(Bytes(out.begin(), out.begin() + r.length),
            testing::WithVlan(testdata::kIcmpEchoReplyFrame, 0x0123));
}

TEST(IcmpEcho, RefusesWhatItMustNotAnswer) {
  struct Case {
    const char* name;
    Bytes request;
    ReplyVerdict verdict;
  };
  auto edited = [](size_t at, std::initializer_list<uint8_t> bytes, bool fix_ip) {
    Bytes f = ToBytes(testdata::kIcmpEchoRequestFrame);
    std::copy(bytes.begin(), bytes.end(), f.begin() + at);
    if (fix_ip) {
      FixIpv4Checksum(f);
    }
    return f;
  };
  const Case cases[] = {
      {"to another address", edited(30, {10, 200, 0, 3}, true), ReplyVerdict::kNotForUs},
      {"bad ICMP checksum", edited(97, {0x00}, false), ReplyVerdict::kMalformed},
      {"code 1", edited(35, {1}, false), ReplyVerdict::kMalformed},
      {"bad IP checksum", edited(22, {1}, false), ReplyVerdict::kMalformed},
      {"an echo reply", ToBytes(testdata::kIcmpEchoReplyFrame), ReplyVerdict::kIgnored},
      {"a fragment", edited(20, {0x20, 0x00}, true), ReplyVerdict::kIgnored},
      {"from 0.0.0.0", edited(26, {0, 0, 0, 0}, true), ReplyVerdict::kIgnored},
      {"from loopback", edited(26, {127, 0, 0, 1}, true), ReplyVerdict::kIgnored},
      {"from multicast", edited(26, {224, 0, 0, 1}, true), ReplyVerdict::kIgnored},
      {"from broadcast", edited(26, {255, 255, 255, 255}, true), ReplyVerdict::kIgnored},
      {"from a group MAC", edited(6, {0x01}, false), ReplyVerdict::kIgnored},
      {"shorter than an echo header", edited(16, {0, 27}, true), ReplyVerdict::kMalformed},
      {"UDP", ToBytes(testdata::kUdp4Frame), ReplyVerdict::kIgnored},
      {"ICMPv6", ToBytes(testdata::kIcmpv6EchoRequestFrame), ReplyVerdict::kIgnored},
  };
  for (const Case& c : cases) {
    Bytes out(256, 0xee);
    const Reply r = Answer4(c.request, out);
    EXPECT_EQ(r.verdict, c.verdict) << c.name;
    EXPECT_EQ(out, Bytes(256, 0xee)) << c.name;
  }
}

TEST(IcmpEcho, NeedsRoomForTheWholeReply) {
  Bytes out(testdata::kIcmpEchoReplyFrame.size() - 1);
  EXPECT_EQ(Answer4(ToBytes(testdata::kIcmpEchoRequestFrame), out).verdict, ReplyVerdict::kNoRoom);
}

TEST(Icmpv6Echo, AnswersWithTheExpectedBytes) {
  Bytes out(256, 0xee);
  const Reply r = Answer6(ToBytes(testdata::kIcmpv6EchoRequestFrame), out);
  ASSERT_EQ(r.verdict, ReplyVerdict::kReply);
  ASSERT_EQ(r.length, testdata::kIcmpv6EchoReplyFrame.size());
  EXPECT_EQ(Bytes(out.begin(), out.begin() + r.length), ToBytes(testdata::kIcmpv6EchoReplyFrame));
}

TEST(Icmpv6Echo, AnswersInPlace) {
  Bytes buffer = ToBytes(testdata::kIcmpv6EchoRequestFrame);
  const FrameInfo info = ParseFrame(buffer);
  ASSERT_EQ(BuildIcmpv6EchoReply(buffer, info, kOurMac, kOurs, buffer).verdict,
            ReplyVerdict::kReply);
  EXPECT_EQ(buffer, ToBytes(testdata::kIcmpv6EchoReplyFrame));
}

TEST(Icmpv6Echo, RefusesWhatItMustNotAnswer) {
  struct Case {
    const char* name;
    Bytes request;
    ReplyVerdict verdict;
  };
  auto edited = [](size_t at, std::initializer_list<uint8_t> bytes, bool fix) {
    Bytes f = ToBytes(testdata::kIcmpv6EchoRequestFrame);
    std::copy(bytes.begin(), bytes.end(), f.begin() + at);
    if (fix) {
      testing::FixIcmpv6Checksum(f);
    }
    return f;
  };
  const Case cases[] = {
      {"to another address", edited(53, {3}, true), ReplyVerdict::kNotForUs},
      {"bad checksum", edited(117, {0}, false), ReplyVerdict::kMalformed},
      {"code 1", edited(55, {1}, true), ReplyVerdict::kMalformed},
      {"from multicast", edited(22, {0xff, 0x02}, true), ReplyVerdict::kIgnored},
      {"from ::", edited(22, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, true),
       ReplyVerdict::kIgnored},
      {"an echo reply", ToBytes(testdata::kIcmpv6EchoReplyFrame), ReplyVerdict::kIgnored},
      {"a neighbour solicitation", ToBytes(testdata::kNeighborSolicitationFrame),
       ReplyVerdict::kIgnored},
      {"behind a destination options header", edited(20, {60}, false), ReplyVerdict::kIgnored},
      {"payload length past the frame", edited(19, {0x41}, false), ReplyVerdict::kMalformed},
  };
  for (const Case& c : cases) {
    Bytes out(256, 0xee);
    const Reply r = Answer6(c.request, out);
    EXPECT_EQ(r.verdict, c.verdict) << c.name;
    EXPECT_EQ(out, Bytes(256, 0xee)) << c.name;
  }
}

}  // namespace
}  // namespace turnpike::dataplane::packet
