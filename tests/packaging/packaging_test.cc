// What the Debian package ships, checked against the real binary so it cannot drift: the manual
// page documents every command, option, configuration key and exit code; bash completion offers
// every command and option; both systemd units pass `systemd-analyze verify` without a warning,
// and the system unit's exposure (`systemd-analyze security`) stays low.
// Contract: issue 15 ("A Debian package", "systemd").
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "config/config.h"

namespace fs = std::filesystem;

namespace {

struct RunResult {
  int code = -1;
  std::string out;  // stdout + stderr
};

RunResult RunShell(const std::string& command) {
  RunResult r;
  FILE* p = popen((command + " 2>&1").c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  while (std::size_t n = fread(buf, 1, sizeof buf, p)) r.out.append(buf, n);
  const int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::string Quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool HaveCommand(const std::string& name) {
  return RunShell("command -v " + name + " >/dev/null").code == 0;
}

// --- what the binary says it accepts (CLI11 help) ------------------------------------------------

std::vector<std::string> HelpSection(const std::string& help, const std::string& title) {
  std::vector<std::string> lines;
  std::istringstream in(help);
  bool inside = false;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line[0] != ' ')
      inside = line == title;
    else if (inside && line.size() > 2 && line[2] != ' ')
      lines.push_back(line.substr(2));
  }
  return lines;
}

// Long options of one help text, from the option column only (not the descriptions).
std::set<std::string> LongOptions(const std::string& help) {
  std::set<std::string> options;
  const std::regex long_option("--[a-z][a-z0-9-]*");
  for (const std::string& line : HelpSection(help, "Options:")) {
    const std::string spec = line.substr(0, line.find("  "));
    for (std::sregex_iterator it(spec.begin(), spec.end(), long_option), end; it != end; ++it)
      options.insert(it->str());
  }
  return options;
}

std::set<std::string> Commands(const std::string& help) {
  std::set<std::string> commands;
  for (const std::string& line : HelpSection(help, "Subcommands:"))
    commands.insert(line.substr(0, line.find(' ')));
  return commands;
}

std::string Help(const std::string& command) {
  const RunResult r = RunShell(std::string(FILESYNC_BINARY) + " " + command + " --help");
  EXPECT_EQ(r.code, 0) << r.out;
  return r.out;
}

std::set<std::string> ConfigKeys() {
  // Describe() prints one "key = value" line per key of the configuration's key table.
  std::set<std::string> keys;
  std::istringstream in(filesync::config::Describe(filesync::config::Config{}));
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line[0] != '#') keys.insert(line.substr(0, line.find(" = ")));
  }
  return keys;
}

// --- what the manual page documents ------------------------------------------------------------

// The words of a roff text line with macros, font changes, escapes and quotes removed.
std::vector<std::string> Words(std::string line) {
  if (!line.empty() && line[0] == '.') line = line.substr(std::min(line.find(' '), line.size()));
  line = std::regex_replace(line, std::regex(R"(\\f[BIRP])"), "");
  line = std::regex_replace(line, std::regex(R"(\\-)"), "-");
  line = std::regex_replace(line, std::regex(R"(\\\(dq|")"), "");
  std::vector<std::string> words;
  std::istringstream in(line);
  for (std::string w; in >> w;) {
    while (!w.empty() && (w.back() == ',' || w.back() == ';')) w.pop_back();
    if (!w.empty()) words.push_back(w);
  }
  return words;
}

// The tagged paragraphs (.TP) of a manual page: per section (and .SS subsection), the first word
// of each top-level tag, and the words of the tags nested (.RS/.RE) under it.
struct ManPage {
  std::string th;                                          // the .TH line
  std::map<std::string, std::vector<std::string>> tags;    // section -> first words
  std::map<std::string, std::set<std::string>> tag_words;  // section -> every tag word
  std::map<std::string, std::map<std::string, std::set<std::string>>> nested;  // section -> tag ->

  explicit ManPage(const std::string& roff) {
    std::istringstream in(roff);
    std::string section, tag;
    int depth = 0;
    bool next_is_tag = false;
    for (std::string line; std::getline(in, line);) {
      if (line.rfind(".TH ", 0) == 0) th = line;
      if (line.rfind(".SH ", 0) == 0 || line.rfind(".SS ", 0) == 0) {
        section = line.substr(4);
        section.erase(std::remove(section.begin(), section.end(), '"'), section.end());
        depth = 0;
        continue;
      }
      if (line.rfind(".RS", 0) == 0) ++depth;
      if (line.rfind(".RE", 0) == 0) --depth;
      if (line.rfind(".TP", 0) == 0) {
        next_is_tag = true;
        continue;
      }
      if (!next_is_tag) continue;
      next_is_tag = false;
      const auto words = Words(line);
      if (words.empty()) continue;
      if (depth == 0) {
        tag = words[0];
        tags[section].push_back(tag);
        tag_words[section].insert(words.begin(), words.end());
      } else {
        nested[section][tag].insert(words.begin(), words.end());
      }
    }
  }
};

ManPage LoadManPage() { return ManPage(ReadFile(FILESYNC_MAN_PAGE)); }

TEST(ManPage, DocumentsEveryCommandAndItsOptions) {
  const ManPage man = LoadManPage();
  const auto& documented = man.tags.at("COMMANDS");
  const std::set<std::string> commands = Commands(Help(""));
  ASSERT_GE(commands.size(), 6U) << Help("");
  for (const std::string& command : commands) {
    EXPECT_NE(std::find(documented.begin(), documented.end(), command), documented.end())
        << "command '" << command << "' is missing from COMMANDS in filesync.1.in";
    for (const std::string& option : LongOptions(Help(command))) {
      if (option == "--help") continue;  // documented once, under GLOBAL OPTIONS
      EXPECT_TRUE(man.nested.count("COMMANDS") && man.nested.at("COMMANDS").count(command) &&
                  man.nested.at("COMMANDS").at(command).count(option))
          << "option '" << option << "' of '" << command
          << "' is missing under that command in filesync.1.in";
    }
  }
  // And nothing documented that the binary does not have.
  for (const std::string& command : documented) {
    EXPECT_TRUE(commands.count(command)) << "filesync.1.in documents a command '" << command
                                         << "' that `filesync --help` does not list";
  }
}

TEST(ManPage, DocumentsEveryGlobalOption) {
  const ManPage man = LoadManPage();
  const auto& documented = man.tag_words.at("GLOBAL OPTIONS");
  const std::set<std::string> options = LongOptions(Help(""));
  ASSERT_GE(options.size(), 6U) << Help("");
  for (const std::string& option : options) {
    EXPECT_TRUE(documented.count(option))
        << "global option '" << option << "' is missing from GLOBAL OPTIONS in filesync.1.in";
  }
}

TEST(ManPage, DocumentsExactlyTheConfigurationKeys) {
  const ManPage man = LoadManPage();
  const auto& list = man.tags.at("Keys");
  const std::set<std::string> documented(list.begin(), list.end());
  const std::set<std::string> keys = ConfigKeys();
  ASSERT_GE(keys.size(), 20U);
  for (const std::string& key : keys) {
    EXPECT_TRUE(documented.count(key))
        << "configuration key '" << key << "' is missing from Keys in filesync.1.in";
  }
  for (const std::string& key : documented) {
    EXPECT_TRUE(keys.count(key)) << "filesync.1.in documents a key '" << key
                                 << "' that the configuration does not have";
  }
}

TEST(ManPage, DocumentsTheExitCodes) {
  // cli/commands.h: 0 success, 1 incomplete, 2 bad usage or configuration.
  const ManPage man = LoadManPage();
  EXPECT_EQ(man.tags.at("EXIT STATUS"), (std::vector<std::string>{"0", "1", "2"}));
  EXPECT_EQ(RunShell(std::string(FILESYNC_BINARY) + " --no-such-option").code, 2);
}

// The version has one source, project(VERSION) in CMakeLists.txt: the binary, the man page, the
// package and its changelog all derive from it.
TEST(Version, IsTheProjectVersion) {
  const RunResult version = RunShell(std::string(FILESYNC_BINARY) + " --version");
  ASSERT_EQ(version.code, 0);
  EXPECT_EQ(version.out, std::string("filesync ") + FILESYNC_PROJECT_VERSION + "\n");
}

TEST(ManPage, CarriesTheBinarysVersion) {
  const RunResult version = RunShell(std::string(FILESYNC_BINARY) + " --version");
  ASSERT_EQ(version.code, 0);
  std::string expected = version.out;
  while (!expected.empty() && expected.back() == '\n') expected.pop_back();
  ASSERT_TRUE(std::regex_match(expected, std::regex(R"(filesync \d+\.\d+\.\d+)"))) << expected;
  EXPECT_NE(LoadManPage().th.find("\"" + expected + "\""), std::string::npos)
      << LoadManPage().th << " vs " << expected;
}

TEST(ManPage, RendersWithoutWarnings) {
  if (!HaveCommand("man")) GTEST_SKIP() << "man (man-db) is not installed";
  // What lintian runs on every manual page.
  const RunResult r = RunShell(
      "LC_ALL=C.UTF-8 MANROFFSEQ='' MANWIDTH=80 man --warnings -E UTF-8 -l "
      "-Tutf8 -Z " +
      Quote(FILESYNC_MAN_PAGE) + " >/dev/null");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out, "") << "groff warnings";
}

// --- bash completion ---------------------------------------------------------------------------

// The candidates completion offers for `words` (the word under the cursor last).
std::set<std::string> Complete(const std::vector<std::string>& words) {
  std::string array;
  for (const auto& w : words) array += " " + Quote(w);
  const std::string script =
      "source " + Quote(FILESYNC_SOURCE_DIR "/packaging/completion/filesync.bash") +
      "; COMP_WORDS=(" + array + "); COMP_CWORD=" + std::to_string(words.size() - 1) +
      "; _filesync; printf '%s\\n' \"${COMPREPLY[@]}\"";
  const RunResult r = RunShell("bash -c " + Quote(script));
  EXPECT_EQ(r.code, 0) << r.out;
  std::set<std::string> candidates;
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) candidates.insert(line);
  }
  return candidates;
}

TEST(Completion, OffersExactlyTheCommands) {
  EXPECT_EQ(Complete({"filesync", ""}), Commands(Help("")));
  EXPECT_EQ(Complete({"filesync", "--log-level", "debug", "s"}),
            (std::set<std::string>{"status", "sync"}));
}

TEST(Completion, OffersExactlyEachCommandsOptions) {
  std::set<std::string> global = LongOptions(Help(""));
  EXPECT_EQ(Complete({"filesync", "--"}), global);
  for (const std::string& command : Commands(Help(""))) {
    EXPECT_EQ(Complete({"filesync", "--config", "x.toml", command, "--"}),
              LongOptions(Help(command)))
        << "command " << command;
  }
}

TEST(Completion, OffersTheValuesOfOptions) {
  EXPECT_EQ(Complete({"filesync", "--log-format", ""}), (std::set<std::string>{"text", "json"}));
  EXPECT_EQ(Complete({"filesync", "--log-level", "d"}), (std::set<std::string>{"debug"}));
  EXPECT_EQ(Complete({"filesync", "--env", ""}), (std::set<std::string>{"test", "dev", "prod"}));
  // Files for --config and for hash.
  const std::string dir = FILESYNC_SOURCE_DIR "/packaging/examples/";
  EXPECT_EQ(Complete({"filesync", "--config", dir + "files"}),
            (std::set<std::string>{dir + "filesync.toml"}));
  EXPECT_EQ(Complete({"filesync", "hash", dir + "files"}),
            (std::set<std::string>{dir + "filesync.toml"}));
}

// --- systemd units -----------------------------------------------------------------------------

class SystemdUnits : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!HaveCommand("systemd-analyze"))
      GTEST_SKIP() << "systemd-analyze (package systemd) is missing";
    char tmpl[] = "/tmp/filesync-units-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    // `man filesync(1)` (Documentation=) must resolve: the page as the package installs it.
    fs::create_directories(dir_ / "man" / "man1");
    fs::copy_file(FILESYNC_MAN_PAGE, dir_ / "man" / "man1" / "filesync.1");
    fs::create_directories(dir_ / "runtime");
    fs::permissions(dir_ / "runtime", fs::perms::owner_all);
  }
  void TearDown() override {
    std::error_code ec;
    if (!dir_.empty()) fs::remove_all(dir_, ec);
  }

  // The unit as installed, except that ExecStart= runs the binary under test instead of
  // /usr/bin/filesync (systemd-analyze checks that it exists and is executable).
  fs::path Stage(const std::string& name) {
    std::string unit = ReadFile(fs::path(FILESYNC_SOURCE_DIR) / "packaging/systemd" / name);
    EXPECT_NE(unit.find("/usr/bin/filesync "), std::string::npos) << unit;
    unit = std::regex_replace(unit, std::regex("/usr/bin/filesync "),
                              std::string(FILESYNC_BINARY) + " ");
    std::ofstream(dir_ / name) << unit;
    return dir_ / name;
  }
  RunResult Analyze(const std::string& args) {
    return RunShell("MANPATH=" + Quote((dir_ / "man").string()) + " XDG_RUNTIME_DIR=" +
                    Quote((dir_ / "runtime").string()) + " SYSTEMD_PAGER= systemd-analyze " + args);
  }

  fs::path dir_;
};

TEST_F(SystemdUnits, SystemUnitVerifiesWithoutAWarning) {
  const RunResult r = Analyze("verify " + Quote(Stage("filesync.service").string()));
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out, "") << "systemd-analyze verify warns";
}

TEST_F(SystemdUnits, UserTemplateVerifiesWithoutAWarning) {
  Stage("filesync@.service");
  const RunResult r =
      Analyze("--user verify " + Quote((dir_ / "filesync@photos.service").string()));
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out, "") << "systemd-analyze --user verify warns";
}

TEST_F(SystemdUnits, VerifyCatchesABrokenUnit) {
  // The two tests above can fail: a unit with a typo in a key does not pass.
  const fs::path unit = Stage("filesync.service");
  std::ofstream(unit, std::ios::app) << "ProtectSytem=strict\n";
  const RunResult r = Analyze("verify " + Quote(unit.string()));
  EXPECT_NE(r.out.find("ProtectSytem"), std::string::npos) << r.out;
}

TEST_F(SystemdUnits, SystemUnitExposureIsAtMostTwo) {
  // systemd-analyze security rates 0 (locked down) to 10 (unprotected); the threshold is in
  // tenths. A daemon that must read arbitrary dirs and reach the network cannot get to 0.
  const RunResult r = Analyze("security --offline=yes --threshold=20 --no-pager " +
                              Quote(Stage("filesync.service").string()));
  EXPECT_EQ(r.code, 0) << r.out;
  const auto at = r.out.find("Overall exposure level");
  ASSERT_NE(at, std::string::npos) << r.out;
  std::cout << r.out.substr(at, r.out.find('\n', at) - at) << "\n";
}

}  // namespace
