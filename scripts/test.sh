#!/usr/bin/env bash
# The test command: installs dependencies, builds with warnings as errors, and runs every test
# (unit and integration) under ctest; then again under ASan+UBSan and under TSan (what each runs
# is below). FILESYNC_SKIP_SANITIZERS=1 skips the sanitizer builds (a quicker local loop).
#
# Sanitizer runs (docs/soak.md): the asan-ubsan and tsan test presets set ASAN_OPTIONS,
# UBSAN_OPTIONS and TSAN_OPTIONS so the first report stops the process with exit code 66 and is
# written to build/<preset>/sanitizer-report.<exe>.<pid>. That covers the test binaries and every
# child they start (the filesync binary, the emulator), whose exit codes not every test checks
# (an emulator stopped by the fixture, a daemon killed on purpose): any report file fails the
# run, whatever ctest said, and is printed.
#
# CI budget (90 minutes on 2 cores, three full builds included): the heaviest tests, which are
# about processes and I/O rather than thread interleavings, run in the ci stage only:
#   SmallFilesTest.*    5,000 and 2,000 small files through the Dropbox backend (the same upload
#                       pipeline and emulator paths as the other Dropbox cases, e2e and soak);
#   CrashTorture.*      kill -9 at three points of a 10,000-file initial sync;
#   LargeTest.*         a 1 GiB upload session streamed to the emulator.
# ASan+UBSan runs everything else. TSan runs the unit tests (every module's threads in-process)
# and the suites that drive the real daemon's worker pool and the emulator's server threads:
# e2e_test (both backends), soak_test and emulator_test. FILESYNC_FULL_SANITIZERS=1 runs the
# whole suite, nothing left out, under both (docs/soak.md).
# Stage times are printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
heavy='SmallFilesTest\.|CrashTorture\.|LargeTest\.'
times=()
stage() {
  local name=$1 start=$SECONDS
  shift
  "$@"
  times+=("$(printf '%-22s %4d s' "$name" $((SECONDS - start)))")
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
  if [ "${FILESYNC_FULL_SANITIZERS:-0}" = 1 ]; then
    stage "ctest asan-ubsan" sanitized_ctest asan-ubsan
    stage "ctest tsan" sanitized_ctest tsan
  else
    stage "ctest asan-ubsan" sanitized_ctest asan-ubsan -E "$heavy"
    stage "ctest tsan unit" sanitized_ctest tsan -L unit
    stage "ctest tsan daemon" sanitized_ctest tsan -R '^(e2e_test|soak_test|emulator_test)\.'
  fi
fi
printf '%s\n' "stage times:" "${times[@]}"
