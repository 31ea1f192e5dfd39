// Tests for the coturn-compatible configuration reader (control/config.h): file syntax, command
// line precedence, repeatable keys, booleans, values, error messages, ignored coturn options and
// a realistic coturn turnserver.conf.

#include "control/config.h"

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace turnpike {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

IpAddress Ip(const char* text) { return IpAddress::Parse(text).value(); }

// A configuration file in a fresh temporary directory, removed at the end of the test.
class TempFile {
 public:
  explicit TempFile(std::string_view contents) {
    char dir_template[] = "/tmp/turnpike_config_test.XXXXXX";
    dir_ = mkdtemp(dir_template);
    path_ = dir_ + "/turnserver.conf";
    std::ofstream(path_) << contents;
  }
  ~TempFile() {
    unlink(path_.c_str());
    rmdir(dir_.c_str());
  }
  const std::string& path() const { return path_; }

 private:
  std::string dir_;
  std::string path_;
};

absl::StatusOr<LoadedConfig> Load(std::vector<std::string> args) {
  std::vector<const char*> argv = {"turnpiked"};
  for (const std::string& a : args) {
    argv.push_back(a.c_str());
  }
  return LoadConfig(static_cast<int>(argv.size()), argv.data());
}

absl::StatusOr<LoadedConfig> LoadText(std::string_view text, std::vector<std::string> args = {}) {
  TempFile file(text);
  args.insert(args.begin(), "-c=" + file.path());
  return Load(std::move(args));
}

std::string ErrorOf(const absl::StatusOr<LoadedConfig>& r) {
  EXPECT_FALSE(r.ok());
  if (r.ok()) {
    return "";
  }
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  std::string msg(r.status().message());
  EXPECT_EQ(msg.find('\n'), std::string::npos) << "one line: " << msg;
  return msg;
}

TEST(ConfigTest, DefaultsWithoutArguments) {
  auto r = Load({});
  ASSERT_TRUE(r.ok()) << r.status();
  const ServerConfig& c = r->config;
  EXPECT_EQ(c.listening_port, 3478);
  EXPECT_EQ(c.min_port, 20000);
  EXPECT_EQ(c.max_port, 29999);
  EXPECT_FALSE(c.lt_cred_mech);
  EXPECT_FALSE(c.no_auth);
  EXPECT_FALSE(c.software_attribute);
  EXPECT_THAT(r->warnings, IsEmpty());
  EXPECT_FALSE(r->help);
}

TEST(ConfigTest, FileSyntaxFollowsCoturn) {
  auto r = LoadText(
      "# comment\n"
      "   # indented comment\n"
      "\n"
      "listening-port=3479\n"
      "  min-port = 40000  \n"
      "max-port\t50000\r\n"
      "realm \"example.org\"\n"
      "static-auth-secret=\"s3cr#t with spaces\"\n"
      "verbose\n"
      "no-multicast-peers=false\n");
  ASSERT_TRUE(r.ok()) << r.status();
  const ServerConfig& c = r->config;
  EXPECT_EQ(c.listening_port, 3479);
  EXPECT_EQ(c.min_port, 40000);
  EXPECT_EQ(c.max_port, 50000);
  EXPECT_EQ(c.realm, "example.org");
  EXPECT_THAT(c.static_auth_secrets, ElementsAre("s3cr#t with spaces"));
  EXPECT_TRUE(c.use_auth_secret);  // implied by static-auth-secret, as in coturn
  EXPECT_TRUE(c.verbose);
  EXPECT_FALSE(c.no_multicast_peers);
}

TEST(ConfigTest, ParseConfigTextAppliesOverExistingValues) {
  LoadedConfig out;
  out.config.realm = "before";
  out.config.min_port = 1000;
  ASSERT_TRUE(ParseConfigText("realm=after\n", "inline", &out).ok());
  EXPECT_EQ(out.config.realm, "after");
  EXPECT_EQ(out.config.min_port, 1000);
}

TEST(ConfigTest, CommandLineWinsOverFileRegardlessOfOrder) {
  TempFile file("min-port=40000\nmax-port=50000\nrealm=file.example\n");
  auto r = Load({"--min-port=41000", "-c", file.path(), "--realm", "cli.example"});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->config.min_port, 41000);
  EXPECT_EQ(r->config.max_port, 50000);
  EXPECT_EQ(r->config.realm, "cli.example");

  auto r2 = Load({"--conf-file=" + file.path(), "--max-port=45000"});
  ASSERT_TRUE(r2.ok()) << r2.status();
  EXPECT_EQ(r2->config.min_port, 40000);
  EXPECT_EQ(r2->config.max_port, 45000);
}

TEST(ConfigTest, RepeatableKeysAccumulateAndCommandLineReplacesTheFileList) {
  const char* text =
      "listening-ip=192.0.2.1\n"
      "listening-ip=2001:db8::1\n"
      "relay-ip=192.0.2.1\n"
      "denied-peer-ip=198.51.100.7\n"
      "denied-peer-ip=203.0.113.0-203.0.113.9\n"
      "user=alice:pw1\n"
      "user=bob:pw2\n";
  auto file_only = LoadText(text);
  ASSERT_TRUE(file_only.ok()) << file_only.status();
  EXPECT_THAT(file_only->config.listening_ips, ElementsAre(Ip("192.0.2.1"), Ip("2001:db8::1")));
  EXPECT_EQ(file_only->config.denied_peer_ips.size(), 2u);
  ASSERT_EQ(file_only->config.users.size(), 2u);
  EXPECT_EQ(file_only->config.users[1].name, "bob");

  auto both = LoadText(text, {"--listening-ip=127.0.0.1", "--listening-ip=::1", "--user=carol:x"});
  ASSERT_TRUE(both.ok()) << both.status();
  EXPECT_THAT(both->config.listening_ips, ElementsAre(Ip("127.0.0.1"), Ip("::1")));
  ASSERT_EQ(both->config.users.size(), 1u);
  EXPECT_EQ(both->config.users[0].name, "carol");
  // Lists the command line does not mention keep the file's values.
  EXPECT_EQ(both->config.denied_peer_ips.size(), 2u);
  EXPECT_THAT(both->config.relay_ips, ElementsAre(Ip("192.0.2.1")));
}

TEST(ConfigTest, BooleansBareAndWithValues) {
  auto r = Load({"--verbose", "--allow-loopback-peers=yes", "--software-attribute=1"});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->config.verbose);
  EXPECT_TRUE(r->config.allow_loopback_peers);
  EXPECT_TRUE(r->config.software_attribute);

  auto off = LoadText("verbose\nsoftware-attribute\n",
                      {"--verbose=false", "--no-software-attribute=true"});
  ASSERT_TRUE(off.ok()) << off.status();
  EXPECT_FALSE(off->config.verbose);
  EXPECT_FALSE(off->config.software_attribute);

  for (const char* v : {"true", "1", "yes", "TRUE", "on"}) {
    auto t = Load({absl::StrCat("--verbose=", v)});
    ASSERT_TRUE(t.ok()) << v;
    EXPECT_TRUE(t->config.verbose) << v;
  }
  for (const char* v : {"false", "0", "no", "No", "off"}) {
    auto f = LoadText(absl::StrCat("verbose=", v, "\n"));
    ASSERT_TRUE(f.ok()) << v;
    EXPECT_FALSE(f->config.verbose) << v;
  }
}

TEST(ConfigTest, ShortAndVerboseAliases) {
  auto r = Load({"-v", "-p", "3480", "-L", "127.0.0.1", "-r=short.example"});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->config.verbose);
  EXPECT_EQ(r->config.listening_port, 3480);
  EXPECT_THAT(r->config.listening_ips, ElementsAre(Ip("127.0.0.1")));
  EXPECT_EQ(r->config.realm, "short.example");

  auto big_v = LoadText("Verbose\n");
  ASSERT_TRUE(big_v.ok()) << big_v.status();
  EXPECT_TRUE(big_v->config.verbose);
}

TEST(ConfigTest, HelpAndVersionFlags) {
  auto h = Load({"-h"});
  ASSERT_TRUE(h.ok());
  EXPECT_TRUE(h->help);
  auto h2 = Load({"--help", "-c", "/nonexistent/turnserver.conf"});
  ASSERT_TRUE(h2.ok()) << "--help must work even with a missing file";
  EXPECT_TRUE(h2->help);
  auto v = Load({"--version"});
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->version);
  EXPECT_FALSE(v->help);
  std::string usage = Usage();
  EXPECT_THAT(usage, HasSubstr("--min-port=PORT"));
  EXPECT_THAT(usage, HasSubstr("--denied-peer-ip="));
  EXPECT_THAT(usage, HasSubstr("-c, --conf-file"));
}

TEST(ConfigTest, UnknownOptionNamesItAndWhere) {
  TempFile file("realm=x\n\n# c\nlistening-port=3478\nfoo=bar\n");
  EXPECT_EQ(ErrorOf(Load({"-c", file.path()})),
            absl::StrCat("unknown option 'foo' at ", file.path(), ":5"));
  EXPECT_EQ(ErrorOf(Load({"--foo=1"})), "unknown option '--foo' (command line)");
  EXPECT_EQ(ErrorOf(Load({"-Z"})), "unknown option '-Z' (command line)");
  EXPECT_EQ(ErrorOf(Load({"stray"})), "unexpected argument 'stray' (command line)");
  // Option names are case-sensitive, as in coturn.
  EXPECT_THAT(ErrorOf(Load({"--Min-Port=1"})), HasSubstr("unknown option '--Min-Port'"));
}

TEST(ConfigTest, BadValuesNameTheOption) {
  struct Case {
    std::vector<std::string> args;
    std::string expected_prefix;
  };
  const std::vector<Case> cases = {
      {{"--min-port=abc"}, "bad value 'abc' for min-port (command line)"},
      {{"--min-port=0"}, "bad value '0' for min-port (command line)"},
      {{"--max-port=65536"}, "bad value '65536' for max-port (command line)"},
      {{"--listening-port=-1"}, "bad value '-1' for listening-port (command line)"},
      {{"--listening-ip=300.1.1.1"}, "bad value '300.1.1.1' for listening-ip (command line)"},
      {{"--relay-ip=example.org"}, "bad value 'example.org' for relay-ip (command line)"},
      {{"--external-ip=1.2.3.4/::1"}, "bad value '1.2.3.4/::1' for external-ip (command line)"},
      {{"--user=nopassword"}, "bad value 'nopassword' for user (command line)"},
      {{"--user=:pw"}, "bad value ':pw' for user (command line)"},
      {{"--user=bob:0x1234"}, "bad value 'bob:0x1234' for user (command line)"},
      {{"--verbose=maybe"}, "bad value 'maybe' for verbose (command line)"},
      {{"--log-format=xml"}, "bad value 'xml' for log-format (command line)"},
      {{"--backend=netmap"}, "bad value 'netmap' for backend (command line)"},
      {{"--max-bps=1.5"}, "bad value '1.5' for max-bps (command line)"},
      {{"--user-quota=99999999999"}, "bad value '99999999999' for user-quota (command line)"},
      {{"--stale-nonce=x"}, "bad value 'x' for stale-nonce (command line)"},
      {{"--denied-peer-ip=10.0.0.9-10.0.0.1"},
       "bad value '10.0.0.9-10.0.0.1' for denied-peer-ip (command line)"},
      {{"--allowed-peer-ip=10.0.0.1-::1"},
       "bad value '10.0.0.1-::1' for allowed-peer-ip (command line)"},
      {{"--allowed-peer-ip=10.0.0.0/33"},
       "bad value '10.0.0.0/33' for allowed-peer-ip (command line)"},
      {{"--min-port"}, "missing value for min-port (command line)"},
      {{"--realm", "--verbose"}, "missing value for realm (command line)"},
      {{"--help=yes"}, "bad value 'yes' for help (command line)"},
  };
  for (const Case& c : cases) {
    std::string err = ErrorOf(Load(c.args));
    EXPECT_TRUE(absl::StartsWith(err, c.expected_prefix))
        << "got: " << err << "\nwant prefix: " << c.expected_prefix;
  }
  TempFile file("realm=x\nmin-port=abc\n");
  EXPECT_EQ(ErrorOf(Load({"-c", file.path()})),
            absl::StrCat("bad value 'abc' for min-port at ", file.path(),
                         ":2: expected a whole "
                         "number"));
  TempFile missing("max-port\n");
  EXPECT_EQ(ErrorOf(Load({"-c", missing.path()})),
            absl::StrCat("missing value for max-port at ", missing.path(), ":1"));
}

TEST(ConfigTest, MissingFileIsAnError) {
  EXPECT_THAT(ErrorOf(Load({"-c", "/nonexistent/turnserver.conf"})),
              HasSubstr("cannot read configuration file '/nonexistent/turnserver.conf'"));
  EXPECT_THAT(ErrorOf(Load({"-c"})), HasSubstr("missing value for conf-file"));
}

TEST(ConfigTest, PortRangeAndLifetimeChecks) {
  EXPECT_THAT(ErrorOf(Load({"--min-port=40000", "--max-port=30000"})),
              HasSubstr("min-port (40000) is greater than max-port (30000)"));
  auto equal = Load({"--min-port=40000", "--max-port=40000"});
  ASSERT_TRUE(equal.ok()) << equal.status();
  EXPECT_THAT(ErrorOf(Load({"--default-allocate-lifetime=900", "--max-allocate-lifetime=600"})),
              HasSubstr("default-allocate-lifetime (900) is greater than max-allocate-lifetime"));
  auto clamped = Load({"--max-allocate-lifetime=300"});
  ASSERT_TRUE(clamped.ok()) << clamped.status();
  EXPECT_EQ(clamped->config.default_allocate_lifetime, 300u);
}

TEST(ConfigTest, IgnoredCoturnOptionsWarnOnce) {
  auto r = LoadText("fingerprint\nno-cli\ncli-password=secret\nfingerprint\nCA-file /etc/x.pem\n",
                    {"--no-dtls", "--tcp-proxy-port", "5555"});
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->warnings.size(), 6u);
  EXPECT_THAT(r->warnings[0], HasSubstr("ignoring coturn option 'fingerprint' at "));
  EXPECT_THAT(r->warnings[0], HasSubstr(":1: "));
  EXPECT_THAT(r->warnings[1], HasSubstr("'no-cli'"));
  EXPECT_THAT(r->warnings[2], HasSubstr("'cli-password'"));
  EXPECT_THAT(r->warnings[3], HasSubstr("'CA-file'"));
  EXPECT_THAT(r->warnings[4], HasSubstr("'no-dtls' (command line)"));
  // Its value "5555" was consumed, not taken as a stray argument.
  EXPECT_THAT(r->warnings[5], HasSubstr("'tcp-proxy-port' (command line)"));
}

TEST(ConfigTest, IgnoredTlsOptionsSayWhy) {
  auto r = LoadText(
      "no-tlsv1\nno-tlsv1_1\nno-sslv2\nno-sslv3\nno-dtls\nCA-file=/x\nec-curve-name=x\n"
      "dh-file=/x\ndh566\ndh1066\ndh2066\ntcp-proxy-port=5555\nno-tcp-relay\nno-udp-relay\n");
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->warnings.size(), 14u);
  for (int i = 0; i < 4; ++i) {
    EXPECT_THAT(r->warnings[i], HasSubstr("never offers TLS below 1.2")) << r->warnings[i];
  }
  EXPECT_THAT(r->warnings[4], HasSubstr("no DTLS listener"));
  EXPECT_THAT(r->warnings[5], HasSubstr("does not authenticate clients by certificate"));
  EXPECT_THAT(r->warnings[6], HasSubstr("OpenSSL's default"));
  for (int i = 7; i < 11; ++i) {
    EXPECT_THAT(r->warnings[i], HasSubstr("no finite-field DH")) << r->warnings[i];
  }
  EXPECT_THAT(r->warnings[11], HasSubstr("PROXY protocol"));
  EXPECT_THAT(r->warnings[12], HasSubstr("RFC 6062 TCP relaying is never offered; Connect "
                                         "requests get 403"));
  EXPECT_THAT(r->warnings[13], HasSubstr("relays over UDP only"));
}

TEST(ConfigTest, StreamTransportDefaults) {
  auto r = Load({});
  ASSERT_TRUE(r.ok()) << r.status();
  const ServerConfig& c = r->config;
  EXPECT_FALSE(c.no_udp);
  EXPECT_FALSE(c.no_tcp);
  EXPECT_FALSE(c.no_tls);
  EXPECT_FALSE(c.no_tlsv1_2);
  EXPECT_EQ(c.tls_listening_port, 443);
  EXPECT_EQ(c.cert_file, "");
  EXPECT_EQ(c.pkey_file, "");
  EXPECT_EQ(c.bps_capacity, 0u);
  EXPECT_EQ(c.stream_max_connections, 20000u);
  EXPECT_EQ(c.stream_max_per_ip, 100u);
  EXPECT_EQ(c.stream_handshake_timeout, 10u);
  EXPECT_EQ(c.stream_idle_timeout, 60u);
}

TEST(ConfigTest, StreamTransportOptionsAreParsed) {
  auto r = LoadText(
      "tls-listening-port=5349\n"
      "cert=/etc/turn/fullchain.pem\n"
      "pkey=/etc/turn/privkey.pem\n"
      "pkey-pwd=\"pa#ss word\"\n"
      "cipher-list=\"ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256\"\n"
      "no-tlsv1_2\n"
      "no-udp\n"
      "stream-max-connections=50000\n"
      "stream-max-per-ip=8\n"
      "stream-handshake-timeout=5\n"
      "stream-idle-timeout=120\n"
      "bps-capacity=125000000\n");
  ASSERT_TRUE(r.ok()) << r.status();
  const ServerConfig& c = r->config;
  EXPECT_EQ(c.tls_listening_port, 5349);
  EXPECT_EQ(c.cert_file, "/etc/turn/fullchain.pem");
  EXPECT_EQ(c.pkey_file, "/etc/turn/privkey.pem");
  EXPECT_EQ(c.pkey_password, "pa#ss word");
  EXPECT_EQ(c.cipher_list, "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256");
  EXPECT_TRUE(c.no_tlsv1_2);
  EXPECT_TRUE(c.no_udp);
  EXPECT_FALSE(c.no_tcp);
  EXPECT_FALSE(c.no_tls);
  EXPECT_EQ(c.stream_max_connections, 50000u);
  EXPECT_EQ(c.stream_max_per_ip, 8u);
  EXPECT_EQ(c.stream_handshake_timeout, 5u);
  EXPECT_EQ(c.stream_idle_timeout, 120u);
  EXPECT_EQ(c.bps_capacity, 125000000u);
  EXPECT_THAT(r->warnings, IsEmpty());

  // The command line wins, flags take =false, and port 0 is accepted (tests).
  auto cli = LoadText("no-udp\nno-tls\ntls-listening-port=5349\n",
                      {"--no-udp=false", "--no-tcp", "--no-tls=no", "--tls-listening-port=0",
                       "--cert=/c.pem", "--bps-capacity=18446744073709551615"});
  ASSERT_TRUE(cli.ok()) << cli.status();
  EXPECT_FALSE(cli->config.no_udp);
  EXPECT_TRUE(cli->config.no_tcp);
  EXPECT_FALSE(cli->config.no_tls);
  EXPECT_EQ(cli->config.tls_listening_port, 0);
  EXPECT_EQ(cli->config.bps_capacity, 18446744073709551615u);
}

TEST(ConfigTest, BpsCapacityShortOption) {
  auto r = Load({"-B", "1000000"});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->config.bps_capacity, 1000000u);
  EXPECT_THAT(r->warnings, IsEmpty());
  auto glued = Load({"-B2500"});
  ASSERT_TRUE(glued.ok()) << glued.status();
  EXPECT_EQ(glued->config.bps_capacity, 2500u);
  EXPECT_THAT(Usage(), HasSubstr("-B, --bps-capacity=BYTES"));
  EXPECT_THAT(ErrorOf(Load({"-B", "lots"})),
              HasSubstr("bad value 'lots' for bps-capacity (command line)"));
}

TEST(ConfigTest, StreamTransportBadValuesNameTheOption) {
  struct Case {
    std::vector<std::string> args;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {{"--bps-capacity=-1"}, "bad value '-1' for bps-capacity (command line): expected a whole"},
      {{"--bps-capacity=18446744073709551616"},
       "bad value '18446744073709551616' for bps-capacity (command line)"},
      {{"--tls-listening-port=65536"},
       "bad value '65536' for tls-listening-port (command line): expected 0..65535"},
      {{"--tls-listening-port=https"}, "bad value 'https' for tls-listening-port (command line)"},
      {{"--no-udp=maybe"}, "bad value 'maybe' for no-udp (command line)"},
      {{"--no-tcp=2"}, "bad value '2' for no-tcp (command line)"},
      {{"--no-tls=x"}, "bad value 'x' for no-tls (command line)"},
      {{"--no-tlsv1_2=x"}, "bad value 'x' for no-tlsv1_2 (command line)"},
      {{"--cert"}, "missing value for cert (command line)"},
      {{"--pkey"}, "missing value for pkey (command line)"},
      {{"--pkey-pwd"}, "missing value for pkey-pwd (command line)"},
      {{"--cipher-list"}, "missing value for cipher-list (command line)"},
      {{"--stream-max-connections=0"},
       "bad value '0' for stream-max-connections (command line): expected 1..10000000"},
      {{"--stream-max-connections=10000001"},
       "bad value '10000001' for stream-max-connections (command line)"},
      {{"--stream-max-per-ip=0"},
       "bad value '0' for stream-max-per-ip (command line): expected 1..10000000"},
      {{"--stream-max-per-ip=many"}, "bad value 'many' for stream-max-per-ip (command line)"},
      {{"--stream-handshake-timeout=0"},
       "bad value '0' for stream-handshake-timeout (command line): expected 1..3600"},
      {{"--stream-handshake-timeout=3601"},
       "bad value '3601' for stream-handshake-timeout (command line)"},
      {{"--stream-idle-timeout=0"},
       "bad value '0' for stream-idle-timeout (command line): expected 1..86400"},
      {{"--stream-idle-timeout=86401"}, "bad value '86401' for stream-idle-timeout (command line)"},
  };
  for (const Case& c : cases) {
    std::string err = ErrorOf(Load(c.args));
    EXPECT_TRUE(absl::StartsWith(err, c.expected))
        << "got: " << err << "\nwant prefix: " << c.expected;
  }
  // Limits at the edges of their ranges load.
  auto edges = Load({"--stream-max-connections=10000000", "--stream-max-per-ip=1",
                     "--stream-handshake-timeout=3600", "--stream-idle-timeout=86400",
                     "--tls-listening-port=65535"});
  ASSERT_TRUE(edges.ok()) << edges.status();
  EXPECT_EQ(edges->config.stream_max_connections, 10000000u);
  EXPECT_EQ(edges->config.stream_max_per_ip, 1u);
  EXPECT_EQ(edges->config.stream_handshake_timeout, 3600u);
  EXPECT_EQ(edges->config.stream_idle_timeout, 86400u);
  EXPECT_EQ(edges->config.tls_listening_port, 65535);
}

TEST(ConfigTest, PkeyDefaultsToTheCertFile) {
  auto r = Load({"--cert=/etc/turn/combined.pem"});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->config.cert_file, "/etc/turn/combined.pem");
  EXPECT_EQ(r->config.pkey_file, "/etc/turn/combined.pem");
}

TEST(ConfigTest, PkeyWithoutCertIsAnError) {
  EXPECT_EQ(ErrorOf(Load({"--pkey=/etc/turn/privkey.pem"})),
            "pkey is set but cert is not: give the certificate chain with cert (PEM, leaf first)");
}

TEST(ConfigTest, NothingToListenOnIsAnError) {
  const std::string want = "no-udp and no-tcp are set and TLS is off";
  EXPECT_THAT(ErrorOf(Load({"--no-udp", "--no-tcp"})), HasSubstr(want));
  EXPECT_THAT(ErrorOf(Load({"--no-udp", "--no-tcp", "--cert=/c.pem", "--no-tls"})),
              HasSubstr(want));
  EXPECT_THAT(ErrorOf(Load({"--no-udp", "--no-tcp"})), HasSubstr("nothing to listen on"));
  // TLS alone is a valid node.
  auto tls_only = Load({"--no-udp", "--no-tcp", "--cert=/c.pem"});
  ASSERT_TRUE(tls_only.ok()) << tls_only.status();
  // So are UDP alone and TCP alone.
  EXPECT_TRUE(Load({"--no-tcp"}).ok());
  EXPECT_TRUE(Load({"--no-udp"}).ok());
}

TEST(ConfigTest, TlsAndPlainTcpCannotShareAPort) {
  EXPECT_EQ(ErrorOf(Load({"--cert=/c.pem", "--listening-port=443"})),
            "bad value: tls-listening-port (443) equals listening-port: TLS and plain TCP cannot "
            "share a port (choose another tls-listening-port, or set no-tcp)");
  EXPECT_THAT(ErrorOf(LoadText("cert=/c.pem\ntls-listening-port=3478\n")),
              HasSubstr("TLS and plain TCP cannot share a port"));
  // Fine without a TCP listener, without a TLS listener, or with both ports left to the kernel.
  EXPECT_TRUE(Load({"--cert=/c.pem", "--listening-port=443", "--no-tcp"}).ok());
  EXPECT_TRUE(Load({"--listening-port=443"}).ok());
  EXPECT_TRUE(Load({"--cert=/c.pem", "--listening-port=443", "--no-tls"}).ok());
  EXPECT_TRUE(Load({"--cert=/c.pem", "--listening-port=0", "--tls-listening-port=0"}).ok());
}

TEST(ConfigTest, TlsSettingsWithoutCertWarn) {
  auto r =
      Load({"--cipher-list=HIGH", "--no-tlsv1_2", "--pkey-pwd=x", "--tls-listening-port=5349"});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(r->warnings, ::testing::UnorderedElementsAre(
                               HasSubstr("pkey-pwd is set but cert is not"),
                               HasSubstr("cipher-list is set but cert is not"),
                               HasSubstr("no-tlsv1_2 is set but cert is not"),
                               HasSubstr("tls-listening-port is set but cert is not")));
  auto with_cert = Load({"--cipher-list=HIGH", "--no-tlsv1_2", "--cert=/c.pem"});
  ASSERT_TRUE(with_cert.ok()) << with_cert.status();
  EXPECT_THAT(with_cert->warnings, IsEmpty());
}

TEST(ConfigTest, UsersWithPasswordsAndKeys) {
  auto r = LoadText(
      "user=alice:plain:with:colons\n"
      "user=bob:0x0123456789ABCDEF0123456789abcdef\n"
      "realm=example.org\n");
  ASSERT_TRUE(r.ok()) << r.status();
  const auto& users = r->config.users;
  ASSERT_EQ(users.size(), 2u);
  EXPECT_EQ(users[0].name, "alice");
  EXPECT_EQ(users[0].password, "plain:with:colons");
  EXPECT_EQ(users[0].key_hex, "");
  EXPECT_EQ(users[1].name, "bob");
  EXPECT_EQ(users[1].password, "");
  EXPECT_EQ(users[1].key_hex, "0123456789abcdef0123456789abcdef");
  EXPECT_TRUE(r->config.lt_cred_mech);  // user= implies lt-cred-mech
  EXPECT_THAT(ErrorOf(Load({"--user=bob:0x0123456789abcdef0123456789abcdeg"})),
              HasSubstr("32 hex digits"));
}

TEST(ConfigTest, AuthenticationSemantics) {
  EXPECT_THAT(ErrorOf(Load({"--use-auth-secret"})),
              HasSubstr("use-auth-secret needs at least one static-auth-secret"));
  EXPECT_THAT(ErrorOf(Load({"--lt-cred-mech"})), HasSubstr("lt-cred-mech is set but"));
  EXPECT_THAT(ErrorOf(Load({"--no-auth", "--lt-cred-mech", "--user=a:b"})),
              HasSubstr("no-auth cannot be combined"));

  auto rest = Load({"--lt-cred-mech", "--use-auth-secret", "--static-auth-secret=k1",
                    "--static-auth-secret=k2"});
  ASSERT_TRUE(rest.ok()) << rest.status();
  EXPECT_THAT(rest->config.static_auth_secrets, ElementsAre("k1", "k2"));

  auto open = Load({"--no-auth"});
  ASSERT_TRUE(open.ok()) << open.status();
  EXPECT_TRUE(open->config.no_auth);
  EXPECT_FALSE(open->warnings.empty());

  // No credentials at all and no no-auth: left alone for the daemon's development secret.
  auto none = Load({});
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->config.lt_cred_mech);
  EXPECT_FALSE(none->config.use_auth_secret);
  EXPECT_FALSE(none->config.no_auth);

  // The command line can turn the file's mechanism off to run open for a test.
  auto override_open = LoadText("lt-cred-mech\nuser=a:b\n", {"--lt-cred-mech=false", "--no-auth"});
  ASSERT_TRUE(override_open.ok()) << override_open.status();
  EXPECT_TRUE(override_open->config.no_auth);
}

TEST(ConfigTest, StaleNonceBareMeansDefault) {
  auto r = LoadText("stale-nonce=30\n", {"--stale-nonce"});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->config.stale_nonce_seconds, 600u);
  auto r2 = LoadText("stale-nonce=30\n");
  ASSERT_TRUE(r2.ok()) << r2.status();
  EXPECT_EQ(r2->config.stale_nonce_seconds, 30u);
  auto r3 = LoadText("stale-nonce\n");
  ASSERT_TRUE(r3.ok()) << r3.status();
  EXPECT_EQ(r3->config.stale_nonce_seconds, 600u);
}

TEST(ConfigTest, ExternalIpForms) {
  auto r = Load({"--external-ip=203.0.113.5", "--external-ip=198.51.100.1/10.0.0.1"});
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->config.external_ips.size(), 2u);
  EXPECT_EQ(r->config.external_ips[0].public_ip, Ip("203.0.113.5"));
  EXPECT_FALSE(r->config.external_ips[0].has_private);
  EXPECT_EQ(r->config.external_ips[1].public_ip, Ip("198.51.100.1"));
  EXPECT_TRUE(r->config.external_ips[1].has_private);
  EXPECT_EQ(r->config.external_ips[1].private_ip, Ip("10.0.0.1"));
}

TEST(ConfigTest, LogFileAndSyslog) {
  auto dash = Load({"--log-file", "-"});
  ASSERT_TRUE(dash.ok()) << dash.status();
  EXPECT_EQ(dash->config.log_file, "stdout");
  auto sys = LoadText("syslog\n", {"--log-file=/var/log/turnpiked.log"});
  ASSERT_TRUE(sys.ok()) << sys.status();
  EXPECT_EQ(sys->config.log_file, "syslog");  // coturn: syslog beats log-file
  auto json = Load({"--log-format=json", "--log-file=/tmp/x.log"});
  ASSERT_TRUE(json.ok());
  EXPECT_EQ(json->config.log_format, LogFormat::kJson);
  EXPECT_EQ(json->config.log_file, "/tmp/x.log");
}

TEST(ParseIpRangeTest, SingleRangeAndCidr) {
  auto single = ParseIpRange("192.0.2.7");
  ASSERT_TRUE(single.ok());
  EXPECT_EQ(single->first, Ip("192.0.2.7"));
  EXPECT_EQ(single->last, Ip("192.0.2.7"));

  auto range = ParseIpRange("10.0.0.1 - 10.0.0.20");
  ASSERT_TRUE(range.ok()) << range.status();
  EXPECT_EQ(range->first, Ip("10.0.0.1"));
  EXPECT_EQ(range->last, Ip("10.0.0.20"));

  auto v6range = ParseIpRange("2001:db8::1-2001:db8::ff");
  ASSERT_TRUE(v6range.ok()) << v6range.status();
  EXPECT_EQ(v6range->last, Ip("2001:db8::ff"));

  auto cidr = ParseIpRange("172.16.0.0/12");
  ASSERT_TRUE(cidr.ok());
  EXPECT_EQ(cidr->first, Ip("172.16.0.0"));
  EXPECT_EQ(cidr->last, Ip("172.31.255.255"));

  auto host_bits = ParseIpRange("10.1.2.3/8");
  ASSERT_TRUE(host_bits.ok());
  EXPECT_EQ(host_bits->first, Ip("10.0.0.0"));
  EXPECT_EQ(host_bits->last, Ip("10.255.255.255"));

  auto v6cidr = ParseIpRange("fe80::/10");
  ASSERT_TRUE(v6cidr.ok());
  EXPECT_EQ(v6cidr->first, Ip("fe80::"));
  EXPECT_EQ(v6cidr->last, Ip("febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff"));

  auto all = ParseIpRange("0.0.0.0/0");
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->last, Ip("255.255.255.255"));
  auto host = ParseIpRange("2001:db8::5/128");
  ASSERT_TRUE(host.ok());
  EXPECT_EQ(host->first, host->last);
}

TEST(ParseIpRangeTest, BadRangesAreRejected) {
  for (const char* bad :
       {"", "10.0.0.300", "10.0.0.5-10.0.0.4", "10.0.0.1-::2", "::2-::1", "10.0.0.0/33", "::/129",
        "10.0.0.0/", "10.0.0.0/x", "/8", "a-b", "10.0.0.1-", "host.example"}) {
    EXPECT_FALSE(ParseIpRange(bad).ok()) << bad;
  }
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A production coturn file: TLS, REST secrets, NAT mapping, peer lists, logging options.
TEST(ConfigTest, RealisticCoturnFileLoadsWithOnlyWarnings) {
  std::string path = std::string(TURNPIKE_SOURCE_ROOT) + "/tests/data/turnserver.conf";
  auto r = Load({"-c", path});
  ASSERT_TRUE(r.ok()) << r.status();
  const ServerConfig& c = r->config;
  EXPECT_EQ(c.listening_port, 3478);
  EXPECT_THAT(c.listening_ips, ElementsAre(Ip("10.20.0.5")));
  EXPECT_THAT(c.relay_ips, ElementsAre(Ip("10.20.0.5")));
  ASSERT_EQ(c.external_ips.size(), 1u);
  EXPECT_EQ(c.external_ips[0].public_ip, Ip("203.0.113.10"));
  EXPECT_EQ(c.external_ips[0].private_ip, Ip("10.20.0.5"));
  EXPECT_EQ(c.min_port, 49152);
  EXPECT_EQ(c.max_port, 65535);
  EXPECT_EQ(c.realm, "turn.example.com");
  EXPECT_TRUE(c.use_auth_secret);
  EXPECT_EQ(c.static_auth_secrets.size(), 1u);
  EXPECT_EQ(c.total_quota, 1200u);
  EXPECT_EQ(c.user_quota, 12u);
  EXPECT_EQ(c.max_bps, 3000000u);
  EXPECT_EQ(c.stale_nonce_seconds, 600u);
  EXPECT_FALSE(c.software_attribute);
  EXPECT_TRUE(c.verbose);
  EXPECT_GE(c.denied_peer_ips.size(), 10u);
  EXPECT_EQ(c.allowed_peer_ips.size(), 1u);
  EXPECT_EQ(c.pidfile, "/var/run/turnserver.pid");
  EXPECT_EQ(c.log_file, "/var/log/turnserver/turn.log");
  EXPECT_EQ(c.tls_listening_port, 443);
  EXPECT_EQ(c.cert_file, "/etc/letsencrypt/live/turn.example.com/fullchain.pem");
  EXPECT_EQ(c.pkey_file, "/etc/letsencrypt/live/turn.example.com/privkey.pem");
  EXPECT_EQ(c.cipher_list,
            "ECDHE-RSA-AES256-GCM-SHA512:DHE-RSA-AES256-GCM-SHA512:ECDHE-RSA-AES256-GCM-SHA384");
  EXPECT_FALSE(c.no_tlsv1_2);
  EXPECT_THAT(r->warnings, ::testing::Contains(HasSubstr("'fingerprint'")));
  EXPECT_THAT(r->warnings, ::testing::Contains(HasSubstr("'no-tlsv1'")));
  EXPECT_THAT(r->warnings, ::testing::Contains(HasSubstr("'dh2066'")));
  EXPECT_THAT(r->warnings, ::testing::Contains(HasSubstr("'no-cli'")));
  for (const std::string& w : r->warnings) {
    EXPECT_TRUE(absl::StartsWith(w, "ignoring coturn option '")) << w;
  }
}

// coturn 4.6's options (`turnserver -h` and `man turnserver`). Each must load: implemented or
// ignored with a warning, never "unknown option". Flags are given bare, the rest with a value
// that is valid where Turnpike implements the option.
TEST(ConfigTest, EveryCoturnOptionIsImplementedOrIgnored) {
  const std::vector<std::string> coturn_options = {
      "CA-file=/x",
      "Verbose",
      "acme-redirect=http://x/",
      "allocation-default-address-family=ipv4",
      "allow-loopback-peers",
      "allowed-peer-ip=10.0.0.1",
      "alt-listening-port=3479",
      "alt-tls-listening-port=5350",
      "alternate-server=192.0.2.1:3478",
      "aux-server=192.0.2.1:1",
      "bps-capacity=1",
      "cert=/x",
      "channel-lifetime=600",
      "check-origin-consistency",
      "cipher-list=ALL",
      "cli-ip=127.0.0.1",
      "cli-max-output-sessions=1",
      "cli-password=x",
      "cli-port=5766",
      "daemon",
      "db=/x",
      "denied-peer-ip=10.0.0.1",
      "dh-file=/x",
      "dh1066",
      "dh566",
      "ec-curve-name=prime256v1",
      "external-ip=192.0.2.1",
      "fingerprint",
      "keep-address-family",
      "listening-device=eth0",
      "listening-ip=192.0.2.1",
      "listening-port=3478",
      "log-binding",
      "log-file=stdout",
      "lt-cred-mech",
      "max-allocate-lifetime=3600",
      "max-allocate-timeout=60",
      "max-bps=0",
      "max-port=65535",
      "min-port=49152",
      "mobility",
      "mongo-userdb=x",
      "mysql-userdb=x",
      "ne=1",
      "new-log-timestamp",
      "new-log-timestamp-format=%c",
      "no-auth",
      "no-auth-pings",
      "no-cli",
      "no-dtls",
      "no-dynamic-ip-list",
      "no-dynamic-realms",
      "no-multicast-peers",
      "no-rfc5780",
      "no-software-attribute",
      "no-stdout-log",
      "no-stun",
      "no-stun-backward-compatibility",
      "no-tcp",
      "no-tcp-relay",
      "no-tls",
      "no-tlsv1",
      "no-tlsv1_1",
      "no-tlsv1_2",
      "no-udp",
      "no-udp-relay",
      "oauth",
      "permission-lifetime=300",
      "pidfile=/x",
      "pkey=/x",
      "pkey-pwd=x",
      "proc-group=turn",
      "proc-user=turn",
      "prometheus",
      "prometheus-port=9641",
      "prometheus-username-labels",
      "psql-userdb=x",
      "sql-userdb=x",
      "realm=x",
      "redis-statsdb=x",
      "redis-userdb=x",
      "relay-device=eth0",
      "relay-ip=192.0.2.1",
      "relay-threads=4",
      "response-origin-only-with-rfc5780",
      "rest-api-separator=:",
      "secret-key-file=/x",
      "secure-stun",
      "server-name=x",
      "server-relay",
      "simple-log",
      "stale-nonce=600",
      "static-auth-secret=x",
      "stun-only",
      "syslog",
      "syslog-facility=LOG_USER",
      "tcp-proxy-port=5555",
      "tls-alternate-server=192.0.2.1:5349",
      "tls-listening-port=5349",
      "total-quota=0",
      "udp-self-balance",
      "use-auth-secret",
      "user=a:b",
      "user-quota=0",
      "userdb=/x",
      "verbose",
      "web-admin",
      "web-admin-ip=127.0.0.1",
      "web-admin-listen-on-workers",
      "web-admin-port=8080",
      "prod",
      "no-loopback-peers",
      "dh2066",
      "no-sslv2",
      "no-sslv3",
  };
  std::string docs = ReadAll(std::string(TURNPIKE_SOURCE_ROOT) + "/docs/configuration.md");
  ASSERT_FALSE(docs.empty());
  for (const std::string& line : coturn_options) {
    LoadedConfig out;
    absl::Status st = ParseConfigText(line + "\n", "coturn", &out);
    EXPECT_TRUE(st.ok()) << line << ": " << st;
    std::string name = line.substr(0, line.find('='));
    EXPECT_THAT(docs, HasSubstr("`" + name + "`")) << "docs/configuration.md lacks " << name;
  }
}

TEST(ConfigTest, EveryUsageOptionIsDocumented) {
  std::string docs = ReadAll(std::string(TURNPIKE_SOURCE_ROOT) + "/docs/configuration.md");
  std::string usage = Usage();
  size_t pos = 0;
  int count = 0;
  while ((pos = usage.find("--", pos)) != std::string::npos) {
    size_t end = usage.find_first_of("=[ \n", pos);
    std::string name = usage.substr(pos + 2, end - pos - 2);
    pos = end;
    if (name.empty() || name == "option") {
      continue;
    }
    ++count;
    EXPECT_THAT(docs, HasSubstr("`" + name + "`")) << "docs/configuration.md lacks " << name;
  }
  EXPECT_GT(count, 30);
}

}  // namespace
}  // namespace turnpike

namespace turnpike {
namespace {

TEST(ConfigDpdkTest, AddressesBecomeTheListeningAndRelayAddresses) {
  auto r = Load({"--backend=dpdk", "--dpdk-args=-l 0-1 --no-huge", "--dpdk-port=1",
                 "--dpdk-address=10.200.0.2/24", "--dpdk-address=2001:db8::2/64",
                 "--dpdk-gateway=10.200.0.1", "--dpdk-no-checksum-offload",
                 "--dpdk-kernel-interface=tpk0", "--dpdk-queues=per-worker"});
  ASSERT_TRUE(r.ok()) << r.status();
  const ServerConfig& c = r->config;
  EXPECT_EQ(c.backend, Backend::kDpdk);
  EXPECT_TRUE(c.dpdk_no_checksum_offload);
  EXPECT_EQ(c.dpdk_queues, DpdkQueues::kPerWorker);
  EXPECT_EQ(c.dpdk_kernel_interface, "tpk0");
  EXPECT_EQ(c.dpdk_args, "-l 0-1 --no-huge");
  EXPECT_EQ(c.dpdk_port, 1);
  ASSERT_EQ(c.dpdk_addresses.size(), 2u);
  EXPECT_EQ(c.dpdk_addresses[0].ip, *IpAddress::Parse("10.200.0.2"));
  EXPECT_EQ(c.dpdk_addresses[0].prefix, 24);
  EXPECT_EQ(c.dpdk_addresses[1].prefix, 64);
  ASSERT_EQ(c.dpdk_gateways.size(), 1u);
  EXPECT_EQ(c.listening_ips, (std::vector<IpAddress>{*IpAddress::Parse("10.200.0.2"),
                                                     *IpAddress::Parse("2001:db8::2")}));
  EXPECT_EQ(c.relay_ips, c.listening_ips);
  EXPECT_TRUE(c.dpdk_addresses[0].OnLink(*IpAddress::Parse("10.200.0.77")));
  EXPECT_FALSE(c.dpdk_addresses[0].OnLink(*IpAddress::Parse("10.200.1.1")));
  EXPECT_FALSE(c.dpdk_addresses[0].OnLink(*IpAddress::Parse("2001:db8::9")));
  EXPECT_TRUE(c.dpdk_addresses[1].OnLink(*IpAddress::Parse("2001:db8::9")));
}

TEST(ConfigDpdkTest, OnLinkComparesExactlyThePrefixBits) {
  const auto ip = [](const char* text) { return *IpAddress::Parse(text); };
  const InterfaceAddress v4{ip("10.200.16.2"), 20};  // 10.200.16.0 - 10.200.31.255
  EXPECT_TRUE(v4.OnLink(ip("10.200.16.0")));
  EXPECT_TRUE(v4.OnLink(ip("10.200.31.255")));
  EXPECT_FALSE(v4.OnLink(ip("10.200.32.0")));
  EXPECT_FALSE(v4.OnLink(ip("10.200.15.255")));
  EXPECT_FALSE(v4.OnLink(ip("138.200.16.2")));  // the first bit differs
  const InterfaceAddress v6{ip("2001:db8::1:2"), 100};  // the first 4 bits of the 7th group
  EXPECT_TRUE(v6.OnLink(ip("2001:db8::0fff:ffff")));
  EXPECT_FALSE(v6.OnLink(ip("2001:db8::1000:0")));
  EXPECT_FALSE(v6.OnLink(ip("2001:db9::1:2")));  // a difference in the first word
  EXPECT_FALSE(v6.OnLink(ip("10.200.16.2")));
  const InterfaceAddress all{ip("10.0.0.1"), 0};
  EXPECT_TRUE(all.OnLink(ip("192.0.2.1")));
  EXPECT_FALSE(all.OnLink(ip("::1")));
  const InterfaceAddress host{ip("2001:db8::1"), 128};
  EXPECT_TRUE(host.OnLink(ip("2001:db8::1")));
  EXPECT_FALSE(host.OnLink(ip("2001:db8::2")));
}

TEST(ConfigDpdkTest, BadInputIsRefusedWithWhatToDo) {
  EXPECT_THAT(ErrorOf(Load({"--backend=dpdk"})), HasSubstr("dpdk-address=IP/LEN"));
  EXPECT_THAT(ErrorOf(Load({"--dpdk-address=10.200.0.2"})), HasSubstr("prefix length"));
  EXPECT_THAT(ErrorOf(Load({"--dpdk-kernel-interface=a,b"})), HasSubstr("interface name"));
  EXPECT_THAT(ErrorOf(Load({"--dpdk-kernel-interface=sixteen-chars-xx"})),
              HasSubstr("interface name"));
  EXPECT_THAT(ErrorOf(Load({"--dpdk-address=10.200.0.2/33"})), HasSubstr("dpdk-address"));
  EXPECT_THAT(ErrorOf(Load({"--dpdk-gateway=gw"})), HasSubstr("dpdk-gateway"));
  EXPECT_THAT(ErrorOf(Load({"--dpdk-queues=2"})), HasSubstr("auto, one or per-worker"));
  EXPECT_THAT(ErrorOf(Load({"--backend=dpdk", "--dpdk-address=10.200.0.2/24",
                            "--listening-ip=10.9.9.9"})),
              HasSubstr("10.9.9.9 is not one of the dpdk-address values"));
}

}  // namespace
}  // namespace turnpike
