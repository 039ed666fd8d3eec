"""The dense peer: a gst-mone model file read as a plain PyTorch ViT, equal to MoNE at e = 1.

At e = 1 every token goes to the widest expert (docs/mone.md, "Capacity distribution"), whose
width is D, so every nested slice is the whole matrix and MoNE is a standard pre-LN ViT with mean
pooling, except for the MLP branch's factor (alpha g + 1), where g is the router probability of
the widest expert for that token. This module computes exactly that, in float32, written the way
a timm ViT is (a strided convolution for the patch embedding, one qkv Linear, softmax attention,
a class token in front of the patch tokens when mone.pool is cls), so that the ONNX export and
PyTorch eager are the ordinary dense baselines. A stem (mone.stem) is what docs/model-format.md
writes it as: Conv2d(3x3, stride 2, padding 1) + GELU layers on each frame, before the patch
embedding.

Input: one model input as the engine takes it (`mone run --help`): float32 (T, C, H, W) pixels
in [0, 1]. The pixel normalisation (mean/std of the file's metadata) is part of the graph, as it
is part of the engine's frame.
"""

import json
import math
import struct

import torch
from torch import nn

_DTYPES = {"F32": (torch.float32, 4), "F16": (torch.float16, 2), "BF16": (torch.bfloat16, 2)}


def read_safetensors(path):
    """name -> float32 tensor, and the __metadata__ dict (docs/model-format.md)."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {})
    data = memoryview(blob)[8 + n:]
    tensors = {}
    for name, entry in header.items():
        dtype, size = _DTYPES[entry["dtype"]]
        begin, end = entry["data_offsets"]
        assert end - begin == math.prod(entry["shape"]) * size, name
        raw = bytearray(data[begin:end])
        t = torch.frombuffer(raw, dtype=dtype) if raw else torch.empty(0, dtype=dtype)
        tensors[name] = t.to(torch.float32).reshape(entry["shape"])
    return tensors, meta


class Config:
    def __init__(self, meta):
        i = lambda k: int(meta[k])
        assert meta.get("format") == "mone", "not a gst-mone model file"
        self.height, self.width, self.channels = i("mone.height"), i("mone.width"), i("mone.channels")
        self.frames, self.patch, self.tubelet = i("mone.frames"), i("mone.patch"), i("mone.tubelet")
        self.dim, self.depth, self.heads = i("mone.dim"), i("mone.depth"), i("mone.heads")
        self.mlp_dim, self.experts, self.classes = i("mone.mlp_dim"), i("mone.experts"), i("mone.classes")
        # The engine keeps real hyper-parameters as float32; so does this side.
        f32 = lambda v: struct.unpack("<f", struct.pack("<f", float(v)))[0]
        self.ln_eps = f32(meta.get("mone.ln_eps", "1e-6"))
        self.mean = [f32(v) for v in meta["mone.mean"].split(",")]
        self.std = [f32(v) for v in meta["mone.std"].split(",")]
        self.tokens = (self.frames // self.tubelet) * (self.height // self.patch) * (self.width // self.patch)
        self.pool = meta.get("mone.pool", "mean")
        assert self.pool in ("mean", "cls"), "unknown mone.pool %r" % self.pool
        # The class token, when there is one, is sequence row 0, in front of the patch tokens.
        self.seq = self.tokens + (self.pool == "cls")
        self.router_hidden = int(meta.get("mone.router_hidden", "0"))
        # mone.stem "C_0,...,C_{S-1}": the patch embedding reads the last map in patches of p / 2^S.
        self.stem = [int(v) for v in meta["mone.stem"].split(",")] if "mone.stem" in meta else []

    def input_shape(self):
        return (self.frames, self.channels, self.height, self.width)


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        # Fixed sizes (one input at a time): the traced graph then has no shape arithmetic.
        self.tokens, self.dim, self.heads = c.seq, c.dim, c.heads
        self.scale = 1.0 / math.sqrt(c.dim // c.heads)
        self.norm1 = nn.LayerNorm(c.dim, eps=c.ln_eps)
        self.qkv = nn.Linear(c.dim, 3 * c.dim)
        self.proj = nn.Linear(c.dim, c.dim)
        self.norm2 = nn.LayerNorm(c.dim, eps=c.ln_eps)
        self.fc1 = nn.Linear(c.dim, c.mlp_dim)
        self.act = nn.GELU()  # exact (erf) GELU, as the engine
        self.fc2 = nn.Linear(c.mlp_dim, c.dim)

    def forward(self, x, gate):
        N, D, H = self.tokens, self.dim, self.heads
        qkv = self.qkv(self.norm1(x)).reshape(1, N, 3, H, D // H).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # (1, H, N, hd); rows of W_qkv are q, then k, then v
        att = torch.softmax((q * self.scale) @ k.transpose(-2, -1), dim=-1)
        x = x + self.proj((att @ v).transpose(1, 2).reshape(1, N, D))
        return x + gate * self.fc2(self.act(self.fc1(self.norm2(x))))


class DenseViT(nn.Module):
    def __init__(self, path):
        super().__init__()
        tensors, meta = read_safetensors(path)
        c = self.config = Config(meta)
        C, t, p, D = c.channels, c.tubelet, c.patch, c.dim
        # The stem runs on every frame (time is its batch); the patch embedding then reads its C'
        # channels in patches of side p' = p / 2^S, the same token grid.
        layers, c_in = [], C
        for c_out in c.stem:
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.GELU()]
            c_in = c_out
        self.stem = nn.Sequential(*layers) if layers else None
        Ce, pe = c_in, p >> len(c.stem)
        self.video = c.frames > 1
        if self.video:
            self.patch_embed = nn.Conv3d(Ce, D, (t, pe, pe), stride=(t, pe, pe))
        else:
            self.patch_embed = nn.Conv2d(Ce, D, pe, stride=pe)
        self.register_buffer("mean", torch.tensor(c.mean).reshape(1, C, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(c.std).reshape(1, C, 1, 1), persistent=False)
        self.pos_embed = nn.Parameter(torch.zeros(1, c.seq, D))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, D)) if c.pool == "cls" else None
        # A router with hidden units reads each token minus the frame's mean token.
        R = c.router_hidden
        self.router_hidden = nn.Sequential(nn.Linear(D, R), nn.GELU()) if R else None
        self.router = nn.Linear(R if R else D, c.experts)
        self.alpha = nn.Parameter(torch.zeros(1))
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.depth))
        self.norm = nn.LayerNorm(D, eps=c.ln_eps)
        self.head = nn.Linear(D, c.classes)

        # Copy the file's tensors in; every one of them must be used exactly once.
        sd = {
            # [D, C'*t*p'*p'] flattened (channel, time, row, column) = the conv kernel's own order
            "patch_embed.weight": tensors.pop("patch_embed.weight").reshape(self.patch_embed.weight.shape),
            "patch_embed.bias": tensors.pop("patch_embed.bias"),
            "pos_embed": tensors.pop("pos_embed").reshape(1, c.seq, D),
            **({"cls_token": tensors.pop("cls_token").reshape(1, 1, D)} if c.pool == "cls" else {}),
            "router.weight": tensors.pop("router.weight"),
            "router.bias": tensors.pop("router.bias"),
            **({"router_hidden.0.weight": tensors.pop("router.hidden.weight"),
                "router_hidden.0.bias": tensors.pop("router.hidden.bias")} if R else {}),
            "alpha": tensors.pop("alpha").reshape(1),
            "norm.weight": tensors.pop("norm.weight"),
            "norm.bias": tensors.pop("norm.bias"),
            "head.weight": tensors.pop("head.weight"),
            "head.bias": tensors.pop("head.bias"),
        }
        for i, conv in enumerate(m for m in layers if isinstance(m, nn.Conv2d)):
            # stem.i.weight [C_i, C_{i-1}*9]: Conv2d's (C_i, C_{i-1}, 3, 3) flattened; GELUs sit between
            sd["stem.%d.weight" % (2 * i)] = tensors.pop("stem.%d.weight" % i).reshape(conv.weight.shape)
            sd["stem.%d.bias" % (2 * i)] = tensors.pop("stem.%d.bias" % i)
        rename = {"norm1": "norm1", "attn.qkv": "qkv", "attn.proj": "proj", "norm2": "norm2",
                  "mlp.fc1": "fc1", "mlp.fc2": "fc2"}
        for i in range(c.depth):
            for src, dst in rename.items():
                for kind in ("weight", "bias"):
                    sd["blocks.%d.%s.%s" % (i, dst, kind)] = tensors.pop("blocks.%d.%s.%s" % (i, src, kind))
        assert not tensors, "tensors not used: %s" % sorted(tensors)
        self.load_state_dict(sd, strict=True)
        self.eval()

    def forward(self, pixels):
        """pixels: (T, C, H, W) float32 in [0, 1] -> logits (1, K)."""
        x = (pixels - self.mean) / self.std
        if self.stem is not None:
            x = self.stem(x)                                           # (T, C', H / 2^S, W / 2^S)
        if self.video:
            x = self.patch_embed(x.permute(1, 0, 2, 3).unsqueeze(0))  # (1, C, T, H, W)
        else:
            x = self.patch_embed(x)                                    # T = 1: (1, C, H, W)
        # (1, D, slices, rows, cols) -> tokens by time slice, row, column
        x = x.flatten(2).transpose(1, 2)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token, x], dim=1)
        x = x + self.pos_embed
        # Router once, before the blocks; at e = 1 every token's expert is the last (widest) one.
        # A hidden router subtracts the mean of the patch tokens (the class token not among them).
        first = 1 if self.cls_token is not None else 0
        r = self.router_hidden(x - x[:, first:].mean(dim=1, keepdim=True)) if self.router_hidden is not None else x
        g = torch.softmax(self.router(r), dim=-1)[..., -1:]
        gate = self.alpha * g + 1.0
        for blk in self.blocks:
            x = blk(x, gate)
        x = self.norm(x)
        return self.head(x[:, 0] if self.cls_token is not None else x.mean(dim=1))


def read_frame(config, path):
    """A raw float32 (T, C, H, W) frame as `mone run` reads it."""
    with open(path, "rb") as f:
        raw = bytearray(f.read())
    shape = config.input_shape()
    assert len(raw) == 4 * math.prod(shape), "%s: expected %d bytes" % (path, 4 * math.prod(shape))
    return torch.frombuffer(raw, dtype=torch.float32).reshape(shape)
