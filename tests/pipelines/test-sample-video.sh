#!/usr/bin/env bash
# mone-sample-video: deterministic item choice and frames, a labels CSV that describes the video,
# and clear refusals of bad arguments and missing data. Arg: the tool.
set -euo pipefail
tool=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$tool" --output "$work/a.webm" --items 12 --frames-per-item 2 --seed 4 --width 64 --height 48 >/dev/null
"$tool" --output "$work/b.webm" --items 12 --frames-per-item 2 --seed 4 --width 64 --height 48 >/dev/null
"$tool" --output "$work/c.webm" --items 12 --frames-per-item 2 --seed 5 --width 64 --height 48 >/dev/null
cmp -s "$work/a.csv" "$work/b.csv" || fail "same seed, different CSV"
cmp -s "$work/a.csv" "$work/c.csv" && fail "another seed, same CSV"
[ "$(head -1 "$work/a.csv")" = "item,test_index,first_frame,last_frame,label,label_name" ] ||
  fail "CSV header: $(head -1 "$work/a.csv")"
[ "$(wc -l < "$work/a.csv")" -eq 13 ] || fail "CSV should have 12 item lines"
[ "$(sed -n 13p "$work/a.csv" | cut -d, -f3,4)" = "22,23" ] || fail "last item should be on frames 22-23"

# the decoded frames are identical (the WebM container has a random segment id, the frames do not)
decode() {
  gst-launch-1.0 -q filesrc location="$1" ! decodebin ! videoconvert ! video/x-raw,format=GRAY8 ! \
    filesink location="$2"
}
decode "$work/a.webm" "$work/a.gray"
decode "$work/b.webm" "$work/b.gray"
cmp -s "$work/a.gray" "$work/b.gray" || fail "same seed, different decoded frames"
[ "$(stat -c %s "$work/a.gray")" -eq $((64 * 48 * 24)) ] || fail "expected 24 frames of 64x48"

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
expect_refusal "t10k-images" --output "$work/x.webm" --data-dir "$work"
expect_refusal "labels file" --output "$work/no/such/dir/x.webm"
echo "ok"
