// Tests for dataplane/packet/arp.h and the ARP half of neighbor_learning.h: a real request is
// answered with exactly the tshark-checked reply (also in place, also tagged), requests we must
// not answer are refused with the right verdict, and the request builder matches its vector.
#include "dataplane/packet/arp.h"

#include "dataplane/packet/neighbor_learning.h"
#include "gtest/gtest.h"
#include "tests/dataplane/packet/test_util.h"
#include "tests/dataplane/packet/vectors.h"

namespace turnpike::dataplane::packet {
namespace {

using testing::Bytes;
using testing::kOurMac;
using testing::kOurs;
using testing::ToBytes;

Reply Answer(const Bytes& request, Bytes& out) {
  return BuildArpReply(request, ParseFrame(request), kOurMac, kOurs, out);
}

TEST(Arp, ParsesTheRequestFields) {
  const Bytes frame = ToBytes(testdata::kArpRequestFrame);
  const auto m = ParseArp(frame, ParseFrame(frame));
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->op, kArpOpRequest);
  EXPECT_EQ(m->sender_mac, testing::kPeerMac);
  EXPECT_EQ(m->sender_ip, testing::kPeer4);
  EXPECT_TRUE(m->target_mac.IsZero());
  EXPECT_EQ(m->target_ip, testing::kOur4);
}

TEST(Arp, AnswersARequestForOurAddressWithTheExpectedBytes) {
  Bytes out(128, 0xee);
  const Reply r = Answer(ToBytes(testdata::kArpRequestFrame), out);
  ASSERT_EQ(r.verdict, ReplyVerdict::kReply);
  ASSERT_EQ(r.length, 60);
  EXPECT_EQ(Bytes(out.begin(), out.begin() + 60), ToBytes(testdata::kArpReplyFrame));
}

TEST(Arp, AnswersInPlace) {
  Bytes buffer = ToBytes(testdata::kArpRequestFrame);
  const FrameInfo info = ParseFrame(buffer);
  const Reply r = BuildArpReply(buffer, info, kOurMac, kOurs, buffer);
  ASSERT_EQ(r.verdict, ReplyVerdict::kReply);
  EXPECT_EQ(buffer, ToBytes(testdata::kArpReplyFrame));
}

TEST(Arp, KeepsTheRequestsVlanTag) {
  const Bytes request = testing::WithVlan(testdata::kArpRequestFrame, 0x2064);
  Bytes out(128);
  const Reply r = Answer(request, out);
  ASSERT_EQ(r.verdict, ReplyVerdict::kReply);
  ASSERT_EQ(r.length, 64);
  const Bytes expected = testing::WithVlan(testdata::kArpReplyFrame, 0x2064);
  EXPECT_EQ(Bytes(out.begin(), out.begin() + 64), expected);
}

TEST(Arp, DefendsOurAddressAgainstAProbe) {
  Bytes request = ToBytes(testdata::kArpRequestFrame);
  std::fill(request.begin() + 28, request.begin() + 32, 0);  // sender IP 0.0.0.0 (RFC 5227)
  Bytes out(60);
  ASSERT_EQ(Answer(request, out).verdict, ReplyVerdict::kReply);
  EXPECT_EQ(Load32(&out[38]), 0u);  // target IP of the reply: the prober's 0.0.0.0
  EXPECT_EQ(MacAddress::From(&out[0]), testing::kPeerMac);
}

TEST(Arp, RefusesWhatItMustNotAnswer) {
  struct Case {
    const char* name;
    Bytes request;
    ReplyVerdict verdict;
  };
  auto edited = [](size_t at, std::initializer_list<uint8_t> bytes) {
    Bytes f = ToBytes(testdata::kArpRequestFrame);
    std::copy(bytes.begin(), bytes.end(), f.begin() + at);
    return f;
  };
  const Case cases[] = {
      {"target not ours", edited(38, {10, 200, 0, 9}), ReplyVerdict::kNotForUs},
      {"a reply", ToBytes(testdata::kArpReplyFrame), ReplyVerdict::kIgnored},
      {"opcode 3 (RARP)", edited(20, {0, 3}), ReplyVerdict::kIgnored},
      {"multicast sender MAC", edited(22, {0x01, 0x00, 0x5e}), ReplyVerdict::kIgnored},
      {"zero sender MAC", edited(22, {0, 0, 0, 0, 0, 0}), ReplyVerdict::kIgnored},
      {"sent by ourselves", edited(22, {0x02, 0x00, 0x00, 0x00, 0x00, 0x02}),
       ReplyVerdict::kIgnored},
      {"truncated",
       Bytes(testdata::kArpRequestFrame.begin(), testdata::kArpRequestFrame.begin() + 41),
       ReplyVerdict::kMalformed},
      {"hlen 8", edited(18, {8}), ReplyVerdict::kMalformed},
      {"not ARP", ToBytes(testdata::kUdp4Frame), ReplyVerdict::kIgnored},
  };
  for (const Case& c : cases) {
    Bytes out(128, 0xee);
    const Reply r = Answer(c.request, out);
    EXPECT_EQ(r.verdict, c.verdict) << c.name;
    EXPECT_EQ(r.length, 0) << c.name;
    EXPECT_EQ(out, Bytes(128, 0xee)) << c.name;
  }
}

TEST(Arp, NeedsRoomForAPaddedFrame) {
  Bytes out(59);
  EXPECT_EQ(Answer(ToBytes(testdata::kArpRequestFrame), out).verdict, ReplyVerdict::kNoRoom);
}

TEST(Arp, BuildsABroadcastRequestMatchingTheVector) {
  Bytes out(128, 0xee);
  const size_t n =
      BuildArpRequest(kOurMac, testing::kOur4, testing::kPeer4, std::nullopt, std::nullopt, out);
  ASSERT_EQ(n, 60);
  EXPECT_EQ(Bytes(out.begin(), out.begin() + 60), ToBytes(testdata::kArpRequestFromUsFrame));
}

TEST(Arp, BuildsAUnicastTaggedRequest) {
  Bytes out(64);
  const size_t n = BuildArpRequest(kOurMac, testing::kOur4, testing::kPeer4, testing::kPeerMac,
                                   uint16_t{7}, out);
  ASSERT_EQ(n, 64);
  const FrameInfo info = ParseFrame(out);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info.dst_mac, testing::kPeerMac);
  EXPECT_EQ(info.vlan_tci, 7);
  const auto m = ParseArp(out, info);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->op, kArpOpRequest);
  EXPECT_EQ(m->target_ip, testing::kPeer4);
}

TEST(Arp, RequestBuilderRefusesSmallBuffersAndIpv6) {
  Bytes small(59);
  EXPECT_EQ(
      BuildArpRequest(kOurMac, testing::kOur4, testing::kPeer4, std::nullopt, std::nullopt, small),
      0);
  Bytes out(60);
  EXPECT_EQ(
      BuildArpRequest(kOurMac, testing::kOur6, testing::kPeer4, std::nullopt, std::nullopt, out),
      0);
}

TEST(ArpLearning, LearnsTheSenderOfRequestsAndReplies) {
  const Bytes request = ToBytes(testdata::kArpRequestFrame);
  auto o = ExtractNeighbor(request, ParseFrame(request));
  ASSERT_TRUE(o.has_value());
  EXPECT_EQ(o->ip, testing::kPeer4);
  EXPECT_EQ(o->mac, testing::kPeerMac);
  EXPECT_EQ(o->source, NeighborSource::kArpRequest);
  EXPECT_EQ(o->target, testing::kOur4);

  const Bytes reply = ToBytes(testdata::kArpReplyFrame);
  o = ExtractNeighbor(reply, ParseFrame(reply));
  ASSERT_TRUE(o.has_value());
  EXPECT_EQ(o->ip, testing::kOur4);
  EXPECT_EQ(o->mac, kOurMac);
  EXPECT_EQ(o->source, NeighborSource::kArpReply);
}

TEST(ArpLearning, LearnsNothingFromProbesOrBadSenders) {
  Bytes probe = ToBytes(testdata::kArpRequestFrame);
  std::fill(probe.begin() + 28, probe.begin() + 32, 0);
  EXPECT_FALSE(ExtractNeighbor(probe, ParseFrame(probe)).has_value());
  Bytes broadcast_sender = ToBytes(testdata::kArpRequestFrame);
  std::fill(broadcast_sender.begin() + 22, broadcast_sender.begin() + 28, 0xff);
  EXPECT_FALSE(ExtractNeighbor(broadcast_sender, ParseFrame(broadcast_sender)).has_value());
  const Bytes udp = ToBytes(testdata::kUdp4Frame);
  EXPECT_FALSE(ExtractNeighbor(udp, ParseFrame(udp)).has_value());
}

}  // namespace
}  // namespace turnpike::dataplane::packet
