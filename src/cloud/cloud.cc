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

Result<core::StableFile> OpenForUpload(const UploadItem& item) {
  return core::StableFile::Open(item.local_dir_fd, item.relative, item.local_path, item.expected);
}

}  // namespace filesync::cloud
