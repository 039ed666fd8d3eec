#!/usr/bin/env bash
# Does budget-mode=auto hold a live frame rate that budget 1.0 cannot, with and without
# a CPU hog on the same core?
#
#   bench/auto-budget.sh [SECONDS]        (default 20 s per run; needs a build with the plugin)
#
# 1. Generates a ViT-Ti/16-shaped model (`mone init --config vit-ti16`, fixed seed) unless present.
# 2. Measures the frame rate budget 1.0 sustains at 224x224 on one thread (median of 3 runs).
# 3. Plays `videotestsrc is-live=true` at 1.5x that rate through monefilter into
#    `fakesink sync=true qos=true`: fixed budget 1.0 versus auto, each without and with a busy-loop
#    process started halfway on the same core, and each in two layouts:
#    - direct: `monefilter ! fakesink`, one streaming thread. The sink holds that thread until each
#      frame's render time, so the next frame reaches monefilter only then and has exactly one
#      frame duration before it is due, whatever latency the pipeline reports: every single frame
#      must fit a frame duration.
#    - queue: `monefilter ! queue ! fakesink`, the usual live layout. Frames reach monefilter when
#      the source makes them and have the pipeline latency (source's frame + monefilter's
#      max-latency in auto mode + the sink's 20 ms processing deadline) before they are due, so a
#      frame that overruns (the first under a new CPU hog) is absorbed.
#    Everything runs pinned to one CPU with taskset. Prints the pipeline latency, late frames per
#    half (frames reaching the sink after their render time: running time + pipeline latency), the
#    worst lateness, the mean budget per half, how many frames carried an earlier result instead of
#    being classified (`reused`: auto mode's answer when even the minimum budget cannot make a
#    frame's render time) and the budget trace.
# 4. For reference, the same controller driving the engine directly (bench/auto-budget-engine.c).
# Env: BENCH_MEASURE_FRAMES (frames per rate measurement, default 100), MONE_BUILD_DIR (default
# build), BENCH_CPU (default: the last CPU), BENCH_OUT (scratch for the model; default inside the
# build folder).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-20}
build=${MONE_BUILD_DIR:-build}
out=${BENCH_OUT:-$build/bench-auto-budget}
cpu=${BENCH_CPU:-$(( $(nproc) - 1 ))}
mkdir -p "$out"

if [ ! -x "$build/tools/mone" ] || [ ! -x "$build/bench/auto-budget-run" ] || ! ls "$build"/gst/*.so >/dev/null 2>&1; then
  echo "build first: meson setup $build && ninja -C $build" >&2
  exit 1
fi
export GST_PLUGIN_PATH_1_0="$PWD/$build/gst"
export GST_REGISTRY_1_0="$PWD/$out/registry.bin"
export OPENBLAS_NUM_THREADS=1

model="$out/vit-ti16.safetensors"
if [ ! -f "$model" ]; then
  "$build/tools/mone" init --config vit-ti16 seed=1 "$model"
fi

helper="$build/bench/auto-budget-run"
engine_helper="$build/bench/auto-budget-engine"

pinned() { taskset -c "$cpu" "$@"; }

echo "== budget 1.0, 224x224, one thread, CPU $cpu: frame rate (3 runs)"
rates=()
for run in 1 2 3; do
  rate=$(pinned "$helper" measure "$model" "${BENCH_MEASURE_FRAMES:-100}" | awk '/^fps/ {print $2}')
  echo "run $run: $rate fps"
  rates+=("$rate")
done
median=$(printf '%s\n' "${rates[@]}" | sort -g | sed -n 2p)
if [ -z "$median" ]; then
  echo "could not measure the budget-1.0 frame rate (does monefilter load? see above)" >&2
  exit 1
fi
target=$(awk -v r="$median" 'BEGIN { printf "%.3f", 1.5 * r }')
echo "median $median fps -> live source at 1.5x = $target fps"

for layout in direct queue; do
  for hog in nohog hog; do
    for mode in fixed auto; do
      echo
      echo "== monefilter $mode, $hog, $layout, ${seconds}s at $target fps"
      pinned "$helper" run "$model" "$target" "$seconds" "$mode" "$hog" "$layout"
    done
  done
done

# The same controller driving the engine without GStreamer: separates the controller's behaviour
# from the pipeline's (latency reporting, QoS, scheduling of the streaming threads).
for hog in nohog hog; do
  echo
  echo "== engine only, auto, $hog, ${seconds}s at $target fps"
  pinned "$engine_helper" "$model" run "$target" "$seconds" auto "$hog"
done
