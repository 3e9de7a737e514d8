// Route table (reference §15) and dispatch to the per-area handler files.
#include "dropbox_emulator/routes.h"

#include <unordered_map>

namespace filesync::emulator {

const RouteInfo* FindRoute(const std::string& name) {
  static const std::unordered_map<std::string, RouteInfo> kRoutes = {
      {"users/get_current_account", {}},
      {"users/get_space_usage", {}},
      {"check/user", {}},
      {"auth/token/revoke", {}},
      {"files/list_folder", {}},
      {"files/list_folder/continue", {}},
      {"files/list_folder/get_latest_cursor", {}},
      {"files/list_folder/longpoll", {RouteStyle::kRpc, false}},
      {"files/get_metadata", {}},
      {"files/create_folder_v2", {}},
      {"files/delete_v2", {}},
      {"files/delete_batch", {}},
      {"files/delete_batch/check", {}},
      {"files/move_v2", {}},
      {"files/copy_v2", {}},
      {"files/move_batch_v2", {}},
      {"files/move_batch/check_v2", {}},
      {"files/copy_batch_v2", {}},
      {"files/copy_batch/check_v2", {}},
      {"files/download", {RouteStyle::kDownload, true}},
      {"files/upload", {RouteStyle::kUpload, true}},
      {"files/upload_session/start", {RouteStyle::kUpload, true}},
      {"files/upload_session/append_v2", {RouteStyle::kUpload, true}},
      {"files/upload_session/append_batch", {RouteStyle::kUpload, true}},
      {"files/upload_session/finish", {RouteStyle::kUpload, true}},
      {"files/upload_session/start_batch", {}},
      {"files/upload_session/finish_batch_v2", {}},
      {"files/upload_session/finish_batch", {}},
      {"files/upload_session/finish_batch/check", {}},
  };
  auto it = kRoutes.find(name);
  return it == kRoutes.end() ? nullptr : &it->second;
}

std::string JobTable::Add(const std::string& prefix, const std::string& kind, nlohmann::json result,
                          int pending_polls) {
  std::lock_guard lock(mu_);
  std::string id = prefix + "emuljob" + std::to_string(next_++);
  jobs_[id] = Job{kind, std::move(result), pending_polls};
  return id;
}

std::optional<nlohmann::json> JobTable::Get(const std::string& id, const std::string& kind) {
  std::lock_guard lock(mu_);
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

Reply HandleRoute(RouteContext& ctx, const Call& call) {
  if (call.route.rfind("files/upload", 0) == 0) return HandleUploadRoute(ctx, call);
  if (call.route.rfind("files/", 0) == 0) return HandleFilesRoute(ctx, call);
  return HandleAccountRoute(ctx, call);
}

}  // namespace filesync::emulator
