// Namespace routes: listing, cursors, longpoll, metadata, folders, delete, move/copy, download.
// Single commits take the CommitLock without waiting (429 too_many_write_operations when it
// is held); delete_batch and move/copy_batch_v2 wait for it and hold it once for the batch.
#include "core/rel_path.h"
#include "dropbox_emulator/routes.h"

namespace filesync::emulator {
namespace {

Reply TooManyWrites() { return Reply::RateLimited("too_many_write_operations", 1, std::nullopt); }

// Checks a path field against its alias pattern; returns an error text or "".
std::string PathProblem(const std::optional<std::string>& path, PathAlias alias,
                        const char* field) {
  if (!path) return "";
  if (!MatchesPathPattern(*path, alias)) {
    return std::string("request body: ") + field + ": '" + *path + "' did not match pattern";
  }
  return "";
}

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

// move_batch_v2 / copy_batch_v2: validates RelocationBatchArgBase (+ allow_ownership_transfer
// for moves), then relocates every entry in order under one hold of the write lock. An entry
// whose from/to path equals or nests another entry's path fails with
// duplicated_or_nested_paths (its outcome would depend on the order). The result is an async
// job that answers in_progress once before complete.
Reply RelocationBatch(RouteContext& ctx, const std::string& route, const nlohmann::json& arg) {
  const bool copy = route == "files/copy_batch_v2";
  ArgReader r(arg, "request body");
  const nlohmann::json* entries = r.Raw("entries", true);
  std::vector<std::pair<std::string, std::string>> items;
  if (entries != nullptr && !entries->is_array()) r.Fail("'entries': expected list");
  if (entries != nullptr && entries->is_array()) {
    if (entries->empty()) r.Fail("'entries': fewer than 1 items");
    if (entries->size() > 1000) r.Fail("'entries': more than 1000 items");
    for (std::size_t i = 0; i < entries->size() && r.ok(); ++i) {
      ArgReader e((*entries)[i], "entries[" + std::to_string(i) + "]");
      const auto from = e.String("from_path", true);
      const auto to = e.String("to_path", true);
      e.Finish();
      r.Merge(e);
      if (auto p = PathProblem(from, PathAlias::kWritePathOrId, "from_path"); !p.empty()) r.Fail(p);
      if (auto p = PathProblem(to, PathAlias::kWritePathOrId, "to_path"); !p.empty()) r.Fail(p);
      if (r.ok()) items.emplace_back(*from, *to);
    }
  }
  const bool autorename = r.Bool("autorename", false);
  if (!copy) r.Bool("allow_ownership_transfer", false);
  if (!r.Finish()) return BadArgument(route, r.error());

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

  nlohmann::json results = nlohmann::json::array();
  {
    auto guard = ctx.commit_lock->Acquire();
    for (std::size_t i = 0; i < items.size(); ++i) {
      if (nested[i]) {
        results.push_back(
            {{".tag", "failure"},
             {"failure", Tagged("relocation_error", Tag("duplicated_or_nested_paths"))}});
        continue;
      }
      auto moved = ctx.ns->Relocate(items[i].first, items[i].second, autorename, copy);
      if (moved.ok()) {
        results.push_back({{".tag", "success"}, {"success", MetadataJson(*moved.value)}});
      } else {
        results.push_back(
            {{".tag", "failure"},
             {"failure", Tagged("relocation_error", RelocationErrorJson(moved.error))}});
      }
    }
  }
  const std::string job = ctx.jobs->Add("dbjid:", copy ? "copy_batch" : "move_batch",
                                        {{".tag", "complete"}, {"entries", std::move(results)}}, 1);
  return Reply::Json({{".tag", "async_job_id"}, {"async_job_id", job}});
}

}  // namespace

Reply HandleFilesRoute(RouteContext& ctx, const Call& call) {
  const std::string& route = call.route;
  const nlohmann::json& arg = call.arg;

  if (route == "files/list_folder" || route == "files/list_folder/get_latest_cursor") {
    ListArgs a;
    if (auto problem = ReadListArgs(arg, &a); !problem.empty()) return BadArgument(route, problem);
    if (route == "files/list_folder") {
      auto page = ctx.ns->List(a.path, a.recursive, a.include_deleted, a.limit);
      if (!page.ok()) return Reply::RouteError(LookupWrap(page.error));
      return PageReply(*page.value);
    }
    auto cursor = ctx.ns->LatestCursor(a.path, a.recursive, a.include_deleted);
    if (!cursor.ok()) return Reply::RouteError(LookupWrap(cursor.error));
    return Reply::Json({{"cursor", *cursor.value}});
  }

  if (route == "files/list_folder/continue") {
    ArgReader r(arg, "request body");
    const std::string cursor = r.String("cursor", true).value_or("");
    if (!r.Finish()) return BadArgument(route, r.error());
    auto page = ctx.ns->Continue(cursor);
    if (!page.ok()) {
      if (page.error.where == StoreError::Where::kBadCursor) {
        return BadArgument(route, "request body: cursor: invalid cursor");
      }
      if (page.error.where == StoreError::Where::kReset) return Reply::RouteError(Tag("reset"));
      return Reply::RouteError(LookupWrap(page.error));
    }
    return PageReply(*page.value);
  }

  if (route == "files/list_folder/longpoll") {
    ArgReader r(arg, "request body");
    const std::string cursor = r.String("cursor", true).value_or("");
    const std::uint64_t timeout = r.UInt("timeout", false, 30, 480).value_or(30);
    if (!r.Finish()) return BadArgument(route, r.error());
    const auto wait =
        std::min<std::chrono::milliseconds>(std::chrono::seconds(timeout), ctx.longpoll_max);
    auto changes = ctx.ns->Longpoll(cursor, wait);
    if (!changes.ok()) {
      if (changes.error.where == StoreError::Where::kReset) return Reply::RouteError(Tag("reset"));
      return BadArgument(route, "request body: cursor: invalid cursor");
    }
    return Reply::Json({{"changes", *changes.value}});
  }

  if (route == "files/get_metadata") {
    ArgReader r(arg, "request body");
    const auto path = r.String("path", true);
    r.Bool("include_media_info", false);
    const bool include_deleted = r.Bool("include_deleted", false);
    r.Bool("include_has_explicit_shared_members", false);
    r.Raw("include_property_groups", false);
    if (!r.Finish()) return BadArgument(route, r.error());
    if (auto p = PathProblem(path, PathAlias::kReadPath, "path"); !p.empty()) {
      return BadArgument(route, p);
    }
    auto md = ctx.ns->GetMetadata(*path, include_deleted);
    if (!md.ok()) return Reply::RouteError(LookupWrap(md.error));
    return Reply::Json(*md.value);
  }

  if (route == "files/create_folder_v2") {
    ArgReader r(arg, "request body");
    const auto path = r.String("path", true);
    const bool autorename = r.Bool("autorename", false);
    if (!r.Finish()) return BadArgument(route, r.error());
    if (auto p = PathProblem(path, PathAlias::kWritePath, "path"); !p.empty()) {
      return BadArgument(route, p);
    }
    auto guard = ctx.commit_lock->TryAcquire();
    if (!guard) return TooManyWrites();
    auto folder = ctx.ns->CreateFolder(*path, autorename);
    if (!folder.ok()) return Reply::RouteError(Tagged("path", folder.error.error));
    return Reply::Json({{"metadata", MetadataJson(*folder.value, false)}});
  }

  if (route == "files/delete_v2") {
    ArgReader r(arg, "request body");
    const auto path = r.String("path", true);
    const auto parent_rev = r.String("parent_rev", false);
    if (!r.Finish()) return BadArgument(route, r.error());
    if (auto p = PathProblem(path, PathAlias::kWritePathOrId, "path"); !p.empty()) {
      return BadArgument(route, p);
    }
    auto guard = ctx.commit_lock->TryAcquire();
    if (!guard) return TooManyWrites();
    auto deleted = ctx.ns->Delete(*path, parent_rev);
    if (!deleted.ok()) return Reply::RouteError(DeleteErrorJson(deleted.error));
    return Reply::Json({{"metadata", MetadataJson(*deleted.value)}});
  }

  if (route == "files/delete_batch") {
    ArgReader r(arg, "request body");
    const nlohmann::json* entries = r.Raw("entries", true);
    std::vector<std::pair<std::string, std::optional<std::string>>> items;
    if (entries != nullptr && !entries->is_array()) r.Fail("'entries': expected list");
    if (entries != nullptr && entries->is_array()) {
      if (entries->size() > 1000) r.Fail("'entries': more than 1000 items");
      for (std::size_t i = 0; i < entries->size() && r.ok(); ++i) {
        ArgReader e((*entries)[i], "entries[" + std::to_string(i) + "]");
        auto path = e.String("path", true);
        auto rev = e.String("parent_rev", false);
        e.Finish();
        r.Merge(e);
        if (auto p = PathProblem(path, PathAlias::kWritePathOrId, "path"); !p.empty()) r.Fail(p);
        if (r.ok()) items.emplace_back(*path, rev);
      }
    }
    if (!r.Finish()) return BadArgument(route, r.error());
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
    const std::string job = ctx.jobs->Add("dbjid:", "delete_batch",
                                          {{".tag", "complete"}, {"entries", std::move(results)}});
    return Reply::Json({{".tag", "async_job_id"}, {"async_job_id", job}});
  }

  if (route == "files/delete_batch/check") {
    ArgReader r(arg, "request body");
    const std::string id = r.String("async_job_id", true).value_or("");
    if (!r.Finish()) return BadArgument(route, r.error());
    auto job = ctx.jobs->Get(id, "delete_batch");
    if (!job || id.rfind("dbjid:", 0) != 0) return Reply::RouteError(Tag("invalid_async_job_id"));
    return Reply::Json(*job);
  }

  if (route == "files/move_v2" || route == "files/copy_v2") {
    ArgReader r(arg, "request body");
    const auto from = r.String("from_path", true);
    const auto to = r.String("to_path", true);
    r.Bool("allow_shared_folder", false);
    const bool autorename = r.Bool("autorename", false);
    r.Bool("allow_ownership_transfer", false);
    if (!r.Finish()) return BadArgument(route, r.error());
    for (const auto& [p, name] : {std::pair{from, "from_path"}, std::pair{to, "to_path"}}) {
      if (auto problem = PathProblem(p, PathAlias::kWritePathOrId, name); !problem.empty()) {
        return BadArgument(route, problem);
      }
    }
    auto guard = ctx.commit_lock->TryAcquire();
    if (!guard) return TooManyWrites();
    auto moved = ctx.ns->Relocate(*from, *to, autorename, route == "files/copy_v2");
    if (!moved.ok()) return Reply::RouteError(RelocationErrorJson(moved.error));
    return Reply::Json({{"metadata", MetadataJson(*moved.value)}});
  }

  if (route == "files/move_batch_v2" || route == "files/copy_batch_v2") {
    return RelocationBatch(ctx, route, arg);
  }

  if (route == "files/move_batch/check_v2" || route == "files/copy_batch/check_v2") {
    ArgReader r(arg, "request body");
    const std::string id = r.String("async_job_id", true).value_or("");
    if (!r.Finish()) return BadArgument(route, r.error());
    auto job =
        ctx.jobs->Get(id, route == "files/move_batch/check_v2" ? "move_batch" : "copy_batch");
    if (!job) return Reply::RouteError(Tag("invalid_async_job_id"));
    return Reply::Json(*job);
  }

  if (route == "files/download") {
    ArgReader r(arg, "Dropbox-API-Arg");
    const auto path = r.String("path", true);
    r.String("rev", false);
    if (!r.Finish()) return BadArgument(route, r.error());
    if (auto p = PathProblem(path, PathAlias::kReadPath, "path"); !p.empty()) {
      return BadArgument(route, p);
    }
    auto file = ctx.ns->GetFile(*path);
    if (!file.ok()) return Reply::RouteError(LookupWrap(file.error));
    const std::uint64_t size = file.value->size;
    const ByteRange range = ResolveRange(call.range, size);
    if (range.kind == ByteRange::Kind::kUnsatisfiable) {
      Reply refused = Reply::Text(416, "Requested range not satisfiable");
      refused.headers.emplace_back("Content-Range", "bytes */" + std::to_string(size));
      return refused;
    }
    Reply reply;
    reply.content_type = "application/octet-stream";
    reply.file_path = ctx.blobs->PathFor(file.value->content_hash);
    reply.file_offset = range.first;
    reply.file_size = range.length;
    if (range.kind == ByteRange::Kind::kPartial) {
      reply.status = 206;
      reply.headers.emplace_back("Content-Range",
                                 "bytes " + std::to_string(range.first) + "-" +
                                     std::to_string(range.first + range.length - 1) + "/" +
                                     std::to_string(size));
    }
    reply.headers.emplace_back("Dropbox-API-Result",
                               MetadataJson(*file.value, false).dump(-1, ' ', true));
    return reply;
  }

  return BadArgument(route, "unknown route");
}

}  // namespace filesync::emulator
