#!/usr/bin/python3
"""The C engine (through `mone run --json`) against tests/engine/torch_reference.py, a PyTorch
MoNE written from the documents alone, and the PyTorch export recipe of docs/model-format.md run
as written against a timm-shaped PyTorch ViT.

usage: test-torch-reference.py MONE_TOOL SOURCE_ROOT [LIBMONE.so]   (exit 77 = skipped: no torch)

Compared for every (model, input, budget):
  - clamped budget, tokens per expert, FLOPs: exactly;
  - expert of every token: exactly (a difference is reported with the router-probability gap
    that decided it, to tell a float32 near-tie from a routing bug);
  - router probabilities: max abs difference <= 1e-5;
  - logits: max abs difference <= LOGIT_TOL x max(1, max |logit|). The reference runs in float64,
    the engine in float32, so this measures the engine's rounding (about 1e-6 here) and anything
    the two implementations disagree on.
With LIBMONE.so, also libmone's public capacity / token-count / routing functions (mone.h) through
ctypes over thousands of budgets, delta/beta pairs and tie-heavy probability tables.
Models: the shipped Fashion-MNIST model on test images; random `mone init` skeletons (image and
tubelet video, non-square, 1..3 channels, E = 1..5, alpha != 0, non-default delta/beta/eps, class
token, hidden-layer router, convolutional stems of 1..3 layers) with weights large enough that
nothing is near-linear; models built for ties (router weights 0; zero position embedding with
repeated patches); the committed F32/F16/BF16/mixed loader fixtures.
"""

import gzip
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import types

try:
    import torch
except ImportError:
    print("SKIP: %s cannot import torch (Debian: apt-get install python3-torch)" % sys.executable)
    sys.exit(77)

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_reference as ref  # noqa: E402

LOGIT_TOL = 2e-5
ROUTER_TOL = 1e-5

MONE, ROOT = sys.argv[1], sys.argv[2]
LIBMONE = sys.argv[3] if len(sys.argv) > 3 else None
TMP = tempfile.mkdtemp(prefix="mone-torch-ref-")
failures = []
worst = {}  # model -> worst logit diff / scale, for the summary


def fail(msg):
    failures.append(msg)
    print("FAIL: " + msg)


def engine(model_path, raw_path, budget, threads=1):
    out = subprocess.run([MONE, "run", model_path, raw_path, "--budget", repr(budget), "--json",
                          "--threads", str(threads)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def write_raw(path, pixels):
    with open(path, "wb") as f:
        f.write(pixels.to(torch.float32).contiguous().numpy().astype("<f4").tobytes())


def compare(tag, model_path, model, pixels, budgets, threads=1):
    raw = os.path.join(TMP, "in.raw")
    write_raw(raw, pixels)
    # The reference sees exactly the float32 values the engine reads.
    pixels = pixels.to(torch.float32).to(torch.float64)
    for b in budgets:
        e = engine(model_path, raw, b, threads)
        r = ref.forward(model, pixels, b)
        where = "%s e=%g" % (tag, b)
        if e["budget_used"] != r["budget_used"]:
            fail("%s: budget used %r, reference %r" % (where, e["budget_used"], r["budget_used"]))
        if e["tokens_per_expert"] != r["tokens_per_expert"]:
            fail("%s: tokens per expert %s, reference %s" % (where, e["tokens_per_expert"], r["tokens_per_expert"]))
        if e["flops"] != r["flops"]:
            fail("%s: FLOPs %r, reference %r" % (where, e["flops"], r["flops"]))
        ep = torch.tensor(e["router_probs"], dtype=torch.float64).reshape(model.tokens, model.experts)
        rdiff = float((ep - r["router_probs"]).abs().max())
        if not rdiff <= ROUTER_TOL:
            fail("%s: router probabilities differ by %.3g" % (where, rdiff))
        diff_tokens = [t for t, (x, y) in enumerate(zip(e["expert_of_token"], r["expert_of_token"])) if x != y]
        if diff_tokens:
            # The smallest router-probability gap between a moved token and any other token for
            # the expert column involved: ~1e-7 means a float32 near-tie, not a routing rule.
            p = r["router_probs"]
            gaps = []
            for t in diff_tokens:
                j = max(e["expert_of_token"][t], r["expert_of_token"][t])
                others = torch.cat([p[:t, j], p[t + 1:, j]])
                gaps.append(float((others - p[t, j]).abs().min()))
            fail("%s: %d of %d tokens routed differently (first %s; smallest router gap %.3g)" % (
                where, len(diff_tokens), model.tokens, diff_tokens[:5], min(gaps)))
        el = torch.tensor(e["logits"], dtype=torch.float64)
        scale = max(1.0, float(r["logits"].abs().max()))
        ldiff = float((el - r["logits"]).abs().max())
        if not ldiff <= LOGIT_TOL * scale:
            fail("%s: logits differ by %.3g (scale %.3g, tolerance %.3g)" % (where, ldiff, scale, LOGIT_TOL * scale))
        w = worst.setdefault(tag.split(" ")[0], [0.0, 0.0, 0, 0])
        w[0] = max(w[0], ldiff)
        w[1] = max(w[1], ldiff / scale)
        w[2] += model.tokens - len(diff_tokens)
        w[3] += model.tokens
        print("  %-34s used %.4f  k %-16s  |dlogit| %.2e (scale %5.2f)  |dp| %.1e  routing %d/%d" % (
            where, e["budget_used"], ",".join(map(str, e["tokens_per_expert"])), ldiff, scale, rdiff,
            model.tokens - len(diff_tokens), model.tokens))


# ---------------------------------------------------------------------------------------------
# Model builders

def init_model(name, keys, alpha=0.0, randomise=True, seed=0, edit=None):
    """`mone init` writes the skeleton (metadata, shapes); weights are then redrawn here, large
    enough that attention, GELU and the router are far from their small-weight regimes."""
    path = os.path.join(TMP, name + ".safetensors")
    subprocess.run([MONE, "init"] + keys + [path], check=True, capture_output=True)
    if randomise or edit:
        tensors, meta, _ = ref.read_safetensors(path)
        g = torch.Generator().manual_seed(seed)
        n = lambda shape: torch.randn(shape, generator=g, dtype=torch.float64)
        for k, t in tensors.items():
            if not randomise:
                break
            if k == "alpha":
                tensors[k] = torch.full_like(t, alpha)
            elif k.endswith("norm1.weight") or k.endswith("norm2.weight") or k == "norm.weight":
                tensors[k] = 1 + 0.2 * n(t.shape)
            elif k == "pos_embed":
                tensors[k] = 0.5 * n(t.shape)
            elif k in ("router.weight", "router.hidden.weight"):
                tensors[k] = 2.0 * n(t.shape) / math.sqrt(t.shape[1])
            elif t.dim() == 2:
                tensors[k] = n(t.shape) / math.sqrt(t.shape[1])
            else:
                tensors[k] = 0.2 * n(t.shape)
        if edit:
            edit(tensors, g)
        ref.write_safetensors(path, tensors, meta)
    return path, ref.Model(path)


def random_pixels(model, seed):
    g = torch.Generator().manual_seed(1000 + seed)
    return torch.rand((model.frames, model.channels, model.height, model.width), generator=g, dtype=torch.float64)


def blocky_pixels(model, seed):
    """Random values per 2x2 group of patches: many identical patches, so ties in the router when
    the position embedding is 0."""
    g = torch.Generator().manual_seed(2000 + seed)
    p = model.patch
    small = torch.rand((model.frames, model.channels, model.grid_h // 2 + 1, model.grid_w // 2 + 1),
                       generator=g, dtype=torch.float64)
    big = small.repeat_interleave(2 * p, dim=2).repeat_interleave(2 * p, dim=3)
    return big[:, :, :model.height, :model.width].contiguous()


def fashion_images(indices):
    path = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"
    if not os.path.exists(path):
        return None
    with gzip.open(path, "rb") as f:
        data = f.read()
    assert int.from_bytes(data[:4], "big") == 0x803
    n, h, w = (int.from_bytes(data[4 * i:4 * i + 4], "big") for i in (1, 2, 3))
    out = []
    for i in indices:
        px = torch.tensor(list(data[16 + i * h * w:16 + (i + 1) * h * w]), dtype=torch.float64) / 255
        out.append((i, px.reshape(1, 1, h, w)))
    return out


# ---------------------------------------------------------------------------------------------
# libmone's routing API (mone.h) on many more cases than whole forward passes can afford

def check_routing_api(path):
    import ctypes
    lib = ctypes.CDLL(path)
    D, I = ctypes.c_double, ctypes.c_int
    lib.mone_capacity_from_budget.restype = D
    lib.mone_capacity_from_budget.argtypes = [I, D, D, D, ctypes.POINTER(D)]
    lib.mone_tokens_per_expert.argtypes = [I, ctypes.POINTER(D), I, ctypes.POINTER(I)]
    lib.mone_route_tokens.argtypes = [I, I, ctypes.POINTER(ctypes.c_float), ctypes.POINTER(I),
                                      ctypes.POINTER(ctypes.c_uint8), ctypes.POINTER(I)]
    g = torch.Generator().manual_seed(42)
    cases = cap_worst = 0
    count_diffs = []
    pairs = [(2, 10), (3, 5), (1.5, 20), (0.5, 100), (999, 0.001), (0.001, 1e5)]
    budgets = [i / 400 for i in range(401)] + torch.rand(200, generator=g, dtype=torch.float64).tolist()
    token_counts = [1, 7, 16, 49, 196, 1000, 65536]
    for E in range(1, 9):
        for delta, beta in pairs:
            # the same float32 values the model file gives the engine
            delta, beta = ref._f32(delta), ref._f32(beta)
            for b in budgets + [1 / 2 ** (E - 1 - j) for j in range(E)]:
                cap = (D * E)()
                used = lib.mone_capacity_from_budget(E, delta, beta, b, cap)
                r_used, r_cap = ref.capacity_from_budget(E, delta, beta, b)
                cases += 1
                if used != r_used:
                    fail("capacity E=%d delta=%g beta=%g e=%r: budget used %r, reference %r" % (E, delta, beta, b, used, r_used))
                cap_worst = max(cap_worst, max(abs(x - y) for x, y in zip(cap, r_cap)))
                for n in token_counts:
                    counts = (I * E)()
                    lib.mone_tokens_per_expert(E, cap, n, counts)
                    # Each side's own capacity: floor(c_j N) at an exact integer is where two
                    # correct bisections may legitimately differ by one token.
                    if list(counts) != ref.tokens_per_expert(r_cap, n):
                        count_diffs.append((E, delta, beta, b, n, list(counts), ref.tokens_per_expert(r_cap, n)))
    # Budgets whose exact optimum puts an integer number of tokens on each expert (c uniform when
    # delta^j - lambda r_j is constant, i.e. lambda = 2^(E-1) for delta = 2): counts known without
    # either implementation. A literal floor of a bisected c loses tokens here.
    for E, e, n, want in ((4, 15 / 32, 196, [49] * 4), (5, 31 / 80, 1000, [200] * 5), (2, 0.75, 8, [4, 4])):
        cap = (D * E)()
        lib.mone_capacity_from_budget(E, 2.0, 10.0, e, cap)
        counts = (I * E)()
        lib.mone_tokens_per_expert(E, cap, n, counts)
        got_ref = ref.tokens_per_expert(ref.capacity_from_budget(E, 2.0, 10.0, e)[1], n)
        if list(counts) != want or got_ref != want:
            fail("uniform capacity E=%d e=%g N=%d: engine %s, reference %s, exact %s" % (E, e, n, list(counts), got_ref, want))
    if not cap_worst <= 1e-9:
        fail("capacity distributions differ by up to %.3g" % cap_worst)
    for d in count_diffs:
        fail("tokens per expert E=%d delta=%g beta=%g e=%r N=%d: engine %s, reference %s" % d)
    print("  %-34s %d budgets x delta/beta x E: max |dc| %.1e, token counts equal for %d N each" % (
        "capacity api", cases, cap_worst, len(token_counts)))

    # Routing with probability tables drawn from a few levels: many exact ties.
    routed = 0
    for trial in range(300):
        E = 2 + trial % 7
        n = 1 + int(torch.randint(0, 300, (1,), generator=g))
        levels = 1 + trial % 5
        p = (torch.randint(0, levels, (n, E), generator=g).to(torch.float32) / levels)
        counts_t = torch.multinomial(torch.ones(E), n, replacement=True, generator=g).bincount(minlength=E).tolist()
        pf = (ctypes.c_float * (n * E))(*p.flatten().tolist())
        out = (ctypes.c_uint8 * n)()
        lib.mone_route_tokens(n, E, pf, (I * E)(*counts_t), out, (I * (2 * n))())
        want = ref.route(p.to(torch.float64), counts_t)
        if list(out) != want:
            fail("route_tokens trial %d (N=%d E=%d): engine %s, reference %s" % (trial, n, E, list(out)[:20], want[:20]))
        routed += n
    print("  %-34s 300 tie-heavy tables, %d tokens" % ("route_tokens api", routed))


# ---------------------------------------------------------------------------------------------
# The export recipe of docs/model-format.md, run as written

def doc_snippet():
    text = open(os.path.join(ROOT, "docs", "model-format.md")).read()
    section = text.split("## Exporting from PyTorch / timm", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def install_safetensors_shim():
    """`safetensors` is not packaged for Debian 12: a stand-in for safetensors.torch.save_file
    that keeps the real one's contract (string metadata, contiguous tensors, F32/F16/BF16)."""
    if "safetensors" in sys.modules:
        return
    names = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16"}

    def save_file(tensors, filename, metadata=None):
        if metadata is not None and not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise ValueError("metadata values must be strings")
        header, chunks, offset = {}, [], 0
        if metadata:
            header["__metadata__"] = metadata
        for name in sorted(tensors):
            t = tensors[name]
            if not t.is_contiguous():
                raise ValueError("tensor %s is not contiguous" % name)
            raw = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
            header[name] = {"dtype": names[t.dtype], "shape": list(t.shape),
                            "data_offsets": [offset, offset + len(raw)]}
            chunks.append(raw)
            offset += len(raw)
        h = json.dumps(header, separators=(",", ":")).encode()
        h += b" " * (-len(h) % 8)
        with open(filename, "wb") as f:
            f.write(len(h).to_bytes(8, "little") + h + b"".join(chunks))

    pkg = types.ModuleType("safetensors")
    sub = types.ModuleType("safetensors.torch")
    sub.save_file = save_file
    pkg.torch = sub
    sys.modules["safetensors"], sys.modules["safetensors.torch"] = pkg, sub


class TimmLikeViT(torch.nn.Module):
    """timm.models.vision_transformer.VisionTransformer(class_token=False, global_pool='avg',
    fc_norm=False), or with class_token=True, global_pool='token' (timm's default), reduced to what
    it computes: same module names, state-dict keys and attributes (patch_embed.img_size/patch_size,
    attn.num_heads, norm eps 1e-6), same forward. With stem=(C_0, ...), not timm's: a `stem`
    Sequential(Conv2d(C, C_0, 3, 2, 1), GELU(), ...) first, mone.stem as docs/model-format.md
    writes it in PyTorch, and the patch embedding on its last map in patches of patch / 2^S."""

    class PatchEmbed(torch.nn.Module):
        def __init__(self, img_size, patch, chans, dim):
            super().__init__()
            self.img_size, self.patch_size = img_size, (patch, patch)
            self.proj = torch.nn.Conv2d(chans, dim, patch, stride=patch)

        def forward(self, x):
            return self.proj(x).flatten(2).transpose(1, 2)  # (B, N, D), tokens row by row

    class Attention(torch.nn.Module):
        def __init__(self, dim, heads):
            super().__init__()
            self.num_heads, self.scale = heads, (dim // heads) ** -0.5
            self.qkv, self.proj = torch.nn.Linear(dim, 3 * dim), torch.nn.Linear(dim, dim)

        def forward(self, x):
            B, N, C = x.shape
            qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
            q, k, v = qkv.unbind(0)
            attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
            return self.proj((attn @ v).transpose(1, 2).reshape(B, N, C))

    class Mlp(torch.nn.Module):
        def __init__(self, dim, hidden):
            super().__init__()
            self.fc1, self.act, self.fc2 = torch.nn.Linear(dim, hidden), torch.nn.GELU(), torch.nn.Linear(hidden, dim)

        def forward(self, x):
            return self.fc2(self.act(self.fc1(x)))

    class Block(torch.nn.Module):
        def __init__(self, dim, heads, hidden):
            super().__init__()
            self.norm1 = torch.nn.LayerNorm(dim, eps=1e-6)
            self.attn = TimmLikeViT.Attention(dim, heads)
            self.norm2 = torch.nn.LayerNorm(dim, eps=1e-6)
            self.mlp = TimmLikeViT.Mlp(dim, hidden)

        def forward(self, x):
            x = x + self.attn(self.norm1(x))
            return x + self.mlp(self.norm2(x))

    def __init__(self, img_size, patch, chans, dim, depth, heads, classes, mlp_ratio=4, class_token=False, stem=()):
        super().__init__()
        layers = []
        for c in stem:
            layers += [torch.nn.Conv2d(chans, c, 3, stride=2, padding=1), torch.nn.GELU()]
            chans = c
        self.stem = torch.nn.Sequential(*layers) if stem else None
        S = len(stem)
        self.patch_embed = TimmLikeViT.PatchEmbed((img_size[0] >> S, img_size[1] >> S), patch >> S, chans, dim)
        n = (img_size[0] // patch) * (img_size[1] // patch)
        self.cls_token = torch.nn.Parameter(torch.zeros(1, 1, dim)) if class_token else None
        self.pos_embed = torch.nn.Parameter(torch.zeros(1, n + class_token, dim))
        self.blocks = torch.nn.Sequential(*[TimmLikeViT.Block(dim, heads, mlp_ratio * dim) for _ in range(depth)])
        self.norm = torch.nn.LayerNorm(dim, eps=1e-6)
        self.head = torch.nn.Linear(dim, classes)

    def forward(self, x):
        x = self.patch_embed(self.stem(x) if self.stem is not None else x)
        if self.cls_token is not None:   # timm's _pos_embed: the class token first, then positions
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = self.norm(self.blocks(x + self.pos_embed))
        if self.cls_token is not None:
            return self.head(x[:, 0])    # global_pool='token'
        return self.head(x.mean(dim=1))  # global_pool='avg' over the patch tokens, no fc_norm


def random_timm_vit(seed, size, chans, patch=4, dim=48, depth=2, heads=3, classes=6, class_token=False, stem=()):
    """A TimmLikeViT with weights large enough to matter (timm's init would give tiny logits)."""
    torch.manual_seed(seed)
    vit = TimmLikeViT(size, patch, chans, dim=dim, depth=depth, heads=heads, classes=classes,
                      class_token=class_token, stem=stem)
    with torch.no_grad():
        for name, p in vit.named_parameters():
            if name.endswith("norm1.weight") or name.endswith("norm2.weight") or name == "norm.weight":
                p.copy_(1 + 0.2 * torch.randn_like(p))
            elif p.dim() >= 2 and name not in ("pos_embed", "cls_token"):
                p.copy_(torch.randn_like(p) / math.sqrt(p[0].numel()))
            else:
                p.copy_(0.3 * torch.randn_like(p))
    return vit.eval()


def check_against_module(tag, path, vit, mean, std):
    """The engine at e = 1 on a model file made from vit gives vit's own logits; returns the pixels."""
    C = len(mean)
    pixels = random_pixels(ref.Model(path), 11).to(torch.float32).to(torch.float64)
    norm = (pixels - torch.tensor(mean, dtype=torch.float64).reshape(1, C, 1, 1)) / torch.tensor(std, dtype=torch.float64).reshape(1, C, 1, 1)
    with torch.no_grad():
        want = vit.double()(norm)[0]
    vit.float()
    raw = os.path.join(TMP, tag + ".raw")
    write_raw(raw, pixels)
    got = torch.tensor(engine(path, raw, 1.0)["logits"], dtype=torch.float64)
    scale = max(1.0, float(want.abs().max()))
    diff = float((got - want).abs().max())
    print("  %-34s |dlogit| %.2e (scale %5.2f) against the torch module's own forward" % (tag + " e=1", diff, scale))
    worst[tag] = [diff, diff / scale, 0, 0]
    if not diff <= LOGIT_TOL * scale:
        fail("%s: engine logits differ from the torch module by %.3g" % (tag, diff))
    return pixels


def check_export():
    install_safetensors_shim()
    scope = {}
    exec(doc_snippet(), scope)
    vit = random_timm_vit(7, (24, 32), 3)
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    labels = ["class %d" % k for k in range(6)]
    path = os.path.join(TMP, "exported.safetensors")
    scope["export"](vit, path, labels, mean, std)
    pixels = check_against_module("export", path, vit, mean, std)
    # The exported router is zero: every token ties, so below e = 1 routing is the tie rule alone.
    compare("export", path, ref.Model(path), pixels, [0.3, 0.5, 0.8])


def run_importer(args):
    return subprocess.run([sys.executable, os.path.join(ROOT, "tools", "mone-import.py")] + args,
                          capture_output=True, text=True)


def check_importer():
    """tools/mone-import.py on timm-layout checkpoints: a torch.save state dict (RGB, square, labels
    file) and a safetensors file (grey, non-square), both exact at e = 1; what it cannot map is
    refused, naming the tensor."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("mone_import", os.path.join(ROOT, "tools", "mone-import.py"))
    importer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(importer)

    vit = random_timm_vit(21, (32, 32), 3, dim=64, heads=4, classes=5)
    pth = os.path.join(TMP, "timm-rgb.pth")
    torch.save({"model": {"module." + k: v for k, v in vit.state_dict().items()}}, pth)
    labels = os.path.join(TMP, "labels.txt")
    with open(labels, "w") as f:
        f.write("".join("label %d\n" % k for k in range(5)))
    out = os.path.join(TMP, "imported-rgb.safetensors")
    r = run_importer([pth, "-o", out, "--labels", labels, "--heads", "4"])
    if r.returncode != 0:
        fail("mone-import on a .pth: %s" % r.stderr)
    check_against_module("import-pth", out, vit, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])

    vit = random_timm_vit(22, (16, 24), 1, dim=32, heads=2, classes=3)
    st = os.path.join(TMP, "timm-grey.safetensors")
    importer.write_safetensors(st, dict(vit.state_dict()), {})
    out = os.path.join(TMP, "imported-grey.safetensors")
    r = run_importer([st, "-o", out, "--heads", "2", "--height", "16", "--width", "24", "--mean", "0.3", "--std", "0.2"])
    if r.returncode != 0:
        fail("mone-import on a safetensors file: %s" % r.stderr)
    check_against_module("import-safetensors", out, vit, [0.3], [0.2])

    # timm's default ViT: a class token, pooled by taking its row (mone.pool = cls); below e = 1 the
    # imported model (router 0) routes by the tie rule, the class token on the widest expert.
    cls_vit = random_timm_vit(23, (24, 24), 3, dim=48, heads=3, classes=4, class_token=True)
    pth = os.path.join(TMP, "timm-cls.pth")
    torch.save(cls_vit.state_dict(), pth)
    out = os.path.join(TMP, "imported-cls.safetensors")
    r = run_importer([pth, "-o", out, "--heads", "3"])
    if r.returncode != 0:
        fail("mone-import on a class-token ViT: %s" % r.stderr)
    if ref.Model(out).pool != "cls":
        fail("mone-import wrote no mone.pool = cls for a class-token ViT")
    pixels = check_against_module("import-cls", out, cls_vit, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    compare("import-cls", out, ref.Model(out), pixels, [0.3, 0.6])

    # A stem as docs/model-format.md writes it in PyTorch (stem.0, stem.2: GELUs between) -> mone.stem,
    # the file's patch the 8 pixels the 2x2 patches of the stem's map cover.
    stem_vit = random_timm_vit(24, (32, 40), 3, patch=8, dim=32, heads=4, classes=4, stem=(8, 12))
    pth = os.path.join(TMP, "timm-stem.pth")
    torch.save(stem_vit.state_dict(), pth)
    out = os.path.join(TMP, "imported-stem.safetensors")
    stem_args = ["--heads", "4", "--height", "32", "--width", "40"]
    r = run_importer([pth, "-o", out] + stem_args)
    if r.returncode != 0:
        fail("mone-import on a ViT with a stem: %s" % r.stderr)
    m = ref.Model(out)
    if (m.stem, m.patch, m.channels) != ([8, 12], 8, 3):
        fail("mone-import wrote stem %s, patch %d, channels %d for a 3 -> 8 -> 12 stem before 2x2 patches"
             % (m.stem, m.patch, m.channels))
    pixels = check_against_module("import-stem", out, stem_vit, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    compare("import-stem", out, m, pixels, [0.3, 0.6])

    def refused(sd, args, name, why):
        bad = os.path.join(TMP, "refused.pth")
        torch.save(sd, bad)
        r = run_importer([bad, "-o", os.path.join(TMP, "refused.safetensors")] + args)
        if r.returncode == 0 or name not in r.stderr or why not in r.stderr:
            fail("mone-import should refuse %s naming it (%s): rc %d, %s" % (name, why, r.returncode, r.stderr.strip()))
        print("  import refuses %-20s %s" % (name, r.stderr.strip()[:90]))

    refusals = [("dist_token", torch.zeros(1, 1, 32), "distillation token"), ("fc_norm.weight", torch.ones(32), "fc_norm"),
                ("blocks.0.ls1.gamma", torch.ones(32), "layer scale"), ("extra.weight", torch.ones(2), "extra.weight")]
    for name, tensor, why in refusals:
        refused({**vit.state_dict(), name: tensor}, ["--heads", "2", "--height", "16", "--width", "24"], name, why)
    # Stems that are not mone.stem's: a BatchNorm in it, a convolution without bias, a 5x5 kernel,
    # timm's hybrid CNN backbone.
    sd = stem_vit.state_dict()
    bn = {"stem.1.weight": torch.ones(8), "stem.1.bias": torch.zeros(8), "stem.1.running_mean": torch.zeros(8),
          "stem.1.running_var": torch.ones(8)}
    refused({**sd, **bn}, stem_args, "stem.1", "normalisation")
    refused({k: v for k, v in sd.items() if k != "stem.2.bias"}, stem_args, "stem.2", "bias")
    refused({**sd, "stem.0.weight": torch.zeros(8, 3, 5, 5)}, stem_args, "stem.0", "3x3")
    refused({**sd, "patch_embed.backbone.stem.conv.weight": torch.zeros(8, 3, 7, 7)}, stem_args,
            "patch_embed.backbone.stem.conv.weight", "backbone")


# ---------------------------------------------------------------------------------------------

def main():
    print("torch %s, engine %s, reference %s" % (torch.__version__, MONE, ref.__file__))
    torch.set_num_threads(1)

    # The shipped model on real test images.
    fashion = os.path.join(ROOT, "models", "fashion-mone.safetensors")
    images = fashion_images([0, 1, 2, 17])
    if images is None:
        print("note: dataset-fashion-mnist not installed, shipped model checked on random images")
        m = ref.Model(fashion)
        images = [(s, random_pixels(m, s)) for s in range(3)]
    m = ref.Model(fashion)
    for i, px in images:
        compare("fashion img%d" % i, fashion, m, px, [0.05, m.ratios[0], 0.2, 0.3, 0.5, 0.75, 1.0])

    budgets = [0.01, 0.2, 0.3, 0.45, 0.5, 0.6, 0.75, 0.9, 1.0]
    configs = [
        # name, mone init keys, alpha
        ("img-e4", ["height=20", "width=36", "channels=1", "patch=4", "dim=32", "depth=2", "heads=4",
                    "mlp_dim=48", "experts=4", "classes=7", "mean=0.3", "std=0.2", "seed=1"], 0.8),
        ("video-e3", ["frames=4", "tubelet=2", "channels=3", "height=12", "width=20", "patch=4", "dim=24",
                      "depth=2", "heads=3", "mlp_dim=40", "experts=3", "classes=5", "delta=3", "beta=5",
                      "ln_eps=1e-5", "mean=0.5,0.4,0.3", "std=0.25,0.2,0.3", "seed=2"], -1.5),
        ("video-e2", ["frames=3", "tubelet=3", "channels=3", "height=8", "width=16", "patch=4", "dim=16",
                      "depth=2", "heads=2", "mlp_dim=24", "experts=2", "classes=4", "seed=3"], 2.0),
        ("video-e4", ["frames=2", "tubelet=1", "channels=3", "height=16", "width=12", "patch=2", "dim=32",
                      "depth=1", "heads=2", "mlp_dim=64", "experts=4", "classes=3", "seed=4"], 0.5),
        ("img-e5", ["height=16", "width=16", "channels=2", "patch=4", "dim=48", "depth=2", "heads=6",
                    "mlp_dim=32", "experts=5", "classes=4", "beta=20", "delta=1.5", "seed=5"], 1.0),
        ("img-e1", ["height=8", "width=12", "channels=1", "patch=4", "dim=8", "depth=2", "heads=2",
                    "mlp_dim=16", "experts=1", "classes=3", "seed=6"], 1.0),
        # A class token (mone.pool = cls): on the widest expert at every budget, the head reads it.
        ("img-cls-e4", ["height=20", "width=16", "channels=3", "patch=4", "dim=32", "depth=2", "heads=4",
                        "mlp_dim=48", "experts=4", "classes=5", "pool=cls", "seed=7"], 0.6),
        ("img-cls-e3", ["height=12", "width=12", "channels=1", "patch=4", "dim=24", "depth=3", "heads=2",
                        "mlp_dim=32", "experts=3", "classes=3", "pool=cls", "seed=8"], -0.7),
        # A router with hidden units on the token minus the frame's mean token, mean pooling and cls.
        ("img-rh-e4", ["height=24", "width=24", "channels=1", "patch=4", "dim=32", "depth=2", "heads=4",
                       "mlp_dim=48", "experts=4", "classes=5", "router_hidden=12", "seed=9"], 0.9),
        ("img-rh-cls-e3", ["height=16", "width=12", "channels=3", "patch=4", "dim=24", "depth=2", "heads=3",
                           "mlp_dim=40", "experts=3", "classes=4", "router_hidden=8", "pool=cls", "seed=10"], -0.6),
        # Convolutional stems: 2 layers before 2x2 patches of the last map (RGB, non-square), 3
        # layers before 1x1 patches with a class token and a hidden-layer router, one layer on the
        # frames of a tubelet video (each frame convolved alone, then 2x2x2 tubelets).
        ("img-stem-e4", ["height=32", "width=48", "channels=3", "patch=8", "dim=32", "depth=2", "heads=4",
                         "mlp_dim=48", "experts=4", "classes=5", "stem=8,12", "mean=0.5,0.4,0.3",
                         "std=0.25,0.2,0.3", "seed=11"], 0.7),
        ("img-stem3-cls-e3", ["height=24", "width=16", "channels=1", "patch=8", "dim=24", "depth=2", "heads=3",
                              "mlp_dim=40", "experts=3", "classes=4", "stem=4,8,6", "router_hidden=8",
                              "pool=cls", "seed=12"], -0.8),
        ("video-stem-e2", ["frames=4", "tubelet=2", "channels=2", "height=16", "width=12", "patch=4", "dim=16",
                           "depth=2", "heads=2", "mlp_dim=24", "experts=2", "classes=3", "stem=5", "seed=13"], 1.2),
    ]
    for k, (name, keys, alpha) in enumerate(configs):
        path, m = init_model(name, keys, alpha=alpha, seed=k)
        for s in range(2):
            compare("%s in%d" % (name, s), path, m, random_pixels(m, s), budgets)
    # One model through 2 threads: the same answer.
    path, m = init_model("video-e3", configs[1][1], alpha=-1.5, seed=1)
    compare("video-e3 threads=2", path, m, random_pixels(m, 0), [0.3, 0.6], threads=2)

    # As `mone init` writes it: alpha 0, biases 0, std 0.02.
    path, m = init_model("init-tiny", ["--config", "tiny", "seed=9"], randomise=False)
    compare("init-tiny", path, m, random_pixels(m, 0), [0.3, 0.5, 1.0])
    path, m = init_model("init-scene-stem", ["--config", "scene64", "stem=16,32", "seed=9"], randomise=False)
    compare("init-scene-stem", path, m, random_pixels(m, 0), [0.3, 1.0])

    # Ties. Router weights 0: every token has the same probabilities, so the routing is the tie
    # rule alone (lowest indices to the biggest expert).
    def zero_router(t, g):
        t["router.weight"].zero_()
    path, m = init_model("ties-all", configs[0][1], alpha=0.8, seed=7, edit=zero_router)
    compare("ties-all", path, m, random_pixels(m, 0), [0.2, 0.3, 0.5, 0.75])

    # Position embedding 0 and repeated patches: identical tokens, so ties among some tokens only.
    def zero_pos(t, g):
        t["pos_embed"].zero_()
    path, m = init_model("ties-some", configs[1][1], alpha=-1.5, seed=8, edit=zero_pos)
    compare("ties-some", path, m, blocky_pixels(m, 0), [0.2, 0.3, 0.5, 0.75])

    # The committed loader fixtures (F32, F16, BF16, mixed with an unaligned F32 tensor).
    for dt in ("f32", "f16", "bf16", "mixed"):
        path = os.path.join(ROOT, "tests", "loader", "valid-%s.safetensors" % dt)
        m = ref.Model(path)
        compare("fixture-%s" % dt, path, m, random_pixels(m, 0), [0.5, 0.6, 0.75, 0.9, 1.0])

    check_export()
    check_importer()
    # meson passes the versioned file (libmone.so.0.1.0); a static build's .a cannot be loaded
    if LIBMONE and re.search(r"\.so(\.\d+)*$", LIBMONE):
        check_routing_api(LIBMONE)
    else:
        print("note: no shared libmone given, its routing API is not swept")

    print("\nworst per model: max |dlogit|, max |dlogit|/scale, tokens routed alike")
    for k, (a, b, same, total) in worst.items():
        print("  %-14s %.2e  %.2e  %s" % (k, a, b, "%d/%d" % (same, total) if total else "-"))
    if failures:
        print("\n%d FAILURES" % len(failures))
        return 1
    print("\nengine and torch reference agree")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        import shutil
        shutil.rmtree(TMP, ignore_errors=True)
