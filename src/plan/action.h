// Action: one instruction of a sync plan (the seed's "event"), as the planner emits it and the
// pipeline executes it against a Cloud.
//
// Paths are relative to the sync dir ("photos/a.jpg"); the processor joins them with the sync
// dir's cloud path. A plan runs in phases, each finishing before the next starts:
//   kPhaseReplace   one at a time, in order: deletes of entries whose type changed, then folder
//                   moves, parents before children
//   kPhaseFileMoves file moves (independent of each other, run in parallel)
//   kPhaseFolders   folder creation, parents before children (only folders no upload creates)
//   kPhaseUploads   file uploads (batched by the pipeline)
//   kPhaseDeletes   deletes, collapsed so a deleted folder is one action
// Worked example: the user renames folder "2019" to "2019-old" and edits one file inside it.
// The plan is {kMove "2019" -> "2019-old"} in kPhaseReplace, then {kUpload
// "2019-old/edited.txt"}: no re-upload of the other files and no delete of "2019".
#pragma once

#include <cstdint>
#include <string>

#include "core/entry.h"
#include "hash/content_hash.h"

namespace filesync::plan {

enum class ActionKind : std::uint8_t { kDelete, kMove, kCreateFolder, kUpload };

enum Phase : std::uint8_t {
  kPhaseReplace = 0,
  kPhaseFileMoves = 1,
  kPhaseFolders = 2,
  kPhaseUploads = 3,
  kPhaseDeletes = 4,
};
inline constexpr int kPhaseCount = 5;

struct Action {
  ActionKind kind = ActionKind::kUpload;
  Phase phase = kPhaseUploads;
  std::string path;  // target path (relative to the sync dir)
  std::string from;  // kMove: source path in the cloud (relative, as the cloud has it)
  core::EntryKind entry_kind = core::EntryKind::kFile;
  core::FileIdentity identity;  // kUpload / kMove of a file: the local file's identity
  hash::Digest digest{};        // kUpload / kMove: content hash, when known
  bool digest_known = false;
  // kUpload: the cloud's recorded content hash at `path` is not this file's (no need to compare
  // with what the cloud holds before sending).
  bool cloud_differs = false;
  std::uint64_t entries_affected = 1;  // kDelete of a folder: how many entries go with it
  std::string reason;  // human-readable why, e.g. "new", "content changed", "renamed"
};

const char* ActionKindName(ActionKind kind);

}  // namespace filesync::plan
