// The emulator driven by rclone (issue 11): an independently written Dropbox client (rclone's
// Dropbox backend on Dropbox's Go SDK, Debian's rclone 1.60) used the way a user would, over
// TLS. rclone cannot be given another API host, so it reaches api/content.dropboxapi.com
// through HTTPS_PROXY, a loopback CONNECT proxy (connect_proxy.h) that tunnels those names to
// the emulator, which serves a throwaway certificate for them that rclone alone trusts
// (--ca-cert). Every remote starts with an expired access token and a refresh token, so rclone
// first refreshes through the emulator's /oauth2/token.
//
// Results are read back through rclone and, independently, through the emulator's own API
// (listing, metadata, downloads) and /admin/counters; expected values come from the local tree.
// Skipped, with the reason, when rclone or openssl is missing (scripts/setup.sh installs both).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "connect_proxy.h"
#include "emulator_process.h"
#include "hash/content_hash.h"

namespace filesync::conformance_test {
namespace {

namespace fs = std::filesystem;

constexpr const char* kRefreshToken = "rclone-test-refresh-token";
constexpr std::size_t kMiB = 1024 * 1024;

struct RunResult {
  int code = -1;  // exit code; -1 if killed by a signal, timed out or not started
  std::string out;
  std::string err;
  [[nodiscard]] std::string all() const { return out + err; }
};

// A file or folder as both sides describe it. `content` is the local bytes or, remotely, what
// files/download returned.
struct Item {
  bool is_dir = false;
  std::string content;
  bool operator==(const Item&) const = default;
};
using Tree = std::map<std::string, Item>;  // path relative to the tree's root, '/'-separated

std::ostream& operator<<(std::ostream& os, const Item& item) {
  return os << (item.is_dir ? std::string("<dir>")
                            : std::to_string(item.content.size()) + " bytes");
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const fs::path& path, const std::string& content) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
}

Tree LocalTree(const fs::path& root) {
  Tree tree;
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator();
       ++it) {
    const std::string rel = fs::relative(it->path(), root).generic_string();
    tree[rel] = it->is_directory() ? Item{true, ""} : Item{false, ReadFile(it->path())};
  }
  return tree;
}

std::string HashHex(const std::string& bytes) { return hash::ToHex(hash::HashBytes(bytes)); }

std::string FindOnPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path == nullptr ? "/usr/bin:/bin" : path);
  for (std::string dir; std::getline(dirs, dir, ':');) {
    const fs::path candidate = fs::path(dir) / name;
    if (!dir.empty() && ::access(candidate.c_str(), X_OK) == 0) return candidate.string();
  }
  return "";
}

// Deterministic bytes that differ from block to block (so a misplaced chunk changes the hash).
std::string PatternBytes(std::size_t n) {
  std::string out(n, '\0');
  std::uint64_t x = 0x9E3779B97F4A7C15ULL;
  for (std::size_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    out[i] = static_cast<char>(x & 0xFF);
  }
  return out;
}

class RcloneTest : public ::testing::Test {
 protected:
  void SetUp() override {
    rclone_ = FindOnPath("rclone");
    if (rclone_.empty())
      GTEST_SKIP()
          << "needs the rclone binary (Debian package rclone; scripts/setup.sh installs it)";
    if (FindOnPath("openssl").empty())
      GTEST_SKIP() << "needs the openssl command to make the test certificate";
    std::string tmpl = (fs::temp_directory_path() / "fs-rclone-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    work_ = tmpl;
    for (const char* dir : {"home", "tmp", "captures", "src"}) fs::create_directories(work_ / dir);
    src_ = work_ / "src";

    // One self-signed certificate for the three API host names; only rclone trusts it.
    cert_ = work_ / "dropboxapi.pem";
    const fs::path key = work_ / "dropboxapi-key.pem";
    const std::string cmd =
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2"
        " -subj /CN=api.dropboxapi.com -addext subjectAltName=DNS:api.dropboxapi.com,"
        "DNS:content.dropboxapi.com,DNS:notify.dropboxapi.com -keyout " +
        key.string() + " -out " + cert_.string() + " > " + (work_ / "openssl.log").string() +
        " 2>&1";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << ReadFile(work_ / "openssl.log");

    // rclone sends raw UTF-8 in Dropbox-API-Arg, which Dropbox accepts: the emulator's default.
    emu_.set_strict_arg_header(false);
    ASSERT_TRUE(emu_.Start({"--tls-cert", cert_.string(), "--tls-key", key.string(),
                            "--refresh-token", kRefreshToken}));
    proxy_ = std::make_unique<ConnectProxy>(
        emu_.port(), std::set<std::string>{"api.dropboxapi.com:443", "content.dropboxapi.com:443",
                                           "notify.dropboxapi.com:443"});
    ASSERT_TRUE(proxy_->Start());

    config_ = work_ / "rclone.conf";
    WriteFile(config_, std::string("[emu]\ntype = dropbox\ntoken = ") +
                           R"({"access_token":"expired-before-the-test","token_type":"bearer",)" +
                           R"("refresh_token":")" + kRefreshToken +
                           R"(","expiry":"2001-01-01T00:00:00Z"})" + "\n");
  }

  void TearDown() override {
    if (proxy_) {
      proxy_->Stop();
      EXPECT_TRUE(proxy_->refused().empty()) << "rclone asked the proxy for another host: "
                                             << ::testing::PrintToString(proxy_->refused());
    }
    emu_.Stop();
    if (!work_.empty()) {
      std::error_code ec;
      fs::remove_all(work_, ec);
    }
  }

  // Runs `rclone <args>` with the common flags, a clean environment and a deadline.
  RunResult Rclone(std::vector<std::string> args, int timeout_s = 120) {
    static int counter = 0;
    const std::string id = std::to_string(++counter);
    const fs::path out_file = work_ / "captures" / (id + ".out");
    const fs::path err_file = work_ / "captures" / (id + ".err");
    std::vector<std::string> argv = {rclone_};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.insert(argv.end(),
                {"--config", config_.string(), "--ca-cert", cert_.string(), "--retries", "1",
                 "--low-level-retries", "5", "--contimeout", "10s", "--timeout", "60s",
                 "--dropbox-chunk-size", "1M", "--dropbox-batch-timeout", "200ms"});
    const std::string proxy = "http://127.0.0.1:" + std::to_string(proxy_->port());
    std::vector<std::string> env = {"PATH=/usr/bin:/bin",
                                    "HOME=" + (work_ / "home").string(),
                                    "TMPDIR=" + (work_ / "tmp").string(),
                                    "TZ=UTC",
                                    "HTTPS_PROXY=" + proxy,
                                    "https_proxy=" + proxy,
                                    "NO_PROXY=",
                                    "no_proxy="};
    auto pointers = [](std::vector<std::string>& v) {
      std::vector<char*> p;
      for (auto& s : v) p.push_back(s.data());
      p.push_back(nullptr);
      return p;
    };
    auto argv_ptrs = pointers(argv);
    auto env_ptrs = pointers(env);
    RunResult result;
    const pid_t pid = ::fork();
    if (pid == 0) {
      const int out = ::open(out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      const int err = ::open(err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      const int in = ::open("/dev/null", O_RDONLY);
      if (out < 0 || err < 0 || in < 0) ::_exit(126);
      ::dup2(in, 0);
      ::dup2(out, 1);
      ::dup2(err, 2);
      ::execve(rclone_.c_str(), argv_ptrs.data(), env_ptrs.data());
      ::_exit(127);
    }
    if (pid < 0) return result;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
    int status = 0;
    while (::waitpid(pid, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, &status, 0);
        status = -1;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    result.code = status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    result.out = ReadFile(out_file);
    result.err = ReadFile(err_file);
    return result;
  }

  // The test's own client for the emulator (it reads what rclone left; no certificate check).
  std::unique_ptr<httplib::Client> Api() {
    auto c = std::make_unique<httplib::Client>(emu_.url());
    c->enable_server_certificate_verification(false);
    c->set_read_timeout(60, 0);
    return c;
  }
  httplib::Headers Auth() { return {{"Authorization", "Bearer " + emu_.token()}}; }

  nlohmann::json Rpc(const std::string& route, const nlohmann::json& arg, int* status = nullptr) {
    auto r = Api()->Post(("/2/" + route).c_str(), Auth(), arg.dump(), "application/json");
    if (status != nullptr) *status = r ? r->status : 0;
    if (!r) return nullptr;
    return nlohmann::json::parse(r->body, nullptr, false);
  }

  std::string Download(const std::string& path) {
    auto h = Auth();
    h.emplace("Dropbox-API-Arg", nlohmann::json{{"path", path}}.dump(-1, ' ', true));
    auto r = Api()->Post("/2/files/download", h, "", "application/octet-stream");
    EXPECT_TRUE(r && r->status == 200) << path << ": " << (r ? r->body : "no answer");
    return r && r->status == 200 ? r->body : "<download failed>";
  }

  void PutRemote(const std::string& path, const std::string& content) {
    auto h = Auth();
    h.emplace("Dropbox-API-Arg",
              nlohmann::json{{"path", path}, {"mode", "overwrite"}}.dump(-1, ' ', true));
    auto r = Api()->Post("/2/files/upload", h, content, "application/octet-stream");
    ASSERT_TRUE(r && r->status == 200) << (r ? r->body : "no answer");
  }

  // What the emulator holds below `folder` ("/backup"), read through its API: every file's
  // bytes are downloaded and checked against the content_hash the listing reports.
  Tree RemoteTree(const std::string& folder) {
    Tree tree;
    int status = 0;
    nlohmann::json page =
        Rpc("files/list_folder", {{"path", folder}, {"recursive", true}}, &status);
    std::vector<std::pair<std::string, std::string>> files;  // path_display, content_hash
    while (status == 200) {
      for (const auto& e : page["entries"]) {
        const std::string display = e["path_display"];
        if (display == folder) continue;
        const std::string rel = display.substr(folder.size() + 1);
        if (e[".tag"] == "folder") {
          tree[rel] = Item{true, ""};
        } else {
          files.emplace_back(display, e["content_hash"]);
        }
      }
      if (!page["has_more"].get<bool>()) break;
      page = Rpc("files/list_folder/continue", {{"cursor", page["cursor"]}}, &status);
    }
    EXPECT_EQ(status, 200) << "list_folder " << folder << ": " << page.dump();
    for (const auto& [display, content_hash] : files) {
      std::string bytes = Download(display);
      EXPECT_EQ(HashHex(bytes), content_hash) << display;
      tree[display.substr(folder.size() + 1)] = Item{false, std::move(bytes)};
    }
    return tree;
  }

  nlohmann::json Counters() {
    auto r = Api()->Get("/admin/counters");
    EXPECT_TRUE(r && r->status == 200);
    return r ? nlohmann::json::parse(r->body, nullptr, false) : nlohmann::json::object();
  }
  std::uint64_t Count(const nlohmann::json& counters, const std::string& route) {
    return counters["routes"].value(route, std::uint64_t{0});
  }
  void ResetCounters() { ASSERT_TRUE(Api()->Post("/admin/counters/reset")); }

  // The local tree every test starts from: nested folders, an empty folder, an empty file, a
  // non-ASCII name (raw UTF-8 in rclone's Dropbox-API-Arg) and a file of 3.5 chunks.
  void MakeSourceTree() {
    WriteFile(src_ / "top.txt", "top level\n");
    WriteFile(src_ / "zero.bin", "");
    WriteFile(src_ / "docs" / "readme.md", "read me\n");
    WriteFile(src_ / "docs" / "R\u00e9port na\u00efve.txt", "unicode name\n");
    WriteFile(src_ / "docs" / "deep" / "a" / "b" / "c.txt", "deep\n");
    WriteFile(src_ / "big.bin", PatternBytes(3 * kMiB + kMiB / 2));
    fs::create_directories(src_ / "empty");
  }

  static void ExpectOk(const RunResult& r, const std::string& what) {
    EXPECT_EQ(r.code, 0) << what << " failed:\n" << r.all();
  }

  std::string rclone_;
  fs::path work_;
  fs::path src_;
  fs::path cert_;
  fs::path config_;
  test_support::EmulatorProcess emu_;
  std::unique_ptr<ConnectProxy> proxy_;
};

TEST_F(RcloneTest, CopyThenCheckListAndRangedReads) {
  MakeSourceTree();
  ResetCounters();
  ExpectOk(Rclone({"copy", src_.string(), "emu:backup", "--create-empty-src-dirs"}), "copy");
  EXPECT_EQ(RemoteTree("/backup"), LocalTree(src_));
  // The expired token was refreshed through the emulator and saved by rclone.
  const auto counters = Counters();
  EXPECT_GE(Count(counters, "oauth2/token"), 1u) << counters.dump();
  EXPECT_EQ(ReadFile(config_).find("expired-before-the-test"), std::string::npos);

  const RunResult check = Rclone({"check", src_.string(), "emu:backup"});
  ExpectOk(check, "check");
  EXPECT_NE(check.all().find("0 differences found"), std::string::npos) << check.all();

  // lsjson from the Dropbox root: rclone lists every folder below it as "//folder".
  const RunResult ls = Rclone({"lsjson", "-R", "--hash", "emu:"});
  ExpectOk(ls, "lsjson");
  const auto listing = nlohmann::json::parse(ls.out, nullptr, false);
  ASSERT_TRUE(listing.is_array()) << ls.out;
  Tree listed;
  for (const auto& e : listing) {
    const std::string path = e["Path"];
    if (path == "backup") continue;
    ASSERT_EQ(path.rfind("backup/", 0), 0u) << path;
    const std::string rel = path.substr(7);
    if (e["IsDir"].get<bool>()) {
      listed[rel] = Item{true, ""};
      continue;
    }
    const std::string local = ReadFile(src_ / rel);
    EXPECT_EQ(e["Size"], local.size()) << rel;
    EXPECT_EQ(e["Hashes"].value("dropbox", ""), HashHex(local)) << rel;
    // client_modified carries the local modification time (rounded to the second).
    struct stat st {};
    ASSERT_EQ(::stat((src_ / rel).c_str(), &st), 0) << rel;
    std::tm tm{};
    std::istringstream(e["ModTime"].get<std::string>()) >> std::get_time(&tm, "%Y-%m-%dT%H:%M:%S");
    EXPECT_LE(std::abs(static_cast<long>(timegm(&tm) - st.st_mtim.tv_sec)), 1L)
        << rel << " listed " << e["ModTime"];
    listed[rel] = Item{false, local};
  }
  EXPECT_EQ(listed, LocalTree(src_));

  // Ranged reads: cat --offset/--count and --tail send Range headers (206 answers).
  const std::string big = ReadFile(src_ / "big.bin");
  const RunResult middle =
      Rclone({"cat", "--offset", "1048000", "--count", "1500000", "emu:backup/big.bin"});
  ExpectOk(middle, "cat --offset --count");
  EXPECT_TRUE(middle.out == big.substr(1048000, 1500000)) << "cat returned other bytes";
  const RunResult tail = Rclone({"cat", "--tail", "777", "emu:backup/big.bin"});
  ExpectOk(tail, "cat --tail");
  EXPECT_TRUE(tail.out == big.substr(big.size() - 777)) << "cat --tail returned other bytes";
  // Multi-threaded download: four ranged reads of one file.
  const fs::path fetched = work_ / "fetched" / "big.bin";
  ExpectOk(Rclone({"copyto", "emu:backup/big.bin", fetched.string(), "--multi-thread-cutoff", "1M",
                   "--multi-thread-streams", "4"}),
           "multi-thread download");
  EXPECT_TRUE(ReadFile(fetched) == big) << "downloaded bytes differ";

  // check must see a change made behind rclone's back (same size, other bytes).
  PutRemote("/backup/docs/readme.md", "READ ME\n");
  const RunResult differs = Rclone({"check", src_.string(), "emu:backup"});
  EXPECT_EQ(differs.code, 1) << differs.all();
  EXPECT_NE(differs.all().find("docs/readme.md"), std::string::npos) << differs.all();
}

TEST_F(RcloneTest, SyncInEachBatchMode) {
  MakeSourceTree();
  const std::vector<std::string> modes = {"off", "sync", "async"};
  for (const auto& mode : modes) {
    SCOPED_TRACE("batch mode " + mode);
    ExpectOk(Rclone({"sync", src_.string(), "emu:sync-" + mode, "--create-empty-src-dirs",
                     "--dropbox-batch-mode", mode}),
             "first sync");
    EXPECT_EQ(RemoteTree("/sync-" + mode), LocalTree(src_));
  }

  // Change the source: a new size, a deletion, an addition, a removed subtree.
  WriteFile(src_ / "top.txt", "top level, edited\n");
  fs::remove(src_ / "docs" / "readme.md");
  WriteFile(src_ / "docs" / "new.txt", "new\n");
  fs::remove_all(src_ / "docs" / "deep");
  for (const auto& mode : modes) {
    SCOPED_TRACE("batch mode " + mode);
    ExpectOk(Rclone({"sync", src_.string(), "emu:sync-" + mode, "--create-empty-src-dirs",
                     "--dropbox-batch-mode", mode}),
             "second sync");
    EXPECT_EQ(RemoteTree("/sync-" + mode), LocalTree(src_));
    ExpectOk(Rclone({"check", src_.string(), "emu:sync-" + mode}), "check");

    // In sync means a further sync has nothing to upload or delete.
    ResetCounters();
    ExpectOk(Rclone({"sync", src_.string(), "emu:sync-" + mode, "--create-empty-src-dirs",
                     "--dropbox-batch-mode", mode}),
             "no-change sync");
    const auto counters = Counters();
    for (const char* route : {"files/upload", "files/upload_session/start",
                              "files/upload_session/append_v2", "files/upload_session/finish",
                              "files/upload_session/finish_batch_v2", "files/delete_v2"}) {
      EXPECT_EQ(Count(counters, route), 0u) << route << " in " << counters.dump();
    }
  }
}

TEST_F(RcloneTest, MovetoAndPurge) {
  MakeSourceTree();
  ExpectOk(Rclone({"copy", src_.string(), "emu:work", "--dropbox-batch-mode", "off"}), "copy");
  int status = 0;
  const auto before = Rpc("files/get_metadata", {{"path", "/work/top.txt"}}, &status);
  ASSERT_EQ(status, 200) << before.dump();

  // A file: one server-side move, no bytes moved through rclone.
  ResetCounters();
  ExpectOk(Rclone({"moveto", "emu:work/top.txt", "emu:elsewhere/renamed.txt"}), "moveto file");
  const auto counters = Counters();
  EXPECT_EQ(Count(counters, "files/move_v2"), 1u) << counters.dump();
  EXPECT_EQ(Count(counters, "files/download"), 0u) << counters.dump();
  EXPECT_EQ(Count(counters, "files/upload"), 0u) << counters.dump();
  Rpc("files/get_metadata", {{"path", "/work/top.txt"}}, &status);
  EXPECT_EQ(status, 409);
  const auto after = Rpc("files/get_metadata", {{"path", "/elsewhere/renamed.txt"}}, &status);
  ASSERT_EQ(status, 200) << after.dump();
  EXPECT_EQ(after["id"], before["id"]);
  EXPECT_EQ(after["content_hash"], before["content_hash"]);
  const RunResult cat = Rclone({"cat", "emu:elsewhere/renamed.txt"});
  ExpectOk(cat, "cat");
  EXPECT_EQ(cat.out, "top level\n");

  // A folder: moved whole, children included.
  ExpectOk(Rclone({"moveto", "emu:work/docs", "emu:work/papers"}), "moveto folder");
  Tree docs = LocalTree(src_ / "docs");
  EXPECT_EQ(RemoteTree("/work/papers"), docs);
  Rpc("files/get_metadata", {{"path", "/work/docs"}}, &status);
  EXPECT_EQ(status, 409);

  // purge removes the folder and everything below it, and nothing else.
  ExpectOk(Rclone({"purge", "emu:work"}), "purge");
  Rpc("files/list_folder", {{"path", "/work"}}, &status);
  EXPECT_EQ(status, 409);
  EXPECT_EQ(Download("/elsewhere/renamed.txt"), "top level\n");
  const RunResult gone = Rclone({"lsjson", "emu:work"});
  EXPECT_NE(gone.code, 0) << gone.all();
  EXPECT_NE(gone.all().find("directory not found"), std::string::npos) << gone.all();
}

TEST_F(RcloneTest, ChunkedUploadWithoutBatching) {
  const std::string big = PatternBytes(3 * kMiB + kMiB / 2);
  WriteFile(src_ / "big.bin", big);
  ResetCounters();
  ExpectOk(Rclone({"copyto", (src_ / "big.bin").string(), "emu:chunked/big.bin",
                   "--dropbox-batch-mode", "off"}),
           "copyto");
  // 3.5 MiB in 1 MiB chunks: a session, four appends, one finish; never files/upload.
  const auto counters = Counters();
  EXPECT_EQ(Count(counters, "files/upload_session/start"), 1u) << counters.dump();
  EXPECT_GE(Count(counters, "files/upload_session/append_v2"), 4u) << counters.dump();
  EXPECT_EQ(Count(counters, "files/upload_session/finish"), 1u) << counters.dump();
  EXPECT_EQ(Count(counters, "files/upload"), 0u) << counters.dump();
  EXPECT_GE(counters["bytes_received"].get<std::uint64_t>(), big.size());
  int status = 0;
  const auto md = Rpc("files/get_metadata", {{"path", "/chunked/big.bin"}}, &status);
  ASSERT_EQ(status, 200) << md.dump();
  EXPECT_EQ(md["size"], big.size());
  EXPECT_EQ(md["content_hash"], HashHex(big));
  EXPECT_TRUE(Download("/chunked/big.bin") == big) << "stored bytes differ";
}

}  // namespace
}  // namespace filesync::conformance_test
