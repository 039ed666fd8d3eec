#!/usr/bin/env bash
# Classifies a video and writes one JSON line per frame (schema: docs/publish.md).
#
#   pipelines/publish-file.sh [-m MODEL] [-o OUT] [FILE]
#
# OUT defaults to "-" (stdout); a file is appended to, so several pipelines may share it.
set -euo pipefail
source "$(dirname "$0")/env.sh"
model=${MONE_MODEL:-$mone_default_model}
out=-
while getopts "m:o:h" opt; do
  case $opt in
    m) model=$OPTARG ;;
    o) out=$OPTARG ;;
    *) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  esac
done
shift $((OPTIND - 1))
file=${1:-$(dirname "$0")/sample/scene.mp4}
gst-launch-1.0 -q filesrc location="$file" ! decodebin ! videoconvert \
  ! monefilter model="$model" ! monepublish file-path="$out" ! fakesink
