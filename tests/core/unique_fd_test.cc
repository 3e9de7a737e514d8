#include "core/unique_fd.h"

#include <fcntl.h>
#include <gtest/gtest.h>

#include <cerrno>
#include <utility>

namespace filesync::core {
namespace {

bool IsOpen(int fd) { return fcntl(fd, F_GETFD) != -1; }

int OpenDevNull() { return open("/dev/null", O_RDONLY | O_CLOEXEC); }

TEST(UniqueFd, HoldsNothingByDefault) {
  const UniqueFd fd;
  EXPECT_FALSE(fd.valid());
  EXPECT_EQ(fd.get(), -1);
}

TEST(UniqueFd, ClosesWhenDestroyed) {
  int raw = -1;
  {
    const UniqueFd fd(OpenDevNull());
    raw = fd.get();
    ASSERT_TRUE(fd.valid());
    EXPECT_TRUE(IsOpen(raw));
  }
  EXPECT_FALSE(IsOpen(raw));
}

TEST(UniqueFd, MovingHandsTheDescriptorOver) {
  UniqueFd a(OpenDevNull());
  const int raw = a.get();
  UniqueFd b(std::move(a));
  EXPECT_FALSE(a.valid());  // NOLINT(bugprone-use-after-move): the moved-from state is the test
  EXPECT_EQ(b.get(), raw);
  EXPECT_TRUE(IsOpen(raw));
}

TEST(UniqueFd, AssigningClosesTheOldDescriptorAtOnce) {
  UniqueFd a(OpenDevNull());
  const int old = a.get();
  UniqueFd b(OpenDevNull());
  const int kept = b.get();
  a = std::move(b);
  EXPECT_FALSE(IsOpen(old));
  EXPECT_EQ(a.get(), kept);
  EXPECT_TRUE(IsOpen(kept));
  a.Reset();
  EXPECT_FALSE(IsOpen(kept));
}

TEST(UniqueFd, ReleaseGivesTheDescriptorUpOpen) {
  int raw = -1;
  {
    UniqueFd fd(OpenDevNull());
    raw = fd.Release();
    EXPECT_FALSE(fd.valid());
  }
  EXPECT_TRUE(IsOpen(raw));
  close(raw);
}

TEST(UniqueFd, ClosingLeavesErrnoAlone) {
  {
    const UniqueFd fd(OpenDevNull());
    ASSERT_TRUE(fd.valid());
    errno = ENOENT;  // as left by a failed call the caller still has to report
  }
  EXPECT_EQ(errno, ENOENT);
}

}  // namespace
}  // namespace filesync::core
