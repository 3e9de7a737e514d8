#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan + fuzzer instrumentation) in build/fuzz
# and runs each for N seconds (default 20) from its seed corpus in tests/fuzz/corpus/<target>/.
#   tests/fuzz/run.sh            # 20 s per target
#   tests/fuzz/run.sh 600        # 10 min per target
#   tests/fuzz/run.sh 60 paths   # only the named target(s)
# New inputs go to build/fuzz/corpus/<target>/ (the committed corpus is only read); a crash
# leaves build/fuzz/crash-* and makes the script exit 1.
set -euo pipefail
seconds="${1:-20}"
shift || true
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="$root/build/fuzz"
jobs="${FILESYNC_FUZZ_JOBS:-2}"

CC=clang CXX=clang++ cmake -S "$root" -B "$build" -G Ninja \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFILESYNC_BUILD_FUZZ=ON -DFILESYNC_BUILD_BENCH=OFF \
  -DFILESYNC_SANITIZE=address,undefined -DCMAKE_CXX_FLAGS=-fsanitize=fuzzer-no-link \
  >"$build.configure.log" 2>&1 || { cat "$build.configure.log"; exit 1; }

# Every target must exist: a missing one is an error naming it, never a silent skip. The target
# list is read into a variable first; piping ninja into `grep -q` under pipefail would fail
# whenever grep exits before ninja has written everything (SIGPIPE), dropping targets at random.
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(config_loader paths exclude dropbox_parsing emulator_wire)
known="$(ninja -C "$build" -t targets all)"
missing=()
for t in "${targets[@]}"; do
  grep -qx "fuzz_$t: phony" <<<"$known" || missing+=("fuzz_$t")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "tests/fuzz/run.sh: no such fuzz target in $build: ${missing[*]}" >&2
  echo "  (targets are defined in tests/fuzz/CMakeLists.txt and need clang; configure log: $build.configure.log)" >&2
  grep "FILESYNC_BUILD_FUZZ" "$build.configure.log" >&2 || true
  exit 1
fi
cmake --build "$build" -j "$jobs" --target "${targets[@]/#/fuzz_}"

status=0
for t in "${targets[@]}"; do
  mkdir -p "$build/corpus/$t"
  log="$build/fuzz_$t.log"
  echo "== fuzz_$t: ${seconds} s"
  if ! (cd "$build" && "./tests/fuzz/fuzz_$t" -max_total_time="$seconds" -print_final_stats=1 \
        -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
        "$build/corpus/$t" "$root/tests/fuzz/corpus/$t" >"$log" 2>&1); then
    echo "   FAILED: see $log"; tail -30 "$log"; status=1
  fi
  execs="$(grep -m1 'stat::number_of_executed_units' "$log" | awk '{print $2}')"
  echo "   executions: ${execs:-?} ($(grep -m1 'stat::average_exec_per_sec' "$log" | awk '{print $2}') /s)"
done
exit $status
