#!/usr/bin/env bash
# Classifies a V4L2 camera with monefilter, shows the annotated video and prints the results.
#
#   pipelines/camera.sh [-m MODEL] [-b BUDGET] [-c SCALE_MODE] [-d DEVICE] [-s SINK]
#
# DEVICE defaults to /dev/video0, SINK to autovideosink (use fakesink on a machine without a
# display). The budget can also be changed while it plays: see pipelines/mone-example.
set -euo pipefail
source "$(dirname "$0")/env.sh"

model=${MONE_MODEL:-$mone_default_model}
budget=0.5
device=/dev/video0
scale_mode=letterbox
sink=autovideosink
usage() {
  sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'
  echo "defaults: -m $model -b $budget -c $scale_mode -d $device -s $sink"
}
mone_parse_options "m:b:d:s:c:" "$@"
set -- "${mone_operands[@]}"
if [ $# -gt 0 ]; then
  echo "camera.sh: unexpected argument '$1'" >&2
  usage >&2
  exit 2
fi
if [ ! -e "$device" ]; then
  echo "camera.sh: no camera at $device (pass -d DEVICE)" >&2
  exit 1
fi
mone_require_element v4l2src "Install gstreamer1.0-plugins-good."
mone_require_element monefilter "Build the plugin (ninja -C build) or set MONE_BUILD_DIR."
mone_require_model "$model"
mone_require_budget "$budget"

overlay=""
if gst-inspect-1.0 moneoverlay >/dev/null 2>&1; then
  overlay="moneoverlay ! videoconvert !"
fi
# A camera frame is wider than the model's square input: letterbox keeps the whole picture.
gst-launch-1.0 -m v4l2src device="$device" ! videoconvert ! \
  monefilter model="$model" budget="$budget" scale-mode="$scale_mode" message=true ! \
  videoconvert ! $overlay $sink sync=false | mone_print_results
