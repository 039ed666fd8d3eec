#!/usr/bin/env bash
# Classifies a video file with monefilter and prints one line per classified frame.
#
#   pipelines/file.sh [-m MODEL] [-b BUDGET] [-c SCALE_MODE] [-i INTERVAL] [-s SINK] [FILE]
#
# FILE defaults to the sample video (pipelines/sample/scene.mp4, made by pipelines/demo.sh or
# tools/mone-sample-video). SCALE_MODE defaults to the element's stretch, as the scene model saw
# camera frames (`-c crop` for full-frame samples, whose item is the centre square). SINK defaults
# to fakesink (as fast as the CPU allows); `-s autovideosink` shows the video at its own rate,
# with moneoverlay drawing the results when the plugin has it.
set -euo pipefail
source "$(dirname "$0")/env.sh"

model=${MONE_MODEL:-$mone_default_model}
budget=1.0
interval=1
scale_mode=stretch
sink=fakesink
usage() {
  sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
  echo "defaults: -m $model -b $budget -c $scale_mode -i $interval -s $sink"
}
mone_parse_options "m:b:i:s:c:" "$@"
mone_take_file "${mone_operands[@]}"
file=$mone_file
mone_require_element monefilter "Build the plugin (ninja -C build) or set MONE_BUILD_DIR."
mone_require_model "$model"
mone_require_budget "$budget"
mone_require_interval "$interval"

tail=$(mone_display_chain "$sink")
gst-launch-1.0 -m filesrc location="$file" ! decodebin ! videoconvert ! \
  monefilter model="$model" budget="$budget" interval="$interval" scale-mode="$scale_mode" message=true ! \
  $tail $sink | mone_print_results
