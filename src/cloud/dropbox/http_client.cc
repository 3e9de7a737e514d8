// libcurl transport. Easy handles are pooled (curl_easy_reset keeps a handle's caches), and one
// CURLSH shares DNS answers, TLS sessions and the connection cache between all of them, so a
// request on any thread can reuse a connection another thread opened. The share needs a lock per
// data kind; we keep one mutex per curl_lock_data value.
#include "cloud/dropbox/http_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <mutex>
#include <stdexcept>

#include "cloud/dropbox/errors.h"
#include "core/thread_annotations.h"

namespace filesync::dropbox {

namespace {

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return s;
}

void GlobalInitOnce() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
      throw std::runtime_error("curl_global_init failed");
  });
}

struct Transfer {
  const std::string* body = nullptr;
  std::size_t sent = 0;
  HttpResponse* response = nullptr;
  const std::atomic<bool>* cancel = nullptr;
  cloud::Throttle* throttle = nullptr;
};

// libcurl calls this often while data flows and about once a second while it waits; non-zero
// aborts the transfer (CURLE_ABORTED_BY_CALLBACK).
int CheckCancel(void* userdata, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  const auto* t = static_cast<const Transfer*>(userdata);
  return t->cancel->load(std::memory_order_relaxed) ? 1 : 0;
}

std::size_t ReadBody(char* buffer, std::size_t size, std::size_t nitems, void* userdata) {
  auto* t = static_cast<Transfer*>(userdata);
  const std::size_t n = std::min(size * nitems, t->body->size() - t->sent);
  if (n > 0 && t->throttle != nullptr && !t->throttle->Acquire(n, t->cancel).ok())
    return CURL_READFUNC_ABORT;
  std::copy_n(t->body->data() + t->sent, n, buffer);
  t->sent += n;
  return n;
}

int SeekBody(void* userdata, curl_off_t offset, int origin) {
  auto* t = static_cast<Transfer*>(userdata);
  if (origin != SEEK_SET || offset < 0 || static_cast<std::size_t>(offset) > t->body->size()) {
    return CURL_SEEKFUNC_CANTSEEK;
  }
  t->sent = static_cast<std::size_t>(offset);
  return CURL_SEEKFUNC_OK;
}

std::size_t WriteBody(char* data, std::size_t size, std::size_t nmemb, void* userdata) {
  auto* t = static_cast<Transfer*>(userdata);
  t->response->body.append(data, size * nmemb);
  return size * nmemb;
}

std::size_t WriteHeader(char* data, std::size_t size, std::size_t nitems, void* userdata) {
  auto* t = static_cast<Transfer*>(userdata);
  const std::string_view line(data, size * nitems);
  if (line.starts_with("HTTP/")) {
    // A new status line (100 Continue, a redirect): forget headers of the previous response.
    t->response->headers = HttpHeaders();
    return line.size();
  }
  const auto colon = line.find(':');
  if (colon != std::string_view::npos) {
    t->response->headers.Add(std::string(Trim(line.substr(0, colon))),
                             std::string(Trim(line.substr(colon + 1))));
  }
  return line.size();
}

class CurlTransport : public HttpTransport {
 public:
  explicit CurlTransport(HttpClientOptions options) : options_(std::move(options)) {
    GlobalInitOnce();
    share_ = curl_share_init();
    if (share_ == nullptr) throw std::runtime_error("curl_share_init failed");
    curl_share_setopt(share_, CURLSHOPT_LOCKFUNC, &CurlTransport::Lock);
    curl_share_setopt(share_, CURLSHOPT_UNLOCKFUNC, &CurlTransport::Unlock);
    curl_share_setopt(share_, CURLSHOPT_USERDATA, this);
    curl_share_setopt(share_, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(share_, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    curl_share_setopt(share_, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
  }

  ~CurlTransport() override {
    for (CURL* handle : idle_) curl_easy_cleanup(handle);
    curl_share_cleanup(share_);
  }

  CurlTransport(const CurlTransport&) = delete;
  CurlTransport& operator=(const CurlTransport&) = delete;

  Result<HttpResponse> Send(const HttpRequest& request) override {
    CURL* handle = Acquire();
    if (handle == nullptr) return Status::Transient("curl_easy_init failed");
    HttpResponse response;
    Transfer transfer{&request.body, 0, &response, request.cancel, options_.throttle};
    std::array<char, CURL_ERROR_SIZE> error{};

    curl_easy_setopt(handle, CURLOPT_SHARE, share_);
    curl_easy_setopt(handle, CURLOPT_URL, request.url.c_str());
    curl_easy_setopt(handle, CURLOPT_ERRORBUFFER, error.data());
    curl_easy_setopt(handle, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(handle, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(handle, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_2TLS));
    curl_easy_setopt(handle, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(handle, CURLOPT_SSL_VERIFYHOST, 2L);
    if (!options_.ca_file.empty())
      curl_easy_setopt(handle, CURLOPT_CAINFO, options_.ca_file.c_str());
    curl_easy_setopt(handle, CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(options_.connect_timeout.count() * 1000));
    curl_easy_setopt(handle, CURLOPT_LOW_SPEED_LIMIT, options_.low_speed_limit);
    curl_easy_setopt(handle, CURLOPT_LOW_SPEED_TIME,
                     static_cast<long>(options_.low_speed_time.count()));
    curl_easy_setopt(handle, CURLOPT_TIMEOUT_MS, static_cast<long>(request.timeout.count() * 1000));
    curl_easy_setopt(handle, CURLOPT_FORBID_REUSE, request.close_connection_after ? 1L : 0L);
    curl_easy_setopt(handle, CURLOPT_USERAGENT, options_.user_agent.c_str());
    curl_easy_setopt(handle, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(handle, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(handle, CURLOPT_WRITEFUNCTION, &WriteBody);
    curl_easy_setopt(handle, CURLOPT_WRITEDATA, &transfer);
    curl_easy_setopt(handle, CURLOPT_HEADERFUNCTION, &WriteHeader);
    curl_easy_setopt(handle, CURLOPT_HEADERDATA, &transfer);
    if (request.cancel != nullptr) {
      curl_easy_setopt(handle, CURLOPT_NOPROGRESS, 0L);
      curl_easy_setopt(handle, CURLOPT_XFERINFOFUNCTION, &CheckCancel);
      curl_easy_setopt(handle, CURLOPT_XFERINFODATA, &transfer);
    }

    if (request.method == "POST") {
      curl_easy_setopt(handle, CURLOPT_POST, 1L);
      curl_easy_setopt(handle, CURLOPT_READFUNCTION, &ReadBody);
      curl_easy_setopt(handle, CURLOPT_READDATA, &transfer);
      curl_easy_setopt(handle, CURLOPT_SEEKFUNCTION, &SeekBody);
      curl_easy_setopt(handle, CURLOPT_SEEKDATA, &transfer);
      curl_easy_setopt(handle, CURLOPT_POSTFIELDSIZE_LARGE,
                       static_cast<curl_off_t>(request.body.size()));
    } else if (request.method != "GET") {
      curl_easy_setopt(handle, CURLOPT_CUSTOMREQUEST, request.method.c_str());
    }

    curl_slist* headers = nullptr;
    for (const auto& [name, value] : request.headers.items()) {
      headers = curl_slist_append(headers, (name + ": " + value).c_str());
    }
    // No "Expect: 100-continue" round trip before large bodies.
    headers = curl_slist_append(headers, "Expect:");
    curl_easy_setopt(handle, CURLOPT_HTTPHEADER, headers);

    const CURLcode code = curl_easy_perform(handle);
    long status = 0;
    curl_easy_getinfo(handle, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(headers);
    Release(handle);

    Observe(request, code == CURLE_OK ? &response : nullptr, status);
    if (code != CURLE_OK) {
      std::string message =
          std::string(request.method) + " " + request.url + ": " + curl_easy_strerror(code);
      if (code == CURLE_ABORTED_BY_CALLBACK) return Status::Cancelled(message + " (stopped)");
      if (error[0] != '\0') message += std::string(" (") + error.data() + ")";
      if (code == CURLE_PEER_FAILED_VERIFICATION || code == CURLE_SSL_CACERT_BADFILE ||
          code == CURLE_SSL_CERTPROBLEM) {
        return Status::Permanent(std::string(kTlsVerificationFailed) + ": " + message);
      }
      return Status::Transient(message);
    }
    response.status = status;
    return response;
  }

 private:
  // Reports the outcome to the observer: every answer, and a rate-limit answer's reason and
  // Retry-After (header or JSON) the way the Dropbox backend reads them (errors.h).
  void Observe(const HttpRequest& request, HttpResponse* response, long status) const {
    if (options_.observer == nullptr) return;
    const std::string_view url = request.url;
    const auto at = url.find("/2/");
    const std::string_view route =
        at == std::string_view::npos ? std::string_view("other") : url.substr(at + 3);
    options_.observer->Answered(route, response != nullptr ? status : 0);
    if (response == nullptr || status < 400) return;
    response->status = status;
    const ApiError error = ClassifyResponse(*response, route);
    const double wait =
        error.retry_after ? static_cast<double>(error.retry_after->count()) / 1000.0 : 0.0;
    if (error.rate_reason == RateReason::kTooManyWriteOperations) {
      options_.observer->RateLimited(route, "too_many_write_operations", wait);
    } else if (status == 429) {
      options_.observer->RateLimited(route, "too_many_requests", wait);
    } else if (status == 503 && error.retry_after) {
      options_.observer->RateLimited(route, "http_503", wait);
    }
  }

  static void Lock(CURL*, curl_lock_data data, curl_lock_access, void* userptr) {
    static_cast<CurlTransport*>(userptr)->locks_[Index(data)].lock();
  }
  static void Unlock(CURL*, curl_lock_data data, void* userptr) {
    static_cast<CurlTransport*>(userptr)->locks_[Index(data)].unlock();
  }
  static std::size_t Index(curl_lock_data data) {
    const auto i = static_cast<std::size_t>(data);
    return i < kLockSlots ? i : 0;
  }

  CURL* Acquire() EXCLUDES(pool_mu_) {
    {
      core::MutexLock lock(&pool_mu_);
      if (!idle_.empty()) {
        CURL* handle = idle_.back();
        idle_.pop_back();
        return handle;
      }
    }
    return curl_easy_init();
  }

  void Release(CURL* handle) EXCLUDES(pool_mu_) {
    curl_easy_reset(handle);
    core::MutexLock lock(&pool_mu_);
    idle_.push_back(handle);
  }

  static constexpr std::size_t kLockSlots = 16;
  const HttpClientOptions options_;
  CURLSH* share_ = nullptr;
  // Plain std::mutex: locked and unlocked in separate libcurl callbacks (Lock, Unlock), which
  // the analysis cannot pair; they guard libcurl's shared data, not a member.
  std::array<std::mutex, kLockSlots> locks_;
  core::Mutex pool_mu_;
  std::vector<CURL*> idle_ GUARDED_BY(pool_mu_);
};

}  // namespace

void HttpHeaders::Add(std::string name, std::string value) {
  items_.emplace_back(std::move(name), std::move(value));
}

void HttpHeaders::Set(std::string name, std::string value) {
  std::erase_if(items_, [&](const auto& item) { return EqualsIgnoreCase(item.first, name); });
  Add(std::move(name), std::move(value));
}

std::optional<std::string_view> HttpHeaders::Get(std::string_view name) const {
  for (const auto& [key, value] : items_) {
    if (EqualsIgnoreCase(key, name)) return std::string_view(value);
  }
  return std::nullopt;
}

std::shared_ptr<HttpTransport> MakeCurlTransport(HttpClientOptions options) {
  return std::make_shared<CurlTransport>(std::move(options));
}

std::string UrlEncode(std::string_view value) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(value.size());
  for (const char c : value) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) != 0 || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 0xF]);
    }
  }
  return out;
}

}  // namespace filesync::dropbox
