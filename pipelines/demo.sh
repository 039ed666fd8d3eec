#!/usr/bin/env bash
# The README's main job, one command on a fresh Debian 12 machine:
#
#   bash pipelines/demo.sh [mone-demo options...]
#
# installs the missing Debian packages (tools/install-deps.sh, sudo when not root), configures and
# builds the project (./build), renders the sample video of Fashion-MNIST test items if it is not
# there yet (pipelines/sample/), and plays it through monefilter with the shipped model at several
# budgets: labels per item, accuracy against the recorded labels, GFLOPs, latency, FLOPs and time
# saved per budget. The sample is made again when it is missing, was made with other arguments or is
# older than mone-sample-video. With moneoverlay in the plugin it also writes an annotated video and
# a PNG still to pipelines/output/.
#
# Environment: MONE_BUILD_DIR (default build), MONE_MODEL (default models/fashion-mone.safetensors),
# MONE_DEMO_ITEMS (items in the sample video, default 200).
set -euo pipefail
# Paths from the environment are the caller's: resolve them before moving to the repository.
absolute() { case $1 in /*) printf '%s\n' "$1" ;; *) printf '%s\n' "$PWD/$1" ;; esac; }
build=$(absolute "${MONE_BUILD_DIR:-$(cd "$(dirname "$0")/.." && pwd)/build}")
model=$(absolute "${MONE_MODEL:-$(cd "$(dirname "$0")/.." && pwd)/models/fashion-mone.safetensors}")
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

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

# Made again when missing, asked for with other arguments, or older than the tool that makes it
# (a changed generator must not leave an old sample in use).
stamp=$sample_dir/.made-with
sample_args="--items $items"
if [ ! -s "$video" ] || [ ! -s "${video%.webm}.csv" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$sample_args" ] ||
  [ "$build/tools/mone-sample-video" -nt "$video" ]; then
  step "sample video ($items Fashion-MNIST test items, 5 frames each)"
  mkdir -p "$sample_dir"
  rm -f "$stamp"
  # shellcheck disable=SC2086 # sample_args is a list of words
  "$build/tools/mone-sample-video" --output "$video" $sample_args
  printf '%s\n' "$sample_args" > "$stamp"
fi

step "classifying $video with $(basename "$model")"
"$build/pipelines/mone-demo" --video "$video" --model "$model" --output-dir "$output_dir" "$@"
