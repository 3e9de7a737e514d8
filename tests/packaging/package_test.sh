#!/usr/bin/env bash
# The Debian package end to end: build it as README says (cmake --workflow --preset package),
# run lintian on it (errors fail the test), then install it with apt into a fresh Debian 12 root
# made by debootstrap and use it there: --version, the man page, bash completion, the system
# user and state dir, a one-shot sync with the shipped example config, `systemd-analyze verify`
# on the installed units, then removal and purge.
#
# Usage: package_test.sh SOURCE_DIR WORK_DIR
# WORK_DIR keeps the debootstrap'd root as a tarball (bookworm-minbase.tar), so later runs skip
# the download; each run unpacks a fresh copy. Exit 77 (skipped) when not root, without
# debootstrap or lintian, or without access to the Debian mirror ($FILESYNC_DEBIAN_MIRROR,
# default http://deb.debian.org/debian).
set -euo pipefail

src=$1
work=$2
mirror=${FILESYNC_DEBIAN_MIRROR:-http://deb.debian.org/debian}
start=$SECONDS

skip() {
    echo "SKIPPED: $*"
    exit 77
}
stage() { echo "== [$((SECONDS - start)) s] $*"; }
fail() {
    echo "FAILED: $*" >&2
    exit 1
}

[ "$(id -u)" -eq 0 ] || skip "needs root (debootstrap, chroot, mount)"
for tool in debootstrap lintian dpkg-deb curl; do
    command -v "$tool" >/dev/null || skip "$tool is not installed (apt-get install debootstrap lintian curl)"
done
curl -fsS --max-time 30 -o /dev/null "$mirror/dists/bookworm/Release" ||
    skip "cannot reach $mirror (no network?)"

# --- build ---------------------------------------------------------------------------------------
stage "building the package: cmake --workflow --preset package"
rm -f "$src"/build/package/filesync_*.deb
(cd "$src" && nice -n 10 cmake --workflow --preset package) >"$work.build.log" 2>&1 ||
    fail "cmake --workflow --preset package failed; see $work.build.log: $(tail -20 "$work.build.log")"
debs=("$src"/build/package/filesync_*.deb)
[[ ${#debs[@]} -eq 1 && -f ${debs[0]} ]] ||
    fail "expected one build/package/filesync_*.deb, got: ${debs[*]}"
deb=${debs[0]}
version=$(dpkg-deb -f "$deb" Version)
echo "package: $deb (version $version)"
dpkg-deb -f "$deb" Depends
grep -q "project(filesync VERSION $version " "$src/CMakeLists.txt" ||
    fail "package version $version is not project(VERSION) in CMakeLists.txt"

# --- lintian -------------------------------------------------------------------------------------
stage "lintian"
lintian_status=0
lintian --fail-on error --display-info "$deb" || lintian_status=$?
[ "$lintian_status" -eq 0 ] || fail "lintian reports errors (exit $lintian_status)"

# --- a clean Debian 12 root ----------------------------------------------------------------------
mkdir -p "$work"
tarball=$work/bookworm-minbase.tar
if [ ! -s "$tarball" ]; then
    stage "debootstrap bookworm (first run; cached in $tarball)"
    rm -rf "$work/bootstrap"
    debootstrap --variant=minbase bookworm "$work/bootstrap" "$mirror" >"$work/debootstrap.log" 2>&1 ||
        fail "debootstrap failed; see $work/debootstrap.log"
    tar --numeric-owner -C "$work/bootstrap" -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    rm -rf "$work/bootstrap"
fi
root=$work/root
cleanup() {
    for m in dev/pts dev proc; do
        mountpoint -q "$root/$m" 2>/dev/null && umount -l "$root/$m"
    done
    rm -rf "$root"
}
cleanup
trap cleanup EXIT
stage "unpacking a fresh root"
mkdir -p "$root"
tar --numeric-owner -C "$root" -xpf "$tarball"
mount -t proc proc "$root/proc"
mount --bind /dev "$root/dev"
mount --bind /dev/pts "$root/dev/pts"
cp /etc/resolv.conf "$root/etc/resolv.conf"
in_root() { chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"; }

# --- install -------------------------------------------------------------------------------------
stage "apt-get install ./$(basename "$deb")"
cp "$deb" "$root/tmp/"
in_root apt-get update -qq
in_root sh -c "cd /tmp && apt-get install -y -q ./$(basename "$deb")" || fail "apt-get install failed"
[ -x "$root/usr/bin/filesync" ] || fail "/usr/bin/filesync is not installed"

stage "checking the installed package"
got=$(in_root filesync --version)
[ "$got" = "filesync $version" ] || fail "filesync --version printed '$got', expected 'filesync $version'"
files=$(in_root dpkg -L filesync)
for f in /usr/bin/filesync /usr/share/man/man1/filesync.1.gz \
    /usr/share/bash-completion/completions/filesync /lib/systemd/system/filesync.service \
    /usr/lib/systemd/user/filesync@.service /usr/share/doc/filesync/copyright \
    /usr/share/doc/filesync/changelog.gz /usr/share/doc/filesync/examples/filesync.toml /etc/filesync; do
    grep -qx "$f" <<<"$files" || fail "the package does not ship $f"
done
if grep -E 'emulator|_test|bench' <<<"$files"; then fail "the package ships test or emulator files"; fi
zcat "$root/usr/share/man/man1/filesync.1.gz" | grep -q "^\.TH FILESYNC 1 .*\"filesync $version\"" ||
    fail "the man page's .TH does not carry version $version"
in_root getent passwd filesync >/dev/null || fail "postinst did not create the user filesync"
state_dir_mode=$(in_root stat -c '%U:%G %a' /var/lib/filesync)
[ "$state_dir_mode" = "filesync:filesync 700" ] ||
    fail "/var/lib/filesync is $state_dir_mode, expected filesync:filesync 700"
# shellcheck disable=SC2016 # expanded by the bash inside the root
completions=$(in_root bash -c 'source /usr/share/bash-completion/completions/filesync;
    COMP_WORDS=(filesync s); COMP_CWORD=1; _filesync; echo "${COMPREPLY[*]}"')
[ "$completions" = "sync status" ] || fail "completion of 'filesync s' gave '$completions'"

# --- a one-shot sync with the shipped example config, as the service would run it -------------
stage "one-shot sync as the user filesync with the example config"
cp "$root/usr/share/doc/filesync/examples/filesync.toml" "$root/etc/filesync/filesync.toml"
mkdir -p "$root/srv/data/sub"
echo "hello from the chroot" >"$root/srv/data/hello.txt"
head -c 3000000 /dev/urandom >"$root/srv/data/sub/random.bin"
chmod -R a+rX "$root/srv/data"
ids=$(in_root id -u filesync):$(in_root id -g filesync)
as_filesync() { chroot --userspec="$ids" "$root" env -i PATH=/usr/bin:/bin HOME=/var/lib/filesync LC_ALL=C.UTF-8 "$@"; }
as_filesync filesync --config /etc/filesync/filesync.toml sync || fail "filesync sync exited $?"
mirror_dir=$root/var/lib/filesync/cloud/filesync/data
cmp "$root/srv/data/hello.txt" "$mirror_dir/hello.txt" || fail "hello.txt was not mirrored"
cmp "$root/srv/data/sub/random.bin" "$mirror_dir/sub/random.bin" || fail "sub/random.bin was not mirrored"
status=$(as_filesync filesync --config /etc/filesync/filesync.toml status)
echo "$status"
grep -q "last pass: complete" <<<"$status" || fail "filesync status does not show a complete pass"
as_filesync filesync --config /etc/filesync/filesync.toml plan | grep -q "in sync: nothing to do" ||
    fail "plan after sync is not empty"

# --- the installed units, with systemd and man-db from Debian -------------------------------------
stage "systemd-analyze verify on the installed units"
in_root apt-get install -y -q --no-install-recommends systemd man-db >/dev/null
in_root man -w filesync || fail "man -w filesync finds no page"
verify=$(in_root systemd-analyze verify /lib/systemd/system/filesync.service 2>&1) ||
    fail "systemd-analyze verify filesync.service: $verify"
[ -z "$verify" ] || fail "systemd-analyze verify filesync.service warns: $verify"
mkdir -p "$root/run/user/0"
verify=$(in_root env XDG_RUNTIME_DIR=/run/user/0 systemd-analyze --user verify \
    /usr/lib/systemd/user/filesync@photos.service 2>&1) || fail "systemd-analyze --user verify: $verify"
[ -z "$verify" ] || fail "systemd-analyze --user verify filesync@.service warns: $verify"

# --- removal and purge ----------------------------------------------------------------------------
stage "apt-get remove, then purge"
in_root apt-get remove -y -q filesync >/dev/null || fail "apt-get remove failed"
[ ! -e "$root/usr/bin/filesync" ] || fail "/usr/bin/filesync is still there after remove"
in_root apt-get purge -y -q filesync >/dev/null || fail "apt-get purge failed"
[ -f "$mirror_dir/hello.txt" ] || fail "purge deleted the local backend's cloud folder (a backup)"

stage "passed"
