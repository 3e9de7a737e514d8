#include "store/root_index.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

namespace filesync::store {
namespace {

using core::EntryKind;

hash::Digest DigestOf(std::string_view s) { return hash::HashBytes(s); }

core::FileIdentity Id(std::uint64_t inode, std::uint64_t size = 10) {
  return {.size = size,
          .mtime_ns = 1000 + static_cast<std::int64_t>(inode),
          .ctime_ns = 2000,
          .inode = inode,
          .device = 7};
}

// A synced root: the scan, the file records and the remote records all agree.
struct Synced {
  std::vector<scan::Entry> scan;
  std::vector<FileRecord> files;
  std::vector<RemoteRecord> remote;

  void Folder(const std::string& path, std::uint64_t inode) {
    scan.push_back({path, EntryKind::kFolder, Id(inode, 0)});
    files.push_back({.path = path, .kind = EntryKind::kFolder, .identity = Id(inode, 0)});
    remote.push_back({.path = path, .kind = EntryKind::kFolder});
  }
  void File(const std::string& path, std::uint64_t inode) {
    const hash::Digest d = DigestOf(path);
    scan.push_back({path, EntryKind::kFile, Id(inode)});
    files.push_back({.path = path,
                     .kind = EntryKind::kFile,
                     .identity = Id(inode),
                     .digest = d,
                     .has_digest = true});
    remote.push_back({.path = path, .kind = EntryKind::kFile, .size = 10, .digest = d});
  }
  void SortScan() {
    std::sort(scan.begin(), scan.end(),
              [](const scan::Entry& a, const scan::Entry& b) { return a.path < b.path; });
  }
  RootIndex Build(bool case_insensitive = false, bool reverse_input = false) const {
    RootIndex::Builder b(case_insensitive);
    auto f = files;
    auto r = remote;
    if (reverse_input) {
      std::reverse(f.begin(), f.end());
      std::reverse(r.begin(), r.end());
    }
    for (const auto& x : f) b.AddFile(x);
    for (const auto& x : r) b.AddRemote(x);
    return std::move(b).Build();
  }
};

Synced Tree() {
  Synced s;
  s.Folder("a", 1);
  s.File("a/x.txt", 2);
  s.File("a/y.txt", 3);
  s.Folder("b", 4);
  s.File("b/z", 5);
  s.File("top", 6);
  s.SortScan();
  return s;
}

TEST(RootIndex, AnUnchangedTreeMatchesWhateverOrderTheRecordsCameIn) {
  const Synced s = Tree();
  EXPECT_TRUE(s.Build().Matches(s.scan));
  EXPECT_TRUE(s.Build(false, true).Matches(s.scan));
  EXPECT_TRUE(s.Build(true).Matches(s.scan));
  EXPECT_EQ(s.Build().file_count(), 6u);
  EXPECT_EQ(s.Build().remote_count(), 6u);
}

TEST(RootIndex, AnEmptyRootMatchesAnEmptyScan) {
  const Synced s;
  EXPECT_TRUE(s.Build().Matches(s.scan));
}

TEST(RootIndex, AnyChangedIdentityIsNotAMatch) {
  for (auto change : {+[](core::FileIdentity& i) { i.size += 1; },
                      +[](core::FileIdentity& i) { i.mtime_ns += 1; },
                      +[](core::FileIdentity& i) { i.ctime_ns += 1; },
                      +[](core::FileIdentity& i) { i.inode += 100; },
                      +[](core::FileIdentity& i) { i.device += 1; }}) {
    Synced s = Tree();
    const RootIndex index = s.Build();
    change(s.scan[1].identity);  // a/x.txt
    EXPECT_FALSE(index.Matches(s.scan));
  }
}

TEST(RootIndex, FilesOnAnotherDeviceAreLeftToTheFullComparison) {
  Synced s = Tree();
  s.files[2].identity.device = 8;
  s.scan[2].identity.device = 8;
  EXPECT_FALSE(s.Build().Matches(s.scan));
}

TEST(RootIndex, AFolderMatchesByInodeOnly) {
  Synced s = Tree();
  const RootIndex index = s.Build();
  s.scan[0].identity.mtime_ns += 5;  // a folder's mtime changes with its listing
  EXPECT_TRUE(index.Matches(s.scan));
  s.scan[0].identity.inode = 99;
  EXPECT_FALSE(index.Matches(s.scan));
}

TEST(RootIndex, AddedRemovedOrRenamedEntriesAreNotAMatch) {
  const Synced base = Tree();
  const RootIndex index = base.Build();
  Synced added = base;
  added.scan.push_back({"zz", EntryKind::kFile, Id(50)});
  EXPECT_FALSE(index.Matches(added.scan));
  Synced removed = base;
  removed.scan.pop_back();
  EXPECT_FALSE(index.Matches(removed.scan));
  Synced renamed = base;
  renamed.scan[5].path = "top2";
  EXPECT_FALSE(index.Matches(renamed.scan));
  Synced retyped = base;
  retyped.scan[5].kind = EntryKind::kFolder;
  EXPECT_FALSE(index.Matches(retyped.scan));
}

TEST(RootIndex, TheCloudMustHoldEveryPathWithTheSameContent) {
  {
    Synced s = Tree();
    s.remote.erase(s.remote.begin() + 2);  // a/y.txt missing in the cloud
    EXPECT_FALSE(s.Build().Matches(s.scan));
  }
  {
    Synced s = Tree();
    s.remote[2].digest = DigestOf("other content");
    EXPECT_FALSE(s.Build().Matches(s.scan));
  }
  {
    Synced s = Tree();
    s.remote[2].has_digest = false;  // listed without a hash: only an upload can compare
    EXPECT_FALSE(s.Build().Matches(s.scan));
  }
  {
    Synced s = Tree();
    s.remote[2].kind = EntryKind::kFolder;
    EXPECT_FALSE(s.Build().Matches(s.scan));
  }
  {
    Synced s = Tree();
    s.remote.push_back({.path = "extra", .kind = EntryKind::kFile, .size = 1});
    EXPECT_FALSE(s.Build().Matches(s.scan));
  }
}

TEST(RootIndex, ARecordWithoutADigestIsNotAMatch) {
  Synced s = Tree();
  s.files[1].has_digest = false;
  EXPECT_FALSE(s.Build().Matches(s.scan));
}

TEST(RootIndex, ACaseOnlyDifferenceMattersOnBothKindsOfCloud) {
  Synced s = Tree();
  s.remote[5].path = "TOP";  // the cloud still shows the old case
  EXPECT_FALSE(s.Build(false).Matches(s.scan));
  EXPECT_FALSE(s.Build(true).Matches(s.scan));
}

TEST(RootIndex, TwoCloudPathsThatFoldTogetherAreNotAMatch) {
  Synced s = Tree();
  s.File("Top", 9);  // "Top" and "top" are one path on a case-insensitive cloud
  s.SortScan();
  EXPECT_TRUE(s.Build(false).Matches(s.scan));
  EXPECT_FALSE(s.Build(true).Matches(s.scan));
}

TEST(RootIndex, ADecomposedNameIsLeftToTheFullComparisonOnACaseInsensitiveCloud) {
  Synced s = Tree();
  s.File("cafe\xCC\x81", 10);  // "café" in NFD
  s.SortScan();
  EXPECT_TRUE(s.Build(false).Matches(s.scan));
  EXPECT_FALSE(s.Build(true).Matches(s.scan));
}

TEST(RootIndex, UsesAboutSeventyTwoBytesPerRecordPlusThePath) {
  Synced s;
  for (std::uint64_t i = 0; i < 1000; ++i) s.File("d/f" + std::to_string(1000 + i), 10 + i);
  s.SortScan();
  const RootIndex index = s.Build();
  EXPECT_TRUE(index.Matches(s.scan));
  EXPECT_LE(index.memory_bytes(), 1000u * (72 + std::string("d/f1000").size()));
}

}  // namespace
}  // namespace filesync::store
