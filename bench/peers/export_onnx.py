"""Exports a gst-mone model file to ONNX as the dense ViT it equals at e = 1 (dense_vit.py).

    /usr/bin/python3 bench/peers/export_onnx.py MODEL OUT.onnx

Input `pixels`: float32 (T, C, H, W) in [0, 1], as `mone run` reads a raw frame; output
`logits`: (1, K). Debian's torch 1.13 has only the TorchScript exporter (no dynamo), so the graph
is traced at a fixed shape with opset 17, the first with a LayerNormalization operator. The
result is checked with onnx.checker; that it computes the engine's logits is checked by run.sh
(peers.py), which runs it in ONNX Runtime.
"""

import os
import sys

import onnx
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dense_vit  # noqa: E402

OPSET = 17


def export(model_path, onnx_path):
    model = dense_vit.DenseViT(model_path)
    example = torch.rand(model.config.input_shape(), generator=torch.Generator().manual_seed(0))
    tmp = onnx_path + ".tmp"
    with torch.no_grad():
        torch.onnx.export(model, (example,), tmp, input_names=["pixels"], output_names=["logits"],
                          opset_version=OPSET, do_constant_folding=True)
    onnx.checker.check_model(onnx.load(tmp))
    os.replace(tmp, onnx_path)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: export_onnx.py MODEL OUT.onnx")
    export(sys.argv[1], sys.argv[2])
