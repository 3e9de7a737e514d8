#include "hash/content_hash.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <system_error>
#include <thread>

#include "core/parallel_for.h"
#include "core/thread_annotations.h"

namespace filesync::hash {
namespace {

constexpr char kHexDigits[] = "0123456789abcdef";
// Reads of 256 KiB stay in the L2 cache between the kernel's copy and the hash.
constexpr std::size_t kReadSize = 256 * 1024;

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

// Threads hashing in this process (callers of HashFd and their helpers), so that HashFd only
// adds helpers while cores are idle: a pass hashing one file per core needs none.
std::atomic<unsigned> g_hashing_threads{0};

unsigned UsableCores() {
  static const unsigned cores = [] {
    cpu_set_t set;
    CPU_ZERO(&set);
    // The affinity mask, not the machine: `taskset -c 0` or a cpuset means one core.
    if (sched_getaffinity(0, sizeof set, &set) == 0) return static_cast<unsigned>(CPU_COUNT(&set));
    return std::max(1U, std::thread::hardware_concurrency());
  }();
  return cores;
}

struct Counted {
  Counted() { ++g_hashing_threads; }
  ~Counted() { --g_hashing_threads; }
  Counted(const Counted&) = delete;
  Counted& operator=(const Counted&) = delete;
};

// pread until `size` bytes are in, end of file, or an error (returns -errno).
std::int64_t ReadFull(int fd, std::uint8_t* out, std::size_t size, std::uint64_t offset) {
  std::size_t got = 0;
  while (got < size) {
    const ssize_t n = pread(fd, out + got, size - got, static_cast<off_t>(offset + got));
    if (n < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  return static_cast<std::int64_t>(got);
}

std::uint8_t* ThreadBuffer() {
  thread_local std::unique_ptr<std::uint8_t[]> buffer;
  if (!buffer) buffer = std::make_unique_for_overwrite<std::uint8_t[]>(kReadSize);
  return buffer.get();
}

bool Stopped(const std::atomic<bool>* cancel) {
  return cancel != nullptr && cancel->load(std::memory_order_relaxed);
}

Status CancelledHash() { return Status::Cancelled("stopped while hashing"); }

// Hashes `fd` on the calling thread alone: read a piece, hash it, repeat.
Result<FileHash> HashSerial(int fd, const std::atomic<bool>* cancel) {
  std::uint8_t* buffer = ThreadBuffer();
  ContentHasher hasher;
  std::uint64_t offset = 0;
  for (;;) {
    if (Stopped(cancel)) return CancelledHash();
    const std::int64_t n = ReadFull(fd, buffer, kReadSize, offset);
    if (n < 0) return ReadError(static_cast<int>(-n));
    if (n == 0) break;
    hasher.Update(std::span(buffer, static_cast<std::size_t>(n)));
    offset += static_cast<std::uint64_t>(n);
  }
  return FileHash{.digest = hasher.Finish(), .bytes_read = offset};
}

// The blocks of one file hashed by several threads at once: each block's SHA-256 is independent
// of the others (only the final hash over the block digests is sequential), so every thread
// claims the next unclaimed block, reads and hashes it on its own core, and files its digest.
// The file ends at the first block that comes back short; blocks claimed beyond it are dropped.
// Every block before that one was claimed earlier and so is filed before its thread stops.
class ParallelBlocks {
 public:
  ParallelBlocks(int fd, const std::atomic<bool>* cancel) : fd_(fd), cancel_(cancel) {}

  // Runs on the caller and on `helpers` more threads; returns the whole file's hash.
  Result<FileHash> Run(unsigned helpers) {
    std::vector<std::thread> threads;
    for (unsigned i = 0; i < helpers; ++i) {
      try {
        threads.emplace_back([this] {
          const Counted counted;
          Work();
        });
      } catch (const std::system_error&) {
        break;  // no thread to be had (resource limits): fewer helpers are still correct
      }
    }
    Work();
    for (std::thread& t : threads) t.join();
    core::MutexLock lock(&mu_);  // uncontended now: every helper has been joined
    if (error_ == ECANCELED) return CancelledHash();
    if (error_ != 0) return ReadError(error_);
    EvpCtx overall;
    FileHash result;
    for (const Block& block : blocks_) {
      if (block.size == 0) break;
      overall.Update(block.digest.data(), block.digest.size());
      result.bytes_read += block.size;
      if (block.size < kBlockSize) break;
    }
    result.digest = overall.FinishAndReset();
    return result;
  }

 private:
  struct Block {
    Digest digest{};
    std::size_t size = 0;
  };

  void Work() {
    std::uint8_t* buffer = ThreadBuffer();
    EvpCtx ctx;
    for (;;) {
      const std::uint64_t index = next_++;
      if (index > end_.load()) return;
      if (Stopped(cancel_)) return Fail(ECANCELED);
      std::size_t size = 0;
      while (size < kBlockSize) {
        const std::size_t want = std::min(kReadSize, kBlockSize - size);
        const std::int64_t n = ReadFull(fd_, buffer, want, index * kBlockSize + size);
        if (n < 0) return Fail(static_cast<int>(-n));
        ctx.Update(buffer, static_cast<std::size_t>(n));
        size += static_cast<std::size_t>(n);
        if (static_cast<std::size_t>(n) < want) break;  // end of file
      }
      const Digest digest = ctx.FinishAndReset();
      {
        core::MutexLock lock(&mu_);
        if (blocks_.size() <= index) blocks_.resize(index + 1);
        blocks_[index] = {digest, size};
      }
      if (size < kBlockSize) {
        std::uint64_t end = end_.load();
        while (index < end && !end_.compare_exchange_weak(end, index)) {
        }
        return;
      }
    }
  }

  void Fail(int error) EXCLUDES(mu_) {
    core::MutexLock lock(&mu_);
    if (error_ == 0) error_ = error;
    end_ = 0;  // the others stop after their current block
  }

  const int fd_;
  const std::atomic<bool>* const cancel_;
  std::atomic<std::uint64_t> next_{0};  // the next block to claim
  // The first block known to be short (end of file); no block after it is claimed.
  std::atomic<std::uint64_t> end_{std::numeric_limits<std::uint64_t>::max()};
  core::Mutex mu_;
  std::vector<Block> blocks_ GUARDED_BY(mu_);  // by block index
  int error_ GUARDED_BY(mu_) = 0;              // errno of the first failed read
};

}  // namespace

Result<FileHash> HashFd(int fd, unsigned threads, const std::atomic<bool>* cancel) {
  posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  const Counted counted;
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
      static_cast<std::uint64_t>(st.st_size) <= kBlockSize) {
    return HashSerial(fd, cancel);
  }
  const std::uint64_t blocks =
      (static_cast<std::uint64_t>(st.st_size) + kBlockSize - 1) / kBlockSize;
  const unsigned cores = UsableCores();
  const unsigned busy = g_hashing_threads.load();
  const unsigned wanted = threads == 0 ? cores : threads;
  const std::uint64_t helpers = std::min<std::uint64_t>(
      {wanted - 1, blocks - 1, threads == 0 ? (cores > busy ? cores - busy : 0) : wanted});
  if (helpers == 0) return HashSerial(fd, cancel);
  return ParallelBlocks(fd, cancel).Run(static_cast<unsigned>(helpers));
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
  core::ParallelFor(paths.size(), static_cast<int>(std::min(threads, 1024U)),
                    [&](std::size_t i) { results[i] = HashFile(paths[i]); });
  return results;
}

}  // namespace filesync::hash
