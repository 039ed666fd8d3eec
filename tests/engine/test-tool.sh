#!/bin/sh
# The mone tool end to end: init a random model, describe it, classify a raw file, reject bad input.
set -eu
mone=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail () { echo "FAIL: $*" >&2; exit 1; }

"$mone" --version | grep -Eqx "mone [0-9]+\.[0-9]+\.[0-9]+" || fail "--version: $("$mone" --version)"
"$mone" init --config tiny seed=5 frames=2 tubelet=2 "$dir/m.safetensors" >/dev/null
"$mone" info "$dir/m.safetensors" > "$dir/info.txt"
grep -q "tokens:     16" "$dir/info.txt" || fail "info: token count"
grep -q "(minimum)" "$dir/info.txt" || fail "info: minimum budget row"
# Three experts: the minimum, 0.25, is one of the fixed rows and is marked there.
"$mone" init --config tiny seed=5 experts=3 "$dir/e3.safetensors" >/dev/null
"$mone" info "$dir/e3.safetensors" > "$dir/info3.txt"
grep -Eq '^ *0\.2500 .*\(minimum\)$' "$dir/info3.txt" || fail "info: a 3-expert model's minimum row"

# A router with hidden units: described, round-trips through the file; 0 is the one-layer router.
"$mone" init --config tiny seed=5 router_hidden=6 "$dir/rh.safetensors" >/dev/null
"$mone" info "$dir/rh.safetensors" | grep -q "router:     6 GELU units" || fail "info: hidden router"
"$mone" info "$dir/e3.safetensors" | grep -q "router:     one linear layer" || fail "info: linear router"
"$mone" init --config tiny seed=5 experts=3 router_hidden=0 "$dir/e3b.safetensors" >/dev/null
cmp -s "$dir/e3.safetensors" "$dir/e3b.safetensors" || fail "router_hidden=0 is not the default"
if "$mone" init --config tiny router_hidden=-1 "$dir/x.safetensors" 2> "$dir/err.txt"; then fail "router_hidden=-1 accepted"; fi
grep -q "router_hidden=-1: expected a non-negative integer" "$dir/err.txt" || fail "router_hidden=-1: $(cat "$dir/err.txt")"

# 2 frames x 3 channels x 32 x 32 float32 of 0.25 (0x3e800000, little-endian)
printf '\000\000\200\076' > "$dir/v.raw"
for i in 1 2 3 4 5 6 7 8 9 10 11; do cat "$dir/v.raw" "$dir/v.raw" > "$dir/v2.raw"; mv "$dir/v2.raw" "$dir/v.raw"; done
cat "$dir/v.raw" "$dir/v.raw" "$dir/v.raw" > "$dir/in.raw"
size=$(wc -c < "$dir/in.raw")
[ "$size" -eq 24576 ] || fail "could not build the raw input ($size bytes)"
"$mone" run "$dir/m.safetensors" "$dir/in.raw" --budget 0.3 --top 2 > "$dir/run.txt"
grep -q "budget 0.3000" "$dir/run.txt" || fail "run: budget line"
grep -q "expert 3" "$dir/run.txt" || fail "run: expert histogram"
# --json: one object with every token's expert (16 tokens) and round-trip floats.
"$mone" run "$dir/m.safetensors" "$dir/in.raw" --budget 0.3 --json > "$dir/run.json"
grep -q '"budget_used":0.29999999999999999,' "$dir/run.json" || fail "run --json: budget"
grep -Eq '"expert_of_token":\[([0-3],){15}[0-3]\]' "$dir/run.json" || fail "run --json: experts"
# Same seed, same file: identical bytes.
"$mone" init --config tiny seed=5 frames=2 tubelet=2 "$dir/m2.safetensors" >/dev/null
cmp -s "$dir/m.safetensors" "$dir/m2.safetensors" || fail "init is not deterministic"

# Errors name the cause and exit non-zero.
head -c 100 "$dir/in.raw" > "$dir/short.raw"
if "$mone" run "$dir/m.safetensors" "$dir/short.raw" 2> "$dir/err.txt"; then fail "short raw accepted"; fi
grep -q "has 100 bytes, expected 24576" "$dir/err.txt" || fail "short raw: message: $(cat "$dir/err.txt")"
if "$mone" run "$dir/m.safetensors" "$dir/in.raw" --budget 1.5 2> "$dir/err.txt"; then fail "budget 1.5 accepted"; fi
if "$mone" init --config nosuch "$dir/x" 2> "$dir/err.txt"; then fail "unknown config accepted"; fi
grep -q "unknown config 'nosuch'" "$dir/err.txt" || fail "unknown config: message"
if "$mone" init dim=30 "$dir/x" 2> "$dir/err.txt"; then fail "dim=30 with 4 experts accepted"; fi
grep -q "not divisible" "$dir/err.txt" || fail "dim=30: message: $(cat "$dir/err.txt")"
if "$mone" info "$dir/missing.safetensors" 2>/dev/null; then fail "missing file accepted"; fi

# Inputs that are not a file of the expected size are refused without reading them to the end.
if timeout 20 "$mone" run "$dir/m.safetensors" /dev/zero 2> "$dir/err.txt"; then fail "/dev/zero accepted"; fi
grep -q "holds more than 24576 bytes" "$dir/err.txt" || fail "/dev/zero: message: $(cat "$dir/err.txt")"
mkfifo "$dir/fifo"
head -c 100 "$dir/in.raw" > "$dir/fifo" &
if timeout 20 "$mone" run "$dir/m.safetensors" "$dir/fifo" 2> "$dir/err.txt"; then fail "short FIFO accepted"; fi
wait
grep -q "holds 100 bytes, expected 24576" "$dir/err.txt" || fail "FIFO: message: $(cat "$dir/err.txt")"
if "$mone" run "$dir/m.safetensors" "$dir" 2> "$dir/err.txt"; then fail "a directory accepted"; fi
grep -q "is a directory" "$dir/err.txt" || fail "directory: message: $(cat "$dir/err.txt")"
# A NaN pixel (0x7fc00000) is refused, not classified.
{ printf '\000\000\300\177'; tail -c +5 "$dir/in.raw"; } > "$dir/nan.raw"
if "$mone" run "$dir/m.safetensors" "$dir/nan.raw" 2> "$dir/err.txt"; then fail "NaN pixel accepted"; fi
grep -q "1 of 6144 values are NaN or infinite" "$dir/err.txt" || fail "NaN pixel: message: $(cat "$dir/err.txt")"
# Numbers are decimal: strtod's hexadecimal, inf and nan are refused.
for b in 0x1 inf nan " 0.5" 0.5x; do
  if "$mone" run "$dir/m.safetensors" "$dir/in.raw" --budget "$b" 2> "$dir/err.txt"; then fail "--budget '$b' accepted"; fi
  grep -q "is not a decimal number" "$dir/err.txt" || fail "--budget '$b': message: $(cat "$dir/err.txt")"
done
"$mone" run "$dir/m.safetensors" "$dir/in.raw" --budget 5e-1 > /dev/null || fail "--budget 5e-1 refused"
if "$mone" bench --config tiny -b 0x1 2> "$dir/err.txt"; then fail "bench -b 0x1 accepted"; fi
grep -q "budget '0x1' is not a number" "$dir/err.txt" || fail "bench -b 0x1: message: $(cat "$dir/err.txt")"
for option in --lr=0x1 --clip=nan --scene-fraction=inf; do
  if "$mone" train "$option" -o "$dir/t.safetensors" 2> "$dir/err.txt"; then fail "train $option accepted"; fi
  grep -q "is not a decimal number" "$dir/err.txt" || fail "train $option: message: $(cat "$dir/err.txt")"
done

# A model whose weights are finite but overflow the forward pass: no answer, a non-zero exit.
# Labels with a terminal escape sequence are printed escaped.
python3 - "$dir/m.safetensors" "$dir/huge.safetensors" "$dir/esc.safetensors" <<'PY'
import json, struct, sys
src, huge_path, esc_path = sys.argv[1:4]
raw = open(src, "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n])
data = bytearray(raw[8 + n:])
def write(path, header, data):
    h = json.dumps(header).encode()
    open(path, "wb").write(struct.pack("<Q", len(h)) + h + bytes(data))
begin, end = header["patch_embed.weight"]["data_offsets"]
huge = bytearray(data)
huge[begin:end] = struct.pack("<f", 3.4e38) * ((end - begin) // 4)
write(huge_path, header, huge)
labels = json.loads(header["__metadata__"]["mone.labels"])
labels[0] = "\x1b[31mred\x1b[0m"
header["__metadata__"]["mone.labels"] = json.dumps(labels)
write(esc_path, header, data)
PY
set +e
"$mone" run "$dir/huge.safetensors" "$dir/in.raw" > "$dir/out.txt" 2> "$dir/err.txt"
status=$?
set -e
[ "$status" -eq 3 ] || fail "huge weights: exit status $status, expected 3"
grep -q "non-finite logit" "$dir/err.txt" || fail "huge weights: message: $(cat "$dir/err.txt")"
"$mone" info "$dir/esc.safetensors" > "$dir/info-esc.txt"
"$mone" run "$dir/esc.safetensors" "$dir/in.raw" --logits > "$dir/run-esc.txt"
if grep -q "$(printf '\033')" "$dir/info-esc.txt" "$dir/run-esc.txt"; then fail "a label's ESC reached the terminal"; fi
grep -qF '\x1B[31mred\x1B[0m' "$dir/info-esc.txt" || fail "info: escaped label: $(grep classes "$dir/info-esc.txt")"
grep -qF '\x1B[31mred\x1B[0m' "$dir/run-esc.txt" || fail "run: escaped label"

# Output that cannot be written is a failure, not a success (readers of --json depend on it).
if [ -w /dev/full ]; then
  if "$mone" info "$dir/m.safetensors" > /dev/full 2> "$dir/err.txt"; then fail "info to a full disk: exit 0"; fi
  grep -q "cannot write the output" "$dir/err.txt" || fail "info to a full disk: $(cat "$dir/err.txt")"
fi
if "$mone" run "$dir/m.safetensors" "$dir/in.raw" --top 0 > /dev/null 2> "$dir/err.txt"; then fail "--top 0 accepted"; fi

"$mone" bench --config tiny --frames 2 --runs 2 --budgets 1,min > "$dir/bench.txt"
grep -q "sp/ideal" "$dir/bench.txt" || fail "bench table"
# Two contexts side by side: a speedup column with one value per budget, and no CPU-time clock.
"$mone" bench --config tiny --frames 2 --runs 2 --budgets 1,min --threads 2 --baseline-threads 1 > "$dir/bench2.txt"
grep -q "vs 1 thr" "$dir/bench2.txt" || fail "bench --baseline-threads: no column: $(cat "$dir/bench2.txt")"
[ "$(awk '$1 == "1.0000" && NF == 10' "$dir/bench2.txt" | wc -l)" = 1 ] \
  || fail "bench --baseline-threads: e = 1 row: $(cat "$dir/bench2.txt")"
if "$mone" bench --config tiny --frames 2 --runs 2 --baseline-threads 1 --clock cpu > /dev/null 2> "$dir/err.txt"; then
  fail "bench --baseline-threads with --clock cpu accepted"
fi
grep -q "needs the wall clock" "$dir/err.txt" || fail "bench --baseline-threads --clock cpu: $(cat "$dir/err.txt")"
# --only: the first budget and nothing else (one row, no e = 1 row, no sgemm reference).
"$mone" bench --config tiny --only --frames 3 --budgets 0.5,1 > "$dir/bench3.txt"
[ "$(awk '$1 ~ /^[0-9]\.[0-9]+$/' "$dir/bench3.txt" | awk '{print $1}')" = "0.5000" ] \
  || fail "bench --only: rows: $(cat "$dir/bench3.txt")"
if grep -q "sgemm" "$dir/bench3.txt"; then fail "bench --only ran the sgemm reference"; fi
if "$mone" bench --config tiny --only --baseline-threads 1 > /dev/null 2> "$dir/err.txt"; then
  fail "bench --only with --baseline-threads accepted"
fi
grep -q "runs one context" "$dir/err.txt" || fail "bench --only --baseline-threads: $(cat "$dir/err.txt")"
echo "tool: all checks passed"
