#include "cloud/cloud.h"

namespace filesync::cloud {

Result<std::string> Cloud::BeginPass(const PassStart& /*start*/) { return std::string(); }

Result<std::string> Cloud::FolderIdentity(const std::string& /*path*/) { return std::string(); }

Status Cloud::CreateFolderFrom(const FolderItem& item) { return CreateFolder(item.cloud_path); }

std::vector<Result<RemoteEntry>> Cloud::MoveBatch(std::span<const MovePair> moves) {
  std::vector<Result<RemoteEntry>> out;
  out.reserve(moves.size());
  for (const MovePair& m : moves) out.push_back(Move(m.from, m.to));
  return out;
}

std::string JoinPath(std::string_view base, std::string_view relative) {
  std::string out(base);
  if (relative.empty()) return out;
  out.push_back('/');
  out.append(relative);
  return out;
}

std::string_view ParentPath(std::string_view path) {
  const auto slash = path.rfind('/');
  if (slash == std::string_view::npos) return {};
  return path.substr(0, slash);
}

std::string_view BaseName(std::string_view path) {
  const auto slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

}  // namespace filesync::cloud
