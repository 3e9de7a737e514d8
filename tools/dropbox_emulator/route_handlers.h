// The emulator's endpoint handlers, one function per route of the table in routes.cc, grouped by
// the file that implements them, and the argument and reply helpers they share (routes.cc).
// Every handler has the RouteHandler signature and answers exactly what Dropbox answers for its
// route (reference §15). Thread safety: as routes.h.
#pragma once

#include <cstddef>
#include <optional>
#include <string>

#include "dropbox_emulator/routes.h"

namespace filesync::emulator {

// routes_account.cc: the one fixed account.
Reply CheckUser(RouteContext& ctx, const Call& call);
Reply GetCurrentAccount(RouteContext& ctx, const Call& call);
Reply GetSpaceUsage(RouteContext& ctx, const Call& call);
Reply RevokeToken(RouteContext& ctx, const Call& call);

// routes_files.cc: listing, cursors, longpoll, metadata, folders, delete, move/copy, download.
Reply ListFolder(RouteContext& ctx, const Call& call);
Reply ListFolderContinue(RouteContext& ctx, const Call& call);
Reply ListFolderGetLatestCursor(RouteContext& ctx, const Call& call);
Reply ListFolderLongpoll(RouteContext& ctx, const Call& call);
Reply GetMetadata(RouteContext& ctx, const Call& call);
Reply CreateFolder(RouteContext& ctx, const Call& call);
Reply Delete(RouteContext& ctx, const Call& call);
Reply DeleteBatch(RouteContext& ctx, const Call& call);
Reply DeleteBatchCheck(RouteContext& ctx, const Call& call);
Reply Move(RouteContext& ctx, const Call& call);
Reply Copy(RouteContext& ctx, const Call& call);
Reply MoveBatch(RouteContext& ctx, const Call& call);
Reply CopyBatch(RouteContext& ctx, const Call& call);
Reply MoveBatchCheck(RouteContext& ctx, const Call& call);
Reply CopyBatchCheck(RouteContext& ctx, const Call& call);
Reply Download(RouteContext& ctx, const Call& call);

// routes_upload.cc: files/upload and the upload sessions.
Reply Upload(RouteContext& ctx, const Call& call);
Reply UploadSessionStart(RouteContext& ctx, const Call& call);
Reply UploadSessionAppend(RouteContext& ctx, const Call& call);
Reply UploadSessionAppendBatch(RouteContext& ctx, const Call& call);
Reply UploadSessionFinish(RouteContext& ctx, const Call& call);
Reply UploadSessionStartBatch(RouteContext& ctx, const Call& call);
Reply UploadSessionFinishBatchV2(RouteContext& ctx, const Call& call);
Reply UploadSessionFinishBatch(RouteContext& ctx, const Call& call);
Reply UploadSessionFinishBatchCheck(RouteContext& ctx, const Call& call);

// 400 with the Dropbox-style text for a bad argument.
Reply BadArgument(const std::string& route, const std::string& detail);
// 429 too_many_write_operations: a single commit found the CommitLock held.
Reply TooManyWrites();

// Checks a path field against its alias pattern; returns an error text or "".
std::string PathProblem(const std::optional<std::string>& path, PathAlias alias, const char* field);

// Reads the required list field "entries" of `r` (at least `min_items`, at most 1000 items):
// read_entry(e) is called for each item, in order, with a reader named "entries[i]" over it,
// until `r` holds an error. read_entry finishes `e` and merges it into `r` itself, so it can
// check what the entry's reader cannot know after the merge.
template <typename ReadEntry>
void ReadEntries(ArgReader& r, std::size_t min_items, ReadEntry&& read_entry) {
  const nlohmann::json* entries = r.Raw("entries", true);
  if (entries == nullptr) return;
  if (!entries->is_array()) {
    r.Fail("'entries': expected list");
    return;
  }
  if (entries->size() < min_items) {
    r.Fail("'entries': fewer than " + std::to_string(min_items) + " items");
  }
  if (entries->size() > 1000) r.Fail("'entries': more than 1000 items");
  for (std::size_t i = 0; i < entries->size() && r.ok(); ++i) {
    ArgReader e((*entries)[i], "entries[" + std::to_string(i) + "]");
    read_entry(e);
  }
}

// An async job of `kind` that completes with {".tag":"complete","entries":results} after
// `pending_polls` in_progress answers; the reply is its async_job_id.
Reply AsyncJob(RouteContext& ctx, const std::string& kind, nlohmann::json results,
               int pending_polls = 0);
// A */check route of the job family `kind`: the job's status, or invalid_async_job_id.
Reply CheckJob(RouteContext& ctx, const Call& call, const std::string& kind);

}  // namespace filesync::emulator
