#include "cli/progress.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "util/log.h"
#include "util/unicode.h"

namespace filesync::cli {
namespace {

constexpr std::chrono::milliseconds kRedrawEvery{250};
constexpr std::chrono::milliseconds kLogEvery{10000};

std::size_t TerminalColumns() {
  struct winsize ws {};
  if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  return 80;
}

std::string Eta(std::uint64_t bytes_done, std::uint64_t bytes_total, double rate) {
  if (rate <= 0 || bytes_total <= bytes_done) return "--";
  const auto seconds = static_cast<long long>(static_cast<double>(bytes_total - bytes_done) / rate);
  if (seconds < 60) return std::to_string(seconds) + "s";
  if (seconds < 3600)
    return std::to_string(seconds / 60) + "m" + std::to_string(seconds % 60) + "s";
  return std::to_string(seconds / 3600) + "h" + std::to_string(seconds % 3600 / 60) + "m";
}

}  // namespace

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

std::string ProgressLine(std::uint64_t files_done, std::uint64_t files_total,
                         std::uint64_t bytes_done, std::uint64_t bytes_total, double rate,
                         const std::string& current, std::size_t columns) {
  std::string line = std::to_string(files_done) + "/" + std::to_string(files_total) + " actions, " +
                     HumanBytes(bytes_done) + "/" + HumanBytes(bytes_total) + ", " +
                     HumanBytes(static_cast<std::uint64_t>(rate)) + "/s, ETA " +
                     Eta(bytes_done, bytes_total, rate);
  if (unicode::DisplayWidth(line) >= columns) {
    return std::string(unicode::FitColumns(line, columns == 0 ? 0 : columns - 1, false));
  }
  const std::string file = log::Printable(current);
  // Two spaces before the file, and the last column left free (some terminals wrap on it).
  const std::size_t room = columns - 1 - unicode::DisplayWidth(line);
  if (file.empty() || room < 6) return line;
  if (unicode::DisplayWidth(file) + 2 <= room) return line + "  " + file;
  return line + "  ..." + std::string(unicode::FitColumns(file, room - 5, true));
}

ProgressDisplay::ProgressDisplay(const engine::PassProgress& progress, std::function<void()> tick,
                                 std::chrono::milliseconds tick_every)
    : progress_(progress),
      tick_(std::move(tick)),
      tick_every_(tick_every),
      live_line_(isatty(STDERR_FILENO) == 1 && log::CurrentFormat() == log::Format::kText) {
  thread_ = std::thread([this] { Run(); });
}

ProgressDisplay::~ProgressDisplay() {
  {
    core::MutexLock lock(&mu_);
    done_ = true;
  }
  cv_.SignalAll();
  if (thread_.joinable()) thread_.join();
}

void ProgressDisplay::Run() {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  auto last_log = start;
  auto last_tick = start;
  std::uint64_t ticked_total = 0;  // files_total at the last tick: a new plan ticks at once
  bool drew = false;
  core::MutexLock lock(&mu_);
  for (;;) {
    const auto redraw_at = Clock::now() + kRedrawEvery;
    while (!done_ && Clock::now() < redraw_at) cv_.WaitFor(&mu_, redraw_at - Clock::now());
    if (done_) break;
    const auto now = Clock::now();
    const std::uint64_t files_total = progress_.files_total.load();
    if (tick_ && (now - last_tick >= tick_every_ || files_total != ticked_total)) {
      tick_();
      last_tick = now;
      ticked_total = files_total;
    }
    if (files_total == 0) continue;
    const std::uint64_t files_done = progress_.files_done.load();
    const std::uint64_t bytes_total = progress_.bytes_total.load();
    const std::uint64_t bytes_done = progress_.bytes_done.load();
    const double seconds = std::chrono::duration<double>(now - start).count();
    const double rate = seconds > 0 ? static_cast<double>(bytes_done) / seconds : 0;
    if (live_line_) {
      const std::string line = ProgressLine(files_done, files_total, bytes_done, bytes_total, rate,
                                            progress_.Current(), TerminalColumns());
      std::fprintf(stderr, "\r\033[K%s", line.c_str());
      drew = true;
    } else if (now - last_log >= kLogEvery) {
      last_log = now;
      const nlohmann::json fields{{"actions_done", files_done}, {"actions_total", files_total},
                                  {"bytes_done", bytes_done},   {"bytes_total", bytes_total},
                                  {"bytes_per_second", rate},   {"current", progress_.Current()}};
      log::Structured(*log::Get("progress"), spdlog::level::info,
                      ProgressLine(files_done, files_total, bytes_done, bytes_total, rate,
                                   progress_.Current(), SIZE_MAX),
                      fields);
    }
  }
  if (drew) std::fprintf(stderr, "\r\033[K");
}

}  // namespace filesync::cli
