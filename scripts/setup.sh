#!/usr/bin/env bash
# Installs everything filesync needs to build, test and benchmark on Debian 12 (run as root, or
# with sudo available). Safe to run again: apt skips what is installed.
set -euo pipefail
packages=(
  build-essential cmake ninja-build ccache pkg-config git
  libssl-dev libsqlite3-dev libcurl4-openssl-dev libtomlplusplus-dev nlohmann-json3-dev
  libcli11-dev libspdlog-dev libfmt-dev libcpp-httplib-dev libutf8proc-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  clang libclang-rt-14-dev time curl openssl python3 python3-dropbox
  # issue 15: sd_notify (build); systemd-analyze, man, lintian and debootstrap (packaging tests)
  libsystemd-dev systemd man-db lintian debootstrap
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi
