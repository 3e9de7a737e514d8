// Access tokens, refresh tokens and one-time authorization codes (OAuth 2 with PKCE) for the
// emulator.
//
// Accepted bearer tokens: the static --token (never expires) and access tokens issued by
// /oauth2/token (expire after the configured lifetime). A refresh token is either the
// pre-configured --refresh-token or one issued by an authorization-code exchange with
// token_access_type=offline. Revoking an access token also revokes its refresh token and every
// access token derived from it (reference §3.4). State is in memory only: issued tokens do not
// survive a restart (the static and pre-configured tokens do, as they come from flags).
//
// Token endpoint errors are OAuth JSON bodies (HTTP 400), produced by the caller from
// OAuthError. Secrets are never logged.
//
// Thread safety: all methods lock an internal mutex.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <variant>

#include "core/thread_annotations.h"

namespace filesync::emulator {

struct AuthConfig {
  std::string static_token;   // empty = none
  std::string app_key;        // empty = any client_id accepted
  std::string app_secret;     // empty = no secret required
  std::string refresh_token;  // pre-configured refresh token (empty = none)
  std::chrono::seconds token_lifetime{14400};
};

struct OAuthError {
  std::string error;  // invalid_grant, invalid_request, invalid_client, ...
  std::string description;
};

struct IssuedToken {
  std::string access_token;
  std::int64_t expires_in = 0;
  std::string refresh_token;  // only for an offline code exchange
};

// Parameters of POST /oauth2/token after form decoding and Basic-auth merging.
struct TokenRequest {
  std::string grant_type;
  std::string client_id;
  std::optional<std::string> client_secret;
  std::string refresh_token;
  std::string code;
  std::optional<std::string> code_verifier;
  std::optional<std::string> redirect_uri;
};

// Query of GET /oauth2/authorize.
struct AuthorizeRequest {
  std::string client_id;
  std::string response_type;
  std::string code_challenge;
  std::string code_challenge_method;  // S256 | plain | "" (no PKCE)
  std::string token_access_type;      // offline | online | legacy | ""
  std::optional<std::string> redirect_uri;
};

class TokenStore {
 public:
  explicit TokenStore(AuthConfig config);

  enum class Check { kValid, kInvalid, kExpired };
  Check Validate(const std::string& token) EXCLUDES(mu_);
  // auth/token/revoke for the token that made the call.
  void Revoke(const std::string& token) EXCLUDES(mu_);

  std::variant<std::string, OAuthError> Authorize(const AuthorizeRequest& request) EXCLUDES(mu_);
  std::variant<IssuedToken, OAuthError> Token(const TokenRequest& request) EXCLUDES(mu_);

  // BASE64URL(SHA256(verifier)) without padding (RFC 7636 S256).
  static std::string S256(const std::string& verifier);

 private:
  struct Access {
    std::chrono::steady_clock::time_point expires;
    std::string refresh_token;  // the refresh token it derives from ("" = none)
  };
  struct Code {
    std::string client_id;
    std::string challenge;
    std::string method;
    bool offline = false;
    std::optional<std::string> redirect_uri;
    std::chrono::steady_clock::time_point expires;
  };

  std::optional<OAuthError> CheckClientLocked(const TokenRequest& r) const REQUIRES(mu_);
  std::string RandomLocked(std::size_t chars) REQUIRES(mu_);
  IssuedToken IssueLocked(const std::string& refresh_token) REQUIRES(mu_);

  AuthConfig config_;
  core::Mutex mu_;
  std::mt19937_64 rng_ GUARDED_BY(mu_);
  bool static_revoked_ GUARDED_BY(mu_) = false;
  std::map<std::string, Access> access_ GUARDED_BY(mu_);
  std::map<std::string, bool> refresh_ GUARDED_BY(mu_);  // token -> valid
  std::map<std::string, Code> codes_ GUARDED_BY(mu_);
};

}  // namespace filesync::emulator
