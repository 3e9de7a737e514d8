// LocalCloud in process (issue 11): the cloud folder is checked before a pass writes (missing,
// made again, a bare mount point), a dry run changes nothing in it, instances sharing it remove
// only dead instances' staging, bytes already in it are not copied again, sparse files keep
// their holes, modes are kept, and a stop leaves nothing behind. The real binary on these cases
// is in tests/e2e (LocalE2E.*).
#include "cloud/local/local_cloud.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <regex>
#include <string>
#include <vector>

#include "core/unique_fd.h"
#include "hash/content_hash.h"

namespace filesync {
namespace {

namespace fs = std::filesystem;
using cloud::LocalCloud;

std::string ReadAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

void WriteAll(const fs::path& p, const std::string& content) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << content;
}

std::string RandomBytes(std::size_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::string out(n, '\0');
  for (char& c : out) c = static_cast<char>(gen());
  return out;
}

// Everything under `dir`: relative path -> "d" for folders, else the content.
std::map<std::string, std::string> Snapshot(const fs::path& dir) {
  std::map<std::string, std::string> out;
  if (!fs::exists(dir)) return out;
  for (auto it = fs::recursive_directory_iterator(dir); it != fs::recursive_directory_iterator();
       ++it) {
    out[fs::relative(it->path(), dir).string()] =
        it->is_directory() && !it->is_symlink() ? "d" : ReadAll(it->path());
  }
  return out;
}

std::vector<std::string> Names(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename());
  std::sort(names.begin(), names.end());
  return names;
}

struct stat Stat(const fs::path& p) {
  struct stat st {};
  EXPECT_EQ(lstat(p.c_str(), &st), 0) << p;
  return st;
}

std::string BootId() {
  std::ifstream in("/proc/sys/kernel/random/boot_id");
  std::string id;
  std::getline(in, id);
  return id;
}

class LocalCloudTest : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = fs::temp_directory_path() /
            ("filesync-local-cloud-" + std::to_string(getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(base_);
    src_ = base_ / "src";
    root_ = base_ / "nas" / "cloud";
    fs::create_directories(src_);
    fs::create_directories(root_.parent_path());
  }
  void TearDown() override {
    for (auto m = mounts_.rbegin(); m != mounts_.rend(); ++m) umount2(m->c_str(), MNT_DETACH);
    fs::remove_all(base_);
  }

  // Mounts `what` at `where` (a tmpfs when `what` is empty); false (the test then skips) where
  // mounting is not allowed.
  bool Mount(const std::string& what, const fs::path& where) {
    const int r = what.empty() ? mount("tmpfs", where.c_str(), "tmpfs", 0, "size=64m")
                               : mount(what.c_str(), where.c_str(), nullptr, MS_BIND, nullptr);
    if (r != 0) return false;
    mounts_.push_back(where);
    return true;
  }
  void Unmount(const fs::path& where) {
    ASSERT_EQ(umount2(where.c_str(), 0), 0) << where << ": " << std::strerror(errno);
    std::erase(mounts_, where);
  }

  // An upload of src_/<relative> to `cloud_path`, below src_'s descriptor as the engine does it.
  cloud::UploadItem Item(const std::string& relative, const std::string& cloud_path) {
    src_fd_ = core::UniqueFd(open(src_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    struct stat st {};
    EXPECT_EQ(stat((src_ / relative).c_str(), &st), 0) << relative;
    return {.local_path = (src_ / relative).string(),
            .local_dir_fd = src_fd_.get(),
            .relative = relative,
            .cloud_path = cloud_path,
            .expected = core::IdentityOf(st),
            .mtime_ns = 0};
  }
  static Result<cloud::UploadedFile> Upload(LocalCloud& cloud, const cloud::UploadItem& item,
                                            const cloud::Transfer& transfer = {}) {
    return cloud.Upload(std::span(&item, 1), transfer).at(0);
  }
  fs::path OwnStaging(const LocalCloud& cloud) const {
    return root_ / LocalCloud::kStagingName / cloud.instance();
  }

  fs::path base_, src_, root_;
  core::UniqueFd src_fd_;
  std::vector<fs::path> mounts_;
};

TEST_F(LocalCloudTest, ADryRunCreatesAndCleansNothing) {
  LocalCloud fresh(root_);
  EXPECT_FALSE(fs::exists(root_)) << "construction made the folder";
  auto begun = fresh.BeginPass({.dry_run = true});
  ASSERT_TRUE(begun.ok()) << begun.status().ToString();
  EXPECT_EQ(*begun, "") << "nothing to record for a folder that does not exist";
  EXPECT_FALSE(fs::exists(root_)) << "a dry run made the folder";
  auto listed = fresh.List("/backup/docs", "");
  ASSERT_TRUE(listed.ok()) << listed.status().ToString();
  EXPECT_TRUE(listed->complete);
  EXPECT_TRUE(listed->changes.empty());

  // Leftovers a dry run must not clean: a dead instance's folder and an old stray file.
  const fs::path shared = root_ / LocalCloud::kStagingName;
  WriteAll(shared / (BootId() + ".1.deadbeef.host") / "0.part", "partial");
  WriteAll(shared / "12-3.part", "old");
  WriteAll(root_ / "backup" / "docs" / "a.txt", "a");
  const auto before = Snapshot(root_);
  LocalCloud plan(root_);
  begun = plan.BeginPass({.dry_run = true});
  ASSERT_TRUE(begun.ok()) << begun.status().ToString();
  EXPECT_NE(*begun, "");
  listed = plan.List("/backup/docs", "");
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(listed->changes.size(), 1u);
  EXPECT_EQ(Snapshot(root_), before) << "a dry run changed the cloud folder";
}

TEST_F(LocalCloudTest, TheFirstPassCreatesTheFolderNoLaterPassDoes) {
  std::string recorded;
  {
    LocalCloud first(root_);
    auto begun = first.BeginPass({});
    ASSERT_TRUE(begun.ok()) << begun.status().ToString();
    recorded = *begun;
    EXPECT_TRUE(fs::is_directory(root_));
    EXPECT_TRUE(fs::is_regular_file(root_ / LocalCloud::kStagingName / "cloud-id"));
  }
  fs::remove_all(root_);
  LocalCloud later(root_);
  for (const bool accept : {false, true}) {
    auto begun = later.BeginPass({.recorded = recorded, .accept_replaced = accept});
    ASSERT_FALSE(begun.ok()) << "accept_replaced " << accept;
    EXPECT_EQ(begun.status().kind(), Status::Kind::kNotFound);
    const std::string& message = begun.status().message();
    EXPECT_NE(message.find("local_cloud_dir " + root_.string() + " is missing"), std::string::npos)
        << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    EXPECT_FALSE(fs::exists(root_)) << "the folder was made again";
  }
  // A record of another folder (local_cloud_dir changed in the config) is a first pass again.
  auto other = later.BeginPass({.recorded = "local:00:1:2:/elsewhere"});
  ASSERT_TRUE(other.ok()) << other.status().ToString();
  EXPECT_TRUE(fs::is_directory(root_));
}

TEST_F(LocalCloudTest, AFolderMadeAgainIsRefusedUnlessAccepted) {
  std::string recorded;
  {
    LocalCloud first(root_);
    recorded = first.BeginPass({}).value();
  }
  fs::rename(root_, base_ / "nas" / "old");
  fs::create_directories(root_);
  LocalCloud later(root_);
  auto begun = later.BeginPass({.recorded = recorded});
  ASSERT_FALSE(begun.ok());
  EXPECT_EQ(begun.status().kind(), Status::Kind::kConflict);
  EXPECT_NE(begun.status().message().find("is not the folder synced before"), std::string::npos)
      << begun.status().message();
  EXPECT_NE(begun.status().message().find("--allow-mass-delete"), std::string::npos);
  EXPECT_TRUE(fs::is_empty(root_)) << "something was written into the new folder";
  begun = later.BeginPass({.recorded = recorded, .accept_replaced = true});
  ASSERT_TRUE(begun.ok()) << begun.status().ToString();
  EXPECT_NE(*begun, recorded);
  const std::string accepted = *begun;

  // The same folder that lost its marker (same device and inode) is still the same folder...
  fs::remove(root_ / LocalCloud::kStagingName / "cloud-id");
  LocalCloud again(root_);
  begun = again.BeginPass({.recorded = accepted});
  ASSERT_TRUE(begun.ok()) << begun.status().ToString();
  // ...and so is the same inode with the recorded marker on another device (a NAS remounted
  // with another device number)...
  const std::string marked = *begun;
  const std::string remounted = std::regex_replace(marked, std::regex("^(local:[0-9a-f]+:)[0-9]+:"),
                                                   "$01" + std::to_string(12345) + ":");
  ASSERT_NE(remounted, marked);
  begun = again.BeginPass({.recorded = remounted});
  ASSERT_TRUE(begun.ok()) << begun.status().ToString();
  EXPECT_EQ(*begun, marked) << "what is recorded next: the device as it is now";
  // ...but a copy carrying the marker is another folder.
  fs::rename(root_, base_ / "nas" / "moved");
  fs::create_directories(root_);
  fs::copy(base_ / "nas" / "moved", root_, fs::copy_options::recursive);
  LocalCloud copied(root_);
  begun = copied.BeginPass({.recorded = marked});
  ASSERT_FALSE(begun.ok());
  EXPECT_EQ(begun.status().kind(), Status::Kind::kConflict);
}

TEST_F(LocalCloudTest, ABareMountPointIsNeverWrittenInto) {
  // The "NAS": a tmpfs mounted elsewhere, bind-mounted at the cloud folder as a NAS would be.
  const fs::path nas = base_ / "nas-store";
  fs::create_directories(nas);
  fs::create_directories(root_);
  if (!Mount("", nas))
    GTEST_SKIP() << "cannot mount a tmpfs (needs root): " << std::strerror(errno);
  ASSERT_TRUE(Mount(nas.string(), root_));
  WriteAll(src_ / "a.txt", "alpha");
  std::string recorded;
  {
    LocalCloud first(root_);
    recorded = first.BeginPass({}).value();
    ASSERT_TRUE(Upload(first, Item("a.txt", "/docs/a.txt")).ok());
  }
  Unmount(root_);  // the NAS goes away: the bare mount point is an empty local folder
  ASSERT_TRUE(fs::is_empty(root_));
  {
    LocalCloud unmounted(root_);
    auto begun = unmounted.BeginPass({.recorded = recorded});
    ASSERT_FALSE(begun.ok());
    EXPECT_NE(begun.status().message().find("not the folder synced before"), std::string::npos)
        << begun.status().message();
    EXPECT_TRUE(fs::is_empty(root_)) << "written into the bare mount point";
    // An empty filesystem mounted there instead is not the NAS either.
    ASSERT_TRUE(Mount("", root_));
    EXPECT_FALSE(unmounted.BeginPass({.recorded = recorded}).ok());
    EXPECT_TRUE(fs::is_empty(root_));
    Unmount(root_);
  }
  ASSERT_TRUE(Mount(nas.string(), root_));  // back
  LocalCloud back(root_);
  auto begun = back.BeginPass({.recorded = recorded});
  ASSERT_TRUE(begun.ok()) << begun.status().ToString();
  EXPECT_EQ(ReadAll(root_ / "docs" / "a.txt"), "alpha");
}

// Instances sharing one cloud folder: a starting instance (or a dry run) never removes a live
// instance's staged copy; a dead instance's leftovers go (at once on this machine, after a day
// idle when it ran on another host).
TEST_F(LocalCloudTest, AnotherInstanceRemovesOnlyDeadInstancesStaging) {
  LocalCloud live(root_);
  ASSERT_TRUE(live.BeginPass({}).ok());
  WriteAll(OwnStaging(live) / "7.part", "in flight");
  const fs::path shared = root_ / LocalCloud::kStagingName;
  const std::string boot = BootId();
  const auto make = [&](const std::string& name) {
    WriteAll(shared / name / "owner", "");
    WriteAll(shared / name / "0.part", "left over");
    return shared / name;
  };
  const auto age = [](const fs::path& p) {
    const struct timespec old[2] = {{0, UTIME_OMIT}, {time(nullptr) - 2 * 86400, 0}};
    if (fs::is_directory(p)) {
      for (const auto& e : fs::recursive_directory_iterator(p))
        utimensat(AT_FDCWD, e.path().c_str(), old, AT_SYMLINK_NOFOLLOW);
    }
    utimensat(AT_FDCWD, p.c_str(), old, AT_SYMLINK_NOFOLLOW);
  };
  const fs::path dead_here = make(boot + ".11.aaaaaaaa.here");
  const fs::path recent_elsewhere = make("0000-other-boot.12.bbbbbbbb.there");
  const fs::path idle_elsewhere = make("0000-other-boot.13.cccccccc.there");
  age(idle_elsewhere);
  const fs::path locked_elsewhere = make("0000-other-boot.14.dddddddd.there");
  age(locked_elsewhere);
  const core::UniqueFd held(open((locked_elsewhere / "owner").c_str(), O_RDWR | O_CLOEXEC));
  ASSERT_EQ(flock(held.get(), LOCK_EX | LOCK_NB), 0);
  WriteAll(shared / "99-1.part", "stray, recent");
  WriteAll(shared / "98-1.part", "stray, old");
  age(shared / "98-1.part");

  LocalCloud plan(root_);
  const auto before = Snapshot(root_);
  ASSERT_TRUE(plan.BeginPass({.dry_run = true}).ok());
  EXPECT_EQ(Snapshot(root_), before) << "a dry run cleaned staging";

  LocalCloud other(root_);
  ASSERT_TRUE(other.BeginPass({}).ok());
  EXPECT_EQ(ReadAll(OwnStaging(live) / "7.part"), "in flight") << "a live instance's copy went";
  EXPECT_FALSE(fs::exists(dead_here)) << "a dead instance of this machine was kept";
  EXPECT_TRUE(fs::exists(recent_elsewhere / "0.part"));
  EXPECT_FALSE(fs::exists(idle_elsewhere));
  EXPECT_TRUE(fs::exists(locked_elsewhere / "0.part")) << "its owner holds the lock";
  EXPECT_TRUE(fs::exists(shared / "99-1.part"));
  EXPECT_FALSE(fs::exists(shared / "98-1.part"));
  // The live instance's next pass clears its own leftovers and keeps its folder.
  ASSERT_TRUE(live.BeginPass({}).ok());
  EXPECT_EQ(Names(OwnStaging(live)), std::vector<std::string>{"owner"});
}

TEST_F(LocalCloudTest, AnInstanceRemovesItsStagingWhenItEnds) {
  fs::path own;
  {
    LocalCloud cloud(root_);
    ASSERT_TRUE(cloud.BeginPass({}).ok());
    own = OwnStaging(cloud);
    EXPECT_TRUE(fs::is_directory(own));
  }
  EXPECT_FALSE(fs::exists(own));
  EXPECT_EQ(Names(root_ / LocalCloud::kStagingName), std::vector<std::string>{"cloud-id"});
}

// A lost state store makes the engine upload files the cloud already holds: nothing is copied.
TEST_F(LocalCloudTest, BytesAlreadyInTheCloudAreNotCopiedAgain) {
  const std::string content = RandomBytes(8 << 20, 1);
  WriteAll(src_ / "big.bin", content);
  const fs::path dest = root_ / "m" / "big.bin";
  {
    LocalCloud first(root_);
    ASSERT_TRUE(first.BeginPass({}).ok());
    auto sent = Upload(first, Item("big.bin", "/m/big.bin"));
    ASSERT_TRUE(sent.ok()) << sent.status().ToString();
    EXPECT_EQ(sent->bytes_transferred, content.size());
  }
  const ino_t inode = Stat(dest).st_ino;
  const struct timespec other_time[2] = {{0, UTIME_OMIT}, {1000000, 0}};
  ASSERT_EQ(utimensat(AT_FDCWD, dest.c_str(), other_time, 0), 0);
  LocalCloud again(root_);
  ASSERT_TRUE(again.BeginPass({}).ok());
  std::atomic<std::uint64_t> progressed{0};
  auto kept = Upload(again, Item("big.bin", "/m/big.bin"),
                     {.progress = [&](std::uint64_t n) { progressed += n; }});
  ASSERT_TRUE(kept.ok()) << kept.status().ToString();
  EXPECT_EQ(kept->bytes_transferred, 0u);
  EXPECT_EQ(kept->digest, hash::HashBytes(content));
  EXPECT_EQ(kept->entry.size, content.size());
  EXPECT_EQ(Stat(dest).st_ino, inode) << "the file was copied again";
  EXPECT_EQ(Stat(dest).st_mtim.tv_sec, Stat(src_ / "big.bin").st_mtim.tv_sec) << "mtime in line";
  EXPECT_EQ(progressed.load(), content.size());

  // The engine knows the cloud holds other bytes: no comparison, a copy.
  auto item = Item("big.bin", "/m/big.bin");
  item.cloud_differs = true;
  auto copied = Upload(again, item);
  ASSERT_TRUE(copied.ok());
  EXPECT_EQ(copied->bytes_transferred, content.size());
  EXPECT_NE(Stat(dest).st_ino, inode);

  // Same size, other bytes (the last one): copied, and right.
  std::string edited = content;
  edited.back() = static_cast<char>(edited.back() ^ 1);
  WriteAll(src_ / "big.bin", edited);
  copied = Upload(again, Item("big.bin", "/m/big.bin"));
  ASSERT_TRUE(copied.ok());
  EXPECT_EQ(copied->bytes_transferred, edited.size());
  EXPECT_EQ(copied->digest, hash::HashBytes(edited));
  EXPECT_EQ(ReadAll(dest), edited);
}

TEST_F(LocalCloudTest, SparseFilesKeepTheirHoles) {
  constexpr off_t kSize = 256 << 20;
  const fs::path file = src_ / "sparse.img";
  {
    const core::UniqueFd fd(open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    ASSERT_GE(fd.get(), 0);
    ASSERT_EQ(ftruncate(fd.get(), kSize), 0);
    const std::string data = RandomBytes(1 << 20, 2);
    for (const off_t at : {off_t{0}, off_t{100} << 20, kSize - (1 << 20)})
      ASSERT_EQ(pwrite(fd.get(), data.data(), data.size(), at), static_cast<ssize_t>(data.size()));
  }
  const struct stat source = Stat(file);
  if (source.st_blocks * 512 > kSize / 2) GTEST_SKIP() << "this filesystem stores no holes";
  LocalCloud cloud(root_);
  ASSERT_TRUE(cloud.BeginPass({}).ok());
  auto sent = Upload(cloud, Item("sparse.img", "/m/sparse.img"));
  ASSERT_TRUE(sent.ok()) << sent.status().ToString();
  const fs::path dest = root_ / "m" / "sparse.img";
  const struct stat stored = Stat(dest);
  EXPECT_EQ(stored.st_size, kSize);
  // Close to the source's blocks (a filesystem may round extents), far below the full size.
  EXPECT_LE(stored.st_blocks, source.st_blocks + 2048) << "holes were filled";
  EXPECT_EQ(sent->bytes_transferred, 3u << 20);
  auto hashed = hash::HashFile(file.string());
  ASSERT_TRUE(hashed.ok());
  EXPECT_EQ(sent->digest, hashed->digest);
  auto stored_hash = hash::HashFile(dest.string());
  ASSERT_TRUE(stored_hash.ok());
  EXPECT_EQ(stored_hash->digest, hashed->digest);
}

TEST_F(LocalCloudTest, ModesAreKeptWhateverTheUmask) {
  const mode_t old_umask = umask(077);
  WriteAll(src_ / "private" / "shared" / "f.txt", "f");
  WriteAll(src_ / "private" / "setuid", "s");
  fs::create_directories(src_ / "empty");
  chmod(src_.c_str(), 0751);
  chmod((src_ / "private").c_str(), 0700);
  chmod((src_ / "private" / "shared").c_str(), 01750);
  chmod((src_ / "private" / "shared" / "f.txt").c_str(), 0666);
  chmod((src_ / "private" / "setuid").c_str(), 04755);
  chmod((src_ / "empty").c_str(), 0711);
  LocalCloud cloud(root_);
  ASSERT_TRUE(cloud.BeginPass({}).ok());
  ASSERT_TRUE(Upload(cloud, Item("private/shared/f.txt", "/backup/m/private/shared/f.txt")).ok());
  ASSERT_TRUE(Upload(cloud, Item("private/setuid", "/backup/m/private/setuid")).ok());
  ASSERT_TRUE(
      cloud
          .CreateFolderFrom(
              {.local_dir_fd = src_fd_.get(), .relative = "empty", .cloud_path = "/backup/m/empty"})
          .ok());
  ASSERT_TRUE(cloud.CreateFolder("/other").ok());
  umask(old_umask);
  const auto mode = [&](const std::string& p) { return Stat(root_ / p).st_mode & 07777; };
  EXPECT_EQ(mode("backup/m"), 0751u) << "the mirror folder has the sync dir's mode";
  EXPECT_EQ(mode("backup/m/private"), 0700u);
  EXPECT_EQ(mode("backup/m/private/shared"), 01750u);
  EXPECT_EQ(mode("backup/m/private/shared/f.txt"), 0666u);
  EXPECT_EQ(mode("backup/m/private/setuid"), 0755u) << "setuid is dropped";
  EXPECT_EQ(mode("backup/m/empty"), 0711u);
  EXPECT_EQ(mode("other"), 0700u) << "no local folder: the default mode (umask 077)";
}

TEST_F(LocalCloudTest, AStopLeavesNothingBehind) {
  WriteAll(src_ / "big.bin", RandomBytes(32 << 20, 3));
  LocalCloud cloud(root_);
  ASSERT_TRUE(cloud.BeginPass({}).ok());
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> progressed{0};
  auto sent = Upload(cloud, Item("big.bin", "/m/big.bin"),
                     {.progress =
                          [&](std::uint64_t n) {
                            progressed += n;
                            stop = true;
                          },
                      .cancel = &stop});
  ASSERT_FALSE(sent.ok());
  EXPECT_EQ(sent.status().kind(), Status::Kind::kCancelled) << sent.status().ToString();
  EXPECT_LE(progressed.load(), 1u << 20) << "the copy went on after the stop";
  EXPECT_FALSE(fs::exists(root_ / "m" / "big.bin"));
  EXPECT_EQ(Names(OwnStaging(cloud)), std::vector<std::string>{"owner"});
}

}  // namespace
}  // namespace filesync
