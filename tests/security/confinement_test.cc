// Cloud path confinement, end to end (issue 5, Security): a cloud path can never escape
// cloud_root. Linux file names cannot be "..", contain "/" or NUL, so the ways in are the
// configuration (cloud_root, sync dir paths) and, for the local backend, the cloud folder itself
// (a link planted in it). Each is tried with the real binary; the in-process checks of the
// backend's path resolution are in paths_test.cc.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdio.h>

#include <algorithm>
#include <atomic>
#include <thread>

#include "emulator_process.h"
#include "security_support.h"

namespace filesync::security_test {
namespace {

using test_support::EmulatorProcess;

constexpr fs::perms kOwnerRw = fs::perms::owner_read | fs::perms::owner_write;

std::string TestName() { return ::testing::UnitTest::GetInstance()->current_test_info()->name(); }

class Confinement : public ::testing::Test {
 protected:
  Confinement() : box_(TestName()) {}
  void SetUp() override {
    src_ = box_.base() / "data" / "docs";
    cloud_ = box_.base() / "cloud";
    WriteFile(src_ / "a.txt", "a");
    WriteFile(src_ / "sub" / "old.txt", "old");
    WriteFile(src_ / "sub" / "keep.txt", "keep");
    for (int i = 0; i < 6; ++i) WriteFile(src_ / ("f" + std::to_string(i)), std::to_string(i));
  }
  fs::path Config(const std::string& cloud_root_line, const std::string& extra = "") {
    const fs::path path = box_.base() / "filesync.toml";
    WriteFile(path,
              "client_sync_dirs = [\"" + src_.string() + "\"]\n" + cloud_root_line +
                  "state_dir = \"" + (box_.base() / "state").string() + "\"\n" +
                  "local_cloud_dir = \"" + cloud_.string() + "\"\n" + extra,
              kOwnerRw);
    return path;
  }
  // Every file and folder under the sandbox outside the cloud dir, the captures and the state.
  std::map<std::string, std::string> Outside() {
    std::map<std::string, std::string> out;
    for (const auto& [path, content] : Tree(box_.base())) {
      if (path.starts_with("cloud") || path.starts_with("captures") || path.starts_with("state") ||
          path == "filesync.toml")
        continue;
      out[path] = content;
    }
    return out;
  }

  Sandbox box_;
  fs::path src_, cloud_;
};

// TOML string bodies (as written between the quotes) that would put the mirror outside
// cloud_root or are not a plain absolute cloud path.
const std::vector<std::string> kBadCloudRoots = {"/a/../b",
                                                 "/..",
                                                 "/a/..",
                                                 "..",
                                                 "../x",
                                                 "/a/../../x",
                                                 "/./x",
                                                 "/.",
                                                 "a/b",
                                                 "x",
                                                 "/a//b",
                                                 "//a",
                                                 "/a/",
                                                 "/a\\\\..\\\\b",
                                                 "\\\\x",
                                                 "/a\\u0000b",
                                                 "/a\\u0000/../b",
                                                 "/\\u0000"};

TEST_F(Confinement, CloudRootsThatCouldEscapeAreRefusedAtLoad) {
  const auto before = Outside();
  for (const auto& root : kBadCloudRoots) {
    SCOPED_TRACE(root);
    const fs::path config = Config("cloud_root = \"" + root + "\"\n");
    const RunResult r = box_.Run({"--config", config.string(), "sync"});
    EXPECT_EQ(r.code, 2) << r.all();
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "one line: " << r.err;
    EXPECT_NE(r.err.find("cloud_root"), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(cloud_)) << "nothing is written before the config is valid";
  }
  for (const char* root : {"/x/../y", "..", "/a/./b"}) {
    const fs::path config = Config("");
    const RunResult r =
        box_.Run({"--config", config.string(), "sync"}, {.env = {{"FILESYNC_CLOUD_ROOT", root}}});
    EXPECT_EQ(r.code, 2) << root << ": " << r.all();
    EXPECT_NE(r.err.find("FILESYNC_CLOUD_ROOT"), std::string::npos) << r.err;
  }
  EXPECT_EQ(Outside(), before);
  // The check can fail: a good root syncs, into the cloud dir only.
  const RunResult ok = box_.Run({"--config", Config("cloud_root = \"/\"\n").string(), "sync"});
  EXPECT_EQ(ok.code, 0) << ok.all();
  EXPECT_EQ(ReadFile(cloud_ / "docs" / "a.txt"), "a");
  EXPECT_EQ(Outside(), before);
}

TEST_F(Confinement, DropboxCloudRootsThatCouldEscapeNeverReachTheServer) {
  EmulatorProcess emulator;
  ASSERT_TRUE(emulator.Start({"--commit-lock-ms", "0"}));
  const std::string keys = "backend = \"dropbox\"\ndbx_token = \"" + emulator.token() +
                           "\"\ndbx_api_url = \"" + emulator.url() + "\"\ndbx_content_url = \"" +
                           emulator.url() + "\"\n";
  for (const auto& root : kBadCloudRoots) {
    const RunResult r =
        box_.Run({"--config", Config("cloud_root = \"" + root + "\"\n", keys).string(), "sync"});
    EXPECT_EQ(r.code, 2) << root << ": " << r.all();
  }
  EXPECT_EQ(emulator.Counters()["total"], 0) << "no request with a bad cloud_root";
  const RunResult ok =
      box_.Run({"--config", Config("cloud_root = \"/inside\"\n", keys).string(), "sync"});
  EXPECT_EQ(ok.code, 0) << ok.all();
  for (const auto& [path, content] : DropboxNamespace(emulator.url(), emulator.token())) {
    EXPECT_TRUE(path == "/inside" || path.starts_with("/inside/")) << path << " escaped";
  }
  EXPECT_EQ(DropboxNamespace(emulator.url(), emulator.token())["/inside/docs/a.txt"], "a");
}

// A sync dir spelt with "." and ".." components mirrors to its real name, inside cloud_root.
TEST_F(Confinement, SyncDirPathWithDotDotMapsToItsNormalName) {
  const fs::path spelt = box_.base() / "data" / "other" / ".." / "." / "docs" / ".";
  fs::create_directories(box_.base() / "data" / "other");
  const fs::path config = box_.base() / "filesync.toml";
  WriteFile(config,
            "client_sync_dirs = [\"" + spelt.string() + "\"]\ncloud_root = \"/backup\"\n" +
                "state_dir = \"" + (box_.base() / "state").string() + "\"\n" +
                "local_cloud_dir = \"" + cloud_.string() + "\"\n",
            kOwnerRw);
  const RunResult r = box_.Run({"--config", config.string(), "sync"});
  ASSERT_EQ(r.code, 0) << r.all();
  EXPECT_EQ(Tree(cloud_ / "backup" / "docs"), Tree(src_));
  std::vector<std::string> top;
  for (const auto& entry : fs::directory_iterator(cloud_ / "backup"))
    top.push_back(entry.path().filename().string());
  EXPECT_EQ(top, std::vector<std::string>{"docs"});
}

// Someone with write access to the local cloud folder (a shared NAS folder) replaces a synced
// folder with a link to a folder elsewhere, and a synced file with a link to a file elsewhere.
// filesync must not write, replace or delete anything through those links: the victim folder
// keeps exactly its content, and each path behind the folder link is reported as failed.
TEST_F(Confinement, LocalCloudNeverWritesThroughALinkPlantedInTheCloudDir) {
  const fs::path config = Config("cloud_root = \"/backup\"\n");
  ASSERT_EQ(box_.Run({"--config", config.string(), "sync"}).code, 0);
  const fs::path victim = box_.base() / "victim";
  WriteFile(victim / "old.txt", "victim old");
  WriteFile(victim / "keep.txt", "victim keep");
  WriteFile(victim / "file", "victim file");
  const auto victim_before = Tree(victim);
  const fs::path mirror = cloud_ / "backup" / "docs";
  fs::remove_all(mirror / "sub");
  fs::create_directory_symlink(victim, mirror / "sub");
  fs::remove(mirror / "a.txt");
  fs::create_symlink(victim / "file", mirror / "a.txt");

  fs::remove(src_ / "sub" / "old.txt");
  WriteFile(src_ / "sub" / "keep.txt", "keep, edited");
  WriteFile(src_ / "sub" / "new.txt", "new");
  WriteFile(src_ / "a.txt", "a, edited");
  const RunResult r = box_.Run({"--config", config.string(), "sync"});
  EXPECT_EQ(Tree(victim), victim_before) << "written through a link in the cloud dir:\n" << r.all();
  EXPECT_NE(r.all().find("is a symlink; not following it"), std::string::npos) << r.all();
  const RunResult verify = box_.Run({"--config", config.string(), "sync", "--verify"});
  EXPECT_EQ(Tree(victim), victim_before) << verify.all();
  EXPECT_EQ(ReadFile(victim / "file"), "victim file");
  // The file link itself was replaced by the uploaded file; the folder link is left alone.
  EXPECT_FALSE(fs::is_symlink(mirror / "a.txt"));
  EXPECT_EQ(ReadFile(mirror / "a.txt"), "a, edited");
  EXPECT_TRUE(fs::is_symlink(mirror / "sub"));
}

// The cloud side of a swap mid-pass: the mirror folder, and the local cloud dir itself, are
// exchanged with links to outside folders (renameat2 RENAME_EXCHANGE in a loop) while passes
// upload, edit and delete. No pass may write outside the cloud dir: a pass that meets the link
// is refused (the mirror folder: "is a symlink"; the cloud dir: "not the folder synced before",
// since its path now leads to another folder) and nothing reaches the outside folders.
TEST_F(Confinement, CloudDirOrMirrorFolderSwappedForALinkMidPassWritesNothingOutside) {
  const fs::path config = Config("cloud_root = \"/backup\"\n");
  ASSERT_EQ(box_.Run({"--config", config.string(), "sync"}).code, 0);
  const fs::path mirror = cloud_ / "backup" / "docs";
  struct Swap {
    fs::path real, link, outside;
  };
  const std::vector<Swap> swaps = {
      {mirror, box_.base() / "mirror-link", box_.base() / "outside-mirror"},
      {cloud_, box_.base() / "cloud-link", box_.base() / "outside-cloud"}};
  for (const Swap& s : swaps) {
    // Looks like what it stands in for, so a pass that strayed there would write into it.
    fs::copy(s.real, s.outside, fs::copy_options::recursive);
    fs::create_directory_symlink(s.outside, s.link);
  }
  std::map<fs::path, std::map<std::string, std::string>> before;
  for (const Swap& s : swaps) before[s.outside] = Tree(s.outside);
  for (const Swap& s : swaps) {
    std::atomic<bool> stop{false};
    std::atomic<int> exchanged{0};
    std::thread swapper([&] {
      while (!stop) {
        if (renameat2(AT_FDCWD, s.real.c_str(), AT_FDCWD, s.link.c_str(), RENAME_EXCHANGE) == 0)
          ++exchanged;
      }
    });
    int refused = 0;
    for (int pass = 0; pass < 12; ++pass) {
      WriteFile(src_ / "a.txt", "a, edit " + std::to_string(pass));
      WriteFile(src_ / "sub" / ("new-" + std::to_string(pass)), "new");
      fs::remove(src_ / ("f" + std::to_string(pass % 6)));
      WriteFile(src_ / ("f" + std::to_string((pass + 3) % 6)), "again");
      const RunResult r = box_.Run({"--config", config.string(), "sync"});
      if (r.code != 0) ++refused;
      for (const Swap& o : swaps) {
        EXPECT_EQ(Tree(o.outside), before[o.outside])
            << "pass " << pass << " wrote outside the cloud dir:\n"
            << r.all();
      }
    }
    stop = true;
    swapper.join();
    if (fs::is_symlink(s.real)) {
      ASSERT_EQ(renameat2(AT_FDCWD, s.real.c_str(), AT_FDCWD, s.link.c_str(), RENAME_EXCHANGE), 0);
    }
    EXPECT_GT(exchanged.load(), 100) << s.real;
    EXPECT_GT(refused, 0) << "no pass met the link at " << s.real << ": the test proved nothing";
  }
  const RunResult last = box_.Run({"--config", config.string(), "sync"});
  EXPECT_EQ(last.code, 0) << last.all();
  EXPECT_EQ(Tree(mirror), Tree(src_));
}

}  // namespace
}  // namespace filesync::security_test
