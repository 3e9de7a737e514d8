// OAuth (reference §3): refresh grant, PKCE code flow (RFC 7636 vector), expiry, revoke.
#include <chrono>
#include <thread>

#include "emulator_fixture.h"

namespace filesync::emulator_test {
namespace {

constexpr const char* kVerifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
constexpr const char* kChallenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

class AuthTest : public EmulatorTest {
 protected:
  std::vector<std::string> ExtraArgs() override {
    return {"--token-lifetime", "1",    "--app-key",       "key1",
            "--app-secret",     "sec1", "--refresh-token", "refresh-1"};
  }
  Response Token(const std::string& form, const httplib::Headers& headers = {}) {
    auto c = Client();
    return From(c->Post("/oauth2/token", headers, form, "application/x-www-form-urlencoded"));
  }
};

TEST_F(AuthTest, RefreshTokenGrantAndExpiry) {
  auto t =
      Token("grant_type=refresh_token&refresh_token=refresh-1&client_id=key1&client_secret=sec1");
  ASSERT_EQ(t.status, 200) << t.body;
  const nlohmann::json j = t.json();
  EXPECT_EQ(j["token_type"], "bearer");
  EXPECT_EQ(j["expires_in"], 1);
  EXPECT_FALSE(j.contains("refresh_token"));
  const std::string access = j["access_token"];
  EXPECT_EQ(Rpc("check/user", {{"query", "a"}}, access).status, 200);
  std::this_thread::sleep_for(std::chrono::milliseconds(1300));
  auto expired = Rpc("check/user", {{"query", "a"}}, access);
  EXPECT_EQ(expired.status, 401);
  EXPECT_EQ(expired.json()["error"][".tag"], "expired_access_token");
  // The static token never expires.
  EXPECT_EQ(Rpc("check/user", {{"query", "a"}}).status, 200);
}

TEST_F(AuthTest, RefreshWithBasicAuthAndErrors) {
  // key1:sec1 in base64.
  auto basic = Token("grant_type=refresh_token&refresh_token=refresh-1",
                     {{"Authorization", "Basic a2V5MTpzZWMx"}});
  EXPECT_EQ(basic.status, 200) << basic.body;
  auto bad_secret =
      Token("grant_type=refresh_token&refresh_token=refresh-1&client_id=key1&client_secret=nope");
  EXPECT_EQ(bad_secret.status, 400);
  EXPECT_EQ(bad_secret.json()["error"], "invalid_client");
  auto bad_refresh = Token("grant_type=refresh_token&refresh_token=other&client_id=key1");
  EXPECT_EQ(bad_refresh.status, 400);
  EXPECT_EQ(bad_refresh.json()["error"], "invalid_grant");
  auto bad_grant = Token("grant_type=password&client_id=key1");
  EXPECT_EQ(bad_grant.json()["error"], "unsupported_grant_type");
}

TEST_F(AuthTest, PkceCodeFlow) {
  auto c = Client();
  const std::string query = std::string(
                                "/oauth2/authorize?client_id=key1&response_type=code"
                                "&code_challenge=") +
                            kChallenge + "&code_challenge_method=S256&token_access_type=offline";
  auto page = From(c->Get(query.c_str()));
  ASSERT_EQ(page.status, 200) << page.body;
  EXPECT_EQ(page.content_type().rfind("text/plain", 0), 0u);
  const std::string code = page.body;
  ASSERT_FALSE(code.empty());

  auto wrong =
      Token("grant_type=authorization_code&code=" + code + "&client_id=key1&code_verifier=wrong");
  EXPECT_EQ(wrong.status, 400);
  EXPECT_EQ(wrong.json()["error"], "invalid_grant");
  // The code is one-time even after a failed exchange: get a new one.
  const std::string code2 = From(c->Get(query.c_str())).body;
  auto ok = Token("grant_type=authorization_code&code=" + code2 +
                  "&client_id=key1&code_verifier=" + kVerifier);
  ASSERT_EQ(ok.status, 200) << ok.body;
  const nlohmann::json j = ok.json();
  EXPECT_EQ(j["token_type"], "bearer");
  EXPECT_EQ(j["account_id"].get<std::string>().rfind("dbid:", 0), 0u);
  EXPECT_EQ(j["account_id"].get<std::string>().size(), 40u);  // users_common.AccountId
  ASSERT_TRUE(j.contains("refresh_token"));
  EXPECT_EQ(Rpc("users/get_current_account", nullptr, j["access_token"]).status, 200);
  auto reuse = Token("grant_type=authorization_code&code=" + code2 +
                     "&client_id=key1&code_verifier=" + kVerifier);
  EXPECT_EQ(reuse.json()["error"], "invalid_grant");

  // The new refresh token works without a secret (PKCE app).
  auto refreshed = Token("grant_type=refresh_token&client_id=key1&refresh_token=" +
                         j["refresh_token"].get<std::string>());
  EXPECT_EQ(refreshed.status, 200) << refreshed.body;
}

// Dropbox still serves the legacy /1/oauth2/ paths, which Dropbox's Go SDK up to v6.0.4 (so
// rclone 1.60) uses for every token refresh.
TEST_F(AuthTest, LegacyV1OAuthPathsWork) {
  auto c = Client();
  auto refreshed = From(c->Post("/1/oauth2/token", {{"Authorization", "Basic a2V5MTpzZWMx"}},
                                "grant_type=refresh_token&refresh_token=refresh-1",
                                "application/x-www-form-urlencoded"));
  ASSERT_EQ(refreshed.status, 200) << refreshed.body;
  EXPECT_EQ(Rpc("check/user", {{"query", "a"}}, refreshed.json()["access_token"]).status, 200);
  auto refused = From(c->Post("/1/oauth2/token",
                              "grant_type=refresh_token&refresh_token=other"
                              "&client_id=key1&client_secret=sec1",
                              "application/x-www-form-urlencoded"));
  EXPECT_EQ(refused.status, 400);
  EXPECT_EQ(refused.json()["error"], "invalid_grant");

  const std::string query = std::string(
                                "/1/oauth2/authorize?client_id=key1&response_type=code"
                                "&code_challenge=") +
                            kChallenge + "&code_challenge_method=S256";
  auto page = From(c->Get(query.c_str()));
  ASSERT_EQ(page.status, 200) << page.body;
  auto exchanged = Token("grant_type=authorization_code&code=" + page.body +
                         "&client_id=key1&code_verifier=" + kVerifier);
  EXPECT_EQ(exchanged.status, 200) << exchanged.body;
  // Both spellings count as the same route.
  EXPECT_EQ(emu_.Counters()["routes"].value("oauth2/token", 0), 3);
  EXPECT_EQ(emu_.Counters()["routes"].value("oauth2/authorize", 0), 1);
  // Other /1/ paths are not served.
  EXPECT_EQ(From(c->Post("/1/files/list_folder", Auth(), "{}", "application/json")).status, 400);
}

TEST_F(AuthTest, RevokeKillsTokenAndItsRefreshToken) {
  auto t = Token("grant_type=refresh_token&refresh_token=refresh-1&client_id=key1");
  ASSERT_EQ(t.status, 200);
  const std::string access = t.json()["access_token"];
  auto c = Client();
  auto r = From(c->Post("/2/auth/token/revoke", Auth(access), "null", "application/json"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(Rpc("check/user", {{"query", "a"}}, access).status, 401);
  auto again = Token("grant_type=refresh_token&refresh_token=refresh-1&client_id=key1");
  EXPECT_EQ(again.json()["error"], "invalid_grant");
  // Revoking the static token works too.
  EXPECT_EQ(RpcRaw("auth/token/revoke", "null").status, 200);
  EXPECT_EQ(Rpc("check/user", {{"query", "a"}}).status, 401);
}

}  // namespace
}  // namespace filesync::emulator_test
