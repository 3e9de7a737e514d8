// EventMonitor: the daemon's poll loop, with a scripted pass and wait (no real time): passes
// until a stop, poll_interval between them, a back-off from 60 s doubling to an hour after a
// configuration problem (never shorter than poll_interval, reset by a good pass), a reload or a
// pass that cannot run ends the loop.
#include "pipeline/event_monitor.h"

#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace filesync::pipeline {
namespace {

using std::chrono::seconds;

// Plays back `verdicts` (one per pass; nullopt: the pass cannot run), recording the waits.
struct Script {
  std::vector<std::optional<PassVerdict>> verdicts;
  std::size_t passes = 0;
  std::vector<seconds> waits;
  int reload_after_wait = -1;  // the wait (0-based) that returns "reload"
  bool stop = false;

  EventMonitor::Hooks Hooks() {
    return {.stop_requested = [this] { return stop; },
            .run_pass = [this]() -> std::optional<PassVerdict> {
              const auto v = verdicts.at(passes++);
              if (passes == verdicts.size()) stop = true;  // the last scripted pass, then a stop
              return v;
            },
            .wait =
                [this](seconds wait, const PassVerdict&) {
                  waits.push_back(wait);
                  return static_cast<int>(waits.size()) - 1 == reload_after_wait;
                }};
  }
};

const PassVerdict kGood{};
const PassVerdict kRefused{.config_error = "test: key 'dbx_token': refused"};

TEST(EventMonitor, PassesUntilAStopWithPollIntervalBetween) {
  Script s{.verdicts = {kGood, kGood, kGood}};
  EXPECT_EQ(EventMonitor(seconds(7), s.Hooks()).Run(), EventMonitor::End::kStopped);
  EXPECT_EQ(s.passes, 3u);
  // No wait after the pass during which the stop came.
  EXPECT_EQ(s.waits, (std::vector<seconds>{seconds(7), seconds(7)}));
}

TEST(EventMonitor, AConfigurationProblemBacksOffDoublingToAnHourAndAGoodPassResetsIt) {
  std::vector<std::optional<PassVerdict>> verdicts(9, kRefused);
  verdicts.push_back(kGood);
  verdicts.push_back(kRefused);
  verdicts.push_back(kGood);
  Script s{.verdicts = verdicts};
  EventMonitor(seconds(90), s.Hooks()).Run();
  // 60 s is below poll_interval (90 s): the longer one wins.
  EXPECT_EQ(s.waits,
            (std::vector<seconds>{seconds(90), seconds(120), seconds(240), seconds(480),
                                  seconds(960), seconds(1920), seconds(3600), seconds(3600),
                                  seconds(3600), seconds(90), seconds(90)}));
}

TEST(EventMonitor, AReloadEndsTheLoop) {
  Script s{.verdicts = {kGood, kGood, kGood}, .reload_after_wait = 0};
  EXPECT_EQ(EventMonitor(seconds(5), s.Hooks()).Run(), EventMonitor::End::kReload);
  EXPECT_EQ(s.passes, 1u);
}

TEST(EventMonitor, APassThatCannotRunEndsTheLoopAsFailed) {
  Script s{.verdicts = {kGood, std::nullopt, kGood}};
  EXPECT_EQ(EventMonitor(seconds(5), s.Hooks()).Run(), EventMonitor::End::kFailed);
  EXPECT_EQ(s.passes, 2u);
}

TEST(EventMonitor, NoPassStartsAfterAStopBeforeTheFirst) {
  Script s{.verdicts = {kGood}, .stop = true};
  EXPECT_EQ(EventMonitor(seconds(5), s.Hooks()).Run(), EventMonitor::End::kStopped);
  EXPECT_EQ(s.passes, 0u);
}

}  // namespace
}  // namespace filesync::pipeline
