// Uniform draws are made from the raw 64-bit output (not std::uniform_real_distribution, whose
// algorithm is implementation-defined), so sequences are stable across standard libraries.
#include "dropbox_emulator/faults.h"

#include <cstdlib>
#include <sstream>

namespace filesync::emulator {
namespace {

bool ParseProbability(const std::string& s, double* out) {
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size() || !(v >= 0.0 && v <= 1.0)) return false;
  *out = v;
  return true;
}

double Uniform(std::mt19937_64& rng) {
  return static_cast<double>(rng() >> 11) * (1.0 / 9007199254740992.0);  // [0, 1)
}

}  // namespace

std::optional<FaultSpec> ParseFaultSpec(const std::string& spec, std::string* error) {
  FaultSpec out;
  std::stringstream ss(spec);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty()) continue;
    const auto eq = item.find('=');
    if (eq == std::string::npos) {
      *error = "--faults: expected key=value, got '" + item + "'";
      return std::nullopt;
    }
    const std::string key = item.substr(0, eq);
    const std::string value = item.substr(eq + 1);
    bool ok = true;
    if (key == "429")
      ok = ParseProbability(value, &out.p429);
    else if (key == "500")
      ok = ParseProbability(value, &out.p500);
    else if (key == "503")
      ok = ParseProbability(value, &out.p503);
    else if (key == "drop")
      ok = ParseProbability(value, &out.drop);
    else if (key == "drop_after")
      ok = ParseProbability(value, &out.drop_after);
    else if (key == "latency") {
      const auto colon = value.find(':');
      char* end = nullptr;
      const std::string ms = colon == std::string::npos ? "" : value.substr(colon + 1);
      const long v = std::strtol(ms.c_str(), &end, 10);
      ok = colon != std::string::npos && ParseProbability(value.substr(0, colon), &out.latency_p) &&
           !ms.empty() && end == ms.c_str() + ms.size() && v >= 0 && v <= 600000;
      out.latency_ms = static_cast<int>(v);
    } else if (key == "routes") {
      std::stringstream routes(value);
      for (std::string route; std::getline(routes, route, '|');) {
        if (!route.empty()) out.routes.insert(route);
      }
      ok = !out.routes.empty();
    } else if (key == "max") {
      char* end = nullptr;
      const unsigned long long v = std::strtoull(value.c_str(), &end, 10);
      ok = !value.empty() && value.front() != '-' && end == value.c_str() + value.size();
      out.max = v;
    } else if (key == "seed") {
      char* end = nullptr;
      const unsigned long long v = std::strtoull(value.c_str(), &end, 10);
      ok = !value.empty() && end == value.c_str() + value.size();
      out.seed = v;
    } else {
      *error = "--faults: unknown key '" + key + "'";
      return std::nullopt;
    }
    if (!ok) {
      *error = "--faults: bad value for '" + key + "': '" + value + "'";
      return std::nullopt;
    }
  }
  return out;
}

FaultInjector::FaultInjector(FaultSpec spec, std::uint64_t default_seed)
    : spec_(spec), rng_(spec.seed.value_or(default_seed)) {}

FaultDecision FaultInjector::Draw(std::string_view route) {
  FaultDecision d;
  if (spec_.empty()) return d;
  if (!spec_.routes.empty() && !spec_.routes.contains(route)) return d;
  double u[6];
  {
    core::MutexLock lock(&mu_);
    if (spec_.max && faults_ >= *spec_.max) return d;
    for (double& v : u) v = Uniform(rng_);
    const bool any = u[0] < spec_.latency_p || u[1] < spec_.p429 || u[2] < spec_.p500 ||
                     u[3] < spec_.p503 || u[4] < spec_.drop || u[5] < spec_.drop_after;
    if (any) ++faults_;
  }
  if (u[0] < spec_.latency_p) d.latency_ms = spec_.latency_ms;
  if (u[1] < spec_.p429)
    d.status = 429;
  else if (u[2] < spec_.p500)
    d.status = 500;
  else if (u[3] < spec_.p503)
    d.status = 503;
  else if (u[4] < spec_.drop)
    d.drop_before = true;
  else if (u[5] < spec_.drop_after)
    d.drop_after = true;
  return d;
}

}  // namespace filesync::emulator
