// Vectors from shared/reference/dropbox-api.md §12.
#include "hash/content_hash.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

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

}  // namespace
}  // namespace filesync::hash
