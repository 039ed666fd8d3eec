#!/usr/bin/env bash
# The README's main job, one command on a fresh Debian 12 machine:
#
#   bash pipelines/demo.sh [mone-demo options...]
#
# installs the missing Debian packages (tools/install-deps.sh, sudo when not root), configures and
# builds the project (./build), renders the sample video if it is not there yet (pipelines/sample/:
# Fashion-MNIST test items in camera-like scenes, H.264), and plays it through monefilter with its
# default properties at several budgets: labels per item, accuracy against the recorded labels,
# GFLOPs and the FLOPs saved per budget beside the time actually saved (in the element, and in the
# whole pipeline with decoding). The sample is made again when it is missing, was made with other
# arguments or is older than mone-sample-video. With moneoverlay in the plugin it also writes an
# annotated video and a PNG still to pipelines/output/.
#
# Environment: MONE_BUILD_DIR (default build), MONE_MODEL (default models/scene-mone.safetensors,
# the element's default), MONE_DEMO_ITEMS (items in the sample video, default 200),
# MONE_DEMO_PLACEMENT (scene, close-up, full-frame or in-frame; default scene), MONE_DEMO_CODEC
# (h264 or vp8; default h264).
set -euo pipefail
# Help before anything is installed or built: this header, and mone-demo's options if it exists.
for arg in "$@"; do
  case $arg in -h | --help | -\?)
    sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'
    demo=${MONE_BUILD_DIR:-$(dirname "$0")/../build}/pipelines/mone-demo
    if [ -x "$demo" ]; then "$demo" --help; else echo; echo "(mone-demo's options: after the first run, $demo --help)"; fi
    exit 0 ;;
  esac
done
# Paths from the environment are the caller's: resolve them before moving to the repository.
absolute() { case $1 in /*) printf '%s\n' "$1" ;; *) printf '%s\n' "$PWD/$1" ;; esac; }
build=$(absolute "${MONE_BUILD_DIR:-$(cd "$(dirname "$0")/.." && pwd)/build}")
repo=$(cd "$(dirname "$0")/.." && pwd)
model=$(absolute "${MONE_MODEL:-$repo/models/scene-mone.safetensors}")
cd "$repo"

items=${MONE_DEMO_ITEMS:-200}
placement=${MONE_DEMO_PLACEMENT:-scene}
codec=${MONE_DEMO_CODEC:-h264}
case $placement in scene | close-up | full-frame | in-frame) ;; *)
  echo "demo.sh: MONE_DEMO_PLACEMENT '$placement' is not scene, close-up, full-frame or in-frame" >&2
  exit 2 ;;
esac
case $codec in h264) extension=mp4 ;; vp8) extension=webm ;; *)
  echo "demo.sh: MONE_DEMO_CODEC '$codec' is not h264 or vp8" >&2
  exit 2 ;;
esac
# Full-frame and in-frame samples show the item in the centre square: the model sees it cropped.
demo_args=()
case $placement in full-frame | in-frame) demo_args=(--scale-mode crop) ;; esac
sample_dir=$repo/pipelines/sample
video=$sample_dir/$placement.$extension
output_dir=$repo/pipelines/output

step() { printf '\n== %s\n' "$*"; }

step "packages"
bash tools/install-deps.sh

step "build ($build)"
if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" --buildtype=debugoptimized
fi
ninja -C "$build"
build=$(cd "$build" && pwd)

if [ ! -r "$model" ]; then
  echo "demo.sh: model $model not found (set MONE_MODEL)" >&2
  exit 1
fi

# The build tree's plugin, ahead of any installed copy; a private registry so a stale system
# registry entry for the plugin cannot shadow it.
export GST_PLUGIN_PATH="$build/gst${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}"
export GST_REGISTRY_1_0="$build/demo-registry.bin"

# Made again when missing, asked for with other arguments, or older than the tool that makes it
# (a changed generator must not leave an old sample in use).
stamp=$video.made-with
sample_args="--items $items --placement $placement --codec $codec"
if [ ! -s "$video" ] || [ ! -s "${video%.*}.csv" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$sample_args" ] ||
  [ "$build/tools/mone-sample-video" -nt "$video" ]; then
  step "sample video ($items Fashion-MNIST test items, $placement, $codec, 5 frames each)"
  mkdir -p "$sample_dir"
  rm -f "$stamp"
  # openh264 reports a harmless "cmInitParaError" when it is drained at the end: not shown.
  # shellcheck disable=SC2086 # sample_args is a list of words
  "$build/tools/mone-sample-video" --output "$video" $sample_args 2>&1 |
    { grep -v 'OpenH264.*cmInitParaError' || true; }
  printf '%s\n' "$sample_args" > "$stamp"
fi

step "classifying $video with $(basename "$model")"
case $placement,$(basename "$model") in
  scene,fashion-mone.safetensors)
    echo "note: fashion-mone was trained on close-ups and scores low on $placement items; the scene" \
      "model (models/scene-mone.safetensors) is the one for them" ;;
esac
"$build/pipelines/mone-demo" --video "$video" --model "$model" --output-dir "$output_dir" \
  ${demo_args[@]+"${demo_args[@]}"} "$@"
