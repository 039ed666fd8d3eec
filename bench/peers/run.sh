#!/usr/bin/env bash
# The engine against its dense peers: ONNX Runtime (onnxruntime-node, CPU) and PyTorch eager run
# the same model file as a plain ViT (the model at e = 1), the engine runs it at every budget.
#
#   bench/peers/run.sh [--quick] [--models scene,fashion,vit-ti16,vit-s16] [--threads 1,2] [--rounds 7]
#                      [--slot-ms 250] [--frames N] [--json FILE]
#   ninja -C build bench-peers          # the same, through meson (bench-peers-quick: --quick)
#
# First installs onnxruntime-node (pinned below) with npm into
# ${XDG_CACHE_HOME:-~/.cache}/gst-mone/peers, reused by later runs. Needs the build (meson setup
# build && ninja -C build; MONE_BUILD_DIR to use another), Node with npm (20 tested), Debian's
# python3-torch and python3-onnx, taskset. Per model it exports the ONNX graph
# (bench/peers/export_onnx.py, into BUILD/bench-peers/), checks that ONNX Runtime, PyTorch and the
# engine give the logits of `mone run MODEL FRAME --budget 1` within 1e-4 of the largest logit
# (exits non-zero otherwise), then, per thread count (1: taskset -c 0; 2: taskset -c 0,1; every
# engine told to use that many threads), alternates the engines round by round and prints ms per
# frame, ONNX Runtime's time over each engine's, and the engine's speedup over its own e = 1 next
# to the FLOP-ideal one. --quick (a smoke test for CI): the checks and one round of 2 frames,
# 1 thread, the scene model and ViT-Ti/16. Timing wants an otherwise idle machine.
set -euo pipefail
ORT_VERSION=1.30.0
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=${MONE_BUILD_DIR:-$src/build}
cache=${XDG_CACHE_HOME:-$HOME/.cache}/gst-mone/peers

fail() { echo "bench/peers: $*" >&2; exit 1; }
[ -x "$build/tools/mone" ] && [ -x "$build/bench/peers/mone-peer" ] \
  || fail "build first: meson setup $build && ninja -C $build"
command -v taskset >/dev/null || fail "taskset is missing (Debian: util-linux)"
command -v node >/dev/null && command -v npm >/dev/null || fail "node and npm are missing (Debian: nodejs npm)"
/usr/bin/python3 -c 'import torch, onnx' 2>/dev/null \
  || fail "/usr/bin/python3 cannot import torch and onnx (Debian: python3-torch python3-onnx)"

# onnxruntime-node, once per version. Its install script only fetches GPU (CUDA) libraries, which
# a CPU benchmark does not use: skip it, the CPU library ships in the package.
installed=$(node -p "require('$cache/node_modules/onnxruntime-node/package.json').version" 2>/dev/null || true)
if [ "$installed" != "$ORT_VERSION" ]; then
  echo "bench/peers: installing onnxruntime-node@$ORT_VERSION into $cache" >&2
  mkdir -p "$cache"
  [ -f "$cache/package.json" ] || echo '{"name": "gst-mone-peers", "private": true}' > "$cache/package.json"
  (cd "$cache" && npm install --no-audit --no-fund --ignore-scripts --save-exact \
      "onnxruntime-node@$ORT_VERSION" >&2) || fail "npm install onnxruntime-node@$ORT_VERSION failed"
fi

exec /usr/bin/python3 "$here/peers.py" --build "$build" --ort-modules "$cache/node_modules" "$@"
