// Large files (> small_file_limit): one concurrent upload session per file, chunk_size appends
// sent max_parallel_chunks at a time, the closing chunk last. After each chunk the SessionStore
// record under "dropbox/upload/<cloud key>" gets that chunk's 4 MiB block hashes, so a new
// DropboxCloud resends only the missing chunks and still knows the file's content hash
// (sessions older than session_max_age are started again).
#include "cloud/dropbox/dropbox_impl.h"
#include "core/parallel_for.h"
#include "core/rel_path.h"
#include "hash/block_hash.h"
#include "util/unicode.h"

namespace filesync::dropbox {
namespace {

std::string StoreKey(const std::string& cloud_path) {
  return "dropbox/upload/" + core::CloudKey(unicode::ToNfc(cloud_path));
}

// Sends the chunks of one file that its session record does not have yet.
class ChunkSender {
 public:
  ChunkSender(DropboxCloud::Impl& d, const core::StableFile& file, const cloud::UploadItem& item,
              SessionRecord& record, const std::string& key, const cloud::Transfer& transfer)
      : d_(d),
        file_(file),
        item_(item),
        record_(record),
        key_(key),
        transfer_(transfer),
        size_(file.identity().size),
        chunk_(d.o.chunk_size),
        chunks_((size_ + chunk_ - 1) / chunk_) {}

  // Chunks before the last go in parallel; the closing chunk goes once they are all in.
  // Returns the first failure.
  Status Run() {
    core::ParallelFor(static_cast<std::size_t>(chunks_ - 1), d_.o.max_parallel_chunks,
                      [&](std::size_t i) { Send(i); });
    if (!failed_) Send(chunks_ - 1);
    core::MutexLock lock(&mu_);
    return first_error_;
  }
  [[nodiscard]] std::uint64_t sent() const { return sent_.load(); }
  [[nodiscard]] std::uint64_t chunks() const { return chunks_; }

 private:
  void Fail(Status s) EXCLUDES(mu_) {
    core::MutexLock lock(&mu_);
    if (first_error_.ok()) first_error_ = std::move(s);
    failed_ = true;
  }

  bool Done(std::uint64_t i) EXCLUDES(mu_) {
    core::MutexLock lock(&mu_);
    return record_.done.contains(i);
  }

  void Send(std::uint64_t i) {
    if (failed_.load() || Done(i)) return;
    if (transfer_.cancelled()) return Fail(Status::Cancelled(item_.cloud_path + ": stopped"));
    const int stop_after = d_.stop_after_chunks.load();
    if (stop_after > 0 && d_.chunks_sent.fetch_add(1) >= stop_after) {
      return Fail(
          Status::Cancelled("test hook: stopped after " + std::to_string(stop_after) + " chunks"));
    }
    const std::uint64_t offset = i * chunk_;
    const auto len = static_cast<std::size_t>(std::min(chunk_, size_ - offset));
    std::string buffer(len, '\0');
    if (Status s = ReadAt(file_.fd(), offset, len, buffer.data(), item_.local_path); !s.ok())
      return Fail(s);
    std::vector<hash::Digest> blocks = hash::BlockHashes(buffer);
    const ojson arg = {{"cursor", {{"session_id", record_.session_id}, {"offset", offset}}},
                       {"close", i + 1 == chunks_},
                       {"content_hash", hash::ToHex(hash::CombineBlocks(blocks))}};
    Reply r = d_.Content("files/upload_session/append_v2", arg, std::move(buffer), transfer_);
    if (!r.ok() && !Arrived(r, i, offset + len)) return Fail(r.status);
    core::MutexLock lock(&mu_);  // also keeps progress() calls of one Upload serial
    if (r.ok()) {
      sent_ += len;
      transfer_.Progress(len);
    }
    record_.done[i] = std::move(blocks);
    d_.SaveRecord(key_, record_);
  }

  // A chunk that reached the server before its response was lost: a later offset, or, for the
  // closing chunk, a session already closed (by that chunk: the others were in).
  [[nodiscard]] bool Arrived(const Reply& r, std::uint64_t i, std::uint64_t end) const {
    const auto correct = r.error ? CorrectOffset(r.error->error) : std::nullopt;
    return (r.Has("incorrect_offset") && correct && *correct >= end) ||
           (r.Has("closed") && i + 1 == chunks_);
  }

  DropboxCloud::Impl& d_;
  const core::StableFile& file_;
  const cloud::UploadItem& item_;
  // record_.done is written under mu_ by the chunk threads (session_id is read-only here).
  SessionRecord& record_;
  const std::string& key_;
  const cloud::Transfer& transfer_;
  const std::uint64_t size_;
  const std::uint64_t chunk_;
  const std::uint64_t chunks_;
  core::Mutex mu_;
  Status first_error_ GUARDED_BY(mu_);
  std::atomic<bool> failed_{false};
  std::atomic<std::uint64_t> sent_{0};
};

}  // namespace

std::string SessionRecord::Serialize() const {
  nlohmann::json j;
  j["v"] = 1;
  j["session_id"] = session_id;
  j["identity"] = {identity.size, identity.mtime_ns, identity.ctime_ns, identity.inode,
                   identity.device};
  j["chunk_size"] = chunk_size;
  j["started"] = started_unix;
  nlohmann::json chunks = nlohmann::json::object();
  for (const auto& [i, blocks] : done) chunks[std::to_string(i)] = hash::BlocksToHex(blocks);
  j["chunks"] = std::move(chunks);
  return j.dump();
}

std::optional<SessionRecord> SessionRecord::Parse(const std::string& text) {
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object() || j.value("v", 0) != 1) return std::nullopt;
  try {
    SessionRecord r;
    r.session_id = j.at("session_id").get<std::string>();
    const auto& id = j.at("identity");
    r.identity = core::FileIdentity{id.at(0).get<std::uint64_t>(), id.at(1).get<std::int64_t>(),
                                    id.at(2).get<std::int64_t>(), id.at(3).get<std::uint64_t>(),
                                    id.at(4).get<std::uint64_t>()};
    r.chunk_size = j.at("chunk_size").get<std::uint64_t>();
    r.started_unix = j.at("started").get<std::int64_t>();
    for (const auto& [key, value] : j.at("chunks").items()) {
      std::vector<hash::Digest> blocks;
      if (!hash::BlocksFromHex(value.get<std::string>(), &blocks)) return std::nullopt;
      r.done[std::stoull(key)] = std::move(blocks);
    }
    return r;
  } catch (const std::exception&) {
    return std::nullopt;  // an unreadable record only costs a fresh upload
  }
}

std::optional<SessionRecord> DropboxCloud::Impl::LoadRecord(const std::string& key) {
  core::MutexLock lock(&store_mu);
  if (sessions == nullptr) return std::nullopt;
  auto got = sessions->Get(key);
  if (!got.ok()) {
    Log().warn("cannot read upload session state {}: {}", key, got.status().ToString());
    return std::nullopt;
  }
  if (!got->has_value()) return std::nullopt;
  return SessionRecord::Parse(**got);
}

void DropboxCloud::Impl::SaveRecord(const std::string& key, const SessionRecord& record) {
  core::MutexLock lock(&store_mu);
  if (sessions == nullptr) return;
  if (Status s = sessions->Put(key, record.Serialize()); !s.ok()) {
    Log().warn("cannot save upload session state {}: {}", key, s.ToString());
  }
}

void DropboxCloud::Impl::EraseRecord(const std::string& key) {
  core::MutexLock lock(&store_mu);
  if (sessions == nullptr || key.empty()) return;
  if (Status s = sessions->Erase(key); !s.ok()) {
    Log().warn("cannot erase upload session state {}: {}", key, s.ToString());
  }
}

namespace {

std::int64_t WallSeconds(core::Clock& clock) {
  return std::chrono::duration_cast<std::chrono::seconds>(clock.WallNow().time_since_epoch())
      .count();
}

// The stored session for `key` if it is for these bytes, this chunk size and young enough; else
// a new concurrent session (stored).
Result<SessionRecord> SessionFor(DropboxCloud::Impl& d, const std::string& key,
                                 const cloud::UploadItem& item, const core::FileIdentity& before,
                                 std::uint64_t chunks, const cloud::Transfer& transfer) {
  std::optional<SessionRecord> record = d.LoadRecord(key);
  const std::int64_t max_age =
      std::chrono::duration_cast<std::chrono::seconds>(d.o.session_max_age).count();
  if (record &&
      (!core::SameContent(record->identity, before) || record->chunk_size != d.o.chunk_size ||
       record->started_unix + max_age <= WallSeconds(d.clock))) {
    record.reset();
  }
  if (record) {
    Log().info("resuming upload of {}: {} of {} chunks already sent", item.cloud_path,
               record->done.size(), chunks);
    return std::move(*record);
  }
  d.EraseRecord(key);
  Reply r = d.Content("files/upload_session/start", ojson{{"session_type", "concurrent"}},
                      std::string(), transfer);
  if (!r.ok()) return r.status;
  if (!r.result.contains("session_id") || !r.result["session_id"].is_string()) {
    return Status::Permanent("upload_session/start: no session_id");
  }
  SessionRecord fresh{
      r.result["session_id"].get<std::string>(), before, d.o.chunk_size, WallSeconds(d.clock), {}};
  d.SaveRecord(key, fresh);
  return fresh;
}

}  // namespace

Result<Ready> DropboxCloud::Impl::UploadLarge(std::size_t index, const cloud::UploadItem& item,
                                              const cloud::Transfer& transfer) {
  auto opened = cloud::OpenForUpload(item);
  if (!opened.ok()) return opened.status();
  const core::StableFile& file = *opened;
  const core::FileIdentity& before = file.identity();
  const std::string key = StoreKey(item.cloud_path);
  const std::uint64_t chunks = (before.size + o.chunk_size - 1) / o.chunk_size;
  for (int round = 0; round < 2; ++round) {
    auto record = SessionFor(*this, key, item, before, chunks, transfer);
    if (!record.ok()) return record.status();
    ChunkSender sender(*this, file, item, *record, key, transfer);
    if (Status s = sender.Run(); !s.ok()) {
      if (s.kind() == Status::Kind::kNotFound && round == 0) {
        Log().info("upload session for {} expired or vanished; starting it again", item.cloud_path);
        EraseRecord(key);
        continue;
      }
      if (s.kind() == Status::Kind::kChanged) EraseRecord(key);
      return s;
    }
    if (Status s = file.CheckUnchanged("uploaded"); !s.ok()) {
      EraseRecord(key);
      return s;
    }
    std::vector<hash::Digest> all;
    for (auto& [i, blocks] : record->done) all.insert(all.end(), blocks.begin(), blocks.end());
    return Ready{index,  record->session_id, before.size, hash::CombineBlocks(all),
                 before, sender.sent(),      key};
  }
  return Status::Transient("upload session for " + item.cloud_path + " kept vanishing");
}

}  // namespace filesync::dropbox
