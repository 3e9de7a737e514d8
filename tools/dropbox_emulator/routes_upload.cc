// Upload routes: files/upload and upload_session/*. Bytes are streamed to disk (a temporary
// file, or the session's data file) and never held in memory. Commits go through the
// CommitLock: single commits (upload, finish) fail fast with 429; finish_batch* wait.
#include <fcntl.h>
#include <unistd.h>

#include "dropbox_emulator/route_handlers.h"

namespace filesync::emulator {
namespace {

const BodyReader kEmptyBody = [](const BodySink&) { return true; };

bool IsInternal(const nlohmann::json& e) { return e.value(".tag", "") == "internal_error"; }

Reply Internal() { return Reply::Text(500, "internal error in emulator storage"); }

std::optional<std::string> ReadHash(ArgReader& r) {
  auto h = r.String("content_hash", false);
  if (h && (h->size() != 64 || h->find_first_not_of("0123456789abcdef") != std::string::npos)) {
    r.Fail("'content_hash': must be 64 lowercase hex digits");
  }
  return h;
}

// Reads CommitInfo fields from `r` into `out` (content fields are filled in later).
void ReadCommitInfo(ArgReader& r, CommitRequest* out) {
  const auto path = r.String("path", true);
  if (path) {
    out->path = *path;
    if (!MatchesPathPattern(*path, PathAlias::kWritePathOrId)) {
      r.Fail("path: '" + *path + "' did not match pattern");
    }
  }
  if (const nlohmann::json* mode = r.Raw("mode", false)) {
    std::string tag;
    if (mode->is_string()) {
      tag = mode->get<std::string>();
    } else if (mode->is_object() && mode->contains(".tag") && (*mode)[".tag"].is_string()) {
      tag = (*mode)[".tag"].get<std::string>();
    }
    if (tag == "add" || tag == "overwrite") {
      if (mode->is_object() && mode->size() != 1) r.Fail("'mode': unexpected fields");
      out->mode = tag;
    } else if (tag == "update" && mode->is_object() && mode->size() == 2 &&
               mode->contains("update") && (*mode)["update"].is_string()) {
      out->mode = tag;
      out->update_rev = (*mode)["update"].get<std::string>();
      if (out->update_rev.size() < 9 ||
          out->update_rev.find_first_not_of("0123456789abcdef") != std::string::npos) {
        r.Fail("'mode': update rev must be at least 9 hex digits");
      }
    } else {
      r.Fail("'mode': invalid WriteMode " + mode->dump());
    }
  }
  out->autorename = r.Bool("autorename", false);
  if (auto cm = r.String("client_modified", false)) {
    if (!ParseTimestamp(*cm)) {
      r.Fail("'client_modified': '" + *cm + "' is not a timestamp in format %Y-%m-%dT%H:%M:%SZ");
    }
    out->client_modified = *cm;
  }
  r.Bool("mute", false);
  r.Raw("property_groups", false);
  out->strict_conflict = r.Bool("strict_conflict", false);
}

bool ReadCursor(ArgReader& parent, const char* name, std::string* session, std::uint64_t* offset) {
  const nlohmann::json* c = parent.Raw(name, true);
  if (c == nullptr) return false;
  ArgReader r(*c, name);
  *session = r.String("session_id", true).value_or("");
  *offset = r.UInt("offset", true, 0, UINT64_MAX).value_or(0);
  r.Finish();
  parent.Merge(r);
  return r.ok();
}

nlohmann::json FinishError(const SessionError& e) {
  return e.lookup ? Tagged("lookup_failed", e.error) : e.error;
}

// A BodyReader over [offset, offset + length) of a file.
BodyReader FileSlice(const std::string& path, std::uint64_t offset, std::uint64_t length) {
  return [path, offset, length](const BodySink& sink) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    std::vector<char> buf(1 << 20);
    std::uint64_t done = 0;
    bool ok = true;
    while (done < length) {
      const std::size_t want =
          static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), length - done));
      const ssize_t n = ::pread(fd, buf.data(), want, static_cast<off_t>(offset + done));
      if (n <= 0) {
        ok = false;
        break;
      }
      sink(buf.data(), static_cast<std::size_t>(n));
      done += static_cast<std::uint64_t>(n);
    }
    ::close(fd);
    return ok;
  };
}

struct FinishEntry {
  std::string session;
  std::uint64_t offset = 0;
  CommitRequest commit;
  std::optional<std::string> hash;
};

// Reads the required CommitInfo field "commit" of `parent` into `out`; `where` names it.
void ReadCommitField(ArgReader& parent, const std::string& where, CommitRequest* out) {
  if (const nlohmann::json* commit = parent.Raw("commit", true)) {
    ArgReader c(*commit, where);
    ReadCommitInfo(c, out);
    c.Finish();
    parent.Merge(c);
  }
}

// Parses finish_batch entries; returns an error text or "".
std::string ReadFinishEntries(const nlohmann::json& arg, std::vector<FinishEntry>* out) {
  ArgReader r(arg, "request body");
  ReadEntries(r, 0, [&](ArgReader& e) {
    FinishEntry fe;
    ReadCursor(e, "cursor", &fe.session, &fe.offset);
    ReadCommitField(e, "entries[" + std::to_string(out->size()) + "].commit", &fe.commit);
    fe.hash = ReadHash(e);
    e.Finish();
    r.Merge(e);
    out->push_back(std::move(fe));
  });
  r.Finish();
  return r.error();
}

// finish_batch v1 and v2: prepare every session (outside the lock), then commit all ready
// entries in one transaction under the lock. Returns the result entries.
nlohmann::json FinishBatch(RouteContext& ctx, const std::vector<FinishEntry>& entries) {
  std::vector<nlohmann::json> results(entries.size());
  std::vector<CommitRequest> commits;
  std::vector<std::size_t> index;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    auto ready = ctx.sessions->PrepareFinish(entries[i].session, entries[i].offset, kEmptyBody,
                                             entries[i].hash, true);
    if (auto* err = std::get_if<SessionError>(&ready)) {
      results[i] = {{".tag", "failure"}, {"failure", FinishError(*err)}};
      continue;
    }
    CommitRequest c = entries[i].commit;
    c.size = std::get<ReadySession>(ready).size;
    c.content_hash = std::get<ReadySession>(ready).content_hash;
    commits.push_back(std::move(c));
    index.push_back(i);
  }
  if (!commits.empty()) {
    auto guard = ctx.commit_lock->Acquire();
    auto outcomes = ctx.ns->Commit(commits);
    for (std::size_t k = 0; k < outcomes.size(); ++k) {
      const std::size_t i = index[k];
      if (outcomes[k].ok()) {
        nlohmann::json md = MetadataJson(*outcomes[k].value, false);
        md[".tag"] = "success";
        results[i] = std::move(md);
        ctx.sessions->Complete(entries[i].session);
      } else {
        results[i] = {{".tag", "failure"}, {"failure", Tagged("path", outcomes[k].error.error)}};
      }
    }
  }
  return results;
}

// Streams the request body into `tmp`; the refusal when it could not be stored (500) or is over
// kMaxRequestBytes (payload_too_large).
std::optional<Reply> ReceiveBody(const Call& call, TempFileWriter& tmp) {
  if (!tmp.ok()) return Internal();
  if (!(*call.body)([&](const char* d, std::size_t n) { return tmp.Write(d, n); }) || !tmp.ok()) {
    return Internal();
  }
  if (tmp.overflowed()) return Reply::RouteError(Tag("payload_too_large"));
  return std::nullopt;
}

// A session's error: 500 for the emulator's own storage failures, else the route's error.
Reply SessionFailure(const nlohmann::json& error) {
  if (IsInternal(error)) return Internal();
  return Reply::RouteError(error);
}

// upload_session/start with session_type concurrent: no data, no close.
Reply StartConcurrentSession(RouteContext& ctx, const Call& call, bool close) {
  if (close) return Reply::RouteError(Tag("concurrent_session_close_not_allowed"));
  std::uint64_t n = 0;
  (*call.body)([&](const char*, std::size_t len) {
    n += len;
    return true;
  });
  if (n > 0) return Reply::RouteError(Tag("concurrent_session_data_not_allowed"));
  return Reply::Json({{"session_id", ctx.sessions->Create(true)}});
}

struct AppendItem {
  std::string session;
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
  bool close = false;
};

// Appends each item's slice of the received body (the file at `path`) to its session.
Reply AppendSlices(RouteContext& ctx, const std::string& path,
                   const std::vector<AppendItem>& items) {
  nlohmann::json results = nlohmann::json::array();
  std::uint64_t pos = 0;
  for (const auto& it : items) {
    const BodyReader slice = FileSlice(path, pos, it.length);
    pos += it.length;
    auto err = ctx.sessions->Append(it.session, it.offset, it.close, slice, std::nullopt);
    if (err && IsInternal(err->error)) return Internal();
    results.push_back(err ? nlohmann::json{{".tag", "failure"}, {"failure", err->error}}
                          : Tag("success"));
  }
  return Reply::Json({{"entries", results}});
}

}  // namespace

Reply Upload(RouteContext& ctx, const Call& call) {
  ArgReader r(call.arg, "Dropbox-API-Arg");
  CommitRequest commit;
  ReadCommitInfo(r, &commit);
  const auto expected = ReadHash(r);
  if (!r.Finish()) return BadArgument(call.route, r.error());
  TempFileWriter tmp(ctx.blobs->NewTempPath(), kMaxRequestBytes);
  if (auto refused = ReceiveBody(call, tmp)) return *refused;
  commit.content_hash = tmp.Finish();
  commit.size = tmp.size();
  if (expected && *expected != commit.content_hash) {
    return Reply::RouteError(Tag("content_hash_mismatch"));
  }
  auto guard = ctx.commit_lock->TryAcquire();
  if (!guard) return TooManyWrites();
  if (!ctx.blobs->AdoptByRename(tmp.path(), commit.content_hash).ok()) return Internal();
  tmp.Release();
  auto out = ctx.ns->Commit({commit});
  if (!out[0].ok()) {
    const std::string session =
        ctx.sessions->CreateClosedFrom(ctx.blobs->PathFor(commit.content_hash), commit.size);
    return Reply::RouteError(
        {{".tag", "path"}, {"reason", out[0].error.error}, {"upload_session_id", session}});
  }
  return Reply::Json(MetadataJson(*out[0].value, false));
}

Reply UploadSessionStart(RouteContext& ctx, const Call& call) {
  ArgReader r(call.arg, "Dropbox-API-Arg");
  const bool close = r.Bool("close", false);
  const auto type = r.VoidUnion("session_type", false, {"sequential", "concurrent"});
  const auto expected = ReadHash(r);
  if (!r.Finish()) return BadArgument(call.route, r.error());
  if (type.value_or("sequential") == "concurrent") return StartConcurrentSession(ctx, call, close);
  const std::string id = ctx.sessions->Create(false);
  if (auto err = ctx.sessions->Append(id, 0, close, *call.body, expected)) {
    ctx.sessions->Complete(id);
    return SessionFailure(err->error);
  }
  return Reply::Json({{"session_id", id}});
}

Reply UploadSessionAppend(RouteContext& ctx, const Call& call) {
  ArgReader r(call.arg, "Dropbox-API-Arg");
  std::string session;
  std::uint64_t offset = 0;
  ReadCursor(r, "cursor", &session, &offset);
  const bool close = r.Bool("close", false);
  const auto expected = ReadHash(r);
  if (!r.Finish()) return BadArgument(call.route, r.error());
  if (auto err = ctx.sessions->Append(session, offset, close, *call.body, expected)) {
    return SessionFailure(err->error);
  }
  return Reply::Json(nullptr);
}

Reply UploadSessionAppendBatch(RouteContext& ctx, const Call& call) {
  ArgReader r(call.arg, "Dropbox-API-Arg");
  std::vector<AppendItem> items;
  ReadEntries(r, 0, [&](ArgReader& e) {
    AppendItem it;
    ReadCursor(e, "cursor", &it.session, &it.offset);
    it.length = e.UInt("length", true, 0, UINT64_MAX).value_or(0);
    it.close = e.Bool("close", false);
    e.Finish();
    r.Merge(e);
    items.push_back(it);
  });
  const auto expected = ReadHash(r);
  if (!r.Finish()) return BadArgument(call.route, r.error());
  TempFileWriter tmp(ctx.blobs->NewTempPath(), kMaxRequestBytes);
  if (auto refused = ReceiveBody(call, tmp)) return *refused;
  const std::string hex = tmp.Finish();
  std::uint64_t total = 0;
  for (const auto& it : items) total += it.length;
  if (total != tmp.size()) return Reply::RouteError(Tag("length_mismatch"));
  if (expected && *expected != hex) return Reply::RouteError(Tag("content_hash_mismatch"));
  return AppendSlices(ctx, tmp.path(), items);
}

Reply UploadSessionFinish(RouteContext& ctx, const Call& call) {
  ArgReader r(call.arg, "Dropbox-API-Arg");
  FinishEntry fe;
  ReadCursor(r, "cursor", &fe.session, &fe.offset);
  ReadCommitField(r, "commit", &fe.commit);
  fe.hash = ReadHash(r);
  if (!r.Finish()) return BadArgument(call.route, r.error());
  auto ready = ctx.sessions->PrepareFinish(fe.session, fe.offset, *call.body, fe.hash, false);
  if (auto* err = std::get_if<SessionError>(&ready)) {
    if (IsInternal(err->error)) return Internal();
    return Reply::RouteError(FinishError(*err));
  }
  fe.commit.size = std::get<ReadySession>(ready).size;
  fe.commit.content_hash = std::get<ReadySession>(ready).content_hash;
  auto guard = ctx.commit_lock->TryAcquire();
  if (!guard) return TooManyWrites();
  auto out = ctx.ns->Commit({fe.commit});
  if (!out[0].ok()) return Reply::RouteError(Tagged("path", out[0].error.error));
  ctx.sessions->Complete(fe.session);
  return Reply::Json(MetadataJson(*out[0].value, false));
}

Reply UploadSessionStartBatch(RouteContext& ctx, const Call& call) {
  ArgReader r(call.arg, "request body");
  const auto type = r.VoidUnion("session_type", false, {"sequential", "concurrent"});
  const std::uint64_t n = r.UInt("num_sessions", true, 1, 1000).value_or(0);
  if (!r.Finish()) return BadArgument(call.route, r.error());
  nlohmann::json ids = nlohmann::json::array();
  for (std::uint64_t i = 0; i < n; ++i) {
    ids.push_back(ctx.sessions->Create(type.value_or("sequential") == "concurrent"));
  }
  return Reply::Json({{"session_ids", ids}});
}

Reply UploadSessionFinishBatchV2(RouteContext& ctx, const Call& call) {
  std::vector<FinishEntry> entries;
  if (auto problem = ReadFinishEntries(call.arg, &entries); !problem.empty()) {
    return BadArgument(call.route, problem);
  }
  return Reply::Json({{"entries", FinishBatch(ctx, entries)}});
}

Reply UploadSessionFinishBatch(RouteContext& ctx, const Call& call) {
  std::vector<FinishEntry> entries;
  if (auto problem = ReadFinishEntries(call.arg, &entries); !problem.empty()) {
    return BadArgument(call.route, problem);
  }
  return AsyncJob(ctx, "finish_batch", FinishBatch(ctx, entries));
}

Reply UploadSessionFinishBatchCheck(RouteContext& ctx, const Call& call) {
  return CheckJob(ctx, call, "finish_batch");
}

}  // namespace filesync::emulator
