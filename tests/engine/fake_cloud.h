// FakeCloud: an in-memory Cloud for the engine's in-process tests (owncloud's FakeFolder idea:
// set up a world, change it, run a pass, compare the cloud with the client). It keeps the
// contract of cloud/cloud.h: uploads read the local file through OpenForUpload and fail with
// kChanged if it changed while read; creating an existing folder and deleting a missing path
// succeed; a move onto an existing path is kConflict; listings are complete (no cursor) or, with
// incremental listing on, the changes since a cursor, in order.
// Thread safety: every method may be called from several threads at once (one mutex).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "cloud/cloud.h"

namespace filesync::engine::testing {

class FakeCloud final : public cloud::Cloud {
 public:
  explicit FakeCloud(bool incremental_listing = true) : incremental_(incremental_listing) {}

  std::string_view name() const override { return "fake"; }
  cloud::Capabilities capabilities() const override;
  Result<cloud::ListResult> List(const std::string& root, const std::string& cursor) override;
  Status CreateFolder(const std::string& path) override;
  std::vector<Result<cloud::UploadedFile>> Upload(std::span<const cloud::UploadItem> items,
                                                  const cloud::Transfer& transfer) override;
  std::vector<Status> Delete(std::span<const std::string> paths) override;
  Result<cloud::RemoteEntry> Move(const std::string& from, const std::string& to) override;
  Status Flush() override { return Status::Ok(); }

  // The tree below `root`: relative path -> file content, or "<folder>" for a folder.
  std::map<std::string, std::string> Tree(const std::string& root) const;
  // Puts a file straight into the cloud (someone else's change).
  void PutFile(const std::string& path, const std::string& content);

  // Called (without the lock) before each file an Upload() call carries, with its cloud path.
  void OnUpload(std::function<void(const std::string& cloud_path)> hook);

  struct Counts {
    int uploads = 0, moves = 0, deletes = 0, folders_created = 0;
  };
  Counts counts() const;

 private:
  struct Node {
    bool folder = false;
    std::string content;
    std::string rev;
  };
  cloud::RemoteEntry EntryLocked(const std::string& path, const Node& node) const;
  Status MakeParentsLocked(const std::string& path);
  void PutLocked(const std::string& path, Node node);
  void LogLocked(cloud::ListChange::Type type, const std::string& path);
  Result<cloud::UploadedFile> UploadOne(const cloud::UploadItem& item);

  const bool incremental_;
  mutable std::mutex mu_;
  std::map<std::string, Node> nodes_;   // by cloud path; guarded by mu_
  std::vector<cloud::ListChange> log_;  // every change, in order; guarded by mu_
  std::uint64_t next_rev_ = 1;          // guarded by mu_
  Counts counts_;                       // guarded by mu_
  std::function<void(const std::string&)> on_upload_;
};

}  // namespace filesync::engine::testing
