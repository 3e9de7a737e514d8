// The Dropbox content hash (see shared reference §12), computed with OpenSSL's SHA-256
// (which uses SHA-NI / AVX2 code paths where the CPU has them).
//
// The rule, by example: a 9 MiB file is split into blocks of 4 MiB, 4 MiB and 1 MiB; each
// block is hashed with SHA-256 to 32 raw bytes; the three digests are concatenated (96 bytes)
// and hashed again; the result is printed as 64 lowercase hex digits. An empty file has no
// blocks, so its hash is SHA-256("") = e3b0c442...b855. A 5-byte file "hello" hashes to
// SHA-256(SHA-256("hello")), not to SHA-256("hello").
//
// ContentHasher is a streaming accumulator: the result does not depend on how input is sliced.
// Not thread-safe; use one per thread. The free functions below are thread-safe.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace filesync::hash {

inline constexpr std::size_t kBlockSize = 4 * 1024 * 1024;

// 32 raw bytes of a content hash; compact enough to keep one per tracked file in memory.
using Digest = std::array<std::uint8_t, 32>;

std::string ToHex(const Digest& digest);
// Parses 64 hex digits (either case). Returns false on anything else.
bool FromHex(std::string_view hex, Digest* out);

class ContentHasher {
 public:
  ContentHasher();
  ~ContentHasher();
  ContentHasher(const ContentHasher&) = delete;
  ContentHasher& operator=(const ContentHasher&) = delete;

  void Update(std::span<const std::uint8_t> data);
  void Update(std::string_view data);
  // Finishes and returns the digest; the hasher is reset and may be reused.
  Digest Finish();
  [[nodiscard]] std::uint64_t bytes() const { return total_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::size_t block_fill_ = 0;
  std::uint64_t total_ = 0;
};

// Content hash of a byte string.
Digest HashBytes(std::string_view data);

// The digest of what was read, and how many bytes that was. HashFd reads until end of file, so
// a file that grows or shrinks while it is read yields a bytes_read different from the size the
// caller saw before (e.g. by fstat); telling "changed while read" apart is the caller's job.
struct FileHash {
  Digest digest{};
  std::uint64_t bytes_read = 0;
};

// Hashes the file open at `fd` from offset 0 to end of file (pread; the fd's offset is
// untouched). Returns kIo on a read error. A regular file of more than one block is hashed by up
// to `threads` threads at once, each reading and hashing whole blocks (the result is the same);
// 0 means as many as there are usable cores not already hashing in this process, so a caller
// that hashes one file per core gets no extra threads. Once `cancel` (if given) is set, the
// hashing stops within a read (256 KiB, or a 4 MiB block per thread) and returns kCancelled.
// Thread-safe: calls on different threads (even on the same fd) do not interfere.
Result<FileHash> HashFd(int fd, unsigned threads = 0, const std::atomic<bool>* cancel = nullptr);
// Opens `path` read-only (O_NOFOLLOW) and hashes it.
Result<FileHash> HashFile(const std::string& path);
// Hashes each of `paths` as HashFile does, up to `threads` files at a time (at least one);
// results come back in the order of `paths`.
std::vector<Result<FileHash>> HashFiles(std::span<const std::string> paths, unsigned threads);

}  // namespace filesync::hash
