#!/usr/bin/env bash
# Installs the Debian 12 packages gst-mone needs to build, test and run its demo.
# Skips apt entirely when everything is already installed; uses sudo when not root.
set -euo pipefail

packages=(
  # build
  gcc libc6-dev meson ninja-build pkg-config
  libglib2.0-dev libopenblas-dev zlib1g-dev
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstrtspserver-1.0-dev
  libcairo2-dev libpango1.0-dev
  # run: plugins for decoding/encoding (vp8, webm), RTSP, tools
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-rtsp
  # data and plots
  dataset-fashion-mnist gnuplot-nox
  # tests: valgrind runs, Python GI example, PyTorch reference of the engine (tests/engine)
  valgrind python3 python3-gi python3-gst-1.0 gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0
  python3-torch
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update
$sudo apt-get install -y "${missing[@]}"
