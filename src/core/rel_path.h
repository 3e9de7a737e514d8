// Path words shared by every module: '/'-separated paths as strings, never resolved on disk.
//
// Two spellings are in use. A relative path names an entry below a sync dir or a mirror folder:
// "a/b/c", no leading or trailing slash, "" for the folder itself. A cloud path is absolute in a
// backend's namespace: "/Backups/a/b", NFC, no trailing slash, "" for the namespace root.
// The functions below work on either unless they say otherwise; none validates its input.
//
// CloudKey: Dropbox compares paths case-insensitively after normalising to NFC; CloudKey(path)
// is that comparison key (NFC, then a simple per-code-point lower-casing: the reference, §13,
// advises exactly this fold and warns that Dropbox's own fold differs for a few scripts), and
// CloudKey(path, case_insensitive) is the key under which a given cloud identifies a path.
// Pure functions; thread-safe.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

namespace filesync::core {

// JoinPath("/a", "b/c") == "/a/b/c"; JoinPath("", "b") == "/b"; JoinPath("/a", "") == "/a".
std::string JoinPath(std::string_view base, std::string_view relative);
// "/a/b/c" -> "/a/b"; "/a" -> ""; "a" -> "".
std::string_view ParentPath(std::string_view path);
// "/a/b/c" -> "c"; "c" -> "c".
std::string_view BaseName(std::string_view path);

// True when `path` is `dir` or lies below it, component-wise: ("a/b", "a") yes, ("ab", "a") no.
bool UnderOrEqual(std::string_view path, std::string_view dir);

// Number of components of a relative path: "a" -> 1, "a/b/c" -> 3.
std::size_t Components(std::string_view path);

// `path` with its first `components` components replaced by `onto`, component-wise:
// Rebase("A/b/c", 1, "x/y") == "x/y/b/c"; Rebase("A", 1, "x") == "x". Moves a record of a moved
// folder's subtree whatever spelling (case, Unicode form, length) the folder had in it.
std::string Rebase(std::string_view path, std::size_t components, std::string_view onto);

// The part of the cloud path `path` below the cloud path `root` ("/r/a/b" under "/r" -> "a/b";
// `root` itself -> ""), compared by CloudKey when `case_insensitive`; nullopt when `path` is not
// `root` or below it. The result keeps `path`'s spelling.
std::optional<std::string> RelativeTo(const std::string& path, const std::string& root,
                                      bool case_insensitive);

// Calls fn(ancestor) for each proper ancestor of `path`, nearest first: "a/b/c" -> "a/b", "a";
// "/a/b" -> "/a". When fn returns bool, false stops the walk.
template <typename Fn>
void ForEachAncestor(std::string_view path, Fn&& fn) {
  for (auto slash = path.rfind('/'); slash != std::string_view::npos && slash > 0;
       slash = path.rfind('/', slash - 1)) {
    if constexpr (std::is_same_v<std::invoke_result_t<Fn&, std::string_view>, bool>) {
      if (!fn(path.substr(0, slash))) return;
    } else {
      fn(path.substr(0, slash));
    }
  }
}

// Dropbox's comparison key (see the top of this file); `path` must be valid UTF-8.
std::string CloudKey(std::string_view path);
// The key under which a cloud identifies `path`: CloudKey(path) when it is case-insensitive,
// else `path` itself.
std::string CloudKey(std::string_view path, bool case_insensitive);

}  // namespace filesync::core
