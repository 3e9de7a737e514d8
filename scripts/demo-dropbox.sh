#!/usr/bin/env bash
# The demo through Dropbox's API: installs the build dependencies plus curl and python3
# (scripts/setup.sh --demo-dropbox), builds filesync and the bundled Dropbox API emulator (release
# preset), starts the emulator on a loopback port, mirrors examples/demo/photos into it with the
# Dropbox backend, and prints how many API requests each step cost: the first sync, a no-change
# sync, and a sync after a folder rename and a file edit; then what the emulator holds. No
# account needed.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --demo-dropbox
cmake --preset release >/dev/null
cmake --build --preset release --target filesync filesync-dropbox-emulator
bin=build/release/src/cli/filesync
emulator=build/release/tools/dropbox_emulator/filesync-dropbox-emulator

work=build/demo-dropbox
rm -rf "$work"
mkdir -p "$work/emulator-data"
cp -a examples/demo/photos "$work/photos"
mkdir -p "$work/photos/empty-album"

token="demo-$RANDOM$RANDOM"
"$emulator" --listen 127.0.0.1:0 --data "$work/emulator-data" --token "$token" > "$work/emulator.log" 2>&1 &
emulator_pid=$!
trap 'kill $emulator_pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q "listening on" "$work/emulator.log" 2>/dev/null && break; sleep 0.1; done
if ! grep -q "listening on" "$work/emulator.log"; then
  echo "demo: the emulator did not start within 10 s; its log ($work/emulator.log):" >&2
  cat "$work/emulator.log" >&2
  exit 1
fi
url=$(head -1 "$work/emulator.log" | awk '{print $3}')
echo "== Dropbox API emulator at $url"

umask 077  # the config holds a token
cat > "$work/filesync.toml" <<TOML
client_sync_dirs = ["$PWD/$work/photos"]
cloud_root = "/backup"
state_dir = "$PWD/$work/state"
backend = "dropbox"
dbx_token = "$token"
dbx_api_url = "$url"
dbx_content_url = "$url"
dbx_notify_url = "$url"
exclude = ["*.tmp"]
TOML

requests() { curl -s "$url/admin/counters"; echo; curl -s -X POST "$url/admin/counters/reset" >/dev/null; }
echo "== first sync"
"$bin" --config "$work/filesync.toml" sync
echo "requests: $(requests)"
echo "== no-change sync"
"$bin" --config "$work/filesync.toml" sync
echo "requests: $(requests)"
echo "== rename a folder, edit a file"
mv "$work/photos/2023" "$work/photos/2023-archive"
echo "edited $(date)" >> "$work/photos/notes.txt"
"$bin" --config "$work/filesync.toml" sync
echo "requests: $(requests)"
echo "== what Dropbox (the emulator) holds under /backup/photos:"
curl -s -X POST "$url/2/files/list_folder" -H "Authorization: Bearer $token" -H "Content-Type: application/json" \
  -d '{"path":"/backup/photos","recursive":true}' |
  python3 -c 'import json,sys; [print(e[".tag"].ljust(7), e["path_display"]) for e in json.load(sys.stdin)["entries"]]'
