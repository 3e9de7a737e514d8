// The engine in process, against FakeCloud (an in-memory cloud): set up a world, change the
// client, run a pass, compare the cloud with the client. Written from the contract (README "How
// a pass works" and "Policies"): new and changed files are uploaded, deletions mirrored, renames
// become moves (a renamed folder is one move), an interrupted pass never reports success and the
// next pass finishes the job, an unreadable folder makes the pass incomplete and nothing below
// it is deleted.
#include "engine/sync_engine.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>

#include "fake_cloud.h"
#include "store/state_store.h"

namespace fs = std::filesystem;

namespace filesync::engine {
namespace {

using testing::FakeCloud;

constexpr const char* kCloudRoot = "/filesync/data";

// A client dir, a FakeCloud and a state store, with the engine the daemon would run on them.
class World {
 public:
  World(const fs::path& base, bool incremental) : base_(base), cloud_(incremental) {
    fs::create_directories(client());
    auto store = store::StateStore::Open(base_ / "state", nullptr);
    if (!store.ok()) throw std::runtime_error(store.status().ToString());
    store_ = std::move(store.value());
    Restart();
  }

  fs::path client() const { return base_ / "data"; }
  FakeCloud& cloud() { return cloud_; }
  SyncEngine& engine() { return *engine_; }

  void Write(const std::string& rel, const std::string& content) {
    fs::create_directories((client() / rel).parent_path());
    std::ofstream(client() / rel, std::ios::binary | std::ios::trunc) << content;
  }
  void Mkdir(const std::string& rel) { fs::create_directories(client() / rel); }
  void Remove(const std::string& rel) { fs::remove_all(client() / rel); }
  void Rename(const std::string& from, const std::string& to) {
    fs::rename(client() / from, client() / to);
  }

  PassReport Pass() { return engine_->RunPass({}); }
  // A new engine on the same store and cloud, as after a restart.
  void Restart() {
    EngineOptions options;
    options.dirs = {{client().string(), kCloudRoot}};
    options.workers = 2;
    options.cloud_root_setting = "test: key 'cloud_root' = \"/filesync\"";
    engine_.reset();
    engine_ = std::make_unique<SyncEngine>(options, cloud_, *store_);
  }

  // relative path -> content, or "<folder>" (FakeCloud::Tree's form).
  std::map<std::string, std::string> ClientTree() const {
    std::map<std::string, std::string> tree;
    for (const auto& e : fs::recursive_directory_iterator(client())) {
      const std::string rel = fs::relative(e.path(), client()).string();
      if (e.is_directory()) {
        tree.emplace(rel, "<folder>");
      } else {
        std::ifstream in(e.path(), std::ios::binary);
        std::stringstream content;
        content << in.rdbuf();
        tree.emplace(rel, content.str());
      }
    }
    return tree;
  }
  std::map<std::string, std::string> CloudTree() const { return cloud_.Tree(kCloudRoot); }

 private:
  fs::path base_;
  FakeCloud cloud_;
  std::unique_ptr<store::StateStore> store_;
  std::unique_ptr<SyncEngine> engine_;
};

std::string Describe(const std::map<std::string, std::string>& tree) {
  std::string out;
  for (const auto& [path, content] : tree) out += "  " + path + " = " + content + "\n";
  return out;
}

fs::path FreshBase(const std::string& name) {
  const fs::path base =
      fs::temp_directory_path() / ("filesync-engine-" + name + "-" + std::to_string(getpid()));
  fs::remove_all(base);
  fs::create_directories(base);
  return base;
}

// Every test runs with an incremental cloud listing (Dropbox-like) and without (local-like).
class SyncEngineTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    base_ = FreshBase(::testing::UnitTest::GetInstance()->current_test_info()->name());
    base_ = base_.parent_path() / (base_.filename().string() + (GetParam() ? "-inc" : "-full"));
    fs::remove_all(base_);
    world_ = std::make_unique<World>(base_, GetParam());
  }
  void TearDown() override {
    world_.reset();
    fs::remove_all(base_);
  }

  // One pass that must converge with the cloud equal to the client.
  void PassAndCompare(const char* step) {
    const PassReport report = world_->Pass();
    EXPECT_TRUE(report.converged()) << step << ": " << report.ToJson();
    EXPECT_EQ(world_->CloudTree(), world_->ClientTree())
        << step << ": cloud\n"
        << Describe(world_->CloudTree()) << "client\n"
        << Describe(world_->ClientTree());
  }

  fs::path base_;
  std::unique_ptr<World> world_;
};

TEST_P(SyncEngineTest, NewFilesAndFoldersAreUploaded) {
  world_->Write("a.txt", "alpha");
  world_->Write("sub/deeper/b.txt", "beta");
  world_->Mkdir("empty");
  PassAndCompare("first pass");
  EXPECT_EQ(world_->cloud().counts().uploads, 2);
  // Nothing changed: nothing is sent again.
  PassAndCompare("second pass");
  EXPECT_EQ(world_->cloud().counts().uploads, 2);
}

TEST_P(SyncEngineTest, AModifiedFileIsUploadedAgainAndOnlyIt) {
  world_->Write("a.txt", "alpha");
  world_->Write("b.txt", "beta");
  PassAndCompare("first pass");
  world_->Write("a.txt", "alpha, longer now");
  world_->Write("b.txt", "BETA");  // same size
  PassAndCompare("after the edits");
  EXPECT_EQ(world_->cloud().counts().uploads, 4);
  EXPECT_EQ(world_->CloudTree().at("b.txt"), "BETA");
}

TEST_P(SyncEngineTest, DeletedFilesAndFoldersAreDeletedInTheCloud) {
  world_->Write("keep.txt", "k");
  world_->Write("gone.txt", "g");
  world_->Write("dir/x.txt", "x");
  world_->Write("dir/sub/y.txt", "y");
  PassAndCompare("first pass");
  world_->Remove("gone.txt");
  world_->Remove("dir");
  PassAndCompare("after the deletes");
  EXPECT_FALSE(world_->CloudTree().contains("dir/sub/y.txt"));
}

TEST_P(SyncEngineTest, ARenamedFileIsMovedNotUploadedAgain) {
  world_->Write("old name.txt", std::string(100000, 'r'));
  PassAndCompare("first pass");
  const int uploads = world_->cloud().counts().uploads;
  world_->Rename("old name.txt", "new name.txt");
  PassAndCompare("after the rename");
  EXPECT_EQ(world_->cloud().counts().uploads, uploads);
  EXPECT_EQ(world_->cloud().counts().moves, 1);
}

TEST_P(SyncEngineTest, ARenamedFolderIsOneMove) {
  for (int i = 0; i < 5; ++i)
    world_->Write("photos/" + std::to_string(i) + ".jpg", "p" + std::to_string(i));
  world_->Write("photos/2020/old.jpg", "old");
  PassAndCompare("first pass");
  const int uploads = world_->cloud().counts().uploads;
  world_->Rename("photos", "pictures");
  PassAndCompare("after the folder rename");
  EXPECT_EQ(world_->cloud().counts().uploads, uploads);
  EXPECT_EQ(world_->cloud().counts().moves, 1);
}

TEST_P(SyncEngineTest, AFileChangedInTheCloudIsPutBackFromTheClient) {
  if (!GetParam())
    GTEST_SKIP() << "without a change feed the stored view is trusted until the next verify";
  world_->Write("a.txt", "client's");
  PassAndCompare("first pass");
  world_->cloud().PutFile(std::string(kCloudRoot) + "/a.txt", "someone else's");
  world_->cloud().PutFile(std::string(kCloudRoot) + "/stray.txt", "not on the client");
  PassAndCompare("after the cloud-side changes");
}

TEST_P(SyncEngineTest, AnInterruptedPassIsNotSuccessAndTheNextPassFinishesIt) {
  constexpr int kFiles = 40;
  for (int i = 0; i < kFiles; ++i) world_->Write("f" + std::to_string(i), std::to_string(i));
  std::atomic<int> seen{0};
  world_->cloud().OnUpload([&](const std::string&) {
    if (++seen == 3) world_->engine().RequestStop();  // a SIGTERM mid-pass
  });
  const PassReport stopped = world_->Pass();
  world_->cloud().OnUpload(nullptr);
  EXPECT_TRUE(stopped.interrupted) << stopped.ToJson();
  EXPECT_FALSE(stopped.converged()) << stopped.ToJson();
  ASSERT_EQ(stopped.roots.size(), 1u);
  EXPECT_GT(stopped.roots[0].pending + stopped.roots[0].deferred, 0u) << stopped.ToJson();
  EXPECT_LT(world_->cloud().counts().uploads, kFiles) << "the stop was too late to mean anything";
  EXPECT_NE(world_->CloudTree(), world_->ClientTree());

  world_->Restart();
  PassAndCompare("the pass after the restart");
}

INSTANTIATE_TEST_SUITE_P(Listing, SyncEngineTest, ::testing::Values(true, false),
                         [](const ::testing::TestParamInfo<bool>& p) {
                           return p.param ? "Incremental" : "Full";
                         });

// Runs `fn` as an unprivileged user when the test runs as root (root reads every folder), in a
// child process; returns what it returned (failures, "" if none).
std::string RunUnprivileged(const fs::path& base, const std::function<std::string()>& fn) {
  if (geteuid() != 0) return fn();
  if (chown(base.c_str(), 65534, 65534) != 0) return "cannot chown " + base.string();
  int fds[2];
  if (pipe(fds) != 0) return "pipe failed";
  const pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    const std::string out =
        setgid(65534) != 0 || setuid(65534) != 0 ? "cannot drop privileges" : fn();
    const ssize_t ignored = write(fds[1], out.data(), out.size());
    (void)ignored;
    _exit(0);
  }
  close(fds[1]);
  std::string out;
  char buf[4096];
  ssize_t n = 0;
  while ((n = read(fds[0], buf, sizeof(buf))) > 0) out.append(buf, static_cast<std::size_t>(n));
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status)) return "the unprivileged child died: " + out;
  return out;
}

TEST(SyncEngineUnreadable, AnUnreadableFolderMakesThePassIncompleteAndNothingBelowIsDeleted) {
  const fs::path base = FreshBase("unreadable");
  const std::string failures = RunUnprivileged(base, [&]() -> std::string {
    std::string out;
    try {
      World world(base, true);
      world.Write("ok.txt", "one");
      world.Write("locked/inner.txt", "inside");
      if (!world.Pass().converged()) out += "the first pass did not converge\n";
      chmod((world.client() / "locked").c_str(), 0);
      world.Write("ok.txt", "two");
      const PassReport blocked = world.Pass();
      if (blocked.converged()) out += "a pass with an unreadable folder reported success\n";
      if (blocked.roots.at(0).unreadable != 1)
        out += "unreadable is not 1: " + blocked.ToJson() + "\n";
      const auto cloud = world.CloudTree();
      if (!cloud.contains("locked/inner.txt"))
        out += "a file below the unreadable folder was deleted\n";
      if (cloud.contains("ok.txt") && cloud.at("ok.txt") != "two")
        out += "the rest was not synced\n";
      chmod((world.client() / "locked").c_str(), 0755);
      world.Write("locked/inner.txt", "changed while locked");
      if (!world.Pass().converged())
        out += "the pass after the folder is readable again did not converge\n";
      if (world.CloudTree() != world.ClientTree()) out += "cloud != client at the end\n";
    } catch (const std::exception& e) {
      out += std::string("exception: ") + e.what();
    }
    return out;
  });
  EXPECT_EQ(failures, "");
  fs::remove_all(base);
}

}  // namespace
}  // namespace filesync::engine
