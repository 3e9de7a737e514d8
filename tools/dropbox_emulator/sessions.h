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
// session's mutex.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <variant>

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
  std::string Create(bool concurrent);
  // A closed sequential session holding a copy (hard link) of `file`: where a failed
  // files/upload leaves its data (UploadWriteFailed.upload_session_id).
  std::string CreateClosedFrom(const std::string& file, std::uint64_t size);
  // Appends the body at `offset` (start passes offset 0). expected_hash checks this request's
  // bytes.
  std::optional<SessionError> Append(const std::string& id, std::uint64_t offset, bool close,
                                     const BodyReader& body,
                                     const std::optional<std::string>& expected_hash);
  // Appends an optional final body (sequential only), closes, checks completeness, hashes the
  // data and adopts it into the blob store. require_closed is finish_batch's rule.
  std::variant<ReadySession, SessionError> PrepareFinish(
      const std::string& id, std::uint64_t offset, const BodyReader& body,
      const std::optional<std::string>& expected_hash, bool require_closed);
  // Forgets a committed session.
  void Complete(const std::string& id);

 private:
  struct Session;
  std::shared_ptr<Session> Find(const std::string& id);
  void Save(const Session& s);
  // Streams the body into the data file at `offset`; counts every byte in *received.
  bool WriteBody(const Session& s, std::uint64_t offset, const BodyReader& body,
                 std::uint64_t* received, std::string* hash_hex, bool* io_ok);

  std::string dir_;
  BlobStore* blobs_;
  sqlite3* db_ = nullptr;
  std::mutex db_mu_;  // guards db_
  std::mutex mu_;     // guards sessions_
  std::unordered_map<std::string, std::shared_ptr<Session>> sessions_;

  void JanitorLoop();
  bool HasRow(const std::string& id);
  std::mutex trash_mu_;  // guards trash_ and stopping_
  std::condition_variable trash_cv_;
  std::deque<std::string> trash_;
  bool stopping_ = false;
  std::thread janitor_;
};

}  // namespace filesync::emulator
