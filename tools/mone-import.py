#!/usr/bin/python3
"""mone-import: a PyTorch / timm Vision Transformer checkpoint -> a gst-mone model file.

    tools/mone-import.py CHECKPOINT -o MODEL.safetensors [--labels FILE] [--mean M,M,M --std S,S,S]
                         [--heads H] [--experts E] [--height H --width W] [--ln-eps EPS]

CHECKPOINT is a state dict saved by torch.save (.pth, .pt, .bin; a dict holding it under
"state_dict", "model" or "module" is unwrapped, a "module." prefix from DataParallel dropped) or a
safetensors file (read here: Debian 12 packages no python3-safetensors). The names are timm's
VisionTransformer's; the model must be one MoNE computes at e = 1: patch tokens and at most a
class token, learned absolute position embedding, pre-norm blocks, LayerNorm on every token, then
the class token's output (timm: class_token=True, global_pool='token', the default; written as
mone.pool = cls) or the mean of the patch tokens (class_token=False, global_pool='avg') into the
head, without fc_norm. A convolutional stem before the patch embedding maps to mone.stem when it
is a top-level `stem` Sequential(Conv2d(C, C_0, 3, 2, 1), GELU(), Conv2d(C_0, C_1, 3, 2, 1), ...)
(stem.N.weight 3x3 kernels with stem.N.bias; a state dict records no strides, paddings or
activations, so stride 2, padding 1 and exact GELU after each are assumed, as the blocks' GELU
is). Everything else (a distillation or register token, relative position bias, layer scale, q/k
norm, a norm after pooling, a stem with normalisation layers, timm's hybrid CNN backbones) is
refused, naming the tensor, rather than converted into a different network.

The router is written as zeros and alpha as 0: the imported model gives the checkpoint's logits at
e = 1, and its nested experts learn to serve lower budgets with
`mone train --init MODEL.safetensors --self-distill ...` (docs/your-own-model.md).
Needs Debian's python3-torch, nothing else.
"""

import argparse
import json
import math
import re
import struct
import sys

import torch

# timm's names that map one to one (i: block index).
BLOCK_KEYS = ("norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight",
              "attn.proj.bias", "norm2.weight", "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias",
              "mlp.fc2.weight", "mlp.fc2.bias")
TOP_KEYS = ("norm.weight", "norm.bias", "head.weight", "head.bias")
# What timm models carry that this format cannot express, and why.
REFUSED = (
    (r"^dist_token$", "a distillation token (DeiT)"),
    (r"^reg_token$", "register tokens"),
    (r"relative_position", "relative position bias (BEiT/Swin): MoNE has one absolute position "
     "embedding"),
    (r"\.ls[12]\.", "layer scale: MoNE blocks add the branches unscaled"),
    (r"\.(q_norm|k_norm)\.", "q/k normalisation"),
    (r"^fc_norm\.", "a LayerNorm after pooling (fc_norm): MoNE normalises each token before pooling"),
    (r"^patch_embed\.backbone\.", "a CNN backbone (timm's hybrid ViT): the only convolutions MoNE runs "
     "before the patch embedding are a stem of 3x3 stride-2 convolutions with GELU (stem.N.weight)"),
    (r"^stem\.(?!\d+\.(weight|bias)$)", "the stem maps only as 3x3 convolutions with bias and GELU "
     "between (stem.N.weight, stem.N.bias): no normalisation or other layer in it"),
)
MAX_STEM_LAYERS = 4  # mone.stem's limit (docs/model-format.md)

SAFETENSORS_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


class ImportError_(Exception):
    pass


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ImportError_("%s: too short for a safetensors file" % path)
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise ImportError_("%s: header length %d past the end of the file" % (path, n))
    try:
        header = json.loads(data[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ImportError_("%s: header is not JSON: %s" % (path, e))
    body = data[8 + n:]
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        dtype = SAFETENSORS_DTYPES.get(entry.get("dtype"))
        if dtype is None:
            raise ImportError_("%s: tensor %s has dtype %s (F32, F16, BF16 only)" % (path, name, entry.get("dtype")))
        begin, end = entry["data_offsets"]
        shape = entry["shape"]
        count = math.prod(shape)
        if not 0 <= begin <= end <= len(body) or end - begin != count * torch.tensor([], dtype=dtype).element_size():
            raise ImportError_("%s: tensor %s: offsets %d..%d do not hold its shape %s" % (path, name, begin, end, shape))
        tensors[name] = torch.frombuffer(bytearray(body[begin:end]), dtype=dtype).reshape(shape).float()
    return tensors


def write_safetensors(path, tensors, metadata):
    """F32 tensors in the given order; the header padded with spaces to a multiple of 8 bytes."""
    header, offset, blobs = {"__metadata__": metadata}, 0, []
    for name, t in tensors.items():
        blob = t.detach().to(torch.float32).contiguous().numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-(8 + len(text)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


def load_state_dict(path):
    if path.endswith(".safetensors"):
        return read_safetensors(path)
    try:
        obj = torch.load(path, map_location="cpu")
    except Exception as e:  # torch raises many kinds for a file that is not a checkpoint
        raise ImportError_("%s: not a PyTorch checkpoint torch.load can read: %s" % (path, e))
    for key in ("state_dict", "model", "module"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(torch.is_tensor(v) for v in obj.values()):
        raise ImportError_("%s: holds no state dict (a dict of tensors)" % path)
    return {re.sub(r"^module\.", "", k): v.detach().float() for k, v in obj.items()}


def need(sd, name, ndim=None):
    if name not in sd:
        raise ImportError_("the checkpoint has no %s: not a timm VisionTransformer state dict" % name)
    t = sd[name]
    if ndim is not None and t.dim() != ndim:
        raise ImportError_("%s has shape %s, expected %d dimensions" % (name, list(t.shape), ndim))
    return t


def stem_layers(sd):
    """The stem's (name, weight [C_i, C_{i-1}, 3, 3], bias [C_i]) by Sequential index; [] without one."""
    index = sorted({int(k.split(".")[1]) for k in sd if k.startswith("stem.")})
    layers = []
    for n in index:
        name = "stem.%d" % n
        w, b = sd.get(name + ".weight"), sd.get(name + ".bias")
        if w is None or w.dim() != 4 or tuple(w.shape[2:]) != (3, 3):
            raise ImportError_("cannot import %s: %s, a stem maps only as 3x3 convolutions with GELU between "
                               "(no normalisation or other layer in it)" % (
                                   name, "no weight" if w is None else "weight of shape %s" % list(w.shape)))
        if b is None or list(b.shape) != [w.shape[0]]:
            raise ImportError_("cannot import %s: a stem convolution needs a bias of %d values (mone.stem's "
                               "convolutions have one)" % (name, w.shape[0]))
        if layers and w.shape[1] != layers[-1][1].shape[0]:
            raise ImportError_("%s.weight reads %d channels, the layer before gives %d"
                               % (name, w.shape[1], layers[-1][1].shape[0]))
        layers.append((name, w, b))
    if len(layers) > MAX_STEM_LAYERS:
        raise ImportError_("the stem has %d convolutions, mone.stem at most %d" % (len(layers), MAX_STEM_LAYERS))
    return layers


def convert(sd, args):
    for name in sd:
        for pattern, why in REFUSED:
            if re.search(pattern, name):
                raise ImportError_("cannot import %s: %s" % (name, why))
    proj = need(sd, "patch_embed.proj.weight", 4)
    D, C, p, p2 = proj.shape
    if p != p2:
        raise ImportError_("patch_embed.proj.weight has a %dx%d kernel: square patches only" % (p, p2))
    # With a stem of S stride-2 layers the patch embedding reads its last map in patches of p' = p / 2^S:
    # the file's patch is the pixels p' covers, its channels the stem's input.
    stem = stem_layers(sd)
    if stem:
        if stem[-1][1].shape[0] != C:
            raise ImportError_("patch_embed.proj.weight reads %d channels, the stem's last layer gives %d"
                               % (C, stem[-1][1].shape[0]))
        C, p = stem[0][1].shape[1], p << len(stem)
    pos = need(sd, "pos_embed")
    pos = pos.reshape(-1, pos.shape[-1])
    cls = "cls_token" in sd
    if cls and sd["cls_token"].numel() != D:
        raise ImportError_("cls_token has shape %s, expected %d values" % (list(sd["cls_token"].shape), D))
    # With a class token, pos_embed's first row is its position (timm: no_embed_class=False).
    N = pos.shape[0] - cls
    if args.height and args.width:
        height, width = args.height, args.width
    else:
        side = int(round(math.sqrt(N)))
        if side * side != N:
            raise ImportError_("pos_embed has %d tokens, not a square grid: give --height and --width" % N)
        height = width = side * p
    if (height // p) * (width // p) != N or height % p or width % p:
        raise ImportError_("%dx%d pixels in %d-pixel patches is not pos_embed's %d tokens" % (height, width, p, N))
    depth = 0
    while "blocks.%d.norm1.weight" % depth in sd:
        depth += 1
    if depth == 0:
        raise ImportError_("the checkpoint has no blocks.0.*: not a timm VisionTransformer state dict")
    heads = args.heads or max(D // 64, 1)
    if D % heads:
        raise ImportError_("width %d is not divisible by %d heads (--heads)" % (D, heads))
    head = need(sd, "head.weight", 2)
    K = head.shape[0]
    labels = ["class %d" % k for k in range(K)]
    if args.labels:
        with open(args.labels, encoding="utf-8") as f:
            labels = [line.rstrip("\n") for line in f if line.strip()]
        if len(labels) != K:
            raise ImportError_("%s has %d labels, the head %d classes" % (args.labels, len(labels), K))
    mean = args.mean or ([0.485, 0.456, 0.406] if C == 3 else [0.5] * C)
    std = args.std or ([0.229, 0.224, 0.225] if C == 3 else [0.5] * C)
    if len(mean) != C or len(std) != C:
        raise ImportError_("--mean and --std need %d values (one per input channel)" % C)

    out = {
        "patch_embed.weight": proj.reshape(D, -1),
        "patch_embed.bias": need(sd, "patch_embed.proj.bias"),
        "pos_embed": pos,
        "router.weight": torch.zeros(args.experts, D),
        "router.bias": torch.zeros(args.experts),
        "alpha": torch.zeros(1),
    }
    used = {"patch_embed.proj.weight", "patch_embed.proj.bias", "pos_embed"}
    for i, (name, w, b) in enumerate(stem):
        out["stem.%d.weight" % i] = w.reshape(w.shape[0], -1)  # [C_i, C_{i-1}, 3, 3] -> [C_i, C_{i-1}*9]
        out["stem.%d.bias" % i] = b
        used |= {name + ".weight", name + ".bias"}
    if cls:
        out["cls_token"] = sd["cls_token"].reshape(D)
        used.add("cls_token")
    for i in range(depth):
        for key in BLOCK_KEYS:
            name = "blocks.%d.%s" % (i, key)
            out[name] = need(sd, name)
            used.add(name)
    for name in TOP_KEYS:
        out[name] = need(sd, name)
        used.add(name)
    left = sorted(set(sd) - used)
    if left:
        raise ImportError_("cannot import %s: no such tensor in a MoNE model (%d unmapped in all)" % (left[0], len(left)))
    meta = {
        "format": "mone", "format_version": "1",
        "mone.height": str(height), "mone.width": str(width), "mone.channels": str(C),
        "mone.frames": "1", "mone.patch": str(p), "mone.tubelet": "1", "mone.dim": str(D),
        "mone.depth": str(depth), "mone.heads": str(heads),
        "mone.mlp_dim": str(out["blocks.0.mlp.fc1.weight"].shape[0]), "mone.experts": str(args.experts),
        "mone.classes": str(K), "mone.ln_eps": repr(args.ln_eps),
        "mone.mean": ",".join(repr(float(v)) for v in mean), "mone.std": ",".join(repr(float(v)) for v in std),
        "mone.labels": json.dumps(labels, ensure_ascii=False), "source": "mone-import.py",
    }
    if cls:
        meta["mone.pool"] = "cls"
    if stem:
        meta["mone.stem"] = ",".join(str(w.shape[0]) for _, w, _ in stem)
    return out, meta


def numbers(text):
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError("'%s' is not a comma-separated list of numbers" % text)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="state dict (.pth/.pt/.bin) or .safetensors")
    parser.add_argument("-o", "--output", required=True, help="model file to write")
    parser.add_argument("--labels", help="class names, one per line, in the head's order")
    parser.add_argument("--mean", type=numbers, help="per-channel mean of [0,1] pixels (default: ImageNet's for RGB, 0.5 for grey)")
    parser.add_argument("--std", type=numbers, help="per-channel std (default: ImageNet's for RGB, 0.5 for grey)")
    parser.add_argument("--heads", type=int, help="attention heads (default: width / 64, timm's head width)")
    parser.add_argument("--experts", type=int, default=4, help="nested experts (default 4)")
    parser.add_argument("--height", type=int, help="input height (default: from pos_embed, square)")
    parser.add_argument("--width", type=int, help="input width")
    parser.add_argument("--ln-eps", type=float, default=1e-6, help="LayerNorm epsilon (default 1e-6, timm's)")
    args = parser.parse_args()
    if not 1 <= args.experts <= 8:
        parser.error("--experts %d is not in 1..8" % args.experts)
    try:
        out, meta = convert(load_state_dict(args.checkpoint), args)
        write_safetensors(args.output, out, meta)
    except (ImportError_, OSError) as e:
        print("mone-import: %s" % e, file=sys.stderr)
        return 1
    print("wrote %s: %sx%s, %spatch %s, D %s, depth %s, heads %s, %s classes, %s experts (router untrained: "
          "exact at e = 1; train the experts with mone train --init)" % (
              args.output, meta["mone.width"], meta["mone.height"],
              "stem %s (assumed stride 2, padding 1, GELU), " % meta["mone.stem"] if "mone.stem" in meta else "", meta["mone.patch"], meta["mone.dim"],
              meta["mone.depth"], meta["mone.heads"], meta["mone.classes"], meta["mone.experts"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
