// LocalCloud: the embedded default backend, a "cloud" that is a folder on this machine (a NAS
// mount, a second disk, a backup folder). Needs no account.
//
// Promises, beyond cloud::Cloud's:
//  - Always the folder synced before. Construction touches nothing. BeginPass opens the
//    configured path (which may lead through symlinks: it is trusted configuration) at the start
//    of every pass and returns "local:<marker>:<device>:<inode>:<path>" for the engine to record,
//    where the marker is a random id the first pass leaves in .filesync-staging/cloud-id. When an
//    earlier pass recorded the folder and it is now missing, or the folder there is another one
//    (another inode, or another device without the recorded marker: a NAS not mounted, leaving
//    the bare mount point; a folder deleted and made again, or a copy of it), the pass is refused
//    with one line and nothing is written. (The marker because a remounted NAS may get another
//    device number; its inode numbers are the server's.) The folder is created only by a pass
//    that has no record of it (logged),
//    never again, so nothing is written into a bare mount point where the folder was seen
//    before. PassStart::accept_replaced takes the folder now there; a missing one is never
//    re-created.
//  - A dry run (PassStart::dry_run) changes nothing in the cloud folder: nothing is created,
//    nothing cleaned; a folder that does not exist yet lists as empty.
//  - Atomic files: an upload is written to a temp file in this instance's own staging folder,
//    <root>/.filesync-staging/<instance>/ (same filesystem), then renamed into place; a crash
//    never leaves a partial file at a destination. Each instance holds an flock on the `owner`
//    file in its staging folder while it lives and removes only its own leftovers and those of
//    dead instances, so instances sharing one folder (a NAS) never break each other's copies
//    (the .cc says how a dead instance is told, also across hosts).
//  - Bytes already there are not copied again: unless UploadItem::cloud_differs, an upload whose
//    destination is a file of the same size is first compared with it byte for byte, and when
//    the bytes are the same nothing is written (bytes_transferred 0; mtime and mode brought in
//    line), so a lost state store or a rerun after a crash never re-copies a mirror.
//  - Sparse files keep their holes (SEEK_DATA/SEEK_HOLE, as cp and rsync -S do);
//    bytes_transferred counts the data written.
//  - Modes: a file keeps its permission bits and sticky bit (umask does not apply), as does a
//    folder made for a local folder (CreateFolderFrom, or as a parent of an upload); setuid and
//    setgid are dropped, since the copies belong to whoever runs filesync. Folders made for
//    cloud_root, or as parents of a move, get the default mode. Owners, ACLs and extended
//    attributes are not copied, and a later chmod alone is not propagated (a file's mode goes
//    with its next content upload).
//  - A stop (Transfer::cancel) abandons a copy within one 1 MiB chunk, leaving nothing behind.
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
//    The root is the folder BeginPass opened and checked, whatever its path leads to later.
//  - Listing: no incremental cursor. List("" cursor) walks the folder and reports files with
//    has_content_hash = false and rev = "<inode>:<mtime_ns>:<size>"; the engine keeps the hash
//    it recorded when the rev is unchanged. List with a cursor returns no changes: the engine
//    trusts its state store between full walks (cloud_verify_interval, sync --verify, or a
//    mirror folder whose FolderIdentity, "<device>:<inode>", changed).
// Thread-safe, except BeginPass (see cloud::Cloud).
#pragma once

#include <atomic>
#include <filesystem>
#include <string>

#include "cloud/cloud.h"
#include "cloud/cloud_ops.h"
#include "core/unique_fd.h"

namespace filesync::cloud {

class LocalCloud : public Cloud {
 public:
  // Touches nothing on disk; BeginPass opens (on a first pass, creates) `root`. Copies draw
  // their bytes from `throttle` (the bwlimit; null: full speed), which must outlive this.
  explicit LocalCloud(std::filesystem::path root, Throttle* throttle = nullptr);
  // Removes this instance's staging folder.
  ~LocalCloud() override;
  LocalCloud(const LocalCloud&) = delete;
  LocalCloud& operator=(const LocalCloud&) = delete;

  [[nodiscard]] std::string_view name() const override { return "local"; }
  [[nodiscard]] Capabilities capabilities() const override;
  Result<std::string> BeginPass(const PassStart& start) override;
  Result<std::string> FolderIdentity(const std::string& path) override;
  Result<ListResult> List(const std::string& root, const std::string& cursor) override;
  Status CreateFolder(const std::string& path) override;
  Status CreateFolderFrom(const FolderItem& item) override;
  std::vector<Result<UploadedFile>> Upload(std::span<const UploadItem> items,
                                           const Transfer& transfer) override;
  std::vector<Status> Delete(std::span<const std::string> paths) override;
  Result<RemoteEntry> Move(const std::string& from, const std::string& to) override;
  Status Flush() override;

  static constexpr const char* kStagingName = ".filesync-staging";
  // This instance's folder in kStagingName: "<boot id>.<pid>.<random>.<host name>".
  [[nodiscard]] const std::string& instance() const { return instance_; }

 private:
  // Opens (making it if needed) this instance's staging folder, clears its leftovers and removes
  // those of dead instances.
  Status PrepareStaging();
  // Opens this instance's folder in the shared staging folder `shared`, making and locking it
  // unless the one held is still in place.
  Status OpenOwnStaging(int shared, const std::string& shared_path);
  // Leaves a new marker in the shared staging folder and returns it.
  Result<std::string> WriteMarker();
  Result<UploadedFile> UploadOne(const UploadItem& item, const Transfer& transfer);
  Status DeleteOne(const std::string& path);
  // A fresh name for an entry in this instance's staging folder.
  std::string StagingName(const char* suffix);

  const std::filesystem::path root_;
  Throttle* const throttle_;
  const std::string boot_id_;
  const std::string instance_;
  // Set by BeginPass, read by everything else during a pass.
  core::UniqueFd root_fd_;     // the checked cloud folder; -1 when a dry run found none yet
  core::UniqueFd shared_fd_;   // <root>/.filesync-staging; -1 until a pass that writes
  core::UniqueFd staging_fd_;  // <root>/.filesync-staging/<instance>
  core::UniqueFd owner_fd_;    // its `owner` file, flock'd while this instance lives
  std::atomic<std::uint64_t> counter_{0};
};

}  // namespace filesync::cloud
