#!/usr/bin/env bash
# Installs the Debian 12 packages filesync needs (run as root, or with sudo available). Safe to
# run again: only packages that are not installed yet are installed.
#   scripts/setup.sh                  building filesync and the emulator (scripts/demo.sh)
#   scripts/setup.sh --demo-dropbox   that, plus what scripts/demo-dropbox.sh runs (curl, python3)
#   scripts/setup.sh --test           that, plus the tests, sanitizer and fuzz builds and the
#                                     micro-benchmarks (scripts/test.sh, bench/run)
# It prints each group and what it installs before apt-get runs (a minute or more on a fresh machine).
set -euo pipefail

# One package per line, so adding one is a one-line change.
build_packages=(
  build-essential
  cmake
  ninja-build
  ccache
  pkg-config
  libssl-dev
  libsqlite3-dev
  libcurl4-openssl-dev
  libtomlplusplus-dev
  nlohmann-json3-dev
  libcli11-dev
  libspdlog-dev
  libfmt-dev
  libcpp-httplib-dev
  libutf8proc-dev
  libsystemd-dev      # sd_notify for the systemd unit (Type=notify)
)
demo_dropbox_packages=(
  curl     # asks the emulator for its request counters and listing
  python3  # prints the listing
)
test_packages=(
  libgtest-dev
  libgmock-dev
  libbenchmark-dev    # the ci preset also builds bench/
  clang               # tests/fuzz/run.sh (libFuzzer) and the tsan preset (lock annotations)
  libclang-rt-14-dev  # libFuzzer and the ASan/UBSan/TSan runtimes for clang
  python3
  python3-dropbox     # tests/conformance: Dropbox's own SDK against the emulator
  openssl             # TLS tests make their certificates with the openssl CLI
  rclone              # tests/conformance/rclone_test: an independent Dropbox client
  systemd             # systemd-analyze verify on the units (tests/packaging)
  man-db              # the man page renders without warnings (tests/packaging)
  lintian             # the .deb has no lintian errors (label package)
  debootstrap         # the .deb installs into a clean Debian 12 root (label package)
  prometheus          # promtool check metrics on the /metrics output (tests/ops)
  chromium            # the status page, loaded in headless Chromium (tests/ops)
)

usage() { echo "usage: scripts/setup.sh [--demo-dropbox] [--test]" >&2; exit 2; }
groups=(build)
for arg in "$@"; do
  case $arg in
    --demo-dropbox) groups+=(demo_dropbox) ;;
    --test) groups+=(test) ;;
    *) usage ;;
  esac
done

missing=()
for group in "${groups[@]}"; do
  declare -n list="${group}_packages"
  group_missing=()
  for p in "${list[@]}"; do
    [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || group_missing+=("$p")
  done
  echo "setup: ${group//_/-} packages (${#list[@]}): ${list[*]}"
  if ((${#group_missing[@]})); then
    echo "setup:   to install: ${group_missing[*]}"
    missing+=("${group_missing[@]}")
  else
    echo "setup:   all installed"
  fi
  unset -n list
done
((${#missing[@]})) || exit 0
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)  # groups share a few packages

sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
export DEBIAN_FRONTEND=noninteractive
echo "setup: apt-get update"
"${sudo_cmd[@]}" apt-get update -qq
echo "setup: apt-get install ${#missing[@]} packages and their dependencies"
start=$SECONDS
"${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
echo "setup: installed in $((SECONDS - start)) s"
