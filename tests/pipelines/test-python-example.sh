#!/usr/bin/env bash
# pipelines/mone-example.py reads the meta through GObject introspection: on 12 videotestsrc
# frames it must print 12 results whose labels are the model's and whose budget follows --budget.
# Args: PYTHON MONE_TOOL. Env as for the other pipeline tests (MONE_SHIPPED_MODEL, GST_PLUGIN_PATH_1_0).
set -euo pipefail
python=$1
mone_tool=$2
here=$(cd "$(dirname "$0")" && pwd)
example="$here/../../pipelines/mone-example.py"

if ! "$python" -c 'import gi; gi.require_version("Gst", "1.0")' 2>/dev/null; then
  echo "SKIP: $python has no GObject introspection for GStreamer (python3-gi, gir1.2-gstreamer-1.0)"
  exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
model=${MONE_SHIPPED_MODEL:-}
if [ ! -f "$model" ]; then
  model="$work/model.safetensors"
  "$mone_tool" init --config tiny seed=5 channels=1 height=28 width=28 patch=7 "$model"
fi

"$python" "$example" --model "$model" --budget 0.5 --frames 0 \
  "videotestsrc num-buffers=12 pattern=ball ! video/x-raw,width=160,height=120" > "$work/out.txt"
cat "$work/out.txt"
results=$(grep -c 'budget 0.50 (used 0.50)' "$work/out.txt" || true)
if [ "$results" -ne 12 ]; then
  echo "FAIL: expected 12 result lines at budget 0.50, got $results" >&2
  exit 1
fi
grep -q '^12 results$' "$work/out.txt" || { echo "FAIL: no '12 results' summary" >&2; exit 1; }
echo "ok: 12 results read from the GstCustomMeta in Python"
