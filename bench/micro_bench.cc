// Micro-benchmarks for the three hot loops of a pass, each reported per byte or per item:
//  - ContentHash: the Dropbox content hash over an in-memory buffer (bytes/s). Compare with
//    `openssl speed -evp sha256` on one core: the hash is SHA-256 twice over (blocks, then the
//    concatenated block digests), so it should run at SHA-256 speed.
//  - HashFd: the same hash of a file in the page cache, as `filesync hash` and a pass do it: on
//    one thread (read, then hash), and with the file's 4 MiB blocks hashed on all cores.
//  - HashFiles: eight 32 MiB files, one at a time (each on every idle core) and two at a time
//    (each on its own core), wall-clock bytes/s.
//  - MakePlan: the planner's diff over 1,000,000 entries (1,000 folders of 1,000 files) that are
//    in sync, and with 1% of the files changed (items/s = entries/s).
//  - EventProducer: push/pop of upload events through the bounded queue, on one thread and
//    with a producer thread feeding two consumer threads (items/s).
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "hash/content_hash.h"
#include "pipeline/event_producer.h"
#include "plan/planner.h"

namespace filesync {
namespace {

using core::EntryKind;

// Appends instead of `"d" + std::to_string(n)`: GCC 12 at -O3 reports a false -Wrestrict on
// operator+(const char*, std::string&&).
std::string Name(const char* prefix, std::size_t n, const char* suffix = "") {
  std::string name(prefix);
  name += std::to_string(n);
  name += suffix;
  return name;
}

// Deterministic filler: the hash does not care about the bytes, only that they are not sparse.
std::string Buffer(std::size_t size) {
  std::string data(size, '\0');
  std::uint64_t x = 0x9E3779B97F4A7C15ULL;
  for (char& c : data) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c = static_cast<char>(x & 0xFF);
  }
  return data;
}

void BM_ContentHash(benchmark::State& state) {
  const std::string data = Buffer(static_cast<std::size_t>(state.range(0)));
  for (auto _ : state) {
    hash::Digest digest = hash::HashBytes(data);
    benchmark::DoNotOptimize(digest);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_ContentHash)->Arg(4 << 20)->Arg(64 << 20)->Unit(benchmark::kMillisecond);

// Files the hash benchmarks read, written once into a temporary directory (under $TMPDIR or
// /tmp) and removed at exit.
class ScratchFiles {
 public:
  static ScratchFiles& Get() {
    static ScratchFiles files;
    return files;
  }
  ~ScratchFiles() {
    std::error_code ignored;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ignored);
  }
  ScratchFiles(const ScratchFiles&) = delete;
  ScratchFiles& operator=(const ScratchFiles&) = delete;

  // The path of file `index` of `size` bytes, written on first use.
  std::string File(std::size_t size, std::size_t index) {
    const std::string name = Name("f", size, Name("-", index).c_str());
    for (const auto& path : paths_) {
      if (path.ends_with("/" + name)) return path;
    }
    const std::string path = dir_ + "/" + name;
    std::string data = Buffer(size);
    data[0] = static_cast<char>(index);  // no two files alike
    std::ofstream(path, std::ios::binary).write(data.data(), static_cast<std::streamsize>(size));
    return paths_.emplace_back(path);
  }

 private:
  ScratchFiles() {
    const char* tmp = std::getenv("TMPDIR");
    std::string tmpl =
        std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/filesync_micro_XXXXXX";
    if (mkdtemp(tmpl.data()) != nullptr) dir_ = tmpl;
  }
  std::string dir_;
  std::vector<std::string> paths_;
};

// Args: file size, threads (0: HashFd's default, every idle core).
void BM_HashFd(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  const int fd = open(ScratchFiles::Get().File(size, 0).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    state.SkipWithError("cannot create the scratch file");
    return;
  }
  for (auto _ : state) {
    auto hashed = hash::HashFd(fd, static_cast<unsigned>(state.range(1)));
    if (!hashed.ok()) state.SkipWithError(hashed.status().ToString().c_str());
    benchmark::DoNotOptimize(hashed);
  }
  close(fd);
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * state.range(0));
}
// Real time: the helper threads' CPU time is not the calling thread's.
BENCHMARK(BM_HashFd)
    ->ArgNames({"bytes", "threads"})
    ->Args({16 << 10, 0})
    ->Args({256 << 20, 1})
    ->Args({256 << 20, 0})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void BM_HashFiles(benchmark::State& state) {
  constexpr std::size_t kFiles = 8;
  constexpr std::size_t kSize = 32 << 20;
  std::vector<std::string> paths;
  for (std::size_t i = 0; i < kFiles; ++i) paths.push_back(ScratchFiles::Get().File(kSize, i));
  for (auto _ : state) {
    auto results = hash::HashFiles(paths, static_cast<unsigned>(state.range(0)));
    for (const auto& r : results) {
      if (!r.ok()) state.SkipWithError(r.status().ToString().c_str());
    }
    benchmark::DoNotOptimize(results);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(kFiles * kSize));
}
BENCHMARK(BM_HashFiles)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

struct PlanInput {
  std::vector<plan::LocalItem> local;
  std::vector<plan::RemoteItem> remote;
  std::vector<plan::PreviousItem> previous;
};

// `files` files in folders of 1,000; every `change_every`-th file (0: none) has new content
// locally, as a pass sees it after hashing.
PlanInput MakeInput(std::size_t files, std::size_t change_every) {
  PlanInput in;
  const std::size_t folders = (files + 999) / 1000;
  in.local.reserve(files + folders);
  in.remote.reserve(files + folders);
  in.previous.reserve(files + folders);
  std::uint64_t inode = 100;
  for (std::size_t d = 0; d < folders; ++d) {
    const std::string dir = Name("d", d);
    plan::LocalItem folder;
    folder.path = dir;
    folder.kind = EntryKind::kFolder;
    folder.identity = {.size = 0, .mtime_ns = 1, .ctime_ns = 1, .inode = ++inode, .device = 1};
    in.local.push_back(folder);
    in.remote.push_back({.path = dir, .kind = EntryKind::kFolder});
    in.previous.push_back({.path = dir, .kind = EntryKind::kFolder, .identity = folder.identity});
    for (std::size_t f = 0; f < 1000 && d * 1000 + f < files; ++f) {
      const std::size_t n = d * 1000 + f;
      plan::LocalItem item;
      item.path = dir + Name("/f", f, ".bin");
      item.kind = EntryKind::kFile;
      item.identity = {.size = 1024 + n % 15360,
                       .mtime_ns = 1'000'000'000,
                       .ctime_ns = 1'000'000'000,
                       .inode = ++inode,
                       .device = 1};
      hash::Digest digest{};
      for (std::size_t b = 0; b < 8; ++b) digest[b] = static_cast<std::uint8_t>(n >> (8 * b));
      item.digest = digest;
      item.digest_known = true;
      in.remote.push_back({.path = item.path,
                           .kind = EntryKind::kFile,
                           .size = item.identity.size,
                           .digest = digest,
                           .digest_known = true});
      in.previous.push_back({.path = item.path,
                             .kind = EntryKind::kFile,
                             .identity = item.identity,
                             .digest = digest,
                             .digest_known = true});
      if (change_every != 0 && n % change_every == 0) item.digest[31] ^= 0xFF;
      in.local.push_back(std::move(item));
    }
  }
  return in;
}

void BM_MakePlan(benchmark::State& state) {
  const auto files = static_cast<std::size_t>(state.range(0));
  const auto change_every = static_cast<std::size_t>(state.range(1));
  const PlanInput in = MakeInput(files, change_every);
  plan::PlanOptions options;
  options.allow_mass_delete = true;
  std::size_t actions = 0;
  for (auto _ : state) {
    plan::Plan plan = plan::MakePlan(in.local, in.remote, in.previous, options);
    actions = plan.actions.size();
    benchmark::DoNotOptimize(plan);
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(in.local.size()));
  state.counters["actions"] = static_cast<double>(actions);
}
BENCHMARK(BM_MakePlan)
    ->ArgNames({"files", "change_every"})
    ->Args({1'000'000, 0})
    ->Args({1'000'000, 100})
    ->Unit(benchmark::kMillisecond)
    ->Iterations(3);

pipeline::Event UploadEvent(std::size_t n) {
  pipeline::Event e;
  e.action.kind = plan::ActionKind::kUpload;
  e.action.path = Name("d", n / 1000) + Name("/f", n % 1000, ".bin");
  e.action.identity.size = 4096;
  return e;
}

constexpr pipeline::BatchLimits kSingle{.max_files = 1, .max_bytes = 0, .small_file_limit = 0};

// One thread: fill the queue to capacity, then drain it.
void BM_EventProducerPushPop(benchmark::State& state) {
  constexpr std::size_t kCapacity = 4096;
  std::vector<pipeline::Event> events;
  for (std::size_t i = 0; i < kCapacity; ++i) events.push_back(UploadEvent(i));
  pipeline::EventProducer queue(kCapacity);
  for (auto _ : state) {
    for (const auto& e : events) queue.Push(e);
    for (std::size_t i = 0; i < kCapacity; ++i) queue.Done(queue.Pop(kSingle));
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(kCapacity));
}
BENCHMARK(BM_EventProducerPushPop)->Unit(benchmark::kMicrosecond);

// A producer thread pushes 100,000 events through a 4,096-slot queue to two consumer threads,
// as the monitor feeds the workers.
void BM_EventProducerThreaded(benchmark::State& state) {
  constexpr std::size_t kEvents = 100'000;
  std::vector<pipeline::Event> events;
  for (std::size_t i = 0; i < kEvents; ++i) events.push_back(UploadEvent(i));
  for (auto _ : state) {
    pipeline::EventProducer queue(4096);
    auto consume = [&queue] {
      for (;;) {
        auto batch = queue.Pop(kSingle);
        if (batch.empty()) return;
        queue.Done(batch);
      }
    };
    std::thread a(consume), b(consume);
    for (const auto& e : events) queue.Push(e);
    queue.Close();
    a.join();
    b.join();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(kEvents));
}
BENCHMARK(BM_EventProducerThreaded)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace filesync

BENCHMARK_MAIN();
