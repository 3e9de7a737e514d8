// The content hash in two stages, for uploads that send a file in chunks (reference §12): the
// SHA-256 of each 4 MiB block, kept per chunk (a chunk is a whole number of blocks), then the
// hash of the blocks joined, once every chunk is in. CombineBlocks(BlockHashes(data)) ==
// HashBytes(data). The hex forms persist block lists (64 hex digits per block).
// Pure functions; thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "hash/content_hash.h"

namespace filesync::hash {

// SHA-256 of each kBlockSize block of `data` (the last one may be shorter).
std::vector<Digest> BlockHashes(std::string_view data);

// The content hash of a file whose blocks, in order, hashed to `blocks`.
Digest CombineBlocks(const std::vector<Digest>& blocks);

std::string BlocksToHex(const std::vector<Digest>& blocks);
// Appends the blocks `hex` spells to *out; false (and *out partly filled) on malformed input.
bool BlocksFromHex(std::string_view hex, std::vector<Digest>* out);

}  // namespace filesync::hash
