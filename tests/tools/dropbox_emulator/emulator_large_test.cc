// Large transfers: a 1 GiB file through a concurrent upload session (streamed to disk, never
// held in the emulator's memory) and the 150 MiB per-request limit.
#include <fstream>
#include <sstream>
#include <thread>

#include "emulator_fixture.h"
#include "hash/content_hash.h"

namespace filesync::emulator_test {
namespace {

using LargeTest = EmulatorTest;

// Peak resident set of `pid` in KiB (VmHWM), or 0 if unknown.
std::uint64_t PeakRssKiB(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) {
      std::istringstream ss(line.substr(6));
      std::uint64_t kib = 0;
      ss >> kib;
      return kib;
    }
  }
  return 0;
}

TEST_F(LargeTest, OneGibConcurrentSessionIsStreamedToDisk) {
  constexpr std::uint64_t kChunk = 8 * kMiB;
  constexpr std::uint64_t kTotal = 1024 * kMiB;  // sparse source: all zero bytes
  auto start = Upload("files/upload_session/start", {{"session_type", "concurrent"}}, "");
  ASSERT_EQ(start.status, 200) << start.body;
  const std::string id = start.json()["session_id"];
  const std::string zeros(kChunk, '\0');
  std::atomic<std::uint64_t> next{0};
  std::atomic<int> failures{0};
  std::vector<std::thread> workers;
  for (int w = 0; w < 4; ++w) {
    workers.emplace_back([&] {
      for (std::uint64_t off = next.fetch_add(kChunk); off < kTotal; off = next.fetch_add(kChunk)) {
        const bool last = off + kChunk == kTotal;
        auto r =
            Upload("files/upload_session/append_v2",
                   {{"cursor", {{"session_id", id}, {"offset", off}}}, {"close", last}}, zeros);
        if (r.status != 200) ++failures;
      }
    });
  }
  for (auto& t : workers) t.join();
  ASSERT_EQ(failures.load(), 0);
  auto done = Upload("files/upload_session/finish",
                     {{"cursor", {{"session_id", id}, {"offset", kTotal}}},
                      {"commit", {{"path", "/huge.bin"}, {"mode", "overwrite"}}}},
                     "");
  ASSERT_EQ(done.status, 200) << done.body;
  EXPECT_EQ(done.json()["size"], kTotal);
  hash::ContentHasher hasher;
  for (std::uint64_t i = 0; i < kTotal / kChunk; ++i) hasher.Update(zeros);
  EXPECT_EQ(done.json()["content_hash"], hash::ToHex(hasher.Finish()));
  const std::uint64_t peak = PeakRssKiB(emu_.pid());
  EXPECT_GT(peak, 0u);
  EXPECT_LT(peak, 256u * 1024) << "emulator peak RSS " << peak << " KiB";
}

TEST_F(LargeTest, RequestsOver150MibArePayloadTooLarge) {
  constexpr std::size_t kSize = 150 * kMiB + 1;
  auto c = Client();
  httplib::Headers h = Auth();
  h.emplace("Dropbox-API-Arg", R"({"path":"/too-big.bin"})");
  const std::string block(kMiB, 'z');
  auto provider = [&](std::size_t offset, std::size_t length, httplib::DataSink& sink) {
    const std::size_t n = std::min({length, block.size(), kSize - offset});
    sink.write(block.data(), n);
    return true;
  };
  auto r = From(c->Post("/2/files/upload", h, kSize, provider, "application/octet-stream"));
  EXPECT_EQ(Expect409(r), "payload_too_large");
  EXPECT_EQ(Expect409(Rpc("files/get_metadata", {{"path", "/too-big.bin"}})), "path/not_found");
  // The connection and the server are still fine afterwards.
  EXPECT_EQ(Rpc("check/user", {{"query", "ok"}}).status, 200);
}

}  // namespace
}  // namespace filesync::emulator_test
