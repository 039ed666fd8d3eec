#!/usr/bin/env bash
# Classifies an RTSP stream with monefilter and prints one line per classified frame.
#
#   pipelines/rtsp.sh [-m MODEL] [-b BUDGET] [-c SCALE_MODE] [-i INTERVAL] [-s SINK] rtsp://HOST:PORT/PATH
#
# SINK defaults to fakesink; `-s autovideosink` shows the stream (annotated by moneoverlay when
# the plugin has it). Frames are classified as they arrive; rtspsrc's latency is set low (200 ms).
set -euo pipefail
source "$(dirname "$0")/env.sh"

model=${MONE_MODEL:-$mone_default_model}
budget=0.5
interval=1
scale_mode=letterbox
sink=fakesink
usage() {
  sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'
  echo "defaults: -m $model -b $budget -c $scale_mode -i $interval -s $sink"
}
mone_parse_options "m:b:i:s:c:" "$@"
set -- "${mone_operands[@]}"
if [ $# -ne 1 ]; then
  usage >&2
  exit 2
fi
location=$1
mone_require_element rtspsrc "Install gstreamer1.0-plugins-good."
mone_require_element monefilter "Build the plugin (ninja -C build) or set MONE_BUILD_DIR."
mone_require_model "$model"
mone_require_budget "$budget"
mone_require_interval "$interval"

tail=$(mone_display_chain "$sink")
gst-launch-1.0 -m rtspsrc location="$location" latency=200 ! decodebin ! videoconvert ! \
  monefilter model="$model" budget="$budget" interval="$interval" scale-mode="$scale_mode" message=true ! \
  $tail $sink | mone_print_results
