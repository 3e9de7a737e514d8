// RootIndex: a compact, read-only snapshot of one root's state-store records (its files and
// remote tables) as they stood at the end of a clean pass, for the common case of a pass in which
// nothing changed. It answers one question: "is this scan exactly the synced state?" With the
// answer yes, a pass needs neither the full record maps nor the planner's inputs.
//
// About 72 bytes per record plus the path bytes, in two allocations (a record array and a path
// arena), instead of the several strings and map nodes per path that a general-purpose
// representation needs; a daemon keeps only this between passes.
//
// Matches() is conservative: it may say "no" when a full comparison would find nothing to do
// (the caller then does that comparison), but it says "yes" only when every scanned entry has a
// record at the same path, with the same kind and identity, whose cloud counterpart sits at the
// same path with the same kind and (files) the same content hash, the cloud holds nothing else,
// and no record or cloud entry needs rewriting.
// Thread safety: a built index is immutable; Builder is single-threaded.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "scan/scanner.h"
#include "store/state_store.h"

namespace filesync::store {

class RootIndex {
 public:
  // Feed every file record (any order), then every remote record (any order), then Build().
  class Builder;

  RootIndex() = default;

  [[nodiscard]] std::size_t file_count() const { return records_.size(); }
  [[nodiscard]] std::uint64_t remote_count() const { return remote_count_; }

  // True when the scan (entries sorted by path in byte order, as scan::Scan returns them) is
  // exactly the synced state, so the pass has nothing to upload, move, delete or record.
  [[nodiscard]] bool Matches(std::span<const scan::Entry> entries) const;

  // Heap bytes held (for tests and the performance notes).
  [[nodiscard]] std::size_t memory_bytes() const;

 private:
  static constexpr std::uint8_t kHasDigest = 1;  // files: the record holds a content hash
  // The cloud holds this path (byte-identical, same kind, same content hash for files) and the
  // record has everything a no-change pass needs.
  static constexpr std::uint8_t kInSync = 2;
  struct Record {
    std::uint32_t path_offset = 0;
    std::uint16_t path_size = 0;
    core::EntryKind kind = core::EntryKind::kFile;
    std::uint8_t flags = 0;
    // The identity without its device, which every record shares (device_).
    std::uint64_t size = 0;
    std::int64_t mtime_ns = 0;
    std::int64_t ctime_ns = 0;
    std::uint64_t inode = 0;
    hash::Digest digest{};
  };
  static_assert(sizeof(Record) <= 72, "RootIndex::Record grew; see the header's size promise");

  [[nodiscard]] std::string_view PathOf(const Record& r) const {
    return std::string_view(arena_).substr(r.path_offset, r.path_size);
  }

  std::vector<Record> records_;  // sorted by path
  std::string arena_;
  std::uint64_t remote_count_ = 0;
  std::uint64_t device_ = 0;    // of every file record
  bool never_matches_ = false;  // something a conservative check cannot vouch for
};

class RootIndex::Builder {
 public:
  // case_insensitive: the cloud compares paths by core::CloudKey (Dropbox).
  explicit Builder(bool case_insensitive) : case_insensitive_(case_insensitive) {}
  // Optional: the number of file records to come, to allocate once.
  void Reserve(std::size_t files);
  void AddFile(const FileRecord& file);
  void AddRemote(const RemoteRecord& remote);
  RootIndex Build() &&;

 private:
  void Seal();

  bool case_insensitive_;
  bool sealed_ = false;  // records sorted: no more AddFile
  bool has_device_ = false;
  RootIndex index_;
  std::vector<std::uint64_t> remote_key_hashes_;  // case-insensitive clouds: duplicate keys
};

}  // namespace filesync::store
