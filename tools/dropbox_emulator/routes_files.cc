// Namespace routes: listing, cursors, longpoll, metadata, folders, delete, move/copy, download.
// Single commits take the CommitLock without waiting (429 too_many_write_operations when it
// is held); delete_batch and move/copy_batch_v2 wait for it and hold it once for the batch.
#include "core/rel_path.h"
#include "dropbox_emulator/route_handlers.h"

namespace filesync::emulator {
namespace {

nlohmann::json LookupWrap(const StoreError& e) { return Tagged("path", e.error); }

struct ListArgs {
  std::string path;
  bool recursive = false;
  bool include_deleted = false;
  std::optional<std::uint32_t> limit;
};

// Shared by list_folder and get_latest_cursor. Returns an error text or "".
std::string ReadListArgs(const nlohmann::json& arg, ListArgs* out) {
  ArgReader r(arg, "request body");
  out->path = r.String("path", true).value_or("");
  out->recursive = r.Bool("recursive", false);
  r.Bool("include_media_info", false);
  out->include_deleted = r.Bool("include_deleted", false);
  r.Bool("include_has_explicit_shared_members", false);
  r.Bool("include_mounted_folders", true);
  if (auto limit = r.UInt("limit", false, 1, 2000)) out->limit = static_cast<std::uint32_t>(*limit);
  if (r.Raw("shared_link", false) != nullptr)
    r.Fail("shared_link is not supported by the emulator");
  r.Raw("include_property_groups", false);
  r.Bool("include_non_downloadable_files", true);
  r.Bool("include_restorable_info", false);
  if (!r.Finish()) return r.error();
  if (out->path == "/") {
    return "request body: path: Specify the root folder as an empty string rather than as \"/\".";
  }
  return PathProblem(out->path, PathAlias::kPathROrId, "path");
}

Reply PageReply(const ListPage& page) {
  return Reply::Json(
      {{"entries", page.entries}, {"cursor", page.cursor}, {"has_more", page.has_more}});
}

nlohmann::json DeleteErrorJson(const StoreError& e) {
  if (e.where == StoreError::Where::kLookup) return Tagged("path_lookup", e.error);
  return Tagged("path_write", e.error);
}

// The RelocationError value for a failed Namespace::Relocate.
nlohmann::json RelocationErrorJson(const StoreError& e) {
  switch (e.where) {
    case StoreError::Where::kLookup:
      return Tagged("from_lookup", e.error);
    case StoreError::Where::kIntoItself:
      return Tag("cant_move_folder_into_itself");
    default:
      return Tagged("to", e.error);
  }
}

// True if a and b (CloudKeys of "/…" paths) are equal or one is inside the other.
bool SameOrNested(const std::string& a, const std::string& b) {
  const std::string& shorter = a.size() <= b.size() ? a : b;
  const std::string& longer = a.size() <= b.size() ? b : a;
  if (longer.compare(0, shorter.size(), shorter) != 0) return false;
  return longer.size() == shorter.size() || longer[shorter.size()] == '/';
}

// Which entries of a relocation batch have a from/to path equal to, or nesting, a path of
// another entry.
std::vector<bool> NestedEntries(const std::vector<std::pair<std::string, std::string>>& items) {
  std::vector<std::vector<std::string>> keys(items.size());
  for (std::size_t i = 0; i < items.size(); ++i) {
    for (const std::string* p : {&items[i].first, &items[i].second}) {
      if (p->rfind("/", 0) == 0) keys[i].push_back(core::CloudKey(WithoutExtraLeadingSlashes(*p)));
    }
  }
  std::vector<bool> nested(items.size(), false);
  for (std::size_t i = 0; i < items.size(); ++i) {
    for (std::size_t j = i + 1; j < items.size(); ++j) {
      for (const auto& a : keys[i]) {
        for (const auto& b : keys[j]) {
          if (SameOrNested(a, b)) nested[i] = nested[j] = true;
        }
      }
    }
  }
  return nested;
}

nlohmann::json RelocationFailure(nlohmann::json relocation_error) {
  return {{".tag", "failure"},
          {"failure", Tagged("relocation_error", std::move(relocation_error))}};
}

// One entry of a relocation batch's result.
nlohmann::json RelocationOutcome(const Outcome<Entry>& moved) {
  if (!moved.ok()) return RelocationFailure(RelocationErrorJson(moved.error));
  return {{".tag", "success"}, {"success", MetadataJson(*moved.value)}};
}

// move_batch_v2 / copy_batch_v2: validates RelocationBatchArgBase (+ allow_ownership_transfer
// for moves), then relocates every entry in order under one hold of the write lock. An entry
// whose from/to path equals or nests another entry's path fails with
// duplicated_or_nested_paths (its outcome would depend on the order). The result is an async
// job that answers in_progress once before complete.
Reply RelocationBatch(RouteContext& ctx, const Call& call, bool copy) {
  ArgReader r(call.arg, "request body");
  std::vector<std::pair<std::string, std::string>> items;
  ReadEntries(r, 1, [&](ArgReader& e) {
    const auto from = e.String("from_path", true);
    const auto to = e.String("to_path", true);
    e.Finish();
    r.Merge(e);
    if (auto p = PathProblem(from, PathAlias::kWritePathOrId, "from_path"); !p.empty()) r.Fail(p);
    if (auto p = PathProblem(to, PathAlias::kWritePathOrId, "to_path"); !p.empty()) r.Fail(p);
    if (r.ok()) items.emplace_back(*from, *to);
  });
  const bool autorename = r.Bool("autorename", false);
  if (!copy) r.Bool("allow_ownership_transfer", false);
  if (!r.Finish()) return BadArgument(call.route, r.error());

  const std::vector<bool> nested = NestedEntries(items);
  nlohmann::json results = nlohmann::json::array();
  {
    auto guard = ctx.commit_lock->Acquire();
    for (std::size_t i = 0; i < items.size(); ++i) {
      results.push_back(nested[i] ? RelocationFailure(Tag("duplicated_or_nested_paths"))
                                  : RelocationOutcome(ctx.ns->Relocate(
                                        items[i].first, items[i].second, autorename, copy)));
    }
  }
  return AsyncJob(ctx, copy ? "copy_batch" : "move_batch", std::move(results), 1);
}

// list_folder and get_latest_cursor share their argument.
Reply ListFolderOrLatestCursor(RouteContext& ctx, const Call& call, bool cursor_only) {
  ListArgs a;
  if (auto problem = ReadListArgs(call.arg, &a); !problem.empty()) {
    return BadArgument(call.route, problem);
  }
  if (!cursor_only) {
    auto page = ctx.ns->List(a.path, a.recursive, a.include_deleted, a.limit);
    if (!page.ok()) return Reply::RouteError(LookupWrap(page.error));
    return PageReply(*page.value);
  }
  auto cursor = ctx.ns->LatestCursor(a.path, a.recursive, a.include_deleted);
  if (!cursor.ok()) return Reply::RouteError(LookupWrap(cursor.error));
  return Reply::Json({{"cursor", *cursor.value}});
}

// move_v2 and copy_v2 share their argument (RelocationArg).
Reply Relocation(RouteContext& ctx, const Call& call, bool copy) {
  ArgReader r(call.arg, "request body");
  const auto from = r.String("from_path", true);
  const auto to = r.String("to_path", true);
  r.Bool("allow_shared_folder", false);
  const bool autorename = r.Bool("autorename", false);
  r.Bool("allow_ownership_transfer", false);
  if (!r.Finish()) return BadArgument(call.route, r.error());
  for (const auto& [p, name] : {std::pair{from, "from_path"}, std::pair{to, "to_path"}}) {
    if (auto problem = PathProblem(p, PathAlias::kWritePathOrId, name); !problem.empty()) {
      return BadArgument(call.route, problem);
    }
  }
  auto guard = ctx.commit_lock->TryAcquire();
  if (!guard) return TooManyWrites();
  auto moved = ctx.ns->Relocate(*from, *to, autorename, copy);
  if (!moved.ok()) return Reply::RouteError(RelocationErrorJson(moved.error));
  return Reply::Json({{"metadata", MetadataJson(*moved.value)}});
}

// The reply to a download of `file` that the Range header asked for (`range`).
Reply DownloadReply(RouteContext& ctx, const Entry& file, const ByteRange& range) {
  Reply reply;
  reply.content_type = "application/octet-stream";
  reply.file_path = ctx.blobs->PathFor(file.content_hash);
  reply.file_offset = range.first;
  reply.file_size = range.length;
  if (range.kind == ByteRange::Kind::kPartial) {
    reply.status = 206;
    reply.headers.emplace_back("Content-Range", "bytes " + std::to_string(range.first) + "-" +
                                                    std::to_string(range.first + range.length - 1) +
                                                    "/" + std::to_string(file.size));
  }
  reply.headers.emplace_back("Dropbox-API-Result", MetadataJson(file, false).dump(-1, ' ', true));
  return reply;
}

}  // namespace

Reply ListFolder(RouteContext& ctx, const Call& call) {
  return ListFolderOrLatestCursor(ctx, call, false);
}

Reply ListFolderGetLatestCursor(RouteContext& ctx, const Call& call) {
  return ListFolderOrLatestCursor(ctx, call, true);
}

Reply ListFolderContinue(RouteContext& ctx, const Call& call) {
  ArgReader r(call.arg, "request body");
  const std::string cursor = r.String("cursor", true).value_or("");
  if (!r.Finish()) return BadArgument(call.route, r.error());
  auto page = ctx.ns->Continue(cursor);
  if (!page.ok()) {
    if (page.error.where == StoreError::Where::kBadCursor) {
      return BadArgument(call.route, "request body: cursor: invalid cursor");
    }
    if (page.error.where == StoreError::Where::kReset) return Reply::RouteError(Tag("reset"));
    return Reply::RouteError(LookupWrap(page.error));
  }
  return PageReply(*page.value);
}

Reply ListFolderLongpoll(RouteContext& ctx, const Call& call) {
  ArgReader r(call.arg, "request body");
  const std::string cursor = r.String("cursor", true).value_or("");
  const std::uint64_t timeout = r.UInt("timeout", false, 30, 480).value_or(30);
  if (!r.Finish()) return BadArgument(call.route, r.error());
  const auto wait =
      std::min<std::chrono::milliseconds>(std::chrono::seconds(timeout), ctx.longpoll_max);
  auto changes = ctx.ns->Longpoll(cursor, wait);
  if (!changes.ok()) {
    if (changes.error.where == StoreError::Where::kReset) return Reply::RouteError(Tag("reset"));
    return BadArgument(call.route, "request body: cursor: invalid cursor");
  }
  return Reply::Json({{"changes", *changes.value}});
}

Reply GetMetadata(RouteContext& ctx, const Call& call) {
  ArgReader r(call.arg, "request body");
  const auto path = r.String("path", true);
  r.Bool("include_media_info", false);
  const bool include_deleted = r.Bool("include_deleted", false);
  r.Bool("include_has_explicit_shared_members", false);
  r.Raw("include_property_groups", false);
  if (!r.Finish()) return BadArgument(call.route, r.error());
  if (auto p = PathProblem(path, PathAlias::kReadPath, "path"); !p.empty()) {
    return BadArgument(call.route, p);
  }
  auto md = ctx.ns->GetMetadata(*path, include_deleted);
  if (!md.ok()) return Reply::RouteError(LookupWrap(md.error));
  return Reply::Json(*md.value);
}

Reply CreateFolder(RouteContext& ctx, const Call& call) {
  ArgReader r(call.arg, "request body");
  const auto path = r.String("path", true);
  const bool autorename = r.Bool("autorename", false);
  if (!r.Finish()) return BadArgument(call.route, r.error());
  if (auto p = PathProblem(path, PathAlias::kWritePath, "path"); !p.empty()) {
    return BadArgument(call.route, p);
  }
  auto guard = ctx.commit_lock->TryAcquire();
  if (!guard) return TooManyWrites();
  auto folder = ctx.ns->CreateFolder(*path, autorename);
  if (!folder.ok()) return Reply::RouteError(Tagged("path", folder.error.error));
  return Reply::Json({{"metadata", MetadataJson(*folder.value, false)}});
}

Reply Delete(RouteContext& ctx, const Call& call) {
  ArgReader r(call.arg, "request body");
  const auto path = r.String("path", true);
  const auto parent_rev = r.String("parent_rev", false);
  if (!r.Finish()) return BadArgument(call.route, r.error());
  if (auto p = PathProblem(path, PathAlias::kWritePathOrId, "path"); !p.empty()) {
    return BadArgument(call.route, p);
  }
  auto guard = ctx.commit_lock->TryAcquire();
  if (!guard) return TooManyWrites();
  auto deleted = ctx.ns->Delete(*path, parent_rev);
  if (!deleted.ok()) return Reply::RouteError(DeleteErrorJson(deleted.error));
  return Reply::Json({{"metadata", MetadataJson(*deleted.value)}});
}

Reply DeleteBatch(RouteContext& ctx, const Call& call) {
  ArgReader r(call.arg, "request body");
  std::vector<std::pair<std::string, std::optional<std::string>>> items;
  ReadEntries(r, 0, [&](ArgReader& e) {
    auto path = e.String("path", true);
    auto rev = e.String("parent_rev", false);
    e.Finish();
    r.Merge(e);
    if (auto p = PathProblem(path, PathAlias::kWritePathOrId, "path"); !p.empty()) r.Fail(p);
    if (r.ok()) items.emplace_back(*path, rev);
  });
  if (!r.Finish()) return BadArgument(call.route, r.error());
  nlohmann::json results = nlohmann::json::array();
  {
    auto guard = ctx.commit_lock->Acquire();
    for (auto& o : ctx.ns->DeleteMany(items)) {
      if (o.ok()) {
        results.push_back({{".tag", "success"}, {"metadata", MetadataJson(*o.value)}});
      } else {
        results.push_back({{".tag", "failure"}, {"failure", DeleteErrorJson(o.error)}});
      }
    }
  }
  return AsyncJob(ctx, "delete_batch", std::move(results));
}

Reply DeleteBatchCheck(RouteContext& ctx, const Call& call) {
  return CheckJob(ctx, call, "delete_batch");
}

Reply Move(RouteContext& ctx, const Call& call) { return Relocation(ctx, call, false); }

Reply Copy(RouteContext& ctx, const Call& call) { return Relocation(ctx, call, true); }

Reply MoveBatch(RouteContext& ctx, const Call& call) { return RelocationBatch(ctx, call, false); }

Reply CopyBatch(RouteContext& ctx, const Call& call) { return RelocationBatch(ctx, call, true); }

Reply MoveBatchCheck(RouteContext& ctx, const Call& call) {
  return CheckJob(ctx, call, "move_batch");
}

Reply CopyBatchCheck(RouteContext& ctx, const Call& call) {
  return CheckJob(ctx, call, "copy_batch");
}

Reply Download(RouteContext& ctx, const Call& call) {
  ArgReader r(call.arg, "Dropbox-API-Arg");
  const auto path = r.String("path", true);
  r.String("rev", false);
  if (!r.Finish()) return BadArgument(call.route, r.error());
  if (auto p = PathProblem(path, PathAlias::kReadPath, "path"); !p.empty()) {
    return BadArgument(call.route, p);
  }
  auto file = ctx.ns->GetFile(*path);
  if (!file.ok()) return Reply::RouteError(LookupWrap(file.error));
  const ByteRange range = ResolveRange(call.range, file.value->size);
  if (range.kind == ByteRange::Kind::kUnsatisfiable) {
    Reply refused = Reply::Text(416, "Requested range not satisfiable");
    refused.headers.emplace_back("Content-Range", "bytes */" + std::to_string(file.value->size));
    return refused;
  }
  return DownloadReply(ctx, *file.value, range);
}

}  // namespace filesync::emulator
