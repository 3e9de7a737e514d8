// Internal to src/cloud/dropbox (and its tests): DropboxCloud::Impl and the types its files
// share. dropbox_cloud.h is the public face; this header may change with the implementation.
//
// Which file does what (dropbox_cloud.cc has the worked example of an upload):
//   rpc.cc             Execute, the ONE retry wrapper every request goes through (like rclone's
//                      pacer.Call): pacer wait, token, send, classify, retry what is safe
//   list.cc            list_folder and list_folder/continue
//   upload_small.cc    small files: read, start_batch + append_batch, or one start per file
//   upload_session.cc  large files: chunked concurrent sessions, resumable (SessionStore)
//   commit.cc          finish_batch_v2 for every file of an Upload() call
//   relocate.cc        delete_v2, delete_batch, move_v2, move_batch_v2
//   dropbox_cloud.cc   the cloud::Cloud methods
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "cloud/dropbox/dropbox_cloud.h"
#include "cloud/dropbox/errors.h"
#include "cloud/dropbox/http_client.h"
#include "cloud/dropbox/logging.h"
#include "cloud/dropbox/pacer.h"
#include "cloud/dropbox/parsing.h"
#include "core/thread_annotations.h"

namespace filesync::dropbox {

using ojson = nlohmann::ordered_json;

inline constexpr std::uint64_t kMiB = 1024 * 1024;
inline constexpr std::uint64_t kMaxRequestBytes = 150 * kMiB;
inline constexpr std::size_t kMaxBatchEntries = 1000;
inline constexpr std::size_t kMaxFinishEntries = 1000;
// Header lines up to this length pass common HTTP front ends (nginx's default 8 KiB buffers,
// cpp-httplib's 8192-byte line limit).
inline constexpr std::size_t kSafeHeaderBytes = 8000;

enum class Host { kApi, kContent };

// One request, as Execute sends it (and sends it again).
struct Call {
  std::string route;
  Host host = Host::kApi;
  std::string arg;   // JSON: the RPC body, or the Dropbox-API-Arg header value
  std::string body;  // content-style request body
  bool idempotent = true;
  bool retry_transient = true;          // false: a 5xx or network failure is returned at once
  bool close_connection_after = false;  // see HttpRequest
  std::chrono::seconds timeout{120};
  const std::atomic<bool>* cancel = nullptr;  // a stop request: abandon the call (kCancelled)
};

// What Execute made of a call, once it stopped retrying.
struct Reply {
  Status status;
  nlohmann::json result;          // parsed 2xx body (null for a Void result)
  std::optional<ApiError> error;  // when the server answered with an error
  bool ambiguous = false;         // a non-idempotent request may or may not have taken effect
  [[nodiscard]] bool ok() const { return status.ok(); }
  [[nodiscard]] bool Has(std::string_view tag) const { return error && error->Has(tag); }
};

// An optional batch route the server may not know (an older server, an API proxy). After an
// "unknown route" answer the caller falls back to the single-item routes for an hour, then
// tries again: Dropbox itself has briefly answered "Unknown API function" for routes it serves.
class OptionalRoute {
 public:
  explicit OptionalRoute(const char* name) : name_(name) {}
  [[nodiscard]] bool Available(core::Clock& clock) const {
    return Ms(clock) >= retry_at_ms_.load();
  }
  // True (and a warning logged) when `r` says the server does not know the route.
  bool Unknown(const Reply& r, core::Clock& clock, std::string_view fallback) {
    if (!r.error || !r.error->unknown_route) return false;
    retry_at_ms_ = Ms(clock) + std::chrono::milliseconds(std::chrono::hours(1)).count();
    Log().warn("the server does not know {}; using {} for the next hour", name_, fallback);
    return true;
  }

 private:
  static std::int64_t Ms(core::Clock& clock) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(clock.Now().time_since_epoch())
        .count();
  }
  const char* name_;
  std::atomic<std::int64_t> retry_at_ms_{std::numeric_limits<std::int64_t>::min()};
};

// A file whose bytes sit in a closed upload session, waiting for the batch commit.
struct Ready {
  std::size_t index = 0;
  std::string session_id;
  std::uint64_t size = 0;
  hash::Digest digest{};
  core::FileIdentity identity;
  std::uint64_t bytes_transferred = 0;
  std::string store_key;  // large files: the SessionStore record to drop once committed
};

// A small file read into memory, to go in an append_batch (or its own upload_session/start).
struct SmallFile {
  std::size_t index = 0;
  std::string data;
  hash::Digest digest{};
  core::FileIdentity identity;
};

// The per-item results of one upload round. `resend` marks failures that a new upload session
// fixes (a session that lost the file's bytes, a commit whose answer was lost while the file is
// not in place): Upload() sends those files once more itself, so callers need not retry them.
struct UploadResults {
  explicit UploadResults(std::size_t n) : result(n), resend(n, false) {}
  std::optional<Result<cloud::UploadedFile>>& operator[](std::size_t i) { return result[i]; }
  void Resend(std::size_t i, Status s) {
    resend[i] = s.IsRetryable();
    result[i] = std::move(s);
  }
  std::vector<std::optional<Result<cloud::UploadedFile>>> result;
  std::vector<bool> resend;
};

// Persisted progress of a large upload (JSON in the SessionStore).
struct SessionRecord {
  std::string session_id;
  core::FileIdentity identity;
  std::uint64_t chunk_size = 0;
  std::int64_t started_unix = 0;
  std::map<std::uint64_t, std::vector<hash::Digest>> done;  // chunk index -> block hashes

  [[nodiscard]] std::string Serialize() const;
  static std::optional<SessionRecord> Parse(const std::string& text);
};

// Reads exactly `len` bytes at `offset`; a short read means the file shrank (kChanged).
Status ReadAt(int fd, std::uint64_t offset, std::size_t len, char* out, const std::string& path);

struct DropboxCloud::Impl {
  explicit Impl(DropboxOptions options);

  // ---- rpc.cc: requests ---------------------------------------------------------------
  Reply Execute(Call call);
  Reply Rpc(std::string route, const ojson& arg, bool idempotent = true,
            std::chrono::seconds timeout = std::chrono::seconds(120));
  // `probe`: the header may be over what the server accepts; a refusal is returned at once
  // and the connection is not reused.
  Reply Content(std::string route, const ojson& arg, std::string body,
                const cloud::Transfer& transfer, bool probe = false);
  // nullopt when nothing is at `path`.
  Result<std::optional<Metadata>> GetMetadata(const std::string& path);
  // Polls a batch job's check route until it is no longer in progress.
  Result<JobStatus> PollJob(const std::string& route, const std::string& job_id,
                            SuccessShape shape);
  // Sleeps `d`; a stop request cuts it short (the caller's next attempt then returns).
  void Pause(std::chrono::milliseconds d, const std::atomic<bool>* cancel);
  // After a batch round (commit, delete_batch, move_batch_v2) left entries that hit
  // too_many_write_operations: slows the account's writes and waits a write backoff; false
  // (without waiting) once `attempt` rounds have been spent, when the entries give up.
  bool BackOffContended(int attempt);

  // ---- list.cc ------------------------------------------------------------------------
  Result<cloud::ListResult> FullList(const std::string& root);
  Result<cloud::ListResult> Continue(const std::string& root, const std::string& cursor);

  // ---- upload_small.cc ----------------------------------------------------------------
  Result<SmallFile> ReadSmall(std::size_t index, const cloud::UploadItem& item);
  void StartEach(std::vector<SmallFile>& files, std::vector<Ready>& ready, UploadResults& results,
                 const cloud::Transfer& transfer);
  std::size_t AppendBatch(std::vector<SmallFile>& files, std::vector<Ready>& ready,
                          UploadResults& results, const cloud::Transfer& transfer);

  // ---- upload_session.cc --------------------------------------------------------------
  Result<Ready> UploadLarge(std::size_t index, const cloud::UploadItem& item,
                            const cloud::Transfer& transfer);
  // The SessionStore record of an upload under `key` ("dropbox/upload/<cloud key>").
  std::optional<SessionRecord> LoadRecord(const std::string& key) EXCLUDES(store_mu);
  void SaveRecord(const std::string& key, const SessionRecord& record) EXCLUDES(store_mu);
  void EraseRecord(const std::string& key) EXCLUDES(store_mu);

  // ---- commit.cc ----------------------------------------------------------------------
  void Commit(std::span<const cloud::UploadItem> items, std::vector<Ready> pending,
              UploadResults& results);

  // ---- relocate.cc --------------------------------------------------------------------
  Status DeleteOne(const std::string& path);
  void DeleteBatch(const std::vector<std::string>& paths, const std::vector<std::size_t>& index,
                   std::vector<Status>& results);
  Result<cloud::RemoteEntry> MoveOnce(const std::string& from, const std::string& to);
  void MoveBatchChunk(std::span<const cloud::MovePair> moves, std::vector<std::size_t> pending,
                      std::vector<std::optional<Result<cloud::RemoteEntry>>>& results);

  // ---- dropbox_cloud.cc ---------------------------------------------------------------
  // Reads the small files of `items` and sends them into closed sessions (append_batch while
  // the server knows it, else one start per file).
  void SendSmall(std::span<const cloud::UploadItem> items, std::vector<Ready>& ready,
                 UploadResults& results, const cloud::Transfer& transfer);
  // One Upload() round: read, send and commit `items`; `resend` (if not null) gets, per item,
  // whether its failure is one a new session fixes.
  std::vector<Result<cloud::UploadedFile>> UploadRound(std::span<const cloud::UploadItem> items,
                                                       const cloud::Transfer& transfer,
                                                       std::vector<bool>* resend);

  DropboxOptions o;
  core::Clock& clock;
  Pacer pacer;
  std::shared_ptr<HttpTransport> transport;
  std::shared_ptr<TokenProvider> tokens;
  core::Mutex store_mu;
  SessionStore* const sessions PT_GUARDED_BY(store_mu);  // o.sessions (may be null)
  std::atomic<int> chunks_sent{0};
  std::atomic<int> stop_after_chunks{0};   // TEST_StopAfterChunks (0: never)
  std::atomic<std::size_t> header_cap{0};  // learned Dropbox-API-Arg limit (0: none seen yet)
  OptionalRoute batch_upload_route{"upload_session/start_batch and append_batch"};
  OptionalRoute move_batch_route{"move_batch_v2"};
};

}  // namespace filesync::dropbox
