#include "cloud/local_file.h"

namespace filesync::cloud {

FileIdentity IdentityOf(const struct stat& st) {
  return {
      .size = static_cast<std::uint64_t>(st.st_size),
      .mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec,
      .ctime_ns = static_cast<std::int64_t>(st.st_ctim.tv_sec) * 1'000'000'000 + st.st_ctim.tv_nsec,
      .inode = static_cast<std::uint64_t>(st.st_ino),
      .device = static_cast<std::uint64_t>(st.st_dev)};
}

}  // namespace filesync::cloud
