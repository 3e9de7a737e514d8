#include "core/rel_path.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace filesync::core {
namespace {

TEST(RelPath, JoinsParentsAndBaseNames) {
  EXPECT_EQ(JoinPath("/a", "b/c"), "/a/b/c");
  EXPECT_EQ(JoinPath("", "b"), "/b");
  EXPECT_EQ(JoinPath("/a", ""), "/a");
  EXPECT_EQ(ParentPath("/a/b/c"), "/a/b");
  EXPECT_EQ(ParentPath("/a"), "");
  EXPECT_EQ(ParentPath("a"), "");
  EXPECT_EQ(BaseName("/a/b/c"), "c");
  EXPECT_EQ(BaseName("c"), "c");
}

TEST(RelPath, UnderOrEqualIsComponentWise) {
  EXPECT_TRUE(UnderOrEqual("a", "a"));
  EXPECT_TRUE(UnderOrEqual("a/b", "a"));
  EXPECT_TRUE(UnderOrEqual("/r/a/b", "/r"));
  EXPECT_FALSE(UnderOrEqual("ab", "a"));
  EXPECT_FALSE(UnderOrEqual("a", "a/b"));
  EXPECT_FALSE(UnderOrEqual("b/a", "a"));
}

TEST(RelPath, CountsComponents) {
  EXPECT_EQ(Components("a"), 1U);
  EXPECT_EQ(Components("a/b/c"), 3U);
}

TEST(RelPath, RebaseKeepsWhatLiesBelowWhateverTheOldSpelling) {
  EXPECT_EQ(Rebase("A/b/c", 1, "x/y"), "x/y/b/c");
  EXPECT_EQ(Rebase("A", 1, "x"), "x");
  EXPECT_EQ(Rebase("a/b/c", 2, "z"), "z/c");
  // The record spells the moved folder in NFD (two bytes longer than the NFC name moved).
  EXPECT_EQ(Rebase("cafe\xCC\x81/f", 1, "new"), "new/f");
}

TEST(RelPath, RelativeToStripsTheRoot) {
  EXPECT_EQ(RelativeTo("/r/a/b", "/r", false), "a/b");
  EXPECT_EQ(RelativeTo("/r", "/r", false), "");
  EXPECT_EQ(RelativeTo("/a/b", "", false), "a/b");
  EXPECT_EQ(RelativeTo("", "", false), "");
  EXPECT_EQ(RelativeTo("/rr/a", "/r", false), std::nullopt);
  EXPECT_EQ(RelativeTo("/R/a", "/r", false), std::nullopt);
  EXPECT_EQ(RelativeTo("/x", "/r", false), std::nullopt);
}

TEST(RelPath, RelativeToFoldsOnACaseInsensitiveCloudAndKeepsThePathsSpelling) {
  EXPECT_EQ(RelativeTo("/R/Sub/F.txt", "/r", true), "Sub/F.txt");
  EXPECT_EQ(RelativeTo("/R", "/r", true), "");
  EXPECT_EQ(RelativeTo("/Rx/a", "/r", true), std::nullopt);
}

TEST(RelPath, RelativeToCountsComponentsNotBytesWhenFoldingChangesTheLength) {
  // The listed path in NFD (one byte longer) below the root in NFC.
  EXPECT_EQ(RelativeTo("/cafe\xCC\x81/x/y", "/caf\xC3\xA9", true), "x/y");
  // U+0130 (2 bytes) lower-cases to 'i' (1 byte).
  EXPECT_EQ(RelativeTo("/\xC4\xB0stanbul/a", "/istanbul", true), "a");
}

TEST(RelPath, ForEachAncestorGoesNearestFirst) {
  std::vector<std::string> seen;
  ForEachAncestor("a/b/c", [&](std::string_view a) { seen.emplace_back(a); });
  EXPECT_EQ(seen, (std::vector<std::string>{"a/b", "a"}));
  seen.clear();
  ForEachAncestor("/a/b", [&](std::string_view a) { seen.emplace_back(a); });
  EXPECT_EQ(seen, (std::vector<std::string>{"/a"}));
  seen.clear();
  ForEachAncestor("a", [&](std::string_view a) { seen.emplace_back(a); });
  EXPECT_TRUE(seen.empty());
}

TEST(RelPath, ForEachAncestorStopsWhenTold) {
  std::vector<std::string> seen;
  ForEachAncestor("a/b/c/d", [&](std::string_view a) {
    seen.emplace_back(a);
    return a != "a/b";
  });
  EXPECT_EQ(seen, (std::vector<std::string>{"a/b/c", "a/b"}));
}

TEST(RelPath, NfdAndNfcShareOneCloudKey) {
  const std::string nfd = "cafe\xCC\x81";  // e + combining acute
  EXPECT_EQ(CloudKey(nfd), CloudKey("CAF\xC3\x89"));
  EXPECT_EQ(CloudKey("/Docs/ReadMe.TXT"), "/docs/readme.txt");
}

TEST(RelPath, CloudKeyFoldsOnlyForACaseInsensitiveCloud) {
  EXPECT_EQ(CloudKey("/Docs/ReadMe.TXT", true), "/docs/readme.txt");
  EXPECT_EQ(CloudKey("/Docs/ReadMe.TXT", false), "/Docs/ReadMe.TXT");
  EXPECT_EQ(CloudKey("cafe\xCC\x81", false), "cafe\xCC\x81");  // not even normalised
}

}  // namespace
}  // namespace filesync::core
