// Tests for the peer address policy (turn/peer_policy.h): the built-in deny list, IPv6 forms
// that embed IPv4, allow-loopback-peers, allowed-peer-ip and denied-peer-ip.

#include "turn/peer_policy.h"

#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace turnpike::turn {
namespace {

IpAddress Ip(const char* text) {
  auto ip = IpAddress::Parse(text);
  EXPECT_TRUE(ip.has_value()) << text;
  return ip.value_or(IpAddress{});
}

IpRange Range(const char* first, const char* last) { return IpRange{Ip(first), Ip(last)}; }

// The list from the design, first and last address of each range.
const std::vector<std::pair<const char*, const char*>> kExpectedDenied = {
    {"0.0.0.0", "0.255.255.255"},
    {"127.0.0.0", "127.255.255.255"},
    {"10.0.0.0", "10.255.255.255"},
    {"172.16.0.0", "172.31.255.255"},
    {"192.168.0.0", "192.168.255.255"},
    {"100.64.0.0", "100.127.255.255"},
    {"169.254.0.0", "169.254.255.255"},
    {"192.0.0.0", "192.0.0.255"},
    {"192.0.2.0", "192.0.2.255"},
    {"198.18.0.0", "198.19.255.255"},
    {"198.51.100.0", "198.51.100.255"},
    {"203.0.113.0", "203.0.113.255"},
    {"224.0.0.0", "239.255.255.255"},
    {"240.0.0.0", "255.255.255.255"},
    {"::1", "::1"},
    {"::", "::"},
    {"fc00::", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
    {"fe80::", "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
    {"ff00::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
    {"64:ff9b::", "64:ff9b::ffff:ffff"},
    {"2001::", "2001:0:ffff:ffff:ffff:ffff:ffff:ffff"},
    {"2002::", "2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
};

TEST(PeerPolicyTest, DefaultListIsExactlyTheDesignedRanges) {
  const auto& denied = PeerPolicy::DefaultDenied();
  ASSERT_EQ(denied.size(), kExpectedDenied.size());
  for (size_t i = 0; i < denied.size(); ++i) {
    EXPECT_EQ(denied[i], Range(kExpectedDenied[i].first, kExpectedDenied[i].second))
        << "entry " << i << " " << denied[i].first.ToString() << "-" << denied[i].last.ToString();
  }
}

TEST(PeerPolicyTest, FirstAndLastAddressOfEveryDefaultRangeAreDenied) {
  PeerPolicy policy{ServerConfig{}};
  for (const auto& [first, last] : kExpectedDenied) {
    EXPECT_FALSE(policy.IsAllowed(Ip(first))) << first;
    EXPECT_FALSE(policy.IsAllowed(Ip(last))) << last;
  }
}

TEST(PeerPolicyTest, NeighboursOfDeniedRangesAreAllowed) {
  PeerPolicy policy{ServerConfig{}};
  for (const char* a :
       {"1.0.0.0", "9.255.255.255", "11.0.0.0", "126.255.255.255", "128.0.0.0", "172.15.255.255",
        "172.32.0.0", "100.63.255.255", "100.128.0.0", "198.17.255.255", "198.20.0.0",
        "223.255.255.255", "1::", "fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "fe00::", "fec0::", "64:ff9b:0:0:0:1::", "2001:1::", "2003::"}) {
    EXPECT_TRUE(policy.IsAllowed(Ip(a))) << a;
  }
}

TEST(PeerPolicyTest, PublicAddressesAreAllowed) {
  PeerPolicy policy{ServerConfig{}};
  for (const char* a : {"8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700::1111",
                        "2a00:1450:4001:80b::200e", "::ffff:8.8.8.8"}) {
    EXPECT_TRUE(policy.IsAllowed(Ip(a))) << a;
  }
}

TEST(PeerPolicyTest, IPv6FormsEmbeddingDeniedIPv4AreDenied) {
  PeerPolicy policy{ServerConfig{}};
  for (const char* a : {
           "::ffff:127.0.0.1",        // IPv4-mapped loopback
           "::ffff:169.254.169.254",  // IPv4-mapped metadata service
           "::ffff:10.0.0.1",         // IPv4-mapped private
           "::ffff:0.0.0.0",          // IPv4-mapped "this host"
           "64:ff9b::a9fe:a9fe",      // NAT64 of 169.254.169.254
           "64:ff9b::808:808",        // NAT64 of a public address: the prefix itself is denied
           "2002:7f00:1::1",          // 6to4 of 127.0.0.1
           "2002:a00:1::1",           // 6to4 of 10.0.0.1
           "::127.0.0.1",             // IPv4-compatible loopback
           "::10.1.2.3",              // IPv4-compatible private
           "2001:0::",                // Teredo
           "2001:0:4136:e378:8000:63bf:80ff:fffe",  // Teredo for client 127.0.0.1
       }) {
    EXPECT_FALSE(policy.IsAllowed(Ip(a))) << a;
  }
}

TEST(PeerPolicyTest, AllowLoopbackOpensLoopbackOnly) {
  ServerConfig config;
  config.allow_loopback_peers = true;
  PeerPolicy policy(config);
  EXPECT_TRUE(policy.IsAllowed(Ip("127.0.0.1")));
  EXPECT_TRUE(policy.IsAllowed(Ip("127.255.255.254")));
  EXPECT_TRUE(policy.IsAllowed(Ip("::1")));
  EXPECT_TRUE(policy.IsAllowed(Ip("::ffff:127.0.0.1")));
  EXPECT_TRUE(policy.IsAllowed(Ip("::127.0.0.1")));
  EXPECT_FALSE(policy.IsAllowed(Ip("10.0.0.1")));
  EXPECT_FALSE(policy.IsAllowed(Ip("::ffff:10.0.0.1")));
  EXPECT_FALSE(policy.IsAllowed(Ip("0.0.0.0")));
  EXPECT_FALSE(policy.IsAllowed(Ip("::")));
  EXPECT_FALSE(policy.IsAllowed(Ip("169.254.169.254")));
  EXPECT_FALSE(policy.IsAllowed(Ip("fe80::1")));
  // NAT64 and 6to4 prefixes stay denied as IPv6 ranges in their own right.
  EXPECT_FALSE(policy.IsAllowed(Ip("64:ff9b::7f00:1")));
  EXPECT_FALSE(policy.IsAllowed(Ip("2002:7f00:1::1")));
}

TEST(PeerPolicyTest, ExplicitDenyOfLoopbackHoldsWithAllowLoopback) {
  ServerConfig config;
  config.allow_loopback_peers = true;
  config.denied_peer_ips.push_back(Range("127.0.0.2", "127.0.0.2"));
  PeerPolicy policy(config);
  EXPECT_TRUE(policy.IsAllowed(Ip("127.0.0.1")));
  EXPECT_FALSE(policy.IsAllowed(Ip("127.0.0.2")));
  EXPECT_FALSE(policy.IsAllowed(Ip("::ffff:127.0.0.2")));
}

TEST(PeerPolicyTest, AllowedPeerIpOpensAPrivateRange) {
  ServerConfig config;
  config.allowed_peer_ips.push_back(Range("10.1.0.0", "10.1.255.255"));
  PeerPolicy policy(config);
  EXPECT_TRUE(policy.IsAllowed(Ip("10.1.0.0")));
  EXPECT_TRUE(policy.IsAllowed(Ip("10.1.2.3")));
  EXPECT_TRUE(policy.IsAllowed(Ip("10.1.255.255")));
  EXPECT_TRUE(policy.IsAllowed(Ip("::ffff:10.1.2.3")));  // the mapped form of an allowed peer
  EXPECT_FALSE(policy.IsAllowed(Ip("10.0.255.255")));
  EXPECT_FALSE(policy.IsAllowed(Ip("10.2.0.0")));
  EXPECT_FALSE(policy.IsAllowed(Ip("64:ff9b::a01:203")));  // NAT64 prefix is still denied
}

TEST(PeerPolicyTest, AllowedPeerIpOverridesDeniedPeerIp) {
  ServerConfig config;
  config.denied_peer_ips.push_back(Range("203.0.0.0", "203.255.255.255"));
  config.allowed_peer_ips.push_back(Range("203.1.1.1", "203.1.1.1"));
  PeerPolicy policy(config);
  EXPECT_TRUE(policy.IsAllowed(Ip("203.1.1.1")));
  EXPECT_FALSE(policy.IsAllowed(Ip("203.1.1.2")));
}

TEST(PeerPolicyTest, DeniedPeerIpClosesAPublicRange) {
  ServerConfig config;
  config.denied_peer_ips.push_back(Range("8.8.8.0", "8.8.8.255"));
  config.denied_peer_ips.push_back(Range("2606:4700::", "2606:4700::ffff"));
  PeerPolicy policy(config);
  EXPECT_FALSE(policy.IsAllowed(Ip("8.8.8.8")));
  EXPECT_FALSE(policy.IsAllowed(Ip("::ffff:8.8.8.8")));  // the mapped form too
  EXPECT_FALSE(policy.IsAllowed(Ip("2606:4700::1111")));
  EXPECT_TRUE(policy.IsAllowed(Ip("8.8.4.4")));
  EXPECT_TRUE(policy.IsAllowed(Ip("2606:4700::1:0")));
}

TEST(PeerPolicyTest, AllowOnTheExactIPv6FormWins) {
  // An operator who opens the NAT64 prefix asked for everything behind it, including the
  // NAT64 form of a private address: documented, not an accident.
  ServerConfig config;
  config.allowed_peer_ips.push_back(Range("64:ff9b::", "64:ff9b::ffff:ffff"));
  PeerPolicy policy(config);
  EXPECT_TRUE(policy.IsAllowed(Ip("64:ff9b::808:808")));
  EXPECT_TRUE(policy.IsAllowed(Ip("64:ff9b::a9fe:a9fe")));
  EXPECT_FALSE(policy.IsAllowed(Ip("169.254.169.254")));
  EXPECT_FALSE(policy.IsAllowed(Ip("::ffff:169.254.169.254")));
}

TEST(IpRangeTest, ContainsComparesWithinOneFamily) {
  IpRange r = Range("10.0.0.5", "10.0.1.4");
  EXPECT_TRUE(r.Contains(Ip("10.0.0.5")));
  EXPECT_TRUE(r.Contains(Ip("10.0.0.255")));
  EXPECT_TRUE(r.Contains(Ip("10.0.1.4")));
  EXPECT_FALSE(r.Contains(Ip("10.0.0.4")));
  EXPECT_FALSE(r.Contains(Ip("10.0.1.5")));
  EXPECT_FALSE(r.Contains(Ip("::ffff:10.0.0.6")));  // another family never matches
  IpRange v6 = Range("2001:db8::", "2001:db8::ff");
  EXPECT_TRUE(v6.Contains(Ip("2001:db8::80")));
  EXPECT_FALSE(v6.Contains(Ip("2001:db8::100")));
  EXPECT_FALSE(v6.Contains(Ip("10.0.0.6")));
}

}  // namespace
}  // namespace turnpike::turn
