// The commit: ONE finish_batch_v2 for every file of an Upload() call (up to 1000 entries per
// request), under the account's commit lock. Each returned size/content_hash is compared with
// what was read (else kChanged); entries that hit too_many_write_operations are committed again
// together after a write backoff.
#include <ctime>

#include "cloud/dropbox/dropbox_impl.h"
#include "util/unicode.h"

namespace filesync::dropbox {
namespace {

using cloud::UploadedFile;
using cloud::UploadItem;

std::string ClientModified(std::int64_t mtime_ns) {
  std::int64_t seconds = mtime_ns / 1'000'000'000;
  if (mtime_ns < 0 && mtime_ns % 1'000'000'000 != 0) --seconds;
  const auto t = static_cast<std::time_t>(seconds);
  struct tm tm {};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

Result<UploadedFile> Committed(const Ready& r, const Metadata& m, const UploadItem& item) {
  if (m.size != r.size || (m.content_hash && *m.content_hash != r.digest)) {
    return Status::Changed("Dropbox stored different content for " + item.cloud_path +
                           " than was read from " + item.local_path);
  }
  UploadedFile out;
  out.entry = ToRemoteEntry(m);
  out.entry.content_hash = r.digest;
  out.entry.has_content_hash = true;
  out.identity = r.identity;
  out.digest = r.digest;
  out.bytes_transferred = r.bytes_transferred;
  return out;
}

ojson CommitEntries(std::span<const UploadItem> items, std::span<const Ready> ready) {
  ojson entries = ojson::array();
  for (const Ready& r : ready) {
    const UploadItem& item = items[r.index];
    entries.push_back({{"cursor", {{"session_id", r.session_id}, {"offset", r.size}}},
                       {"commit",
                        {{"path", unicode::ToNfc(item.cloud_path)},
                         {"mode", "overwrite"},
                         {"autorename", false},
                         {"client_modified",
                          ClientModified(item.mtime_ns != 0 ? item.mtime_ns : r.identity.mtime_ns)},
                         {"mute", true}}}});
  }
  return entries;
}

// One finish_batch_v2 for `ready`: its entries, one per file, or why there are none.
Result<std::vector<BatchEntry>> Finish(DropboxCloud::Impl& d, std::span<const UploadItem> items,
                                       std::span<const Ready> ready) {
  Reply reply;
  {
    auto guard = d.pacer.CommitLock();
    reply = d.Rpc("files/upload_session/finish_batch_v2",
                  ojson{{"entries", CommitEntries(items, ready)}}, true, std::chrono::seconds(600));
  }
  if (!reply.ok()) return reply.status;
  auto parsed =
      ParseBatchEntries(reply.result, SuccessShape::kInline, "upload_session/finish_batch_v2");
  if (!parsed.ok()) return parsed.status();
  if (parsed->size() != ready.size())
    return Status::Permanent("finish_batch_v2: wrong number of entries");
  return parsed;
}

// Records the commit entry `e` of the file `r`; a contended one goes to `retry`.
void Settle(DropboxCloud::Impl& d, const UploadItem& item, const Ready& r, const BatchEntry& e,
            UploadResults& results, std::vector<Ready>& retry) {
  if (e.success && e.metadata) {
    results[r.index] = Committed(r, *e.metadata, item);
    d.EraseRecord(r.store_key);
    return;
  }
  if (e.status.kind() == Status::Kind::kRateLimited) {
    retry.push_back(r);
    return;
  }
  const auto tags = UnionTags(e.failure);
  if (tags.empty() || tags.front() != "lookup_failed") {
    results.Resend(r.index, e.status);
    return;
  }
  // A commit whose response was lost, replayed: the session is gone but the file may be in
  // place.
  d.EraseRecord(r.store_key);
  auto m = d.GetMetadata(unicode::ToNfc(item.cloud_path));
  if (m.ok() && m->has_value() && (*m)->tag == Metadata::Tag::kFile && (*m)->size == r.size &&
      (*m)->content_hash == r.digest) {
    results[r.index] = Committed(r, **m, item);
  } else {
    results.Resend(r.index, Status::Transient(e.status.message() + " (will upload again)"));
  }
}

// Commits `pending` once; returns the files to commit again (write contention).
std::vector<Ready> CommitRound(DropboxCloud::Impl& d, std::span<const UploadItem> items,
                               const std::vector<Ready>& pending, UploadResults& results) {
  std::vector<Ready> retry;
  for (std::size_t begin = 0; begin < pending.size(); begin += kMaxFinishEntries) {
    const auto ready =
        std::span(pending).subspan(begin, std::min(pending.size() - begin, kMaxFinishEntries));
    auto entries = Finish(d, items, ready);
    for (std::size_t k = 0; k < ready.size(); ++k) {
      if (!entries.ok()) {
        results[ready[k].index] = entries.status();
      } else {
        Settle(d, items[ready[k].index], ready[k], (*entries)[k], results, retry);
      }
    }
  }
  return retry;
}

}  // namespace

void DropboxCloud::Impl::Commit(std::span<const UploadItem> items, std::vector<Ready> pending,
                                UploadResults& results) {
  for (int attempt = 1; !pending.empty(); ++attempt) {
    std::vector<Ready> retry = CommitRound(*this, items, pending, results);
    if (retry.empty()) return;
    if (!BackOffContended(attempt)) {
      for (const Ready& r : retry) {
        results[r.index] = Status::RateLimited(
            "too many write operations, commit of " + items[r.index].cloud_path + " gave up",
            std::chrono::milliseconds(0));
      }
      return;
    }
    Log().info("{} commits hit too_many_write_operations; committing them again together",
               retry.size());
    pending = std::move(retry);
  }
}

}  // namespace filesync::dropbox
