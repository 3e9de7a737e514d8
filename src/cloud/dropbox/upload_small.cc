// Small files (<= small_file_limit): read into memory, then upload_session/start_batch + ONE
// append_batch carrying every file (split only to keep a request under 150 MiB or its
// Dropbox-API-Arg header under a limit), or, without append_batch, one upload_session/start
// (close=true) per file. Each file then waits in a closed session for the commit (commit.cc).
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "cloud/dropbox/dropbox_impl.h"
#include "cloud/dropbox/json_arg.h"
#include "core/parallel_for.h"

namespace filesync::dropbox {
namespace {

constexpr std::string_view kFallback = "one upload_session/start per small file";

// A replayed append_batch entry (the first send's response was lost) whose bytes are already
// in its session: closed by that send (only this call knows the fresh session, and one append
// carries the whole file), or incorrect_offset with correct_offset == length. The commit then
// checks the size and content hash Dropbox stored.
bool AppendedBefore(const BatchEntry& e, std::uint64_t size) {
  const auto tags = UnionTags(e.failure);
  if (!tags.empty() && tags.front() == "closed") return true;
  const auto correct = CorrectOffset(e.failure);
  return correct && *correct == size;
}

// A session that lost track of this file's bytes (gone, or at another offset) is fixed by
// sending them again in a new session: transient, and marked for Upload() to resend.
Status SessionFailure(const Status& s) {
  if (s.kind() == Status::Kind::kNotFound || s.kind() == Status::Kind::kConflict)
    return Status::Transient(s.message() + " (will send again in a new session)");
  return s;
}

std::vector<std::string> SessionIds(const Reply& started) {
  std::vector<std::string> ids;
  if (started.ok() && started.result.contains("session_ids") &&
      started.result["session_ids"].is_array()) {
    for (const auto& id : started.result["session_ids"]) {
      if (id.is_string()) ids.push_back(id.get<std::string>());
    }
  }
  return ids;
}

// One append_batch request: files [begin, end) and what carries them.
struct AppendGroup {
  std::size_t begin = 0;
  std::size_t end = 0;
  ojson arg;
  std::string body;
};

// start_batch + append_batch for a list of small files; see DropboxCloud::Impl::AppendBatch.
class AppendBatcher {
 public:
  AppendBatcher(DropboxCloud::Impl& d, std::vector<SmallFile>& files, std::vector<Ready>& ready,
                UploadResults& results, const cloud::Transfer& transfer)
      : d_(d), files_(files), ready_(ready), results_(results), transfer_(transfer) {}

  std::size_t Run() {
    for (std::size_t begin = 0; begin < files_.size(); begin += kMaxBatchEntries) {
      const std::size_t end = std::min(files_.size(), begin + kMaxBatchEntries);
      if (auto handled = Chunk(begin, end)) return *handled;
    }
    return files_.size();
  }

 private:
  enum class Sent { kDone, kAgain, kUnknownRoute, kCancelled };

  // Files [begin, end), at most one start_batch's worth. Returns how many files were handled
  // when the whole batch stops here (unknown route, a stop), else nullopt.
  std::optional<std::size_t> Chunk(std::size_t begin, std::size_t end) {
    Reply started =
        d_.Rpc("files/upload_session/start_batch", ojson{{"num_sessions", end - begin}});
    if (d_.batch_upload_route.Unknown(started, d_.clock, kFallback)) return begin;
    ids_ = SessionIds(started);
    id_base_ = begin;
    if (!started.ok() || ids_.size() != end - begin) {
      const Status s =
          started.ok() ? Status::Permanent("upload_session/start_batch: wrong number of sessions")
                       : started.status;
      for (std::size_t i = begin; i < end; ++i) results_[files_[i].index] = s;
      return std::nullopt;
    }
    cap_ = d_.o.max_arg_header_bytes != 0 ? d_.o.max_arg_header_bytes : d_.header_cap.load();
    for (std::size_t group = begin; group < end;) {
      AppendGroup g = MakeGroup(group, end);
      switch (Send(g)) {
        case Sent::kCancelled:
          return files_.size();
        case Sent::kUnknownRoute:
          return group;  // sessions started for the rest are left to expire
        case Sent::kAgain:
          continue;  // same files, a smaller header
        case Sent::kDone:
          group = g.end;
      }
    }
    return std::nullopt;
  }

  // Grows a request from files[begin] while it stays under 150 MiB and the header limit.
  AppendGroup MakeGroup(std::size_t begin, std::size_t end) {
    AppendGroup g{.begin = begin, .end = begin};
    ojson entries = ojson::array();
    std::uint64_t bytes = 0;
    std::size_t arg_bytes = 100;  // {"entries":[...],"content_hash":"<64 hex>"}
    while (g.end < end) {
      const std::string& data = files_[g.end].data;
      ojson entry = {{"cursor", {{"session_id", ids_[g.end - id_base_]}, {"offset", 0}}},
                     {"length", data.size()},
                     {"close", true}};
      const std::size_t entry_bytes = EncodeHeaderArg(entry).size() + 1;
      const bool over_header = cap_ != 0 && arg_bytes + entry_bytes > cap_;
      if (g.end > begin && (bytes + data.size() > kMaxRequestBytes || over_header)) break;
      bytes += data.size();
      arg_bytes += entry_bytes;
      entries.push_back(std::move(entry));
      ++g.end;
    }
    g.body.reserve(bytes);
    for (std::size_t i = g.begin; i < g.end; ++i) g.body += files_[i].data;
    g.arg = {{"entries", std::move(entries)},
             {"content_hash", hash::ToHex(hash::HashBytes(g.body))}};
    return g;
  }

  Sent Send(AppendGroup& g) {
    // A long header may be refused by the server or a proxy in front of it (a 400/413/431, or
    // a connection closed while the body is still being sent). Keep a copy of the body until
    // we know, then go on with capped headers (learned once per instance).
    const std::size_t arg_size = EncodeHeaderArg(g.arg).size();
    const bool risky = cap_ == 0 && arg_size > kSafeHeaderBytes;
    Reply r = d_.Content("files/upload_session/append_batch", g.arg,
                         risky ? g.body : std::move(g.body), transfer_, risky);
    if (r.status.kind() == Status::Kind::kCancelled) {
      for (std::size_t i = g.begin; i < files_.size(); ++i) results_[files_[i].index] = r.status;
      return Sent::kCancelled;
    }
    if (d_.batch_upload_route.Unknown(r, d_.clock, kFallback)) return Sent::kUnknownRoute;
    if (!r.ok() && ShrinkHeader(r, risky, arg_size, g.end - g.begin)) return Sent::kAgain;
    for (std::size_t i = g.begin; i < g.end; ++i) std::string().swap(files_[i].data);
    Record(g, r);
    return Sent::kDone;
  }

  // Whether the failed `r` was a header refusal worth another try with a smaller header (the
  // new limit is then set).
  bool ShrinkHeader(const Reply& r, bool risky, std::size_t arg_size, std::size_t files) {
    const bool refused = !r.error || r.error->http_status == 400 || r.error->http_status == 413 ||
                         r.error->http_status == 431 || r.error->http_status >= 500;
    if (risky && refused) {
      Log().info(
          "append_batch with a header for {} entries failed ({}); capping Dropbox-API-Arg at "
          "{} bytes",
          files, r.status.message(), kSafeHeaderBytes);
      d_.header_cap = kSafeHeaderBytes;
      cap_ = kSafeHeaderBytes;
      return true;
    }
    // Refused below the learned limit too (seen under load with several batches in flight at
    // once): halve the header until one entry is left, which is then a real refusal.
    const bool header_refused =
        r.error &&
        (r.error->http_status == 400 || r.error->http_status == 413 || r.error->http_status == 431);
    if (!header_refused || files <= 1) return false;
    cap_ = std::max<std::size_t>(arg_size / 2, 512);
    Log().info("append_batch of {} entries refused ({}); retrying with headers under {} bytes",
               files, r.status.message(), cap_);
    return true;
  }

  // Files of an append_batch that got in wait for the commit; the others fail.
  void Record(const AppendGroup& g, const Reply& r) {
    if (!r.ok()) {
      for (std::size_t i = g.begin; i < g.end; ++i) results_[files_[i].index] = r.status;
      return;
    }
    auto parsed = ParseBatchEntries(r.result, SuccessShape::kNone, "upload_session/append_batch");
    if (!parsed.ok() || parsed->size() != g.end - g.begin) {
      const Status s =
          parsed.ok() ? Status::Permanent("upload_session/append_batch: wrong number of entries")
                      : parsed.status();
      for (std::size_t i = g.begin; i < g.end; ++i) results_[files_[i].index] = s;
      return;
    }
    for (std::size_t i = g.begin; i < g.end; ++i) {
      const BatchEntry& e = (*parsed)[i - g.begin];
      const SmallFile& f = files_[i];
      const std::uint64_t size = f.identity.size;
      if (e.success || AppendedBefore(e, size)) {
        ready_.push_back(Ready{f.index, ids_[i - id_base_], size, f.digest, f.identity, size, {}});
        transfer_.Progress(size);
      } else {
        results_.Resend(f.index, SessionFailure(e.status));
      }
    }
  }

  DropboxCloud::Impl& d_;
  std::vector<SmallFile>& files_;
  std::vector<Ready>& ready_;
  UploadResults& results_;
  const cloud::Transfer& transfer_;
  std::vector<std::string> ids_;  // sessions of the current chunk, from files_[id_base_] on
  std::size_t id_base_ = 0;
  std::size_t cap_ = 0;  // Dropbox-API-Arg limit for the current chunk (0: none)
};

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

}  // namespace

Status ReadAt(int fd, std::uint64_t offset, std::size_t len, char* out, const std::string& path) {
  std::size_t done = 0;
  while (done < len) {
    const ssize_t n = pread(fd, out + done, len - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::Io(Errno("cannot read " + path));
    }
    if (n == 0) return Status::Changed(path + " shrank while it was read");
    done += static_cast<std::size_t>(n);
  }
  return Status::Ok();
}

Result<SmallFile> DropboxCloud::Impl::ReadSmall(std::size_t index, const cloud::UploadItem& item) {
  auto opened = cloud::OpenForUpload(item);
  if (!opened.ok()) return opened.status();
  const core::StableFile& file = *opened;
  SmallFile f;
  f.index = index;
  f.identity = file.identity();
  f.data.resize(f.identity.size);
  if (Status s = ReadAt(file.fd(), 0, f.data.size(), f.data.data(), item.local_path); !s.ok())
    return s;
  char extra = 0;
  if (pread(file.fd(), &extra, 1, static_cast<off_t>(f.identity.size)) > 0) {
    return Status::Changed(item.local_path + " grew while it was read");
  }
  if (Status s = file.CheckUnchanged("uploaded"); !s.ok()) return s;
  f.digest = hash::HashBytes(f.data);
  return f;
}

void DropboxCloud::Impl::StartEach(std::vector<SmallFile>& files, std::vector<Ready>& ready,
                                   UploadResults& results, const cloud::Transfer& transfer) {
  core::Mutex mu;  // guards ready, results and progress calls
  core::ParallelFor(files.size(), o.max_parallel_chunks, [&](std::size_t i) {
    SmallFile& f = files[i];
    const std::uint64_t size = f.data.size();
    Reply r = Content("files/upload_session/start",
                      ojson{{"close", true}, {"content_hash", hash::ToHex(f.digest)}},
                      std::move(f.data), transfer);
    core::MutexLock lock(&mu);
    if (!r.ok() || !r.result.contains("session_id")) {
      results[f.index] =
          r.ok() ? Status::Permanent("upload_session/start: no session_id") : r.status;
      return;
    }
    ready.push_back(Ready{
        f.index, r.result["session_id"].get<std::string>(), size, f.digest, f.identity, size, {}});
    transfer.Progress(size);
  });
}

std::size_t DropboxCloud::Impl::AppendBatch(std::vector<SmallFile>& files,
                                            std::vector<Ready>& ready, UploadResults& results,
                                            const cloud::Transfer& transfer) {
  return AppendBatcher(*this, files, ready, results, transfer).Run();
}

}  // namespace filesync::dropbox
