// The Dropbox API routes the emulator serves (reference §15): one table from route name (URL
// path after /2/) to its style, whether it needs a token, and its handler, a function from a
// parsed argument (and, for upload-style routes, a body stream) to a Reply. The HTTP layer
// (server.h) does auth, faults and argument decoding; handlers (route_handlers.h, one function
// per endpoint) validate the argument strictly (unknown fields -> 400) and produce the exact
// result and error-union shapes.
//
// Thread safety: handlers run concurrently; all shared state lives in the thread-safe objects
// of RouteContext. The async-job table (delete_batch, finish_batch v1, move/copy_batch_v2) has
// its own mutex.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "core/thread_annotations.h"
#include "dropbox_emulator/auth.h"
#include "dropbox_emulator/blob_store.h"
#include "dropbox_emulator/commit_lock.h"
#include "dropbox_emulator/sessions.h"
#include "dropbox_emulator/store.h"
#include "dropbox_emulator/wire.h"

namespace filesync::emulator {

// The one emulated account (users/get_current_account, /oauth2/token). users_common.stone:
// AccountId is exactly 40 characters.
inline constexpr const char* kAccountId = "dbid:AADfilesyncEmulatorAccount000000000";

// Async jobs. The emulator does a batch's work when the batch is launched; a job can still
// answer `in_progress` to its first `pending_polls` checks, so clients exercise their polling.
class JobTable {
 public:
  // `kind` names the check route family that may read the job ("delete_batch", ...).
  std::string Add(const std::string& prefix, const std::string& kind, nlohmann::json result,
                  int pending_polls = 0) EXCLUDES(mu_);
  // The job's current status ({".tag":"in_progress"} while polls are pending); nullopt if the
  // id is unknown or belongs to another kind.
  std::optional<nlohmann::json> Get(const std::string& id, const std::string& kind) EXCLUDES(mu_);

 private:
  struct Job {
    std::string kind;
    nlohmann::json result;
    int pending_polls = 0;
  };
  core::Mutex mu_;
  std::uint64_t next_ GUARDED_BY(mu_) = 1;
  std::map<std::string, Job> jobs_ GUARDED_BY(mu_);
};

struct RouteContext {
  Namespace* ns = nullptr;
  UploadSessions* sessions = nullptr;
  BlobStore* blobs = nullptr;
  TokenStore* tokens = nullptr;
  CommitLock* commit_lock = nullptr;
  JobTable* jobs = nullptr;
  std::chrono::seconds longpoll_max{480};
};

struct Call {
  std::string route;
  nlohmann::json arg;      // decoded argument (null for Void routes)
  const BodyReader* body;  // upload-style body (never null)
  std::string token;       // bearer token of the caller ("" for noauth routes)
  std::string range;       // the Range request header ("" if none); files/download reads it
};

enum class RouteStyle { kRpc, kUpload, kDownload };

using RouteHandler = Reply (*)(RouteContext& ctx, const Call& call);

struct RouteInfo {
  RouteStyle style = RouteStyle::kRpc;
  bool needs_auth = true;
  RouteHandler handler = nullptr;
};

// Route name (URL path after /2/) -> its entry in the route table; nullptr for unknown routes.
const RouteInfo* FindRoute(const std::string& name);

// Runs the handler of call.route (a 400 "unknown route" if FindRoute does not know it).
Reply HandleRoute(RouteContext& ctx, const Call& call);

// 400 with the Dropbox-style text for a bad argument.
Reply BadArgument(const std::string& route, const std::string& detail);

}  // namespace filesync::emulator
