#include "plan/planner.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace filesync::plan {
namespace {

using core::EntryKind;

hash::Digest D(const std::string& content) { return hash::HashBytes(content); }

LocalItem File(std::string path, std::uint64_t inode, const std::string& content,
               bool known = true) {
  LocalItem l;
  l.path = std::move(path);
  l.kind = EntryKind::kFile;
  l.identity = {
      .size = content.size(), .mtime_ns = 1000, .ctime_ns = 1000, .inode = inode, .device = 1};
  l.digest = D(content);
  l.digest_known = known;
  return l;
}

LocalItem Folder(std::string path, std::uint64_t inode) {
  LocalItem l;
  l.path = std::move(path);
  l.kind = EntryKind::kFolder;
  l.identity = {.size = 0, .mtime_ns = 1, .ctime_ns = 1, .inode = inode, .device = 1};
  return l;
}

RemoteItem RFile(std::string path, const std::string& content) {
  return {.path = std::move(path),
          .kind = EntryKind::kFile,
          .size = content.size(),
          .digest = D(content),
          .digest_known = true};
}

RemoteItem RFolder(std::string path) {
  return {.path = std::move(path),
          .kind = EntryKind::kFolder,
          .size = 0,
          .digest = {},
          .digest_known = false};
}

PreviousItem Prev(const LocalItem& l) {
  return {.path = l.path,
          .kind = l.kind,
          .identity = l.identity,
          .digest = l.digest,
          .digest_known = l.digest_known};
}

std::vector<std::string> Describe(const Plan& plan) {
  std::vector<std::string> out;
  for (const Action& a : plan.actions) {
    std::string s = ActionKindName(a.kind);
    s += " " + (a.kind == ActionKind::kMove ? a.from + "->" : std::string()) + a.path;
    out.push_back(s);
  }
  return out;
}

using V = std::vector<std::string>;

TEST(Planner, InSyncTreeNeedsNothing) {
  auto plan =
      MakePlan({Folder("a", 2), File("a/x", 3, "x")}, {RFolder("a"), RFile("a/x", "x")}, {}, {});
  EXPECT_TRUE(plan.actions.empty());
}

TEST(Planner, NewFilesUploadAndParentsAreNotCreatedSeparately) {
  auto plan = MakePlan({Folder("a", 2), File("a/x", 3, "x"), Folder("empty", 4)}, {}, {}, {});
  EXPECT_EQ(Describe(plan), (V{"create_folder empty", "upload a/x"}));
}

TEST(Planner, ChangedContentUploadsButSameContentDoesNot) {
  auto plan = MakePlan({File("x", 3, "new"), File("y", 4, "same")},
                       {RFile("x", "old"), RFile("y", "same")}, {}, {});
  EXPECT_EQ(Describe(plan), (V{"upload x"}));
}

TEST(Planner, UnknownLocalDigestWithSameSizeUploads) {
  auto plan = MakePlan({File("x", 3, "abc", /*known=*/false)}, {RFile("x", "abc")}, {}, {});
  EXPECT_EQ(Describe(plan), (V{"upload x"}));
}

TEST(Planner, DeletesCollapseUnderADeletedFolder) {
  auto plan = MakePlan({},
                       {RFolder("d"), RFile("d/1", "1"), RFile("d/2", "2"), RFolder("d/e"),
                        RFile("d/e/3", "3"), RFile("top", "t")},
                       {}, {.max_delete_count = 100});
  EXPECT_EQ(Describe(plan), (V{"delete d", "delete top"}));
  EXPECT_EQ(plan.entries_deleted, 6u);
}

TEST(Planner, RenamedFileByInodeIsAMove) {
  const LocalItem old_file = File("old.txt", 7, "content");
  auto plan = MakePlan({File("new.txt", 7, "content")}, {RFile("old.txt", "content")},
                       {Prev(old_file)}, {});
  EXPECT_EQ(Describe(plan), (V{"move old.txt->new.txt"}));
}

TEST(Planner, RenamedFolderIsOneMoveEvenWithManyFiles) {
  std::vector<LocalItem> local{Folder("new", 2)};
  std::vector<RemoteItem> remote{RFolder("old")};
  std::vector<PreviousItem> prev{Prev(Folder("old", 2))};
  for (int i = 0; i < 100; ++i) {
    const std::string n = std::to_string(i);
    local.push_back(File("new/" + n, 100 + static_cast<std::uint64_t>(i), n));
    remote.push_back(RFile("old/" + n, n));
    prev.push_back(Prev(File("old/" + n, 100 + static_cast<std::uint64_t>(i), n)));
  }
  auto plan = MakePlan(local, remote, prev, {.max_delete_count = 10});
  EXPECT_EQ(Describe(plan), (V{"move old->new"}));
  EXPECT_FALSE(plan.blocked);
}

TEST(Planner, RenamedFolderWithAnEditedFileMovesThenUploads) {
  auto plan =
      MakePlan({Folder("b", 2), File("b/x", 3, "edited")}, {RFolder("a"), RFile("a/x", "orig")},
               {Prev(Folder("a", 2)), Prev(File("a/x", 3, "orig"))}, {});
  EXPECT_EQ(Describe(plan), (V{"move a->b", "upload b/x"}));
}

TEST(Planner, MoveByContentWhenInodeIsUnknown) {
  auto plan = MakePlan({File("copy/x", 99, "payload")},
                       {RFile("orig/x", "payload"), RFolder("orig")}, {}, {});
  EXPECT_EQ(Describe(plan), (V{"move orig/x->copy/x", "delete orig"}));
}

TEST(Planner, TypeChangeDeletesFirst) {
  auto plan = MakePlan({Folder("x", 2), File("x/in", 3, "i"), File("y", 4, "file now")},
                       {RFile("x", "was a file"), RFolder("y"), RFile("y/old", "o")}, {}, {});
  EXPECT_EQ(Describe(plan), (V{"delete x", "delete y", "upload x/in", "upload y"}));
  EXPECT_EQ(plan.actions[0].phase, kPhaseReplace);
}

TEST(Planner, CaseCollisionsSyncOneDeterministicChoice) {
  PlanOptions opts;
  opts.case_insensitive = true;
  auto plan = MakePlan({File("b.txt", 3, "lower"), File("B.txt", 4, "upper")}, {}, {}, opts);
  EXPECT_EQ(Describe(plan), (V{"upload B.txt"}));
  ASSERT_EQ(plan.issues.size(), 1u);
  EXPECT_EQ(plan.issues[0].path, "b.txt");
  // Same input in another order: same choice.
  auto again = MakePlan({File("B.txt", 4, "upper"), File("b.txt", 3, "lower")},
                        {RFile("B.txt", "upper")}, {}, opts);
  EXPECT_TRUE(again.actions.empty());
}

TEST(Planner, NfdAndNfcNamesCollideOnDropbox) {
  PlanOptions opts;
  opts.case_insensitive = true;
  auto plan = MakePlan({File("caf\xC3\xA9", 3, "1"), File("cafe\xCC\x81", 4, "2")}, {}, {}, opts);
  EXPECT_EQ(plan.issues.size(), 1u);
  EXPECT_EQ(Describe(plan).size(), 1u);
}

TEST(Planner, CaseOnlyRenameIsAMoveOnCaseInsensitiveClouds) {
  PlanOptions opts;
  opts.case_insensitive = true;
  auto plan = MakePlan({File("Readme.md", 3, "r")}, {RFile("readme.md", "r")}, {}, opts);
  EXPECT_EQ(Describe(plan), (V{"move readme.md->Readme.md"}));
}

// A move lands at the spelling the cloud will show (NFC on Dropbox): an NFD-named target is not
// also "renamed" to itself, which would be a second move to the same cloud key in one plan.
TEST(Planner, NfdMoveTargetIsOneMoveNotAMovePlusARename) {
  PlanOptions opts;
  opts.case_insensitive = true;
  const std::string nfd = "A\xCC\x8Angstro\xCC\x88m1";  // "Ångström1", decomposed
  auto by_content =
      MakePlan({Folder("X.BIN", 2), File(nfd, 9, "payload")},
               {RFolder("X.BIN"), RFile("X.BIN/\xC3\x85ngstr\xC3\xB6m", "payload")}, {}, opts);
  EXPECT_EQ(Describe(by_content), (V{"move X.BIN/\xC3\x85ngstr\xC3\xB6m->" + nfd}));

  const LocalItem before = File("old", 7, "c");
  auto by_inode = MakePlan({File(nfd, 7, "c")}, {RFile("old", "c")}, {Prev(before)}, opts);
  EXPECT_EQ(Describe(by_inode), (V{"move old->" + nfd}));

  auto folder =
      MakePlan({Folder(nfd, 2), File(nfd + "/x", 3, "x")}, {RFolder("old"), RFile("old/x", "x")},
               {Prev(Folder("old", 2)), Prev(File("old/x", 3, "x"))}, opts);
  EXPECT_EQ(Describe(folder), (V{"move old->" + nfd}));
}

TEST(Planner, RefusedAndLongNamesAreReportedNotUploaded) {
  PlanOptions opts;
  opts.name_rules = NameRules::kDropbox;
  auto plan = MakePlan(
      {File("desktop.ini", 3, "x"), File(std::string(256, 'n'), 4, "y"), File("ok", 5, "z")}, {},
      {}, opts);
  EXPECT_EQ(Describe(plan), (V{"upload ok"}));
  EXPECT_EQ(plan.issues.size(), 2u);
}

TEST(Planner, MaxDeleteBlocksAndAllowOverrides) {
  std::vector<RemoteItem> remote;
  for (int i = 0; i < 20; ++i) remote.push_back(RFile("f" + std::to_string(i), "c"));
  auto blocked = MakePlan({}, remote, {}, {.max_delete_count = 5});
  EXPECT_TRUE(blocked.blocked.has_value());
  EXPECT_TRUE(blocked.actions.empty());
  auto allowed = MakePlan({}, remote, {}, {.max_delete_count = 5, .allow_mass_delete = true});
  EXPECT_EQ(allowed.actions.size(), 20u);
}

TEST(Planner, PercentLimitAppliesAboveTenEntries) {
  std::vector<RemoteItem> remote;
  std::vector<LocalItem> local;
  for (int i = 0; i < 30; ++i) {
    remote.push_back(RFile("f" + std::to_string(i), "c"));
    if (i >= 15)
      local.push_back(File("f" + std::to_string(i), static_cast<std::uint64_t>(i + 10), "c"));
  }
  PlanOptions opts{.max_delete_count = 1000, .max_delete_percent = 40};
  EXPECT_TRUE(MakePlan(local, remote, {}, opts).blocked.has_value());  // 15 of 30 = 50%
  opts.max_delete_percent = 60;
  EXPECT_FALSE(MakePlan(local, remote, {}, opts).blocked.has_value());
}

TEST(Planner, ProtectedPathsAreNeverDeleted) {
  PlanOptions opts;
  opts.protect = [](std::string_view p) { return p.starts_with("keep"); };
  auto plan = MakePlan({}, {RFolder("keep"), RFile("keep/a", "a"), RFile("gone", "g")}, {}, opts);
  EXPECT_EQ(Describe(plan), (V{"delete gone"}));
}

TEST(Planner, FolderWithAProtectedChildIsNotDeletedWhole) {
  PlanOptions opts;
  opts.protect = [](std::string_view p) { return p == "d/keep"; };
  auto plan = MakePlan({}, {RFolder("d"), RFile("d/keep", "k"), RFile("d/gone", "g")}, {}, opts);
  EXPECT_EQ(Describe(plan), (V{"delete d/gone"}));
}

TEST(Planner, FilesToHashOnlyWhereAComparisonIsPossible) {
  std::vector<LocalItem> local{File("same-size", 1, "abc", false),
                               File("other-size", 2, "abcd", false),
                               File("renamed?", 3, "zz", false), File("known", 4, "abc", true)};
  std::vector<RemoteItem> remote{RFile("same-size", "xyz"), RFile("other-size", "a"),
                                 RFile("vanished", "yy"), RFile("known", "abc")};
  auto idx = FilesToHash(local, remote, false);
  EXPECT_EQ(idx, (std::vector<std::size_t>{0, 2}));
}

}  // namespace
}  // namespace filesync::plan
