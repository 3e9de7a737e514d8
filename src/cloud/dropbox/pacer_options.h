// PacerOptions: the retry and rate limits of a Dropbox account's Pacer (pacer.h), set through
// DropboxOptions::pacer.
#pragma once

#include <chrono>
#include <cstdint>

namespace filesync::dropbox {

struct PacerOptions {
  // 5xx, timeouts, connection resets: 1, 2, 4, 8, 16 s (before jitter), then give up.
  std::chrono::milliseconds backoff_base{1000};
  std::chrono::milliseconds backoff_cap{16000};
  int max_attempts = 5;
  // too_many_write_operations without Retry-After: 1 s doubling to 60 s, about 8 tries.
  std::chrono::milliseconds write_backoff_base{1000};
  std::chrono::milliseconds write_backoff_cap{60000};
  int max_write_attempts = 8;
  // 429 tries before a request gives up (each one waits the server's Retry-After).
  int max_rate_limited_attempts = 20;
  // A 429 with no hint at all waits this long (what the official SDK does).
  std::chrono::milliseconds default_retry_after{5000};
  double min_rate = 1.0;             // requests/s floor after repeated decreases
  double recovery_per_second = 1.0;  // additive increase, requests/s per second
  std::uint64_t seed = 0;            // jitter seed; 0 = random
};

}  // namespace filesync::dropbox
