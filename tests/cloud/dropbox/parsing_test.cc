#include "cloud/dropbox/parsing.h"

#include <gtest/gtest.h>

namespace filesync::dropbox {
namespace {

using nlohmann::json;

const char* kHelloHash = "9595c9df90075148eb06860365df33584b75bff782a510c6cd4883a419833d50";

TEST(Parsing, FileMetadataWithUnknownFields) {
  const json j = {{".tag", "file"},
                  {"name", "a.txt"},
                  {"id", "id:abc"},
                  {"path_lower", "/x/a.txt"},
                  {"path_display", "/X/a.txt"},
                  {"rev", "a1c10ce0dd78"},
                  {"size", 5},
                  {"content_hash", kHelloHash},
                  {"client_modified", "2015-05-12T15:50:38Z"},
                  {"brand_new_field", {{"nested", true}}},
                  {"is_downloadable", true}};
  auto m = ParseMetadata(j, Metadata::Tag::kUnknown);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->tag, Metadata::Tag::kFile);
  EXPECT_EQ(m->size, 5u);
  EXPECT_EQ(m->DisplayPath(), "/X/a.txt");
  ASSERT_TRUE(m->content_hash);
  EXPECT_EQ(hash::ToHex(*m->content_hash), kHelloHash);
  const cloud::RemoteEntry e = ToRemoteEntry(*m);
  EXPECT_EQ(e.kind, core::EntryKind::kFile);
  EXPECT_EQ(e.rev, "a1c10ce0dd78");
  EXPECT_TRUE(e.has_content_hash);
}

TEST(Parsing, FileWithoutContentHashOrPathDisplay) {
  auto m = ParseMetadata({{".tag", "file"}, {"name", "a"}, {"path_lower", "/a"}, {"size", 1}},
                         Metadata::Tag::kUnknown);
  ASSERT_TRUE(m.ok());
  EXPECT_FALSE(m->content_hash);
  EXPECT_EQ(m->DisplayPath(), "/a");
  EXPECT_FALSE(ToRemoteEntry(*m).has_content_hash);
}

TEST(Parsing, FileWithoutSizeIsMalformed) {
  EXPECT_FALSE(ParseMetadata({{".tag", "file"}, {"name", "a"}}, Metadata::Tag::kUnknown).ok());
}

TEST(Parsing, MissingTagUsesDefault) {
  auto m = ParseMetadata({{"name", "d"}, {"path_display", "/d"}}, Metadata::Tag::kFolder);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->tag, Metadata::Tag::kFolder);
  EXPECT_EQ(ToRemoteEntry(*m).kind, core::EntryKind::kFolder);
}

TEST(Parsing, ListPageDropsUnknownTagsKeepsDeleted) {
  const json j = {{"entries",
                   {{{".tag", "folder"},
                     {"name", "math"},
                     {"path_lower", "/h/math"},
                     {"path_display", "/H/math"},
                     {"id", "id:1"}},
                    {{".tag", "deleted"},
                     {"name", "pi.txt"},
                     {"path_lower", "/h/math/pi.txt"},
                     {"path_display", "/H/math/pi.txt"}},
                    {{".tag", "hologram"}, {"name", "z"}, {"path_lower", "/z"}}}},
                  {"cursor", "c1"},
                  {"has_more", true},
                  {"extra", 1}};
  auto page = ParseListFolderResult(j);
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  ASSERT_EQ(page->entries.size(), 2u);
  EXPECT_EQ(page->entries[1].tag, Metadata::Tag::kDeleted);
  EXPECT_EQ(page->cursor, "c1");
  EXPECT_TRUE(page->has_more);
  EXPECT_FALSE(ParseListFolderResult({{"entries", json::array()}}).ok());
}

TEST(Parsing, FinishBatchEntriesInlineSuccessAndFailures) {
  const json j = {{"entries",
                   {{{".tag", "success"},
                     {"name", "a.txt"},
                     {"id", "id:1"},
                     {"path_lower", "/a.txt"},
                     {"path_display", "/a.txt"},
                     {"rev", "0123456789"},
                     {"size", 5},
                     {"content_hash", kHelloHash}},
                    {{".tag", "failure"},
                     {"failure",
                      {{".tag", "path"},
                       {"path", {{".tag", "conflict"}, {"conflict", {{".tag", "folder"}}}}}}}},
                    {{".tag", "failure"}, {"failure", {{".tag", "too_many_write_operations"}}}}}}};
  auto entries = ParseBatchEntries(j, SuccessShape::kInline, "finish_batch_v2");
  ASSERT_TRUE(entries.ok()) << entries.status().ToString();
  ASSERT_EQ(entries->size(), 3u);
  EXPECT_TRUE((*entries)[0].success);
  ASSERT_TRUE((*entries)[0].metadata);
  EXPECT_EQ((*entries)[0].metadata->tag, Metadata::Tag::kFile);
  EXPECT_EQ((*entries)[0].metadata->size, 5u);
  EXPECT_EQ((*entries)[1].status.kind(), Status::Kind::kConflict);
  EXPECT_EQ((*entries)[2].status.kind(), Status::Kind::kRateLimited);
}

TEST(Parsing, DeleteBatchCompleteAndMoveBatchShapes) {
  const json del = {
      {".tag", "complete"},
      {"entries",
       {{{".tag", "success"},
         {"metadata", {{".tag", "file"}, {"name", "x"}, {"path_lower", "/x"}, {"size", 1}}}},
        {{".tag", "failure"},
         {"failure", {{".tag", "path_lookup"}, {"path_lookup", {{".tag", "not_found"}}}}}}}}};
  auto job = ParseJobStatus(del, SuccessShape::kUnderMetadata, "delete_batch");
  ASSERT_TRUE(job.ok()) << job.status().ToString();
  EXPECT_EQ(job->state, JobStatus::State::kComplete);
  ASSERT_EQ(job->entries.size(), 2u);
  EXPECT_TRUE(job->entries[0].success);
  EXPECT_EQ(job->entries[1].status.kind(), Status::Kind::kNotFound);

  const json moved = {{"entries",
                       {{{".tag", "success"},
                         {"success", {{".tag", "folder"}, {"name", "d"}, {"path_lower", "/d"}}}}}}};
  auto entries = ParseBatchEntries(moved, SuccessShape::kUnderSuccess, "move_batch_v2");
  ASSERT_TRUE(entries.ok());
  EXPECT_EQ((*entries)[0].metadata->tag, Metadata::Tag::kFolder);
}

TEST(Parsing, JobStatesAndAppendBatch) {
  auto launch = ParseJobStatus({{".tag", "async_job_id"}, {"async_job_id", "dbjid:1"}},
                               SuccessShape::kUnderMetadata, "x");
  ASSERT_TRUE(launch.ok());
  EXPECT_EQ(launch->state, JobStatus::State::kAsyncJobId);
  EXPECT_EQ(launch->async_job_id, "dbjid:1");
  auto progress = ParseJobStatus({{".tag", "in_progress"}}, SuccessShape::kUnderMetadata, "x");
  ASSERT_TRUE(progress.ok());
  EXPECT_EQ(progress->state, JobStatus::State::kInProgress);
  auto failed =
      ParseJobStatus({{".tag", "failed"}, {"failed", {{".tag", "too_many_write_operations"}}}},
                     SuccessShape::kUnderMetadata, "x");
  ASSERT_TRUE(failed.ok());
  EXPECT_EQ(failed->state, JobStatus::State::kFailed);
  EXPECT_EQ(failed->failed.kind(), Status::Kind::kRateLimited);

  auto append = ParseBatchEntries(
      {{"entries",
        {{{".tag", "success"}}, {{".tag", "failure"}, {"failure", {{".tag", "not_found"}}}}}}},
      SuccessShape::kNone, "append_batch");
  ASSERT_TRUE(append.ok());
  EXPECT_TRUE((*append)[0].success);
  EXPECT_EQ((*append)[1].status.kind(), Status::Kind::kNotFound);
}

}  // namespace
}  // namespace filesync::dropbox
