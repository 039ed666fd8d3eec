#!/usr/bin/env bash
# Classifies regions of interest: the items of a sample video, their boxes put on the frames as
# a detector upstream would (GstVideoRegionOfInterestMeta), through monefilter
# inference-region=roi-list; prints per budget the items the regions got right beside the whole
# frames, and what a region costs. -a (GStreamer >= 1.24): the boxes as GstAnalyticsODMtd
# detections instead, and -o draws them with GStreamer's objectdetectionoverlay, labelled with
# monefilter's classes.
#
#   pipelines/regions.sh [-a] [-m MODEL] [-b BUDGETS] [-o ANNOTATED.mkv] [FILE]
#
# FILE defaults to the sample video (pipelines/sample/scene.mp4, made by pipelines/demo.sh or
# tools/mone-sample-video), which must have its labels CSV beside it.
set -euo pipefail
source "$(dirname "$0")/env.sh"
model=${MONE_MODEL:-$mone_default_model}
budget=1,0.5   # a list of budgets here
output=
detections=
usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; }
mone_parse_options "am:b:o:" "$@"
mone_take_file "${mone_operands[@]}"
file=$mone_file
mone_require_element monefilter "Build the plugin (ninja -C build) or set MONE_BUILD_DIR."
mone_require_model "$model"
regions=$mone_build_dir/pipelines/mone-regions
[ -x "$regions" ] || { echo "regions.sh: $regions not built (ninja -C ${mone_build_dir:-build})" >&2; exit 1; }
exec "$regions" --video "$file" --model "$model" --budgets "$budget" ${output:+--output "$output"} \
  ${detections:+--detections}
