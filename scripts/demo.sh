#!/usr/bin/env bash
# The newcomer's first command: installs dependencies, builds filesync, and mirrors the bundled
# demo folder (examples/demo/photos) into a local "cloud" folder with the embedded local backend
# (no account needed), then shows what it did and that a second pass has nothing to do.
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

echo "== plan: what the first pass will do"
"$bin" --config "$work/filesync.toml" plan
echo "== sync"
"$bin" --config "$work/filesync.toml" sync
echo "== the cloud folder now holds:"
(cd "$work/cloud" && find . -path ./.filesync-staging -prune -o -print | sort)
echo "== rename a folder and edit a file, then plan and sync again"
mv "$work/photos/2023" "$work/photos/2023-archive"
echo "edited $(date)" >> "$work/photos/notes.txt"
"$bin" --config "$work/filesync.toml" plan
"$bin" --config "$work/filesync.toml" sync
echo "== status"
"$bin" --config "$work/filesync.toml" status
echo "Demo done. To keep mirroring continuously: $bin --config $work/filesync.toml run"
