// Expiry is measured on the steady clock so a wall-clock jump cannot revive or kill tokens.
#include "dropbox_emulator/auth.h"

#include <openssl/sha.h>

#include "dropbox_emulator/wire.h"

namespace filesync::emulator {
namespace {
constexpr std::chrono::minutes kCodeLifetime{10};
}  // namespace

TokenStore::TokenStore(AuthConfig config)
    : config_(std::move(config)), rng_(std::random_device{}()) {
  if (!config_.refresh_token.empty()) refresh_[config_.refresh_token] = true;
}

std::string TokenStore::S256(const std::string& verifier) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(verifier.data()), verifier.size(), digest);
  return Base64UrlEncode(std::string_view(reinterpret_cast<const char*>(digest), sizeof digest));
}

std::string TokenStore::RandomLocked(std::size_t chars) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  out.reserve(chars);
  for (std::size_t i = 0; i < chars; ++i) out.push_back(kAlphabet[rng_() % 64]);
  return out;
}

TokenStore::Check TokenStore::Validate(const std::string& token) {
  core::MutexLock lock(&mu_);
  if (token.empty()) return Check::kInvalid;
  if (!config_.static_token.empty() && token == config_.static_token) {
    return static_revoked_ ? Check::kInvalid : Check::kValid;
  }
  auto it = access_.find(token);
  if (it == access_.end()) return Check::kInvalid;
  return std::chrono::steady_clock::now() >= it->second.expires ? Check::kExpired : Check::kValid;
}

void TokenStore::Revoke(const std::string& token) {
  core::MutexLock lock(&mu_);
  if (!config_.static_token.empty() && token == config_.static_token) {
    static_revoked_ = true;
    return;
  }
  auto it = access_.find(token);
  if (it == access_.end()) return;
  const std::string refresh = it->second.refresh_token;
  access_.erase(it);
  if (refresh.empty()) return;
  refresh_[refresh] = false;
  for (auto a = access_.begin(); a != access_.end();) {
    a = a->second.refresh_token == refresh ? access_.erase(a) : std::next(a);
  }
}

std::variant<std::string, OAuthError> TokenStore::Authorize(const AuthorizeRequest& r) {
  core::MutexLock lock(&mu_);
  if (r.client_id.empty()) return OAuthError{"invalid_request", "No client_id"};
  if (!config_.app_key.empty() && r.client_id != config_.app_key) {
    return OAuthError{"invalid_client", "Invalid client_id"};
  }
  if (r.response_type != "code") {
    return OAuthError{"unsupported_response_type", "response_type must be code"};
  }
  if (!r.code_challenge.empty() && r.code_challenge_method != "S256" &&
      r.code_challenge_method != "plain") {
    return OAuthError{"invalid_request", "code_challenge_method must be S256 or plain"};
  }
  if (!r.token_access_type.empty() && r.token_access_type != "offline" &&
      r.token_access_type != "online" && r.token_access_type != "legacy") {
    return OAuthError{"invalid_request", "Invalid token_access_type"};
  }
  Code c;
  c.client_id = r.client_id;
  c.challenge = r.code_challenge;
  c.method = r.code_challenge.empty() ? "" : r.code_challenge_method;
  c.offline = r.token_access_type == "offline";
  c.redirect_uri = r.redirect_uri;
  c.expires = std::chrono::steady_clock::now() + kCodeLifetime;
  std::string code = RandomLocked(43);
  codes_[code] = c;
  return code;
}

std::optional<OAuthError> TokenStore::CheckClientLocked(const TokenRequest& r) const {
  if (r.client_id.empty()) return OAuthError{"invalid_request", "No client_id"};
  if (!config_.app_key.empty() && r.client_id != config_.app_key) {
    return OAuthError{"invalid_client", "Invalid client_id or client_secret"};
  }
  if (r.client_secret && !config_.app_secret.empty() && *r.client_secret != config_.app_secret) {
    return OAuthError{"invalid_client", "Invalid client_id or client_secret"};
  }
  return std::nullopt;
}

IssuedToken TokenStore::IssueLocked(const std::string& refresh_token) {
  IssuedToken t;
  t.access_token = "sl." + RandomLocked(60);
  t.expires_in = config_.token_lifetime.count();
  access_[t.access_token] = {std::chrono::steady_clock::now() + config_.token_lifetime,
                             refresh_token};
  return t;
}

std::variant<IssuedToken, OAuthError> TokenStore::Token(const TokenRequest& r) {
  core::MutexLock lock(&mu_);
  if (r.grant_type.empty()) return OAuthError{"invalid_request", "No grant_type"};
  if (auto e = CheckClientLocked(r)) return *e;
  if (r.grant_type == "refresh_token") {
    if (r.refresh_token.empty()) return OAuthError{"invalid_request", "No refresh_token"};
    auto it = refresh_.find(r.refresh_token);
    if (it == refresh_.end() || !it->second) {
      return OAuthError{"invalid_grant", "refresh token is invalid or revoked"};
    }
    return IssueLocked(r.refresh_token);
  }
  if (r.grant_type == "authorization_code") {
    if (r.code.empty()) return OAuthError{"invalid_request", "No code"};
    auto it = codes_.find(r.code);
    if (it == codes_.end() || std::chrono::steady_clock::now() >= it->second.expires) {
      return OAuthError{"invalid_grant", "code doesn't exist or has expired"};
    }
    const Code code = it->second;
    codes_.erase(it);  // one-time, whatever the outcome
    if (code.client_id != r.client_id) {
      return OAuthError{"invalid_grant", "code was issued to another client"};
    }
    if (code.redirect_uri != r.redirect_uri) {
      return OAuthError{"invalid_grant", "redirect_uri mismatch"};
    }
    if (!code.challenge.empty()) {
      if (!r.code_verifier) return OAuthError{"invalid_grant", "missing code_verifier"};
      const std::string computed =
          code.method == "plain" ? *r.code_verifier : S256(*r.code_verifier);
      if (computed != code.challenge) return OAuthError{"invalid_grant", "invalid code_verifier"};
    } else if (!config_.app_secret.empty() && !r.client_secret) {
      return OAuthError{"invalid_client", "client_secret required without PKCE"};
    }
    std::string refresh;
    if (code.offline) {
      refresh = RandomLocked(64);
      refresh_[refresh] = true;
    }
    IssuedToken t = IssueLocked(refresh);
    t.refresh_token = refresh;
    return t;
  }
  return OAuthError{"unsupported_grant_type", "grant_type is not supported"};
}

}  // namespace filesync::emulator
