// UniqueFd: the owner of one file descriptor, closed when the owner is destroyed or given another
// one. Movable, not copyable; -1 means none. Closing leaves errno alone, so the errno of a call
// that failed is still there after the owners of the descriptors around it are gone. A
// descriptor several owners share (the scanner's parent folders) is a std::shared_ptr<UniqueFd>.
// Thread safety: like any value; the descriptor itself may be used from any thread.
#pragma once

#include <unistd.h>

#include <cerrno>
#include <utility>

namespace filesync::core {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) noexcept : fd_(fd) {}
  ~UniqueFd() { Reset(); }
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.Release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) Reset(other.Release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  [[nodiscard]] int get() const { return fd_; }
  [[nodiscard]] bool valid() const { return fd_ >= 0; }
  // Gives the descriptor up without closing it.
  [[nodiscard]] int Release() { return std::exchange(fd_, -1); }
  // Closes the descriptor held, if any, and takes `fd`.
  void Reset(int fd = -1) {
    if (fd_ >= 0) {
      const int saved = errno;
      close(fd_);
      errno = saved;
    }
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

}  // namespace filesync::core
