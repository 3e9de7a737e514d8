#!/usr/bin/env bash
# The newcomer's first command: installs the build dependencies (scripts/setup.sh; no test
# toolchain), builds filesync (release preset: no tests, no benchmarks), and mirrors the bundled
# demo folder (examples/demo/photos) into a local "cloud" folder with the embedded local backend
# (no account needed). It shows the cloud tree after the first pass and after a folder rename and
# a file edit, then runs a no-change pass and fails if that pass changed the cloud folder.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake --preset release >/dev/null
cmake --build --preset release --target filesync
bin=build/release/src/cli/filesync

work=build/demo
rm -rf "$work"
mkdir -p "$work"
cp -a examples/demo/photos "$work/photos"
mkdir -p "$work/photos/empty-album"  # git cannot carry an empty folder; filesync mirrors them
cat > "$work/filesync.toml" <<TOML
client_sync_dirs = ["$PWD/$work/photos"]
cloud_root = "/backup"
local_cloud_dir = "$PWD/$work/cloud"
state_dir = "$PWD/$work/state"
poll_interval = 5
exclude = ["*.tmp"]
TOML
filesync() { "$bin" --config "$work/filesync.toml" "$@"; }
# Everything filesync mirrored; not the cloud folder itself nor filesync's staging folder in it,
# which each pass empties.
cloud_files() { (cd "$work/cloud" && find . -mindepth 1 -path ./.filesync-staging -prune -o "$@" | sort); }
show_cloud() {
  echo "== the cloud folder ($work/cloud) now holds:"
  cloud_files -print
}

echo "== plan: what the first pass will do"
filesync plan
echo "== sync"
filesync sync
show_cloud
echo "== rename a folder (2023 -> 2023-archive) and edit a file, then plan and sync again"
mv "$work/photos/2023" "$work/photos/2023-archive"
echo "edited $(date)" >> "$work/photos/notes.txt"
filesync plan
filesync sync
show_cloud
echo "== no-change pass: plan and sync again with nothing changed"
filesync plan
before=$(cloud_files -printf '%p %y %s %i %T@\n')
filesync sync
if [ "$(cloud_files -printf '%p %y %s %i %T@\n')" != "$before" ]; then
  echo "demo: the no-change pass changed the cloud folder" >&2
  exit 1
fi
echo "the cloud folder is unchanged: no entry written, moved or deleted"
echo "== status"
filesync status
echo "Demo done. To keep mirroring continuously: $bin --config $work/filesync.toml run"
