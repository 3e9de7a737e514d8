#include "core/entry.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

namespace filesync::core {
namespace {

FileIdentity Sample() {
  return {.size = 10, .mtime_ns = 20, .ctime_ns = 30, .inode = 40, .device = 50};
}

TEST(Entry, IdentityOfTakesEveryFieldFromTheStat) {
  const std::string path = ::testing::TempDir() + "entry_test_file";
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, "12345", 5), 5);
  const struct timespec times[2] = {{0, UTIME_OMIT}, {1'700'000'000, 123'456'789}};
  ASSERT_EQ(futimens(fd, times), 0);
  struct stat st {};
  ASSERT_EQ(fstat(fd, &st), 0);
  close(fd);
  unlink(path.c_str());
  const FileIdentity id = IdentityOf(st);
  EXPECT_EQ(id.size, 5U);
  EXPECT_EQ(id.mtime_ns, 1'700'000'000'123'456'789);
  EXPECT_EQ(id.ctime_ns,
            static_cast<std::int64_t>(st.st_ctim.tv_sec) * 1'000'000'000 + st.st_ctim.tv_nsec);
  EXPECT_EQ(id.inode, static_cast<std::uint64_t>(st.st_ino));
  EXPECT_EQ(id.device, static_cast<std::uint64_t>(st.st_dev));
}

TEST(Entry, SameContentIgnoresOnlyTheDevice) {
  FileIdentity remounted = Sample();
  remounted.device += 7;  // a NAS share mounted again
  EXPECT_TRUE(SameContent(Sample(), remounted));
  EXPECT_FALSE(Sample() == remounted);  // but the stored record is out of date
}

TEST(Entry, SameContentSeesEveryOtherField) {
  const auto changes = {
      +[](FileIdentity& i) { i.size += 1; }, +[](FileIdentity& i) { i.mtime_ns += 1; },
      +[](FileIdentity& i) { i.ctime_ns += 1; }, +[](FileIdentity& i) { i.inode += 1; }};
  for (const auto change : changes) {
    FileIdentity other = Sample();
    change(other);
    EXPECT_FALSE(SameContent(Sample(), other));
    EXPECT_FALSE(SameContent(other, Sample()));
  }
}

}  // namespace
}  // namespace filesync::core
