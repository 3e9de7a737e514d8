#include "hash/block_hash.h"

#include <openssl/sha.h>

#include <algorithm>

namespace filesync::hash {

std::vector<Digest> BlockHashes(std::string_view data) {
  std::vector<Digest> out;
  for (std::size_t off = 0; off < data.size(); off += kBlockSize) {
    const std::size_t len = std::min(kBlockSize, data.size() - off);
    Digest d{};
    SHA256(reinterpret_cast<const unsigned char*>(data.data() + off), len, d.data());
    out.push_back(d);
  }
  return out;
}

Digest CombineBlocks(const std::vector<Digest>& blocks) {
  std::vector<unsigned char> joined;
  joined.reserve(blocks.size() * sizeof(Digest));
  for (const Digest& b : blocks) joined.insert(joined.end(), b.begin(), b.end());
  Digest out{};
  SHA256(joined.data(), joined.size(), out.data());
  return out;
}

std::string BlocksToHex(const std::vector<Digest>& blocks) {
  std::string out;
  for (const Digest& b : blocks) out += ToHex(b);
  return out;
}

bool BlocksFromHex(std::string_view hex, std::vector<Digest>* out) {
  if (hex.size() % 64 != 0) return false;
  for (std::size_t i = 0; i < hex.size(); i += 64) {
    Digest d{};
    if (!FromHex(hex.substr(i, 64), &d)) return false;
    out->push_back(d);
  }
  return true;
}

}  // namespace filesync::hash
