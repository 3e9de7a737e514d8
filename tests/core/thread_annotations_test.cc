#include "core/thread_annotations.h"

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace filesync::core {
namespace {

// Builds with every annotation in this compiler's mode (no-ops off Clang) and locks for real.
class Counter {
 public:
  void Add() EXCLUDES(mu_) {
    MutexLock lock(&mu_);
    AddLocked();
  }
  int Get() EXCLUDES(mu_) {
    MutexLock lock(&mu_);
    return n_;
  }
  void Publish() EXCLUDES(mu_) {
    MutexLock lock(&mu_);
    ready_ = true;
    ready_cv_.SignalAll();
  }
  void AwaitPublished() EXCLUDES(mu_) {
    MutexLock lock(&mu_);
    while (!ready_) ready_cv_.Wait(&mu_);
  }

 private:
  void AddLocked() REQUIRES(mu_) { ++n_; }

  Mutex mu_;
  CondVar ready_cv_;
  int n_ GUARDED_BY(mu_) = 0;
  bool ready_ GUARDED_BY(mu_) = false;
};

TEST(ThreadAnnotations, MutexLockExcludesOtherThreads) {
  Counter counter;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&counter] {
      for (int i = 0; i < 20000; ++i) counter.Add();
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(counter.Get(), 80000);
}

TEST(ThreadAnnotations, CondVarWakesAWaiter) {
  Counter counter;
  std::thread waiter([&counter] { counter.AwaitPublished(); });
  counter.Publish();
  waiter.join();  // hangs (and the test times out) if the signal is lost
  SUCCEED();
}

TEST(ThreadAnnotations, CondVarWaitForTimesOutWithoutASignalAndWakesWithOne) {
  Mutex mu;
  CondVar cv;
  bool ready = false;  // under mu
  {
    MutexLock lock(&mu);
    const auto start = std::chrono::steady_clock::now();
    EXPECT_FALSE(cv.WaitFor(&mu, std::chrono::milliseconds(50)));
    EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(50));
  }
  std::thread signaller([&] {
    MutexLock lock(&mu);
    ready = true;
    cv.SignalAll();
  });
  {
    MutexLock lock(&mu);
    // Woken by the signal long before a minute runs out (a spurious wake just loops).
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(1);
    while (!ready && std::chrono::steady_clock::now() < deadline)
      cv.WaitFor(&mu, deadline - std::chrono::steady_clock::now());
    EXPECT_TRUE(ready);
  }
  signaller.join();
}

// Clang's mode: what the analysis accepts and rejects, checked by compiling small files with
// clang++ -Wthread-safety -Werror (a GCC build cannot tell the annotations are not no-ops).
constexpr const char* kHeader = R"(#include "core/thread_annotations.h"
using filesync::core::CondVar;
using filesync::core::Mutex;
using filesync::core::MutexLock;
)";

constexpr const char* kCorrect = R"(
class Box {
 public:
  void Put(int v) EXCLUDES(mu_) { MutexLock lock(&mu_); PutLocked(v); cv_.SignalAll(); }
  int Take() EXCLUDES(mu_) {
    MutexLock lock(&mu_);
    while (!full_) cv_.Wait(&mu_);
    full_ = false;
    return *value_;
  }
  void LockManually() ACQUIRE(mu_) { mu_.Lock(); }
  void UnlockManually() RELEASE(mu_) { mu_.Unlock(); }
  int Peek() { mu_.AssertHeld(); return *value_; }
  int Racy() NO_THREAD_SAFETY_ANALYSIS { return *value_; }
 private:
  void PutLocked(int v) REQUIRES(mu_) { *value_ = v; full_ = true; }
  Mutex mu_;
  CondVar cv_;
  int storage_ = 0;
  int* value_ PT_GUARDED_BY(mu_) = &storage_;
  bool full_ GUARDED_BY(mu_) = false;
};
int main() { Box b; b.Put(1); return b.Take() - 1; }
)";

constexpr const char* kUnguarded = R"(
class Box {
 public:
  int Read() { return value_; }  // no lock: the analysis must refuse this
 private:
  Mutex mu_;
  int value_ GUARDED_BY(mu_) = 0;
};
int main() { Box b; return b.Read(); }
)";

constexpr const char* kNotHeld = R"(
class Box {
 public:
  void Set() { SetLocked(); }  // calls a REQUIRES function without the lock
 private:
  void SetLocked() REQUIRES(mu_) { value_ = 1; }
  Mutex mu_;
  int value_ GUARDED_BY(mu_) = 0;
};
int main() { Box b; b.Set(); }
)";

constexpr const char* kWaitUnlocked = R"(
class Box {
 public:
  void Await() { cv_.Wait(&mu_); }  // waits on a mutex it does not hold
 private:
  Mutex mu_;
  CondVar cv_;
};
int main() { Box b; b.Await(); }
)";

struct Compiled {
  int exit_code = -1;
  std::string diagnostics;
};

Compiled CompileWithClang(const std::string& name, const std::string& body) {
  const std::string dir = ::testing::TempDir();
  const std::string source = dir + "thread_annotations_" + name + ".cc";
  const std::string log = source + ".log";
  std::ofstream(source) << kHeader << body;
  const std::string command = "clang++ -std=c++20 -fsyntax-only -Wthread-safety -Werror -I'" +
                              std::string(FILESYNC_SOURCE_DIR) + "/src' '" + source + "' 2>'" +
                              log + "'";
  Compiled out;
  const int status = std::system(command.c_str());
  out.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::stringstream text;
  text << std::ifstream(log).rdbuf();
  out.diagnostics = text.str();
  return out;
}

bool HaveClang() { return std::system("command -v clang++ >/dev/null 2>&1") == 0; }

TEST(ThreadAnnotations, ClangAcceptsCorrectLocking) {
  if (!HaveClang()) GTEST_SKIP() << "clang++ is not on PATH (Debian package clang)";
  const Compiled c = CompileWithClang("correct", kCorrect);
  EXPECT_EQ(c.exit_code, 0) << c.diagnostics;
}

TEST(ThreadAnnotations, ClangRejectsAGuardedMemberReadWithoutItsMutex) {
  if (!HaveClang()) GTEST_SKIP() << "clang++ is not on PATH (Debian package clang)";
  const Compiled c = CompileWithClang("unguarded", kUnguarded);
  EXPECT_NE(c.exit_code, 0);
  EXPECT_NE(c.diagnostics.find("requires holding mutex 'mu_'"), std::string::npos) << c.diagnostics;
}

TEST(ThreadAnnotations, ClangRejectsACallWithoutTheRequiredMutex) {
  if (!HaveClang()) GTEST_SKIP() << "clang++ is not on PATH (Debian package clang)";
  const Compiled c = CompileWithClang("not_held", kNotHeld);
  EXPECT_NE(c.exit_code, 0);
  EXPECT_NE(c.diagnostics.find("requires holding mutex 'mu_' exclusively"), std::string::npos)
      << c.diagnostics;
}

TEST(ThreadAnnotations, ClangRejectsAWaitWithoutTheMutex) {
  if (!HaveClang()) GTEST_SKIP() << "clang++ is not on PATH (Debian package clang)";
  const Compiled c = CompileWithClang("wait_unlocked", kWaitUnlocked);
  EXPECT_NE(c.exit_code, 0);
  EXPECT_NE(c.diagnostics.find("requires holding mutex 'mu_'"), std::string::npos) << c.diagnostics;
}

}  // namespace
}  // namespace filesync::core
