// Operational behaviour: namespace write lock, fault injection, persistence across restarts,
// admin counters, command-line errors.
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <thread>

#include "emulator_fixture.h"

namespace filesync::emulator_test {
namespace {

class WriteLockTest : public EmulatorTest {
 protected:
  std::vector<std::string> ExtraArgs() override { return {"--commit-lock-ms", "300"}; }
};

TEST_F(WriteLockTest, ConcurrentSingleCommitsGet429) {
  std::vector<Response> results(6);
  std::vector<std::thread> threads;
  for (int i = 0; i < 6; ++i) {
    threads.emplace_back([&, i] {
      results[static_cast<std::size_t>(i)] =
          Rpc("files/create_folder_v2", {{"path", "/c" + std::to_string(i)}});
    });
  }
  for (auto& t : threads) t.join();
  int limited = 0;
  int ok = 0;
  for (const auto& r : results) {
    if (r.status == 200) ++ok;
    if (r.status == 429) {
      ++limited;
      EXPECT_EQ(r.header("Retry-After"), "1");
      EXPECT_EQ(r.json()["error"]["reason"][".tag"], "too_many_write_operations") << r.body;
    }
  }
  EXPECT_GE(ok, 1);
  EXPECT_GE(limited, 1);
  EXPECT_EQ(ok + limited, 6);
}

TEST_F(WriteLockTest, BatchCommitsWaitInsteadOfFailing) {
  std::vector<std::string> sessions;
  for (int i = 0; i < 4; ++i) sessions.push_back(ClosedSession("x" + std::to_string(i)));
  PutFile("/d0", "a");
  PutFile("/d1", "b");
  std::vector<Response> results(6);
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      results[i] = Rpc("files/upload_session/finish_batch_v2",
                       {{"entries",
                         {{{"cursor", {{"session_id", sessions[i]}, {"offset", 2}}},
                           {"commit", {{"path", "/b" + std::to_string(i)}}}}}}});
    });
  }
  for (std::size_t i = 0; i < 2; ++i) {
    threads.emplace_back([&, i] {
      results[4 + i] =
          Rpc("files/delete_batch", {{"entries", {{{"path", "/d" + std::to_string(i)}}}}});
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& r : results) EXPECT_EQ(r.status, 200) << r.body;
  for (std::size_t i = 0; i < 4; ++i) EXPECT_EQ(results[i].json()["entries"][0][".tag"], "success");
}

// Runs a fixed request sequence; returns the status of each (0 = dropped connection).
std::vector<int> RunSequence(const std::function<Response(int)>& call) {
  std::vector<int> out;
  for (int i = 0; i < 60; ++i) out.push_back(call(i).status);
  return out;
}

class FaultsTest : public EmulatorTest {
 protected:
  std::vector<std::string> ExtraArgs() override {
    return {"--faults", "429=0.1,500=0.1,503=0.1,drop=0.1,latency=0.1:20,seed=7"};
  }
};

TEST_F(FaultsTest, FixedSeedIsReproducibleAndSparesAdminAndOauth) {
  auto call = [&](int i) { return Rpc("check/user", {{"query", std::to_string(i)}}); };
  const std::vector<int> first = RunSequence(call);
  std::map<int, int> histogram;
  for (int s : first) ++histogram[s];
  EXPECT_GT(histogram[200], 0);
  EXPECT_GT(histogram[429] + histogram[500] + histogram[503] + histogram[0], 0);
  for (int s : first) EXPECT_TRUE(s == 200 || s == 429 || s == 500 || s == 503 || s == 0) << s;

  // 429 faults carry Retry-After and a RateLimitError body.
  for (int i = 0; i < 60; ++i) {
    auto r = call(i);
    if (r.status != 429) continue;
    EXPECT_EQ(r.header("Retry-After"), "1");
    EXPECT_EQ(r.json()["error"]["reason"][".tag"], "too_many_requests");
    break;
  }

  // Same seed, fresh process, same sequence -> same statuses.
  ASSERT_TRUE(emu_.Restart());
  EXPECT_EQ(RunSequence(call), first);

  // Admin and OAuth routes are never faulted.
  auto c = Client();
  for (int i = 0; i < 30; ++i) {
    auto r = c->Get("/admin/health");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
  }
  const auto counters = emu_.Counters();
  EXPECT_EQ(counters["routes"]["check/user"], 60);
}

// routes= limits faults to some routes (others draw nothing); max= caps how many happen.
class RouteFaultsTest : public EmulatorTest {
 protected:
  std::vector<std::string> ExtraArgs() override {
    return {"--faults", "500=1,routes=files/get_metadata|files/delete_v2,max=2"};
  }
};

TEST_F(RouteFaultsTest, OnlyTheNamedRoutesAreFaultedAtMostMaxTimes) {
  for (int i = 0; i < 5; ++i) EXPECT_EQ(Rpc("check/user", {{"query", "x"}}).status, 200);
  EXPECT_EQ(Rpc("files/get_metadata", {{"path", "/nothing"}}).status, 500);
  EXPECT_EQ(Rpc("files/delete_v2", {{"path", "/nothing"}}).status, 500);
  EXPECT_EQ(Rpc("files/get_metadata", {{"path", "/nothing"}}).status, 409) << "max=2 reached";
}

class DropAfterTest : public EmulatorTest {
 protected:
  std::vector<std::string> ExtraArgs() override { return {"--faults", "drop_after=1"}; }
};

TEST_F(DropAfterTest, EffectAppliesEvenThoughResponseIsLost) {
  auto r = Upload("files/upload", {{"path", "/dropped.txt"}}, "data");
  EXPECT_EQ(r.status, 0) << "expected a dropped connection, got " << r.status;
  // Check with a fault-free emulator on the same data directory.
  const std::string dir = emu_.data_dir();
  emu_.Stop();
  test_support::EmulatorProcess clean;
  clean.set_data_dir(dir);
  ASSERT_TRUE(clean.Start());
  httplib::Client c("127.0.0.1", clean.port());
  auto md = c.Post("/2/files/get_metadata", {{"Authorization", "Bearer " + clean.token()}},
                   R"({"path":"/dropped.txt"})", "application/json");
  ASSERT_TRUE(md);
  EXPECT_EQ(md->status, 200) << md->body;
}

class DropBeforeTest : public EmulatorTest {
 protected:
  std::vector<std::string> ExtraArgs() override { return {"--faults", "drop=1,latency=1:300"}; }
};

TEST_F(DropBeforeTest, DropBeforeHasNoEffectAndLatencyDelays) {
  const auto t0 = std::chrono::steady_clock::now();
  auto r = Upload("files/upload", {{"path", "/never.txt"}}, "data");
  EXPECT_EQ(r.status, 0) << "expected a dropped connection, got " << r.status;
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(300));
  const std::string dir = emu_.data_dir();
  emu_.Stop();
  test_support::EmulatorProcess clean;
  clean.set_data_dir(dir);
  ASSERT_TRUE(clean.Start());
  httplib::Client c("127.0.0.1", clean.port());
  auto md = c.Post("/2/files/get_metadata", {{"Authorization", "Bearer " + clean.token()}},
                   R"({"path":"/never.txt"})", "application/json");
  ASSERT_TRUE(md);
  EXPECT_EQ(md->status, 409) << md->body;
  EXPECT_EQ(clean.Counters()["total"], 1);
}

using PersistenceTest = EmulatorTest;

TEST_F(PersistenceTest, RestartAndCrashKeepFilesAndCursors) {
  auto file = PutFile("/keep/me.txt", "persist");
  auto cursor = Rpc("files/list_folder/get_latest_cursor", {{"path", ""}, {"recursive", true}});
  ASSERT_EQ(cursor.status, 200);
  ASSERT_TRUE(emu_.Restart());
  auto md = Rpc("files/get_metadata", {{"path", "/KEEP/me.txt"}});
  ASSERT_EQ(md.status, 200) << md.body;
  EXPECT_EQ(md.json()["id"], file["id"]);
  EXPECT_EQ(md.json()["rev"], file["rev"]);
  EXPECT_EQ(Download("/keep/me.txt").body, "persist");

  PutFile("/after.txt", "a");
  emu_.Kill();
  ASSERT_TRUE(emu_.Start());
  auto changes = Rpc("files/list_folder/continue", {{"cursor", cursor.json()["cursor"]}});
  ASSERT_EQ(changes.status, 200) << changes.body;
  const nlohmann::json body = changes.json();
  bool saw = false;
  for (const auto& e : body["entries"]) saw |= e["path_lower"] == "/after.txt";
  EXPECT_TRUE(saw) << changes.body;
  // New ids do not collide with old ones after a restart.
  auto fresh = PutFile("/fresh.txt", "f");
  EXPECT_NE(fresh["id"], file["id"]);
}

using CountersTest = EmulatorTest;

TEST_F(CountersTest, CountsRoutesTotalsAndBytes) {
  emu_.ResetCounters();
  PutFile("/c1.txt", "12345");
  PutFile("/c2.txt", "678");
  Rpc("files/get_metadata", {{"path", "/c1.txt"}});
  Rpc("files/no_such_route", nlohmann::json::object());
  auto c = Client();
  c->Post("/oauth2/token", "grant_type=refresh_token", "application/x-www-form-urlencoded");
  const auto j = emu_.Counters();
  EXPECT_EQ(j["routes"]["files/upload"], 2);
  EXPECT_EQ(j["routes"]["files/get_metadata"], 1);
  EXPECT_EQ(j["routes"]["oauth2/token"], 1);
  EXPECT_EQ(j["total"], 5);
  EXPECT_GE(j["bytes_received"].get<std::uint64_t>(), 8u);
  emu_.ResetCounters();
  EXPECT_EQ(emu_.Counters()["total"], 0);
}

TEST(EmulatorTls, ServesHttpsWithGivenCertificate) {
  char dir_template[] = "/tmp/fs-emu-tls-XXXXXX";
  ASSERT_NE(::mkdtemp(dir_template), nullptr);
  const std::string dir = dir_template;
  const std::string cmd =
      "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 -keyout " + dir +
      "/key.pem -out " + dir + "/cert.pem >/dev/null 2>&1";
  if (std::system(cmd.c_str()) != 0) {
    std::filesystem::remove_all(dir);
    GTEST_SKIP() << "the openssl command is not available to make a test certificate";
  }
  test_support::EmulatorProcess emu;
  ASSERT_TRUE(emu.Start({"--tls-cert", dir + "/cert.pem", "--tls-key", dir + "/key.pem"}));
  EXPECT_EQ(emu.url().rfind("https://", 0), 0u) << emu.url();
  httplib::SSLClient c("127.0.0.1", emu.port());
  c.enable_server_certificate_verification(false);
  auto r = c.Post("/2/check/user", {{"Authorization", "Bearer " + emu.token()}},
                  R"({"query":"tls"})", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, R"({"result":"tls"})");
  emu.Stop();
  std::filesystem::remove_all(dir);
}

TEST(EmulatorCommandLine, BadFlagsExitWith2) {
  const std::string bin = test_support::EmulatorProcess::BinaryPath();
  for (const std::string args : {"--listen 127.0.0.1:0", "--listen nope --data /tmp/x",
                                 "--listen 127.0.0.1:0 --data /tmp/x --faults 429=2",
                                 "--listen 127.0.0.1:0 --data /tmp/x --faults 500=1,max=-1",
                                 "--listen 127.0.0.1:0 --data /tmp/x --faults 500=1,routes=",
                                 "--listen 127.0.0.1:0 --data /tmp/x --bogus",
                                 "--listen 127.0.0.1:0 --data /tmp/x --without-routes files/nope",
                                 "--listen 127.0.0.1:0 --data /tmp/x --without-routes "
                                 "/2/files/move_batch_v2"}) {
    const int rc = std::system((bin + " " + args + " >/dev/null 2>&1").c_str());
    ASSERT_TRUE(WIFEXITED(rc)) << args;
    EXPECT_EQ(WEXITSTATUS(rc), 2) << args;
  }
}

TEST(EmulatorProcessSupport, StartFailsCleanlyWhenTheEmulatorExits) {
  test_support::EmulatorProcess emu;
  EXPECT_FALSE(test_support::EmulatorProcess::BinaryPath().empty());
  // A second --data is a flag error: the process exits before printing its line.
  auto r = emu.Start({"--data", "/tmp"});
  EXPECT_FALSE(r);
  EXPECT_FALSE(emu.running());
}

}  // namespace
}  // namespace filesync::emulator_test
