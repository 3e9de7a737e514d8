#!/usr/bin/env bash
# The test command: installs dependencies, builds with warnings as errors, and runs every test
# (unit and integration) under ctest; then the unit tests again under ASan+UBSan and under TSan.
# FILESYNC_SKIP_SANITIZERS=1 skips the sanitizer builds (a quicker local loop).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
jobs=$(nproc)

cmake --preset ci >/dev/null
cmake --build --preset ci -j "$jobs"
ctest --preset ci

if [ "${FILESYNC_SKIP_SANITIZERS:-0}" != 1 ]; then
  for preset in asan-ubsan tsan; do
    cmake --preset "$preset" >/dev/null
    cmake --build --preset "$preset" -j "$jobs"
    # Sanitizers run the unit tests: every module, real threads, no timing-sensitive processes.
    ctest --preset "$preset" -L unit
  done
fi
