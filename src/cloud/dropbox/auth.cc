// Token refresh and the PKCE code flow. The token endpoint takes a form body; credentials go in
// form fields (client_id, and client_secret only for apps that have one).
#include "cloud/dropbox/auth.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <istream>
#include <nlohmann/json.hpp>
#include <ostream>
#include <vector>

#include "cloud/dropbox/logging.h"

namespace filesync::dropbox {

namespace {

constexpr std::string_view kVerifierAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~";

std::string Base64Url(const unsigned char* data, std::size_t size) {
  std::string out(4 * ((size + 2) / 3) + 1, '\0');
  const int n =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, static_cast<int>(size));
  out.resize(static_cast<std::size_t>(n));
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (char& c : out) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  return out;
}

std::string FormBody(const std::vector<std::pair<std::string, std::string>>& fields) {
  std::string body;
  for (const auto& [key, value] : fields) {
    if (!body.empty()) body += '&';
    body += UrlEncode(key) + "=" + UrlEncode(value);
  }
  return body;
}

struct Grant {
  std::string access_token;
  std::string refresh_token;
  std::chrono::seconds expires_in{14400};
};

// POSTs a token request and interprets the OAuth-style answer (reference §3.3).
Result<Grant> PostToken(HttpTransport& transport, const std::string& api_url,
                        const std::vector<std::pair<std::string, std::string>>& fields) {
  HttpRequest request;
  request.url = api_url + "/oauth2/token";
  request.headers.Add("Content-Type", "application/x-www-form-urlencoded");
  request.body = FormBody(fields);
  request.timeout = std::chrono::seconds(60);
  auto response = transport.Send(request);
  if (!response.ok()) return response.status();
  const nlohmann::json body = nlohmann::json::parse(response->body, nullptr, false);
  if (response->status == 200 && body.is_object() && body.contains("access_token") &&
      body["access_token"].is_string()) {
    Grant grant;
    grant.access_token = body["access_token"].get<std::string>();
    if (auto it = body.find("refresh_token"); it != body.end() && it->is_string()) {
      grant.refresh_token = it->get<std::string>();
    }
    if (auto it = body.find("expires_in"); it != body.end() && it->is_number_integer()) {
      grant.expires_in = std::chrono::seconds(it->get<std::int64_t>());
    }
    return grant;
  }
  std::string error = "unknown";
  if (body.is_object()) {
    if (auto it = body.find("error"); it != body.end() && it->is_string())
      error = it->get<std::string>();
  }
  const std::string message =
      "token endpoint: HTTP " + std::to_string(response->status) + " " + error;
  if (response->status >= 500 || response->status == 429) return Status::Transient(message);
  if (error == "invalid_grant") {
    return Status::Auth(message + " (the refresh token or code is revoked or invalid)");
  }
  if (response->status == 400 || response->status == 401) return Status::Auth(message);
  return Status::Permanent(message);
}

}  // namespace

Result<std::string> StaticTokenProvider::AccessToken() {
  if (token_.empty()) return Status::Auth("no Dropbox access token configured (dbx_token)");
  return token_;
}

Result<std::string> StaticTokenProvider::RefreshAfterExpiry(std::string_view) {
  return Status::Auth(
      "the Dropbox access token expired and no refresh token is configured; run `filesync auth`");
}

RefreshingTokenProvider::RefreshingTokenProvider(RefreshOptions options,
                                                 std::shared_ptr<HttpTransport> transport,
                                                 core::Clock& clock)
    : options_(std::move(options)), transport_(std::move(transport)), clock_(clock) {}

Status RefreshingTokenProvider::RefreshLocked() {
  std::vector<std::pair<std::string, std::string>> fields = {
      {"grant_type", "refresh_token"},
      {"refresh_token", options_.refresh_token},
      {"client_id", options_.app_key},
  };
  if (!options_.app_secret.empty()) fields.emplace_back("client_secret", options_.app_secret);
  auto grant = PostToken(*transport_, options_.api_url, fields);
  if (!grant.ok()) {
    // A refused refresh token is reported by whoever asked for the token, in terms of the
    // configuration; a transient failure is worth a line here.
    if (grant.status().kind() != Status::Kind::kAuth)
      Log().warn("access token refresh failed: {}", grant.status().ToString());
    return grant.status();
  }
  token_ = std::move(grant->access_token);
  expires_at_ = clock_.Now() + grant->expires_in;
  ++refresh_count_;
  Log().info("refreshed the Dropbox access token (valid for {} s)", grant->expires_in.count());
  return Status::Ok();
}

Result<std::string> RefreshingTokenProvider::AccessToken() {
  core::MutexLock lock(&mu_);
  if (token_.empty() || clock_.Now() + options_.margin >= expires_at_) {
    if (Status s = RefreshLocked(); !s.ok()) return s;
  }
  return token_;
}

Result<std::string> RefreshingTokenProvider::RefreshAfterExpiry(std::string_view rejected) {
  core::MutexLock lock(&mu_);
  if (token_ == rejected || token_.empty()) {
    if (Status s = RefreshLocked(); !s.ok()) return s;
  }
  return token_;
}

int RefreshingTokenProvider::refresh_count() const {
  core::MutexLock lock(&mu_);
  return refresh_count_;
}

std::string MakeCodeVerifier() {
  std::string out;
  out.reserve(128);
  // Rejection sampling keeps every alphabet character equally likely.
  const auto limit = static_cast<unsigned char>(256 - 256 % kVerifierAlphabet.size());
  while (out.size() < 128) {
    std::array<unsigned char, 64> bytes{};
    if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1) {
      throw std::runtime_error("RAND_bytes failed");
    }
    for (const unsigned char b : bytes) {
      if (b < limit && out.size() < 128)
        out.push_back(kVerifierAlphabet[b % kVerifierAlphabet.size()]);
    }
  }
  return out;
}

std::string CodeChallenge(std::string_view verifier) {
  std::array<unsigned char, SHA256_DIGEST_LENGTH> digest{};
  SHA256(reinterpret_cast<const unsigned char*>(verifier.data()), verifier.size(), digest.data());
  return Base64Url(digest.data(), digest.size());
}

std::string AuthorizeUrl(const AuthFlowOptions& options, std::string_view challenge) {
  return options.www_url + "/oauth2/authorize?client_id=" + UrlEncode(options.app_key) +
         "&response_type=code&token_access_type=offline&code_challenge=" + UrlEncode(challenge) +
         "&code_challenge_method=S256";
}

Status RunAuthFlow(const AuthFlowOptions& options, std::istream& in, std::ostream& out) {
  if (options.app_key.empty()) return Status::InvalidArgument("dbx_app_key is not set");
  if (options.token_file.empty())
    return Status::InvalidArgument("no file to store the refresh token in");
  const std::string verifier = MakeCodeVerifier();
  out << "1. Open this URL in a browser and allow access:\n   "
      << AuthorizeUrl(options, CodeChallenge(verifier))
      << "\n2. Paste the code Dropbox shows you here: " << std::flush;
  std::string code;
  if (!std::getline(in, code)) return Status::Cancelled("no authorization code was entered");
  while (!code.empty() && (code.back() == '\r' || code.back() == ' ')) code.pop_back();
  while (!code.empty() && code.front() == ' ') code.erase(code.begin());
  if (code.empty()) return Status::InvalidArgument("the authorization code is empty");

  std::shared_ptr<HttpTransport> transport = options.transport;
  if (!transport) transport = MakeCurlTransport(HttpClientOptions{.ca_file = options.ca_file});
  auto grant = PostToken(*transport, options.api_url,
                         {{"grant_type", "authorization_code"},
                          {"code", code},
                          {"client_id", options.app_key},
                          {"code_verifier", verifier}});
  if (!grant.ok()) return grant.status();
  if (grant->refresh_token.empty()) {
    return Status::Permanent(
        "Dropbox returned no refresh token (was token_access_type=offline dropped?)");
  }

  const int fd =
      open(options.token_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0)
    return Status::Io("cannot create " + options.token_file + ": " + std::strerror(errno));
  // An existing file keeps its old mode through O_CREAT; force owner-only access.
  bool written = fchmod(fd, 0600) == 0;
  const std::string data = grant->refresh_token + "\n";
  std::size_t done = 0;
  while (written && done < data.size()) {
    const ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      written = false;
      break;
    }
    done += static_cast<std::size_t>(n);
  }
  written = fsync(fd) == 0 && written;
  const int saved = errno;
  close(fd);
  if (!written)
    return Status::Io("cannot write " + options.token_file + ": " + std::strerror(saved));
  out << "Authorized. The refresh token was saved to " << options.token_file << " (mode 0600).\n"
      << "Set dbx_refresh_token to its content (and dbx_app_key) in config/instance.toml.\n";
  return Status::Ok();
}

}  // namespace filesync::dropbox
