"""PyTorch eager worker of the peer benchmark (driven by peers.py; see run.sh).

    /usr/bin/python3 bench/peers/torch_bench.py MODEL FRAME.f32 THREADS

Builds the dense ViT of MODEL (dense_vit.py, float32, eager) with THREADS intra-op threads and
answers one JSON line per command line on stdin:
    logits   -> {"logits": [...]}  the output for FRAME
    time N   -> {"ms": [...], "cpu_ms": [...]}  wall and process CPU time of N forward passes
                on FRAME, one by one
    quit
"""

import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dense_vit  # noqa: E402


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: torch_bench.py MODEL FRAME.f32 THREADS")
    threads = int(sys.argv[3])
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    model = dense_vit.DenseViT(sys.argv[1])
    frame = dense_vit.read_frame(model.config, sys.argv[2])

    def say(obj):
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    say({"ready": True, "version": torch.__version__, "threads": torch.get_num_threads()})
    with torch.inference_mode():
        for line in sys.stdin:
            cmd, *arg = line.split()
            if cmd == "logits":
                say({"logits": model(frame)[0].tolist()})
            elif cmd == "time":
                ms, cpu_ms = [], []
                for _ in range(int(arg[0])):
                    c0, t0 = time.process_time_ns(), time.perf_counter_ns()
                    model(frame)
                    ms.append((time.perf_counter_ns() - t0) / 1e6)
                    cpu_ms.append((time.process_time_ns() - c0) / 1e6)
                say({"ms": ms, "cpu_ms": cpu_ms})
            elif cmd == "quit":
                break
            else:
                sys.exit("torch_bench.py: unknown command %r" % line)


if __name__ == "__main__":
    main()
