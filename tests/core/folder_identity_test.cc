#include "core/folder_identity.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <string>

#include "core/unique_fd.h"

namespace filesync::core {
namespace {

namespace fs = std::filesystem;

std::string IdentityAt(const fs::path& dir) {
  UniqueFd fd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  EXPECT_GE(fd.get(), 0) << dir;
  auto id = FolderIdentity(fd.get());
  EXPECT_TRUE(id.ok()) << id.status().ToString();
  return id.ok() ? *id : "";
}

TEST(FolderIdentityTest, AFolderKeepsItsIdentity) {
  const fs::path dir = fs::path(testing::TempDir()) / "folder-identity-same";
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string before = IdentityAt(dir);
  fs::create_directories(dir / "child");  // writing into it changes its times, not its identity
  EXPECT_TRUE(SameFolder(before, IdentityAt(dir)));
  fs::remove_all(dir);
}

// The bug this exists for: ext4 hands a folder made again right after `rm -r` the same inode
// number, so device and inode alone took it for the folder synced before.
TEST(FolderIdentityTest, AFolderMadeAgainIsAnotherFolderEvenWithTheSameInode) {
  const fs::path dir = fs::path(testing::TempDir()) / "folder-identity-again";
  int same_inode = 0;
  for (int i = 0; i < 50; ++i) {
    fs::remove_all(dir);
    fs::create_directories(dir);
    const std::string before = IdentityAt(dir);
    fs::remove_all(dir);
    fs::create_directories(dir);
    const std::string after = IdentityAt(dir);
    if (before.substr(0, before.rfind(':')) == after.substr(0, after.rfind(':'))) ++same_inode;
    if (std::count(before.begin(), before.end(), ':') < 2) {
      fs::remove_all(dir);
      GTEST_SKIP() << "this filesystem keeps no birth time; the inode must do here";
    }
    EXPECT_FALSE(SameFolder(before, after)) << before << " vs " << after;
  }
  fs::remove_all(dir);
  RecordProperty("same_inode_reused", same_inode);
}

TEST(FolderIdentityTest, IdentitiesRecordedWithoutABirthTimeStillMatch) {
  EXPECT_TRUE(SameFolder("2049:1234", "2049:1234:1700000000000000000"));
  EXPECT_TRUE(SameFolder("2049:1234:1700000000000000000", "2049:1234"));
  EXPECT_FALSE(SameFolder("2049:1234", "2049:1235:1700000000000000000"));
  EXPECT_FALSE(SameFolder("2049:1234", "2050:1234"));
  EXPECT_FALSE(SameFolder("2049:1234:1", "2049:1234:2"));
  EXPECT_FALSE(SameFolder("", "2049:1234"));
  EXPECT_TRUE(SameFolder("", ""));
}

}  // namespace
}  // namespace filesync::core
