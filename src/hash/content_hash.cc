#include "hash/content_hash.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <stdexcept>
#include <system_error>
#include <thread>

namespace filesync::hash {
namespace {

constexpr char kHexDigits[] = "0123456789abcdef";
// Reads of 256 KiB on the single-thread path stay in the L2 cache between the copy and the hash.
constexpr std::size_t kReadSize = 256 * 1024;
// Files from this size on are read on a second thread while the caller hashes; below it a
// thread start (tens of microseconds) would cost more than the copy it hides.
constexpr std::uint64_t kReadAheadMin = 4 * 1024 * 1024;
// The read-ahead thread's reads: 1 MiB keeps the hand-overs (a futex wake each, since the reader
// is faster and waits for free buffers) to 1,024 per GiB; 256 KiB took 4x as many, for no gain.
constexpr std::size_t kReadAheadSize = 1024 * 1024;

struct EvpCtx {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EvpCtx() {
    if (ctx == nullptr || EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) != 1) {
      throw std::runtime_error("OpenSSL SHA-256 initialisation failed");
    }
  }
  ~EvpCtx() { EVP_MD_CTX_free(ctx); }
  EvpCtx(const EvpCtx&) = delete;
  EvpCtx& operator=(const EvpCtx&) = delete;
  void Update(const void* p, std::size_t n) { EVP_DigestUpdate(ctx, p, n); }
  Digest FinishAndReset() {
    Digest d{};
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx, d.data(), &len);
    EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
    return d;
  }
};

Status ReadError(int error) {
  return Status::Io(std::string("read failed: ") + std::strerror(error));
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

struct ContentHasher::Impl {
  EvpCtx overall;
  EvpCtx block;
};

std::string ToHex(const Digest& digest) {
  std::string out(64, '0');
  for (std::size_t i = 0; i < digest.size(); ++i) {
    out[2 * i] = kHexDigits[digest[i] >> 4];
    out[2 * i + 1] = kHexDigits[digest[i] & 0xF];
  }
  return out;
}

bool FromHex(std::string_view hex, Digest* out) {
  if (hex.size() != 64) return false;
  for (std::size_t i = 0; i < 32; ++i) {
    const int hi = HexValue(hex[2 * i]);
    const int lo = HexValue(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    (*out)[i] = static_cast<std::uint8_t>(hi * 16 + lo);
  }
  return true;
}

ContentHasher::ContentHasher() : impl_(std::make_unique<Impl>()) {}
ContentHasher::~ContentHasher() = default;

void ContentHasher::Update(std::string_view data) {
  Update(std::span(reinterpret_cast<const std::uint8_t*>(data.data()), data.size()));
}

void ContentHasher::Update(std::span<const std::uint8_t> data) {
  total_ += data.size();
  while (!data.empty()) {
    const std::size_t take = std::min(data.size(), kBlockSize - block_fill_);
    impl_->block.Update(data.data(), take);
    block_fill_ += take;
    data = data.subspan(take);
    if (block_fill_ == kBlockSize) {
      const Digest d = impl_->block.FinishAndReset();
      impl_->overall.Update(d.data(), d.size());
      block_fill_ = 0;
    }
  }
}

Digest ContentHasher::Finish() {
  if (block_fill_ > 0) {
    const Digest d = impl_->block.FinishAndReset();
    impl_->overall.Update(d.data(), d.size());
    block_fill_ = 0;
  }
  total_ = 0;
  return impl_->overall.FinishAndReset();
}

Digest HashBytes(std::string_view data) {
  ContentHasher hasher;
  hasher.Update(data);
  return hasher.Finish();
}

namespace {

// Hashes `fd` with one thread: pread into a buffer, then hash it. Small files take this path,
// where starting a reader thread would cost more than the copy it hides.
Result<FileHash> HashSerial(int fd) {
  thread_local std::unique_ptr<std::uint8_t[]> buffer;
  if (!buffer) buffer = std::make_unique_for_overwrite<std::uint8_t[]>(kReadSize);
  ContentHasher hasher;
  off_t offset = 0;
  for (;;) {
    const ssize_t n = pread(fd, buffer.get(), kReadSize, offset);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ReadError(errno);
    }
    if (n == 0) break;
    hasher.Update(std::span(buffer.get(), static_cast<std::size_t>(n)));
    offset += n;
  }
  return FileHash{.digest = hasher.Finish(), .bytes_read = static_cast<std::uint64_t>(offset)};
}

// A reader thread fills a ring of kSlots buffers (4 MiB in all) with consecutive preads while the
// calling thread hashes the filled ones in file order, so the kernel's page-cache copy (or the disk
// read) runs beside SHA-256 instead of before it. Each side wakes the other through its own
// condition variable (in a VM every cross-CPU wake-up is costly). The ring lives in the calling
// thread's thread_local storage and outlives the reader, which the destructor joins.
class ReadAhead {
 public:
  // Starts the reader; throws std::system_error if no thread can be started.
  explicit ReadAhead(int fd) : fd_(fd), ring_(Ring()) {
    reader_ = std::thread([this] { Read(); });
  }
  ~ReadAhead() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    space_.notify_one();
    reader_.join();
  }
  ReadAhead(const ReadAhead&) = delete;
  ReadAhead& operator=(const ReadAhead&) = delete;

  // Hashes everything the reader delivers until end of file or a read error.
  Result<FileHash> HashAll() {
    ContentHasher hasher;
    for (std::uint64_t next = 0;; ++next) {
      std::size_t size = 0;
      {
        std::unique_lock lock(mu_);
        data_.wait(lock, [&] { return filled_ > next || done_; });
        if (filled_ == next) break;
        size = sizes_[next % kSlots];
      }
      hasher.Update(std::span(ring_ + (next % kSlots) * kReadAheadSize, size));
      {
        std::lock_guard lock(mu_);
        hashed_ = next + 1;
      }
      space_.notify_one();
    }
    std::lock_guard lock(mu_);
    if (error_ != 0) return ReadError(error_);
    return FileHash{.digest = hasher.Finish(), .bytes_read = offset_};
  }

 private:
  static constexpr std::size_t kSlots = 4;
  static constexpr std::size_t kHugePage = 2 * 1024 * 1024;

  struct Free {
    void operator()(std::uint8_t* p) const { std::free(p); }
  };

  // This thread's ring, allocated on first use and kept for the thread's life. Aligned to and
  // advised as huge pages (where THP is set to madvise) to spare the hashing thread TLB misses.
  static std::uint8_t* Ring() {
    thread_local std::unique_ptr<std::uint8_t, Free> ring;
    if (!ring) {
      constexpr std::size_t kBytes = kSlots * kReadAheadSize;
      static_assert(kBytes % kHugePage == 0);
      ring.reset(static_cast<std::uint8_t*>(std::aligned_alloc(kHugePage, kBytes)));
      if (!ring) throw std::bad_alloc();
      madvise(ring.get(), kBytes, MADV_HUGEPAGE);
    }
    return ring.get();
  }

  void Read() {
    for (std::uint64_t next = 0;; ++next) {
      std::uint64_t offset = 0;
      {
        std::unique_lock lock(mu_);
        space_.wait(lock, [&] { return next - hashed_ < kSlots || stop_; });
        if (stop_) return;
        offset = offset_;
      }
      ssize_t n;
      do {
        n = pread(fd_, ring_ + (next % kSlots) * kReadAheadSize, kReadAheadSize,
                  static_cast<off_t>(offset));
      } while (n < 0 && errno == EINTR);
      {
        std::lock_guard lock(mu_);
        if (n <= 0) {
          error_ = n < 0 ? errno : 0;
          done_ = true;
        } else {
          sizes_[next % kSlots] = static_cast<std::size_t>(n);
          offset_ += static_cast<std::uint64_t>(n);
          filled_ = next + 1;
        }
      }
      data_.notify_one();
      if (n <= 0) return;
    }
  }

  const int fd_;
  std::uint8_t* const ring_;
  std::mutex mu_;
  std::condition_variable data_;   // a buffer was filled, or the reader is done
  std::condition_variable space_;  // a buffer was hashed, or stop_ was set
  // Guarded by mu_. Buffer i holds the i-th read while hashed_ <= i < filled_.
  std::uint64_t filled_ = 0;  // reads completed
  std::uint64_t hashed_ = 0;  // buffers hashed and free again
  std::uint64_t offset_ = 0;  // bytes read so far
  std::array<std::size_t, kSlots> sizes_{};
  bool done_ = false;  // the reader hit end of file or an error
  int error_ = 0;      // errno of the failed read
  bool stop_ = false;  // set by the destructor
  std::thread reader_;
};

}  // namespace

Result<FileHash> HashFd(int fd) {
  posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  struct stat st {};
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
      static_cast<std::uint64_t>(st.st_size) >= kReadAheadMin) {
    try {
      ReadAhead reader(fd);
      return reader.HashAll();
    } catch (const std::system_error&) {
      // No thread to be had (resource limits): hashing on this thread alone is still correct.
    }
  }
  return HashSerial(fd);
}

Result<FileHash> HashFile(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return Status::Io(path + ": " + std::strerror(errno));
  auto result = HashFd(fd);
  close(fd);
  if (!result.ok()) return Status::Io(path + ": " + result.status().message());
  return result;
}

std::vector<Result<FileHash>> HashFiles(std::span<const std::string> paths, unsigned threads) {
  // Result has no empty state: fill every slot with a placeholder, then overwrite each once.
  std::vector<Result<FileHash>> results(paths.size(), Status::Io("not hashed"));
  std::atomic<std::size_t> next{0};
  auto work = [&] {
    for (std::size_t i = next++; i < paths.size(); i = next++) results[i] = HashFile(paths[i]);
  };
  const std::size_t count = std::min<std::size_t>(std::max(threads, 1U), paths.size());
  std::vector<std::thread> pool;
  for (std::size_t t = 1; t < count; ++t) pool.emplace_back(work);
  work();
  for (std::thread& t : pool) t.join();
  return results;
}

}  // namespace filesync::hash
