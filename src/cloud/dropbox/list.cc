// Listing: list_folder (recursive) + list_folder/continue until has_more is false; a cursor
// that is no longer usable falls back to a full listing.
#include "cloud/dropbox/dropbox_impl.h"
#include "core/rel_path.h"
#include "util/unicode.h"

namespace filesync::dropbox {
namespace {

using cloud::ListChange;
using cloud::ListResult;

void AppendChanges(const std::string& root_key, std::vector<Metadata>& entries, ListResult* out) {
  for (Metadata& m : entries) {
    ListChange change;
    if (m.tag == Metadata::Tag::kDeleted) {
      change.type = ListChange::Type::kDelete;
      change.entry.path = m.DisplayPath();
    } else {
      // The listed folder reports itself; callers want what is under it.
      if (core::CloudKey(m.DisplayPath()) == root_key) continue;
      change.entry = ToRemoteEntry(m);
    }
    out->changes.push_back(std::move(change));
  }
}

// Follows has_more from `page` on.
Status Drain(DropboxCloud::Impl& d, const std::string& root_key, ListPage page, ListResult* out) {
  for (;;) {
    AppendChanges(root_key, page.entries, out);
    out->cursor = page.cursor;
    if (!page.has_more) return Status::Ok();
    Reply r = d.Rpc("files/list_folder/continue", ojson{{"cursor", page.cursor}});
    if (!r.ok()) return r.status;
    auto next = ParseListFolderResult(r.result);
    if (!next.ok()) return next.status();
    page = std::move(*next);
  }
}

}  // namespace

Result<ListResult> DropboxCloud::Impl::FullList(const std::string& root) {
  const std::string path = unicode::ToNfc(root);
  ListResult out;
  out.complete = true;
  Reply r =
      Rpc("files/list_folder",
          ojson{{"path", path}, {"recursive", true}, {"include_deleted", false}, {"limit", 2000}});
  if (!r.ok()) {
    if (r.Has("not_found")) return out;  // no root yet: nothing there
    if (r.Has("not_folder")) {
      return Status::Conflict(path + " is a file in Dropbox, where the mirror folder should be; " +
                              "move or delete that file");
    }
    return r.status;
  }
  auto page = ParseListFolderResult(r.result);
  if (!page.ok()) return page.status();
  if (Status s = Drain(*this, core::CloudKey(path), std::move(*page), &out); !s.ok()) return s;
  return out;
}

Result<ListResult> DropboxCloud::Impl::Continue(const std::string& root,
                                                const std::string& cursor) {
  Reply r = Rpc("files/list_folder/continue", ojson{{"cursor", cursor}});
  if (!r.ok()) {
    // reset, an unusable cursor (400), or the root vanished: start over.
    if (r.Has("reset") || r.Has("not_found") || (r.error && r.error->http_status == 400)) {
      Log().info("listing cursor for '{}' is no longer usable ({}); listing everything again", root,
                 r.status.message());
      return FullList(root);
    }
    return r.status;
  }
  auto page = ParseListFolderResult(r.result);
  if (!page.ok()) return page.status();
  ListResult out;
  if (Status s = Drain(*this, core::CloudKey(unicode::ToNfc(root)), std::move(*page), &out);
      !s.ok())
    return s;
  return out;
}

}  // namespace filesync::dropbox
