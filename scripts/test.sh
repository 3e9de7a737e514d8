#!/usr/bin/env bash
# The test command: installs dependencies, builds with warnings as errors, and runs every test
# (unit and integration) under ctest; then again under ASan+UBSan and under TSan (what each runs
# is below), then the fuzz targets. FILESYNC_SKIP_SANITIZERS=1 skips the sanitizer builds and the
# fuzzing (a quicker local loop).
#
# Sanitizer runs (docs/soak.md): the asan-ubsan and tsan test presets set ASAN_OPTIONS,
# UBSAN_OPTIONS and TSAN_OPTIONS so the first report stops the process with exit code 66 and is
# written to build/<preset>/sanitizer-report.<exe>.<pid>. That covers the test binaries and every
# child they start (the filesync binary, the emulator), whose exit codes not every test checks
# (an emulator stopped by the fixture, a daemon killed on purpose): any report file fails the
# run, whatever ctest said, and is printed.
#
# CI budget (90 minutes on 2 cores, four builds included). ASan+UBSan runs the whole suite.
# TSan runs the whole suite except two process-heavy tests whose threads are the same as in
# tests it does run, and which take ~13 minutes under it:
#   SmallFilesTest.FiveThousand*   5,000 small files through the Dropbox backend (the same upload
#                                  pipeline as the 2,000-file SmallFilesTest, e2e and soak);
#   CrashTorture.*ThreeKillPoints* kill -9 at three points of a 10,000-file initial sync (the
#                                  kill/restart paths run under TSan in the reliability seeds).
# FILESYNC_FULL_SANITIZERS=1 runs those too (docs/soak.md). Then the libFuzzer targets
# (tests/fuzz/run.sh, clang, ASan+UBSan) run for FILESYNC_FUZZ_SECONDS (default 30) each.
# Stage times are printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
tsan_heavy='SmallFilesTest\.FiveThousand|CrashTorture\..*ThreeKillPoints'
times=()
failed=()
# Runs one stage and records its time. A failing test stage does not stop the later ones (one CI
# run reports every failure); a failing setup or build stops the script.
stage() {
  local name=$1 start=$SECONDS status=0
  shift
  "$@" || status=$?
  times+=("$(printf '%-22s %4d s%s' "$name" $((SECONDS - start)) \
    "$([ "$status" = 0 ] || echo "  FAILED (exit $status)")")")
  if [ "$status" != 0 ]; then
    failed+=("$name")
    case $name in setup | configure*) printf '%s\n' "stage times:" "${times[@]}"; exit "$status" ;; esac
  fi
}

# Runs ctest for a sanitizer preset, then fails if any process left a sanitizer report.
sanitized_ctest() {
  local preset=$1
  shift
  local dir=build/$preset status=0
  rm -f "$dir"/sanitizer-report.*
  ctest --preset "$preset" "$@" || status=$?
  local reports=("$dir"/sanitizer-report.*)
  if [ -e "${reports[0]}" ]; then
    echo "== ${#reports[@]} sanitizer report(s) under $preset:" >&2
    for r in "${reports[@]}"; do
      echo "== $r" >&2
      cat "$r" >&2
    done
    status=1
  fi
  return "$status"
}

stage setup scripts/setup.sh
stage "configure+build ci" bash -c 'cmake --preset ci >/dev/null && cmake --build --preset ci -j "$0"' "$jobs"
stage "ctest ci" ctest --preset ci

if [ "${FILESYNC_SKIP_SANITIZERS:-0}" != 1 ]; then
  for preset in asan-ubsan tsan; do
    stage "configure+build $preset" \
      bash -c 'cmake --preset "$0" >/dev/null && cmake --build --preset "$0" -j "$1"' "$preset" "$jobs"
  done
  stage "ctest asan-ubsan" sanitized_ctest asan-ubsan
  if [ "${FILESYNC_FULL_SANITIZERS:-0}" = 1 ]; then
    stage "ctest tsan" sanitized_ctest tsan
  else
    stage "ctest tsan" sanitized_ctest tsan -E "$tsan_heavy"
  fi
  stage "fuzz" tests/fuzz/run.sh "${FILESYNC_FUZZ_SECONDS:-30}"
fi
printf '%s\n' "stage times:" "${times[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED stages: ${failed[*]}" >&2
  exit 1
fi
