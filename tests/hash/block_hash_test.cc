// The two-stage content hash used by chunked uploads must agree with the one-shot hash
// (reference §12), and its persisted hex form must round-trip and refuse malformed input.
#include "hash/block_hash.h"

#include <gtest/gtest.h>

#include <string>

namespace filesync::hash {
namespace {

std::string Pattern(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + i / 7) & 0xFF);
  return s;
}

TEST(BlockHash, CombinedBlocksEqualTheContentHash) {
  for (const std::size_t size : {std::size_t{0}, std::size_t{5}, kBlockSize - 1, kBlockSize,
                                 kBlockSize + 1, 2 * kBlockSize + kBlockSize / 4}) {
    const std::string data = Pattern(size);
    const std::vector<Digest> blocks = BlockHashes(data);
    EXPECT_EQ(blocks.size(), (size + kBlockSize - 1) / kBlockSize) << size;
    EXPECT_EQ(CombineBlocks(blocks), HashBytes(data)) << size;
  }
}

// A chunk's blocks computed alone and joined later give the file's hash (how a resumed upload
// knows the content hash of chunks sent by an earlier process).
TEST(BlockHash, ChunksHashedSeparatelyCombineToTheFileHash) {
  const std::string data = Pattern(3 * kBlockSize + 17);
  std::vector<Digest> joined;
  for (std::size_t off = 0; off < data.size(); off += 2 * kBlockSize) {
    const auto chunk = BlockHashes(std::string_view(data).substr(off, 2 * kBlockSize));
    joined.insert(joined.end(), chunk.begin(), chunk.end());
  }
  EXPECT_EQ(CombineBlocks(joined), HashBytes(data));
}

TEST(BlockHash, HexRoundTripsAndRefusesMalformedInput) {
  const std::vector<Digest> blocks = BlockHashes(Pattern(kBlockSize + 3));
  const std::string hex = BlocksToHex(blocks);
  EXPECT_EQ(hex.size(), 128u);
  std::vector<Digest> back;
  ASSERT_TRUE(BlocksFromHex(hex, &back));
  EXPECT_EQ(back, blocks);
  std::vector<Digest> ignored;
  EXPECT_FALSE(BlocksFromHex(hex.substr(1), &ignored));         // not 64 per block
  EXPECT_FALSE(BlocksFromHex(std::string(64, 'g'), &ignored));  // not hex
  std::vector<Digest> none;
  EXPECT_TRUE(BlocksFromHex("", &none));
  EXPECT_TRUE(none.empty());
}

}  // namespace
}  // namespace filesync::hash
