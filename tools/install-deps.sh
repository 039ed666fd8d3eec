#!/usr/bin/env bash
# Installs the Debian 12 packages gst-mone needs to build and run its demo; with --tests also
# what only the test suite needs (valgrind, the Python GI example, PyTorch for the engine's
# second implementation: about 120 MB that the demo should not make a new user download).
# Skips apt entirely when everything is already installed; uses sudo when not root.
set -euo pipefail

with_tests=0
case "${1:-}" in
  "") ;;
  --tests) with_tests=1 ;;
  *) echo "usage: $0 [--tests]" >&2; exit 2 ;;
esac

packages=(
  # build
  # dpkg-dev: meson asks its dpkg-architecture for Debian's multiarch lib/<triplet> directory
  gcc libc6-dev dpkg-dev meson ninja-build pkg-config
  libglib2.0-dev libopenblas-dev zlib1g-dev
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstrtspserver-1.0-dev
  libcairo2-dev libpango1.0-dev
  # monepublish: JSON (json-glib) and MQTT (libmosquitto, Debian's pkg-config name libmosquitto)
  libjson-glib-dev libmosquitto-dev
  # run: plugins for decoding/encoding (vp8, webm; H.264 through openh264enc/openh264dec and
  # h264parse of gstreamer1.0-plugins-bad, which depends on libopenh264-7; mp4mux), RTSP, tools
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-rtsp
  # data and plots
  dataset-fashion-mnist gnuplot-nox
)
test_packages=(
  # valgrind runs, Python GI example, PyTorch reference of the engine (tests/engine)
  valgrind python3 python3-gi python3-gst-1.0 gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0
  python3-torch
  # monepublish tests: a real MQTT broker on 127.0.0.1
  mosquitto
)
# Further packages a caller needs on top (tools/debian13.sh: GStreamer 1.26's analytics library).
read -r -a extra_packages <<< "${MONE_EXTRA_PACKAGES:-}"
packages+=("${extra_packages[@]}")
missing_among () {
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
  done
}
mapfile -t missing < <(missing_among "${packages[@]}")
missing_tests=()
[ "$with_tests" -eq 0 ] || mapfile -t missing_tests < <(missing_among "${test_packages[@]}")
if [ ${#missing[@]} -eq 0 ] && [ ${#missing_tests[@]} -eq 0 ]; then
  exit 0
fi
echo "install-deps: installing ${missing[*]} ${missing_tests[*]}"
sudo=""
# Through sudo, whose env_reset would drop DEBIAN_FRONTEND and let a package ask a question.
[ "$(id -u)" -eq 0 ] || sudo="sudo env DEBIAN_FRONTEND=noninteractive"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update
[ ${#missing[@]} -eq 0 ] || $sudo apt-get install -y "${missing[@]}"
# No recommends: python3-torch would add libtorch-dev, eigen and protobuf headers (50 MB).
[ ${#missing_tests[@]} -eq 0 ] || $sudo apt-get install -y --no-install-recommends "${missing_tests[@]}"
