// Locking rules the compiler checks: Clang's thread-safety analysis (-Wthread-safety) reads
// these annotations and rejects code that touches a GUARDED_BY member without its mutex, calls a
// REQUIRES function unlocked, or leaves a function still holding a lock. On other compilers the
// macros expand to nothing, so the same code builds everywhere.
//
// std::mutex carries no annotations in libstdc++, so the analysis cannot see it taken: members
// that a mutex guards use Mutex and MutexLock below (and CondVar to wait on one), the way leveldb
// (port/thread_annotations.h, port/port_stdcxx.h) and abseil do.
//
//   class Counter {
//    public:
//     void Add() EXCLUDES(mu_) { MutexLock lock(&mu_); ++n_; }
//    private:
//     Mutex mu_;
//     int n_ GUARDED_BY(mu_) = 0;
//   };
//
// Thread safety: Mutex, MutexLock and CondVar are as thread-safe as std::mutex and
// std::condition_variable, which they wrap.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>

#if defined(__clang__)
#define FILESYNC_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define FILESYNC_THREAD_ANNOTATION(x)
#endif

// On a data member: read or written only with the given mutex held.
#define GUARDED_BY(x) FILESYNC_THREAD_ANNOTATION(guarded_by(x))
// On a pointer member: what it points to is read or written only with the mutex held.
#define PT_GUARDED_BY(x) FILESYNC_THREAD_ANNOTATION(pt_guarded_by(x))
// On a function: callers must hold (REQUIRES) or must not hold (EXCLUDES) the mutexes.
#define REQUIRES(...) FILESYNC_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define REQUIRES_SHARED(...) FILESYNC_THREAD_ANNOTATION(requires_shared_capability(__VA_ARGS__))
#define EXCLUDES(...) FILESYNC_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
// On a function: it takes (ACQUIRE) or gives up (RELEASE) the mutexes; TRY_ACQUIRE takes them
// when it returns the given value.
#define ACQUIRE(...) FILESYNC_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define RELEASE(...) FILESYNC_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define TRY_ACQUIRE(...) FILESYNC_THREAD_ANNOTATION(try_acquire_capability(__VA_ARGS__))
// On a function: tells the analysis the mutex is held here (checked at run time, if at all).
#define ASSERT_HELD(x) FILESYNC_THREAD_ANNOTATION(assert_capability(x))
// On a function: returns a reference to the given mutex.
#define RETURN_CAPABILITY(x) FILESYNC_THREAD_ANNOTATION(lock_returned(x))
// On a class: its objects are mutexes (CAPABILITY), or RAII holders of one (SCOPED_CAPABILITY).
#define CAPABILITY(x) FILESYNC_THREAD_ANNOTATION(capability(x))
#define SCOPED_CAPABILITY FILESYNC_THREAD_ANNOTATION(scoped_lockable)
// On a function: the analysis does not look inside it. Give a reason in a comment.
#define NO_THREAD_SAFETY_ANALYSIS FILESYNC_THREAD_ANNOTATION(no_thread_safety_analysis)

namespace filesync::core {

class CondVar;

// A std::mutex the analysis knows as a capability.
class CAPABILITY("mutex") Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() ACQUIRE() { mu_.lock(); }
  void Unlock() RELEASE() { mu_.unlock(); }
  // Documents (to the analysis) that the caller holds the mutex; checks nothing at run time.
  void AssertHeld() ASSERT_HELD(this) {}

 private:
  friend class CondVar;
  std::mutex mu_;
};

// Holds a Mutex for its scope.
class SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ACQUIRE(mu) : mu_(mu) { mu_->Lock(); }
  ~MutexLock() RELEASE() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* const mu_;
};

// A condition variable, waited on with a Mutex held (passed to Wait, as abseil does, so the
// analysis checks the caller holds it).
class CondVar {
 public:
  CondVar() = default;
  CondVar(const CondVar&) = delete;
  CondVar& operator=(const CondVar&) = delete;

  // Releases `mu` while waiting and holds it again on return (maybe spuriously woken: wait in a
  // loop, `while (!ready_) cv_.Wait(&mu_);`, which the analysis can check, unlike a predicate
  // lambda).
  void Wait(Mutex* mu) REQUIRES(mu) {
    std::unique_lock<std::mutex> lock(mu->mu_, std::adopt_lock);
    cv_.wait(lock);
    lock.release();  // still held: the caller's MutexLock releases it
  }
  // As Wait, but returns once `timeout` has passed at the latest: false when it ran out.
  template <class Rep, class Period>
  bool WaitFor(Mutex* mu, const std::chrono::duration<Rep, Period>& timeout) REQUIRES(mu) {
    std::unique_lock<std::mutex> lock(mu->mu_, std::adopt_lock);
    const bool woken = cv_.wait_for(lock, timeout) == std::cv_status::no_timeout;
    lock.release();  // still held: the caller's MutexLock releases it
    return woken;
  }
  // As Wait, but returns at `deadline` at the latest: false when it passed.
  template <class Clock, class Duration>
  bool WaitUntil(Mutex* mu, const std::chrono::time_point<Clock, Duration>& deadline) REQUIRES(mu) {
    std::unique_lock<std::mutex> lock(mu->mu_, std::adopt_lock);
    const bool woken = cv_.wait_until(lock, deadline) == std::cv_status::no_timeout;
    lock.release();  // still held: the caller's MutexLock releases it
    return woken;
  }
  void Signal() { cv_.notify_one(); }
  void SignalAll() { cv_.notify_all(); }

 private:
  std::condition_variable cv_;
};

}  // namespace filesync::core
