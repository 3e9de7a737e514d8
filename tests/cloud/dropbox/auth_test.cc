#include "cloud/dropbox/auth.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "fakes.h"

namespace filesync::dropbox {
namespace {

using namespace std::chrono_literals;
using testing::FakeClock;
using testing::FakeTransport;
using testing::JsonResponse;

TEST(Pkce, Rfc7636Vector) {
  EXPECT_EQ(CodeChallenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
}

TEST(Pkce, VerifierIs128UnreservedCharactersAndRandom) {
  const std::string a = MakeCodeVerifier();
  const std::string b = MakeCodeVerifier();
  EXPECT_EQ(a.size(), 128u);
  EXPECT_NE(a, b);
  for (const char c : a) {
    EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_' ||
                c == '~')
        << c;
  }
  EXPECT_EQ(CodeChallenge(a).find('='), std::string::npos);
  EXPECT_EQ(CodeChallenge(a).size(), 43u);
}

TEST(Auth, AuthorizeUrlAsksForOfflinePkce) {
  AuthFlowOptions o;
  o.app_key = "key123";
  o.www_url = "http://127.0.0.1:9";
  const std::string url = AuthorizeUrl(o, "CHAL");
  EXPECT_EQ(url,
            "http://127.0.0.1:9/oauth2/"
            "authorize?client_id=key123&response_type=code&token_access_type=offline"
            "&code_challenge=CHAL&code_challenge_method=S256");
}

TEST(Auth, StaticProviderCannotRefresh) {
  StaticTokenProvider p("tok");
  EXPECT_EQ(*p.AccessToken(), "tok");
  EXPECT_EQ(p.RefreshAfterExpiry("tok").status().kind(), Status::Kind::kAuth);
}

std::map<std::string, std::string> ParseForm(const std::string& body) {
  std::map<std::string, std::string> out;
  std::stringstream ss(body);
  std::string pair;
  while (std::getline(ss, pair, '&')) {
    const auto eq = pair.find('=');
    out[pair.substr(0, eq)] = pair.substr(eq + 1);
  }
  return out;
}

TEST(Auth, RefreshingProviderRefreshesNearExpiryAndAfter401) {
  FakeClock clock;
  int issued = 0;
  auto transport =
      std::make_shared<FakeTransport>([&](const HttpRequest& r) -> Result<HttpResponse> {
        EXPECT_EQ(r.url, "http://api.test/oauth2/token");
        const auto form = ParseForm(r.body);
        EXPECT_EQ(form.at("grant_type"), "refresh_token");
        EXPECT_EQ(form.at("refresh_token"), "R%2Ftok");  // form-encoded
        EXPECT_EQ(form.at("client_id"), "app");
        EXPECT_EQ(form.count("client_secret"), 0u);
        return JsonResponse(200, {{"access_token", "A" + std::to_string(++issued)},
                                  {"token_type", "bearer"},
                                  {"expires_in", 3600}});
      });
  RefreshingTokenProvider p(
      {.api_url = "http://api.test", .app_key = "app", .refresh_token = "R/tok"}, transport, clock);
  EXPECT_EQ(*p.AccessToken(), "A1");
  EXPECT_EQ(*p.AccessToken(), "A1");
  clock.Advance(3600s - 301s);
  EXPECT_EQ(*p.AccessToken(), "A1");
  clock.Advance(2s);  // now + 300 s >= expires_at
  EXPECT_EQ(*p.AccessToken(), "A2");
  // Two workers report the same expired token: only one refresh happens.
  EXPECT_EQ(*p.RefreshAfterExpiry("A2"), "A3");
  EXPECT_EQ(*p.RefreshAfterExpiry("A2"), "A3");
  EXPECT_EQ(p.refresh_count(), 3);
}

TEST(Auth, RevokedRefreshTokenIsAuthError) {
  auto transport = std::make_shared<FakeTransport>([](const HttpRequest&) -> Result<HttpResponse> {
    return JsonResponse(
        400, {{"error", "invalid_grant"}, {"error_description", "refresh token is malformed"}});
  });
  RefreshingTokenProvider p(
      {.api_url = "http://api.test", .app_key = "app", .refresh_token = "secret-refresh"},
      transport);
  auto t = p.AccessToken();
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().kind(), Status::Kind::kAuth);
  EXPECT_EQ(t.status().message().find("secret-refresh"), std::string::npos);
}

TEST(Auth, RefreshNetworkFailureIsTransient) {
  auto transport = std::make_shared<FakeTransport>([](const HttpRequest&) -> Result<HttpResponse> {
    return Status::Transient("connection refused");
  });
  RefreshingTokenProvider p({.api_url = "http://api.test", .app_key = "app", .refresh_token = "r"},
                            transport);
  EXPECT_EQ(p.AccessToken().status().kind(), Status::Kind::kTransient);
}

TEST(Auth, RunAuthFlowExchangesCodeAndWritesPrivateFile) {
  const std::string dir = ::testing::TempDir() + "/dbx_auth_" + std::to_string(getpid());
  std::filesystem::create_directories(dir);
  const std::string file = dir + "/refresh_token";
  {
    std::ofstream old(file);  // an older, world-readable file gets replaced and tightened
    old << "old";
  }
  chmod(file.c_str(), 0644);
  std::string verifier_sent;
  auto transport =
      std::make_shared<FakeTransport>([&](const HttpRequest& r) -> Result<HttpResponse> {
        const auto form = ParseForm(r.body);
        EXPECT_EQ(form.at("grant_type"), "authorization_code");
        EXPECT_EQ(form.at("code"), "THE-CODE");
        EXPECT_EQ(form.at("client_id"), "appkey");
        verifier_sent = form.at("code_verifier");
        return JsonResponse(200, {{"access_token", "sl.ACCESS"},
                                  {"refresh_token", "REFRESH-SECRET"},
                                  {"expires_in", 14400}});
      });
  AuthFlowOptions o;
  o.app_key = "appkey";
  o.www_url = "https://www.example.test";
  o.api_url = "http://api.test";
  o.token_file = file;
  o.transport = transport;
  std::istringstream in("  THE-CODE \n");
  std::ostringstream out;
  const Status s = RunAuthFlow(o, in, out);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(verifier_sent.size(), 128u);
  const std::string printed = out.str();
  EXPECT_NE(printed.find("https://www.example.test/oauth2/authorize?client_id=appkey"),
            std::string::npos);
  EXPECT_NE(printed.find("code_challenge=" + CodeChallenge(verifier_sent)), std::string::npos);
  EXPECT_EQ(printed.find("REFRESH-SECRET"), std::string::npos) << "the token must never be printed";
  EXPECT_EQ(printed.find("sl.ACCESS"), std::string::npos);
  std::ifstream saved(file);
  std::string line;
  std::getline(saved, line);
  EXPECT_EQ(line, "REFRESH-SECRET");
  struct stat st {};
  ASSERT_EQ(stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::filesystem::remove_all(dir);
}

TEST(Auth, RunAuthFlowWithoutCodeIsCancelled) {
  AuthFlowOptions o;
  o.app_key = "k";
  o.token_file = ::testing::TempDir() + "/never_written";
  o.transport = std::make_shared<FakeTransport>([](const HttpRequest&) -> Result<HttpResponse> {
    ADD_FAILURE() << "no request expected";
    return Status::Transient("x");
  });
  std::istringstream in("");
  std::ostringstream out;
  EXPECT_EQ(RunAuthFlow(o, in, out).kind(), Status::Kind::kCancelled);
}

}  // namespace
}  // namespace filesync::dropbox
