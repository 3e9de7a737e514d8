// Helpers every backend uses to read local files safely: an owning descriptor and the
// FileIdentity of a stat result (what "unchanged" means for a file that is read for upload).
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include "cloud/cloud.h"

namespace filesync::cloud {

FileIdentity IdentityOf(const struct stat& st);

// Owns a file descriptor; closes it when destroyed. Not copyable.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  [[nodiscard]] int get() const { return fd_; }

 private:
  int fd_;
};

}  // namespace filesync::cloud
