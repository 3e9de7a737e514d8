// Soak (issue 5): the real `filesync run` daemon mirrors a folder into the real Dropbox emulator
// while a seeded stream of random changes (create, modify, delete, rename, folder rename) hits
// the folder at a steady rate. The daemon's resident memory (/proc/PID/status VmRSS) and open
// descriptors (/proc/PID/fd) are sampled and printed as a table; after a warm-up they must stay
// flat, and once the stream stops the cloud must converge to the folder and the daemon must
// exit 0 on SIGTERM.
//
// FILESYNC_SOAK_SECONDS sets the length of the change stream (default 60 s; 30 s in sanitizer
// builds), FILESYNC_SOAK_SEED the seed (default 1), FILESYNC_SOAK_RATE the changes per second
// (default 10). The 10-minute run: docs/soak.md.
//
// Under ASan or TSan the RSS bound is not asserted (the sanitizers' quarantine and shadow memory
// grow on their own schedule); descriptors and convergence still are.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "emulator_process.h"
#include "hash/content_hash.h"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitized = true;
constexpr int kDefaultSeconds = 30;
#else
constexpr bool kSanitized = false;
constexpr int kDefaultSeconds = 60;
#endif

// RSS may grow by 20% plus this much between the first and the last quarter after warm-up
// (allocator arenas settle in steps; a leak of a few hundred bytes per change exceeds it over
// ten minutes, and one per file or per pass exceeds it much sooner).
constexpr long kRssSlackKb = 4 * 1024;
// Descriptors may vary by this much after warm-up: HTTP connections open and close with the
// worker pool, and SQLite opens its WAL and shm files lazily.
constexpr long kFdSlack = 6;
constexpr std::size_t kMaxFiles = 300;

long EnvLong(const char* name, long fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  char* end = nullptr;
  const long n = std::strtol(v, &end, 10);
  if (*end != '\0' || n <= 0) {
    ADD_FAILURE() << name << " must be a positive whole number, got '" << v << "'";
    return fallback;
  }
  return n;
}

long RssKb(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  }
  return -1;
}

long FdCount(pid_t pid) {
  std::error_code ec;
  long n = 0;
  for (fs::directory_iterator it("/proc/" + std::to_string(pid) + "/fd", ec), end; !ec && it != end;
       it.increment(ec)) {
    ++n;
  }
  return ec ? -1 : n;
}

std::string ReadAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Passes the daemon finished: it prints one summary line per root per pass (one root here).
long CountPasses(const fs::path& log) {
  const std::string text = ReadAll(log);
  long n = 0;
  for (auto pos = text.find(" entries; "); pos != std::string::npos;
       pos = text.find(" entries; ", pos + 1)) {
    ++n;
  }
  return n;
}

std::string Tail(const std::string& text, std::size_t lines) {
  std::size_t pos = text.size();
  for (std::size_t i = 0; i <= lines && pos != std::string::npos && pos > 0; ++i) {
    pos = text.rfind('\n', pos - 1);
  }
  return pos == std::string::npos ? text : text.substr(pos + 1);
}

// relative path -> content hash (hex) for files, "<dir>" for folders.
using TreeMap = std::map<std::string, std::string>;

TreeMap LocalTree(const fs::path& root) {
  TreeMap tree;
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator();
       ++it) {
    const std::string rel = fs::relative(it->path(), root).string();
    if (it->is_directory()) {
      tree[rel] = "<dir>";
    } else if (it->is_regular_file()) {
      auto h = filesync::hash::HashFile(it->path().string());
      tree[rel] = h.ok() ? filesync::hash::ToHex(h->digest) : "<unreadable>";
    }
  }
  return tree;
}

// The mirror as the emulator holds it (list_folder, recursive), keyed like LocalTree; paths
// are compared in lower case since every name the stream makes is lower case.
TreeMap CloudTree(const filesync::test_support::EmulatorProcess& emulator,
                  const std::string& root) {
  TreeMap tree;
  httplib::Client client("127.0.0.1", emulator.port());
  const httplib::Headers auth = {{"Authorization", "Bearer " + emulator.token()}};
  auto r =
      client.Post("/2/files/list_folder", auth,
                  nlohmann::json{{"path", root}, {"recursive", true}}.dump(), "application/json");
  while (r && r->status == 200) {
    const auto page = nlohmann::json::parse(r->body, nullptr, false);
    if (page.is_discarded()) break;
    for (const auto& e : page["entries"]) {
      const std::string lower = e.value("path_lower", "");
      if (lower.size() <= root.size()) continue;  // the root itself
      const std::string rel = lower.substr(root.size() + 1);
      tree[rel] = e[".tag"] == "folder" ? "<dir>" : e.value("content_hash", "");
    }
    if (!page.value("has_more", false)) return tree;
    r = client.Post("/2/files/list_folder/continue", auth,
                    nlohmann::json{{"cursor", page["cursor"]}}.dump(), "application/json");
  }
  tree["<list_folder failed>"] = r ? std::to_string(r->status) : "no response";
  return tree;
}

// The seeded change stream. It keeps a model of the folder (flat: top-level folders holding
// files) so every operation names something that exists, and never more than kMaxFiles files.
class ChangeStream {
 public:
  ChangeStream(fs::path root, std::uint64_t seed) : root_(std::move(root)), rng_(seed) {
    for (int i = 0; i < 8; ++i) dirs_.push_back(NewDirName());
    for (const auto& d : dirs_) fs::create_directories(root_ / d);
    for (int i = 0; i < 60; ++i) Create();
  }

  // Applies one random change; returns its kind (for the tally).
  const char* Step() {
    const int roll = Uniform(0, 99);
    if (files_.size() < 40 || (roll < 30 && files_.size() < kMaxFiles)) return Create();
    if (roll < 60) return Modify();
    if (roll < 77) return Delete();
    if (roll < 97) return Rename();
    return RenameFolder();
  }

 private:
  int Uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  std::string NewDirName() { return "d" + std::to_string(next_dir_++); }
  std::string NewFileName() { return "f" + std::to_string(next_file_++) + ".bin"; }
  std::size_t PickFile() {
    return static_cast<std::size_t>(Uniform(0, static_cast<int>(files_.size()) - 1));
  }
  const std::string& PickDir() {
    return dirs_[static_cast<std::size_t>(Uniform(0, static_cast<int>(dirs_.size()) - 1))];
  }
  // Mostly small files; one in twenty between 256 KiB and 1 MiB.
  std::string Content() {
    const int size = Uniform(0, 19) == 0 ? Uniform(256 << 10, 1 << 20) : Uniform(0, 16 << 10);
    std::string s(static_cast<std::size_t>(size), '\0');
    for (char& c : s) c = static_cast<char>(rng_() & 0xff);
    return s;
  }
  void Write(const std::string& rel, const std::string& content, bool append) {
    std::ofstream(root_ / rel, std::ios::binary | (append ? std::ios::app : std::ios::trunc))
        << content;
  }

  const char* Create() {
    const std::string rel = PickDir() + "/" + NewFileName();
    Write(rel, Content(), false);
    files_.push_back(rel);
    return "create";
  }
  const char* Modify() {
    const std::string& rel = files_[PickFile()];
    Write(rel, Content(), Uniform(0, 3) == 0);
    return "modify";
  }
  const char* Delete() {
    const std::size_t i = PickFile();
    fs::remove(root_ / files_[i]);
    files_[i] = files_.back();
    files_.pop_back();
    return "delete";
  }
  const char* Rename() {
    const std::size_t i = PickFile();
    const std::string to = PickDir() + "/" + NewFileName();
    fs::rename(root_ / files_[i], root_ / to);
    files_[i] = to;
    return "rename";
  }
  const char* RenameFolder() {
    const auto d = static_cast<std::size_t>(Uniform(0, static_cast<int>(dirs_.size()) - 1));
    const std::string from = dirs_[d];
    const std::string to = NewDirName();
    fs::rename(root_ / from, root_ / to);
    for (auto& f : files_) {
      if (f.compare(0, from.size() + 1, from + "/") == 0) f = to + f.substr(from.size());
    }
    dirs_[d] = to;
    return "folder-rename";
  }

  fs::path root_;
  std::mt19937_64 rng_;
  std::vector<std::string> dirs_;
  std::vector<std::string> files_;
  int next_dir_ = 0;
  int next_file_ = 0;
};

struct Sample {
  double t = 0;  // seconds since the stream started
  long rss_kb = 0;
  long fds = 0;
  long emulator_rss_kb = 0;
  long changes = 0;
  long passes = 0;
};

class Soak : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = fs::temp_directory_path() / ("filesync-soak-" + std::to_string(getpid()));
    fs::remove_all(base_);
    data_ = base_ / "data";
    state_ = base_ / "state";
    log_ = base_ / "daemon.log";
    fs::create_directories(data_);
    fs::create_directories(base_ / "emulator");
    emulator_.set_data_dir((base_ / "emulator").string());
    ASSERT_TRUE(emulator_.Start());
    config_ = base_ / "filesync.toml";
    std::ofstream(config_) << "client_sync_dirs = [\"" << data_.string() << "\"]\n"
                           << "cloud_root = \"/soak\"\n"
                           << "state_dir = \"" << state_.string() << "\"\n"
                           << "poll_interval = 1\n"
                           << "workers = 2\n"
                           << "backend = \"dropbox\"\n"
                           << "dbx_token = \"" << emulator_.token() << "\"\n"
                           << "dbx_api_url = \"" << emulator_.url() << "\"\n"
                           << "dbx_content_url = \"" << emulator_.url() << "\"\n"
                           << "dbx_notify_url = \"" << emulator_.url() << "\"\n";
  }
  void TearDown() override {
    if (daemon_ > 0) {
      kill(daemon_, SIGKILL);
      waitpid(daemon_, nullptr, 0);
    }
    emulator_.Stop();
    std::error_code ec;
    fs::remove_all(base_, ec);
  }

  void StartDaemon() {
    daemon_ = fork();
    if (daemon_ == 0) {
      const int fd = open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
      if (fd >= 0) {
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
      }
      execl(FILESYNC_BINARY, FILESYNC_BINARY, "--config", config_.c_str(), "run",
            static_cast<char*>(nullptr));
      _exit(127);
    }
  }

  // Waits for a pass to finish after `at_least` passes were seen; false on timeout or exit.
  bool WaitForPasses(long at_least, std::chrono::seconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      if (CountPasses(log_) > at_least) return true;
      if (waitpid(daemon_, nullptr, WNOHANG) == daemon_) {
        daemon_ = -1;
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }

  nlohmann::json Status() {
    const std::string cmd =
        std::string(FILESYNC_BINARY) + " --config " + config_.string() + " status --json 2>&1";
    std::string out;
    if (FILE* p = popen(cmd.c_str(), "r")) {
      char buf[4096];
      while (std::size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
      pclose(p);
    }
    const auto start = out.find('{');
    return nlohmann::json::parse(start == std::string::npos ? std::string() : out.substr(start),
                                 nullptr, false);
  }

  fs::path base_, data_, state_, log_, config_;
  filesync::test_support::EmulatorProcess emulator_;
  pid_t daemon_ = -1;
};

TEST_F(Soak, MemoryAndDescriptorsStayFlatUnderASteadyStreamOfChanges) {
  const long seconds = EnvLong("FILESYNC_SOAK_SECONDS", kDefaultSeconds);
  const auto seed = static_cast<std::uint64_t>(EnvLong("FILESYNC_SOAK_SEED", 1));
  const long rate = EnvLong("FILESYNC_SOAK_RATE", 10);
  std::printf(
      "soak: %ld s, seed %llu, %ld changes/s%s; replay: FILESYNC_SOAK_SECONDS=%ld "
      "FILESYNC_SOAK_SEED=%llu FILESYNC_SOAK_RATE=%ld %s\n",
      seconds, static_cast<unsigned long long>(seed), rate,
      kSanitized ? " (sanitizer build: RSS not asserted)" : "", seconds,
      static_cast<unsigned long long>(seed), rate, ::testing::internal::GetArgvs()[0].c_str());

  ChangeStream stream(data_, seed);
  StartDaemon();
  ASSERT_GT(daemon_, 0);
  ASSERT_TRUE(WaitForPasses(0, std::chrono::seconds(kSanitized ? 300 : 120)))
      << "the daemon finished no first pass:\n"
      << Tail(ReadAll(log_), 40);

  // At least 20 samples whatever the length; every 10 s for the 10-minute run.
  const auto sample_every =
      std::chrono::milliseconds(std::clamp(seconds * 1000 / 60, 1000L, 10000L));
  const auto change_every = std::chrono::microseconds(1000000 / rate);
  const auto start = Clock::now();
  const auto end = start + std::chrono::seconds(seconds);
  std::vector<Sample> samples;
  std::map<std::string, long> tally;
  long changes = 0;
  auto next_change = start;
  auto next_sample = start;
  while (true) {
    const auto now = Clock::now();
    if (now >= next_sample) {
      Sample s;
      s.t = std::chrono::duration<double>(now - start).count();
      s.rss_kb = RssKb(daemon_);
      s.fds = FdCount(daemon_);
      s.emulator_rss_kb = RssKb(emulator_.pid());
      s.changes = changes;
      s.passes = CountPasses(log_);
      ASSERT_GT(s.rss_kb, 0) << "the daemon is gone:\n" << Tail(ReadAll(log_), 40);
      samples.push_back(s);
      next_sample += sample_every;
    }
    if (now >= end) break;
    if (now >= next_change) {
      ++tally[stream.Step()];
      ++changes;
      next_change += change_every;
    }
    std::this_thread::sleep_until(std::min({next_change, next_sample, end}));
  }

  std::printf("%8s %10s %5s %12s %8s %7s\n", "t(s)", "rss(KiB)", "fds", "emu rss(KiB)", "changes",
              "passes");
  for (const auto& s : samples) {
    std::printf("%8.1f %10ld %5ld %12ld %8ld %7ld\n", s.t, s.rss_kb, s.fds, s.emulator_rss_kb,
                s.changes, s.passes);
  }
  std::string kinds;
  for (const auto& [kind, n] : tally) kinds += " " + kind + "=" + std::to_string(n);
  std::printf("changes applied: %ld (%s )\n", changes, kinds.c_str());

  // Flatness after a warm-up of the first fifth: compare the first and last quarter of the rest.
  const std::size_t warm = samples.size() / 5;
  const std::vector<Sample> steady(samples.begin() + static_cast<std::ptrdiff_t>(warm),
                                   samples.end());
  ASSERT_GE(steady.size(), 8U);
  const std::size_t quarter = steady.size() / 4;
  auto max_of = [](auto first, auto last, long Sample::*field) {
    long m = 0;
    for (auto it = first; it != last; ++it) m = std::max(m, (*it).*field);
    return m;
  };
  const long first_rss = max_of(
      steady.begin(), steady.begin() + static_cast<std::ptrdiff_t>(quarter), &Sample::rss_kb);
  const long last_rss =
      max_of(steady.end() - static_cast<std::ptrdiff_t>(quarter), steady.end(), &Sample::rss_kb);
  long fd_min = steady.front().fds;
  long fd_max = steady.front().fds;
  long rss_max = 0;
  for (const auto& s : samples) rss_max = std::max(rss_max, s.rss_kb);
  for (const auto& s : steady) {
    fd_min = std::min(fd_min, s.fds);
    fd_max = std::max(fd_max, s.fds);
  }
  std::printf(
      "daemon RSS KiB: start %ld, end %ld, max %ld; first-quarter max %ld, last-quarter max %ld\n"
      "daemon fds: start %ld, end %ld, after warm-up min %ld max %ld\n",
      samples.front().rss_kb, samples.back().rss_kb, rss_max, first_rss, last_rss,
      samples.front().fds, samples.back().fds, fd_min, fd_max);
  if (!kSanitized) {
    EXPECT_LE(last_rss, first_rss * 12 / 10 + kRssSlackKb)
        << "resident memory grows under a steady stream of changes";
  }
  EXPECT_LE(fd_max - fd_min, kFdSlack) << "open descriptors vary more than connection churn";

  // Convergence: the cloud holds exactly the folder, and the daemon reports no errors.
  const auto converge_deadline = Clock::now() + std::chrono::seconds(kSanitized ? 600 : 180);
  TreeMap local = LocalTree(data_);
  TreeMap cloud;
  nlohmann::json status;
  bool converged = false;
  while (!converged && Clock::now() < converge_deadline) {
    std::this_thread::sleep_for(std::chrono::seconds(1));
    cloud = CloudTree(emulator_, "/soak/data");
    if (cloud != local) continue;
    // One full pass after the trees matched, so its report describes the final state.
    if (!WaitForPasses(CountPasses(log_), std::chrono::seconds(60))) break;
    status = Status();
    converged = status.is_object() && status["errors"].empty() &&
                status["last_pass"].value("converged", false);
  }
  const long passes = CountPasses(log_);
  EXPECT_TRUE(converged) << "local " << local.size() << " entries, cloud " << cloud.size()
                         << "; status: " << status.dump() << "\n"
                         << Tail(ReadAll(log_), 40);
  EXPECT_EQ(cloud, local);
  std::printf("converged: %s after %ld passes; %zu entries\n", converged ? "yes" : "NO", passes,
              local.size());

  kill(daemon_, SIGTERM);
  int st = 0;
  waitpid(daemon_, &st, 0);
  daemon_ = -1;
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "daemon exit status " << st << "\n"
                                                     << Tail(ReadAll(log_), 40);
}

}  // namespace
