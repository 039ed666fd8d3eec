#!/usr/bin/env bash
# mone-sample-video: deterministic item choice and frames for every placement and both codecs
# (VP8/WebM, H.264/MP4 through openh264enc), a labels CSV that describes the video and where each
# item is, and clear refusals of bad arguments and missing data. Arg: the tool.
set -euo pipefail
tool=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
header="item,test_index,first_frame,last_frame,label,label_name,box_x,box_y,box_w,box_h"

# The decoded frames as GRAY8 (the containers carry random ids and dates, the frames do not).
decode() {
  gst-launch-1.0 -q filesrc location="$1" ! decodebin ! videoconvert ! video/x-raw,format=GRAY8 ! \
    filesink location="$2"
}
# openh264 prints a harmless "cmInitParaError" when the element drains it at the end: not shown.
make() { "$tool" "$@" 2>&1 >/dev/null | { grep -v 'OpenH264.*cmInitParaError' || true; } >&2; }

# Default placement (scene) and codec (VP8 for .webm); H.264 for .mp4.
for ext in webm mp4; do
  make --output "$work/a.$ext" --items 12 --frames-per-item 2 --seed 4 --width 64 --height 48
  make --output "$work/b.$ext" --items 12 --frames-per-item 2 --seed 4 --width 64 --height 48
  cmp -s "$work/a.csv" "$work/b.csv" || fail "$ext: same seed, different CSV"
  decode "$work/a.$ext" "$work/a.gray"
  decode "$work/b.$ext" "$work/b.gray"
  cmp -s "$work/a.gray" "$work/b.gray" || fail "$ext: same seed, different decoded frames"
  [ "$(stat -c %s "$work/a.gray")" -eq $((64 * 48 * 24)) ] || fail "$ext: expected 24 frames of 64x48"
  cp "$work/a.csv" "$work/$ext.csv"
done
cmp -s "$work/webm.csv" "$work/mp4.csv" || fail "the codec changed the items or boxes"
make --output "$work/c.webm" --items 12 --frames-per-item 2 --seed 5 --width 64 --height 48
cmp -s "$work/a.csv" "$work/c.csv" && fail "another seed, same CSV"
[ "$(head -1 "$work/a.csv")" = "$header" ] || fail "CSV header: $(head -1 "$work/a.csv")"
[ "$(wc -l < "$work/a.csv")" -eq 13 ] || fail "CSV should have 12 item lines"
[ "$(sed -n 13p "$work/a.csv" | cut -d, -f3,4)" = "22,23" ] || fail "last item should be on frames 22-23"
# A scene's box: 30-95% of the frame height tall, square in frame pixels, touching the frame.
awk -F, 'NR > 1 && !($10 >= 0.3 * 48 - 0.1 && $10 <= 0.95 * 48 + 0.1 && ($9 - $10) ^ 2 < 0.25 &&
    $7 < 64 && $8 < 48 && $7 + $9 > 0 && $8 + $10 > 0) { print; bad = 1 } END { exit bad }' \
  "$work/a.csv" || fail "scene boxes out of range (above)"
# The scene is not the same picture for every item.
[ "$(cut -d, -f7-10 "$work/a.csv" | sort -u | wc -l)" -eq 13 ] || fail "scene boxes repeat"

# Close-up: the item's cell centred, 80% of the height (38 of 48 rows), on black.
make --output "$work/close.mkv" --codec h264 --placement close-up --items 3 --frames-per-item 1 \
  --width 64 --height 48
[ "$(sed -n 2p "$work/close.csv" | cut -d, -f7-10)" = "13.0,5.0,38.0,38.0" ] ||
  fail "close-up box: $(sed -n 2p "$work/close.csv")"
decode "$work/close.mkv" "$work/close.gray"
[ "$(od -An -tu1 -N1 "$work/close.gray" | tr -d ' ')" -le 20 ] || fail "close-up corner is not black"
# The earlier placements still work: the whole centre square is the box.
make --output "$work/full.webm" --placement full-frame --items 2 --frames-per-item 1 --width 64 --height 48
[ "$(sed -n 2p "$work/full.csv" | cut -d, -f7-10)" = "8.0,0.0,48.0,48.0" ] ||
  fail "full-frame box: $(sed -n 2p "$work/full.csv")"
make --output "$work/in.webm" --placement in-frame --items 2 --frames-per-item 1 --width 64 --height 48

expect_refusal() {
  local want=$1; shift
  set +e
  "$tool" "$@" >"$work/out" 2>&1
  local rc=$?
  set -e
  [ $rc -ne 0 ] || fail "accepted: $*"
  grep -q -- "$want" "$work/out" || fail "'$*': message should mention '$want': $(cat "$work/out")"
}
expect_refusal "--output" --items 3
expect_refusal "placement" --output "$work/x.webm" --placement sideways
expect_refusal "items" --output "$work/x.webm" --items 0
expect_refusal "items" --output "$work/x.webm" --items 10001
expect_refusal "item-size" --output "$work/x.webm" --width 64 --height 48 --item-size 60
expect_refusal "scene-height" --output "$work/x.webm" --width 64 --height 48 --scene-height 50
expect_refusal "codec" --output "$work/x.webm" --codec h265
expect_refusal "does not go into" --output "$work/x.webm" --codec h264
expect_refusal "does not go into" --output "$work/x.mp4" --codec vp8
expect_refusal "t10k-images" --output "$work/x.webm" --data-dir "$work"
expect_refusal "labels file" --output "$work/no/such/dir/x.webm"
expect_refusal "are both" --output "$work/clip.csv" --items 2
expect_refusal "0 at this aspect" --output "$work/x.webm" --width 16 --height 512 --scene-height 8
[ -z "$(find "$work" -name '*.partial')" ] || fail "partial files left behind"
echo "ok"
