#!/usr/bin/env bash
# Classifies a video and publishes one JSON message per frame (QoS 1) to an MQTT broker
# (schema: docs/publish.md). The stream never waits on the broker: see max-queue and dropped.
#
#   pipelines/publish-mqtt.sh [-m MODEL] [-H HOST] [-p PORT] [-t TOPIC] [FILE]
set -euo pipefail
source "$(dirname "$0")/env.sh"
model=${MONE_MODEL:-$mone_default_model}
host=127.0.0.1
port=1883
topic=mone/classification
while getopts "m:H:p:t:h" opt; do
  case $opt in
    m) model=$OPTARG ;;
    H) host=$OPTARG ;;
    p) port=$OPTARG ;;
    t) topic=$OPTARG ;;
    *) sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  esac
done
shift $((OPTIND - 1))
file=${1:-$(dirname "$0")/sample/scene.mp4}
gst-launch-1.0 -q filesrc location="$file" ! decodebin ! videoconvert \
  ! monefilter model="$model" ! monepublish method=mqtt host="$host" port="$port" topic="$topic" \
  ! fakesink
