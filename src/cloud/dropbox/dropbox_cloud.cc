// How DropboxCloud works.
//
// Every request goes through Impl::Execute (rpc.cc), the one retry wrapper: pacer wait ->
// bearer token -> send -> classify -> retry what is safe to retry. What it returns has been
// retried to the pacer's limits, so DropboxCloud says Capabilities::retries_transient and the
// processor does not retry it again; the only failures retried above Execute are the ones a
// new request fixes and Execute cannot see: a file whose upload session lost its bytes is sent
// again once by Upload(), an ambiguous move or delete is checked and sent again by relocate.cc.
//
// Upload, worked example for 3 small files a (5 B), b (0 B), c (7 B) and one 40 MiB file d,
// chunk_size 16 MiB:
//   1. a, b, c are read (identity checked before/after, hashed) into memory (upload_small.cc).
//   2. upload_session/start_batch {num_sessions:3} -> 3 session ids.
//   3. upload_session/append_batch: body = a|b|c (12 bytes), entries with lengths 5,0,7 and
//      close=true, content_hash of the 12 bytes.
//   4. d: upload_session/start {session_type:concurrent}; append_v2 of chunks 0 and 1
//      (16 MiB each, in parallel), then chunk 2 (8 MiB, close=true). After each chunk the
//      SessionStore record under "dropbox/upload/<cloud key>" gets that chunk's 4 MiB block
//      hashes, so a restart resends only missing chunks and still knows d's content hash
//      (upload_session.cc).
//   5. ONE finish_batch_v2 commits a, b, c and d; each returned size/content_hash is compared
//      with the local digest. too_many_write_operations entries are committed again together
//      (commit.cc).
#include "cloud/dropbox/dropbox_cloud.h"

#include <iterator>

#include "cloud/dropbox/dropbox_impl.h"
#include "util/unicode.h"

namespace filesync::dropbox {

using cloud::UploadedFile;
using cloud::UploadItem;

DropboxCloud::DropboxCloud(DropboxOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}

DropboxCloud::~DropboxCloud() = default;

void DropboxCloud::TEST_StopAfterChunks(int chunks) { impl_->stop_after_chunks = chunks; }

const Pacer& DropboxCloud::TEST_pacer() const { return impl_->pacer; }

cloud::Capabilities DropboxCloud::capabilities() const {
  return cloud::Capabilities{
      .incremental_listing = true,
      .case_insensitive = true,
      .name_rules = cloud::NameRules::kDropbox,
      .retries_transient = true,
      .max_batch_files = impl_->o.max_batch_files,
      .max_batch_bytes = impl_->o.max_batch_bytes,
      .small_file_limit = impl_->o.small_file_limit,
  };
}

Result<cloud::ListResult> DropboxCloud::List(const std::string& root, const std::string& cursor) {
  if (cursor.empty()) return impl_->FullList(root);
  return impl_->Continue(root, cursor);
}

Status DropboxCloud::CreateFolder(const std::string& path) {
  if (path.empty()) return Status::Ok();  // the namespace root always exists
  Reply r = impl_->Rpc("files/create_folder_v2",
                       ojson{{"path", unicode::ToNfc(path)}, {"autorename", false}});
  if (r.ok()) return Status::Ok();
  if (r.Has("conflict") && r.Has("folder")) return Status::Ok();
  return r.status;
}

void DropboxCloud::Impl::SendSmall(std::span<const UploadItem> items, std::vector<Ready>& ready,
                                   UploadResults& results, const cloud::Transfer& transfer) {
  std::vector<SmallFile> small;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (items[i].expected.size > o.small_file_limit) continue;
    auto f = ReadSmall(i, items[i]);
    if (f.ok()) {
      small.push_back(std::move(*f));
    } else {
      results[i] = f.status();
    }
  }
  if (small.empty()) return;
  const std::size_t batched = o.append_batch && batch_upload_route.Available(clock)
                                  ? AppendBatch(small, ready, results, transfer)
                                  : 0;
  if (batched < small.size()) {
    std::vector<SmallFile> rest(
        std::make_move_iterator(small.begin() + static_cast<std::ptrdiff_t>(batched)),
        std::make_move_iterator(small.end()));
    StartEach(rest, ready, results, transfer);
  }
}

std::vector<Result<UploadedFile>> DropboxCloud::Impl::UploadRound(std::span<const UploadItem> items,
                                                                  const cloud::Transfer& transfer,
                                                                  std::vector<bool>* resend) {
  if (transfer.cancelled()) {
    return std::vector<Result<UploadedFile>>(items.size(), Status::Cancelled("stopped"));
  }
  UploadResults results(items.size());
  std::vector<Ready> ready;
  SendSmall(items, ready, results, transfer);
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (items[i].expected.size <= o.small_file_limit) continue;
    auto r = UploadLarge(i, items[i], transfer);
    if (r.ok()) {
      ready.push_back(std::move(*r));
    } else {
      results[i] = r.status();
    }
  }
  if (transfer.cancelled()) {
    // Nothing is committed after a stop: the files stay where they were in Dropbox. A large
    // file's session stays in the SessionStore, so the next run only commits it.
    for (const Ready& r : ready)
      results[r.index] = Status::Cancelled(items[r.index].cloud_path + ": stopped");
  } else {
    Commit(items, std::move(ready), results);
  }
  if (resend != nullptr) *resend = std::move(results.resend);
  std::vector<Result<UploadedFile>> out;
  out.reserve(items.size());
  for (auto& r : results.result)
    out.push_back(r ? std::move(*r) : Result<UploadedFile>(Status::Permanent("not uploaded")));
  return out;
}

std::vector<Result<UploadedFile>> DropboxCloud::Upload(std::span<const UploadItem> items,
                                                       const cloud::Transfer& transfer) {
  std::vector<bool> resend;
  std::vector<Result<UploadedFile>> out = impl_->UploadRound(items, transfer, &resend);
  std::vector<UploadItem> again;
  std::vector<std::size_t> where;
  for (std::size_t i = 0; i < resend.size(); ++i) {
    if (resend[i] && !out[i].ok()) {
      again.push_back(items[i]);
      where.push_back(i);
    }
  }
  if (again.empty() || transfer.cancelled()) return out;
  Log().info("{} file(s) lost their upload session; sending them again in new sessions",
             again.size());
  std::vector<Result<UploadedFile>> second = impl_->UploadRound(again, transfer, nullptr);
  for (std::size_t k = 0; k < where.size(); ++k) out[where[k]] = std::move(second[k]);
  return out;
}

Result<DropboxAccount> DropboxCloud::CurrentAccount() {
  Reply r = impl_->Rpc("users/get_current_account", ojson(nullptr));
  if (!r.ok()) return r.status;
  auto text = [](const nlohmann::json& j, const char* key) {
    const auto it = j.is_object() ? j.find(key) : j.end();
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  DropboxAccount account;
  account.account_id = text(r.result, "account_id");
  if (r.result.is_object() && r.result.contains("name"))
    account.display_name = text(r.result["name"], "display_name");
  account.email = text(r.result, "email");
  return account;
}

}  // namespace filesync::dropbox
