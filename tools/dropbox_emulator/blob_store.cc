// Temporary names come from a process-wide counter plus the pid, so concurrent uploads never
// collide and leftovers of a killed process are recognisable.
#include "dropbox_emulator/blob_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>

namespace filesync::emulator {

TempFileWriter::TempFileWriter(const std::string& path, std::uint64_t max_bytes)
    : path_(path), max_bytes_(max_bytes) {
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
}

TempFileWriter::~TempFileWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!released_) ::unlink(path_.c_str());
}

bool TempFileWriter::Write(const char* data, std::size_t len) {
  if (fd_ < 0 || failed_) return false;
  std::size_t keep = len;
  if (total_ + len > max_bytes_)
    keep = total_ >= max_bytes_ ? 0 : static_cast<std::size_t>(max_bytes_ - total_);
  total_ += len;
  if (keep == 0) return true;
  hasher_.Update(std::string_view(data, keep));
  std::size_t done = 0;
  while (done < keep) {
    const ssize_t n = ::write(fd_, data + done, keep - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      failed_ = true;
      return false;
    }
    done += static_cast<std::size_t>(n);
  }
  return true;
}

std::string TempFileWriter::Finish() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  return hash::ToHex(hasher_.Finish());
}

BlobStore::BlobStore(const std::string& dir) : blobs_(dir + "/blobs"), tmp_(dir + "/tmp") {
  std::filesystem::create_directories(blobs_);
  std::filesystem::create_directories(tmp_);
}

std::string BlobStore::NewTempPath() {
  static std::atomic<std::uint64_t> counter{0};
  return tmp_ + "/" + std::to_string(::getpid()) + "-" + std::to_string(counter.fetch_add(1));
}

std::string BlobStore::PathFor(const std::string& hex) const {
  return blobs_ + "/" + hex.substr(0, 2) + "/" + hex;
}

Status BlobStore::AdoptByRename(const std::string& path, const std::string& hex) {
  const std::string target = PathFor(hex);
  std::error_code ec;
  std::filesystem::create_directories(blobs_ + "/" + hex.substr(0, 2), ec);
  if (::access(target.c_str(), F_OK) == 0) {
    ::unlink(path.c_str());
    return Status::Ok();
  }
  if (::rename(path.c_str(), target.c_str()) != 0) {
    return Status::Io("rename into blob store: " + std::string(std::strerror(errno)));
  }
  return Status::Ok();
}

Status BlobStore::AdoptByLink(const std::string& path, const std::string& hex) {
  const std::string target = PathFor(hex);
  std::error_code ec;
  std::filesystem::create_directories(blobs_ + "/" + hex.substr(0, 2), ec);
  if (::access(target.c_str(), F_OK) == 0) return Status::Ok();
  if (::link(path.c_str(), target.c_str()) != 0 && errno != EEXIST) {
    return Status::Io("link into blob store: " + std::string(std::strerror(errno)));
  }
  return Status::Ok();
}

}  // namespace filesync::emulator
