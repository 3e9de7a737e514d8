#include "scan/exclude.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace filesync::scan {
namespace {

ExcludeMatcher Make(const std::vector<std::string>& patterns) {
  auto matcher = ExcludeMatcher::Compile(patterns);
  EXPECT_TRUE(matcher.ok()) << matcher.status().ToString();
  return matcher.ok() ? std::move(matcher).value() : ExcludeMatcher();
}

TEST(ExcludeTest, EmptyMatcherExcludesNothing) {
  const ExcludeMatcher m = Make({});
  EXPECT_TRUE(m.empty());
  EXPECT_FALSE(m.Excluded("a", false));
  EXPECT_FALSE(m.Excluded("a/b", true));
}

TEST(ExcludeTest, BasenameGlobMatchesAtAnyDepth) {
  const ExcludeMatcher m = Make({"*.tmp"});
  EXPECT_TRUE(m.Excluded("a.tmp", false));
  EXPECT_TRUE(m.Excluded("x/y/a.tmp", false));
  EXPECT_TRUE(m.Excluded(".tmp", false));
  EXPECT_TRUE(m.Excluded("dir.tmp", true));
  EXPECT_FALSE(m.Excluded("a.tmpx", false));
  EXPECT_FALSE(m.Excluded("a.tmp.txt", false));
  EXPECT_FALSE(m.Excluded("tmp", false));
}

TEST(ExcludeTest, LiteralNameMatchesAtAnyDepth) {
  const ExcludeMatcher m = Make({".git", "node_modules"});
  EXPECT_TRUE(m.Excluded(".git", true));
  EXPECT_TRUE(m.Excluded("sub/.git", true));
  EXPECT_TRUE(m.Excluded("sub/.git", false));
  EXPECT_TRUE(m.Excluded("a/b/node_modules", true));
  EXPECT_FALSE(m.Excluded("a/.gitignore", false));
  EXPECT_FALSE(m.Excluded("my.git", false));
  EXPECT_FALSE(m.Excluded("node_modules2", true));
}

TEST(ExcludeTest, LeadingSlashAnchorsAtRoot) {
  const ExcludeMatcher m = Make({"/build"});
  EXPECT_TRUE(m.Excluded("build", true));
  EXPECT_TRUE(m.Excluded("build", false));
  EXPECT_FALSE(m.Excluded("src/build", true));
  EXPECT_FALSE(m.Excluded("builds", true));
}

TEST(ExcludeTest, InnerSlashAnchorsAtRoot) {
  const ExcludeMatcher m = Make({"docs/*.pdf"});
  EXPECT_TRUE(m.Excluded("docs/a.pdf", false));
  EXPECT_FALSE(m.Excluded("x/docs/a.pdf", false));
  EXPECT_FALSE(m.Excluded("docs/sub/a.pdf", false));  // '*' does not cross '/'
  EXPECT_FALSE(m.Excluded("docs/a.pdf.txt", false));
}

TEST(ExcludeTest, TrailingSlashMatchesDirectoriesOnly) {
  const ExcludeMatcher m = Make({"cache/"});
  EXPECT_TRUE(m.Excluded("cache", true));
  EXPECT_TRUE(m.Excluded("a/b/cache", true));
  EXPECT_FALSE(m.Excluded("cache", false));
  EXPECT_FALSE(m.Excluded("a/cache", false));
  EXPECT_TRUE(m.Excluded("cache/file.txt", false));  // below an excluded dir
}

TEST(ExcludeTest, AnchoredDirectoryOnly) {
  const ExcludeMatcher m = Make({"/out/"});
  EXPECT_TRUE(m.Excluded("out", true));
  EXPECT_FALSE(m.Excluded("out", false));
  EXPECT_FALSE(m.Excluded("a/out", true));
}

TEST(ExcludeTest, DoubleStarAroundComponent) {
  const ExcludeMatcher m = Make({"**/tmp/**"});
  EXPECT_TRUE(m.Excluded("tmp/x", false));
  EXPECT_TRUE(m.Excluded("a/b/tmp/x", false));
  EXPECT_TRUE(m.Excluded("a/tmp/x/y/z", false));
  EXPECT_TRUE(m.Matches("a/tmp/x", false));
  // A trailing "/**" is everything inside, not the directory itself.
  EXPECT_FALSE(m.Matches("a/tmp", true));
  EXPECT_FALSE(m.Excluded("a/tmpx/y", false));
}

TEST(ExcludeTest, DoubleStarInTheMiddleMatchesZeroOrMore) {
  const ExcludeMatcher m = Make({"a/**/b"});
  EXPECT_TRUE(m.Excluded("a/b", false));
  EXPECT_TRUE(m.Excluded("a/x/b", false));
  EXPECT_TRUE(m.Excluded("a/x/y/b", true));
  EXPECT_FALSE(m.Excluded("a/x/bb", false));
  EXPECT_FALSE(m.Excluded("z/a/b", false));
  EXPECT_FALSE(m.Excluded("ab", false));
}

TEST(ExcludeTest, LeadingDoubleStarMatchesAtAnyDepthIncludingRoot) {
  const ExcludeMatcher m = Make({"**/logs/*.log"});
  EXPECT_TRUE(m.Excluded("logs/a.log", false));
  EXPECT_TRUE(m.Excluded("x/y/logs/a.log", false));
  EXPECT_FALSE(m.Excluded("x/logs/sub/a.log", false));
}

TEST(ExcludeTest, StarAndQuestionMarkNeverCrossSlash) {
  const ExcludeMatcher m = Make({"a*b", "/x?y"});
  EXPECT_TRUE(m.Excluded("ab", false));
  EXPECT_TRUE(m.Excluded("aXYZb", false));
  EXPECT_TRUE(m.Excluded("dir/aXb", false));
  EXPECT_TRUE(m.Excluded("x-y", false));
  EXPECT_FALSE(m.Matches("x/y", false));
  EXPECT_FALSE(m.Matches("xy", false));
  const ExcludeMatcher anchored = Make({"/a*b"});
  EXPECT_FALSE(anchored.Matches("a/b", false));
  EXPECT_FALSE(anchored.Matches("ax/yb", false));
}

TEST(ExcludeTest, CharacterClasses) {
  const ExcludeMatcher m = Make({"file[abc].txt", "v[0-9]", "[!x]y", "[]]z"});
  EXPECT_TRUE(m.Excluded("filea.txt", false));
  EXPECT_TRUE(m.Excluded("d/filec.txt", false));
  EXPECT_FALSE(m.Excluded("filed.txt", false));
  EXPECT_FALSE(m.Excluded("file.txt", false));
  EXPECT_TRUE(m.Excluded("v7", false));
  EXPECT_FALSE(m.Excluded("vx", false));
  EXPECT_TRUE(m.Excluded("ay", false));
  EXPECT_FALSE(m.Excluded("xy", false));
  EXPECT_TRUE(m.Excluded("]z", false));
}

TEST(ExcludeTest, BackslashEscapesWildcards) {
  const ExcludeMatcher m = Make({"a\\*b"});
  EXPECT_TRUE(m.Excluded("a*b", false));
  EXPECT_FALSE(m.Excluded("axb", false));
}

TEST(ExcludeTest, ExcludedCoversEverythingBelowAnExcludedDirectory) {
  const ExcludeMatcher m = Make({"node_modules", "/build"});
  EXPECT_TRUE(m.Excluded("node_modules/pkg/index.js", false));
  EXPECT_TRUE(m.Excluded("web/node_modules/x", true));
  EXPECT_TRUE(m.Excluded("build/out/a.o", false));
  EXPECT_FALSE(m.Matches("build/out/a.o", false));
  EXPECT_FALSE(m.Excluded("src/build/a.o", false));
}

TEST(ExcludeTest, BadPatternsAreRejectedNamingThePattern) {
  for (const std::string bad : {"", "/", "abc[", "x/[a-", "a\\", "a//b"}) {
    auto m = ExcludeMatcher::Compile({"ok", bad});
    ASSERT_FALSE(m.ok()) << "pattern \"" << bad << "\" accepted";
    EXPECT_EQ(m.status().kind(), Status::Kind::kInvalidArgument);
    EXPECT_NE(m.status().message().find("\"" + bad + "\""), std::string::npos)
        << m.status().message();
  }
}

}  // namespace
}  // namespace filesync::scan
