// RootState: what the engine keeps about one sync dir between passes (the daemon keeps it in
// memory, so a pass costs a scan plus the cloud's change listing), and its load/compact steps.
// Between clean passes only the compact `index` is kept; a pass with something to do loads the
// full records (`files`, the seed's Filesync.Cache, and `remote`, the cloud view) from the
// store, and a pass that ends clean gives them back to the index (Compact).
// Thread safety: none of its own. The engine's main thread owns it; during execution workers
// change `files`, `remote`, `failed_paths` and `outcomes` only under the OutcomeRecorder's lock.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "core/unique_fd.h"
#include "store/root_index.h"
#include "store/state_store.h"

namespace filesync::engine {

// Per-root keys of the state store.
// Present while a pass may have changed the cloud without recording it.
inline constexpr const char* kVerifyNextKey = "verify_next";
// The identity of the root's mirror folder (Cloud::FolderIdentity) as the last pass left it.
inline constexpr const char* kMirrorFolderKey = "cloud_folder";

// The cloud view: records by cloud key (core::CloudKey); std::less<> allows lookups by
// string_view without a copy.
using RemoteMap = std::map<std::string, store::RemoteRecord, std::less<>>;
// The hash cache: what the last passes learnt about each local path.
using FileMap = std::unordered_map<std::string, store::FileRecord>;

struct RootState {
  std::int64_t id = 0;  // the store's root id; 0 until Load()
  std::string local_dir;
  std::string cloud_path;
  std::optional<store::RootIndex> index;
  bool records_loaded = false;
  FileMap files;  // by local path
  RemoteMap remote;
  std::string cursor;
  std::int64_t last_verify_ms = 0;
  // The cloud may differ from the state store (an unclean exit mid-pass, or a cloud operation
  // that found something unexpected): walk it fully next time instead of trusting the store.
  bool verify_next = false;
  // The mirror folder's identity as recorded by the last pass, and as this pass found it.
  std::string recorded_folder;
  std::string folder_at_start;
  // The sync dir, opened (without following a symlink) and checked once per pass: everything
  // the pass reads is reached below this descriptor, whatever the path leads to meanwhile.
  core::UniqueFd dir_fd;
  std::unordered_set<std::string> failed_paths;  // this pass's failures (for status)
  std::uint64_t outcomes = 0;                    // this pass's actions with an outcome
  std::string last_stopped;                      // why the last pass did not sync it, if so
  std::unordered_set<std::string> warned;        // scan issues already logged by this process

  // The root's id and key/values, once per process.
  Status Load(store::StateStore& store);
  // The compact index, built from the store on a process's first pass.
  Status EnsureIndex(store::StateStore& store, bool case_insensitive);
  // The full records, which every pass with something to do works on. The store holds exactly
  // what the index summarises: the index is only kept after a pass that committed everything.
  Status EnsureRecords(store::StateStore& store, bool case_insensitive);
  // After a clean pass: summarise the records in the index and give their memory back.
  void Compact(bool case_insensitive);
  [[nodiscard]] std::uint64_t RemoteCount() const;
  [[nodiscard]] std::uint64_t FileCount() const;
};

}  // namespace filesync::engine
