// TLS (issue 5, Security): the Dropbox client always verifies the server. Against the emulator
// serving HTTPS with a self-signed certificate made at test time, `filesync sync` fails with a
// clear one-line error and uploads nothing unless dbx_ca_file trusts that certificate; trusting
// another certificate, or this one for another host name, does not help.
#include <gtest/gtest.h>
#include <httplib.h>

#include <cstdlib>
#include <nlohmann/json.hpp>
#include <sstream>

#include "emulator_process.h"
#include "security_support.h"

namespace filesync::security_test {
namespace {

using test_support::EmulatorProcess;

// Makes a self-signed EC certificate for `san` (e.g. "IP:127.0.0.1") as <dir>/<name>.pem and
// <dir>/<name>-key.pem.
bool MakeCertificate(const fs::path& dir, const std::string& name, const std::string& san) {
  fs::create_directories(dir);
  const std::string cmd =
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2"
      " -subj /CN=filesync-security-test -addext subjectAltName=" +
      san + " -keyout " + (dir / (name + "-key.pem")).string() + " -out " +
      (dir / (name + ".pem")).string() + " > " + (dir / (name + ".log")).string() + " 2>&1";
  return std::system(cmd.c_str()) == 0;
}

class Tls : public ::testing::Test {
 protected:
  Tls() : box_(::testing::UnitTest::GetInstance()->current_test_info()->name()) {}

  void SetUp() override {
    if (std::system("command -v openssl > /dev/null 2>&1") != 0)
      GTEST_SKIP() << "needs the openssl command to make a self-signed certificate";
    certs_ = box_.base() / "certs";
    ASSERT_TRUE(MakeCertificate(certs_, "server", "IP:127.0.0.1"));
    ASSERT_TRUE(MakeCertificate(certs_, "other", "IP:127.0.0.1"));
    ASSERT_TRUE(MakeCertificate(certs_, "wrong-host", "DNS:not-this-host.invalid"));
    src_ = box_.base() / "data" / "docs";
    WriteFile(src_ / "a.txt", "over tls");
  }

  ::testing::AssertionResult StartEmulator(const std::string& cert) {
    return emulator_.Start({"--commit-lock-ms", "0", "--tls-cert",
                            (certs_ / (cert + ".pem")).string(), "--tls-key",
                            (certs_ / (cert + "-key.pem")).string()});
  }

  fs::path Config(const std::string& extra) {
    const fs::path path = box_.base() / "filesync.toml";
    const std::string url = emulator_.url();
    WriteFile(path,
              "client_sync_dirs = [\"" + src_.string() + "\"]\ncloud_root = \"/backup\"\n" +
                  "state_dir = \"" + (box_.base() / "state").string() + "\"\n" +
                  "backend = \"dropbox\"\ndbx_token = \"" + emulator_.token() +
                  "\"\ndbx_api_url = \"" + url + "\"\ndbx_content_url = \"" + url +
                  "\"\ndbx_notify_url = \"" + url + "\"\n" + extra,
              fs::perms::owner_read | fs::perms::owner_write);
    return path;
  }

  // The emulator's request counters (the test's own read: no verification needed).
  nlohmann::json Counters() {
    httplib::Client client(emulator_.url());
    client.enable_server_certificate_verification(false);
    auto r = client.Get("/admin/counters");
    if (!r || r->status != 200) {
      ADD_FAILURE() << "no counters: " << (r ? r->body : httplib::to_string(r.error()));
      return nlohmann::json::object();
    }
    return nlohmann::json::parse(r->body);
  }

  // A refused sync: fails, says why on a line that names the certificate problem, uploads nothing.
  void ExpectRefused(const RunResult& r) {
    EXPECT_NE(r.code, 0) << r.all();
    std::istringstream lines(r.all());
    int mentioning = 0;
    for (std::string line; std::getline(lines, line);) {
      if (line.find("certificate") != std::string::npos || line.find("TLS") != std::string::npos ||
          line.find("SSL") != std::string::npos)
        ++mentioning;
    }
    EXPECT_GE(mentioning, 1) << "no line names the TLS problem:\n" << r.all();
    const auto counters = Counters();
    EXPECT_EQ(counters.value("total", -1), 0) << "a request got through: " << counters.dump();
    EXPECT_EQ(counters.value("bytes_received", -1), 0) << counters.dump();
  }

  Sandbox box_;
  fs::path certs_, src_;
  EmulatorProcess emulator_;
};

TEST_F(Tls, SelfSignedCertificateIsRefusedUnlessDbxCaFileTrustsIt) {
  ASSERT_TRUE(StartEmulator("server"));
  ASSERT_TRUE(emulator_.url().starts_with("https://")) << emulator_.url();
  const RunResult refused = box_.Run({"--config", Config("").string(), "sync"});
  ExpectRefused(refused);
  // A configuration problem: exit 2, naming the key that fixes it.
  EXPECT_EQ(refused.code, 2) << refused.all();
  EXPECT_NE(refused.all().find("dbx_ca_file"), std::string::npos) << refused.all();
  const RunResult plan = box_.Run({"--config", Config("").string(), "plan", "--json"});
  EXPECT_NE(plan.code, 0) << plan.all();

  const RunResult trusted = box_.Run(
      {"--config", Config("dbx_ca_file = \"" + (certs_ / "server.pem").string() + "\"\n").string(),
       "sync"});
  EXPECT_EQ(trusted.code, 0) << trusted.all();
  EXPECT_GT(Counters().value("total", 0), 0);
  httplib::Client client(emulator_.url());
  client.set_ca_cert_path((certs_ / "server.pem").c_str());
  client.enable_server_certificate_verification(true);
  auto r = client.Post("/2/files/get_metadata", {{"Authorization", "Bearer " + emulator_.token()}},
                       R"({"path":"/backup/docs/a.txt"})", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
}

TEST_F(Tls, TrustingAnotherCertificateDoesNotHelp) {
  ASSERT_TRUE(StartEmulator("server"));
  const RunResult r = box_.Run(
      {"--config", Config("dbx_ca_file = \"" + (certs_ / "other.pem").string() + "\"\n").string(),
       "sync"});
  ExpectRefused(r);
}

TEST_F(Tls, TrustedCertificateForAnotherHostIsRefused) {
  ASSERT_TRUE(StartEmulator("wrong-host"));
  const RunResult r =
      box_.Run({"--config",
                Config("dbx_ca_file = \"" + (certs_ / "wrong-host.pem").string() + "\"\n").string(),
                "sync"});
  ExpectRefused(r);
}

// `filesync auth` talks to the same server, so it trusts dbx_ca_file too, also when --app-key and
// --out are given on the command line.
TEST_F(Tls, AuthTrustsDbxCaFile) {
  emulator_.Stop();
  ASSERT_TRUE(
      emulator_.Start({"--app-key", "test-app-key", "--tls-cert", (certs_ / "server.pem").string(),
                       "--tls-key", (certs_ / "server-key.pem").string()}));
  const fs::path config = Config("dbx_ca_file = \"" + (certs_ / "server.pem").string() + "\"\n");
  const fs::path token_file = box_.base() / "refresh-token";
  const RunResult r = box_.Authorize(
      emulator_.url(), {"--config", config.string(), "auth", "--app-key", "test-app-key",
                        "--api-url", emulator_.url(), "--out", token_file.string()});
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(ModeOf(token_file), 0600);
}

// Without dbx_ca_file, auth refuses the self-signed certificate like sync does.
TEST_F(Tls, AuthRefusesAnUntrustedCertificate) {
  emulator_.Stop();
  ASSERT_TRUE(
      emulator_.Start({"--app-key", "test-app-key", "--tls-cert", (certs_ / "server.pem").string(),
                       "--tls-key", (certs_ / "server-key.pem").string()}));
  const fs::path token_file = box_.base() / "refresh-token";
  const RunResult r =
      box_.Authorize(emulator_.url(), {"auth", "--app-key", "test-app-key", "--api-url",
                                       emulator_.url(), "--out", token_file.string()});
  EXPECT_NE(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("certificate"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(token_file));
  EXPECT_EQ(Counters()["routes"].value("oauth2/token", 0), 0) << Counters().dump();
}

}  // namespace
}  // namespace filesync::security_test
