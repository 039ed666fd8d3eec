#!/usr/bin/env bash
# The pipeline scripts and mone-demo refuse bad input with a message naming it, before running
# anything: out-of-range budget and interval (the element would only warn and keep its default),
# extra arguments, and a sample video shorter than its labels file (an interrupted
# mone-sample-video), which would otherwise be scored as if its missing items were wrong.
# Regions: pipelines/regions.sh classifies the sample's items as regions of interest.
# Args: the repository, mone-sample-video, mone-demo. Env: MONE_BUILD_DIR (the build tree).
set -euo pipefail
repo=$1 sample_tool=$2 demo=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# expect_refusal WANTED_RC MESSAGE COMMAND...
expect_refusal() {
  local want_rc=$1 want=$2; shift 2
  set +e
  "$@" >"$work/out" 2>&1 </dev/null
  local rc=$?
  set -e
  [ $rc -eq "$want_rc" ] || fail "'$*' exited $rc, expected $want_rc: $(cat "$work/out")"
  grep -q -- "$want" "$work/out" || fail "'$*': message should mention '$want': $(cat "$work/out")"
  echo "ok   $*: $(grep -m1 -- "$want" "$work/out")"
}

"$sample_tool" --output "$work/v.webm" --items 4 --frames-per-item 2 --width 64 --height 48 >/dev/null
[ -z "$(find "$work" -name '*.partial')" ] || fail "mone-sample-video left .partial files"

file_sh="$repo/pipelines/file.sh"
expect_refusal 2 "budget '2' is not a number in (0, 1]" bash "$file_sh" -b 2 "$work/v.webm"
expect_refusal 2 "budget 'nan' is not a number in (0, 1]" bash "$file_sh" -b nan "$work/v.webm"
expect_refusal 2 "budget '-0.5' is not a number in (0, 1]" bash "$file_sh" -b -0.5 "$work/v.webm"
expect_refusal 2 "interval '0' is not a whole number" bash "$file_sh" -i 0 "$work/v.webm"
expect_refusal 2 "one FILE at most" bash "$file_sh" "$work/v.webm" "$work/v.webm"
expect_refusal 2 "budget '1.5' is not a number in (0, 1]" bash "$repo/pipelines/rtsp.sh" -b 1.5 rtsp://127.0.0.1:1/x
expect_refusal 2 "unexpected argument 'extra'" bash "$repo/pipelines/camera.sh" extra
# A budget in range runs (the control: the checks do not refuse everything).
bash "$file_sh" -b .5 -i 2 "$work/v.webm" >"$work/out" 2>&1 || fail "file.sh -b .5 -i 2: $(cat "$work/out")"
[ "$(grep -c '^frame' "$work/out")" -eq 8 ] || fail "file.sh: expected 8 frame lines: $(cat "$work/out")"

model="$repo/models/fashion-mone.safetensors"
expect_refusal 2 "--overlay-budget 2 is not in (0, 1]" "$demo" --video "$work/v.webm" --model "$model" --overlay-budget 2
expect_refusal 2 "--repeat 0 is not in 1..100" "$demo" --video "$work/v.webm" --model "$model" --repeat 0
expect_refusal 2 "--scale-mode 'fit' is not stretch, letterbox or crop" "$demo" --video "$work/v.webm" --model "$model" --scale-mode fit
# A run prints the FLOPs saved and, beside them, the time saved in the element and the pipeline.
"$demo" --video "$work/v.webm" --model "$model" --budgets 1,0.5 --repeat 2 --no-items >"$work/out" 2>&1 ||
  fail "mone-demo: $(cat "$work/out")"
grep -q "FLOPs saved | element ms time saved | pipeline ms time saved" "$work/out" ||
  fail "mone-demo summary header: $(cat "$work/out")"
[ "$(grep -cE '^(1|0\.5) ' "$work/out")" -eq 2 ] || fail "mone-demo: expected two budget rows: $(cat "$work/out")"
# Labels for 6 items against a video of 4: refused, not scored.
"$sample_tool" --output "$work/long.webm" --items 6 --frames-per-item 2 --width 64 --height 48 >/dev/null
cp "$work/long.csv" "$work/v.csv"
expect_refusal 1 "the video has 8 frames but its labels file describes 12" \
  "$demo" --video "$work/v.webm" --model "$model" --budgets 1 --no-items
# Regions: every item's box as a region of interest. On camera-like scenes the close-up model
# gets more items right from the regions than from the whole frames (deterministic: seeded video).
"$sample_tool" --output "$work/scenes.webm" --items 60 >/dev/null
bash "$repo/pipelines/regions.sh" -m "$model" -b 1 "$work/scenes.webm" >"$work/out" 2>&1 ||
  fail "regions.sh: $(cat "$work/out")"
region_acc=$(sed -n 's/^regions *budget 1.00 *\([0-9.]*\)% of 60 items.*per region.*/\1/p' "$work/out")
frame_acc=$(sed -n 's/^whole frames budget 1.00 *\([0-9.]*\)% of 60 items.*per frame.*/\1/p' "$work/out")
[ -n "$region_acc" ] && [ -n "$frame_acc" ] || fail "regions.sh output: $(cat "$work/out")"
awk -v r="$region_acc" -v f="$frame_acc" 'BEGIN { exit !(r > f) }' ||
  fail "regions ($region_acc%) not better than whole frames ($frame_acc%): $(cat "$work/out")"
echo "ok   regions.sh: regions $region_acc%, whole frames $frame_acc%"
# GStreamer >= 1.24: the same boxes as GstAnalyticsODMtd detections give the same answers, and
# GStreamer's objectdetectionoverlay draws them into a video that plays back to the end.
if gst-inspect-1.0 objectdetectionoverlay >/dev/null 2>&1; then
  bash "$repo/pipelines/regions.sh" -a -m "$model" -b 1 -o "$work/detections.mkv" "$work/scenes.webm" \
    >"$work/out" 2>&1 || fail "regions.sh -a: $(cat "$work/out")"
  detection_acc=$(sed -n 's/^regions *budget 1.00 *\([0-9.]*\)% of 60 items.*/\1/p' "$work/out")
  [ "$detection_acc" = "$region_acc" ] ||
    fail "detections ($detection_acc%) differ from region metas ($region_acc%): $(cat "$work/out")"
  gst-launch-1.0 -q filesrc location="$work/detections.mkv" ! decodebin ! fakesink >/dev/null 2>&1 ||
    fail "regions.sh -a -o: the drawn video does not play"
  echo "ok   regions.sh -a: detections $detection_acc%, drawn by objectdetectionoverlay"
fi
expect_refusal 1 "no item boxes\|cannot read" bash "$repo/pipelines/regions.sh" -m "$model" "$work/missing.webm"
echo "ok"
