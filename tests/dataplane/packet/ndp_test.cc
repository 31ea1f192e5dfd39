// Tests for dataplane/packet/ndp.h and the ND half of neighbor_learning.h: a real Neighbor
// Solicitation is answered with exactly the tshark-checked advertisement (and DAD with the
// all-nodes one), every RFC 4861 7.1.1 validity check refuses its case, and the solicitation
// builder matches its vector.
#include "dataplane/packet/ndp.h"

#include "dataplane/packet/neighbor_learning.h"
#include "gtest/gtest.h"
#include "tests/dataplane/packet/test_util.h"
#include "tests/dataplane/packet/vectors.h"

namespace turnpike::dataplane::packet {
namespace {

using testing::Bytes;
using testing::FixIcmpv6Checksum;
using testing::Ip;
using testing::kOurMac;
using testing::kOurs;
using testing::ToBytes;

Reply Answer(const Bytes& request, Bytes& out) {
  return BuildNeighborAdvertisement(request, ParseFrame(request), kOurMac, kOurs, out);
}

// kNeighborSolicitationFrame with `edit` applied, lengths and checksum fixed when asked.
Bytes EditedNs(void (*edit)(Bytes&), bool fix = true) {
  Bytes f = ToBytes(testdata::kNeighborSolicitationFrame);
  edit(f);
  if (fix) {
    Store16(&f[18], static_cast<uint16_t>(f.size() - 54));
    FixIcmpv6Checksum(f);
  }
  return f;
}

TEST(Ndp, MulticastAddressesFollowRfc4291AndRfc2464) {
  EXPECT_EQ(SolicitedNodeAddress(Ip("2001:db8::2")), Ip("ff02::1:ff00:2"));
  EXPECT_EQ(SolicitedNodeAddress(Ip("fe80::5054:ff:fe12:3456")), Ip("ff02::1:ff12:3456"));
  EXPECT_EQ(Ipv6MulticastMac(Ip("ff02::1:ff12:3456")).ToString(), "33:33:ff:12:34:56");
  EXPECT_EQ(AllNodesAddress(), Ip("ff02::1"));
}

TEST(Ndp, ParsesASolicitation) {
  const Bytes frame = ToBytes(testdata::kNeighborSolicitationFrame);
  const auto m = ParseNeighborDiscovery(frame, ParseFrame(frame));
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->type, kIcmpv6NeighborSolicitation);
  EXPECT_EQ(m->target, testing::kOur6);
  EXPECT_EQ(m->link_layer, testing::kPeerMac);
}

TEST(Ndp, AnswersASolicitationWithTheExpectedBytes) {
  Bytes out(128, 0xee);
  const Reply r = Answer(ToBytes(testdata::kNeighborSolicitationFrame), out);
  ASSERT_EQ(r.verdict, ReplyVerdict::kReply);
  ASSERT_EQ(r.length, 86);
  EXPECT_EQ(Bytes(out.begin(), out.begin() + 86), ToBytes(testdata::kNeighborAdvertisementFrame));
}

TEST(Ndp, AnswersInPlace) {
  Bytes buffer = ToBytes(testdata::kNeighborSolicitationFrame);
  const FrameInfo info = ParseFrame(buffer);
  ASSERT_EQ(BuildNeighborAdvertisement(buffer, info, kOurMac, kOurs, buffer).verdict,
            ReplyVerdict::kReply);
  EXPECT_EQ(buffer, ToBytes(testdata::kNeighborAdvertisementFrame));
}

TEST(Ndp, AnswersDuplicateAddressDetectionToAllNodes) {
  Bytes out(128, 0xee);
  const Reply r = Answer(ToBytes(testdata::kDadSolicitationFrame), out);
  ASSERT_EQ(r.verdict, ReplyVerdict::kReply);
  ASSERT_EQ(r.length, 86);
  EXPECT_EQ(Bytes(out.begin(), out.begin() + 86), ToBytes(testdata::kDadAdvertisementFrame));
}

TEST(Ndp, AnswersAUnicastSolicitationWithoutLinkLayerOptionToTheFrameSource) {
  // A NUD probe: unicast to our address, no source link-layer option (RFC 4861 7.2.2 allows it).
  const Bytes request = EditedNs([](Bytes& f) {
    f.resize(78);                                                        // drop the option
    std::copy(f.begin() + 54 + 8, f.begin() + 54 + 24, f.begin() + 38);  // dst = target
  });
  Bytes out(128);
  const Reply r = Answer(request, out);
  ASSERT_EQ(r.verdict, ReplyVerdict::kReply);
  EXPECT_EQ(Bytes(out.begin(), out.begin() + 86), ToBytes(testdata::kNeighborAdvertisementFrame));
}

TEST(Ndp, KeepsTheVlanTag) {
  const Bytes request = testing::WithVlan(testdata::kNeighborSolicitationFrame, 0x0064);
  Bytes out(128);
  const Reply r = Answer(request, out);
  ASSERT_EQ(r.verdict, ReplyVerdict::kReply);
  EXPECT_EQ(Bytes(out.begin(), out.begin() + r.length),
            testing::WithVlan(testdata::kNeighborAdvertisementFrame, 0x0064));
}

TEST(Ndp, RefusesInvalidOrForeignSolicitations) {
  struct Case {
    const char* name;
    Bytes request;
    ReplyVerdict verdict;
  };
  const Case cases[] = {
      {"target not ours", EditedNs([](Bytes& f) { f[77] = 9; }), ReplyVerdict::kNotForUs},
      {"hop limit 254", EditedNs([](Bytes& f) { f[21] = 254; }), ReplyVerdict::kMalformed},
      {"bad checksum", EditedNs([](Bytes& f) { f[85] ^= 1; }, false), ReplyVerdict::kMalformed},
      {"code 1", EditedNs([](Bytes& f) { f[55] = 1; }), ReplyVerdict::kMalformed},
      {"multicast target", EditedNs([](Bytes& f) { f[62] = 0xff; }), ReplyVerdict::kMalformed},
      {"shorter than 24 bytes", EditedNs([](Bytes& f) { f.resize(54 + 20); }),
       ReplyVerdict::kMalformed},
      {"option length 0", EditedNs([](Bytes& f) { f[79] = 0; }), ReplyVerdict::kMalformed},
      {"option past the message", EditedNs([](Bytes& f) { f[79] = 2; }), ReplyVerdict::kMalformed},
      {"one stray option byte", EditedNs([](Bytes& f) { f.push_back(1); }),
       ReplyVerdict::kMalformed},
      {"DAD with a source link-layer option",
       EditedNs([](Bytes& f) { std::fill(f.begin() + 22, f.begin() + 38, 0); }),
       ReplyVerdict::kMalformed},
      {"DAD to a unicast address",
       [] {
         Bytes f = ToBytes(testdata::kDadSolicitationFrame);
         std::copy(f.begin() + 62, f.begin() + 78, f.begin() + 38);
         FixIcmpv6Checksum(f);
         return f;
       }(),
       ReplyVerdict::kMalformed},
      {"behind a hop-by-hop header", EditedNs([](Bytes& f) { f[20] = 0; }, false),
       ReplyVerdict::kIgnored},
      {"our own, looped back", EditedNs([](Bytes& f) { kOurMac.CopyTo(&f[6]); }, false),
       ReplyVerdict::kIgnored},
      {"an advertisement", ToBytes(testdata::kPeerAdvertisementFrame), ReplyVerdict::kIgnored},
      {"an echo request", ToBytes(testdata::kIcmpv6EchoRequestFrame), ReplyVerdict::kIgnored},
      {"IPv4", ToBytes(testdata::kUdp4Frame), ReplyVerdict::kIgnored},
  };
  for (const Case& c : cases) {
    Bytes out(128, 0xee);
    const Reply r = Answer(c.request, out);
    EXPECT_EQ(r.verdict, c.verdict) << c.name;
    EXPECT_EQ(out, Bytes(128, 0xee)) << c.name;
  }
}

TEST(Ndp, SkipsUnknownOptionsAndUsesTheFirstLinkLayerOption) {
  // A nonce option (RFC 3971, type 14, 8 bytes) before the source link-layer option.
  const Bytes request = EditedNs([](Bytes& f) {
    f.insert(f.begin() + 78, {14, 1, 1, 2, 3, 4, 5, 6});
  });
  const auto m = ParseNeighborDiscovery(request, ParseFrame(request));
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->link_layer, testing::kPeerMac);
}

TEST(Ndp, NeedsRoomForTheAdvertisement) {
  Bytes out(85);
  EXPECT_EQ(Answer(ToBytes(testdata::kNeighborSolicitationFrame), out).verdict,
            ReplyVerdict::kNoRoom);
}

TEST(Ndp, BuildsAMulticastSolicitationMatchingTheVector) {
  Bytes out(128, 0xee);
  const size_t n = BuildNeighborSolicitation(kOurMac, testing::kOur6, testing::kPeer6, std::nullopt,
                                             std::nullopt, out);
  ASSERT_EQ(n, 86);
  EXPECT_EQ(Bytes(out.begin(), out.begin() + 86),
            ToBytes(testdata::kNeighborSolicitationFromUsFrame));
}

TEST(Ndp, BuildsAValidUnicastSolicitation) {
  Bytes out(90);
  const size_t n = BuildNeighborSolicitation(kOurMac, testing::kOur6, testing::kPeer6,
                                             testing::kPeerMac, uint16_t{5}, out);
  ASSERT_EQ(n, 90);
  const FrameInfo info = ParseFrame(out);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info.dst_mac, testing::kPeerMac);
  EXPECT_EQ(info.dst_ip, testing::kPeer6);
  const auto m = ParseNeighborDiscovery(out, info);  // checks hop limit and checksum
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->target, testing::kPeer6);
  EXPECT_EQ(m->link_layer, kOurMac);
}

TEST(Ndp, SolicitationBuilderRefusesSmallBuffersAndIpv4) {
  Bytes small(85);
  EXPECT_EQ(BuildNeighborSolicitation(kOurMac, testing::kOur6, testing::kPeer6, std::nullopt,
                                      std::nullopt, small),
            0);
  Bytes out(86);
  EXPECT_EQ(BuildNeighborSolicitation(kOurMac, testing::kOur4, testing::kPeer6, std::nullopt,
                                      std::nullopt, out),
            0);
}

TEST(NdLearning, LearnsTheSolicitorAndTheAdvertisedTarget) {
  const Bytes ns = ToBytes(testdata::kNeighborSolicitationFrame);
  auto o = ExtractNeighbor(ns, ParseFrame(ns));
  ASSERT_TRUE(o.has_value());
  EXPECT_EQ(o->ip, testing::kPeer6);
  EXPECT_EQ(o->mac, testing::kPeerMac);
  EXPECT_EQ(o->source, NeighborSource::kNeighborSolicitation);
  EXPECT_EQ(o->target, testing::kOur6);

  const Bytes na = ToBytes(testdata::kPeerAdvertisementFrame);
  o = ExtractNeighbor(na, ParseFrame(na));
  ASSERT_TRUE(o.has_value());
  EXPECT_EQ(o->ip, testing::kPeer6);
  EXPECT_EQ(o->mac, testing::kPeerMac);
  EXPECT_EQ(o->source, NeighborSource::kNeighborAdvertisement);
  EXPECT_TRUE(o->solicited);
  EXPECT_TRUE(o->override_flag);
}

TEST(NdLearning, LearnsNothingWithoutAValidLinkLayerAddress) {
  const Bytes dad = ToBytes(testdata::kDadSolicitationFrame);
  EXPECT_FALSE(ExtractNeighbor(dad, ParseFrame(dad)).has_value());
  Bytes no_option = ToBytes(testdata::kPeerAdvertisementFrame);
  no_option.resize(78);
  Store16(&no_option[18], 24);
  FixIcmpv6Checksum(no_option);
  EXPECT_TRUE(ParseNeighborDiscovery(no_option, ParseFrame(no_option)).has_value());
  EXPECT_FALSE(ExtractNeighbor(no_option, ParseFrame(no_option)).has_value());
  Bytes multicast_solicited = ToBytes(testdata::kPeerAdvertisementFrame);
  std::copy(testdata::kDadAdvertisementFrame.begin() + 38,
            testdata::kDadAdvertisementFrame.begin() + 54, multicast_solicited.begin() + 38);
  FixIcmpv6Checksum(multicast_solicited);  // to ff02::1 with S set: invalid (RFC 4861 7.1.2)
  EXPECT_FALSE(ExtractNeighbor(multicast_solicited, ParseFrame(multicast_solicited)).has_value());
  Bytes hop_limit = ToBytes(testdata::kPeerAdvertisementFrame);
  hop_limit[21] = 64;
  EXPECT_FALSE(ExtractNeighbor(hop_limit, ParseFrame(hop_limit)).has_value());
}

}  // namespace
}  // namespace turnpike::dataplane::packet
