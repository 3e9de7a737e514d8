// Content-addressed file storage for the emulator: DIR/blobs/<first 2 hex>/<content hash>.
// File bytes never sit in memory as a whole: uploads are written to DIR/tmp through a
// TempFileWriter (which hashes as it writes) and then adopted under their content hash.
// Blobs are immutable and never deleted (the emulator keeps no reference counts).
//
// Thread-safe: adoption is an atomic rename/link; two writers of the same content race
// harmlessly because both produce identical files.
#pragma once

#include <cstdint>
#include <string>

#include "hash/content_hash.h"
#include "util/status.h"

namespace filesync::emulator {

// Streams bytes into a new temporary file, computing the Dropbox content hash as it goes.
// Bytes past `max_bytes` are counted but not stored (so an over-size request can be drained
// and refused). Not thread-safe. The destructor removes the file unless it was released.
class TempFileWriter {
 public:
  TempFileWriter(const std::string& path, std::uint64_t max_bytes);
  ~TempFileWriter();
  TempFileWriter(const TempFileWriter&) = delete;
  TempFileWriter& operator=(const TempFileWriter&) = delete;

  [[nodiscard]] bool ok() const { return fd_ >= 0 && !failed_; }
  bool Write(const char* data, std::size_t len);
  [[nodiscard]] std::uint64_t size() const { return total_; }
  [[nodiscard]] bool overflowed() const { return total_ > max_bytes_; }
  // Closes the file and returns the hash of the stored bytes (hex).
  std::string Finish();
  [[nodiscard]] const std::string& path() const { return path_; }
  // The caller now owns the file (it was moved elsewhere).
  void Release() { released_ = true; }

 private:
  std::string path_;
  std::uint64_t max_bytes_;
  int fd_ = -1;
  bool failed_ = false;
  bool released_ = false;
  std::uint64_t total_ = 0;
  hash::ContentHasher hasher_;
};

class BlobStore {
 public:
  // Creates DIR/blobs and DIR/tmp if needed.
  explicit BlobStore(const std::string& dir);

  // A fresh unique path under DIR/tmp.
  std::string NewTempPath();
  // Moves `path` into the store as blob `hex` (kept as is if the blob already exists).
  Status AdoptByRename(const std::string& path, const std::string& hex);
  // Hard-links `path` into the store as blob `hex`; `path` stays where it is.
  Status AdoptByLink(const std::string& path, const std::string& hex);
  [[nodiscard]] std::string PathFor(const std::string& hex) const;

 private:
  std::string blobs_;
  std::string tmp_;
};

}  // namespace filesync::emulator
