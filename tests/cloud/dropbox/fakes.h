// Test doubles for the Dropbox backend: a fake clock, a scripted HTTP transport and an
// in-memory SessionStore. Thread-safe.
#pragma once

#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cloud/dropbox/http_client.h"
#include "cloud/dropbox/session_store.h"
#include "core/clock.h"

namespace filesync::dropbox::testing {

class FakeClock : public core::Clock {
 public:
  TimePoint Now() override {
    std::lock_guard lock(mu_);
    return now_;
  }
  std::chrono::system_clock::time_point WallNow() override {
    std::lock_guard lock(mu_);
    return wall_ + (now_ - TimePoint{});
  }
  void SleepUntil(TimePoint deadline) override {
    std::lock_guard lock(mu_);
    if (deadline > now_) {
      sleeps_.push_back(deadline - now_);
      now_ = deadline;
    }
  }
  void Advance(std::chrono::milliseconds d) {
    std::lock_guard lock(mu_);
    now_ += d;
  }
  std::vector<std::chrono::steady_clock::duration> sleeps() {
    std::lock_guard lock(mu_);
    return sleeps_;
  }

 private:
  std::mutex mu_;
  TimePoint now_{std::chrono::hours(1000)};
  std::chrono::system_clock::time_point wall_{std::chrono::seconds(1'800'000'000)};
  std::vector<std::chrono::steady_clock::duration> sleeps_;
};

inline HttpResponse JsonResponse(long status, const nlohmann::json& body) {
  HttpResponse r;
  r.status = status;
  r.headers.Add("Content-Type", "application/json");
  r.headers.Add("X-Dropbox-Request-Id", "req-123");
  r.body = body.dump();
  return r;
}

inline HttpResponse TextResponse(long status, std::string text) {
  HttpResponse r;
  r.status = status;
  r.headers.Add("Content-Type", "text/plain; charset=utf-8");
  r.body = std::move(text);
  return r;
}

// Answers each request with handler(request) and records what was sent.
class FakeTransport : public HttpTransport {
 public:
  using Handler = std::function<Result<HttpResponse>(const HttpRequest&)>;
  explicit FakeTransport(Handler handler) : handler_(std::move(handler)) {}

  Result<HttpResponse> Send(const HttpRequest& request) override {
    {
      std::lock_guard lock(mu_);
      requests_.push_back(request);
    }
    return handler_(request);
  }
  std::vector<HttpRequest> requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }
  // Route of a request URL: "files/list_folder" for ".../2/files/list_folder".
  static std::string Route(const HttpRequest& r) {
    const auto pos = r.url.find("/2/");
    return pos == std::string::npos ? r.url : r.url.substr(pos + 3);
  }
  std::vector<std::string> routes() {
    std::vector<std::string> out;
    for (const auto& r : requests()) out.push_back(Route(r));
    return out;
  }

 private:
  Handler handler_;
  std::mutex mu_;
  std::vector<HttpRequest> requests_;
};

class MemorySessionStore : public SessionStore {
 public:
  Result<std::optional<std::string>> Get(std::string_view key) override {
    std::lock_guard lock(mu_);
    auto it = map_.find(std::string(key));
    if (it == map_.end()) return std::optional<std::string>();
    return std::optional<std::string>(it->second);
  }
  Status Put(std::string_view key, std::string_view value) override {
    std::lock_guard lock(mu_);
    map_[std::string(key)] = std::string(value);
    return Status::Ok();
  }
  Status Erase(std::string_view key) override {
    std::lock_guard lock(mu_);
    map_.erase(std::string(key));
    return Status::Ok();
  }
  std::size_t size() {
    std::lock_guard lock(mu_);
    return map_.size();
  }

 private:
  std::mutex mu_;
  std::map<std::string, std::string> map_;
};

}  // namespace filesync::dropbox::testing
