#!/usr/bin/env bash
# The style gate (a stage of scripts/test.sh, after the ci build):
#   1. clang-format --dry-run --Werror on every C++ file of src/ tools/ tests/ bench/ (.clang-format);
#   2. clang-tidy with only the size checks of .clang-tidy (functions over 60 lines, cognitive
#      complexity over 25) on the .cc files of src/ and tools/, two at a time, from
#      build/ci/compile_commands.json (run `cmake --preset ci` first); the headers of src/ and
#      tools/ are checked through the files that include them.
# It fails on a formatting difference, on a file clang-tidy cannot parse, on an offender that
# .clang-tidy-exceptions does not list, and on a listed exception that no longer offends (delete
# its line). Each line of .clang-tidy-exceptions is `path:function  # reason`; a function name
# is unqualified, as clang-tidy prints it, so one line covers every same-named function of a file.
#
#   scripts/check-style.sh           check
#   scripts/check-style.sh --list    no formatting check; prints every offender with its figures
#                                    and rewrites .clang-tidy-exceptions to list exactly them,
#                                    keeping the reasons already written (a new offender gets a
#                                    "NEW ..." reason to replace)
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=build/ci
exceptions=.clang-tidy-exceptions
jobs=2
mode=check
case ${1:-} in
  "") ;;
  --list) mode=list ;;
  *) echo "usage: scripts/check-style.sh [--list]" >&2; exit 2 ;;
esac

status=0
if [ "$mode" = check ]; then
  echo "check-style: clang-format --dry-run --Werror on src/ tools/ tests/ bench/"
  if ! git ls-files -z -- 'src/*.cc' 'src/*.h' 'tools/*.cc' 'tools/*.h' 'tests/*.cc' 'tests/*.h' \
    'bench/*.cc' 'bench/*.h' | xargs -0 -P "$jobs" -n 16 clang-format --dry-run --Werror; then
    echo "check-style: formatting differs (clang-format -i on the files above fixes it)" >&2
    status=1
  fi
fi

if [ ! -f "$build_dir/compile_commands.json" ]; then
  echo "check-style: $build_dir/compile_commands.json is missing: run 'cmake --preset ci' first" >&2
  exit 1
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
mapfile -t sources < <(git ls-files -- 'src/*.cc' 'tools/*.cc')
echo "check-style: clang-tidy (function size and cognitive complexity) on ${#sources[@]} files of src/ tools/"
# One output file per source, so parallel runs do not interleave their lines.
printf '%s\n' "${sources[@]}" | xargs -P "$jobs" -I{} sh -c \
  'f=$1; o=$2/$(printf %s "$f" | tr / _); clang-tidy -p "$3" --quiet "$f" >"$o.txt" 2>&1; echo $? >"$o.rc"' \
  _ {} "$out" "$build_dir"

python3 - "$mode" "$exceptions" "$PWD" "$out" <<'EOF' || status=1
import glob, os, re, sys

mode, exceptions_path, root, out = sys.argv[1:]
warning = re.compile(r"^(/[^:]+):(\d+):\d+: warning: function '([^']+)' "
                     r"(?:has cognitive complexity of (\d+)|exceeds recommended size)")
lines_note = re.compile(r"^(/[^:]+):(\d+):\d+: note: (\d+) lines including")
offenders = {}  # "path:function" -> {"lines": n, "complexity": n}
failed = False
key = None
for txt in sorted(glob.glob(os.path.join(out, "*.txt"))):
    with open(txt[:-4] + ".rc") as f:
        rc = f.read().strip()
    text = open(txt, errors="replace").read()
    if rc != "0" or re.search(r"^\S+: error: ", text, re.M):
        print(f"check-style: clang-tidy could not check {os.path.basename(txt)[:-4]}:\n{text}",
              file=sys.stderr)
        failed = True
    for line in text.splitlines():
        m = warning.match(line)
        if m:
            key = f"{os.path.relpath(m[1], root)}:{m[3]}"
            figures = offenders.setdefault(key, {})
            if m[4]:
                figures["complexity"] = max(figures.get("complexity", 0), int(m[4]))
            continue
        m = lines_note.match(line)
        if m and key:
            figures = offenders[key]
            figures["lines"] = max(figures.get("lines", 0), int(m[3]))

header, reasons = [], {}
if os.path.exists(exceptions_path):
    for number, line in enumerate(open(exceptions_path), 1):
        if not line.strip() or line.startswith("#"):
            if not reasons:
                header.append(line.rstrip("\n"))
            continue
        key, _, reason = line.partition("#")
        key, reason = key.strip(), reason.strip()
        if not reason:
            print(f"check-style: {exceptions_path}:{number}: {key} has no reason (`path:function  # reason`)",
                  file=sys.stderr)
            failed = True
        reasons[key] = reason

def describe(figures):
    parts = []
    if "lines" in figures:
        parts.append(f"{figures['lines']} lines")
    if "complexity" in figures:
        parts.append(f"complexity {figures['complexity']}")
    return ", ".join(parts)

if mode == "list":
    over_lines = sum(1 for f in offenders.values() if "lines" in f)
    over_complexity = sum(1 for f in offenders.values() if "complexity" in f)
    print(f"{len(offenders)} functions over a threshold: {over_lines} over 60 lines, "
          f"{over_complexity} over cognitive complexity 25")
    for key in sorted(offenders):
        print(f"{key}  {describe(offenders[key])}")
    with open(exceptions_path, "w") as f:
        for line in header:
            print(line, file=f)
        for key in sorted(offenders):
            reason = reasons.get(key) or f"NEW ({describe(offenders[key])}): say why, or split it"
            print(f"{key}  # {reason}", file=f)
    print(f"check-style: wrote {len(offenders)} exceptions to {exceptions_path}")
    sys.exit(1 if failed else 0)

for key in sorted(set(offenders) - set(reasons)):
    print(f"check-style: {key} is over a threshold ({describe(offenders[key])}; 60 lines, "
          f"complexity 25): split it, or list it in {exceptions_path} with a reason", file=sys.stderr)
    failed = True
for key in sorted(set(reasons) - set(offenders)):
    print(f"check-style: {exceptions_path} lists {key}, which is no longer over a threshold: "
          "delete its line", file=sys.stderr)
    failed = True
if not failed:
    print(f"check-style: no function over a threshold but the {len(reasons)} listed exceptions")
sys.exit(1 if failed else 0)
EOF
exit "$status"
