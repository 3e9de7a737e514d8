// How: slots are aligned to multiples of the interval since the epoch; a record spreads the
// bytes since the previous record over the slots it overlaps, in proportion to the overlap, and
// drops slots older than the window. The page itself is compiled in from status_page.html by
// cmake/EmbedFile.cmake (status_page_html.cc in the build tree).
#include "ops/status_page.h"

#include <algorithm>
#include <cmath>

namespace filesync::ops {

ThroughputHistory::ThroughputHistory(std::chrono::seconds interval, std::size_t slots)
    : interval_s_(static_cast<double>(std::max<std::int64_t>(1, interval.count()))),
      slots_(std::max<std::size_t>(1, slots)) {}

void ThroughputHistory::Record(std::chrono::system_clock::time_point now, double sent_total,
                               double hashed_total) {
  const double t = std::chrono::duration<double>(now.time_since_epoch()).count();
  core::MutexLock lock(&mu_);
  if (started_) {
    // A total that went down was reset (a restart of its source): count from the new value.
    const double sent = std::max(0.0, sent_total - last_sent_);
    const double hashed = std::max(0.0, hashed_total - last_hashed_);
    Spread(std::min(last_s_, t), t, sent, hashed);
  }
  started_ = true;
  last_s_ = t;
  last_sent_ = sent_total;
  last_hashed_ = hashed_total;
}

void ThroughputHistory::Spread(double from_s, double to_s, double sent, double hashed) {
  const double window = interval_s_ * static_cast<double>(slots_);
  const double span = to_s - from_s;
  const double start = std::max(from_s, to_s - window);  // older bytes fall out of the window
  const auto first = static_cast<std::int64_t>(std::floor(start / interval_s_));
  const auto last = static_cast<std::int64_t>(std::floor(to_s / interval_s_));
  for (std::int64_t k = first; k <= last; ++k) {
    const double share = span <= 0 ? 1.0
                                   : (std::min(to_s, static_cast<double>(k + 1) * interval_s_) -
                                      std::max(start, static_cast<double>(k) * interval_s_)) /
                                         span;
    if (share <= 0) continue;
    auto it = std::find_if(history_.rbegin(), history_.rend(),
                           [k](const Slot& s) { return s.index <= k; });
    Slot* slot = nullptr;
    if (it != history_.rend() && it->index == k) {
      slot = &*it;
    } else {
      slot = &*history_.insert(it.base(), Slot{.index = k});
    }
    slot->sent += sent * share;
    slot->hashed += hashed * share;
  }
  const std::int64_t newest = history_.empty() ? last : std::max(history_.back().index, last);
  while (!history_.empty() &&
         history_.front().index <= newest - static_cast<std::int64_t>(slots_)) {
    history_.pop_front();
  }
}

nlohmann::json ThroughputHistory::ToJson() const {
  core::MutexLock lock(&mu_);
  nlohmann::json out = {{"interval_s", interval_s_},
                        {"end_unix_ms", 0},
                        {"sent_bytes", nlohmann::json::array()},
                        {"hashed_bytes", nlohmann::json::array()}};
  if (!started_) return out;
  // The newest complete slot: the one under way would look like a sudden drop.
  const auto end = static_cast<std::int64_t>(std::floor(last_s_ / interval_s_)) - 1;
  out["end_unix_ms"] = static_cast<std::int64_t>(static_cast<double>(end + 1) * interval_s_ * 1000);
  auto it = history_.begin();
  for (std::int64_t k = end - static_cast<std::int64_t>(slots_) + 1; k <= end; ++k) {
    while (it != history_.end() && it->index < k) ++it;
    const bool here = it != history_.end() && it->index == k;
    out["sent_bytes"].push_back(here ? std::llround(it->sent) : 0);
    out["hashed_bytes"].push_back(here ? std::llround(it->hashed) : 0);
  }
  return out;
}

}  // namespace filesync::ops
