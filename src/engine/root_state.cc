#include "engine/root_state.h"

#include <malloc.h>

#include "core/rel_path.h"

namespace filesync::engine {

Status RootState::Load(store::StateStore& store) {
  if (id != 0) return Status::Ok();
  auto stored_id = store.RootId(local_dir, cloud_path);
  if (!stored_id.ok()) return stored_id.status();
  if (auto v = store.Get(*stored_id, "cursor"); v.ok() && v->has_value()) cursor = **v;
  if (auto v = store.Get(*stored_id, "last_verify_ms"); v.ok() && v->has_value())
    last_verify_ms = std::stoll(**v);
  if (auto v = store.Get(*stored_id, kVerifyNextKey); v.ok() && v->has_value()) verify_next = true;
  if (auto v = store.Get(*stored_id, kMirrorFolderKey); v.ok() && v->has_value())
    recorded_folder = **v;
  id = *stored_id;
  return Status::Ok();
}

Status RootState::EnsureIndex(store::StateStore& store, bool case_insensitive) {
  if (records_loaded || index) return Status::Ok();
  store::RootIndex::Builder builder(case_insensitive);
  if (auto stored = store.Roots(); stored.ok()) {
    for (const store::RootInfo& info : *stored) {
      if (info.id == id) builder.Reserve(info.file_records);
    }
  }
  Status s = store.LoadFiles(id, [&](store::FileRecord&& r) { builder.AddFile(r); });
  if (!s.ok()) return s;
  s = store.LoadRemote(id, [&](store::RemoteRecord&& r) { builder.AddRemote(r); });
  if (!s.ok()) return s;
  index = std::move(builder).Build();
  return Status::Ok();
}

Status RootState::EnsureRecords(store::StateStore& store, bool case_insensitive) {
  if (records_loaded) return Status::Ok();
  index.reset();
  Status s = store.LoadFiles(id, [&](store::FileRecord&& r) {
    std::string path = r.path;
    files.emplace(std::move(path), std::move(r));
  });
  if (!s.ok()) return s;
  s = store.LoadRemote(id, [&](store::RemoteRecord&& r) {
    std::string key = core::CloudKey(r.path, case_insensitive);
    remote.insert_or_assign(std::move(key), std::move(r));
  });
  if (!s.ok()) {
    files.clear();
    remote.clear();
    return s;
  }
  records_loaded = true;
  return Status::Ok();
}

void RootState::Compact(bool case_insensitive) {
  store::RootIndex::Builder builder(case_insensitive);
  builder.Reserve(files.size());
  for (const auto& [path, f] : files) builder.AddFile(f);
  for (const auto& [key, r] : remote) builder.AddRemote(r);
  index = std::move(builder).Build();
  files = {};
  remote = {};
  records_loaded = false;
  malloc_trim(0);
}

std::uint64_t RootState::RemoteCount() const {
  return records_loaded ? remote.size() : index->remote_count();
}

std::uint64_t RootState::FileCount() const {
  return records_loaded ? files.size() : index->file_count();
}

}  // namespace filesync::engine
