// Logging: one spdlog logger per module ("filesync.scan", "filesync.monitor", ...), all sharing
// the sinks and format the CLI installs (text, or one JSON object per line with --log-format json).
// When stderr is the systemd journal (JOURNAL_STREAM names it), text becomes kJournal: each line
// starts with its syslog priority ("<3>" for errors, sd-daemon(3)) and carries no timestamp, which
// the journal records itself.
// Tokens and secrets are never passed to a logger.
#pragma once

#include <spdlog/spdlog.h>

#include <memory>
#include <string>

namespace filesync::log {

enum class Format { kText, kJson, kJournal };

// Installs the process-wide sinks (stderr) and level. Call once at start-up; safe to call again
// (SIGHUP reload) to change the level. kText is replaced by kJournal when StderrIsJournal().
void Setup(Format format, const std::string& level);

// The logger of a module; created on first use with the installed sinks.
std::shared_ptr<spdlog::logger> Get(const std::string& module);

// True when JOURNAL_STREAM is "<device>:<inode>" of this process's stderr (systemd.exec(5)), so a
// redirected stderr of a child of a service is not mistaken for the journal.
bool StderrIsJournal();

}  // namespace filesync::log
