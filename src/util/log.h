// Logging: one spdlog logger per module ("filesync.scan", "filesync.monitor", ...), all sharing
// the format and level the CLI installs: text, or one JSON object per line with
// --log-format json. When stderr is the systemd journal (JOURNAL_STREAM names it), text becomes
// kJournal: each line starts with its syslog priority ("<3>" for errors, sd-daemon(3)) and carries
// no timestamp, which the journal records itself. In text (and journal), every message goes
// through Printable(), so a file name holding a newline or an escape sequence cannot forge a log
// line or drive the terminal; JSON escapes them itself. Tokens and secrets are never passed to a
// logger.
// Thread safety: every function may be called from any thread.
#pragma once

#include <spdlog/spdlog.h>

#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace filesync::log {

enum class Format { kText, kJson, kJournal };

// The level named by `name`: trace, debug, info, warn or error, in any case; nullopt otherwise.
std::optional<spdlog::level::level_enum> ParseLevel(std::string_view name);

// Installs the process-wide format and level. Call once at start-up; safe to call again
// (SIGHUP reload) to change the level. Loggers obtained before keep their old settings. kText is
// replaced by kJournal when StderrIsJournal().
void Setup(Format format, spdlog::level::level_enum level);

[[nodiscard]] Format CurrentFormat();

// The logger of a module; created on first use with the installed format and level.
std::shared_ptr<spdlog::logger> Get(const std::string& module);

// True when JOURNAL_STREAM is "<device>:<inode>" of this process's stderr (systemd.exec(5)), so a
// redirected stderr of a child of a service is not mistaken for the journal.
bool StderrIsJournal();

// Logs `message` at `level`; in JSON the record also carries the members of the object
// `fields` next to "msg" (members named time, level, logger or msg are left out).
void Structured(spdlog::logger& logger, spdlog::level::level_enum level, std::string_view message,
                const nlohmann::json& fields);

// `text` made safe for a terminal or a text log: bytes that are not valid UTF-8 and control
// characters (C0, DEL; a newline too) become \xNN; C1 controls, bidirectional overrides and
// isolates, and the Unicode line and paragraph separators become \uNNNN. Everything else,
// including other non-ASCII text, is kept as is.
std::string Printable(std::string_view text);

}  // namespace filesync::log
