#!/usr/bin/env bash
# The test command: installs dependencies (scripts/setup.sh --test), builds with warnings as
# errors, and runs every test (unit and integration) under ctest; then again under ASan+UBSan and
# under TSan (what each runs is below), then the fuzz targets. FILESYNC_SKIP_SANITIZERS=1 skips
# the sanitizer builds and the fuzzing (a quicker local loop). Each stage starts with a header
# line (stage, preset, what it runs); each ctest stage ends with its skipped tests and the reason
# each gave (scripts/skipped-tests.py); stage times are printed at the end.
#
# Sanitizer runs (docs/soak.md): the asan-ubsan and tsan test presets set ASAN_OPTIONS,
# UBSAN_OPTIONS and TSAN_OPTIONS so the first report stops the process with exit code 66 and is
# written to build/<preset>/sanitizer-report.<exe>.<pid>. That covers the test binaries and every
# child they start (the filesync binary, the emulator), whose exit codes not every test checks
# (an emulator stopped by the fixture, a daemon killed on purpose): any report file fails the
# run, whatever ctest said, and is printed.
#
# CI budget: 60 minutes on 2 cores, four builds included (a clean clone took 55). The sanitizer
# stages skip what adds minutes but no code path of its own:
#   SmallFilesTest.FiveThousand*   5,000 small files through the Dropbox backend (the same upload
#                                  pipeline as the 2,000-file SmallFilesTest, e2e and soak); both;
#   CrashTorture.*ThreeKillPoints* kill -9 at three points of a 10,000-file initial sync (the
#                                  kill/restart paths run in the reliability seeds); TSan skips
#                                  both backends, ASan only the Dropbox one (~4 minutes under it);
#   Seeds/Convergence.*/N          the six random-workload seeds share their code paths: ASan runs
#                                  seeds 1-3, TSan seeds 4-6 (the ci stage runs all six).
# FILESYNC_FULL_SANITIZERS=1 runs those too (docs/soak.md). Then the libFuzzer targets
# (tests/fuzz/run.sh, clang, ASan+UBSan) run for FILESYNC_FUZZ_SECONDS (default 30) each.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
asan_skip='SmallFilesTest\.FiveThousand|CrashTorture\.DropboxThreeKillPoints|Seeds/Convergence\.[A-Za-z]+/[456]$'
tsan_skip='SmallFilesTest\.FiveThousand|CrashTorture\..*ThreeKillPoints|Seeds/Convergence\.[A-Za-z]+/[123]$'
fuzz_seconds=${FILESYNC_FUZZ_SECONDS:-30}
times=()
failed=()
# stage NAME WHAT COMMAND...: prints a header naming the stage and what it runs, runs COMMAND and
# records its time. A failing test stage does not stop the later ones (one CI run reports every
# failure); a failing setup or build stops the script.
stage() {
  local name=$1 what=$2 start=$SECONDS status=0
  shift 2
  echo
  echo "==== stage: $name -- $what"
  "$@" || status=$?
  local result="$((SECONDS - start)) s$([ "$status" = 0 ] || echo "  FAILED (exit $status)")"
  echo "==== end of stage: $name: $result"
  times+=("$(printf '%-22s %s' "$name" "$result")")
  if [ "$status" != 0 ]; then
    failed+=("$name")
    case $name in setup | configure*) printf '%s\n' "stage times:" "${times[@]}"; exit "$status" ;; esac
  fi
}

# ctest_stage PRESET [CTEST ARGS...]: ctest for a preset, then every test it skipped and the
# reason the test gave (ctest itself prints only "Skipped"; a skip without a reason fails the
# stage); for a sanitizer preset, fails if any process left a sanitizer report.
ctest_stage() {
  local preset=$1
  shift
  local dir=build/$preset status=0
  rm -f "$dir"/sanitizer-report.* "$dir/ctest-junit.xml"
  ctest --preset "$preset" --output-junit "$PWD/$dir/ctest-junit.xml" "$@" || status=$?
  if [ -f "$dir/ctest-junit.xml" ]; then
    scripts/skipped-tests.py "$dir/ctest-junit.xml" || status=1
  fi
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

build() { cmake --preset "$1" >/dev/null && cmake --build --preset "$1" -j "$jobs"; }

stage setup "scripts/setup.sh --test: build and test packages from Debian" scripts/setup.sh --test
stage "configure+build ci" "preset ci (RelWithDebInfo, gcc, warnings as errors): everything" build ci
stage "ctest ci" "preset ci: every test, unit and integration (the slow ones skip themselves unless asked), but the package label" \
  ctest_stage ci -LE package
stage "package" "preset ci, label package: builds the .deb (preset package), lintian, installs it into a clean Debian 12 root and syncs there" \
  ctest_stage ci -L package

if [ "${FILESYNC_SKIP_SANITIZERS:-0}" != 1 ]; then
  stage "configure+build asan-ubsan" "preset asan-ubsan (Debug, gcc, ASan+UBSan): everything but bench/" \
    build asan-ubsan
  stage "configure+build tsan" "preset tsan (RelWithDebInfo, clang, TSan, -Werror=thread-safety: the lock annotations): everything but bench/" build tsan
  if [ "${FILESYNC_FULL_SANITIZERS:-0}" = 1 ]; then
    asan_skip='^$' tsan_skip='^$'
  fi
  stage "ctest asan-ubsan" "preset asan-ubsan: every test under AddressSanitizer + UndefinedBehaviorSanitizer but -E '$asan_skip'" \
    ctest_stage asan-ubsan -LE package -E "$asan_skip"
  stage "ctest tsan" "preset tsan: every test under ThreadSanitizer but -E '$tsan_skip'" \
    ctest_stage tsan -LE package -E "$tsan_skip"
  stage "fuzz" "tests/fuzz/run.sh $fuzz_seconds: build/fuzz (clang, ASan+UBSan), each libFuzzer target ${fuzz_seconds} s" \
    tests/fuzz/run.sh "$fuzz_seconds"
fi
echo
printf '%s\n' "stage times:" "${times[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED stages: ${failed[*]}" >&2
  exit 1
fi
