// Upload sessions (upload_session/start, append_v2, append_batch, finish, finish_batch*).
//
// Each session's bookkeeping (type, closed flag, received size or received chunk ranges,
// creation time) is a row in DIR/sessions/sessions.db (SQLite, written after every change);
// its bytes are DIR/sessions/<hex>.data, written with pwrite at their offset, so a concurrent
// session's chunks may arrive in any order. Nothing is held in memory beyond the bookkeeping,
// and sessions survive an emulator restart (they are loaded lazily by id). One file per session
// and no directories keep inode churn low (10,000-file benchmarks create 10,000 sessions).
//
// Rules enforced (reference §10.3): sequential appends must start at the received size
// (otherwise incorrect_offset with correct_offset); concurrent offsets and non-final chunk
// lengths are multiples of 4 MiB; closed sessions refuse data; at most 150 MiB per request;
// sessions expire after 7 days (not_found).
//
// Errors are returned as values of Dropbox's unions: UploadSessionAppendError-style tags for
// Append; for PrepareFinish either a top-level UploadSessionFinishError tag or (lookup=true)
// an UploadSessionLookupError to wrap in lookup_failed.
//
// Data files of committed sessions are deleted by a background thread: on ext4 an unlink that
// frees an inode can take milliseconds, which would otherwise dominate finish_batch. The same
// thread removes data files left without a session row by an earlier run.
//
// Thread safety: all methods may be called concurrently. A sequential session serialises its
// appends; a concurrent session's appends write in parallel and only update ranges under the
// session's mutex. Locks are taken in the order mu_, a session's mu, db_mu_ (trash_mu_ alone).
#pragma once

#include <cstdint>
#include <ctime>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <variant>

#include "core/thread_annotations.h"
#include "dropbox_emulator/blob_store.h"

struct sqlite3;

namespace filesync::emulator {

inline constexpr std::uint64_t kMaxRequestBytes = 150ULL * 1024 * 1024;
inline constexpr std::uint64_t kConcurrentChunk = 4ULL * 1024 * 1024;
inline constexpr std::uint64_t kMaxSessionBytes = (1ULL << 41) - (1ULL << 22);

// Receives request body bytes; returns false to abort.
using BodySink = std::function<bool(const char* data, std::size_t len)>;
// Streams a request body into a sink; returns false if the body could not be read.
using BodyReader = std::function<bool(const BodySink& sink)>;

struct SessionError {
  nlohmann::json error;  // a union value
  bool lookup = false;   // PrepareFinish only: wrap in lookup_failed
};

// A session whose bytes are complete and hashed, ready to be committed.
struct ReadySession {
  std::uint64_t size = 0;
  std::string content_hash;
};

class UploadSessions {
 public:
  UploadSessions(const std::string& dir, BlobStore* blobs);
  ~UploadSessions();

  // Creates an empty session and returns its id.
  std::string Create(bool concurrent) EXCLUDES(mu_);
  // A closed sequential session holding a copy (hard link) of `file`: where a failed
  // files/upload leaves its data (UploadWriteFailed.upload_session_id).
  std::string CreateClosedFrom(const std::string& file, std::uint64_t size) EXCLUDES(mu_);
  // Appends the body at `offset` (start passes offset 0). expected_hash checks this request's
  // bytes.
  std::optional<SessionError> Append(const std::string& id, std::uint64_t offset, bool close,
                                     const BodyReader& body,
                                     const std::optional<std::string>& expected_hash) EXCLUDES(mu_);
  // Appends an optional final body (sequential only), closes, checks completeness, hashes the
  // data and adopts it into the blob store. require_closed is finish_batch's rule.
  std::variant<ReadySession, SessionError> PrepareFinish(
      const std::string& id, std::uint64_t offset, const BodyReader& body,
      const std::optional<std::string>& expected_hash, bool require_closed) EXCLUDES(mu_);
  // Forgets a committed session.
  void Complete(const std::string& id) EXCLUDES(mu_, trash_mu_, db_mu_);

 private:
  // id, data, concurrent and created are fixed once the session is shared; mu guards the rest.
  struct Session {
    core::Mutex mu;
    std::string id;
    std::string data;  // DIR/sessions/<hex>.data (created when the first byte arrives)
    bool concurrent = false;
    bool closed GUARDED_BY(mu) = false;
    std::uint64_t size GUARDED_BY(mu) = 0;  // sequential: received; concurrent: total once closed
    std::map<std::uint64_t, std::uint64_t> ranges GUARDED_BY(mu);  // concurrent: offset -> length
    std::time_t created = 0;
  };
  std::shared_ptr<Session> Find(const std::string& id) EXCLUDES(mu_, db_mu_);
  void Save(const Session& s) REQUIRES(s.mu) EXCLUDES(db_mu_);
  // Streams the body into the data file at `offset`; counts every byte in *received.
  bool WriteBody(const Session& s, std::uint64_t offset, const BodyReader& body,
                 std::uint64_t* received, std::string* hash_hex, bool* io_ok);
  // Writes one append's body at `offset` and checks it (size limits, expected hash).
  std::optional<SessionError> WriteChunk(const Session& s, std::uint64_t offset,
                                         const BodyReader& body,
                                         const std::optional<std::string>& expected_hash,
                                         std::uint64_t* received);
  // Records an append's `received` bytes at `offset` (closing the session if `close`).
  std::optional<SessionError> RecordLocked(Session& s, std::uint64_t offset, std::uint64_t received,
                                           bool close) REQUIRES(s.mu);

  std::string dir_;
  BlobStore* blobs_;
  core::Mutex db_mu_;
  sqlite3* db_ GUARDED_BY(db_mu_) = nullptr;
  core::Mutex mu_;
  std::unordered_map<std::string, std::shared_ptr<Session>> sessions_ GUARDED_BY(mu_);

  void JanitorLoop() EXCLUDES(trash_mu_, db_mu_);
  bool HasRow(const std::string& id) EXCLUDES(db_mu_);
  core::Mutex trash_mu_;
  core::CondVar trash_cv_;  // signalled when trash_ grows or stopping_ is set
  std::deque<std::string> trash_ GUARDED_BY(trash_mu_);
  bool stopping_ GUARDED_BY(trash_mu_) = false;
  std::thread janitor_;
};

}  // namespace filesync::emulator
