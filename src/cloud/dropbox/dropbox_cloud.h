// DropboxCloud: cloud::Cloud on the Dropbox HTTP API v2 (reference: shared dropbox-api.md).
//
// Beyond cloud::Cloud's promises:
//  - List: "" cursor -> recursive list_folder (+ continue until has_more is false), complete;
//    a cursor -> list_folder/continue only, so a pass with no change costs ONE request. A reset
//    or unusable cursor falls back to a full listing (complete); a missing root is an empty
//    complete listing, a file at the root kConflict. Deletes of the root itself are reported
//    like any other (the engine then lists again). Paths are path_display; compare them with
//    core::CloudKey.
//  - Upload, small files (<= small_file_limit): start_batch + ONE append_batch carrying every
//    file + ONE finish_batch_v2 = 3 requests per batch. append_batch is split only to keep a
//    request under 150 MiB, or its Dropbox-API-Arg header (~110 bytes per file) under a limit:
//    max_arg_header_bytes, or, when that is 0, 8000 bytes once the server refused a longer one.
//    With append_batch = false: upload_session/start(close) per file + one finish_batch_v2. Large
//    files: a concurrent session, chunk_size appends sent max_parallel_chunks at a time, committed
//    in the same finish_batch_v2; progress lives in the SessionStore so a new DropboxCloud resumes
//    with only the missing chunks (sessions older than 6.5 days are started again). Each file is
//    read with O_NOFOLLOW and checked against item.expected before and after; a difference, or a
//    commit whose size/content_hash differs from what was read, is kChanged. Only the failed
//    entries of a batch are retried. A replayed append whose bytes had arrived (its session
//    closed, or at the right offset) counts as sent; a session that lost them is kTransient.
//    Transfer::cancel abandons requests in flight within about a second and commits nothing:
//    every file of the call is kCancelled (a large file's session stays stored, to resume).
//  - A refused credential is kAuth, its message naming dbx_token or dbx_refresh_token and
//    `filesync auth` (never the token).
//  - Delete: delete_v2 for one path, else delete_batch (<= 1000) + delete_batch/check polling;
//    not_found is success. Move: move_v2; a case-only rename goes through a temporary name.
//  - MoveBatch: move_batch_v2 (<= 1000 entries, autorename and ownership transfer off) +
//    move_batch/check_v2 polling, one batch at a time per account (like commits); only the
//    entries that hit too_many_write_operations are sent again. A failed entry gets the Status
//    Move() would have given; from_lookup/not_found with the target in place counts as done.
//    Case-only renames inside a batch go through Move() one at a time; a lone move is a move_v2.
//  - Pacing, retries and token refresh are shared by all calls of one instance (one Pacer).
//    It owns its retries (Capabilities::retries_transient): 5xx and network errors, 429s and
//    write contention are retried to the PacerOptions limits, a file whose upload session lost
//    its bytes is sent again once in a new session; what it then returns is final for the call.
//  - Capabilities: incremental listing, case-insensitive paths, NameRules::kDropbox.
// Thread-safe: Upload/Delete/Move/MoveBatch/List may run concurrently.
// The implementation is split by concern in this directory (dropbox_impl.h has the map).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "cloud/cloud.h"
#include "cloud/dropbox/auth.h"
#include "cloud/dropbox/http_client.h"
#include "cloud/dropbox/pacer_options.h"
#include "cloud/dropbox/session_store.h"
#include "core/clock.h"

namespace filesync::dropbox {

struct DropboxOptions {
  std::string api_url = "https://api.dropboxapi.com";
  std::string content_url = "https://content.dropboxapi.com";
  std::string notify_url = "https://notify.dropboxapi.com";  // longpoll host; cloud::Cloud has no
                                                             // longpoll call yet, so unused today

  // Credentials: a fixed access token, or refresh_token + app_key (+ app_secret). A non-null
  // `tokens` overrides both.
  std::string access_token;   // secret
  std::string refresh_token;  // secret
  std::string app_key;
  std::string app_secret;  // secret
  std::shared_ptr<TokenProvider> tokens;

  std::string ca_file;                       // extra CA bundle to trust; TLS is always verified
  std::shared_ptr<HttpTransport> transport;  // null: libcurl
  core::Clock* clock = nullptr;              // null: core::SystemClock()

  bool append_batch = true;  // false: upload_session/start(close=true) per small file
  std::uint64_t chunk_size = 16 * 1024 * 1024;  // large-file chunk, a multiple of 4 MiB
  int max_parallel_chunks = 4;
  std::uint64_t small_file_limit = 8 * 1024 * 1024;
  std::size_t max_batch_files = 1000;
  std::uint64_t max_batch_bytes = 128 * 1024 * 1024;
  // Split append_batch so no Dropbox-API-Arg header is longer than this. 0: send one header
  // for the whole batch until a server refuses one (400/413/431), then keep under 8000 bytes.
  std::size_t max_arg_header_bytes = 0;
  SessionStore* sessions = nullptr;         // null: large uploads cannot resume after a restart
  std::chrono::hours session_max_age{156};  // 6.5 days; Dropbox keeps sessions 7

  PacerOptions pacer;                          // backoff base, attempts, ...
  std::chrono::milliseconds poll_initial{50};  // batch job checks: first wait, x1.5 each time
  std::chrono::milliseconds poll_max{2000};
  std::chrono::seconds poll_limit{600};
};

// The linked account (users/get_current_account).
struct DropboxAccount {
  std::string account_id;
  std::string display_name;
  std::string email;
};

class Pacer;

class DropboxCloud : public cloud::Cloud {
 public:
  // Throws std::invalid_argument on unusable options (no credentials, bad chunk size): a
  // start-up configuration error.
  explicit DropboxCloud(DropboxOptions options);
  ~DropboxCloud() override;
  DropboxCloud(const DropboxCloud&) = delete;
  DropboxCloud& operator=(const DropboxCloud&) = delete;

  [[nodiscard]] std::string_view name() const override { return "dropbox"; }
  [[nodiscard]] cloud::Capabilities capabilities() const override;
  Result<cloud::ListResult> List(const std::string& root, const std::string& cursor) override;
  Status CreateFolder(const std::string& path) override;
  std::vector<Result<cloud::UploadedFile>> Upload(std::span<const cloud::UploadItem> items,
                                                  const cloud::Transfer& transfer) override;
  std::vector<Status> Delete(std::span<const std::string> paths) override;
  Result<cloud::RemoteEntry> Move(const std::string& from, const std::string& to) override;
  std::vector<Result<cloud::RemoteEntry>> MoveBatch(
      std::span<const cloud::MovePair> moves) override;
  Status Flush() override { return Status::Ok(); }

  // users/get_current_account: checks the token and names the linked account.
  Result<DropboxAccount> CurrentAccount();

  // Test hooks. After `chunks` large-file chunks were appended by this instance, further chunk
  // work stops and Upload returns kCancelled for the file (an interrupted process); 0: never.
  void TEST_StopAfterChunks(int chunks);
  // The account-wide pacer (pacer.h), whose state tests check.
  [[nodiscard]] const Pacer& TEST_pacer() const;

  struct Impl;  // dropbox_impl.h, internal to this directory

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace filesync::dropbox
