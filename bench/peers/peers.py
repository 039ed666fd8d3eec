"""Driver of the dense-peer benchmark; run it through bench/peers/run.sh, which installs ONNX
Runtime first. Standard library only: the engines run in worker processes (mone-peer,
torch_bench.py, ort_bench.js), each pinned with taskset and kept alive for the whole model, and
this script alternates them round by round.

Per model: export the dense ViT (the model at e = 1) to ONNX, write one random frame, check that
ONNX Runtime, PyTorch and the engine's worker give the logits of `mone run MODEL FRAME --budget 1`
(max |difference| <= 1e-4 of the largest |logit|), then per thread count time ONNX Runtime,
PyTorch eager and the engine at each budget, several rounds, and print a table.
"""

import argparse
import json
import os
import random
import statistics
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))
TORCH_PYTHON = "/usr/bin/python3"   # Debian's python3-torch and python3-onnx
BUDGETS = [1.0, 0.75, 0.5, 0.25, 0.125]
TOLERANCE = 1e-4

# `mone init --config NAME seed=1` models (random weights); "scene" and "fashion" are the shipped ones.
CONFIGS = ("vit-ti16", "vit-s16")


def die(message):
    sys.stderr.write("peers: FAILED: %s\n" % message)
    sys.exit(1)


def run(cmd, **kw):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
    if r.returncode:
        die("%s exited with %d:\n%s%s" % (" ".join(cmd), r.returncode, r.stdout, r.stderr))
    return r.stdout


class Worker:
    """One engine in its own process, pinned to `cpus`, speaking one JSON line per command."""

    def __init__(self, name, cmd, cpus, threads):
        env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
        self.name = name
        self.proc = subprocess.Popen(["taskset", "-c", cpus] + cmd, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=env)
        self.hello = self.read()

    def read(self):
        line = self.proc.stdout.readline()
        if not line:
            die("%s worker died (exit status %s); its messages are above" % (self.name, self.proc.wait()))
        return json.loads(line)

    def ask(self, command):
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.read()

    def close(self):
        try:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        self.proc.wait(timeout=60)


def other_jobs(samples=20, interval=0.01):
    """Runnable tasks besides this script (the workers are idle when it is called), averaged over
    a few samples of /proc/stat's procs_running: what else competes for the cores now."""
    total = 0
    for _ in range(samples):
        with open("/proc/stat") as f:
            total += next(int(line.split()[1]) for line in f if line.startswith("procs_running")) - 1
        time.sleep(interval)
    return total / samples


def compare(what, logits, reference):
    if len(logits) != len(reference):
        die("%s: %d logits, expected %d" % (what, len(logits), len(reference)))
    scale = max(abs(v) for v in reference)
    diff = max(abs(a - b) for a, b in zip(logits, reference))
    rel = diff / scale if scale > 0 else diff
    status = "ok" if rel <= TOLERANCE else "MISMATCH"
    print("  check %-34s max |diff| %.3g, largest |logit| %.3g: %.2g relative  %s"
          % (what, diff, scale, rel, status))
    if rel > TOLERANCE:
        die("%s differs from `mone run --budget 1` by %.3g of the logit scale (tolerance %g)"
            % (what, rel, TOLERANCE))


# The models in the repository, by short name: the default scene model and the 28x28 one.
SHIPPED = {"scene": "scene-mone.safetensors", "fashion": "fashion-mone.safetensors"}


def prepare(name, args, work):
    """The model file and its ONNX export; returns (model, onnx, path for the frame)."""
    mone = os.path.join(args.build, "tools", "mone")
    if name in SHIPPED:
        model = os.path.join(SRC, "models", SHIPPED[name])
    elif name in CONFIGS:
        model = os.path.join(work, name + ".safetensors")
        if not os.path.exists(model):
            run([mone, "init", "--config", name, "seed=1", model])
    else:
        model = os.path.abspath(name)
    stem = os.path.join(work, os.path.splitext(os.path.basename(model))[0])
    onnx_path = stem + ".onnx"
    sources = [model] + [os.path.join(HERE, f) for f in ("export_onnx.py", "dense_vit.py")]
    if not os.path.exists(onnx_path) or os.path.getmtime(onnx_path) < max(map(os.path.getmtime, sources)):
        t0 = time.time()
        run([TORCH_PYTHON, os.path.join(HERE, "export_onnx.py"), model, onnx_path])
        print("  exported %s (%.1f s)" % (onnx_path, time.time() - t0))
    for line in run([mone, "info", model]).splitlines():
        if line.startswith(("input:", "stem:", "tokens:", "transformer:", "experts:")):
            print("  " + line.strip())
    return model, onnx_path, stem + ".f32"


def write_frame(path, floats):
    rng = random.Random(1)
    with open(path, "wb") as f:
        f.write(struct.pack("<%df" % floats, *(rng.random() for _ in range(floats))))


def frame_floats(model):
    """T*C*H*W of the model's input, from the file's metadata."""
    with open(model, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        meta = json.loads(f.read(n))["__metadata__"]
    return int(meta["mone.frames"]) * int(meta["mone.channels"]) * int(meta["mone.height"]) * int(meta["mone.width"])


def bench_model(name, args, work):
    print("\n== %s" % name)
    model, onnx_path, frame = prepare(name, args, work)
    write_frame(frame, frame_floats(model))
    mone = os.path.join(args.build, "tools", "mone")
    reference = json.loads(run([mone, "run", model, frame, "--budget", "1", "--json"]))["logits"]
    results = []
    for threads in args.threads:
        cpus = ",".join(str(c) for c in range(threads))
        workers = [
            Worker("ONNX Runtime", ["node", os.path.join(HERE, "ort_bench.js"), args.ort_modules,
                                    onnx_path, frame, str(threads)], cpus, threads),
            Worker("PyTorch", [TORCH_PYTHON, os.path.join(HERE, "torch_bench.py"), model, frame,
                               str(threads)], cpus, threads),
            Worker("mone", [os.path.join(args.build, "bench", "peers", "mone-peer"), model, frame,
                            str(threads)], cpus, threads),
        ]
        ort, pt, mn = workers
        print("\n  %d thread%s (taskset -c %s)" % (threads, "s" if threads > 1 else "", cpus))
        print("  threads: ONNX Runtime %d, PyTorch %d, mone %d" % (
            ort.hello["threads"], pt.hello["threads"], mn.hello["threads"]))
        compare("ONNX Runtime %s" % ort.hello["version"], ort.ask("logits")["logits"], reference)
        compare("PyTorch %s eager" % pt.hello["version"], pt.ask("logits")["logits"], reference)
        compare("mone-peer e = 1", mn.ask("logits 1")["logits"], reference)

        min_budget = mn.hello["min_budget"]
        budgets = [b for b in BUDGETS if b >= min_budget - 1e-12]
        flops = {b: mn.ask("flops %r" % b)["flops"] for b in budgets}
        slots = [("ONNX Runtime", ort, "time %d"), ("PyTorch eager", pt, "time %d")]
        slots += [("mone e = %g" % b, mn, "time %r %%d" % b) for b in budgets]

        # Warm-up (not counted), which also sizes the blocks: about slot_ms of work per slot.
        # CPU time only where it measures latency: one thread (the sum over threads otherwise).
        key = "cpu_ms" if args.clock == "cpu" and threads == 1 else "ms"
        frames = {}
        for label, w, cmd in slots:
            warm = statistics.median(w.ask(cmd % 2)["ms"])
            frames[label] = args.frames or max(3, min(500, round(args.slot_ms / warm)))
        others = other_jobs()
        if others >= 0.5:
            print("  WARNING: about %.1f other runnable jobs on %d cores: %s"
                  % (others, os.cpu_count() or 1, "figures with more than one thread mean little"
                     if threads > 1 else "one-thread figures are noisy (--clock cpu helps)"))

        times = {label: [] for label, _, _ in slots}        # every frame
        round_median = {label: [] for label, _, _ in slots}
        for r in range(args.rounds):
            # A B C ..., the order rotating from round to round
            for label, w, cmd in slots[r % len(slots):] + slots[:r % len(slots)]:
                time.sleep(args.gap_ms / 1000)  # let the previous engine's idle threads stop spinning
                ms = w.ask(cmd % frames[label])[key]
                times[label] += ms
                round_median[label].append(statistics.median(ms))
        for w in workers:
            w.close()

        def per_round(label_a, label_b):
            """median over rounds of round_median[a] / round_median[b]"""
            return statistics.median(a / b for a, b in zip(round_median[label_a], round_median[label_b]))

        print("  %d round%s, engines alternating, %d-%d frames each per round; %s clock; ms: median of "
              "all frames; other runnable jobs %.1f before, %.1f after"
              % (args.rounds, "s" if args.rounds > 1 else "", min(frames.values()), max(frames.values()),
                 "process CPU-time" if key == "cpu_ms" else "wall", others, other_jobs()))
        print("  %-16s %7s %9s %8s %9s %8s %7s %9s" % ("engine", "GFLOPs", "ms/frame", "p90 ms",
                                                     "ORT/this", "speedup", "ideal", "sp/ideal"))
        rows = []
        for label, _, _ in slots:
            v = sorted(times[label])
            med, p90 = statistics.median(v), v[min(len(v) - 1, int(0.9 * len(v)))]
            ort_ratio = per_round("ONNX Runtime", label)
            row = {"engine": label, "ms": med, "p90_ms": p90, "ort_over_this": ort_ratio}
            if label.startswith("mone"):
                b = float(label.split("=")[1])
                speedup, ideal = per_round("mone e = 1", label), flops[1.0] / flops[b]
                row.update(budget=b, gflops=flops[b] / 1e9, speedup=speedup, ideal=ideal)
                print("  %-16s %7.3f %9.3f %8.3f %9.2f %8.2f %7.2f %9.2f" % (
                    label, flops[b] / 1e9, med, p90, ort_ratio, speedup, ideal, speedup / ideal))
            else:
                row.update(gflops=flops[1.0] / 1e9)
                print("  %-16s %7.3f %9.3f %8.3f %9.2f" % (label, flops[1.0] / 1e9, med, p90, ort_ratio))
            rows.append(row)
        results.append({"model": name, "file": model, "threads": threads, "rounds": args.rounds,
                        "frames": frames, "clock": key, "rows": rows})
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", required=True, help="meson build directory")
    ap.add_argument("--ort-modules", required=True, help="node_modules holding onnxruntime-node")
    ap.add_argument("--models",
                    help="comma-separated: scene, fashion, vit-ti16, vit-s16 or model files (default all four)")
    ap.add_argument("--threads", help="thread counts (default 1,2)")
    ap.add_argument("--rounds", type=int, help="rounds (default 7)")
    ap.add_argument("--frames", type=int, help="frames per engine per round (default: about --slot-ms of its work, 3..500)")
    ap.add_argument("--slot-ms", type=float, default=250, help="work per engine per round (default 250 ms)")
    ap.add_argument("--gap-ms", type=float, default=200,
                    help="idle time before each engine's turn, for the previous one's threads to stop "
                         "spinning (OpenBLAS's spin up to about 2^28 cycles; default 200)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: the checks and one round of 2 frames; by default 1 thread, "
                         "the scene model and ViT-Ti/16")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="cpu: time one-thread runs by each process's CPU time, which leaves out time "
                         "the scheduler gave to other jobs (a busy shared machine); more threads: wall")
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args()
    defaults = dict(rounds=1, frames=2, threads="1", models="scene,vit-ti16") if args.quick else \
        dict(rounds=7, frames=0, threads="1,2", models="scene,fashion,vit-ti16,vit-s16")
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.build = os.path.abspath(args.build)
    cores = os.cpu_count() or 1
    args.threads = [int(t) for t in args.threads.split(",")]
    if any(t < 1 or t > cores for t in args.threads):
        die("--threads: this machine has %d cores" % cores)
    work = os.path.join(args.build, "bench-peers")
    os.makedirs(work, exist_ok=True)
    print("peers: ONNX Runtime (onnxruntime-node, CPU), PyTorch eager and mone; OPENBLAS_CORETYPE=%s"
          % os.environ.get("OPENBLAS_CORETYPE", "(unset)"))
    results = []
    for name in args.models.split(","):
        results += bench_model(name.strip(), args, work)
    print("\nORT/this: ONNX Runtime's time over this engine's (> 1: faster than ONNX Runtime), per round, median."
          "\nspeedup: mone e = 1 time over this budget's, per round, median; ideal: FLOP ratio"
          " (mone_model_flops, as `mone info`).")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
