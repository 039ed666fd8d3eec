#!/usr/bin/env bash
# monefilter against GStreamer's own inference element, onnxinference (gst-plugins-bad, GStreamer
# >= 1.24), on the same frames, whole pipelines: frames per second and their ratios.
#
#   bench/element-peers.sh [--quick] [--frames N] [--runs R] [--cores 1,2]
#
# On Debian 12 (GStreamer 1.22 has no onnxinference), as root: exports the models to ONNX here
# (Debian's python3-torch and python3-onnx; bench/peers/export_onnx.py --rgb8), then runs the
# pipelines in the Debian 13 root of tools/debian13.sh (GStreamer 1.26.2, Debian's ONNX Runtime
# 1.21). Where GStreamer already has onnxinference, `--here DIR` runs the pipelines on the models
# a first stage left in DIR.
#
# Models: a ViT-Ti/16 (`mone init --config vit-ti16 seed=1`, random weights) and the shipped
# default model, each exported as the dense ViT it equals at e = 1 with uint8 RGB input (the graph
# scales the bytes and, for a grey model, takes luma). Pipelines, on 640x480 I420 frames of
# videotestsrc:
#   onnxinference: videoconvert ! videoscale ! video/x-raw,format=RGB,WxH ! onnxinference
#                  model-file=M.onnx optimization-level=enable-all ! fakesink
#   monefilter:    monefilter model=M.safetensors budget=e ! fakesink   (e = 1, 0.5, 0.25)
# each pinned with taskset to one core and to two, both elements with their default threads (as
# a user gets them): monefilter threads=0 takes every core it may run on for ViT-sized models and
# one for small ones; onnxinference has no property for it. Rounds alternate the pipelines;
# medians (bench/pipeline-rates). --quick: one round of a few frames (a smoke test).
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
frames=60
runs=5
cores=1,2
quick=0
here_dir=
args=("$@")
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1; frames=4; runs=1; cores=1 ;;
    --frames) frames=$2; shift ;;
    --runs) runs=$2; shift ;;
    --cores) cores=$2; shift ;;
    --here) here_dir=$2; shift ;;
    *) echo "usage: $0 [--quick] [--frames N] [--runs R] [--cores 1,2] [--here DIR]" >&2; exit 2 ;;
  esac
  shift
done
fail() { echo "bench/element-peers: $*" >&2; exit 1; }

if [ -z "$here_dir" ]; then
  # First stage (Debian 12): models and their ONNX graphs into the Debian 13 root, then the second
  # stage in there.
  build=${MONE_BUILD_DIR:-$src/build}
  root=${MONE_DEBIAN13_ROOT:-/var/cache/gst-mone/debian13}
  [ -x "$build/tools/mone" ] || fail "build first: meson setup $build && ninja -C $build"
  /usr/bin/python3 -c 'import torch, onnx' 2>/dev/null \
    || fail "/usr/bin/python3 cannot import torch and onnx (Debian: python3-torch python3-onnx)"
  [ "$(id -u)" -eq 0 ] || fail "needs root for the Debian 13 root (tools/debian13.sh)"
  out=$root/var/tmp/gst-mone-element-peers
  mkdir -p "$out"
  [ -f "$out/vit-ti16.safetensors" ] || "$build/tools/mone" init --config vit-ti16 seed=1 "$out/vit-ti16.safetensors"
  cp "$src/models/scene-mone.safetensors" "$out/scene-mone.safetensors"
  for model in vit-ti16 scene-mone; do
    if [ ! -f "$out/$model.onnx" ] || [ "$out/$model.safetensors" -nt "$out/$model.onnx" ]; then
      /usr/bin/python3 "$src/bench/peers/export_onnx.py" --rgb8 "$out/$model.safetensors" "$out/$model.onnx"
    fi
  done
  # Debian 13's ONNX Runtime and ONNX both register the ONNX-ML schemas: one warning per schema.
  "$src/tools/debian13.sh" bench/element-peers.sh --here /var/tmp/gst-mone-element-peers "${args[@]}" \
    2> >(grep -v -e "^Schema error: Trying to register schema" -e "^$" >&2)
  exit 0
fi

# Second stage: where GStreamer has onnxinference.
build=${MONE_BUILD_DIR:-$src/build}
rates="$build/bench/pipeline-rates"
[ -x "$rates" ] || fail "build first: meson setup $build && ninja -C $build"
export GST_PLUGIN_PATH_1_0="$build/gst"
export OPENBLAS_NUM_THREADS=1
gst-inspect-1.0 onnxinference > /dev/null 2>&1 \
  || fail "GStreamer $(gst-launch-1.0 --version | sed -n 's/.*version //p' | head -1) has no onnxinference (gstreamer1.0-plugins-bad >= 1.24)"
echo "GStreamer $(gst-launch-1.0 --version | sed -n 's/.*version //p' | head -1), $(nproc) cores," \
  "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}; $frames frames (x 10 for the small model) x $runs rounds"

for model in vit-ti16 scene-mone; do
  size=$("$build/tools/mone" info "$here_dir/$model.safetensors" | sed -n 's/^input: *\([0-9]*\) x \([0-9]*\) pixels.*/\1 \2/p')
  read -r width height <<< "$size"
  [ -n "${width:-}" ] || fail "cannot read the input size of $here_dir/$model.safetensors"
  n=$frames
  [ "$model" = vit-ti16 ] || n=$((frames * 10))
  source="videotestsrc num-buffers=$((n + 1)) pattern=smpte ! video/x-raw,format=I420,width=640,height=480,framerate=30/1"
  sink="fakesink name=sink sync=false"
  for c in ${cores//,/ }; do
    cpus=0
    [ "$c" -eq 1 ] || cpus=0-$((c - 1))
    echo
    echo "$model (${width}x${height}), $c core(s) (taskset -c $cpus)"
    pipelines=("onnxinference=$source ! videoconvert ! videoscale ! video/x-raw,format=RGB,width=$width,height=$height ! onnxinference model-file=$here_dir/$model.onnx optimization-level=enable-all ! $sink")
    for e in 1 0.5 0.25; do
      pipelines+=("monefilter budget $e=$source ! monefilter model=$here_dir/$model.safetensors budget=$e ! $sink")
    done
    taskset -c "$cpus" "$rates" --runs "$runs" "${pipelines[@]}"
  done
done
