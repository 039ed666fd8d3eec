#!/usr/bin/env bash
# Runs the project's test command (tools/test.sh) in a Debian 13 (trixie) root, where GStreamer is
# 1.26 and the analytics library (GstAnalyticsClsMtd) exists: the code paths Debian 12's 1.22
# never compiles. Everything comes from Debian's archive: debootstrap builds the root once
# (about a minute) and later runs reuse it; the checkout is bind-mounted read-only and built in a
# folder of the root. Needs root (debootstrap, chroot, mount).
#
#   tools/debian13.sh             # build or reuse the root, then build and test there
#   tools/debian13.sh CMD ARGS... # ...or build there and run CMD (from the checkout) instead
#   MONE_DEBIAN13_ROOT=DIR tools/debian13.sh
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
root=${MONE_DEBIAN13_ROOT:-/var/cache/gst-mone/debian13}
mirror=${MONE_DEBIAN_MIRROR:-http://deb.debian.org/debian}

if [ "$(id -u)" -ne 0 ]; then
  echo "debian13.sh: needs root (debootstrap, chroot, mount)" >&2
  exit 2
fi
if ! command -v debootstrap > /dev/null; then
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y debootstrap
fi
# debootstrap keeps its work folder in the root until it succeeds: a root that still has it was
# interrupted, and is built again (after checking that nothing is still mounted inside it).
if [ -d "$root/debootstrap" ]; then
  if grep -q " $root/" /proc/mounts; then
    echo "debian13.sh: $root is an interrupted root with file systems still mounted in it;" \
      "unmount them (grep $root /proc/mounts) and run again" >&2
    exit 1
  fi
  echo "debian13.sh: $root was left unfinished by an interrupted debootstrap; building it again"
  rm -rf --one-file-system "$root"
fi
if [ ! -x "$root/usr/bin/apt-get" ]; then
  echo "debian13.sh: creating a Debian 13 root in $root"
  mkdir -p "$root"
  debootstrap --variant=minbase trixie "$root" "$mirror"
fi

mounted=()
cleanup () {
  local i
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
    umount -l "${mounted[$i]}" 2> /dev/null || true
  done
}
trap cleanup EXIT
bind () { # bind SOURCE TARGET [ro]
  mkdir -p "$2"
  mount --bind "$1" "$2"
  mounted+=("$2")
  if [ "${3:-}" = ro ]; then mount -o remount,bind,ro "$2"; fi
}
bind /proc "$root/proc"
bind /sys "$root/sys"
bind /dev "$root/dev"
bind /dev/pts "$root/dev/pts"
bind "$src" "$root/src" ro
cp /etc/resolv.conf "$root/etc/resolv.conf"

# The same test command as on Debian 12, plus the 1.26-only dependencies; the build folder lives
# in the root, so the read-only checkout stays clean. With a command: the same packages and build,
# then the command.
command=("$@")
if [ ${#command[@]} -eq 0 ]; then
  run='tools/test.sh'
else
  run='tools/install-deps.sh --tests && { [ -f "$MONE_BUILD_DIR/build.ninja" ] ||
    meson setup "$MONE_BUILD_DIR" --buildtype=debugoptimized; } && ninja -C "$MONE_BUILD_DIR" && "$@"'
fi
chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
  OPENBLAS_CORETYPE="${OPENBLAS_CORETYPE-Haswell}" MONE_BUILD_DIR=/var/tmp/gst-mone-build \
  MONE_EXTRA_PACKAGES="libgstreamer-plugins-bad1.0-dev gstreamer1.0-plugins-bad" \
  bash -c 'cd /src && gst-launch-1.0 --version 2> /dev/null | head -1; '"$run" bash "${command[@]}"
