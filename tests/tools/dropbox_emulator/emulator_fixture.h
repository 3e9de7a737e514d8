// Shared fixture for the emulator integration tests: starts the real binary through
// EmulatorProcess and offers small RPC / upload / download helpers on httplib::Client.
#pragma once

#include <gtest/gtest.h>
#include <httplib.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "emulator_process.h"

namespace filesync::emulator_test {

struct Response {
  int status = 0;  // 0 = transport error
  std::string body;
  httplib::Headers headers;
  [[nodiscard]] nlohmann::json json() const { return nlohmann::json::parse(body, nullptr, false); }
  [[nodiscard]] std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
  [[nodiscard]] std::string content_type() const { return header("Content-Type"); }
};

class EmulatorTest : public ::testing::Test {
 protected:
  // Extra emulator flags for this fixture (override in subclasses).
  virtual std::vector<std::string> ExtraArgs() { return {"--longpoll-max-s", "2"}; }

  void SetUp() override {
    ASSERT_TRUE(emu_.Start(ExtraArgs()));
    // One uncounted request on this thread first: Debian's libcpp-httplib.so (not built with
    // -fsanitize=thread) parses responses with a function-local static std::regex, and TSan
    // cannot see the guard that orders its first construction with later use by test threads.
    ASSERT_TRUE(Client()->Get("/admin/health"));
  }

  std::unique_ptr<httplib::Client> Client() {
    auto c = std::make_unique<httplib::Client>("127.0.0.1", emu_.port());
    c->set_read_timeout(60, 0);
    c->set_write_timeout(60, 0);
    return c;
  }

  httplib::Headers Auth(const std::string& token = "") {
    return {{"Authorization", "Bearer " + (token.empty() ? emu_.token() : token)}};
  }

  static Response From(const httplib::Result& r) {
    Response out;
    if (!r) return out;
    out.status = r->status;
    out.body = r->body;
    out.headers = r->headers;
    return out;
  }

  // RPC call with a JSON body (`raw` overrides the body text when set).
  Response Rpc(const std::string& route, const nlohmann::json& arg, const std::string& token = "") {
    auto c = Client();
    return From(c->Post(("/2/" + route).c_str(), Auth(token), arg.dump(), "application/json"));
  }
  Response RpcRaw(const std::string& route, const std::string& body,
                  const std::string& content_type = "application/json") {
    auto c = Client();
    return From(c->Post(("/2/" + route).c_str(), Auth(), body, content_type.c_str()));
  }

  // Content-upload call: arg JSON in Dropbox-API-Arg (ASCII-escaped), body bytes.
  Response Upload(const std::string& route, const nlohmann::json& arg, const std::string& body,
                  const std::string& token = "") {
    return UploadRawHeader(route, arg.dump(-1, ' ', true), body, token);
  }
  Response UploadRawHeader(const std::string& route, const std::string& header,
                           const std::string& body, const std::string& token = "") {
    auto c = Client();
    httplib::Headers h = Auth(token);
    h.emplace("Dropbox-API-Arg", header);
    return From(c->Post(("/2/" + route).c_str(), h, body, "application/octet-stream"));
  }

  // files/upload with mode overwrite; asserts success and returns the metadata.
  nlohmann::json PutFile(const std::string& path, const std::string& content) {
    auto r = Upload("files/upload", {{"path", path}, {"mode", "overwrite"}}, content);
    EXPECT_EQ(r.status, 200) << r.body;
    return r.json();
  }

  Response Download(const std::string& path) {
    auto c = Client();
    httplib::Headers h = Auth();
    h.emplace("Dropbox-API-Arg", nlohmann::json{{"path", path}}.dump(-1, ' ', true));
    return From(c->Post("/2/files/download", h, "", "application/octet-stream"));
  }

  // Starts a sequential session with `data` and close=true; returns the session id.
  std::string ClosedSession(const std::string& data) {
    auto r = Upload("files/upload_session/start", {{"close", true}}, data);
    EXPECT_EQ(r.status, 200) << r.body;
    return r.json().value("session_id", "");
  }

  test_support::EmulatorProcess emu_;
};

// The .tag chain of a 409 body's error, joined with '/'.
inline std::string TagPath(const nlohmann::json& error) {
  std::string out;
  const nlohmann::json* u = &error;
  while (u->is_object() && u->contains(".tag")) {
    const std::string tag = (*u)[".tag"].get<std::string>();
    if (!out.empty()) out += "/";
    out += tag;
    if (u->contains(tag) && (*u)[tag].is_object()) {
      u = &(*u)[tag];
    } else if (u->contains("reason")) {
      u = &(*u)["reason"];
    } else {
      break;
    }
  }
  return out;
}

// Checks the §2.1 409 shape and returns the tag path of `error`.
inline std::string Expect409(const Response& r) {
  EXPECT_EQ(r.status, 409) << r.body;
  EXPECT_NE(r.content_type().find("application/json"), std::string::npos);
  const auto j = r.json();
  EXPECT_TRUE(j.is_object()) << r.body;
  if (!j.is_object()) return "";
  EXPECT_TRUE(j.contains("error_summary"));
  EXPECT_TRUE(j.contains("error"));
  const std::string summary = j.value("error_summary", "");
  const std::string tags = TagPath(j["error"]);
  EXPECT_EQ(summary.rfind(tags + "/", 0), 0u) << summary << " vs " << tags;
  EXPECT_EQ(summary.back(), '.') << summary;
  return tags;
}

inline constexpr std::size_t kMiB = 1024 * 1024;

}  // namespace filesync::emulator_test
