// Dropbox authentication (reference §3): access-token providers, PKCE helpers and the
// interactive "paste the code" flow behind `filesync auth`.
//
// TokenProvider is what DropboxCloud asks for a bearer token before each request:
//  - StaticTokenProvider: a fixed dbx_token (cannot refresh; an expired token is kAuth).
//  - RefreshingTokenProvider: dbx_refresh_token + dbx_app_key (+ dbx_app_secret). It posts
//    grant_type=refresh_token to <api_url>/oauth2/token when now + 300 s >= expires_at, and
//    when a request got 401 expired_access_token. Refreshes are serialised by a mutex: of N
//    workers that see the same expired token, one refreshes and the others reuse its result.
//    invalid_grant (revoked refresh token) is kAuth; network/5xx failures are kTransient.
// Tokens are never logged or put in a Status message. Providers are thread-safe.
#pragma once

#include <chrono>
#include <iosfwd>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "cloud/dropbox/http_client.h"
#include "core/clock.h"
#include "core/thread_annotations.h"
#include "util/status.h"

namespace filesync::dropbox {

class TokenProvider {
 public:
  virtual ~TokenProvider() = default;
  // A token to send now (refreshed first if it is about to expire).
  virtual Result<std::string> AccessToken() = 0;
  // After a 401 expired_access_token for `rejected`: a newer token, refreshing unless another
  // caller already has. kAuth when this provider cannot refresh.
  virtual Result<std::string> RefreshAfterExpiry(std::string_view rejected) = 0;
};

class StaticTokenProvider : public TokenProvider {
 public:
  explicit StaticTokenProvider(std::string token) : token_(std::move(token)) {}
  Result<std::string> AccessToken() override;
  Result<std::string> RefreshAfterExpiry(std::string_view rejected) override;

 private:
  const std::string token_;
};

struct RefreshOptions {
  std::string api_url = "https://api.dropboxapi.com";
  std::string app_key;
  std::string app_secret;  // "" for PKCE apps
  std::string refresh_token;
  std::chrono::seconds margin{300};  // refresh this long before expiry
};

class RefreshingTokenProvider : public TokenProvider {
 public:
  RefreshingTokenProvider(RefreshOptions options, std::shared_ptr<HttpTransport> transport,
                          core::Clock& clock = core::SystemClock());
  Result<std::string> AccessToken() override;
  Result<std::string> RefreshAfterExpiry(std::string_view rejected) override;
  // Number of successful refreshes so far (tests, status output).
  [[nodiscard]] int refresh_count() const;

 private:
  Status RefreshLocked() REQUIRES(mu_);

  const RefreshOptions options_;
  const std::shared_ptr<HttpTransport> transport_;
  core::Clock& clock_;
  mutable core::Mutex mu_;
  std::string token_ GUARDED_BY(mu_);
  core::Clock::TimePoint expires_at_ GUARDED_BY(mu_){};
  int refresh_count_ GUARDED_BY(mu_) = 0;
};

// PKCE (RFC 7636): a 128-character verifier from [A-Za-z0-9-._~] (cryptographic randomness),
// and its S256 challenge, base64url(SHA-256(verifier)) without '=' padding.
std::string MakeCodeVerifier();
std::string CodeChallenge(std::string_view verifier);

struct AuthFlowOptions {
  std::string app_key;
  std::string www_url = "https://www.dropbox.com";     // where /oauth2/authorize lives
  std::string api_url = "https://api.dropboxapi.com";  // where /oauth2/token lives
  std::string token_file;                    // receives the refresh token, created with mode 0600
  std::string ca_file;                       // extra CA bundle for the token request
  std::shared_ptr<HttpTransport> transport;  // null: a curl transport with ca_file
};

// The authorize URL for `app_key` and a PKCE challenge (offline access, no redirect).
std::string AuthorizeUrl(const AuthFlowOptions& options, std::string_view challenge);

// Prints the authorize URL to `out`, reads the code the user pastes from `in`, exchanges it
// (grant_type=authorization_code with the PKCE verifier) and writes the refresh token to
// options.token_file (mode 0600, replacing an older one). The token is never printed.
Status RunAuthFlow(const AuthFlowOptions& options, std::istream& in, std::ostream& out);

}  // namespace filesync::dropbox
