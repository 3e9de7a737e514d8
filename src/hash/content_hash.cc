#include "hash/content_hash.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <vector>

namespace filesync::hash {
namespace {

constexpr char kHexDigits[] = "0123456789abcdef";
// Reads of 1 MiB keep the buffer in L2-friendly pieces and divide 4 MiB blocks evenly.
constexpr std::size_t kReadSize = 1024 * 1024;

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

Result<FileHash> HashFd(int fd) {
  thread_local std::vector<std::uint8_t> buffer(kReadSize);
  ContentHasher hasher;
  FileHash result;
  off_t offset = 0;
  posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  for (;;) {
    const ssize_t n = pread(fd, buffer.data(), buffer.size(), offset);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::Io(std::string("read failed: ") + std::strerror(errno));
    }
    if (n == 0) break;
    hasher.Update(std::span(buffer.data(), static_cast<std::size_t>(n)));
    offset += n;
  }
  result.bytes_read = static_cast<std::uint64_t>(offset);
  result.digest = hasher.Finish();
  return result;
}

Result<FileHash> HashFile(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return Status::Io(path + ": " + std::strerror(errno));
  auto result = HashFd(fd);
  close(fd);
  if (!result.ok()) return Status::Io(path + ": " + result.status().message());
  return result;
}

}  // namespace filesync::hash
