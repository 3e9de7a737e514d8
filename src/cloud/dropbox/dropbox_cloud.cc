// How DropboxCloud works.
//
// Every request goes through Impl::Execute: pacer wait -> bearer token -> send -> classify.
// Execute retries what is safe to retry: 429 (after the pacer's account-wide pause), whole-request
// too_many_write_operations (write backoff), 5xx and network errors for idempotent requests
// (full-jitter backoff), and a 401 expired_access_token once after a refresh. A non-idempotent
// request (move, delete_v2) that fails ambiguously comes back marked `ambiguous`, and its caller
// looks at the real state with get_metadata before retrying.
//
// Upload, worked example for 3 small files a (5 B), b (0 B), c (7 B) and one 40 MiB file d,
// chunk_size 16 MiB:
//   1. a, b, c are read (identity checked before/after, hashed) into memory.
//   2. upload_session/start_batch {num_sessions:3} -> 3 session ids.
//   3. upload_session/append_batch: body = a|b|c (12 bytes), entries with lengths 5,0,7 and
//      close=true, content_hash of the 12 bytes.
//   4. d: upload_session/start {session_type:concurrent}; append_v2 of chunks 0 and 1
//      (16 MiB each, in parallel), then chunk 2 (8 MiB, close=true). After each chunk the
//      SessionStore record under "dropbox/upload/<cloud key>" gets that chunk's 4 MiB block
//      hashes, so a restart resends only missing chunks and still knows d's content hash.
//   5. ONE finish_batch_v2 commits a, b, c and d; each returned size/content_hash is compared
//      with the local digest. too_many_write_operations entries are committed again together.
#include "cloud/dropbox/dropbox_cloud.h"

#include <fcntl.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <iterator>
#include <limits>
#include <map>
#include <optional>
#include <stdexcept>

#include "cloud/dropbox/json_arg.h"
#include "cloud/dropbox/logging.h"
#include "cloud/dropbox/parsing.h"
#include "core/parallel_for.h"
#include "core/rel_path.h"
#include "util/unicode.h"

namespace filesync::dropbox {

using cloud::ListChange;
using cloud::ListResult;
using cloud::RemoteEntry;
using cloud::UploadedFile;
using cloud::UploadItem;
using core::FileIdentity;
using core::StableFile;
using ojson = nlohmann::ordered_json;

namespace {

constexpr std::uint64_t kMiB = 1024 * 1024;
constexpr std::uint64_t kMaxRequestBytes = 150 * kMiB;
constexpr std::size_t kMaxBatchEntries = 1000;
constexpr std::size_t kMaxFinishEntries = 1000;
// Header lines up to this length pass common HTTP front ends (nginx's default 8 KiB buffers,
// cpp-httplib's 8192-byte line limit).
constexpr std::size_t kSafeHeaderBytes = 8000;

enum class Host { kApi, kContent };

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

struct Reply {
  Status status;
  nlohmann::json result;          // parsed 2xx body (null for a Void result)
  std::optional<ApiError> error;  // when the server answered with an error
  bool ambiguous = false;         // a non-idempotent request may or may not have taken effect
  [[nodiscard]] bool ok() const { return status.ok(); }
  [[nodiscard]] bool Has(std::string_view tag) const { return error && error->Has(tag); }
};

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

// Reads exactly `len` bytes at `offset`; a short read means the file shrank (kChanged).
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

std::string RandomHex(std::size_t bytes) {
  std::vector<unsigned char> raw(bytes);
  if (RAND_bytes(raw.data(), static_cast<int>(raw.size())) != 1)
    throw std::runtime_error("RAND_bytes failed");
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (const unsigned char b : raw) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 0xF]);
  }
  return out;
}

using BlockDigest = std::array<unsigned char, SHA256_DIGEST_LENGTH>;

// SHA-256 of each 4 MiB block of `data` (the content hash's first stage, reference §12).
std::vector<BlockDigest> BlockHashes(std::string_view data) {
  std::vector<BlockDigest> out;
  for (std::size_t off = 0; off < data.size(); off += hash::kBlockSize) {
    const std::size_t len = std::min(hash::kBlockSize, data.size() - off);
    BlockDigest d{};
    SHA256(reinterpret_cast<const unsigned char*>(data.data() + off), len, d.data());
    out.push_back(d);
  }
  return out;
}

hash::Digest CombineBlocks(const std::vector<BlockDigest>& blocks) {
  std::vector<unsigned char> joined;
  joined.reserve(blocks.size() * SHA256_DIGEST_LENGTH);
  for (const auto& b : blocks) joined.insert(joined.end(), b.begin(), b.end());
  hash::Digest out{};
  SHA256(joined.data(), joined.size(), out.data());
  return out;
}

std::string BlocksToHex(const std::vector<BlockDigest>& blocks) {
  std::string out;
  for (const auto& b : blocks) {
    hash::Digest d{};
    std::copy(b.begin(), b.end(), d.begin());
    out += hash::ToHex(d);
  }
  return out;
}

bool BlocksFromHex(std::string_view hex, std::vector<BlockDigest>* out) {
  if (hex.size() % 64 != 0) return false;
  for (std::size_t i = 0; i < hex.size(); i += 64) {
    hash::Digest d{};
    if (!hash::FromHex(hex.substr(i, 64), &d)) return false;
    BlockDigest b{};
    std::copy(d.begin(), d.end(), b.begin());
    out->push_back(b);
  }
  return true;
}

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
  FileIdentity identity;
  std::uint64_t bytes_transferred = 0;
  std::string store_key;  // large files: the SessionStore record to drop once committed
};

struct SmallFile {
  std::size_t index = 0;
  std::string data;
  hash::Digest digest{};
  FileIdentity identity;
};

// The per-item results of one upload round. `resend` marks failures that a new upload session
// fixes (a session that lost the file's bytes, a commit whose answer was lost while the file is
// not in place): Upload() sends those files once more itself, so callers need not retry.
struct UploadResults {
  explicit UploadResults(std::size_t n) : result(n), resend(n, false) {}
  std::optional<Result<UploadedFile>>& operator[](std::size_t i) { return result[i]; }
  void Resend(std::size_t i, Status s) {
    resend[i] = s.IsRetryable();
    result[i] = std::move(s);
  }
  std::vector<std::optional<Result<UploadedFile>>> result;
  std::vector<bool> resend;
};

// Persisted progress of a large upload (JSON in the SessionStore).
struct SessionRecord {
  std::string session_id;
  FileIdentity identity;
  std::uint64_t chunk_size = 0;
  std::int64_t started_unix = 0;
  std::map<std::uint64_t, std::vector<BlockDigest>> done;  // chunk index -> block hashes

  [[nodiscard]] std::string Serialize() const {
    nlohmann::json j;
    j["v"] = 1;
    j["session_id"] = session_id;
    j["identity"] = {identity.size, identity.mtime_ns, identity.ctime_ns, identity.inode,
                     identity.device};
    j["chunk_size"] = chunk_size;
    j["started"] = started_unix;
    nlohmann::json chunks = nlohmann::json::object();
    for (const auto& [i, blocks] : done) chunks[std::to_string(i)] = BlocksToHex(blocks);
    j["chunks"] = std::move(chunks);
    return j.dump();
  }

  static std::optional<SessionRecord> Parse(const std::string& text) {
    const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
    if (!j.is_object() || j.value("v", 0) != 1) return std::nullopt;
    try {
      SessionRecord r;
      r.session_id = j.at("session_id").get<std::string>();
      const auto& id = j.at("identity");
      r.identity = FileIdentity{id.at(0).get<std::uint64_t>(), id.at(1).get<std::int64_t>(),
                                id.at(2).get<std::int64_t>(), id.at(3).get<std::uint64_t>(),
                                id.at(4).get<std::uint64_t>()};
      r.chunk_size = j.at("chunk_size").get<std::uint64_t>();
      r.started_unix = j.at("started").get<std::int64_t>();
      for (const auto& [key, value] : j.at("chunks").items()) {
        std::vector<BlockDigest> blocks;
        if (!BlocksFromHex(value.get<std::string>(), &blocks)) return std::nullopt;
        r.done[std::stoull(key)] = std::move(blocks);
      }
      return r;
    } catch (const std::exception&) {
      return std::nullopt;  // an unreadable record only costs a fresh upload
    }
  }
};

}  // namespace

struct DropboxCloud::Impl {
  explicit Impl(DropboxOptions options)
      : o(std::move(options)),
        clock(o.clock != nullptr ? *o.clock : core::SystemClock()),
        pacer(o.pacer, clock) {
    if (o.chunk_size == 0 || o.chunk_size % hash::kBlockSize != 0 || o.chunk_size > 148 * kMiB) {
      throw std::invalid_argument("dbx_chunk_size must be a multiple of 4 MiB, at most 148 MiB");
    }
    if (o.max_parallel_chunks < 1) o.max_parallel_chunks = 1;
    o.max_batch_files = std::clamp<std::size_t>(o.max_batch_files, 1, kMaxBatchEntries);
    transport =
        o.transport ? o.transport : MakeCurlTransport(HttpClientOptions{.ca_file = o.ca_file});
    if (o.tokens) {
      tokens = o.tokens;
    } else if (!o.refresh_token.empty()) {
      if (o.app_key.empty()) throw std::invalid_argument("dbx_refresh_token needs dbx_app_key");
      tokens = std::make_shared<RefreshingTokenProvider>(
          RefreshOptions{.api_url = o.api_url,
                         .app_key = o.app_key,
                         .app_secret = o.app_secret,
                         .refresh_token = o.refresh_token},
          transport, clock);
    } else if (!o.access_token.empty()) {
      tokens = std::make_shared<StaticTokenProvider>(o.access_token);
    } else {
      throw std::invalid_argument(
          "no Dropbox credentials: set dbx_token, or dbx_refresh_token and dbx_app_key");
    }
  }

  // ---- requests -------------------------------------------------------------------------

  Reply Execute(Call call) {
    HttpRequest request;
    request.url = (call.host == Host::kApi ? o.api_url : o.content_url) + "/2/" + call.route;
    request.timeout = call.timeout;
    request.close_connection_after = call.close_connection_after;
    request.cancel = call.cancel;
    if (call.host == Host::kApi) {
      request.headers.Add("Content-Type", "application/json");
      request.body = std::move(call.arg);
    } else {
      request.headers.Add("Content-Type", "application/octet-stream");
      request.headers.Add("Dropbox-API-Arg", std::move(call.arg));
      request.body = std::move(call.body);
    }
    int transient_attempts = 0;
    int rate_attempts = 0;
    int write_attempts = 0;
    bool refreshed = false;
    std::string token;
    auto stopped = [&] { return call.cancel != nullptr && call.cancel->load(); };
    for (;;) {
      if (stopped()) return Reply{Status::Cancelled(call.route + ": stopped")};
      if (token.empty()) {
        auto t = tokens->AccessToken();
        if (!t.ok()) return Reply{Untrusted(Refused(t.status(), t.status().message()))};
        token = std::move(*t);
      }
      request.headers.Set("Authorization", "Bearer " + token);
      pacer.Wait(call.cancel);
      if (stopped()) return Reply{Status::Cancelled(call.route + ": stopped")};
      const auto sent_at = clock.Now();
      auto response = transport->Send(request);
      Log().debug(
          "{} -> {} in {} ms", call.route, response.ok() ? response->status : 0L,
          std::chrono::duration_cast<std::chrono::milliseconds>(clock.Now() - sent_at).count());
      if (!response.ok()) {
        const Status& s = response.status();
        if (s.kind() != Status::Kind::kTransient) return Reply{Untrusted(s)};
        if (!call.idempotent) return Reply{s, {}, std::nullopt, true};
        if (!call.retry_transient) return Reply{s};
        if (++transient_attempts >= pacer.options().max_attempts) return Reply{s};
        Log().warn("{} (attempt {}), retrying", s.message(), transient_attempts);
        Pause(pacer.Backoff(transient_attempts), call.cancel);
        continue;
      }
      if (response->status >= 200 && response->status < 300) {
        Reply reply;
        if (!response->body.empty()) {
          reply.result = nlohmann::json::parse(response->body, nullptr, false);
          if (reply.result.is_discarded()) {
            return Reply{Status::Permanent(call.route + ": response is not JSON")};
          }
        }
        return reply;
      }
      ApiError error = ClassifyResponse(*response, call.route);
      if (error.http_status == 401) {
        // An expired or revoked access token: a refresh token (if any) gets a new one, once.
        const std::string detail = call.route + ": HTTP 401 " + error.TagPath();
        if (refreshed || !(error.expired_token || error.Has("invalid_access_token"))) {
          return Reply{Refused(error.status, detail), {}, std::move(error)};
        }
        refreshed = true;
        auto t = tokens->RefreshAfterExpiry(token);
        if (!t.ok()) {
          const bool cannot_refresh = o.tokens == nullptr && o.refresh_token.empty();
          return Reply{Refused(t.status(), cannot_refresh ? detail : t.status().message()),
                       {},
                       std::move(error)};
        }
        token = std::move(*t);
        continue;
      }
      if (error.http_status == 429 || error.rate_reason == RateReason::kTooManyWriteOperations) {
        pacer.OnRateLimited(error.rate_reason, error.retry_after);
        if (error.rate_reason == RateReason::kTooManyWriteOperations) {
          if (++write_attempts >= pacer.options().max_write_attempts)
            return Reply{error.status, {}, std::move(error)};
          if (!error.retry_after) Pause(pacer.WriteBackoff(write_attempts), call.cancel);
        } else if (++rate_attempts >= pacer.options().max_rate_limited_attempts) {
          return Reply{error.status, {}, std::move(error)};
        }
        Log().info("{}; waiting before retrying", error.status.message());
        continue;
      }
      if (error.http_status >= 500) {
        if (!call.idempotent) return Reply{error.status, {}, std::move(error), true};
        if (!call.retry_transient) return Reply{error.status, {}, std::move(error)};
        if (++transient_attempts >= pacer.options().max_attempts) {
          Log().warn("{}; giving up after {} attempts", error.status.message(), transient_attempts);
          return Reply{error.status, {}, std::move(error)};
        }
        Log().warn("{} (attempt {}), retrying", error.status.message(), transient_attempts);
        auto delay = pacer.Backoff(transient_attempts);
        if (error.retry_after) delay = std::max(delay, *error.retry_after);
        Pause(delay, call.cancel);
        continue;
      }
      if (error.http_status != 409) Log().warn("{}", error.status.message());
      Status status = error.status;
      return Reply{std::move(status), {}, std::move(error)};
    }
  }

  // Sleeps `d`; a stop request cuts it short (the caller's next attempt then returns).
  void Pause(std::chrono::milliseconds d, const std::atomic<bool>* cancel) {
    if (cancel == nullptr) return pacer.Sleep(d);
    const auto until = clock.Now() + d;
    for (auto now = clock.Now(); now < until && !cancel->load(); now = clock.Now()) {
      clock.SleepFor(
          std::min<core::Clock::TimePoint::duration>(until - now, std::chrono::milliseconds(100)));
    }
  }

  // A credential Dropbox refused (kAuth), said in terms of the configuration key that holds it
  // and what to do; other failures pass through. `detail` names what was refused, never a token.
  Status Refused(const Status& s, const std::string& detail) const {
    if (s.kind() != Status::Kind::kAuth) return s;
    if (detail.find("missing_scope") != std::string::npos) {
      return Status::Auth("Dropbox refused the request (" + detail +
                          "): the app lacks a permission; enable it on the app's Permissions "
                          "tab, then run `filesync auth` again and update dbx_refresh_token_file");
    }
    if (o.tokens == nullptr && !o.refresh_token.empty()) {
      return Status::Auth("Dropbox refused the refresh token in dbx_refresh_token (" + detail +
                          "); run `filesync auth` to link the account again and point "
                          "dbx_refresh_token_file at the new token");
    }
    if (o.tokens == nullptr) {
      return Status::Auth("Dropbox refused the access token in dbx_token (" + detail +
                          "): it is invalid, revoked or expired; run `filesync auth` and set "
                          "dbx_refresh_token_file instead (or put a new token in dbx_token)");
    }
    return Status::Auth("Dropbox refused the credentials (" + detail +
                        "); check dbx_token / dbx_refresh_token, or run `filesync auth`");
  }

  // A server whose TLS certificate could not be verified, said in terms of the configuration
  // (kAuth: the server could not be authenticated); other failures pass through.
  static Status Untrusted(const Status& s) {
    if (s.kind() != Status::Kind::kPermanent || !s.message().starts_with(kTlsVerificationFailed))
      return s;
    return Status::Auth("cannot verify the Dropbox server's TLS certificate (" + s.message() +
                        "); if it uses a private CA (the emulator, a TLS-inspecting proxy), set "
                        "dbx_ca_file to that CA's bundle, else check dbx_api_url and "
                        "dbx_content_url");
  }

  Reply Rpc(std::string route, const ojson& arg, bool idempotent = true,
            std::chrono::seconds timeout = std::chrono::seconds(120)) {
    Call call;
    call.route = std::move(route);
    call.arg = arg.dump(-1, ' ', false, ojson::error_handler_t::replace);
    call.idempotent = idempotent;
    call.timeout = timeout;
    return Execute(std::move(call));
  }

  // `probe`: the header may be over what the server accepts; a refusal is returned at once and
  // the connection is not reused.
  Reply Content(std::string route, const ojson& arg, std::string body,
                const cloud::Transfer& transfer, bool probe = false) {
    Call call;
    call.cancel = transfer.cancel;
    call.retry_transient = !probe;
    call.close_connection_after = probe;
    call.route = std::move(route);
    call.host = Host::kContent;
    call.arg = EncodeHeaderArg(arg);
    call.body = std::move(body);
    call.timeout = std::chrono::seconds(0);  // big bodies: rely on the low-speed abort
    return Execute(std::move(call));
  }

  // nullopt when nothing is at `path`.
  Result<std::optional<Metadata>> GetMetadata(const std::string& path) {
    Reply r = Rpc("files/get_metadata", ojson{{"path", path}});
    if (!r.ok()) {
      if (r.Has("not_found")) return std::optional<Metadata>();
      return r.status;
    }
    auto m = ParseMetadata(r.result, Metadata::Tag::kUnknown);
    if (!m.ok()) return m.status();
    return std::optional<Metadata>(std::move(*m));
  }

  // ---- listing --------------------------------------------------------------------------

  static void AppendChanges(const std::string& root_key, std::vector<Metadata>& entries,
                            ListResult* out) {
    for (Metadata& m : entries) {
      ListChange change;
      if (m.tag == Metadata::Tag::kDeleted) {
        change.type = ListChange::Type::kDelete;
        change.entry.path = m.DisplayPath();
      } else {
        // The listed folder reports itself; callers want what is under it.
        if (core::CloudKey(m.DisplayPath()) == root_key) continue;
        change.entry = ToRemoteEntry(m);
      }
      out->changes.push_back(std::move(change));
    }
  }

  // Follows has_more from `page` on.
  Status Drain(const std::string& root_key, ListPage page, ListResult* out) {
    for (;;) {
      AppendChanges(root_key, page.entries, out);
      out->cursor = page.cursor;
      if (!page.has_more) return Status::Ok();
      Reply r = Rpc("files/list_folder/continue", ojson{{"cursor", page.cursor}});
      if (!r.ok()) return r.status;
      auto next = ParseListFolderResult(r.result);
      if (!next.ok()) return next.status();
      page = std::move(*next);
    }
  }

  Result<ListResult> FullList(const std::string& root) {
    const std::string path = unicode::ToNfc(root);
    ListResult out;
    out.complete = true;
    Reply r = Rpc(
        "files/list_folder",
        ojson{{"path", path}, {"recursive", true}, {"include_deleted", false}, {"limit", 2000}});
    if (!r.ok()) {
      if (r.Has("not_found")) return out;  // no root yet: nothing there
      if (r.Has("not_folder")) {
        return Status::Conflict(path +
                                " is a file in Dropbox, where the mirror folder should be; " +
                                "move or delete that file");
      }
      return r.status;
    }
    auto page = ParseListFolderResult(r.result);
    if (!page.ok()) return page.status();
    if (Status s = Drain(core::CloudKey(path), std::move(*page), &out); !s.ok()) return s;
    return out;
  }

  Result<ListResult> Continue(const std::string& root, const std::string& cursor) {
    Reply r = Rpc("files/list_folder/continue", ojson{{"cursor", cursor}});
    if (!r.ok()) {
      // reset, an unusable cursor (400), or the root vanished: start over.
      if (r.Has("reset") || r.Has("not_found") || (r.error && r.error->http_status == 400)) {
        Log().info("listing cursor for '{}' is no longer usable ({}); listing everything again",
                   root, r.status.message());
        return FullList(root);
      }
      return r.status;
    }
    auto page = ParseListFolderResult(r.result);
    if (!page.ok()) return page.status();
    ListResult out;
    if (Status s = Drain(core::CloudKey(unicode::ToNfc(root)), std::move(*page), &out); !s.ok())
      return s;
    return out;
  }

  // ---- small files ------------------------------------------------------------------------

  Result<SmallFile> ReadSmall(std::size_t index, const UploadItem& item) {
    auto opened = cloud::OpenForUpload(item);
    if (!opened.ok()) return opened.status();
    const StableFile& file = *opened;
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

  // upload_session/start(close=true) per file: the fallback without append_batch.
  void StartEach(std::vector<SmallFile>& files, std::vector<Ready>& ready, UploadResults& results,
                 const cloud::Transfer& transfer) {
    std::mutex mu;
    core::ParallelFor(files.size(), o.max_parallel_chunks, [&](std::size_t i) {
      SmallFile& f = files[i];
      const std::uint64_t size = f.data.size();
      Reply r = Content("files/upload_session/start",
                        ojson{{"close", true}, {"content_hash", hash::ToHex(f.digest)}},
                        std::move(f.data), transfer);
      std::lock_guard lock(mu);
      if (!r.ok() || !r.result.contains("session_id")) {
        results[f.index] =
            r.ok() ? Status::Permanent("upload_session/start: no session_id") : r.status;
        return;
      }
      ready.push_back(Ready{f.index,
                            r.result["session_id"].get<std::string>(),
                            size,
                            f.digest,
                            f.identity,
                            size,
                            {}});
      transfer.Progress(size);
    });
  }

  // A replayed append_batch entry (the first send's response was lost) whose bytes are already
  // in its session: closed by that send (only this call knows the fresh session, and one append
  // carries the whole file), or incorrect_offset with correct_offset == length. The commit then
  // checks the size and content hash Dropbox stored.
  static bool AppendedBefore(const BatchEntry& e, std::uint64_t size) {
    const auto tags = UnionTags(e.failure);
    if (!tags.empty() && tags.front() == "closed") return true;
    const auto correct = CorrectOffset(e.failure);
    return correct && *correct == size;
  }

  // A session that lost track of this file's bytes (gone, or at another offset) is fixed by
  // sending them again in a new session: transient, so the caller retries the file.
  static Status SessionFailure(const Status& s) {
    if (s.kind() == Status::Kind::kNotFound || s.kind() == Status::Kind::kConflict)
      return Status::Transient(s.message() + " (will send again in a new session)");
    return s;
  }

  // start_batch + append_batch (one request unless a limit forces a split). Returns how many of
  // `files` (a prefix) it handled: it stops when the server does not know these routes, and the
  // rest keep their bytes for StartEach.
  std::size_t AppendBatch(std::vector<SmallFile>& files, std::vector<Ready>& ready,
                          UploadResults& results, const cloud::Transfer& transfer) {
    constexpr std::string_view kFallback = "one upload_session/start per small file";
    for (std::size_t begin = 0; begin < files.size(); begin += kMaxBatchEntries) {
      const std::size_t end = std::min(files.size(), begin + kMaxBatchEntries);
      Reply started = Rpc("files/upload_session/start_batch", ojson{{"num_sessions", end - begin}});
      if (batch_upload_route.Unknown(started, clock, kFallback)) return begin;
      std::vector<std::string> ids;
      if (started.ok() && started.result.contains("session_ids") &&
          started.result["session_ids"].is_array()) {
        for (const auto& id : started.result["session_ids"]) {
          if (id.is_string()) ids.push_back(id.get<std::string>());
        }
      }
      if (!started.ok() || ids.size() != end - begin) {
        const Status s =
            started.ok() ? Status::Permanent("upload_session/start_batch: wrong number of sessions")
                         : started.status;
        for (std::size_t i = begin; i < end; ++i) results[files[i].index] = s;
        continue;
      }
      std::size_t cap = o.max_arg_header_bytes != 0 ? o.max_arg_header_bytes : header_cap.load();
      std::size_t group = begin;
      while (group < end) {
        // Grow the request while it stays under 150 MiB and the header limit.
        ojson entries = ojson::array();
        std::uint64_t bytes = 0;
        std::size_t arg_bytes = 100;  // {"entries":[...],"content_hash":"<64 hex>"}
        std::size_t stop = group;
        while (stop < end) {
          ojson entry = {{"cursor", {{"session_id", ids[stop - begin]}, {"offset", 0}}},
                         {"length", files[stop].data.size()},
                         {"close", true}};
          const std::size_t entry_bytes = EncodeHeaderArg(entry).size() + 1;
          const bool over_header = cap != 0 && arg_bytes + entry_bytes > cap;
          if (stop > group && (bytes + files[stop].data.size() > kMaxRequestBytes || over_header))
            break;
          bytes += files[stop].data.size();
          arg_bytes += entry_bytes;
          entries.push_back(std::move(entry));
          ++stop;
        }
        ojson arg = {{"entries", std::move(entries)}, {"content_hash", ""}};
        std::string body;
        body.reserve(bytes);
        for (std::size_t i = group; i < stop; ++i) body += files[i].data;
        arg["content_hash"] = hash::ToHex(hash::HashBytes(body));
        // A long header may be refused by the server or a proxy in front of it (a 400/413/431,
        // or a connection closed while the body is still being sent). Keep a copy of the body
        // until we know, then go on with capped headers (learned once per instance).
        const std::size_t arg_size = EncodeHeaderArg(arg).size();
        const bool risky = cap == 0 && arg_size > kSafeHeaderBytes;
        Reply r = Content("files/upload_session/append_batch", arg, risky ? body : std::move(body),
                          transfer, risky);
        if (r.status.kind() == Status::Kind::kCancelled) {
          for (std::size_t i = group; i < files.size(); ++i) results[files[i].index] = r.status;
          return files.size();
        }
        // Sessions started for the rest are left to expire.
        if (batch_upload_route.Unknown(r, clock, kFallback)) return group;
        const bool refused = !r.error || r.error->http_status == 400 ||
                             r.error->http_status == 413 || r.error->http_status == 431 ||
                             r.error->http_status >= 500;
        if (!r.ok() && risky && refused) {
          Log().info(
              "append_batch with a header for {} entries failed ({}); capping Dropbox-API-Arg at "
              "{} bytes",
              stop - group, r.status.message(), kSafeHeaderBytes);
          header_cap = kSafeHeaderBytes;
          cap = kSafeHeaderBytes;
          continue;
        }
        // Refused below the learned limit too (seen under load with several batches in flight
        // at once): halve the header until one entry is left, which is then a real refusal.
        const bool header_refused =
            r.error && (r.error->http_status == 400 || r.error->http_status == 413 ||
                        r.error->http_status == 431);
        if (!r.ok() && header_refused && stop - group > 1) {
          cap = std::max<std::size_t>(arg_size / 2, 512);
          Log().info(
              "append_batch of {} entries refused ({}); retrying with headers under {} bytes",
              stop - group, r.status.message(), cap);
          continue;
        }
        for (std::size_t i = group; i < stop; ++i) std::string().swap(files[i].data);
        if (!r.ok()) {
          for (std::size_t i = group; i < stop; ++i) results[files[i].index] = r.status;
          group = stop;
          continue;
        }
        auto parsed =
            ParseBatchEntries(r.result, SuccessShape::kNone, "upload_session/append_batch");
        if (!parsed.ok() || parsed->size() != stop - group) {
          const Status s =
              parsed.ok()
                  ? Status::Permanent("upload_session/append_batch: wrong number of entries")
                  : parsed.status();
          for (std::size_t i = group; i < stop; ++i) results[files[i].index] = s;
          group = stop;
          continue;
        }
        for (std::size_t i = group; i < stop; ++i) {
          const BatchEntry& e = (*parsed)[i - group];
          const SmallFile& f = files[i];
          const std::uint64_t size = f.identity.size;
          if (e.success || AppendedBefore(e, size)) {
            ready.push_back(Ready{f.index, ids[i - begin], size, f.digest, f.identity, size, {}});
            transfer.Progress(size);
          } else {
            results.Resend(f.index, SessionFailure(e.status));
          }
        }
        group = stop;
      }
    }
    return files.size();
  }

  // ---- large files ------------------------------------------------------------------------

  std::string StoreKey(const std::string& cloud_path) {
    return "dropbox/upload/" + core::CloudKey(unicode::ToNfc(cloud_path));
  }

  std::optional<SessionRecord> LoadRecord(const std::string& key) {
    if (o.sessions == nullptr) return std::nullopt;
    std::lock_guard lock(store_mu);
    auto got = o.sessions->Get(key);
    if (!got.ok()) {
      Log().warn("cannot read upload session state {}: {}", key, got.status().ToString());
      return std::nullopt;
    }
    if (!got->has_value()) return std::nullopt;
    return SessionRecord::Parse(**got);
  }

  void SaveRecord(const std::string& key, const SessionRecord& record) {
    if (o.sessions == nullptr) return;
    std::lock_guard lock(store_mu);
    if (Status s = o.sessions->Put(key, record.Serialize()); !s.ok()) {
      Log().warn("cannot save upload session state {}: {}", key, s.ToString());
    }
  }

  void EraseRecord(const std::string& key) {
    if (o.sessions == nullptr || key.empty()) return;
    std::lock_guard lock(store_mu);
    if (Status s = o.sessions->Erase(key); !s.ok()) {
      Log().warn("cannot erase upload session state {}: {}", key, s.ToString());
    }
  }

  std::int64_t WallSeconds() {
    return std::chrono::duration_cast<std::chrono::seconds>(clock.WallNow().time_since_epoch())
        .count();
  }

  // Sends the chunks of one large file into a concurrent session (resuming a stored one).
  Result<Ready> UploadLarge(std::size_t index, const UploadItem& item,
                            const cloud::Transfer& transfer) {
    auto opened = cloud::OpenForUpload(item);
    if (!opened.ok()) return opened.status();
    const StableFile& file = *opened;
    const FileIdentity& before = file.identity();
    const std::string key = StoreKey(item.cloud_path);
    const std::uint64_t size = before.size;
    const std::uint64_t chunk = o.chunk_size;
    const std::uint64_t chunks = (size + chunk - 1) / chunk;

    for (int round = 0; round < 2; ++round) {
      std::optional<SessionRecord> record = LoadRecord(key);
      const std::int64_t max_age =
          std::chrono::duration_cast<std::chrono::seconds>(o.session_max_age).count();
      if (record && (!core::SameContent(record->identity, before) || record->chunk_size != chunk ||
                     record->started_unix + max_age <= WallSeconds())) {
        record.reset();
      }
      if (record) {
        Log().info("resuming upload of {}: {} of {} chunks already sent", item.cloud_path,
                   record->done.size(), chunks);
      } else {
        EraseRecord(key);
        Reply r = Content("files/upload_session/start", ojson{{"session_type", "concurrent"}},
                          std::string(), transfer);
        if (!r.ok()) return r.status;
        if (!r.result.contains("session_id") || !r.result["session_id"].is_string()) {
          return Status::Permanent("upload_session/start: no session_id");
        }
        record = SessionRecord{
            r.result["session_id"].get<std::string>(), before, chunk, WallSeconds(), {}};
        SaveRecord(key, *record);
      }

      std::mutex mu;  // guards record and first_error
      Status first_error;
      std::atomic<bool> failed{false};
      std::atomic<std::uint64_t> sent{0};
      auto send_chunk = [&](std::uint64_t i) {
        if (failed.load()) return;
        {
          std::lock_guard lock(mu);
          if (record->done.contains(i)) return;
        }
        auto fail = [&](Status s) {
          std::lock_guard lock(mu);
          if (first_error.ok()) first_error = std::move(s);
          failed = true;
        };
        if (transfer.cancelled()) return fail(Status::Cancelled(item.cloud_path + ": stopped"));
        if (o.test_stop_after_chunks > 0 && chunks_sent.fetch_add(1) >= o.test_stop_after_chunks) {
          return fail(Status::Cancelled("test hook: stopped after " +
                                        std::to_string(o.test_stop_after_chunks) + " chunks"));
        }
        const std::uint64_t offset = i * chunk;
        const auto len = static_cast<std::size_t>(std::min(chunk, size - offset));
        std::string buffer(len, '\0');
        if (Status s = ReadAt(file.fd(), offset, len, buffer.data(), item.local_path); !s.ok())
          return fail(s);
        std::vector<BlockDigest> blocks = BlockHashes(buffer);
        const ojson arg = {{"cursor", {{"session_id", record->session_id}, {"offset", offset}}},
                           {"close", i + 1 == chunks},
                           {"content_hash", hash::ToHex(CombineBlocks(blocks))}};
        Reply r = Content("files/upload_session/append_v2", arg, std::move(buffer), transfer);
        if (!r.ok()) {
          // A chunk that reached the server before its response was lost: a later offset, or,
          // for the closing chunk, a session already closed (by that chunk: the others were in).
          const auto correct = r.error ? CorrectOffset(r.error->error) : std::nullopt;
          const bool arrived = (r.Has("incorrect_offset") && correct && *correct >= offset + len) ||
                               (r.Has("closed") && i + 1 == chunks);
          if (!arrived) return fail(r.status);
        }
        std::lock_guard lock(mu);  // also keeps progress() calls of one Upload serial
        if (r.ok()) {
          sent += len;
          transfer.Progress(len);
        }
        record->done[i] = std::move(blocks);
        SaveRecord(key, *record);
      };
      // Chunks before the last go in parallel; the closing chunk goes once they are all in.
      core::ParallelFor(static_cast<std::size_t>(chunks - 1), o.max_parallel_chunks,
                        [&](std::size_t i) { send_chunk(i); });
      if (!failed) send_chunk(chunks - 1);

      if (failed) {
        if (first_error.kind() == Status::Kind::kNotFound && round == 0) {
          Log().info("upload session for {} expired or vanished; starting it again",
                     item.cloud_path);
          EraseRecord(key);
          continue;
        }
        if (first_error.kind() == Status::Kind::kChanged) EraseRecord(key);
        return first_error;
      }
      if (Status s = file.CheckUnchanged("uploaded"); !s.ok()) {
        EraseRecord(key);
        return s;
      }
      std::vector<BlockDigest> all;
      for (auto& [i, blocks] : record->done) all.insert(all.end(), blocks.begin(), blocks.end());
      return Ready{index, record->session_id, size, CombineBlocks(all), before, sent.load(), key};
    }
    return Status::Transient("upload session for " + item.cloud_path + " kept vanishing");
  }

  // ---- commit -----------------------------------------------------------------------------

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

  void Commit(std::span<const UploadItem> items, std::vector<Ready> pending,
              UploadResults& results) {
    int attempt = 0;
    while (!pending.empty()) {
      std::vector<Ready> retry;
      for (std::size_t begin = 0; begin < pending.size(); begin += kMaxFinishEntries) {
        const std::size_t end = std::min(pending.size(), begin + kMaxFinishEntries);
        ojson entries = ojson::array();
        for (std::size_t i = begin; i < end; ++i) {
          const Ready& r = pending[i];
          const UploadItem& item = items[r.index];
          entries.push_back(
              {{"cursor", {{"session_id", r.session_id}, {"offset", r.size}}},
               {"commit",
                {{"path", unicode::ToNfc(item.cloud_path)},
                 {"mode", "overwrite"},
                 {"autorename", false},
                 {"client_modified",
                  ClientModified(item.mtime_ns != 0 ? item.mtime_ns : r.identity.mtime_ns)},
                 {"mute", true}}}});
        }
        Reply reply;
        {
          auto guard = pacer.CommitLock();
          reply = Rpc("files/upload_session/finish_batch_v2",
                      ojson{{"entries", std::move(entries)}}, true, std::chrono::seconds(600));
        }
        std::optional<std::vector<BatchEntry>> parsed;
        Status failure = reply.status;
        if (reply.ok()) {
          auto p = ParseBatchEntries(reply.result, SuccessShape::kInline,
                                     "upload_session/finish_batch_v2");
          if (p.ok() && p->size() == end - begin) {
            parsed = std::move(*p);
          } else {
            failure =
                p.ok() ? Status::Permanent("finish_batch_v2: wrong number of entries") : p.status();
          }
        }
        for (std::size_t i = begin; i < end; ++i) {
          const Ready& r = pending[i];
          const UploadItem& item = items[r.index];
          if (!parsed) {
            results[r.index] = failure;
            continue;
          }
          const BatchEntry& e = (*parsed)[i - begin];
          if (e.success && e.metadata) {
            results[r.index] = Committed(r, *e.metadata, item);
            EraseRecord(r.store_key);
          } else if (e.status.kind() == Status::Kind::kRateLimited) {
            retry.push_back(r);
          } else if (const auto tags = UnionTags(e.failure);
                     !tags.empty() && tags.front() == "lookup_failed") {
            // A commit whose response was lost, replayed: the session is gone but the file may be
            // in place.
            EraseRecord(r.store_key);
            auto m = GetMetadata(unicode::ToNfc(item.cloud_path));
            if (m.ok() && m->has_value() && (*m)->tag == Metadata::Tag::kFile &&
                (*m)->size == r.size && (*m)->content_hash == r.digest) {
              results[r.index] = Committed(r, **m, item);
            } else {
              results.Resend(r.index,
                             Status::Transient(e.status.message() + " (will upload again)"));
            }
          } else {
            results.Resend(r.index, e.status);
          }
        }
      }
      if (retry.empty()) break;
      ++attempt;
      pacer.OnRateLimited(RateReason::kTooManyWriteOperations, std::nullopt);
      if (attempt >= pacer.options().max_write_attempts) {
        for (const Ready& r : retry) {
          results[r.index] = Status::RateLimited(
              "too many write operations, commit of " + items[r.index].cloud_path + " gave up",
              std::chrono::milliseconds(0));
        }
        break;
      }
      Log().info("{} commits hit too_many_write_operations; committing them again together",
                 retry.size());
      pacer.Sleep(pacer.WriteBackoff(attempt));
      pending = std::move(retry);
    }
  }

  // ---- delete / move ----------------------------------------------------------------------

  Status DeleteOne(const std::string& path) {
    for (int attempt = 1;; ++attempt) {
      Reply r = Rpc("files/delete_v2", ojson{{"path", path}}, /*idempotent=*/false);
      if (r.ok() || r.Has("not_found")) return Status::Ok();
      if (!r.ambiguous || attempt >= pacer.options().max_attempts) return r.status;
      // The delete may have happened before the failure: look before deleting again.
      auto m = GetMetadata(path);
      if (m.ok() && !m->has_value()) return Status::Ok();
      if (!m.ok()) return m.status();
      pacer.Sleep(pacer.Backoff(attempt));
    }
  }

  // Polls a batch job's check route until it is no longer in progress.
  Result<JobStatus> PollJob(const std::string& route, const std::string& job_id,
                            SuccessShape shape) {
    auto delay = o.poll_initial;
    const auto deadline = clock.Now() + o.poll_limit;
    for (;;) {
      clock.SleepFor(delay);
      Reply r = Rpc(route, ojson{{"async_job_id", job_id}});
      if (!r.ok()) return r.status;
      auto job = ParseJobStatus(r.result, shape, route);
      if (!job.ok() || job->state != JobStatus::State::kInProgress) return job;
      if (clock.Now() >= deadline)
        return Status::Transient(route + " job " + job_id + " did not finish in time");
      delay = std::min(o.poll_max, std::chrono::milliseconds(delay.count() * 3 / 2 + 1));
    }
  }

  void DeleteBatch(const std::vector<std::string>& paths, const std::vector<std::size_t>& index,
                   std::vector<Status>& results) {
    std::vector<std::size_t> pending = index;
    for (int attempt = 1; !pending.empty(); ++attempt) {
      ojson entries = ojson::array();
      for (const std::size_t i : pending) entries.push_back({{"path", paths[i]}});
      Result<JobStatus> job = Status::Transient("unset");
      {
        auto guard = pacer.CommitLock();
        // Replaying a delete is harmless: entries already gone come back not_found = success.
        Reply r = Rpc("files/delete_batch", ojson{{"entries", std::move(entries)}});
        job = r.ok() ? ParseJobStatus(r.result, SuccessShape::kUnderMetadata, "delete_batch")
                     : Result<JobStatus>(r.status);
        if (job.ok() && job->state == JobStatus::State::kAsyncJobId)
          job =
              PollJob("files/delete_batch/check", job->async_job_id, SuccessShape::kUnderMetadata);
      }
      std::vector<std::size_t> retry;
      if (!job.ok() ||
          (job->state == JobStatus::State::kComplete && job->entries.size() != pending.size())) {
        const Status s =
            job.ok() ? Status::Permanent("delete_batch: wrong number of entries") : job.status();
        for (const std::size_t i : pending) results[i] = s;
        return;
      }
      if (job->state == JobStatus::State::kFailed) {
        if (job->failed.kind() != Status::Kind::kRateLimited) {
          for (const std::size_t i : pending) results[i] = job->failed;
          return;
        }
        retry = pending;
      } else {
        for (std::size_t k = 0; k < pending.size(); ++k) {
          const BatchEntry& e = job->entries[k];
          if (e.success || e.status.kind() == Status::Kind::kNotFound) {
            results[pending[k]] = Status::Ok();
          } else if (e.status.kind() == Status::Kind::kRateLimited) {
            retry.push_back(pending[k]);
          } else {
            results[pending[k]] = e.status;
          }
        }
      }
      if (retry.empty()) return;
      pacer.OnRateLimited(RateReason::kTooManyWriteOperations, std::nullopt);
      if (attempt >= pacer.options().max_write_attempts) {
        for (const std::size_t i : retry) {
          results[i] =
              Status::RateLimited("too many write operations, delete of " + paths[i] + " gave up",
                                  std::chrono::milliseconds(0));
        }
        return;
      }
      pacer.Sleep(pacer.WriteBackoff(attempt));
      pending = std::move(retry);
    }
  }

  // A RelocationError (tag chain, with or without the batch entry's relocation_error wrapper)
  // saying the source is missing.
  static bool FromMissing(const std::vector<std::string>& tags) {
    std::size_t i = !tags.empty() && tags.front() == "relocation_error" ? 1 : 0;
    return tags.size() > i + 1 && tags[i] == "from_lookup" &&
           std::find(tags.begin() + static_cast<std::ptrdiff_t>(i), tags.end(), "not_found") !=
               tags.end();
  }

  // Did an earlier attempt (or a lost response) already move `from` to `to` (reference §9.1)?
  // The target's metadata when the source is gone and the target exists, else nullopt.
  std::optional<RemoteEntry> AlreadyMoved(const std::string& from, const std::string& to) {
    auto source = GetMetadata(from);
    auto target = GetMetadata(to);
    if (source.ok() && !source->has_value() && target.ok() && target->has_value()) {
      return ToRemoteEntry(**target);
    }
    return std::nullopt;
  }

  Result<RemoteEntry> MoveOnce(const std::string& from, const std::string& to) {
    for (int attempt = 1;; ++attempt) {
      Reply r =
          Rpc("files/move_v2", ojson{{"from_path", from}, {"to_path", to}, {"autorename", false}},
              /*idempotent=*/false);
      if (r.ok()) {
        auto it = r.result.find("metadata");
        if (it == r.result.end()) return Status::Permanent("move_v2: no metadata in the result");
        auto m = ParseMetadata(*it, Metadata::Tag::kUnknown);
        if (!m.ok()) return m.status();
        return ToRemoteEntry(*m);
      }
      const bool from_missing = r.error && FromMissing(r.error->tags);
      const bool unsure = r.ambiguous || r.Has("internal_error");
      if (!from_missing && !unsure) return r.status;
      if (auto done = AlreadyMoved(from, to)) return *done;
      if (from_missing) return r.status;
      if (attempt >= pacer.options().max_attempts) return r.status;
      pacer.Sleep(pacer.Backoff(attempt));
    }
  }

  // move_batch_v2 for the moves at `pending` (at most kMaxBatchEntries, none case-only), polled
  // through move_batch/check_v2 under the account's commit lock. Entries that hit
  // too_many_write_operations or an internal error (and were not done after all) are sent again
  // in a smaller batch; a call that failed ambiguously as a whole is replayed move by move
  // through MoveOnce, which recognises moves that had already happened.
  void MoveBatchChunk(std::span<const cloud::MovePair> moves, std::vector<std::size_t> pending,
                      std::vector<std::optional<Result<RemoteEntry>>>& results) {
    for (int attempt = 1; !pending.empty(); ++attempt) {
      ojson entries = ojson::array();
      for (const std::size_t i : pending) {
        entries.push_back({{"from_path", moves[i].from}, {"to_path", moves[i].to}});
      }
      Result<JobStatus> job = Status::Transient("unset");
      bool ambiguous = false;
      bool unknown = false;
      {
        auto guard = pacer.CommitLock();
        Reply r = Rpc("files/move_batch_v2",
                      ojson{{"entries", std::move(entries)},
                            {"autorename", false},
                            {"allow_ownership_transfer", false}},
                      /*idempotent=*/false);
        unknown = move_batch_route.Unknown(r, clock, "one move_v2 per move");
        ambiguous = r.ambiguous;
        job = r.ok() ? ParseJobStatus(r.result, SuccessShape::kUnderSuccess, "move_batch_v2")
                     : Result<JobStatus>(r.status);
        if (job.ok() && job->state == JobStatus::State::kAsyncJobId) {
          job =
              PollJob("files/move_batch/check_v2", job->async_job_id, SuccessShape::kUnderSuccess);
          // The batch was accepted; if its outcome is unknown, any entry may have moved.
          ambiguous = !job.ok();
        }
      }
      if (ambiguous || unknown) {
        for (const std::size_t i : pending) results[i] = MoveOnce(moves[i].from, moves[i].to);
        return;
      }
      const bool settled = job.ok() && (job->state == JobStatus::State::kComplete ||
                                        job->state == JobStatus::State::kFailed);
      if (!settled ||
          (job->state == JobStatus::State::kComplete && job->entries.size() != pending.size())) {
        const Status s =
            job.ok() ? Status::Permanent("move_batch_v2: unexpected job status") : job.status();
        for (const std::size_t i : pending) results[i] = s;
        return;
      }
      std::vector<std::size_t> retry;
      if (job->state == JobStatus::State::kFailed) {
        // A later pass finds moves the failed job did make (from_lookup/not_found, target in
        // place).
        if (job->failed.kind() != Status::Kind::kRateLimited) {
          for (const std::size_t i : pending) results[i] = job->failed;
          return;
        }
        retry = pending;
      } else {
        for (std::size_t k = 0; k < pending.size(); ++k) {
          const std::size_t i = pending[k];
          const BatchEntry& e = job->entries[k];
          if (e.success && e.metadata) {
            results[i] = ToRemoteEntry(*e.metadata);
            continue;
          }
          const std::vector<std::string> tags = UnionTags(e.failure);
          const bool unsure = std::find(tags.begin(), tags.end(), "internal_error") != tags.end();
          if (FromMissing(tags) || unsure) {
            if (auto done = AlreadyMoved(moves[i].from, moves[i].to)) {
              results[i] = *done;
              continue;
            }
          }
          if (e.status.kind() == Status::Kind::kRateLimited ||
              (unsure && attempt < pacer.options().max_attempts)) {
            retry.push_back(i);
          } else {
            results[i] = e.status;
          }
        }
      }
      if (retry.empty()) return;
      pacer.OnRateLimited(RateReason::kTooManyWriteOperations, std::nullopt);
      if (attempt >= pacer.options().max_write_attempts) {
        for (const std::size_t i : retry) {
          results[i] = Status::RateLimited(
              "too many write operations, move of " + moves[i].from + " gave up",
              std::chrono::milliseconds(0));
        }
        return;
      }
      pacer.Sleep(pacer.WriteBackoff(attempt));
      pending = std::move(retry);
    }
  }

  // One Upload() round: read, send and commit `items`; `resend` (if not null) gets, per item,
  // whether its failure is one a new session fixes.
  std::vector<Result<UploadedFile>> UploadRound(std::span<const UploadItem> items,
                                                const cloud::Transfer& transfer,
                                                std::vector<bool>* resend);

  DropboxOptions o;
  core::Clock& clock;
  Pacer pacer;
  std::shared_ptr<HttpTransport> transport;
  std::shared_ptr<TokenProvider> tokens;
  std::mutex store_mu;  // serialises SessionStore calls
  std::atomic<int> chunks_sent{0};
  std::atomic<std::size_t> header_cap{0};  // learned Dropbox-API-Arg limit (0: none seen yet)
  OptionalRoute batch_upload_route{"upload_session/start_batch and append_batch"};
  OptionalRoute move_batch_route{"move_batch_v2"};
};

DropboxCloud::DropboxCloud(DropboxOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}

DropboxCloud::~DropboxCloud() = default;

Pacer& DropboxCloud::pacer() { return impl_->pacer; }

cloud::Capabilities DropboxCloud::capabilities() const {
  return cloud::Capabilities{
      .incremental_listing = true,
      .case_insensitive = true,
      .name_rules = cloud::NameRules::kDropbox,
      .retries_transient = true,
      .max_batch_files = impl_->o.max_batch_files,
      .max_batch_bytes = impl_->o.max_batch_bytes,
      .small_file_limit = impl_->o.small_file_limit,
  };
}

Result<ListResult> DropboxCloud::List(const std::string& root, const std::string& cursor) {
  if (cursor.empty()) return impl_->FullList(root);
  return impl_->Continue(root, cursor);
}

Status DropboxCloud::CreateFolder(const std::string& path) {
  if (path.empty()) return Status::Ok();  // the namespace root always exists
  Reply r = impl_->Rpc("files/create_folder_v2",
                       ojson{{"path", unicode::ToNfc(path)}, {"autorename", false}});
  if (r.ok()) return Status::Ok();
  if (r.Has("conflict") && r.Has("folder")) return Status::Ok();
  return r.status;
}

std::vector<Result<UploadedFile>> DropboxCloud::Impl::UploadRound(std::span<const UploadItem> items,
                                                                  const cloud::Transfer& transfer,
                                                                  std::vector<bool>* resend) {
  Impl& d = *this;
  if (transfer.cancelled()) {
    return std::vector<Result<UploadedFile>>(items.size(), Status::Cancelled("stopped"));
  }
  UploadResults results(items.size());
  std::vector<Ready> ready;
  std::vector<SmallFile> small;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (items[i].expected.size > d.o.small_file_limit) continue;
    auto f = d.ReadSmall(i, items[i]);
    if (f.ok()) {
      small.push_back(std::move(*f));
    } else {
      results[i] = f.status();
    }
  }
  if (!small.empty()) {
    const std::size_t batched = d.o.append_batch && d.batch_upload_route.Available(d.clock)
                                    ? d.AppendBatch(small, ready, results, transfer)
                                    : 0;
    if (batched < small.size()) {
      std::vector<SmallFile> rest(
          std::make_move_iterator(small.begin() + static_cast<std::ptrdiff_t>(batched)),
          std::make_move_iterator(small.end()));
      d.StartEach(rest, ready, results, transfer);
    }
    small.clear();
  }
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (items[i].expected.size <= d.o.small_file_limit) continue;
    auto r = d.UploadLarge(i, items[i], transfer);
    if (r.ok()) {
      ready.push_back(std::move(*r));
    } else {
      results[i] = r.status();
    }
  }
  if (transfer.cancelled()) {
    // Nothing is committed after a stop: the files stay where they were in Dropbox. A large
    // file's session stays in the SessionStore, so the next run only commits it.
    for (const Ready& r : ready)
      results[r.index] = Status::Cancelled(items[r.index].cloud_path + ": stopped");
  } else {
    d.Commit(items, std::move(ready), results);
  }

  if (resend != nullptr) *resend = std::move(results.resend);
  std::vector<Result<UploadedFile>> out;
  out.reserve(items.size());
  for (auto& r : results.result)
    out.push_back(r ? std::move(*r) : Result<UploadedFile>(Status::Permanent("not uploaded")));
  return out;
}

std::vector<Result<UploadedFile>> DropboxCloud::Upload(std::span<const UploadItem> items,
                                                       const cloud::Transfer& transfer) {
  std::vector<bool> resend;
  std::vector<Result<UploadedFile>> out = impl_->UploadRound(items, transfer, &resend);
  std::vector<UploadItem> again;
  std::vector<std::size_t> where;
  for (std::size_t i = 0; i < resend.size(); ++i) {
    if (resend[i] && !out[i].ok()) {
      again.push_back(items[i]);
      where.push_back(i);
    }
  }
  if (again.empty() || transfer.cancelled()) return out;
  Log().info("{} file(s) lost their upload session; sending them again in new sessions",
             again.size());
  std::vector<Result<UploadedFile>> second = impl_->UploadRound(again, transfer, nullptr);
  for (std::size_t k = 0; k < where.size(); ++k) out[where[k]] = std::move(second[k]);
  return out;
}

std::vector<Status> DropboxCloud::Delete(std::span<const std::string> paths) {
  std::vector<Status> results(paths.size());
  std::vector<std::string> nfc(paths.size());
  std::vector<std::size_t> valid;
  for (std::size_t i = 0; i < paths.size(); ++i) {
    if (paths[i].empty()) {
      results[i] = Status::InvalidArgument("refusing to delete the cloud root");
      continue;
    }
    nfc[i] = unicode::ToNfc(paths[i]);
    valid.push_back(i);
  }
  if (valid.size() == 1) {
    results[valid[0]] = impl_->DeleteOne(nfc[valid[0]]);
    return results;
  }
  for (std::size_t begin = 0; begin < valid.size(); begin += kMaxBatchEntries) {
    const std::size_t end = std::min(valid.size(), begin + kMaxBatchEntries);
    impl_->DeleteBatch(nfc,
                       std::vector<std::size_t>(valid.begin() + static_cast<std::ptrdiff_t>(begin),
                                                valid.begin() + static_cast<std::ptrdiff_t>(end)),
                       results);
  }
  return results;
}

Result<RemoteEntry> DropboxCloud::Move(const std::string& from, const std::string& to) {
  const std::string f = unicode::ToNfc(from);
  const std::string t = unicode::ToNfc(to);
  if (core::CloudKey(f) != core::CloudKey(t)) return impl_->MoveOnce(f, t);
  if (f == t) {
    auto m = impl_->GetMetadata(t);
    if (!m.ok()) return m.status();
    if (!m->has_value()) return Status::NotFound(from + " does not exist");
    return ToRemoteEntry(**m);
  }
  // Dropbox cannot rename in case only (reference §9.1): go through a temporary name.
  const std::string temp = t + ".filesync-tmp-" + RandomHex(6);
  auto first = impl_->MoveOnce(f, temp);
  if (!first.ok()) return first.status();
  auto second = impl_->MoveOnce(temp, t);
  if (!second.ok()) {
    Log().error("case-only rename {} -> {} stopped at {}: {}", from, to, temp,
                second.status().ToString());
    if (!impl_->MoveOnce(temp, f).ok()) {
      Log().error("could not move {} back to {}; the next pass will find it there", temp, from);
    }
  }
  return second;
}

std::vector<Result<RemoteEntry>> DropboxCloud::MoveBatch(std::span<const cloud::MovePair> moves) {
  std::vector<cloud::MovePair> nfc;
  nfc.reserve(moves.size());
  std::vector<std::size_t> batchable;
  std::vector<std::optional<Result<RemoteEntry>>> results(moves.size());
  for (std::size_t i = 0; i < moves.size(); ++i) {
    nfc.push_back({unicode::ToNfc(moves[i].from), unicode::ToNfc(moves[i].to)});
    // Case-only renames are not supported by move_batch_v2 (reference §9.1): Move() takes them
    // through a temporary name, one at a time.
    if (core::CloudKey(nfc[i].from) == core::CloudKey(nfc[i].to)) {
      results[i] = Move(moves[i].from, moves[i].to);
    } else {
      batchable.push_back(i);
    }
  }
  if (batchable.size() == 1 || !impl_->move_batch_route.Available(impl_->clock)) {
    // One move_v2 request instead of a launch and its polls.
    for (const std::size_t i : batchable) results[i] = impl_->MoveOnce(nfc[i].from, nfc[i].to);
  } else {
    for (std::size_t begin = 0; begin < batchable.size(); begin += kMaxBatchEntries) {
      const std::size_t end = std::min(batchable.size(), begin + kMaxBatchEntries);
      impl_->MoveBatchChunk(
          nfc,
          std::vector<std::size_t>(batchable.begin() + static_cast<std::ptrdiff_t>(begin),
                                   batchable.begin() + static_cast<std::ptrdiff_t>(end)),
          results);
    }
  }
  std::vector<Result<RemoteEntry>> out;
  out.reserve(moves.size());
  for (auto& r : results)
    out.push_back(r ? std::move(*r) : Result<RemoteEntry>(Status::Permanent("not moved")));
  return out;
}

Result<nlohmann::json> DropboxCloud::CurrentAccount() {
  Reply r = impl_->Rpc("users/get_current_account", ojson(nullptr));
  if (!r.ok()) return r.status;
  return r.result;
}

}  // namespace filesync::dropbox
