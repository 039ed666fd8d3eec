#!/usr/bin/env python3
"""Regenerates the loader's committed fixtures (run from anywhere, no arguments; with --check it
writes nothing and fails if a committed fixture differs from what it would write):

  tests/loader/valid-{f32,f16,bf16}.safetensors   a tiny valid MoNE model and its half twins
  tests/loader/valid-mixed.safetensors            the same with an F16 alpha first (unaligned F32)
  tests/loader/valid-stem.safetensors             the same with a one-layer convolutional stem
  tests/loader/hostile/*.safetensors               one defect each
  tests/loader/hostile/expectations.txt            file, error code, expected message substring

Written independently of the C writer (plain Python, no numpy), so the valid files also check that
the C reader accepts safetensors produced by someone else's code. Deterministic: fixed seed.
Tiny config (same as tests/loader/tiny-model.h): 8x8 grey, patch 4 (N=4), D=4, depth 1, heads 2,
F=8, E=2, K=3.
"""
import json
import math
import os
import random
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
HOSTILE = os.path.join(HERE, "hostile")

D, F, E, K, N, C, P = 4, 8, 2, 3, 4, 1, 4
PATCH_IN = C * 1 * P * P


def tensor_specs(depth=1):
    specs = [("patch_embed.weight", [D, PATCH_IN]), ("patch_embed.bias", [D]), ("pos_embed", [N, D]),
             ("router.weight", [E, D]), ("router.bias", [E]), ("alpha", [1])]
    for i in range(depth):
        b = "blocks.%d." % i
        specs += [(b + "norm1.weight", [D]), (b + "norm1.bias", [D]),
                  (b + "attn.qkv.weight", [3 * D, D]), (b + "attn.qkv.bias", [3 * D]),
                  (b + "attn.proj.weight", [D, D]), (b + "attn.proj.bias", [D]),
                  (b + "norm2.weight", [D]), (b + "norm2.bias", [D]),
                  (b + "mlp.fc1.weight", [F, D]), (b + "mlp.fc1.bias", [F]),
                  (b + "mlp.fc2.weight", [D, F]), (b + "mlp.fc2.bias", [D])]
    specs += [("norm.weight", [D]), ("norm.bias", [D]), ("head.weight", [K, D]), ("head.bias", [K])]
    return specs


def metadata():
    return [("format", "mone"), ("format_version", "1"),
            ("mone.height", "8"), ("mone.width", "8"), ("mone.channels", "1"), ("mone.frames", "1"),
            ("mone.patch", "4"), ("mone.tubelet", "1"), ("mone.dim", "4"), ("mone.depth", "1"),
            ("mone.heads", "2"), ("mone.mlp_dim", "8"), ("mone.experts", "2"), ("mone.classes", "3"),
            ("mone.delta", "2"), ("mone.beta", "10"), ("mone.ln_eps", "1e-06"),
            ("mone.mean", "0.286"), ("mone.std", "0.353"),
            ("mone.labels", json.dumps(["shirt", "sneaker", "bag \"tote\""]))]


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def bf16_bytes(x):
    bits = struct.unpack("<I", struct.pack("<f", x))[0]
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16  # nearest, ties to even (no NaN here)
    return struct.pack("<H", bits)


def encode(values, dtype):
    if dtype == "F32":
        return b"".join(struct.pack("<f", v) for v in values)
    if dtype == "F16":
        return b"".join(struct.pack("<e", v) for v in values)
    return b"".join(bf16_bytes(v) for v in values)


class Entry:
    def __init__(self, name, shape, values, dtype="F32"):
        self.name = json.dumps(name)      # raw JSON text of the key
        self.dtype = json.dumps(dtype)    # raw JSON text
        self.shape = json.dumps(shape)    # raw JSON text
        self.data = encode(values, dtype)
        self.offsets = None               # raw JSON text overriding the computed [begin, end]
        self.extra = ""                   # raw text appended inside the tensor's object


def model_entries(dtype="F32", depth=1):
    rng = random.Random(20261128)
    entries = []
    for name, shape in tensor_specs(depth):
        n = math.prod(shape)
        entries.append(Entry(name, shape, [f32(rng.uniform(-1, 1)) for _ in range(n)], dtype))
    return entries


# mone.stem = "4": one 3x3 layer of 4 channels halves the patch to 2, so the patch embedding still
# reads 4 x 2 x 2 = PATCH_IN values and every other tensor keeps its shape.
STEM = 4


def stem_metadata(stem=str(STEM)):
    return metadata() + [("mone.stem", stem)]


def stem_entries():
    rng = random.Random(20261205)
    return model_entries() + [
        Entry("stem.0.weight", [STEM, C * 9], [f32(rng.uniform(-1, 1)) for _ in range(STEM * C * 9)]),
        Entry("stem.0.bias", [STEM], [f32(rng.uniform(-1, 1)) for _ in range(STEM)])]


def find(entries, name):
    return next(e for e in entries if e.name == json.dumps(name))


def build(meta, entries, gap_after=None, trailing_data=b"", header_suffix="", pad=True, patch=None):
    """Serialises a file; gap_after names a tensor after which 4 stray bytes are inserted; patch
    (old, new) replaces bytes in the header before its length is taken."""
    parts, data, offset = [], b"", 0
    if meta is not None:
        items = []
        for k, v in meta:
            items.append("%s:%s" % (json.dumps(k), v if isinstance(v, RawJSON) else json.dumps(v)))
        parts.append('"__metadata__":{%s}' % ",".join(items))
    for e in entries:
        begin, end = offset, offset + len(e.data)
        offsets = e.offsets if e.offsets is not None else "[%d,%d]" % (begin, end)
        parts.append('%s:{"dtype":%s,"shape":%s,"data_offsets":%s%s}' % (e.name, e.dtype, e.shape, offsets, e.extra))
        data += e.data
        offset = end
        if gap_after is not None and e.name == json.dumps(gap_after):
            data += b"\0\0\0\0"
            offset += 4
    header = ("{" + ",".join(parts) + "}" + header_suffix).encode("utf-8", "surrogatepass")
    if patch:
        header = header.replace(patch[0], patch[1], 1)
    if pad:
        header += b" " * (-len(header) % 8)
    return struct.pack("<Q", len(header)) + header + data + trailing_data


class RawJSON(str):
    """A metadata value written as-is (not as a JSON string)."""


def replace_meta(key, value, meta=None):
    meta = meta if meta is not None else metadata()
    return [(k, value if k == key else v) for k, v in meta]


def drop_meta(key):
    return [(k, v) for k, v in metadata() if k != key]


def hostile_cases():
    """Yields (file name, error code, expected message substring, bytes)."""
    valid = build(metadata(), model_entries())
    header_len = struct.unpack("<Q", valid[:8])[0]

    # --- framing ---
    yield "empty.safetensors", "FORMAT", "file is 0 bytes, too short", b""
    yield "short-length.safetensors", "FORMAT", "file is 5 bytes, too short for the 8-byte header length", valid[:5]
    yield "header-cut.safetensors", "FORMAT", "header length %d runs past the end of the file" % header_len, valid[:8 + header_len // 2]
    yield "header-length-past-end.safetensors", "FORMAT", "header length 1000000 runs past the end", struct.pack("<Q", 1000000) + valid[8:]
    yield "header-length-over-100mb.safetensors", "FORMAT", "header length 200000000 exceeds the limit of 100 MB", struct.pack("<Q", 200000000) + valid[8:]
    yield "header-length-huge.safetensors", "FORMAT", "exceeds the limit of 100 MB", struct.pack("<Q", 2**64 - 8) + valid[8:]
    yield "data-cut.safetensors", "FORMAT", "tensor 'head.bias': data_offsets", valid[:-4]
    yield "trailing-data.safetensors", "FORMAT", "4 bytes of data after the last tensor", valid + b"\0\0\0\0"

    # --- JSON ---
    # "alph" + C0 AF, an overlong encoding of '/'
    yield "invalid-utf8.safetensors", "FORMAT", "invalid UTF-8 in string", build(metadata(), model_entries(), patch=(b'"alpha"', b'"alph\xc0\xaf"'))
    entries = model_entries()
    find(entries, "alpha").name = '"alpha\\ud800"'
    yield "lone-surrogate.safetensors", "FORMAT", "unpaired high surrogate", build(metadata(), entries)
    yield "invalid-json.safetensors", "FORMAT", "header is not valid JSON: expected ':' after object key", valid.replace(b'"alpha":', b'"alpha" ', 1)
    yield "trailing-garbage.safetensors", "FORMAT", "trailing 'x' after the JSON value", build(metadata(), model_entries(), header_suffix=" x")
    yield "header-not-object.safetensors", "FORMAT", "header is a JSON array, expected an object", struct.pack("<Q", 8) + b"[1,2,3] "
    entries = model_entries()
    find(entries, "alpha").shape = "[" * 10 + "]" * 10
    yield "deep-nesting.safetensors", "FORMAT", "nesting deeper than 8 levels", build(metadata(), entries)

    # --- offsets ---
    entries = model_entries()
    find(entries, "router.bias").offsets = "[%d,%d]" % (4 * (64 + 4 + 16 + 8) - 4, 4 * (64 + 4 + 16 + 8) + 4)
    yield "offsets-overlap.safetensors", "FORMAT", "tensor 'router.bias': data_offsets [364, 372) overlap tensor 'router.weight'", build(metadata(), entries)
    entries = model_entries()
    size = sum(len(e.data) for e in entries)
    find(entries, "head.bias").offsets = "[%d,%d]" % (size, size + 12)
    yield "offsets-outside.safetensors", "FORMAT", "tensor 'head.bias': data_offsets [%d, %d) outside the data region" % (size, size + 12), build(metadata(), entries)
    yield "offsets-gap.safetensors", "FORMAT", "gap of 4 bytes in the data region before tensor 'pos_embed'", build(metadata(), model_entries(), gap_after="patch_embed.bias")
    entries = model_entries()
    find(entries, "alpha").offsets = "[372,368]"
    yield "offsets-end-before-begin.safetensors", "FORMAT", "tensor 'alpha': data_offsets [372, 368) end before begin", build(metadata(), entries)
    entries = model_entries()
    find(entries, "alpha").offsets = "[0,99999999999999999999]"
    yield "offset-overflow.safetensors", "FORMAT", "tensor 'alpha': data_offsets end does not fit in 64 bits", build(metadata(), entries)
    entries = model_entries()
    find(entries, "alpha").offsets = "[0,4,8]"
    yield "offsets-three.safetensors", "FORMAT", "tensor 'alpha': data_offsets must be an array of two integers", build(metadata(), entries)
    entries = model_entries()
    find(entries, "router.bias").shape = "[3]"  # 3 elements declared, 8 bytes stored
    yield "data-length.safetensors", "FORMAT", "tensor 'router.bias': data length 8 bytes, expected 3 elements x 4 bytes", build(metadata(), entries)

    # --- dtype and shape ---
    entries = model_entries()
    find(entries, "alpha").dtype = '"F31"'
    yield "dtype-unknown.safetensors", "FORMAT", "tensor 'alpha': unknown dtype 'F31'", build(metadata(), entries)
    entries = model_entries()
    find(entries, "router.bias").dtype = '"I64"'
    find(entries, "router.bias").shape = "[1]"
    yield "dtype-unsupported.safetensors", "FORMAT", "tensor 'router.bias': unsupported dtype 'I64'", build(metadata(), entries)
    entries = model_entries()
    find(entries, "alpha").shape = "[4294967296,4294967296]"
    yield "shape-overflow.safetensors", "FORMAT", "tensor 'alpha': element count of the shape overflows 64 bits", build(metadata(), entries)
    entries = model_entries()
    find(entries, "alpha").shape = "[-1]"
    yield "shape-negative.safetensors", "FORMAT", "tensor 'alpha': shape[0] -1 is negative", build(metadata(), entries)
    entries = model_entries()
    find(entries, "alpha").shape = "[1.0]"
    yield "shape-not-integer.safetensors", "FORMAT", "tensor 'alpha': shape[0] is not an integer", build(metadata(), entries)
    entries = model_entries()
    find(entries, "alpha").shape = "[1,1,1,1,1,1,1,1,1]"
    yield "shape-too-many-dims.safetensors", "FORMAT", "shape has 9 dimensions, at most 8", build(metadata(), entries)
    entries = model_entries()
    find(entries, "alpha").extra = ',"layout":"row-major"'
    yield "tensor-unknown-field.safetensors", "FORMAT", "tensor 'alpha': unknown field 'layout'", build(metadata(), entries)

    # --- tensors against the config ---
    entries = model_entries()
    find(entries, "blocks.0.mlp.fc1.weight").shape = "[4, 8]"  # transposed: same byte length
    yield "shape-wrong.safetensors", "MODEL", "tensor 'blocks.0.mlp.fc1.weight': shape [4, 8], expected [8, 4]", build(metadata(), entries)
    entries = [e for e in model_entries() if e.name != '"head.bias"']
    yield "tensor-missing.safetensors", "MODEL", "missing tensor 'head.bias' (expected shape [3])", build(metadata(), entries)
    entries = model_entries()
    duplicate = Entry("head.bias", [K], [0.0] * K)
    duplicate.offsets = "[%d,%d]" % (sum(len(e.data) for e in entries) - 12, sum(len(e.data) for e in entries))
    duplicate.data = b""
    yield "tensor-duplicate.safetensors", "FORMAT", "duplicate tensor 'head.bias'", build(metadata(), entries + [duplicate])
    entries = model_entries() + [Entry("cls_token", [1, D], [0.0] * D)]
    yield "tensor-unknown.safetensors", "MODEL", "unknown tensor 'cls_token'", build(metadata(), entries)
    entries = model_entries()
    find(entries, "norm.weight").data = struct.pack("<f", float("nan")) + find(entries, "norm.weight").data[4:]
    yield "weight-nan.safetensors", "MODEL", "tensor 'norm.weight': element 0 is NaN", build(metadata(), entries)
    entries = model_entries()
    find(entries, "head.bias").data = find(entries, "head.bias").data[:8] + struct.pack("<f", float("-inf"))
    yield "weight-inf.safetensors", "MODEL", "tensor 'head.bias': element 2 is infinite", build(metadata(), entries)

    # --- metadata ---
    yield "metadata-absent.safetensors", "MODEL", "no __metadata__: not a MoNE model file", build(None, model_entries())
    yield "metadata-key-missing.safetensors", "MODEL", "missing metadata key 'mone.dim'", build(drop_meta("mone.dim"), model_entries())
    yield "metadata-labels-missing.safetensors", "MODEL", "missing metadata key 'mone.labels'", build(drop_meta("mone.labels"), model_entries())
    yield "metadata-not-integer.safetensors", "MODEL", "metadata 'mone.depth' = '1.5' is not a decimal integer", build(replace_meta("mone.depth", "1.5"), model_entries())
    yield "metadata-negative.safetensors", "MODEL", "metadata 'mone.heads' = '-2' is not a decimal integer", build(replace_meta("mone.heads", "-2"), model_entries())
    yield "metadata-int-too-large.safetensors", "MODEL", "metadata 'mone.classes' = '99999999999' is not a decimal integer", build(replace_meta("mone.classes", "99999999999"), model_entries())
    yield "metadata-not-string.safetensors", "FORMAT", "metadata 'mone.dim' is a number, expected a string", build(replace_meta("mone.dim", RawJSON("4")), model_entries())
    yield "metadata-duplicate-key.safetensors", "FORMAT", "duplicate metadata key 'mone.dim'", build(metadata() + [("mone.dim", "4")], model_entries())
    yield "metadata-bad-float.safetensors", "MODEL", "metadata 'mone.beta' = 'nan' is not a finite float32 number", build(replace_meta("mone.beta", "nan"), model_entries())
    yield "metadata-nul.safetensors", "FORMAT", "metadata 'mone.dim' contains a NUL character", build(replace_meta("mone.dim", RawJSON('"4\\u0000"')), model_entries())
    entries = model_entries()
    find(entries, "alpha").name = '"alpha\\u0000x"'
    yield "tensor-name-nul.safetensors", "FORMAT", "tensor name 'alpha\\x00x' contains a NUL character", build(metadata(), entries)
    yield "labels-nul.safetensors", "MODEL", "metadata 'mone.labels' item 0 is not a string without NUL characters", build(replace_meta("mone.labels", json.dumps(["a\0", "b", "c"])), model_entries())
    yield "heads-not-divisor.safetensors", "MODEL", "mone.dim 4 is not divisible by mone.heads 3", build(replace_meta("mone.heads", "3"), model_entries())
    yield "experts-not-divisor.safetensors", "MODEL", "mone.dim 4 is not divisible by 2^(mone.experts-1) = 8", build(replace_meta("mone.experts", "4"), model_entries())
    yield "height-not-multiple.safetensors", "MODEL", "mone.height 10 is not a multiple of mone.patch 4", build(replace_meta("mone.height", "10"), model_entries())
    yield "labels-count.safetensors", "MODEL", "metadata 'mone.labels' has 2 labels, expected 3 (mone.classes)", build(replace_meta("mone.labels", '["a","b"]'), model_entries())
    yield "labels-not-json.safetensors", "MODEL", "metadata 'mone.labels' is not a JSON array of 3 strings", build(replace_meta("mone.labels", "a,b,c"), model_entries())
    yield "labels-not-strings.safetensors", "MODEL", "metadata 'mone.labels' item 1 is not a string", build(replace_meta("mone.labels", '["a",2,"c"]'), model_entries())
    yield "mean-count.safetensors", "MODEL", "metadata 'mone.mean' has 2 values, expected 1 (mone.channels)", build(replace_meta("mone.mean", "0.5,0.5"), model_entries())
    yield "std-zero.safetensors", "MODEL", "mone.std[0] = 0 out of range [0.0001, 10000]", build(replace_meta("mone.std", "0"), model_entries())
    yield "std-underflow.safetensors", "MODEL", "metadata 'mone.std' value 0 '1e-46' is not a finite float32 number", build(replace_meta("mone.std", "1e-46"), model_entries())
    yield "mean-huge.safetensors", "MODEL", "mone.mean[0] = 1e+38 out of range [-1000, 1000]", build(replace_meta("mone.mean", "1e38"), model_entries())
    yield "delta-huge.safetensors", "MODEL", "mone.delta 5000 out of range (0, 1000)", build(replace_meta("mone.delta", "5000"), model_entries())
    yield "format-not-mone.safetensors", "MODEL", "metadata 'format' is 'gguf', expected 'mone'", build(replace_meta("format", "gguf"), model_entries())
    yield "format-version.safetensors", "MODEL", "unsupported format_version '2' (this build reads version 1)", build(replace_meta("format_version", "2"), model_entries())
    yield "router-hidden-range.safetensors", "MODEL", "mone.router_hidden 5000 out of range 0..4096", build(metadata() + [("mone.router_hidden", "5000")], model_entries())
    yield "router-hidden-not-integer.safetensors", "MODEL", "metadata 'mone.router_hidden' = '-3' is not a decimal integer", build(metadata() + [("mone.router_hidden", "-3")], model_entries())
    # A hidden layer named in the metadata but not in the tensors: the output layer's shape says so first.
    yield "router-hidden-tensors-missing.safetensors", "MODEL", "tensor 'router.weight': shape [2, 4], expected [2, 3]", build(metadata() + [("mone.router_hidden", "3")], model_entries())
    yield "stem-not-integer.safetensors", "MODEL", "metadata 'mone.stem' value 1 'x' is not a decimal integer", build(stem_metadata("16,x"), stem_entries())
    yield "stem-too-many-layers.safetensors", "MODEL", "metadata 'mone.stem' has 5 values, expected 1 to 4 layer widths", build(stem_metadata("4,4,4,4,4"), stem_entries())
    yield "stem-width-zero.safetensors", "MODEL", "mone.stem layer 0 has 0 channels, out of range 1..1024", build(stem_metadata("0"), stem_entries())
    yield "stem-width-huge.safetensors", "MODEL", "mone.stem layer 1 has 2000 channels, out of range 1..1024", build(stem_metadata("4,2000"), stem_entries())
    # Three layers would shrink patches of 4 pixels to half a feature.
    yield "stem-patch-not-multiple.safetensors", "MODEL", "mone.patch 4 is not a multiple of 2^(stem layers) = 8", build(stem_metadata("4,4,4"), stem_entries())
    entries = [e for e in stem_entries() if e.name != '"stem.0.bias"']
    yield "stem-tensor-missing.safetensors", "MODEL", "missing tensor 'stem.0.bias' (expected shape [4])", build(stem_metadata(), entries)
    entries = stem_entries()
    find(entries, "stem.0.weight").shape = "[9, 4]"  # transposed: same byte length
    yield "stem-shape-wrong.safetensors", "MODEL", "tensor 'stem.0.weight': shape [9, 4], expected [4, 9]", build(stem_metadata(), entries)
    # Stem tensors in a file whose metadata names no stem.
    yield "stem-metadata-missing.safetensors", "MODEL", "unknown tensor 'stem.0.weight'", build(metadata(), stem_entries())


def fixtures():
    """Yields (path, bytes) for every generated file, and the expectations table last."""
    for dtype in ("F32", "F16", "BF16"):
        yield os.path.join(HERE, "valid-%s.safetensors" % dtype.lower()), build(metadata(), model_entries(dtype))
    # Mixed dtypes: an F16 'alpha' first puts every F32 tensor after it off the 4-byte grid, so the
    # loader must copy them instead of using them in place.
    entries = model_entries()
    alpha = find(entries, "alpha")
    mixed_alpha = Entry("alpha", [1], [struct.unpack("<f", alpha.data)[0]], "F16")
    entries = [mixed_alpha] + [e for e in entries if e is not alpha]
    yield os.path.join(HERE, "valid-mixed.safetensors"), build(metadata(), entries)
    yield os.path.join(HERE, "valid-stem.safetensors"), build(stem_metadata(), stem_entries())
    lines = ["# Hostile model files: name<TAB>MONE_ERROR code<TAB>substring the error message must contain.",
             "# Generated by tests/loader/make-fixtures.py (fuzz-* files and their lines are kept by hand)."]
    for name, code, message, data in hostile_cases():
        yield os.path.join(HOSTILE, name), data
        lines.append("%s\t%s\t%s" % (name, code, message))
    table = os.path.join(HOSTILE, "expectations.txt")
    if os.path.exists(table):
        with open(table) as f:
            lines += [l for l in f.read().splitlines() if l.startswith("fuzz-")]
    yield table, ("\n".join(lines) + "\n").encode("utf-8")


def main():
    if sys.argv[1:] == ["--check"]:
        stale = []
        for path, data in fixtures():
            try:
                with open(path, "rb") as f:
                    if f.read() != data:
                        stale.append(path)
            except FileNotFoundError:
                stale.append(path)
        for path in stale:
            print("stale or missing fixture: %s (run tests/loader/make-fixtures.py)" % path)
        sys.exit(1 if stale else 0)
    os.makedirs(HOSTILE, exist_ok=True)
    for name in os.listdir(HOSTILE):
        if name.endswith(".safetensors") and not name.startswith("fuzz-"):
            os.unlink(os.path.join(HOSTILE, name))
    for path, data in list(fixtures()):
        with open(path, "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
