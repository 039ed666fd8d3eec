#!/usr/bin/env bash
# Classifies a video and writes one JSON line per frame (schema: docs/publish.md).
#
#   pipelines/publish-file.sh [-m MODEL] [-o OUT] [FILE]
#
# OUT defaults to "-" (stdout); a file is appended to, so several pipelines may share it. FILE
# defaults to the sample video (pipelines/sample/, made by pipelines/demo.sh).
set -euo pipefail
source "$(dirname "$0")/env.sh"
model=${MONE_MODEL:-$mone_default_model}
output=-
usage() { sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; }
mone_parse_options "m:o:" "$@"
mone_take_file "${mone_operands[@]}"
mone_require_element monepublish "Build the plugin (ninja -C build) or set MONE_BUILD_DIR."
mone_require_model "$model"
# -q: with OUT on stdout, gst-launch's own lines would mix with the JSON (errors still print).
gst-launch-1.0 -q filesrc location="$mone_file" ! decodebin ! videoconvert \
  ! monefilter model="$model" ! monepublish file-path="$output" ! fakesink
