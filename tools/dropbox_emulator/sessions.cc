// Session ids are "pid_upload_session:" plus random hex; the directory name is the hex part.
// Bytes beyond the 150 MiB request limit are read and dropped, so the connection stays usable
// and the request gets a proper payload_too_large.
#include "dropbox_emulator/sessions.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>
#include <filesystem>
#include <random>
#include <sstream>
#include <stdexcept>

#include "dropbox_emulator/wire.h"
#include "hash/content_hash.h"

namespace filesync::emulator {
namespace {

constexpr const char* kIdPrefix = "pid_upload_session:";
constexpr std::time_t kLifetimeSeconds = 7 * 24 * 3600;

}  // namespace

UploadSessions::UploadSessions(const std::string& dir, BlobStore* blobs)
    : dir_(dir + "/sessions"), blobs_(blobs) {
  std::filesystem::create_directories(dir_);
  const std::string path = dir_ + "/sessions.db";
  if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) !=
          SQLITE_OK ||
      sqlite3_exec(db_,
                   "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                   "CREATE TABLE IF NOT EXISTS sessions(id TEXT PRIMARY KEY, state TEXT)",
                   nullptr, nullptr, nullptr) != SQLITE_OK) {
    throw std::runtime_error("cannot open " + path);  // start-up configuration error
  }
  janitor_ = std::thread([this] { JanitorLoop(); });
}

UploadSessions::~UploadSessions() {
  {
    core::MutexLock lock(&trash_mu_);
    stopping_ = true;  // pending deletions are abandoned; the next run's scan removes them
  }
  trash_cv_.SignalAll();
  janitor_.join();
  sqlite3_close(db_);
}

bool UploadSessions::HasRow(const std::string& id) {
  core::MutexLock lock(&db_mu_);
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db_, "SELECT 1 FROM sessions WHERE id = ?1", -1, &st, nullptr);
  sqlite3_bind_text(st, 1, id.c_str(), -1, SQLITE_TRANSIENT);
  const bool found = sqlite3_step(st) == SQLITE_ROW;
  sqlite3_finalize(st);
  return found;
}

void UploadSessions::JanitorLoop() {
  // Orphans from an earlier run: a data file is created only after its session row exists.
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir_, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.size() <= 5 || name.compare(name.size() - 5, 5, ".data") != 0) continue;
    if (!HasRow(kIdPrefix + name.substr(0, name.size() - 5))) ::unlink(entry.path().c_str());
    core::MutexLock lock(&trash_mu_);
    if (stopping_) return;
  }
  while (true) {
    std::string path;
    {
      core::MutexLock lock(&trash_mu_);
      while (!stopping_ && trash_.empty()) trash_cv_.Wait(&trash_mu_);
      if (stopping_) return;
      path = std::move(trash_.front());
      trash_.pop_front();
    }
    ::unlink(path.c_str());
  }
}

void UploadSessions::Save(const Session& s) {
  nlohmann::json ranges = nlohmann::json::array();
  for (const auto& [off, len] : s.ranges) ranges.push_back({off, len});
  const std::string state = nlohmann::json{
      {"concurrent", s.concurrent},
      {"closed", s.closed},
      {"size", s.size},
      {"ranges", ranges},
      {"created", s.created}}.dump();
  core::MutexLock lock(&db_mu_);
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db_, "INSERT OR REPLACE INTO sessions VALUES(?1, ?2)", -1, &st, nullptr);
  sqlite3_bind_text(st, 1, s.id.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 2, state.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_step(st);
  sqlite3_finalize(st);
}

std::string UploadSessions::Create(bool concurrent) {
  static core::Mutex rng_mu;
  static std::mt19937_64 rng GUARDED_BY(rng_mu){std::random_device{}()};
  std::string hex;
  {
    core::MutexLock lock(&rng_mu);
    char buf[40];
    std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(rng()),
                  static_cast<unsigned long long>(rng()));
    hex = buf;
  }
  auto s = std::make_shared<Session>();
  s->id = kIdPrefix + hex;
  s->data = dir_ + "/" + hex + ".data";
  s->concurrent = concurrent;
  s->created = std::time(nullptr);
  {
    core::MutexLock session_lock(&s->mu);  // uncontended: not shared yet
    Save(*s);
  }
  core::MutexLock lock(&mu_);
  sessions_[s->id] = s;
  return s->id;
}

std::string UploadSessions::CreateClosedFrom(const std::string& file, std::uint64_t size) {
  const std::string id = Create(false);
  auto s = Find(id);
  core::MutexLock lock(&s->mu);
  ::unlink(s->data.c_str());
  if (::link(file.c_str(), s->data.c_str()) != 0) std::filesystem::copy_file(file, s->data);
  s->size = size;
  s->closed = true;
  Save(*s);
  return id;
}

std::shared_ptr<UploadSessions::Session> UploadSessions::Find(const std::string& id) {
  core::MutexLock lock(&mu_);
  auto it = sessions_.find(id);
  std::shared_ptr<Session> s;
  if (it != sessions_.end()) {
    s = it->second;
  } else {
    if (id.rfind(kIdPrefix, 0) != 0) return nullptr;
    const std::string hex = id.substr(std::string(kIdPrefix).size());
    if (hex.empty() || hex.find_first_not_of("0123456789abcdef") != std::string::npos) {
      return nullptr;
    }
    std::string state;
    {
      core::MutexLock db_lock(&db_mu_);
      sqlite3_stmt* st = nullptr;
      sqlite3_prepare_v2(db_, "SELECT state FROM sessions WHERE id = ?1", -1, &st, nullptr);
      sqlite3_bind_text(st, 1, id.c_str(), -1, SQLITE_TRANSIENT);
      if (sqlite3_step(st) == SQLITE_ROW) {
        state = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
      }
      sqlite3_finalize(st);
    }
    auto j = nlohmann::json::parse(state, nullptr, false);
    if (state.empty() || j.is_discarded()) return nullptr;
    s = std::make_shared<Session>();
    s->id = id;
    s->data = dir_ + "/" + hex + ".data";
    s->concurrent = j.value("concurrent", false);
    s->created = j.value("created", std::time_t{0});
    core::MutexLock session_lock(&s->mu);  // uncontended: not shared yet
    s->closed = j.value("closed", false);
    s->size = j.value("size", std::uint64_t{0});
    for (const auto& r : j.value("ranges", nlohmann::json::array())) {
      s->ranges[r.at(0).get<std::uint64_t>()] = r.at(1).get<std::uint64_t>();
    }
    sessions_[id] = s;
  }
  if (std::time(nullptr) - s->created > kLifetimeSeconds) return nullptr;
  return s;
}

bool UploadSessions::WriteBody(const Session& s, std::uint64_t offset, const BodyReader& body,
                               std::uint64_t* received, std::string* hash_hex, bool* io_ok) {
  const int fd = ::open(s.data.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  *io_ok = fd >= 0;
  hash::ContentHasher hasher;
  std::uint64_t pos = offset;
  const bool read_ok = body([&](const char* data, std::size_t len) {
    const std::uint64_t before = *received;
    *received += len;
    if (before >= kMaxRequestBytes || !*io_ok) return true;  // drain only
    const std::size_t keep =
        static_cast<std::size_t>(std::min<std::uint64_t>(len, kMaxRequestBytes - before));
    hasher.Update(std::string_view(data, keep));
    std::size_t done = 0;
    while (done < keep) {
      const ssize_t n = ::pwrite(fd, data + done, keep - done, static_cast<off_t>(pos + done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        *io_ok = false;
        return true;
      }
      done += static_cast<std::size_t>(n);
    }
    pos += keep;
    return true;
  });
  if (fd >= 0) ::close(fd);
  *hash_hex = hash::ToHex(hasher.Finish());
  return read_ok;
}

std::optional<SessionError> UploadSessions::Append(
    const std::string& id, std::uint64_t offset, bool close, const BodyReader& body,
    const std::optional<std::string>& expected_hash) {
  auto s = Find(id);
  if (!s) return SessionError{Tag("not_found")};
  std::uint64_t received = 0;
  if (!s->concurrent) {
    core::MutexLock lock(&s->mu);  // held while writing: a sequential session's appends serialise
    if (s->closed) return SessionError{Tag("closed")};
    if (offset != s->size) {
      return SessionError{{{".tag", "incorrect_offset"}, {"correct_offset", s->size}}};
    }
    if (auto error = WriteChunk(*s, offset, body, expected_hash, &received)) return error;
    return RecordLocked(*s, offset, received, close);
  }
  {
    core::MutexLock lock(&s->mu);
    // A concurrent session's chunks may finish in any order, so chunks that lie before the
    // closing chunk's end are still accepted after the close.
    if (s->closed && (close || offset >= s->size)) return SessionError{Tag("closed")};
  }
  if (offset % kConcurrentChunk != 0) return SessionError{Tag("concurrent_session_invalid_offset")};
  // Concurrent chunks are written in parallel, without the session's mutex.
  if (auto error = WriteChunk(*s, offset, body, expected_hash, &received)) return error;
  core::MutexLock lock(&s->mu);
  return RecordLocked(*s, offset, received, close);
}

std::optional<SessionError> UploadSessions::WriteChunk(
    const Session& s, std::uint64_t offset, const BodyReader& body,
    const std::optional<std::string>& expected_hash, std::uint64_t* received) {
  std::string hex;
  bool io_ok = true;
  if (!WriteBody(s, offset, body, received, &hex, &io_ok) || !io_ok) {
    return SessionError{Tag("internal_error")};
  }
  if (*received > kMaxRequestBytes) return SessionError{Tag("payload_too_large")};
  if (expected_hash && *expected_hash != hex) return SessionError{Tag("content_hash_mismatch")};
  if (offset + *received > kMaxSessionBytes) return SessionError{Tag("too_large")};
  return std::nullopt;
}

std::optional<SessionError> UploadSessions::RecordLocked(Session& s, std::uint64_t offset,
                                                         std::uint64_t received, bool close) {
  if (s.closed && (!s.concurrent || close || offset + received > s.size)) {
    return SessionError{Tag("closed")};
  }
  if (s.concurrent) {
    if (!close && received % kConcurrentChunk != 0) {
      return SessionError{Tag("concurrent_session_invalid_data_size")};
    }
    if (received > 0) s.ranges[offset] = received;
    if (close) s.size = offset + received;
  } else {
    s.size += received;
  }
  s.closed = s.closed || close;
  Save(s);
  return std::nullopt;
}

std::variant<ReadySession, SessionError> UploadSessions::PrepareFinish(
    const std::string& id, std::uint64_t offset, const BodyReader& body,
    const std::optional<std::string>& expected_hash, bool require_closed) {
  auto s = Find(id);
  if (!s) return SessionError{Tag("not_found"), true};
  core::MutexLock lock(&s->mu);
  if (require_closed && !s->closed) return SessionError{Tag("not_closed"), true};
  std::uint64_t received = 0;
  std::string hex;
  bool io_ok = true;
  if (s->concurrent) {
    if (!WriteBody(*s, s->size, body, &received, &hex, &io_ok)) {
      return SessionError{Tag("internal_error")};
    }
    if (received > 0) return SessionError{Tag("concurrent_session_data_not_allowed")};
    if (!s->closed) return SessionError{Tag("concurrent_session_not_closed")};
    std::uint64_t covered = 0;
    for (const auto& [off, len] : s->ranges) {
      if (off > covered) break;
      covered = std::max(covered, off + len);
    }
    if (covered < s->size) return SessionError{Tag("concurrent_session_missing_data")};
    if (offset != s->size) {
      return SessionError{{{".tag", "incorrect_offset"}, {"correct_offset", s->size}}, true};
    }
  } else {
    if (offset != s->size) {
      return SessionError{{{".tag", "incorrect_offset"}, {"correct_offset", s->size}}, true};
    }
    if (!WriteBody(*s, offset, body, &received, &hex, &io_ok) || !io_ok) {
      return SessionError{Tag("internal_error")};
    }
    if (received > kMaxRequestBytes) return SessionError{Tag("payload_too_large")};
    if (received > 0 && s->closed) return SessionError{Tag("closed"), true};
    if (expected_hash && *expected_hash != hex) return SessionError{Tag("content_hash_mismatch")};
    if (received > 0) {
      s->size += received;
      s->closed = true;
      Save(*s);
    }
  }
  const std::string& data = s->data;
  const int fd = ::open(data.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  const bool sized = fd >= 0 && ::ftruncate(fd, static_cast<off_t>(s->size)) == 0;
  if (fd >= 0) ::close(fd);
  if (!sized) return SessionError{Tag("internal_error")};
  auto digest = hash::HashFile(data);
  if (!digest.ok()) return SessionError{Tag("internal_error")};
  ReadySession ready;
  ready.size = s->size;
  ready.content_hash = hash::ToHex(digest->digest);
  if (!blobs_->AdoptByLink(data, ready.content_hash).ok()) {
    return SessionError{Tag("internal_error")};
  }
  return ready;
}

void UploadSessions::Complete(const std::string& id) {
  std::shared_ptr<Session> s;
  {
    core::MutexLock lock(&mu_);
    auto it = sessions_.find(id);
    if (it == sessions_.end()) return;
    s = it->second;
    sessions_.erase(it);
  }
  core::MutexLock lock(&s->mu);
  {
    core::MutexLock trash_lock(&trash_mu_);
    trash_.push_back(s->data);
  }
  trash_cv_.Signal();
  core::MutexLock db_lock(&db_mu_);
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db_, "DELETE FROM sessions WHERE id = ?1", -1, &st, nullptr);
  sqlite3_bind_text(st, 1, id.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_step(st);
  sqlite3_finalize(st);
}

}  // namespace filesync::emulator
