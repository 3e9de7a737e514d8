// ParallelFor: one fan-out of independent work items over a few threads, for the places that
// hash or upload many files or chunks at once.
//
// Runs fn(i) once for every i in [0, n) on up to `threads` threads (at least one, and no more
// than n), the calling thread included, and returns when every call has returned. Threads take
// the next index from a shared counter, so a slow item holds up no other. fn must be safe to call
// concurrently; to stop early, have it return at once (e.g. after checking a stop flag).
// Thread safety: reentrant; the threads are started and joined inside each call.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <thread>
#include <vector>

namespace filesync::core {

template <typename Fn>
void ParallelFor(std::size_t n, int threads, Fn&& fn) {
  std::atomic<std::size_t> next{0};
  auto worker = [&] {
    for (std::size_t i = next.fetch_add(1); i < n; i = next.fetch_add(1)) fn(i);
  };
  const std::size_t count = std::min(n, static_cast<std::size_t>(std::max(threads, 1)));
  std::vector<std::thread> helpers;
  helpers.reserve(count > 0 ? count - 1 : 0);
  for (std::size_t t = 1; t < count; ++t) helpers.emplace_back(worker);
  worker();
  for (std::thread& t : helpers) t.join();
}

}  // namespace filesync::core
