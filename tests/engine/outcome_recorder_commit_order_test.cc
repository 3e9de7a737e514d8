// OutcomeRecorder: batches of recorded outcomes reach the state store in the order they were taken.
// Workers take a batch under the recorder's lock, then sync the cloud and commit without it; a
// worker that takes the next batch must not get its commit in before the earlier one.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>

#include "cloud/local/local_cloud.h"
#include "engine/outcome_recorder.h"
#include "engine/sync_engine.h"
#include "store/state_store.h"

namespace fs = std::filesystem;

namespace filesync::engine {
namespace {

// The local backend, one file per Upload() call and slowed down, so uploads outlast several of
// the recorder's time-based commits; counts Flush() calls (one per applied batch).
class SlowCloud : public cloud::Cloud {
 public:
  explicit SlowCloud(fs::path root) : inner_(std::move(root)) {}
  std::string_view name() const override { return inner_.name(); }
  cloud::Capabilities capabilities() const override {
    cloud::Capabilities caps = inner_.capabilities();
    caps.max_batch_files = 1;
    return caps;
  }
  Result<cloud::ListResult> List(const std::string& root, const std::string& cursor) override {
    return inner_.List(root, cursor);
  }
  Result<std::string> BeginPass(const cloud::PassStart& start) override {
    return inner_.BeginPass(start);
  }
  Result<std::string> FolderIdentity(const std::string& path) override {
    return inner_.FolderIdentity(path);
  }
  Status CreateFolder(const std::string& path) override { return inner_.CreateFolder(path); }
  Status CreateFolderFrom(const cloud::FolderItem& item) override {
    return inner_.CreateFolderFrom(item);
  }
  std::vector<Result<cloud::UploadedFile>> Upload(std::span<const cloud::UploadItem> items,
                                                  const cloud::Transfer& transfer) override {
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
    return inner_.Upload(items, transfer);
  }
  std::vector<Status> Delete(std::span<const std::string> paths) override {
    return inner_.Delete(paths);
  }
  Result<cloud::RemoteEntry> Move(const std::string& from, const std::string& to) override {
    return inner_.Move(from, to);
  }
  Status Flush() override {
    std::lock_guard lock(mu);
    ++flushes;
    return inner_.Flush();
  }

  std::mutex mu;
  int flushes = 0;  // guarded by mu

 private:
  cloud::LocalCloud inner_;
};

TEST(OutcomeRecorderCommitOrder, ABatchTakenLaterIsNotAppliedFirst) {
  const fs::path base =
      fs::temp_directory_path() / ("filesync-recorder-order-" + std::to_string(getpid()));
  fs::remove_all(base);
  const fs::path client = base / "data";
  fs::create_directories(client);
  fs::create_directories(base / "cloud");
  // 2 workers x 25 ms per file: about 6 s of uploads, past the 2 s commit interval twice.
  constexpr int kFiles = 480;
  for (int i = 0; i < kFiles; ++i) std::ofstream(client / ("f" + std::to_string(i))) << i;

  EngineOptions options;
  options.dirs = {{client.string(), "/data"}};
  options.workers = 2;
  auto store = store::StateStore::Open(base / "state", nullptr);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  SlowCloud cloud(base / "cloud");
  SyncEngine engine(options, cloud, **store);

  // The first batch a worker takes during the uploads is held back until the next batch has
  // been taken, and a little longer: a commit of that next batch meanwhile is out of order.
  std::mutex mu;
  std::condition_variable cv;
  std::uint64_t first_worker_batch = 0;  // 0: none yet (batch 0 is the main thread's listing)
  bool next_taken = false;
  int flushes_when_next_taken = -1;
  int flushes_when_released = -1;
  engine.TEST_recorder().TEST_SetCommitHook([&](std::uint64_t batch) {
    std::unique_lock lock(mu);
    if (batch == 0) return;
    if (first_worker_batch == 0) {
      first_worker_batch = batch;
      const bool seen = cv.wait_for(lock, std::chrono::seconds(20), [&] { return next_taken; });
      lock.unlock();
      if (seen) std::this_thread::sleep_for(std::chrono::milliseconds(300));
      std::lock_guard flushes(cloud.mu);
      flushes_when_released = cloud.flushes;
      return;
    }
    if (batch == first_worker_batch + 1) {
      {
        std::lock_guard flushes(cloud.mu);
        flushes_when_next_taken = cloud.flushes;
      }
      next_taken = true;
      cv.notify_all();
    }
  });

  const PassReport report = engine.RunPass({});
  ASSERT_TRUE(report.converged()) << report.ToJson();
  ASSERT_NE(first_worker_batch, 0u) << "no worker committed during the uploads";
  ASSERT_NE(flushes_when_next_taken, -1) << "no second worker batch while the first was held";
  EXPECT_EQ(flushes_when_released, flushes_when_next_taken)
      << "batch " << first_worker_batch + 1 << " was applied while batch " << first_worker_batch
      << ", taken before it, still waited";

  // And the outcome is all recorded.
  const auto roots = (*store)->Roots();
  ASSERT_TRUE(roots.ok()) << roots.status().ToString();
  std::size_t files = 0;
  for (const auto& r : *roots) files += r.file_records;
  EXPECT_EQ(files, static_cast<std::size_t>(kFiles));
  fs::remove_all(base);
}

}  // namespace
}  // namespace filesync::engine
