// Parsers for Dropbox result bodies (reference §1.6, §4, §5, §8.2, §10.3): Metadata, list_folder
// pages, and the entries of batch results. Unknown tags and unknown fields are tolerated; a
// missing required field is kPermanent ("malformed response"). Pure, thread-safe.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "cloud/cloud.h"
#include "util/status.h"

namespace filesync::dropbox {

struct Metadata {
  enum class Tag { kFile, kFolder, kDeleted, kUnknown };
  Tag tag = Tag::kUnknown;
  std::string name;
  std::string path_lower;    // may be empty (item not mounted)
  std::string path_display;  // may be empty
  std::string id;
  std::string rev;
  std::uint64_t size = 0;
  std::optional<hash::Digest> content_hash;
  std::string client_modified;
  std::string server_modified;

  // path_display, else path_lower, else name.
  [[nodiscard]] const std::string& DisplayPath() const;
};

// `default_tag` applies when the value has no ".tag" (a route whose static type is already the
// subtype, e.g. FileMetadata inside finish_batch_v2 entries).
Result<Metadata> ParseMetadata(const nlohmann::json& value, Metadata::Tag default_tag);

// File/folder metadata as a cloud::RemoteEntry (deleted and unknown entries are not convertible).
cloud::RemoteEntry ToRemoteEntry(const Metadata& metadata);

struct ListPage {
  std::vector<Metadata> entries;  // unknown tags are dropped
  std::string cursor;
  bool has_more = false;
};
Result<ListPage> ParseListFolderResult(const nlohmann::json& value);

// One entry of a batch result. On failure `failure` holds the error-union value and `status`
// its classification (see errors.h).
struct BatchEntry {
  bool success = false;
  std::optional<Metadata> metadata;  // success entries that carry one
  nlohmann::json failure;
  Status status;
};

// Where a success entry keeps its Metadata.
enum class SuccessShape {
  kNone,           // {".tag":"success"} (append_batch)
  kInline,         // FileMetadata fields next to .tag (finish_batch_v2)
  kUnderMetadata,  // {"metadata":{...}} (delete_batch, create_folder_batch)
  kUnderSuccess,   // {"success":{".tag":"file",...}} (move_batch_v2)
};

// Parses {"entries":[...]} into one BatchEntry per element, in order.
Result<std::vector<BatchEntry>> ParseBatchEntries(const nlohmann::json& value, SuccessShape shape,
                                                  std::string_view context);

// A batch launch or job status: complete{entries}, async_job_id, in_progress or failed.
struct JobStatus {
  enum class State { kComplete, kAsyncJobId, kInProgress, kFailed };
  State state = State::kInProgress;
  std::string async_job_id;
  std::vector<BatchEntry> entries;  // kComplete
  Status failed;                    // kFailed: classification of the "failed" union
};
Result<JobStatus> ParseJobStatus(const nlohmann::json& value, SuccessShape shape,
                                 std::string_view context);

}  // namespace filesync::dropbox
