#!/usr/bin/env bash
# The element's overhead: `videotestsrc ! imagefreeze ! monefilter ! fakesink` at 640x480 (one
# frame repeated, so the source costs nothing) against the bare engine (mone_context_run in a
# loop) on the same model and budget, e = 1 and e = 0.5, medians of several alternating runs,
# ratio printed (bar: >= 95%). `--draw` has the source draw every frame in the element's thread.
#
#   bench/element-vs-engine.sh [element-vs-engine options...]
#
# Runs two models: the shipped default, the 128x128 scene model (if present; also from the layouts
# cameras, decoders and applications deliver: NV12 and 10-bit P010 at 1280x720, YUY2 and BGRx at
# 640x480), and a generated ViT-Ti/16-shaped one (224x224, `mone init --config vit-ti16`).
# Env: MONE_BUILD_DIR (default build), BENCH_THREADS (engine threads on both sides; default 1),
# BENCH_RUNS (default 5).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${MONE_BUILD_DIR:-build}
threads=${BENCH_THREADS:-1}
runs=${BENCH_RUNS:-5}
bench="$build/bench/element-vs-engine"
if [ ! -x "$bench" ] || [ ! -x "$build/tools/mone" ]; then
  echo "build first: meson setup $build && ninja -C $build" >&2
  exit 1
fi
build=$(cd "$build" && pwd)
export GST_PLUGIN_PATH_1_0="$build/gst"
export GST_REGISTRY_1_0="$build/bench-element-vs-engine-registry.bin"
# OpenBLAS's own threads would fight the engine's pool for the same cores
export OPENBLAS_NUM_THREADS=1

vit="$build/bench-vit-ti16.safetensors"
[ -f "$vit" ] || "$build/tools/mone" init --config vit-ti16 seed=1 "$vit"

# Frames per run: enough for about a second of work at budget 1 on one core.
run() {
  local model=$1 frames=$2; shift 2
  echo "=== $(basename "$model") $*"
  "$bench" --model "$model" --budgets 1,0.5 --threads "$threads" --runs "$runs" --frames "$frames" "$@"
  echo
}
if [ -f models/scene-mone.safetensors ]; then
  run models/scene-mone.safetensors 1000 "$@"
  # hardware decoders (8 and 10 bits), webcams, applications' RGB
  for layout in "NV12 1280 720" "P010_10LE 1280 720" "YUY2 640 480" "BGRx 640 480"; do
    read -r format width height <<< "$layout"
    run models/scene-mone.safetensors 1000 --format "$format" --width "$width" --height "$height" "$@"
  done
fi
run "$vit" 60 "$@"
