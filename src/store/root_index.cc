// RootIndex: records live in one vector, their paths in one string (offsets, not pointers, so
// the arena may grow while records are added). Remote records are not stored at all: each one
// either marks the file record at the same path as in sync or stays unmatched, and only the count
// is kept, because Matches() needs nothing more. Duplicate cloud keys (two remote paths equal
// under the cloud's case folding) are found by sorting 64-bit key hashes; a hash collision can
// only make Matches() say "no", which is always safe.
#include "store/root_index.h"

#include <algorithm>
#include <functional>
#include <limits>

#include "core/rel_path.h"
#include "util/unicode.h"

namespace filesync::store {
namespace {

bool IsAscii(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

// core::CloudKey without its allocations for the common all-ASCII path.
std::uint64_t CloudKeyHash(std::string_view path) {
  if (!IsAscii(path)) return std::hash<std::string>{}(core::CloudKey(path));
  std::string lower(path);
  for (char& c : lower) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return std::hash<std::string>{}(lower);
}

}  // namespace

void RootIndex::Builder::AddFile(const FileRecord& file) {
  if (sealed_ || file.path.size() > std::numeric_limits<std::uint16_t>::max() ||
      index_.arena_.size() + file.path.size() > std::numeric_limits<std::uint32_t>::max()) {
    index_.never_matches_ = true;
    return;
  }
  if (file.kind == core::EntryKind::kFile) {
    if (!has_device_) index_.device_ = file.identity.device;
    has_device_ = true;
    // A sync dir is scanned within one filesystem; anything else the full comparison handles.
    if (file.identity.device != index_.device_) index_.never_matches_ = true;
  }
  Record r;
  r.path_offset = static_cast<std::uint32_t>(index_.arena_.size());
  r.path_size = static_cast<std::uint16_t>(file.path.size());
  r.kind = file.kind;
  r.flags = file.has_digest && file.kind == core::EntryKind::kFile ? kHasDigest : 0;
  r.size = file.identity.size;
  r.mtime_ns = file.identity.mtime_ns;
  r.ctime_ns = file.identity.ctime_ns;
  r.inode = file.identity.inode;
  r.digest = file.digest;
  index_.arena_.append(file.path);
  index_.records_.push_back(r);
}

void RootIndex::Builder::Reserve(std::size_t files) {
  constexpr std::size_t kTypicalPathBytes = 24;
  index_.records_.reserve(files);
  index_.arena_.reserve(files * kTypicalPathBytes);
}

void RootIndex::Builder::Seal() {
  if (sealed_) return;
  sealed_ = true;
  const RootIndex& index = index_;
  const auto by_path = [&index](const Record& a, const Record& b) {
    return index.PathOf(a) < index.PathOf(b);
  };
  // The store hands records over in path order already.
  if (!std::is_sorted(index_.records_.begin(), index_.records_.end(), by_path))
    std::sort(index_.records_.begin(), index_.records_.end(), by_path);
  for (std::size_t i = 1; i < index_.records_.size(); ++i) {
    if (index_.PathOf(index_.records_[i - 1]) == index_.PathOf(index_.records_[i]))
      index_.never_matches_ = true;  // the store never holds two records at one path
  }
}

void RootIndex::Builder::AddRemote(const RemoteRecord& remote) {
  Seal();
  ++index_.remote_count_;
  if (case_insensitive_) remote_key_hashes_.push_back(CloudKeyHash(remote.path));
  const RootIndex& index = index_;
  auto it = std::lower_bound(
      index_.records_.begin(), index_.records_.end(), std::string_view(remote.path),
      [&index](const Record& r, std::string_view path) { return index.PathOf(r) < path; });
  if (it == index_.records_.end() || index_.PathOf(*it) != remote.path) return;
  Record& r = *it;
  if (r.kind != remote.kind) return;
  if (r.kind == core::EntryKind::kFile &&
      ((r.flags & kHasDigest) == 0 || !remote.has_digest || remote.digest != r.digest)) {
    return;
  }
  // On a case-insensitive cloud the display name is the NFC form; a local name in another form
  // is a rename the full comparison handles.
  if (case_insensitive_ && !IsAscii(remote.path) && unicode::ToNfc(remote.path) != remote.path)
    return;
  r.flags |= kInSync;
}

RootIndex RootIndex::Builder::Build() && {
  Seal();
  std::sort(remote_key_hashes_.begin(), remote_key_hashes_.end());
  if (std::adjacent_find(remote_key_hashes_.begin(), remote_key_hashes_.end()) !=
      remote_key_hashes_.end()) {
    index_.never_matches_ = true;
  }
  index_.records_.shrink_to_fit();
  index_.arena_.shrink_to_fit();
  return std::move(index_);
}

bool RootIndex::Matches(std::span<const scan::Entry> entries) const {
  if (never_matches_ || entries.size() != records_.size() || remote_count_ != records_.size())
    return false;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const Record& r = records_[i];
    const scan::Entry& e = entries[i];
    if ((r.flags & kInSync) == 0 || r.kind != e.kind || PathOf(r) != e.path) return false;
    // Files: the whole identity, so the record would not be rewritten either. Folders: the
    // inode, as the record of a folder keeps.
    const core::FileIdentity& id = e.identity;
    if (r.kind == core::EntryKind::kFile
            ? r.size != id.size || r.mtime_ns != id.mtime_ns || r.ctime_ns != id.ctime_ns ||
                  r.inode != id.inode || id.device != device_
            : r.inode != id.inode) {
      return false;
    }
  }
  return true;
}

std::size_t RootIndex::memory_bytes() const {
  return records_.capacity() * sizeof(Record) + arena_.capacity();
}

}  // namespace filesync::store
