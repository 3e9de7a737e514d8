#include "cloud/dropbox/parsing.h"

#include "cloud/dropbox/errors.h"

namespace filesync::dropbox {

namespace {

std::string StringField(const nlohmann::json& value, const char* name) {
  auto it = value.find(name);
  return it != value.end() && it->is_string() ? it->get<std::string>() : std::string();
}

Status Malformed(std::string_view context, std::string_view what) {
  return Status::Permanent("malformed response from " + std::string(context) + ": " +
                           std::string(what));
}

// Where a success entry of `shape` keeps its metadata (null: nowhere, or missing).
const nlohmann::json* SuccessMetadata(const nlohmann::json& e, SuccessShape shape) {
  const char* key = nullptr;
  switch (shape) {
    case SuccessShape::kNone:
      return nullptr;
    case SuccessShape::kInline:
      return &e;
    case SuccessShape::kUnderMetadata:
      key = "metadata";
      break;
    case SuccessShape::kUnderSuccess:
      key = "success";
      break;
  }
  auto it = e.find(key);
  return it != e.end() ? &*it : nullptr;
}

Status ParseSuccess(const nlohmann::json& e, SuccessShape shape, std::string_view context,
                    BatchEntry& entry) {
  entry.success = true;
  const nlohmann::json* meta = SuccessMetadata(e, shape);
  if (meta == nullptr) {
    return shape == SuccessShape::kNone ? Status::Ok()
                                        : Malformed(context, "success entry without metadata");
  }
  nlohmann::json copy = *meta;
  if (shape == SuccessShape::kInline) copy.erase(".tag");
  auto m = ParseMetadata(
      copy, shape == SuccessShape::kInline ? Metadata::Tag::kFile : Metadata::Tag::kUnknown);
  if (!m.ok()) return m.status();
  entry.metadata = std::move(*m);
  return Status::Ok();
}

}  // namespace

const std::string& Metadata::DisplayPath() const {
  if (!path_display.empty()) return path_display;
  if (!path_lower.empty()) return path_lower;
  return name;
}

Result<Metadata> ParseMetadata(const nlohmann::json& value, Metadata::Tag default_tag) {
  if (!value.is_object()) return Malformed("metadata", "not an object");
  Metadata m;
  m.tag = default_tag;
  if (auto tag = value.find(".tag"); tag != value.end() && tag->is_string()) {
    const auto& t = tag->get_ref<const std::string&>();
    m.tag = t == "file"      ? Metadata::Tag::kFile
            : t == "folder"  ? Metadata::Tag::kFolder
            : t == "deleted" ? Metadata::Tag::kDeleted
                             : Metadata::Tag::kUnknown;
  }
  m.name = StringField(value, "name");
  m.path_lower = StringField(value, "path_lower");
  m.path_display = StringField(value, "path_display");
  m.id = StringField(value, "id");
  m.rev = StringField(value, "rev");
  m.client_modified = StringField(value, "client_modified");
  m.server_modified = StringField(value, "server_modified");
  if (m.name.empty() && m.path_lower.empty() && m.path_display.empty()) {
    return Malformed("metadata", "entry without name or path");
  }
  if (m.tag == Metadata::Tag::kFile) {
    auto size = value.find("size");
    if (size == value.end() || !size->is_number_integer() || size->get<std::int64_t>() < 0) {
      return Malformed("metadata", "file without size");
    }
    m.size = size->get<std::uint64_t>();
    const std::string hex = StringField(value, "content_hash");
    hash::Digest digest{};
    if (!hex.empty() && hash::FromHex(hex, &digest)) m.content_hash = digest;
  }
  return m;
}

cloud::RemoteEntry ToRemoteEntry(const Metadata& metadata) {
  cloud::RemoteEntry e;
  e.path = metadata.DisplayPath();
  if (metadata.tag == Metadata::Tag::kFolder) {
    e.kind = core::EntryKind::kFolder;
    e.has_content_hash = false;
    return e;
  }
  e.kind = core::EntryKind::kFile;
  e.size = metadata.size;
  e.has_content_hash = metadata.content_hash.has_value();
  if (metadata.content_hash) e.content_hash = *metadata.content_hash;
  e.rev = metadata.rev;
  return e;
}

Result<ListPage> ParseListFolderResult(const nlohmann::json& value) {
  if (!value.is_object()) return Malformed("list_folder", "not an object");
  auto entries = value.find("entries");
  auto cursor = value.find("cursor");
  auto has_more = value.find("has_more");
  if (entries == value.end() || !entries->is_array() || cursor == value.end() ||
      !cursor->is_string() || has_more == value.end() || !has_more->is_boolean()) {
    return Malformed("list_folder", "missing entries, cursor or has_more");
  }
  ListPage page;
  page.cursor = cursor->get<std::string>();
  page.has_more = has_more->get<bool>();
  page.entries.reserve(entries->size());
  for (const auto& e : *entries) {
    auto m = ParseMetadata(e, Metadata::Tag::kUnknown);
    if (!m.ok()) return m.status();
    if (m->tag == Metadata::Tag::kUnknown) continue;  // a future Metadata subtype
    page.entries.push_back(std::move(*m));
  }
  return page;
}

Result<std::vector<BatchEntry>> ParseBatchEntries(const nlohmann::json& value, SuccessShape shape,
                                                  std::string_view context) {
  if (!value.is_object()) return Malformed(context, "not an object");
  auto entries = value.find("entries");
  if (entries == value.end() || !entries->is_array()) return Malformed(context, "no entries");
  std::vector<BatchEntry> out;
  out.reserve(entries->size());
  for (const auto& e : *entries) {
    BatchEntry entry;
    const std::vector<std::string> tags = UnionTags(e);
    if (!tags.empty() && tags.front() == "success") {
      if (Status s = ParseSuccess(e, shape, context, entry); !s.ok()) return s;
    } else {
      // "failure" and any tag a newer server invents: not a success.
      auto it = e.find("failure");
      entry.failure = it != e.end() ? *it : e;
      entry.status = StatusFromErrorUnion(entry.failure, context);
    }
    out.push_back(std::move(entry));
  }
  return out;
}

Result<JobStatus> ParseJobStatus(const nlohmann::json& value, SuccessShape shape,
                                 std::string_view context) {
  const std::vector<std::string> tags = UnionTags(value);
  if (tags.empty()) return Malformed(context, "job status without .tag");
  JobStatus job;
  if (tags.front() == "complete") {
    auto entries = ParseBatchEntries(value, shape, context);
    if (!entries.ok()) return entries.status();
    job.state = JobStatus::State::kComplete;
    job.entries = std::move(*entries);
  } else if (tags.front() == "async_job_id") {
    job.state = JobStatus::State::kAsyncJobId;
    job.async_job_id = StringField(value, "async_job_id");
    if (job.async_job_id.empty()) return Malformed(context, "async_job_id missing");
  } else if (tags.front() == "in_progress") {
    job.state = JobStatus::State::kInProgress;
  } else {
    job.state = JobStatus::State::kFailed;
    auto failed = value.find("failed");
    job.failed = StatusFromErrorUnion(failed != value.end() ? *failed : value, context);
  }
  return job;
}

}  // namespace filesync::dropbox
