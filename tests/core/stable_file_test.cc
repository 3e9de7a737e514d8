#include "core/stable_file.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace filesync::core {
namespace {

namespace fs = std::filesystem;

class StableFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "stable_file_test_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    root_ = tmpl;
    fs::create_directories(root_ / "sync/d");
    fs::create_directories(root_ / "outside/d");
    Write("sync/d/f", "inside");
    Write("outside/d/f", "secret");
    dir_ = UniqueFd(open((root_ / "sync").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    ASSERT_TRUE(dir_.valid());
  }
  void TearDown() override { fs::remove_all(root_); }

  void Write(const std::string& relative, const std::string& text) {
    std::ofstream(root_ / relative, std::ios::binary | std::ios::trunc) << text;
  }
  FileIdentity Identity(const std::string& relative) {
    struct stat st {};
    EXPECT_EQ(lstat((root_ / relative).c_str(), &st), 0) << relative;
    return IdentityOf(st);
  }
  Result<StableFile> Open(const std::string& relative, const FileIdentity& expected) {
    return StableFile::Open(dir_.get(), relative, (root_ / "sync" / relative).string(), expected);
  }
  static std::string ReadAll(int fd) {
    std::string out(64, '\0');
    const ssize_t n = pread(fd, out.data(), out.size(), 0);
    out.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
    return out;
  }

  fs::path root_;
  UniqueFd dir_;
};

TEST_F(StableFileTest, ReadsTheFileTheScanSaw) {
  auto file = Open("d/f", Identity("sync/d/f"));
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  EXPECT_EQ(ReadAll(file->fd()), "inside");
  EXPECT_TRUE(SameContent(file->identity(), Identity("sync/d/f")));
  EXPECT_TRUE(S_ISREG(file->stat_at_open().st_mode));
  EXPECT_TRUE(file->CheckUnchanged("read").ok());
}

TEST_F(StableFileTest, AFileChangedMidReadIsChanged) {
  auto file = Open("d/f", Identity("sync/d/f"));
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  EXPECT_EQ(ReadAll(file->fd()), "inside");
  std::ofstream(root_ / "sync/d/f", std::ios::app) << " and more";  // while it is being read
  const Status s = file->CheckUnchanged("read");
  EXPECT_EQ(s.kind(), Status::Kind::kChanged) << s.ToString();
  EXPECT_NE(s.message().find("d/f changed while it was read"), std::string::npos) << s.message();
}

TEST_F(StableFileTest, AFileChangedSinceTheScanIsChanged) {
  const FileIdentity scanned = Identity("sync/d/f");
  Write("sync/d/f", "edited");  // same size, newer mtime and ctime
  auto file = Open("d/f", scanned);
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().kind(), Status::Kind::kChanged) << file.status().ToString();
}

TEST_F(StableFileTest, ADeviceNumberAloneIsNoChange) {
  FileIdentity remounted = Identity("sync/d/f");
  remounted.device += 1;
  EXPECT_TRUE(Open("d/f", remounted).ok());
}

TEST_F(StableFileTest, ASymlinkSwappedInForTheFileIsNotFollowed) {
  const FileIdentity scanned = Identity("outside/d/f");  // the identity the link leads to
  fs::remove(root_ / "sync/d/f");
  fs::create_symlink(root_ / "outside/d/f", root_ / "sync/d/f");
  auto file = Open("d/f", scanned);
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().kind(), Status::Kind::kChanged) << file.status().ToString();
}

TEST_F(StableFileTest, ASymlinkSwappedInForAFolderIsNotFollowed) {
  const FileIdentity scanned = Identity("outside/d/f");
  fs::remove_all(root_ / "sync/d");
  fs::create_directory_symlink(root_ / "outside/d", root_ / "sync/d");
  auto file = Open("d/f", scanned);
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().kind(), Status::Kind::kChanged) << file.status().ToString();
}

TEST_F(StableFileTest, PathsLeavingTheDirAreRefused) {
  for (const std::string relative : {"../outside/d/f", "d/../../outside/d/f", "/etc/passwd", ""}) {
    auto file = Open(relative, Identity("outside/d/f"));
    ASSERT_FALSE(file.ok()) << relative;
    EXPECT_EQ(file.status().kind(), Status::Kind::kChanged) << relative;
  }
}

TEST_F(StableFileTest, AFolderWhereTheFileWasIsChanged) {
  const FileIdentity scanned = Identity("sync/d/f");
  fs::remove(root_ / "sync/d/f");
  fs::create_directory(root_ / "sync/d/f");
  auto file = Open("d/f", scanned);
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().kind(), Status::Kind::kChanged);
}

TEST_F(StableFileTest, AVanishedFileIsChanged) {
  const FileIdentity scanned = Identity("sync/d/f");
  fs::remove(root_ / "sync/d/f");
  auto file = Open("d/f", scanned);
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().kind(), Status::Kind::kChanged);
}

TEST_F(StableFileTest, AnUnreadableFileIsAnIoError) {
  if (geteuid() == 0) GTEST_SKIP() << "root reads a file of mode 000 anyway";
  fs::permissions(root_ / "sync/d/f", fs::perms::none);
  auto file = Open("d/f", Identity("sync/d/f"));
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().kind(), Status::Kind::kIo) << file.status().ToString();
}

TEST_F(StableFileTest, WithoutADirTheShownPathIsOpenedButNotALinkAtItsEnd) {
  const std::string path = (root_ / "sync/d/f").string();
  auto file = StableFile::Open(-1, "", path, Identity("sync/d/f"));
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  EXPECT_EQ(ReadAll(file->fd()), "inside");
  fs::create_symlink(root_ / "outside/d/f", root_ / "sync/link");
  auto link = StableFile::Open(-1, "", (root_ / "sync/link").string(), Identity("outside/d/f"));
  ASSERT_FALSE(link.ok());
  EXPECT_EQ(link.status().kind(), Status::Kind::kChanged);
}

// OpenBeneath, and the walk it falls back to on kernels without openat2, keep the same promises.
class OpenBeneathTest : public StableFileTest,
                        public ::testing::WithParamInterface<decltype(&OpenBeneath)> {};

// The errno of a failed open, or 0 when it opened something.
int OpenError(decltype(&OpenBeneath) open_beneath, int dir, const std::string& relative,
              int flags) {
  const UniqueFd fd = open_beneath(dir, relative, flags);
  return fd.valid() ? 0 : errno;
}

TEST_P(OpenBeneathTest, OpensBelowTheDirAndNowhereElse) {
  const auto open_beneath = GetParam();
  UniqueFd fd = open_beneath(dir_.get(), "d/f", O_RDONLY);
  ASSERT_TRUE(fd.valid()) << std::strerror(errno);
  EXPECT_EQ(ReadAll(fd.get()), "inside");
  EXPECT_EQ(OpenError(open_beneath, dir_.get(), "d", O_RDONLY | O_DIRECTORY), 0);
  EXPECT_EQ(OpenError(open_beneath, dir_.get(), "d/missing", O_RDONLY), ENOENT);
  for (const std::string escape : {"../outside/d/f", "d/../../outside/d/f", "/etc/passwd"})
    EXPECT_EQ(OpenError(open_beneath, dir_.get(), escape, O_RDONLY), EXDEV) << escape;
}

TEST_P(OpenBeneathTest, FollowsNoSymlinkOnTheWayOrAtTheEnd) {
  const auto open_beneath = GetParam();
  fs::create_directory_symlink(root_ / "outside/d", root_ / "sync/linked");
  fs::create_symlink(root_ / "outside/d/f", root_ / "sync/d/link");
  const int on_the_way = OpenError(open_beneath, dir_.get(), "linked/f", O_RDONLY);
  EXPECT_TRUE(on_the_way == ELOOP || on_the_way == ENOTDIR) << std::strerror(on_the_way);
  EXPECT_EQ(OpenError(open_beneath, dir_.get(), "d/link", O_RDONLY), ELOOP);
}

INSTANTIATE_TEST_SUITE_P(Both, OpenBeneathTest,
                         ::testing::Values(&OpenBeneath, &OpenBeneathWalking),
                         [](const auto& param) {
                           return std::string(param.index == 0 ? "Openat2" : "Walking");
                         });

TEST_F(StableFileTest, WalkFoldersLetsTheCallerMakeMissingFolders) {
  std::vector<std::string> prefixes;
  UniqueFd made = WalkFolders(
      dir_.get(), "d/x/y", [&](int parent, const std::string& name, std::string_view prefix) {
        prefixes.emplace_back(prefix);
        if (mkdirat(parent, name.c_str(), 0700) != 0 && errno != EEXIST) return -1;
        return openat(parent, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      });
  ASSERT_TRUE(made.valid()) << std::strerror(errno);
  EXPECT_EQ(prefixes, (std::vector<std::string>{"d", "d/x", "d/x/y"}));
  EXPECT_TRUE(fs::is_directory(root_ / "sync/d/x/y"));
  struct stat via_fd {
  }, via_path{};
  ASSERT_EQ(fstat(made.get(), &via_fd), 0);
  ASSERT_EQ(stat((root_ / "sync/d/x/y").c_str(), &via_path), 0);
  EXPECT_EQ(via_fd.st_ino, via_path.st_ino);
}

TEST_F(StableFileTest, WalkFoldersStopsWhereAStepFails) {
  int steps = 0;
  const UniqueFd none = WalkFolders(
      dir_.get(), "d/missing/deeper", [&](int parent, const std::string& name, std::string_view) {
        ++steps;
        return openat(parent, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
      });
  EXPECT_FALSE(none.valid());
  EXPECT_EQ(errno, ENOENT);
  EXPECT_EQ(steps, 2);
}

}  // namespace
}  // namespace filesync::core
