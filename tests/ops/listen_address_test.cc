// status_listen values (issue 15): "host:port", IPv6 in brackets, loopback detection, and one
// line with a problem and a fix for what is not host:port or has a bad port.
#include "ops/listen_address.h"

#include <gtest/gtest.h>

namespace filesync::ops {
namespace {

ListenAddress Parsed(std::string_view text) {
  auto a = ListenAddress::Parse(text);
  EXPECT_TRUE(a.ok()) << text << ": " << a.status().message();
  return a.ok() ? *a : ListenAddress{};
}

TEST(ListenAddress, ParsesIpv4Ipv6AndLocalhost) {
  EXPECT_EQ(Parsed("127.0.0.1:9184"),
            (ListenAddress{.host = "127.0.0.1", .port = 9184, .loopback = true, .ipv6 = false}));
  EXPECT_EQ(Parsed("[::1]:9184"),
            (ListenAddress{.host = "::1", .port = 9184, .loopback = true, .ipv6 = true}));
  EXPECT_EQ(Parsed("localhost:80").host, "127.0.0.1");
  EXPECT_TRUE(Parsed("localhost:80").loopback);
  EXPECT_TRUE(Parsed("127.8.9.10:1").loopback);
  EXPECT_TRUE(Parsed("[::ffff:127.0.0.1]:9184").loopback);
  EXPECT_EQ(Parsed("[::1]:9184").ToString(), "[::1]:9184");
  EXPECT_EQ(Parsed("127.0.0.1:65535").ToString(), "127.0.0.1:65535");
}

TEST(ListenAddress, NonLoopbackAddressesAreNotLoopback) {
  for (const char* text : {"0.0.0.0:9184", "[::]:9184", "192.168.1.5:9184", "10.0.0.1:1",
                           "[fe80::1]:9184", "[::ffff:10.0.0.1]:9184", "128.0.0.1:9184"}) {
    EXPECT_FALSE(Parsed(text).loopback) << text;
  }
}

TEST(ListenAddress, RejectsWhatIsNotHostPort) {
  for (const char* text :
       {"", "9184", "127.0.0.1", "127.0.0.1:", ":9184", "127.0.0.1:0", "127.0.0.1:65536",
        "127.0.0.1:http", "127.0.0.1:91 84", "::1:9184", "[::1:9184", "[::1]", "[127.0.0.1]:9184",
        "example.com:9184", "256.1.1.1:9184", "127.0.0.1:-1", "[::1%eth0]:9184"}) {
    auto a = ListenAddress::Parse(text);
    ASSERT_FALSE(a.ok()) << "accepted: " << text;
    const std::string& m = a.status().message();
    EXPECT_NE(m.find("; "), std::string::npos) << "no fix: " << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
  }
  EXPECT_NE(ListenAddress::Parse("::1:9184").status().message().find("[::1]:9184"),
            std::string::npos);
  EXPECT_NE(ListenAddress::Parse("127.0.0.1:0").status().message().find("1 to 65535"),
            std::string::npos);
  EXPECT_NE(ListenAddress::Parse("example.com:9184").status().message().find("IP address"),
            std::string::npos);
}

}  // namespace
}  // namespace filesync::ops
