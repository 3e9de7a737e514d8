#include "cloud/dropbox/http_client.h"

#include <gtest/gtest.h>

namespace filesync::dropbox {
namespace {

TEST(HttpHeaders, LookupIgnoresCaseAndSetReplaces) {
  HttpHeaders h;
  h.Add("Content-Type", "application/json");
  h.Add("X-Dropbox-Request-Id", "abc");
  EXPECT_EQ(h.Get("content-type"), "application/json");
  EXPECT_EQ(h.Get("X-DROPBOX-REQUEST-ID"), "abc");
  EXPECT_FALSE(h.Get("Retry-After"));
  h.Set("authorization", "Bearer 1");
  h.Set("Authorization", "Bearer 2");
  EXPECT_EQ(h.Get("AUTHORIZATION"), "Bearer 2");
  EXPECT_EQ(h.items().size(), 3u);
}

TEST(UrlEncode, KeepsUnreservedEscapesTheRest) {
  EXPECT_EQ(UrlEncode("aZ0-._~"), "aZ0-._~");
  EXPECT_EQ(UrlEncode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
}

TEST(CurlTransport, UnreachableHostIsTransient) {
  auto transport = MakeCurlTransport(HttpClientOptions{.connect_timeout = std::chrono::seconds(2)});
  HttpRequest request;
  request.url = "http://127.0.0.1:1/2/files/list_folder";  // nothing listens on port 1
  request.body = "{}";
  auto r = transport->Send(request);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().kind(), Status::Kind::kTransient);
}

}  // namespace
}  // namespace filesync::dropbox
