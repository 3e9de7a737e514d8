// Vectors from shared/reference/dropbox-api.md §12.
#include "hash/content_hash.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <openssl/sha.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace filesync::hash {
namespace {

std::string Hex(std::string_view data) { return ToHex(HashBytes(data)); }

TEST(ContentHash, EmptyInputIsSha256OfNothing) {
  EXPECT_EQ(Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(ContentHash, HelloIsDoubleSha256) {
  EXPECT_EQ(Hex("hello"), "9595c9df90075148eb06860365df33584b75bff782a510c6cd4883a419833d50");
}

TEST(ContentHash, ExactlyOneBlockOfZeros) {
  EXPECT_EQ(Hex(std::string(kBlockSize, '\0')),
            "c7e946d101855255d919ef0c70718633adf77d3dfb3adeeecf5d0cb4e951be58");
}

TEST(ContentHash, OneBlockPlusOneByte) {
  EXPECT_EQ(Hex(std::string(kBlockSize + 1, 'a')),
            "5f858b62ccd88447586305aec6fd53c96747cfebf527cbba129a6dfed47d9624");
}

TEST(ContentHash, TwoBlocksOfZeros) {
  EXPECT_EQ(Hex(std::string(2 * kBlockSize, '\0')),
            "03ae066c707c588592d9e27aa2444ca98423e0999024f1ceaa11a153790b37de");
}

TEST(ContentHash, SlicingDoesNotChangeTheResult) {
  const std::string data(kBlockSize + 1, 'a');
  ContentHasher hasher;
  for (std::size_t pos = 0; pos < data.size(); pos += 1000003) {
    hasher.Update(std::string_view(data).substr(pos, 1000003));
  }
  EXPECT_EQ(ToHex(hasher.Finish()),
            "5f858b62ccd88447586305aec6fd53c96747cfebf527cbba129a6dfed47d9624");
}

TEST(ContentHash, HexRoundTripAndRejectsGarbage) {
  const Digest d = HashBytes("hello");
  Digest back{};
  ASSERT_TRUE(FromHex(ToHex(d), &back));
  EXPECT_EQ(back, d);
  EXPECT_FALSE(FromHex("xyz", &back));
  EXPECT_FALSE(FromHex(std::string(64, 'g'), &back));
}

TEST(ContentHash, HashFileMatchesHashBytes) {
  char tmpl[] = "/tmp/filesync_hash_XXXXXX";
  const int fd = mkstemp(tmpl);
  ASSERT_GE(fd, 0);
  const std::string data(kBlockSize + 12345, 'q');
  ASSERT_EQ(write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
  close(fd);
  auto result = HashFile(tmpl);
  unlink(tmpl);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->digest, HashBytes(data));
  EXPECT_EQ(result->bytes_read, data.size());
}

TEST(ContentHash, HashFileOfMissingPathIsIoError) {
  auto result = HashFile("/nonexistent/filesync/file");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().kind(), Status::Kind::kIo);
}

// The rule of reference §12 written out with one-shot SHA-256, independent of ContentHasher:
// SHA-256 over the concatenated SHA-256 digests of the 4 MiB blocks.
std::string ReferenceHex(std::string_view data) {
  std::string digests;
  for (std::size_t pos = 0; pos < data.size(); pos += kBlockSize) {
    const std::string_view block = data.substr(pos, kBlockSize);
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<const unsigned char*>(block.data()), block.size(), d);
    digests.append(reinterpret_cast<const char*>(d), sizeof d);
  }
  Digest out{};
  SHA256(reinterpret_cast<const unsigned char*>(digests.data()), digests.size(), out.data());
  return ToHex(out);
}

// Bytes that differ from position to position (so a block or buffer hashed twice, skipped or out
// of order changes the digest), different for each seed.
std::string Pattern(std::size_t size, std::uint64_t seed = 1) {
  std::string data(size, '\0');
  std::uint64_t x = 0x9E3779B97F4A7C15ULL ^ seed;
  for (char& c : data) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c = static_cast<char>(x & 0xFF);
  }
  return data;
}

// A temporary directory, removed with its contents at the end of the test.
class HashFdTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/filesync_hashfd_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Write(const std::string& name, std::string_view data) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary)
        .write(data.data(), static_cast<std::streamsize>(data.size()));
    return path;
  }
  static std::string ReadAll(const std::string& path) {
    std::string data(std::filesystem::file_size(path), '\0');
    std::ifstream(path, std::ios::binary)
        .read(data.data(), static_cast<std::streamsize>(data.size()));
    return data;
  }

  std::string dir_;
};

// One thread reads and hashes in turn; two and three hash whole blocks side by side. The digest
// must not depend on that.
constexpr unsigned kThreadCounts[] = {1, 2, 3};

TEST_F(HashFdTest, SizesAroundTheBlockBoundaryMatchTheRule) {
  const std::size_t sizes[] = {0,
                               1,
                               kBlockSize - 1,
                               kBlockSize,
                               kBlockSize + 1,
                               2 * kBlockSize,
                               9 * 1024 * 1024,
                               3 * kBlockSize + 5};
  for (std::size_t size : sizes) {
    const std::string data = Pattern(size, size);
    const std::string path = Write("f" + std::to_string(size), data);
    const std::string expected = ReferenceHex(data);
    for (unsigned threads : kThreadCounts) {
      SCOPED_TRACE(testing::Message() << size << " bytes, " << threads << " threads");
      const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
      ASSERT_GE(fd, 0);
      auto result = HashFd(fd, threads);
      close(fd);
      ASSERT_TRUE(result.ok()) << result.status().ToString();
      EXPECT_EQ(ToHex(result->digest), expected);
      EXPECT_EQ(result->bytes_read, size);
    }
  }
}

TEST_F(HashFdTest, KnownVectorThroughAFile) {
  // Reference §12: 4 MiB + 1 bytes of 'a'.
  auto result = HashFile(Write("a", std::string(kBlockSize + 1, 'a')));
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(ToHex(result->digest),
            "5f858b62ccd88447586305aec6fd53c96747cfebf527cbba129a6dfed47d9624");
}

TEST_F(HashFdTest, LeavesTheFileOffsetAlone) {
  for (std::size_t size : {std::size_t{100}, 9 * kBlockSize / 4}) {
    const int fd = open(Write("f", Pattern(size)).c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(lseek(fd, 7, SEEK_SET), 7);
    for (unsigned threads : kThreadCounts) {
      auto result = HashFd(fd, threads);
      EXPECT_EQ(lseek(fd, 0, SEEK_CUR), 7);
      ASSERT_TRUE(result.ok());
      EXPECT_EQ(result->bytes_read, size);
    }
    close(fd);
  }
}

TEST_F(HashFdTest, AStopAbandonsTheHash) {
  const int fd = open(Write("big", Pattern(9 * kBlockSize / 2)).c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  const std::atomic<bool> stop{true};
  const std::atomic<bool> go{false};
  for (unsigned threads : kThreadCounts) {
    SCOPED_TRACE(testing::Message() << threads << " threads");
    auto stopped = HashFd(fd, threads, &stop);
    ASSERT_FALSE(stopped.ok());
    EXPECT_EQ(stopped.status().kind(), Status::Kind::kCancelled);
    EXPECT_TRUE(HashFd(fd, threads, &go).ok());
  }
  close(fd);
}

TEST_F(HashFdTest, ReadErrorIsIo) {
  // A directory (pread fails with EISDIR) and a large file opened write-only (EBADF).
  const int dir_fd = open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(dir_fd, 0);
  auto dir_result = HashFd(dir_fd);
  close(dir_fd);
  ASSERT_FALSE(dir_result.ok());
  EXPECT_EQ(dir_result.status().kind(), Status::Kind::kIo);

  const int fd = open(Write("big", Pattern(3 * kBlockSize)).c_str(), O_WRONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  for (unsigned threads : kThreadCounts) {
    auto result = HashFd(fd, threads);
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.status().kind(), Status::Kind::kIo);
  }
  close(fd);
}

// A file appended to while it is hashed: HashFd reads to end of file, so it covers at least the
// bytes there before the call, at most those there after, and its digest is exactly that
// prefix's (the appended bytes never mix into the wrong place).
TEST_F(HashFdTest, GrowingFileDigestMatchesTheBytesRead) {
  const std::string path = Write("grow", Pattern(9 * 1024 * 1024));
  for (int attempt = 0; attempt < 6; ++attempt) {
    const unsigned threads = kThreadCounts[attempt % 3];
    SCOPED_TRACE(testing::Message() << "attempt " << attempt << ", " << threads << " threads");
    const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    std::atomic<bool> stop{false};
    std::thread writer([&] {
      const int out = open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
      // Bounded, so the reader can reach the end of file.
      for (std::uint64_t i = 0; i < 64 && !stop.load(); ++i) {
        const std::string chunk = Pattern(64 * 1024 + 3, i + 100);
        if (write(out, chunk.data(), chunk.size()) < 0) break;
      }
      close(out);
    });
    struct stat before {};
    fstat(fd, &before);
    auto result = HashFd(fd, threads);
    struct stat after {};
    fstat(fd, &after);
    stop = true;
    writer.join();
    close(fd);
    ASSERT_TRUE(result.ok()) << result.status().ToString();
    EXPECT_GE(result->bytes_read, static_cast<std::uint64_t>(before.st_size));
    EXPECT_LE(result->bytes_read, static_cast<std::uint64_t>(after.st_size));
    const std::string content = ReadAll(path);
    EXPECT_EQ(ToHex(result->digest),
              ReferenceHex(std::string_view(content).substr(0, result->bytes_read)));
  }
}

// A file truncated while it is hashed: the digest is that of the first bytes_read bytes of the
// original content, and bytes_read tells the caller the file is not what it was.
TEST_F(HashFdTest, ShrinkingFileDigestMatchesTheBytesRead) {
  const std::string original = Pattern(12 * 1024 * 1024, 7);
  constexpr off_t kShrunk = 1024 * 1024;
  bool saw_short_read = false;
  for (int attempt = 0; attempt < 20 && !(saw_short_read && attempt >= 6); ++attempt) {
    const unsigned threads = kThreadCounts[attempt % 3];
    SCOPED_TRACE(testing::Message() << "attempt " << attempt << ", " << threads << " threads");
    const std::string path = Write("shrink", original);
    const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    std::thread truncater([&] {
      std::this_thread::sleep_for(std::chrono::microseconds(500 * (attempt % 4)));
      EXPECT_EQ(truncate(path.c_str(), kShrunk), 0);
    });
    auto result = HashFd(fd, threads);
    truncater.join();
    close(fd);
    ASSERT_TRUE(result.ok()) << result.status().ToString();
    EXPECT_LE(result->bytes_read, original.size());
    EXPECT_GE(result->bytes_read, static_cast<std::uint64_t>(kShrunk));
    EXPECT_EQ(ToHex(result->digest),
              ReferenceHex(std::string_view(original).substr(0, result->bytes_read)));
    saw_short_read |= result->bytes_read < original.size();
  }
  // Truncating within 1.5 ms of the start of a 12 MiB read cuts it short (at SHA-256 speed the
  // read takes about 8 ms), at least once in 20 attempts even on a busy machine.
  EXPECT_TRUE(saw_short_read);
}

TEST_F(HashFdTest, HashFilesKeepsOrderAndReportsEachFailure) {
  const std::vector<std::string> data = {"", "hello", Pattern(9 * 1024 * 1024, 3),
                                         Pattern(kBlockSize, 4)};
  std::vector<std::string> paths;
  for (std::size_t i = 0; i < data.size(); ++i)
    paths.push_back(Write("m" + std::to_string(i), data[i]));
  paths.insert(paths.begin() + 2, dir_ + "/missing");
  for (unsigned threads : {0U, 1U, 2U, 8U}) {
    SCOPED_TRACE(threads);
    const auto results = HashFiles(paths, threads);
    ASSERT_EQ(results.size(), paths.size());
    for (std::size_t i = 0, d = 0; i < paths.size(); ++i) {
      if (i == 2) {
        ASSERT_FALSE(results[i].ok());
        EXPECT_EQ(results[i].status().kind(), Status::Kind::kIo);
        continue;
      }
      ASSERT_TRUE(results[i].ok()) << results[i].status().ToString();
      EXPECT_EQ(ToHex(results[i]->digest), ReferenceHex(data[d]));
      EXPECT_EQ(results[i]->bytes_read, data[d].size());
      ++d;
    }
  }
  EXPECT_TRUE(HashFiles({}, 2).empty());
}

}  // namespace
}  // namespace filesync::hash
