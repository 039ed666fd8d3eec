#!/usr/bin/env bash
# The README's main job, one command on a fresh Debian 12 machine:
#
#   bash pipelines/demo.sh [mone-demo options...]
#
# installs the missing Debian packages (tools/install-deps.sh, sudo when not root), configures and
# builds the project (./build), renders the sample video of Fashion-MNIST test items if it is not
# there yet (pipelines/sample/), and plays it through monefilter with the shipped model at several
# budgets: labels per item, accuracy against the recorded labels, GFLOPs, latency and compute saved
# per budget. With moneoverlay in the plugin it also writes an annotated video and a PNG still to
# pipelines/output/.
#
# Environment: MONE_BUILD_DIR (default build), MONE_MODEL (default models/fashion-mone.safetensors),
# MONE_DEMO_ITEMS (items in the sample video, default 200).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

build=${MONE_BUILD_DIR:-build}
model=${MONE_MODEL:-$repo/models/fashion-mone.safetensors}
items=${MONE_DEMO_ITEMS:-200}
sample_dir=$repo/pipelines/sample
video=$sample_dir/fashion-mnist-test.webm
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

if [ ! -s "$video" ] || [ ! -s "${video%.webm}.csv" ]; then
  step "sample video ($items Fashion-MNIST test items, 5 frames each)"
  mkdir -p "$sample_dir"
  "$build/tools/mone-sample-video" --output "$video" --items "$items"
fi

step "classifying $video with $(basename "$model")"
"$build/pipelines/mone-demo" --video "$video" --model "$model" --output-dir "$output_dir" "$@"
