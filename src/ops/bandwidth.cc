// How: the schedule is a sorted list of (minute, rate) slots; the rate at a minute is the last
// slot at or before it, else the last slot of the day. The limiter is a token bucket whose
// balance may go negative by one piece: a caller takes a piece (at most 0.1 s of rate) whenever
// the balance is not negative, and everyone waits until the debt is earned back. Allowing that
// one piece of debt means a caller asking for a whole bucket is never starved by callers asking
// for small pieces, and the long-run rate stays exact. Waits are sliced (50 ms) so a cancel, a
// schedule change or a new time slot is seen promptly without anyone having to notify.
#include "ops/bandwidth.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <ctime>

namespace filesync::ops {
namespace {

constexpr std::uint64_t kKiB = 1024;
constexpr std::uint64_t kMiB = kKiB * 1024;
constexpr std::uint64_t kGiB = kMiB * 1024;
constexpr std::uint64_t kMinRate = kKiB;
constexpr std::uint64_t kMaxRate = 1024 * kGiB;
constexpr int kMinutesPerDay = 24 * 60;
constexpr double kBurstSeconds = 0.1;
constexpr double kMinPiece = 1024;
constexpr auto kWaitSlice = std::chrono::milliseconds(50);

constexpr std::string_view kRateFix =
    "write a rate like \"8MiB\", \"500k\" or \"off\", or a day timetable like \"08:00,1MiB "
    "19:00,off\"";

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

Status Invalid(const std::string& problem) {
  return Status::InvalidArgument(problem + "; " + std::string(kRateFix));
}

// "off" -> 0; "8MiB", "500k", "1.5M", "8MiB/s", "1048576" -> bytes per second.
Result<std::uint64_t> ParseRate(std::string_view text) {
  const std::string shown = "\"" + std::string(text) + "\"";
  if (Lower(text) == "off") return std::uint64_t{0};
  std::string_view rest = text;
  if (rest.ends_with("/s")) rest.remove_suffix(2);
  const std::size_t number_end = rest.find_first_not_of("0123456789.");
  const std::string_view number = rest.substr(0, number_end);
  const std::string unit =
      Lower(number_end == std::string_view::npos ? "" : rest.substr(number_end));
  double value = 0;
  const auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), value);
  if (number.empty() || ec != std::errc() || end != number.data() + number.size()) {
    return Invalid(shown + " is not a rate");
  }
  std::uint64_t multiplier = 0;
  if (unit.empty() || unit == "b") {
    multiplier = 1;
  } else if (unit == "k" || unit == "kib") {
    multiplier = kKiB;
  } else if (unit == "m" || unit == "mib") {
    multiplier = kMiB;
  } else if (unit == "g" || unit == "gib") {
    multiplier = kGiB;
  } else if (unit == "kb" || unit == "mb" || unit == "gb") {
    return Status::InvalidArgument(
        shown + " is ambiguous (1000 or 1024?); write " + std::string(number) +
        static_cast<char>(std::toupper(static_cast<unsigned char>(unit[0]))) +
        "iB (powers of 1024) or a number of bytes per second");
  } else {
    return Invalid(shown + " has an unknown unit \"" + unit + "\" (use B, KiB, MiB or GiB)");
  }
  const double bytes = value * static_cast<double>(multiplier);
  if (!(bytes < static_cast<double>(kMaxRate) + 1)) return Invalid(shown + " is above 1024 GiB/s");
  const auto rate = static_cast<std::uint64_t>(std::llround(bytes));
  if (rate == 0) {
    return Status::InvalidArgument(shown +
                                   " is no rate at all; write \"off\" for no limit, or a "
                                   "rate like \"8MiB\"");
  }
  if (rate < kMinRate) {
    return Status::InvalidArgument(
        shown + " is below 1 KiB/s (a number without a unit is bytes per second); write e.g. \"" +
        std::string(number) + "k\" for " + std::string(number) + " KiB/s, or \"off\"");
  }
  return rate;
}

// "08:00" -> 480.
Result<int> ParseTime(std::string_view text) {
  const std::size_t colon = text.find(':');
  int hour = -1;
  int minute = -1;
  const bool shape =
      colon != std::string_view::npos && (colon == 1 || colon == 2) && text.size() == colon + 3;
  if (shape) {
    const auto h = std::from_chars(text.data(), text.data() + colon, hour);
    const auto m = std::from_chars(text.data() + colon + 1, text.data() + text.size(), minute);
    if (h.ec != std::errc() || h.ptr != text.data() + colon || m.ec != std::errc() ||
        m.ptr != text.data() + text.size()) {
      hour = -1;
    }
  }
  if (hour < 0 || hour > 23 || minute < 0 || minute > 59) {
    return Invalid("\"" + std::string(text) + "\" is not a time of day from 00:00 to 23:59");
  }
  return hour * 60 + minute;
}

std::vector<std::string_view> Words(std::string_view text) {
  std::vector<std::string_view> words;
  std::size_t pos = 0;
  while (true) {
    pos = text.find_first_not_of(" \t", pos);
    if (pos == std::string_view::npos) break;
    const std::size_t end = std::min(text.find_first_of(" \t", pos), text.size());
    words.push_back(text.substr(pos, end - pos));
    pos = end;
  }
  return words;
}

}  // namespace

Result<BandwidthSchedule> BandwidthSchedule::Parse(std::string_view text) {
  const std::vector<std::string_view> words = Words(text);
  if (words.empty()) return Invalid("is empty");
  if (words.size() > 1 && text.find(',') == std::string_view::npos) {
    return Invalid("\"" + std::string(text) +
                   "\" has a space inside the rate (write \"8MiB\", not \"8 MiB\")");
  }
  if (words.size() == 1 && words[0].find(',') == std::string_view::npos) {
    auto rate = ParseRate(words[0]);
    if (!rate.ok()) return rate.status();
    return Constant(*rate);
  }
  BandwidthSchedule schedule;
  for (std::string_view word : words) {
    const std::size_t comma = word.find(',');
    if (comma == std::string_view::npos) {
      return Invalid("timetable entry \"" + std::string(word) + "\" is not TIME,RATE");
    }
    auto minute = ParseTime(word.substr(0, comma));
    if (!minute.ok()) return minute.status();
    auto rate = ParseRate(word.substr(comma + 1));
    if (!rate.ok()) return rate.status();
    for (const Slot& slot : schedule.slots) {
      if (slot.minute_of_day == *minute) {
        return Invalid("the time " + std::string(word.substr(0, comma)) + " appears twice");
      }
    }
    schedule.slots.push_back({*minute, *rate});
  }
  std::sort(schedule.slots.begin(), schedule.slots.end(),
            [](const Slot& a, const Slot& b) { return a.minute_of_day < b.minute_of_day; });
  return schedule;
}

BandwidthSchedule BandwidthSchedule::Constant(std::uint64_t bytes_per_second) {
  BandwidthSchedule schedule;
  if (bytes_per_second > 0) schedule.slots.push_back({0, bytes_per_second});
  return schedule;
}

std::uint64_t BandwidthSchedule::RateAt(int minute_of_day) const {
  if (slots.empty()) return 0;
  const Slot* current = &slots.back();  // before the first slot: the day wraps
  for (const Slot& slot : slots) {
    if (slot.minute_of_day > minute_of_day) break;
    current = &slot;
  }
  return current->bytes_per_second;
}

bool BandwidthSchedule::unlimited() const {
  return std::all_of(slots.begin(), slots.end(),
                     [](const Slot& s) { return s.bytes_per_second == 0; });
}

std::string BandwidthSchedule::ToString() const {
  if (slots.empty()) return "off";
  if (slots.size() == 1 && slots[0].minute_of_day == 0 && slots[0].bytes_per_second > 0) {
    return FormatRate(slots[0].bytes_per_second);
  }
  std::string out;
  for (const Slot& slot : slots) {
    char time[16];
    std::snprintf(time, sizeof time, "%02d:%02d", slot.minute_of_day / 60, slot.minute_of_day % 60);
    if (!out.empty()) out += ' ';
    out += std::string(time) + "," + FormatRate(slot.bytes_per_second);
  }
  return out;
}

std::string FormatRate(std::uint64_t bytes_per_second) {
  if (bytes_per_second == 0) return "off";
  for (const auto& [unit, name] : {std::pair{kGiB, "GiB"}, {kMiB, "MiB"}, {kKiB, "KiB"}}) {
    if (bytes_per_second % unit == 0) return std::to_string(bytes_per_second / unit) + name;
  }
  return std::to_string(bytes_per_second);
}

int LocalMinuteNow() {
  const std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  return (local.tm_hour * 60 + local.tm_min) % kMinutesPerDay;
}

// ---------------------------------------------------------------------------------------------

namespace {

double Piece(std::uint64_t rate) {
  return std::max(static_cast<double>(rate) * kBurstSeconds, kMinPiece);
}

}  // namespace

BandwidthLimiter::BandwidthLimiter(BandwidthSchedule schedule, MinuteSource minute)
    : minute_(std::move(minute)), schedule_(std::move(schedule)), refilled_(Clock::now()) {
  rate_ = schedule_.RateAt(minute_());
}

void BandwidthLimiter::Refill(Clock::time_point now) {
  const std::uint64_t rate = schedule_.RateAt(minute_());
  if (rate != rate_) {
    rate_ = rate;
    tokens_ = std::min(tokens_, Piece(rate_));
  }
  if (rate_ > 0) {
    const double earned =
        std::chrono::duration<double>(now - refilled_).count() * static_cast<double>(rate_);
    tokens_ = std::min(tokens_ + earned, Piece(rate_));
  }
  refilled_ = now;
}

Status BandwidthLimiter::Acquire(std::uint64_t bytes, const std::atomic<bool>* cancel) {
  core::MutexLock lock(&mu_);
  double remaining = static_cast<double>(bytes);
  while (true) {
    if (cancel != nullptr && cancel->load()) {
      return Status::Cancelled("stopped while waiting for the bandwidth limit");
    }
    Refill(Clock::now());
    if (rate_ == 0 || remaining <= 0) return Status::Ok();
    if (tokens_ >= 0) {
      const double piece = std::min(remaining, Piece(rate_));
      tokens_ -= piece;
      remaining -= piece;
      continue;
    }
    const std::chrono::duration<double> debt(-tokens_ / static_cast<double>(rate_));
    changed_.WaitFor(&mu_, std::min<std::chrono::duration<double>>(debt, kWaitSlice));
  }
}

void BandwidthLimiter::SetSchedule(BandwidthSchedule schedule) {
  {
    core::MutexLock lock(&mu_);
    Refill(Clock::now());
    schedule_ = std::move(schedule);
    Refill(Clock::now());
  }
  changed_.SignalAll();
}

std::uint64_t BandwidthLimiter::CurrentRate() {
  core::MutexLock lock(&mu_);
  Refill(Clock::now());
  return rate_;
}

}  // namespace filesync::ops
