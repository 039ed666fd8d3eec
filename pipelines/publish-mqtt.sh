#!/usr/bin/env bash
# Classifies a video and publishes one JSON message per frame (QoS 1) to an MQTT broker
# (schema: docs/publish.md). The stream never waits on the broker: see max-queue and dropped.
#
#   pipelines/publish-mqtt.sh [-m MODEL] [-H HOST] [-p PORT] [-t TOPIC] [FILE]
#
# HOST:PORT defaults to 127.0.0.1:1883 (Debian's mosquitto broker), TOPIC to mone/classification,
# FILE to the sample video (pipelines/sample/, made by pipelines/demo.sh). A broker that cannot be
# reached is reported as a warning, and the results queued for it are dropped.
set -euo pipefail
source "$(dirname "$0")/env.sh"
model=${MONE_MODEL:-$mone_default_model}
host=127.0.0.1
port=1883
topic=mone/classification
usage() { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; }
mone_parse_options "m:H:p:t:" "$@"
mone_take_file "${mone_operands[@]}"
mone_require_element monepublish "Build the plugin (ninja -C build) or set MONE_BUILD_DIR."
mone_require_model "$model"
# Not -q: gst-launch prints warnings (a broker down or refusing) only without it.
gst-launch-1.0 filesrc location="$mone_file" ! decodebin ! videoconvert \
  ! monefilter model="$model" ! monepublish method=mqtt host="$host" port="$port" topic="$topic" \
  ! fakesink
