// Symlinks never lead the scan out of a sync dir (issue 5, Security): links to a folder and a
// file outside, to "/", loops, self-links and dangling links are skipped — by a one-shot sync, by
// the daemon when they appear while it watches, and while a folder is swapped for a link to the
// outside during passes — and nothing from outside ever reaches the cloud. Both backends.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdio.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "emulator_process.h"
#include "security_support.h"

namespace filesync::security_test {
namespace {

using test_support::EmulatorProcess;

class Symlinks : public ::testing::TestWithParam<std::string> {
 protected:
  Symlinks() : box_(::testing::UnitTest::GetInstance()->current_test_info()->name()) {}
  bool dropbox() const { return GetParam() == "dropbox"; }

  void SetUp() override {
    src_ = box_.base() / "data" / "docs";
    outside_ = box_.base() / "outside";
    marker_ = Canary("OUTSIDE-");
    fs::create_directories(src_);
    WriteFile(outside_ / "secret.txt", marker_ + " file");
    WriteFile(outside_ / "dir" / "inner.txt", marker_ + " inner");
    WriteFile(outside_ / "swap" / "f.txt", marker_ + " swapped");
    WriteFile(src_ / "real" / "file.txt", "inside");
    std::string keys;
    if (dropbox()) {
      ASSERT_TRUE(emulator_.Start({"--commit-lock-ms", "0"}));
      keys = "backend = \"dropbox\"\ndbx_token = \"" + emulator_.token() + "\"\ndbx_api_url = \"" +
             emulator_.url() + "\"\ndbx_content_url = \"" + emulator_.url() +
             "\"\ndbx_notify_url = \"" + emulator_.url() + "\"\n";
    }
    config_ = box_.base() / "filesync.toml";
    WriteFile(config_,
              "client_sync_dirs = [\"" + src_.string() + "\"]\ncloud_root = \"/backup\"\n" +
                  "state_dir = \"" + (box_.base() / "state").string() + "\"\n" +
                  "local_cloud_dir = \"" + cloud_.string() + "\"\npoll_interval = 1\n" + keys,
              fs::perms::owner_read | fs::perms::owner_write);
  }

  // Path (relative to the mirror "/backup/docs") -> content, as the cloud holds it; for the local
  // backend also fails on any symlink in the cloud dir.
  std::map<std::string, std::string> Mirror() {
    std::map<std::string, std::string> out;
    if (dropbox()) {
      for (const auto& [path, content] : DropboxNamespace(emulator_.url(), emulator_.token())) {
        if (path.starts_with("/backup/docs/")) {
          out[path.substr(std::string("/backup/docs/").size())] = content;
        } else if (path != "/backup" && path != "/backup/docs") {
          ADD_FAILURE() << "unexpected cloud entry " << path;
        }
      }
      return out;
    }
    if (!fs::exists(cloud_)) return out;
    for (auto it = fs::recursive_directory_iterator(cloud_);
         it != fs::recursive_directory_iterator(); ++it) {
      EXPECT_FALSE(it->is_symlink()) << "symlink in the cloud: " << it->path();
    }
    return Tree(cloud_ / "backup" / "docs");
  }

  // Nothing in the cloud came from outside the sync dir.
  void ExpectNothingFromOutside() {
    for (const auto& [path, content] : Mirror()) {
      EXPECT_EQ(content.find(marker_), std::string::npos) << path << " came from outside";
    }
    if (!dropbox()) {
      EXPECT_TRUE(FilesLeaking(cloud_, marker_).empty());
    }
  }

  Sandbox box_;
  fs::path src_, outside_, config_, cloud_ = box_.base() / "cloud";
  std::string marker_;
  EmulatorProcess emulator_;
};

INSTANTIATE_TEST_SUITE_P(Backends, Symlinks, ::testing::Values("local", "dropbox"),
                         [](const auto& param_info) { return param_info.param; });

TEST_P(Symlinks, OneShotSyncSkipsEveryLink) {
  fs::create_directory_symlink(outside_, src_ / "to-outside-dir");
  fs::create_symlink(outside_ / "secret.txt", src_ / "to-outside-file");
  fs::create_directory_symlink("/", src_ / "to-root");
  fs::create_directory_symlink("../..", src_ / "real" / "to-grandparent");
  fs::create_directory_symlink(".", src_ / "self");
  fs::create_symlink("loop-b", src_ / "loop-a");
  fs::create_symlink("loop-a", src_ / "loop-b");
  fs::create_symlink("nowhere", src_ / "dangling");
  const RunResult r = box_.Run({"--config", config_.string(), "sync"});
  EXPECT_EQ(r.code, 0) << r.all();
  EXPECT_NE(r.all().find("to-outside-dir"), std::string::npos) << "a skipped link is reported";
  const std::map<std::string, std::string> expected = {{"real", "<dir>"},
                                                       {"real/file.txt", "inside"}};
  EXPECT_EQ(Mirror(), expected);
  ExpectNothingFromOutside();
  // A full re-walk of the cloud changes nothing either.
  EXPECT_EQ(box_.Run({"--config", config_.string(), "sync", "--verify"}).code, 0);
  EXPECT_EQ(Mirror(), expected);
}

// The daemon sees links appear (and files appear behind them) while it watches, and a folder
// that is swapped for a link to an outside folder with the same file names, again and again.
TEST_P(Symlinks, DaemonNeverFollowsLinksThatAppearOrSwapIn) {
  WriteFile(src_ / "swap" / "f.txt", "inside swap");
  // Enough other entries that a pass that sees "swap" as a link stays under max_delete's 50%.
  for (int i = 0; i < 8; ++i) WriteFile(src_ / "real" / ("keep-" + std::to_string(i)), "k");
  const fs::path log = box_.base() / "captures" / "daemon.log";
  const pid_t pid = box_.Spawn({"--config", config_.string(), "run"}, log);
  ASSERT_GT(pid, 0);
  ASSERT_TRUE(WaitFor([&] { return Mirror().contains("swap/f.txt"); }, 20000)) << ReadFile(log);

  fs::create_directory_symlink(outside_ / "dir", src_ / "late-link");
  WriteFile(outside_ / "dir" / "late.txt", marker_ + " late");
  std::atomic<bool> stop{false};
  int swaps = 0;
  std::thread swapper([&] {
    const fs::path parked = box_.base() / "parked";
    for (int i = 0; !stop; ++i, ++swaps) {
      std::error_code ec;
      fs::rename(src_ / "swap", parked, ec);
      fs::create_directory_symlink(outside_ / "swap", src_ / "swap", ec);
      std::this_thread::sleep_for(std::chrono::milliseconds(i % 7 * 10));
      fs::remove(src_ / "swap", ec);
      fs::rename(parked, src_ / "swap", ec);
      WriteFile(src_ / "swap" / "f.txt", "inside swap " + std::to_string(i));
      std::this_thread::sleep_for(std::chrono::milliseconds(i % 5 * 10));
    }
  });
  for (int i = 0; i < 30; ++i) {
    WriteFile(src_ / "real" / ("late-" + std::to_string(i % 4) + ".txt"), std::to_string(i));
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  stop = true;
  swapper.join();
  EXPECT_GT(swaps, 20);
  WriteFile(src_ / "real" / "last.txt", "last");
  EXPECT_TRUE(WaitFor([&] { return Mirror().contains("real/last.txt"); }, 20000)) << ReadFile(log);
  EXPECT_EQ(Sandbox::Stop(pid), 0) << ReadFile(log);
  const auto mirror = Mirror();
  EXPECT_FALSE(mirror.contains("late-link")) << ReadFile(log);
  EXPECT_EQ(mirror.count("swap/f.txt"), 1u);
  ExpectNothingFromOutside();
  // Whatever the last pass saw, a final sync converges on the client's own bytes.
  const RunResult r = box_.Run({"--config", config_.string(), "sync"});
  EXPECT_EQ(r.code, 0) << r.all();
  EXPECT_EQ(Mirror()["swap/f.txt"], ReadFile(src_ / "swap" / "f.txt"));
  ExpectNothingFromOutside();
}

// The sync dir itself is swapped, atomically and over and over, with a symlink to an outside folder
// (renameat2 RENAME_EXCHANGE in its parent) while passes run: a pass reads either the accepted
// dir or nothing, never the outside folder, and says so when it refuses (issue 11, item 6).
TEST_P(Symlinks, SyncDirSwappedForALinkMidPassReadsNothingOutside) {
  for (int i = 0; i < 20; ++i)
    WriteFile(src_ / "real" / ("f-" + std::to_string(i) + ".txt"), "inside " + std::to_string(i));
  // The outside folder looks like the sync dir (same names, other bytes), so a pass that strayed
  // there would plan only uploads (no deletes for max_delete to stop) and send outside bytes.
  fs::remove_all(outside_);
  WriteFile(outside_ / "real" / "file.txt", marker_ + " outside");
  for (int i = 0; i < 20; ++i)
    WriteFile(outside_ / "real" / ("f-" + std::to_string(i) + ".txt"), marker_ + " outside");
  const RunResult first = box_.Run({"--config", config_.string(), "sync"});
  ASSERT_EQ(first.code, 0) << first.all();
  const fs::path link = box_.base() / "data" / "link";
  fs::create_directory_symlink(outside_, link);
  std::atomic<bool> stop{false};
  std::atomic<int> swaps{0};
  std::thread swapper([&] {
    while (!stop) {
      if (renameat2(AT_FDCWD, src_.c_str(), AT_FDCWD, link.c_str(), RENAME_EXCHANGE) == 0) ++swaps;
    }
  });
  int refused = 0;
  for (int pass = 0; pass < 21; ++pass) {
    const RunResult r = box_.Run({"--config", config_.string(), "sync"});
    if (r.code != 0) {
      ++refused;
      EXPECT_NE(r.err.find("sync dir " + src_.string()), std::string::npos) << r.all();
    }
    ExpectNothingFromOutside();  // after every pass: a later pass would overwrite a leak
  }
  stop = true;
  swapper.join();
  EXPECT_GT(swaps.load(), 100);
  if (fs::is_symlink(src_)) {
    ASSERT_EQ(renameat2(AT_FDCWD, src_.c_str(), AT_FDCWD, link.c_str(), RENAME_EXCHANGE), 0);
  }
  ExpectNothingFromOutside();
  EXPECT_GT(refused, 0) << "no pass ever met the swapped link: the test proved nothing";
  const RunResult last = box_.Run({"--config", config_.string(), "sync"});
  EXPECT_EQ(last.code, 0) << last.all();
  EXPECT_EQ(Mirror().size(), 22u);  // "real", real/file.txt and the 20 files
  ExpectNothingFromOutside();
}

// A sync dir that is itself a symlink is refused with one line naming its target, and nothing is
// read through it.
TEST_P(Symlinks, SymlinkedSyncDirIsRefusedNamingItsTarget) {
  const fs::path real = box_.base() / "data" / "real-docs";
  fs::rename(src_, real);
  fs::create_directory_symlink(real, src_);
  const RunResult r = box_.Run({"--config", config_.string(), "sync"});
  EXPECT_EQ(r.code, 1) << r.all();
  EXPECT_NE(r.err.find("is a symlink"), std::string::npos) << r.all();
  EXPECT_NE(r.err.find(fs::canonical(real).string()), std::string::npos) << r.all();
  EXPECT_TRUE(Mirror().empty());
}

}  // namespace
}  // namespace filesync::security_test
