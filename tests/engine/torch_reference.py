"""A second MoNE implementation, in PyTorch, written from the documents alone.

Sources: docs/mone.md (the method; "the spec" below), docs/model-format.md (the file),
include/mone/mone.h and `mone run --help` (input layout). Nothing here was taken from src/: the
point is an independent reading of the spec, so a disagreement with the C engine means one of the
two (or the spec) is wrong. tests/engine/test-torch-reference.py compares the two.

Everything runs in float64 so this side's rounding is negligible next to the engine's float32.
The capacity distribution is computed with Python floats (also double), as in mone.h.

Usable on its own:  /usr/bin/python3 tests/engine/torch_reference.py MODEL RAW [BUDGET...]
"""

import json
import math
import struct
import sys

import torch

# ---------------------------------------------------------------------------------------------
# safetensors container (docs/model-format.md, "Container layout" and "dtypes")

_DTYPE_SIZE = {"F32": 4, "F16": 2, "BF16": 2}


def _decode(dtype, raw):
    """Little-endian bytes -> float64 tensor (flat)."""
    if dtype == "F32":
        t = torch.frombuffer(bytearray(raw), dtype=torch.float32)
    elif dtype == "F16":
        t = torch.frombuffer(bytearray(raw), dtype=torch.float16)
    elif dtype == "BF16":
        # bfloat16 is the top half of a float32: widen the bits explicitly rather than trusting a
        # library conversion, so this path is independent of both torch's and the engine's.
        halves = torch.frombuffer(bytearray(raw), dtype=torch.int16).to(torch.int32) & 0xFFFF
        t = (halves << 16).view(torch.float32)
    else:
        raise ValueError("unsupported dtype %r" % dtype)
    return t.to(torch.float64)


def read_safetensors(path):
    """Returns (tensors: name -> float64 tensor, metadata: dict of str, dtypes: name -> dtype)."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    data = blob[8 + n:]
    metadata = header.pop("__metadata__", {})
    tensors, dtypes = {}, {}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        shape = entry["shape"]
        count = math.prod(shape)
        assert end - begin == count * _DTYPE_SIZE[entry["dtype"]], name
        tensors[name] = _decode(entry["dtype"], data[begin:end]).reshape(shape)
        dtypes[name] = entry["dtype"]
    return tensors, metadata, dtypes


def write_safetensors(path, tensors, metadata):
    """F32 safetensors, header padded with spaces to a multiple of 8 (docs/model-format.md)."""
    header, chunks, offset = {"__metadata__": dict(metadata)}, [], 0
    for name, t in tensors.items():
        raw = t.detach().to(torch.float32).contiguous().numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(chunks))


# ---------------------------------------------------------------------------------------------
# Model: metadata (docs/model-format.md, "Metadata")

def _f32(x):
    """The engine stores real hyper-parameters as float32 (MoneConfig); so does this side."""
    return struct.unpack("<f", struct.pack("<f", float(x)))[0]


class Model:
    def __init__(self, path):
        self.tensors, meta, self.dtypes = read_safetensors(path)
        self.meta = meta
        assert meta["format"] == "mone" and meta["format_version"] == "1"
        i = lambda k: int(meta[k])
        self.height, self.width, self.channels = i("mone.height"), i("mone.width"), i("mone.channels")
        self.frames, self.patch, self.tubelet = i("mone.frames"), i("mone.patch"), i("mone.tubelet")
        self.dim, self.depth, self.heads = i("mone.dim"), i("mone.depth"), i("mone.heads")
        self.mlp_dim, self.experts, self.classes = i("mone.mlp_dim"), i("mone.experts"), i("mone.classes")
        self.delta = _f32(meta.get("mone.delta", "2"))
        self.beta = _f32(meta.get("mone.beta", "10"))
        self.ln_eps = _f32(meta.get("mone.ln_eps", "1e-6"))
        self.mean = [_f32(v) for v in meta["mone.mean"].split(",")]
        self.std = [_f32(v) for v in meta["mone.std"].split(",")]
        self.labels = json.loads(meta["mone.labels"])
        self.grid_h, self.grid_w = self.height // self.patch, self.width // self.patch
        self.slices = self.frames // self.tubelet
        self.tokens = self.slices * self.grid_h * self.grid_w
        # mone.pool (docs/model-format.md): "mean" when absent, "cls" for a class token.
        self.pool = meta.get("mone.pool", "mean")
        assert self.pool in ("mean", "cls"), self.pool
        # mone.router_hidden: 0 (absent) for a one-layer router, else its hidden units.
        self.router_hidden = int(meta.get("mone.router_hidden", "0"))
        # mone.stem: "C_0,...,C_{S-1}", the output channels of S 3x3 stride-2 convolutions run on
        # each frame first; absent: none. The patch embedding then reads the last map's C_{S-1}
        # channels in patches of side p / 2^S (the same token grid).
        self.stem = [int(v) for v in meta["mone.stem"].split(",")] if "mone.stem" in meta else []
        assert self.patch % 2 ** len(self.stem) == 0, (self.patch, self.stem)
        self.embed_channels = self.stem[-1] if self.stem else self.channels
        self.embed_patch = self.patch >> len(self.stem)
        # Expert j has width d_j = D / 2^(E-1-j) (mone.md, "Notation").
        self.widths = [self.dim >> (self.experts - 1 - j) for j in range(self.experts)]
        self.ratios = [w / self.dim for w in self.widths]

    def t(self, name):
        return self.tensors[name]


# ---------------------------------------------------------------------------------------------
# Capacity distribution (mone.md, "Capacity distribution from the budget")

def capacity_from_budget(experts, delta, beta, budget):
    """Returns (clamped budget, [c_0..c_{E-1}]) in double precision."""
    r = [1.0 / 2 ** (experts - 1 - j) for j in range(experts)]
    e = min(max(budget, r[0]), 1.0)
    if e >= 1.0:
        return e, [0.0] * (experts - 1) + [1.0]
    if e <= r[0]:
        return e, [1.0] + [0.0] * (experts - 1)

    def dist(lam):
        # c_j proportional to exp((delta^j - lambda r_j) / beta), normalised via log-sum-exp.
        z = [(delta ** j - lam * r[j]) / beta for j in range(experts)]
        m = max(z)
        w = [math.exp(v - m) for v in z]
        s = sum(w)
        return [v / s for v in w]

    def cost(lam):
        return sum(c * rj for c, rj in zip(dist(lam), r))

    # sum c_j r_j falls monotonically with lambda: bracket e, then bisect to the last bit.
    lo, hi = -1.0, 1.0
    while cost(lo) < e:
        lo *= 2
    while cost(hi) > e:
        hi *= 2
    for _ in range(2000):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if cost(mid) > e:
            lo = mid
        else:
            hi = mid
    return e, dist(0.5 * (lo + hi))


# floor(c_j N) of the exact optimum. Where c_j N is an integer (E = 2 at e = 0.75; E = 4, delta 2
# at e = 0.46875, where c is uniform, with N = 196) a bisected c lands an ulp either side of it and
# a literal floor drops a token at random, so a tiny slack rounds up within 1e-9. The engine makes
# the same choice (mone.h, mone_tokens_per_expert): found when this reference, without it, gave
# [203, 199, 199, 199, 200] for E = 5, e = 0.3875, N = 1000 where the exact answer is 200 each.
COUNT_SLACK = 1e-9


def tokens_per_expert(capacity, tokens):
    """k_j = floor(c_j N) for j = E-1 down to 1; expert 0 takes the rest (mone.md step 3)."""
    experts = len(capacity)
    k = [0] * experts
    for j in range(experts - 1, 0, -1):
        k[j] = min(math.floor(capacity[j] * tokens + COUNT_SLACK), tokens - sum(k[j + 1:]))
    k[0] = tokens - sum(k[1:])
    return k


def route(probs, counts):
    """Expert Preferred Routing (mone.md step 4). probs: N x E; returns a list of N expert indices.

    For j = E-1 down to 1, expert j takes the counts[j] unassigned tokens with the highest
    probs[:, j]; ties go to the lower token index. Everything left goes to expert 0."""
    n, experts = probs.shape
    p = probs.tolist()
    expert = [None] * n
    for j in range(experts - 1, 0, -1):
        free = [t for t in range(n) if expert[t] is None]
        # Sort key (-p, t): highest probability first, then lowest index. Python's sort is exact
        # on the float64 values, with no tolerance.
        free.sort(key=lambda t: (-p[t][j], t))
        for t in free[:counts[j]]:
            expert[t] = j
    return [0 if a is None else a for a in expert]


# ---------------------------------------------------------------------------------------------
# Forward pass (mone.md, "Forward pass of an image model")

def stem_forward(model, x):
    """x: normalised frames (T, C, H, W) -> the stem's last map (T, C_{S-1}, H / 2^S, W / 2^S).

    Each layer: Conv2d(C_{i-1}, C_i, 3, stride 2, padding 1) with zeros padded in normalised units,
    then the exact GELU (docs/model-format.md); the frames are a batch, each convolved alone."""
    c_in = model.channels
    for i, c_out in enumerate(model.stem):
        # [C_i, C_{i-1}*9] flattened (channel, row, column): PyTorch's weight layout reshaped
        w = model.t("stem.%d.weight" % i).reshape(c_out, c_in, 3, 3)
        x = gelu(torch.nn.functional.conv2d(x, w, model.t("stem.%d.bias" % i), stride=2, padding=1))
        c_in = c_out
    return x


def patchify(model, pixels):
    """pixels: float64 (T, C, H, W) in [0,1] -> patch vectors (N, C'*t*p'*p') of the normalised
    pixels, or of the stem's last map (C' channels, p' = p / 2^S) with a stem.

    Tokens are ordered (time slice, patch row, patch column); each vector is flattened in
    (channel, time, row, column) order, as the spec and docs/model-format.md say."""
    T, C, H, W = model.frames, model.channels, model.height, model.width
    t = model.tubelet
    x = pixels.reshape(T, C, H, W)
    mean = torch.tensor(model.mean, dtype=torch.float64).reshape(1, C, 1, 1)
    std = torch.tensor(model.std, dtype=torch.float64).reshape(1, C, 1, 1)
    x = (x - mean) / std
    if model.stem:
        x = stem_forward(model, x)
    C, p = model.embed_channels, model.embed_patch
    H, W = H >> len(model.stem), W >> len(model.stem)
    assert x.shape == (T, C, H, W), x.shape
    # (T, C, H, W) -> (slice, dt, C, gy, dy, gx, dx)
    x = x.reshape(T // t, t, C, H // p, p, W // p, p)
    # -> (slice, gy, gx, C, dt, dy, dx)
    x = x.permute(0, 3, 5, 2, 1, 4, 6)
    return x.reshape((T // t) * (H // p) * (W // p), C * t * p * p)


def layer_norm(x, w, b, eps):
    mu = x.mean(dim=-1, keepdim=True)
    var = ((x - mu) ** 2).mean(dim=-1, keepdim=True)  # biased, as LayerNorm
    return (x - mu) / torch.sqrt(var + eps) * w + b


def gelu(x):
    # The spec says GELU; the exact (erf) form, as torch.nn.GELU() and timm use.
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def forward(model, pixels, budget):
    """pixels: anything torch.as_tensor takes, (T, C, H, W) values in [0,1]. Returns a dict."""
    M = model
    N, D, H, E = M.tokens, M.dim, M.heads, M.experts
    hd = D // H
    W = M.t
    pix = torch.as_tensor(pixels, dtype=torch.float64)

    # 1. patch embedding + bias + position embedding; a class token (mone.pool = cls) goes first,
    # with the first position embedding
    cls = 1 if M.pool == "cls" else 0
    pos = W("pos_embed")
    x = patchify(M, pix) @ W("patch_embed.weight").T + W("patch_embed.bias") + pos[cls:]
    if cls:
        x = torch.cat([(W("cls_token") + pos[0]).unsqueeze(0), x])

    # 2. router, once, before layer 0 (every row; the class token's gives its gate); with hidden
    # units it reads each row minus the mean of the patch rows
    if M.router_hidden:
        h = gelu((x - x[cls:].mean(dim=0)) @ W("router.hidden.weight").T + W("router.hidden.bias"))
        probs = torch.softmax(h @ W("router.weight").T + W("router.bias"), dim=-1)
    else:
        probs = torch.softmax(x @ W("router.weight").T + W("router.bias"), dim=-1)

    # 3.-4. capacity, token counts, Expert Preferred Routing over the patch tokens; the class
    # token always goes to the widest expert
    used, cap = capacity_from_budget(E, M.delta, M.beta, budget)
    counts = tokens_per_expert(cap, N)
    expert = route(probs[cls:], counts)
    a = torch.tensor([E - 1] * cls + expert)
    N = N + cls   # every row from here on
    g = probs[torch.arange(N), a]
    alpha = W("alpha").reshape(())
    groups = [(j, M.widths[j], (a == j).nonzero().flatten()) for j in range(E)]

    # 5. blocks; every projection slice written out literally per expert group
    for i in range(M.depth):
        B = lambda n: W("blocks.%d.%s" % (i, n))
        h = layer_norm(x, B("norm1.weight"), B("norm1.bias"), M.ln_eps)   # LN over all D
        qkv = torch.empty(N, 3 * D, dtype=torch.float64)
        for j, d, idx in groups:
            # q, k, v = W_qkv[:, :d_j] h[:d_j] + b_qkv, full 3D wide
            qkv[idx] = h[idx, :d] @ B("attn.qkv.weight")[:, :d].T + B("attn.qkv.bias")
        q, k, v = (qkv[:, s * D:(s + 1) * D].reshape(N, H, hd).transpose(0, 1) for s in range(3))
        att = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(hd), dim=-1)   # (H, N, N)
        attn = (att @ v).transpose(0, 1).reshape(N, D)                       # heads concatenated
        o = torch.zeros(N, D, dtype=torch.float64)
        for j, d, idx in groups:
            # o = W_o[:d_j, :] attn_t + b_o[:d_j], zero-padded to D
            o[idx, :d] = attn[idx] @ B("attn.proj.weight")[:d, :].T + B("attn.proj.bias")[:d]
        z = x + o

        h2 = layer_norm(z, B("norm2.weight"), B("norm2.bias"), M.ln_eps)
        m = torch.zeros(N, D, dtype=torch.float64)
        for j, d, idx in groups:
            hidden = gelu(h2[idx, :d] @ B("mlp.fc1.weight")[:, :d].T + B("mlp.fc1.bias"))
            m[idx, :d] = hidden @ B("mlp.fc2.weight")[:d, :].T + B("mlp.fc2.bias")[:d]
        x = z + (alpha * g + 1.0).unsqueeze(1) * m

    # 6. final LN per token, mean over the tokens (or the class token's row), head
    final = layer_norm(x, W("norm.weight"), W("norm.bias"), M.ln_eps)
    pooled = final[0] if cls else final.mean(dim=0)
    logits = pooled @ W("head.weight").T + W("head.bias")
    return {
        "budget_used": used,
        "capacity": cap,
        "tokens_per_expert": counts,
        "expert_of_token": expert,
        "router_probs": probs[cls:],
        "logits": logits,
        "probs": torch.softmax(logits, dim=-1),
        "flops": flops(M, counts),
    }


def flops(model, counts):
    """FLOPs of one pass with this many tokens per expert, a multiply-add counted as 2.

    What `mone info` says it counts: patch embedding, router, attention at full width, head; and
    a stem's convolutions (docs/model-format.md).
    Expert j's share of qkv, proj, fc1 and fc2 costs r_j of the full projection (mone.md);
    norms, softmax, GELU and pooling are not counted, nor what a class-token model's last block
    skips (its output rows other than the class token's, which nothing reads)."""
    M = model
    N, D, F = M.tokens, M.dim, M.mlp_dim
    S = N + (1 if M.pool == "cls" else 0)                        # rows, class token included
    total = 2 * N * D * M.embed_channels * M.tubelet * M.embed_patch ** 2   # patch embedding
    c_in = M.channels
    for i, c_out in enumerate(M.stem):                           # stem: 9 C_{i-1} C_i per output pixel
        total += 2 * 9 * c_in * c_out * M.frames * (M.height >> (i + 1)) * (M.width >> (i + 1))
        c_in = c_out
    R = M.router_hidden
    total += 2 * S * (R * (D + M.experts) if R else D * M.experts)  # router
    qkv = rest = 0
    for j, k in enumerate(counts):
        d = M.widths[j]
        k += S - N if j == M.experts - 1 else 0                  # the class token: widest
        qkv += k * 2 * 3 * D * d
        rest += k * 2 * (d * D + F * d + d * F)                  # proj, fc1, fc2
    per_block = qkv + 2 * 2 * S * S * D + rest                   # q k^T and att v, full width
    # With a class token the head reads its row alone: the last block computes every row's keys
    # and values, then attention, proj and MLP for the class token (full width) only.
    last_block = qkv + 2 * 2 * S * D + 2 * (D * D + 2 * F * D) if S > N else per_block
    total += (M.depth - 1) * per_block + last_block
    total += 2 * D * M.classes                                   # head
    return float(total)


def read_raw(model, path):
    """RAW: little-endian float32 (T, C, H, W), nothing else (`mone run --help`)."""
    with open(path, "rb") as f:
        raw = f.read()
    t = torch.frombuffer(bytearray(raw), dtype=torch.float32).to(torch.float64)
    return t.reshape(model.frames, model.channels, model.height, model.width)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit("usage: torch_reference.py MODEL RAW [BUDGET...]")
    mdl = Model(sys.argv[1])
    px = read_raw(mdl, sys.argv[2])
    for b in [float(v) for v in sys.argv[3:]] or [1.0]:
        r = forward(mdl, px, b)
        print("budget %.4f  tokens per expert %s  top %d  flops %.6g" % (
            r["budget_used"], r["tokens_per_expert"], int(r["logits"].argmax()), r["flops"]))
        print("  logits " + " ".join("%.6f" % v for v in r["logits"].tolist()))
        print("  experts " + "".join(str(a) for a in r["expert_of_token"]))
