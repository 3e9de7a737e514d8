#include "core/folder_identity.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace filesync::core {
namespace {

std::vector<std::string_view> Fields(std::string_view id) {
  std::vector<std::string_view> out;
  for (std::size_t start = 0;;) {
    const std::size_t colon = id.find(':', start);
    out.push_back(id.substr(start, colon - start));
    if (colon == std::string_view::npos) return out;
    start = colon + 1;
  }
}

}  // namespace

Result<std::string> FolderIdentity(int fd) {
  struct statx stx {};
  if (statx(fd, "", AT_EMPTY_PATH, STATX_INO | STATX_BTIME, &stx) != 0)
    return Status::Io(std::string("cannot stat a folder: ") + std::strerror(errno));
  const unsigned long long device = makedev(stx.stx_dev_major, stx.stx_dev_minor);
  std::string id = std::to_string(device) + ":" + std::to_string(stx.stx_ino);
  if ((stx.stx_mask & STATX_BTIME) != 0) {
    const long long born = static_cast<long long>(stx.stx_btime.tv_sec) * 1'000'000'000LL +
                           static_cast<long long>(stx.stx_btime.tv_nsec);
    id += ":" + std::to_string(born);
  }
  return id;
}

bool SameFolder(std::string_view a, std::string_view b) {
  const auto fa = Fields(a);
  const auto fb = Fields(b);
  if (fa.size() < 2 || fb.size() < 2) return a == b;
  if (fa[0] != fb[0] || fa[1] != fb[1]) return false;
  return fa.size() < 3 || fb.size() < 3 || fa[2] == fb[2];
}

}  // namespace filesync::core
