// CloudView: the engine's picture of one root's cloud folder (RootState::remote, records keyed
// by cloud key) and the changes that keep it and the state store in step: a listing applied
// (complete: replaces the view; incremental: its changes), and what an action did (a put, a
// delete of a subtree, a move's records re-based, parent folders filled in).
//
// The store's remote rows are keyed by the path as spelt, the map by cloud key: a listing, or
// the local side, may spell a path in another case or Unicode form than its row was stored under.
// So rows are always written and deleted by the spelling the map's record carries.
//
// Every change goes to both the map and `batch` (the rows to commit). A CloudView is a short-lived
// view over them. Thread safety: none; the caller holds whatever guards the map and the batch
// (the OutcomeRecorder's lock during a pass).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "cloud/cloud.h"
#include "core/rel_path.h"
#include "engine/root_state.h"
#include "store/state_store.h"

namespace filesync::engine {

class CloudView {
 public:
  CloudView(RemoteMap& remote, store::StateStore::Batch& batch, bool case_insensitive)
      : remote_(remote), batch_(batch), case_insensitive_(case_insensitive) {}

  // Applies a listing of the root's cloud folder `cloud_path`. A complete listing replaces the
  // view; a file listed without a hash keeps the digest it had if its rev is unchanged (it is
  // what we wrote), else is compared by upload.
  void Apply(const cloud::ListResult& listing, const std::string& cloud_path);
  // Records `r` at its key, replacing (in the store too) a record spelt differently.
  void Put(store::RemoteRecord r);
  // Erases the record at `key` and everything below it. Returns the erased records.
  std::vector<store::RemoteRecord> EraseUnder(const std::string& key);
  // Records every missing parent folder of `path` (an upload creates them).
  void PutAncestorsAsFolders(std::string_view path);
  // A move's outcome: the records at and below `from` now live at and below `to`; a moved file
  // takes `moved_rev` if not empty (the local backend's rev follows the file's identity).
  void Move(const std::string& from, const std::string& to, const std::string& moved_rev);

  [[nodiscard]] std::string Key(std::string_view path) const {
    return core::CloudKey(path, case_insensitive_);
  }

  // True when `listing` deletes the root's cloud folder itself or a folder above it (deleted or
  // moved away in the cloud): nothing of the stored view is left there.
  static bool DeletesRoot(const cloud::ListResult& listing, const std::string& cloud_path,
                          bool case_insensitive);

 private:
  void ApplyComplete(const cloud::ListResult& listing, const std::string& cloud_path);

  RemoteMap& remote_;
  store::StateStore::Batch& batch_;
  const bool case_insensitive_;
};

}  // namespace filesync::engine
