#include "cli/signal_watcher.h"

#include <unistd.h>

#include <cstdio>

#include "util/log.h"

namespace filesync::cli {

SignalWatcher::SignalWatcher() {
  sigemptyset(&set_);
  sigaddset(&set_, SIGINT);
  sigaddset(&set_, SIGTERM);
  sigaddset(&set_, SIGHUP);
  sigaddset(&set_, SIGUSR1);  // used only to wake the thread at shutdown
  pthread_sigmask(SIG_BLOCK, &set_, nullptr);
  thread_ = std::thread([this] { Run(); });
}

SignalWatcher::~SignalWatcher() {
  {
    core::MutexLock lock(&mu_);
    closing_ = true;
  }
  pthread_kill(thread_.native_handle(), SIGUSR1);
  thread_.join();
}

void SignalWatcher::OnStop(std::function<void()> fn) {
  core::MutexLock lock(&mu_);
  on_stop_ = std::move(fn);
}

bool SignalWatcher::WaitFor(std::chrono::seconds timeout) {
  core::MutexLock lock(&mu_);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!stop_.load() && !reload_ && std::chrono::steady_clock::now() < deadline)
    cv_.WaitUntil(&mu_, deadline);
  const bool reload = reload_;
  reload_ = false;
  return reload;
}

void SignalWatcher::Run() {
  for (;;) {
    int sig = 0;
    if (sigwait(&set_, &sig) != 0) continue;
    core::MutexLock lock(&mu_);
    if (closing_) return;
    const char* name = sig == SIGINT ? "SIGINT" : "SIGTERM";
    if (sig == SIGHUP) {
      reload_ = true;
    } else if ((sig == SIGINT || sig == SIGTERM) && stop_.load()) {
      log::Get("cli")->warn("second {}: exiting now", name);
      std::fflush(stderr);
      _exit(128 + sig);
    } else if (sig == SIGINT || sig == SIGTERM) {
      stop_.store(true);
      log::Get("cli")->info(
          "{}: stopping: starting nothing more, abandoning transfers in flight (send it again to "
          "stop at once)",
          name);
      if (on_stop_) on_stop_();
    }
    cv_.SignalAll();
  }
}

}  // namespace filesync::cli
