#include "cli/progress.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "util/log.h"

namespace filesync::cli {

std::string HumanBytes(std::uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  auto value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024.0 && unit < 4) {
    value /= 1024.0;
    ++unit;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, unit == 0 ? "%.0f %s" : "%.1f %s", value, units[unit]);
  return buf;
}

ProgressDisplay::ProgressDisplay(const pipeline::PassProgress& progress, bool enabled)
    : progress_(progress), tty_(isatty(STDERR_FILENO) == 1) {
  if (enabled) thread_ = std::thread([this] { Run(); });
}

ProgressDisplay::~ProgressDisplay() {
  {
    std::lock_guard lock(mu_);
    done_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void ProgressDisplay::Run() {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const auto interval = tty_ ? std::chrono::milliseconds(250) : std::chrono::milliseconds(10000);
  bool drew = false;
  std::unique_lock lock(mu_);
  while (!cv_.wait_for(lock, interval, [&] { return done_; })) {
    const std::uint64_t files_total = progress_.files_total.load();
    if (files_total == 0) continue;
    const std::uint64_t files_done = progress_.files_done.load();
    const std::uint64_t bytes_total = progress_.bytes_total.load();
    const std::uint64_t bytes_done = progress_.bytes_done.load();
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    const double rate = seconds > 0 ? static_cast<double>(bytes_done) / seconds : 0;
    std::string eta = "--";
    if (rate > 0 && bytes_total > bytes_done) {
      eta = std::to_string(
                static_cast<long long>(static_cast<double>(bytes_total - bytes_done) / rate)) +
            "s";
    }
    const std::string line = std::to_string(files_done) + "/" + std::to_string(files_total) +
                             " actions, " + HumanBytes(bytes_done) + "/" + HumanBytes(bytes_total) +
                             ", " + HumanBytes(static_cast<std::uint64_t>(rate)) + "/s, ETA " + eta;
    if (tty_) {
      std::fprintf(stderr, "\r\033[K%s", line.c_str());
      drew = true;
    } else {
      log::Get("progress")->info("{}", line);
    }
  }
  if (drew) std::fprintf(stderr, "\r\033[K");
}

}  // namespace filesync::cli
