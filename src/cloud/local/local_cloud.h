// LocalCloud: the embedded default backend, a "cloud" that is a folder on this machine (a NAS
// mount, a second disk, a backup folder). Needs no account.
//
// Promises, beyond cloud::Cloud's:
//  - Atomic files: an upload is written to a temp file in <root>/.filesync-staging (same
//    filesystem), then renamed into place; a crash never leaves a partial file at a destination,
//    and staging leftovers are removed when a LocalCloud is constructed.
//  - Durable without an fsync per file: Flush() calls syncfs() once; the engine calls it before
//    it records a batch in the state store, so what is recorded has reached the disk.
//  - Moves are renames (RENAME_NOREPLACE); MoveBatch is cloud::Cloud's default loop over Move
//    (a rename takes no lock worth batching). Deleted folders are first renamed into staging, so
//    they vanish atomically, then removed.
//  - Cloud paths never escape the root: "..", "." and empty components are rejected, and no
//    operation follows a symlink found in the cloud folder (someone who can write to a shared
//    folder could plant one): every path is reached from the root's descriptor without links,
//    a link where a folder is needed is kConflict ("cloud entry X is a symlink; not following
//    it"), a link at a file's destination is replaced (the link, not its target), a deleted link
//    or a link inside a deleted folder is removed itself, and List skips links with a warning.
//  - Listing: no incremental cursor. List("" cursor) walks the folder and reports files with
//    has_content_hash = false and rev = "<inode>:<mtime_ns>:<size>"; the engine keeps the hash
//    it recorded when the rev is unchanged. List with a cursor returns no changes: the engine
//    trusts its state store between full walks (cloud_verify_interval, sync --verify).
// Thread-safe.
#pragma once

#include <atomic>
#include <filesystem>
#include <string>

#include "cloud/cloud.h"

namespace filesync::cloud {

class LocalCloud : public Cloud {
 public:
  // Creates `root` (and its staging folder) if missing. Throws std::runtime_error if it cannot:
  // a start-up error the CLI reports.
  explicit LocalCloud(std::filesystem::path root);
  ~LocalCloud() override;
  LocalCloud(const LocalCloud&) = delete;
  LocalCloud& operator=(const LocalCloud&) = delete;

  [[nodiscard]] std::string_view name() const override { return "local"; }
  [[nodiscard]] Capabilities capabilities() const override;
  Result<ListResult> List(const std::string& root, const std::string& cursor) override;
  Status CreateFolder(const std::string& path) override;
  std::vector<Result<UploadedFile>> Upload(std::span<const UploadItem> items,
                                           const Transfer& transfer) override;
  std::vector<Status> Delete(std::span<const std::string> paths) override;
  Result<RemoteEntry> Move(const std::string& from, const std::string& to) override;
  Status Flush() override;

  static constexpr const char* kStagingName = ".filesync-staging";

 private:
  Result<UploadedFile> UploadOne(const UploadItem& item, const Transfer& transfer);
  Status DeleteOne(const std::string& path);
  // A fresh name for an entry in the staging folder.
  std::string StagingName(const char* suffix);

  const std::filesystem::path root_;
  int root_fd_ = -1;
  int staging_fd_ = -1;
  std::atomic<std::uint64_t> counter_{0};
};

}  // namespace filesync::cloud
