// The route table (reference §15), dispatch, and the helpers the handlers share.
#include "dropbox_emulator/routes.h"

#include <unordered_map>

#include "dropbox_emulator/route_handlers.h"

namespace filesync::emulator {

const RouteInfo* FindRoute(const std::string& name) {
  constexpr RouteStyle kRpc = RouteStyle::kRpc;
  constexpr RouteStyle kUpload = RouteStyle::kUpload;
  static const std::unordered_map<std::string, RouteInfo> kRoutes = {
      {"users/get_current_account", {kRpc, true, GetCurrentAccount}},
      {"users/get_space_usage", {kRpc, true, GetSpaceUsage}},
      {"check/user", {kRpc, true, CheckUser}},
      {"auth/token/revoke", {kRpc, true, RevokeToken}},
      {"files/list_folder", {kRpc, true, ListFolder}},
      {"files/list_folder/continue", {kRpc, true, ListFolderContinue}},
      {"files/list_folder/get_latest_cursor", {kRpc, true, ListFolderGetLatestCursor}},
      {"files/list_folder/longpoll", {kRpc, false, ListFolderLongpoll}},
      {"files/get_metadata", {kRpc, true, GetMetadata}},
      {"files/create_folder_v2", {kRpc, true, CreateFolder}},
      {"files/delete_v2", {kRpc, true, Delete}},
      {"files/delete_batch", {kRpc, true, DeleteBatch}},
      {"files/delete_batch/check", {kRpc, true, DeleteBatchCheck}},
      {"files/move_v2", {kRpc, true, Move}},
      {"files/copy_v2", {kRpc, true, Copy}},
      {"files/move_batch_v2", {kRpc, true, MoveBatch}},
      {"files/move_batch/check_v2", {kRpc, true, MoveBatchCheck}},
      {"files/copy_batch_v2", {kRpc, true, CopyBatch}},
      {"files/copy_batch/check_v2", {kRpc, true, CopyBatchCheck}},
      {"files/download", {RouteStyle::kDownload, true, Download}},
      {"files/upload", {kUpload, true, Upload}},
      {"files/upload_session/start", {kUpload, true, UploadSessionStart}},
      {"files/upload_session/append_v2", {kUpload, true, UploadSessionAppend}},
      {"files/upload_session/append_batch", {kUpload, true, UploadSessionAppendBatch}},
      {"files/upload_session/finish", {kUpload, true, UploadSessionFinish}},
      {"files/upload_session/start_batch", {kRpc, true, UploadSessionStartBatch}},
      {"files/upload_session/finish_batch_v2", {kRpc, true, UploadSessionFinishBatchV2}},
      {"files/upload_session/finish_batch", {kRpc, true, UploadSessionFinishBatch}},
      {"files/upload_session/finish_batch/check", {kRpc, true, UploadSessionFinishBatchCheck}},
  };
  auto it = kRoutes.find(name);
  return it == kRoutes.end() ? nullptr : &it->second;
}

Reply HandleRoute(RouteContext& ctx, const Call& call) {
  const RouteInfo* info = FindRoute(call.route);
  if (info == nullptr) return BadArgument(call.route, "unknown route");
  return info->handler(ctx, call);
}

std::string JobTable::Add(const std::string& prefix, const std::string& kind, nlohmann::json result,
                          int pending_polls) {
  core::MutexLock lock(&mu_);
  std::string id = prefix + "emuljob" + std::to_string(next_++);
  jobs_[id] = Job{kind, std::move(result), pending_polls};
  return id;
}

std::optional<nlohmann::json> JobTable::Get(const std::string& id, const std::string& kind) {
  core::MutexLock lock(&mu_);
  auto it = jobs_.find(id);
  if (it == jobs_.end() || it->second.kind != kind) return std::nullopt;
  if (it->second.pending_polls > 0) {
    --it->second.pending_polls;
    return nlohmann::json{{".tag", "in_progress"}};
  }
  return it->second.result;
}

Reply BadArgument(const std::string& route, const std::string& detail) {
  return Reply::Text(400, "Error in call to API function \"" + route + "\": " + detail);
}

Reply TooManyWrites() { return Reply::RateLimited("too_many_write_operations", 1, std::nullopt); }

std::string PathProblem(const std::optional<std::string>& path, PathAlias alias,
                        const char* field) {
  if (!path) return "";
  if (!MatchesPathPattern(*path, alias)) {
    return std::string("request body: ") + field + ": '" + *path + "' did not match pattern";
  }
  return "";
}

Reply AsyncJob(RouteContext& ctx, const std::string& kind, nlohmann::json results,
               int pending_polls) {
  // Every job id starts with "dbjid:", which is what Dropbox's ids look like.
  const std::string job = ctx.jobs->Add(
      "dbjid:", kind, {{".tag", "complete"}, {"entries", std::move(results)}}, pending_polls);
  return Reply::Json({{".tag", "async_job_id"}, {"async_job_id", job}});
}

Reply CheckJob(RouteContext& ctx, const Call& call, const std::string& kind) {
  ArgReader r(call.arg, "request body");
  const std::string id = r.String("async_job_id", true).value_or("");
  if (!r.Finish()) return BadArgument(call.route, r.error());
  auto job = ctx.jobs->Get(id, kind);
  if (!job) return Reply::RouteError(Tag("invalid_async_job_id"));
  return Reply::Json(*job);
}

}  // namespace filesync::emulator
