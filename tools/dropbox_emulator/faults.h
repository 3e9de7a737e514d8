// Fault injection for the emulator (--faults SPEC).
//
// SPEC is a comma-separated list of key=value:
//   429=P         answer 429 too_many_requests (Retry-After: 1) with probability P
//   500=P, 503=P  answer that status (plain text)
//   drop=P        close the connection without any response, before the route runs
//   drop_after=P  run the route, then close the connection without sending the response
//   latency=P:MS  sleep MS milliseconds first, with probability P
//   seed=N        PRNG seed (default: --seed, else 1)
//   routes=R|R... only these routes (as in /2/<route>, '|'-separated) are faulted; others draw
//                 nothing
//   max=N         at most N faults in all (latency included), then none
// Example: "429=0.05,500=0.05,503=0.05,drop=0.02,latency=0.1:200,seed=7";
// "drop_after=1,routes=files/upload_session/append_batch,max=1" loses exactly one response.
//
// Every request (of `routes`, when set) draws the same number of values from one seeded PRNG
// (std::mt19937_64) in arrival order, so a fixed seed and the same request sequence give the
// same faults.
// Thread safety: Draw() locks an internal mutex.
#pragma once

#include <cstdint>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>

#include "core/thread_annotations.h"

namespace filesync::emulator {

struct FaultSpec {
  double p429 = 0;
  double p500 = 0;
  double p503 = 0;
  double drop = 0;
  double drop_after = 0;
  double latency_p = 0;
  int latency_ms = 0;
  std::optional<std::uint64_t> seed;
  std::set<std::string, std::less<>> routes;  // empty: every route
  std::optional<std::uint64_t> max;           // faults in all
  [[nodiscard]] bool empty() const {
    return p429 == 0 && p500 == 0 && p503 == 0 && drop == 0 && drop_after == 0 && latency_p == 0;
  }
};

// Parses SPEC; on error returns nullopt and sets *error to a one-line message.
std::optional<FaultSpec> ParseFaultSpec(const std::string& spec, std::string* error);

// What to do with one request.
struct FaultDecision {
  int latency_ms = 0;  // sleep first
  int status = 0;      // 429, 500 or 503 instead of running the route (0 = none)
  bool drop_before = false;
  bool drop_after = false;
};

class FaultInjector {
 public:
  FaultInjector(FaultSpec spec, std::uint64_t default_seed);
  // What to do with one request to `route` ("" matches no `routes` filter).
  FaultDecision Draw(std::string_view route = {}) EXCLUDES(mu_);
  [[nodiscard]] bool enabled() const { return !spec_.empty(); }

 private:
  FaultSpec spec_;
  core::Mutex mu_;
  std::mt19937_64 rng_ GUARDED_BY(mu_);
  std::uint64_t faults_ GUARDED_BY(mu_) = 0;  // faults made so far
};

}  // namespace filesync::emulator
