#include "fake_cloud.h"

#include <unistd.h>

#include "core/rel_path.h"

namespace filesync::engine::testing {
namespace {

constexpr const char* kFolderMark = "<folder>";

bool Under(const std::string& path, const std::string& root) {
  return root.empty() ? !path.empty() : core::UnderOrEqual(path, root) && path != root;
}

}  // namespace

cloud::Capabilities FakeCloud::capabilities() const {
  cloud::Capabilities caps;
  caps.incremental_listing = incremental_;
  caps.max_batch_files = 4;
  return caps;
}

cloud::RemoteEntry FakeCloud::EntryLocked(const std::string& path, const Node& node) const {
  cloud::RemoteEntry e;
  e.path = path;
  e.kind = node.folder ? core::EntryKind::kFolder : core::EntryKind::kFile;
  if (!node.folder) {
    e.size = node.content.size();
    e.content_hash = hash::HashBytes(node.content);
  }
  e.rev = node.rev;
  return e;
}

void FakeCloud::LogLocked(cloud::ListChange::Type type, const std::string& path) {
  cloud::ListChange change;
  change.type = type;
  if (type == cloud::ListChange::Type::kDelete) {
    change.entry.path = path;
  } else {
    change.entry = EntryLocked(path, nodes_.at(path));
  }
  log_.push_back(std::move(change));
}

void FakeCloud::PutLocked(const std::string& path, Node node) {
  node.rev = "r" + std::to_string(next_rev_++);
  nodes_.insert_or_assign(path, std::move(node));
  LogLocked(cloud::ListChange::Type::kUpsert, path);
}

Status FakeCloud::MakeParentsLocked(const std::string& path) {
  std::vector<std::string> missing;
  for (std::string p(core::ParentPath(path)); !p.empty(); p = std::string(core::ParentPath(p))) {
    auto it = nodes_.find(p);
    if (it != nodes_.end()) {
      if (!it->second.folder) return Status::Conflict(p + " is a file");
      break;
    }
    missing.push_back(p);
  }
  for (auto it = missing.rbegin(); it != missing.rend(); ++it) PutLocked(*it, Node{.folder = true});
  return Status::Ok();
}

Result<cloud::ListResult> FakeCloud::List(const std::string& root, const std::string& cursor) {
  std::lock_guard lock(mu_);
  cloud::ListResult result;
  const bool root_exists = root.empty() || nodes_.contains(root);
  if (incremental_ && !cursor.empty()) {
    const std::size_t from = std::stoull(cursor);
    for (std::size_t i = from; i < log_.size(); ++i) {
      const auto& c = log_[i];
      if (core::UnderOrEqual(c.entry.path, root) ||
          (c.type == cloud::ListChange::Type::kDelete && core::UnderOrEqual(root, c.entry.path)))
        result.changes.push_back(c);
    }
  } else {
    result.complete = true;
    for (const auto& [path, node] : nodes_) {
      if (Under(path, root))
        result.changes.push_back({cloud::ListChange::Type::kUpsert, EntryLocked(path, node)});
    }
  }
  // A missing path has no cursor (see the engine: it creates the folder and lists again).
  if (incremental_ && root_exists) result.cursor = std::to_string(log_.size());
  return result;
}

Status FakeCloud::CreateFolder(const std::string& path) {
  std::lock_guard lock(mu_);
  if (auto it = nodes_.find(path); it != nodes_.end())
    return it->second.folder ? Status::Ok() : Status::Conflict(path + " is a file");
  if (Status s = MakeParentsLocked(path); !s.ok()) return s;
  PutLocked(path, Node{.folder = true});
  ++counts_.folders_created;
  return Status::Ok();
}

Result<cloud::UploadedFile> FakeCloud::UploadOne(const cloud::UploadItem& item) {
  auto file = cloud::OpenForUpload(item);
  if (!file.ok()) return file.status();
  std::string content;
  char buf[65536];
  for (off_t off = 0;;) {
    const ssize_t n = pread(file->fd(), buf, sizeof buf, off);
    if (n < 0) return Status::Io("cannot read " + item.local_path);
    if (n == 0) break;
    content.append(buf, static_cast<std::size_t>(n));
    off += n;
  }
  if (Status s = file->CheckUnchanged("copied"); !s.ok()) return s;
  std::lock_guard lock(mu_);
  if (auto it = nodes_.find(item.cloud_path); it != nodes_.end() && it->second.folder)
    return Status::Conflict(item.cloud_path + " is a folder");
  if (Status s = MakeParentsLocked(item.cloud_path); !s.ok()) return s;
  PutLocked(item.cloud_path, Node{.folder = false, .content = content});
  ++counts_.uploads;
  cloud::UploadedFile up;
  up.entry = EntryLocked(item.cloud_path, nodes_.at(item.cloud_path));
  up.identity = file->identity();
  up.digest = hash::HashBytes(content);
  up.bytes_transferred = content.size();
  return up;
}

std::vector<Result<cloud::UploadedFile>> FakeCloud::Upload(std::span<const cloud::UploadItem> items,
                                                           const cloud::Transfer& transfer) {
  std::vector<Result<cloud::UploadedFile>> out;
  for (const cloud::UploadItem& item : items) {
    std::function<void(const std::string&)> hook;
    {
      std::lock_guard lock(mu_);
      hook = on_upload_;
    }
    if (hook) hook(item.cloud_path);
    if (transfer.cancelled()) {
      out.emplace_back(Status::Cancelled("stopped"));
      continue;
    }
    out.push_back(UploadOne(item));
  }
  return out;
}

std::vector<Status> FakeCloud::Delete(std::span<const std::string> paths) {
  std::lock_guard lock(mu_);
  std::vector<Status> out;
  for (const std::string& path : paths) {
    std::erase_if(nodes_, [&](const auto& n) { return core::UnderOrEqual(n.first, path); });
    LogLocked(cloud::ListChange::Type::kDelete, path);
    ++counts_.deletes;
    out.push_back(Status::Ok());
  }
  return out;
}

Result<cloud::RemoteEntry> FakeCloud::Move(const std::string& from, const std::string& to) {
  std::lock_guard lock(mu_);
  if (!nodes_.contains(from)) return Status::NotFound(from + " not found");
  if (nodes_.contains(to)) return Status::Conflict(to + " exists");
  if (Status s = MakeParentsLocked(to); !s.ok()) return s;
  std::map<std::string, Node> moved;
  for (auto it = nodes_.begin(); it != nodes_.end();) {
    if (core::UnderOrEqual(it->first, from)) {
      moved.emplace(to + it->first.substr(from.size()), std::move(it->second));
      it = nodes_.erase(it);
    } else {
      ++it;
    }
  }
  LogLocked(cloud::ListChange::Type::kDelete, from);
  for (auto& [path, node] : moved) {
    nodes_.emplace(path, node);
    LogLocked(cloud::ListChange::Type::kUpsert, path);
  }
  ++counts_.moves;
  return EntryLocked(to, nodes_.at(to));
}

std::map<std::string, std::string> FakeCloud::Tree(const std::string& root) const {
  std::lock_guard lock(mu_);
  std::map<std::string, std::string> tree;
  for (const auto& [path, node] : nodes_) {
    if (Under(path, root))
      tree.emplace(path.substr(root.size() + 1), node.folder ? kFolderMark : node.content);
  }
  return tree;
}

void FakeCloud::PutFile(const std::string& path, const std::string& content) {
  std::lock_guard lock(mu_);
  (void)MakeParentsLocked(path);
  PutLocked(path, Node{.folder = false, .content = content});
}

void FakeCloud::OnUpload(std::function<void(const std::string&)> hook) {
  std::lock_guard lock(mu_);
  on_upload_ = std::move(hook);
}

FakeCloud::Counts FakeCloud::counts() const {
  std::lock_guard lock(mu_);
  return counts_;
}

}  // namespace filesync::engine::testing
