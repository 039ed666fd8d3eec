"""Exports a gst-mone model file to ONNX as the dense ViT it equals at e = 1 (dense_vit.py).

    /usr/bin/python3 bench/peers/export_onnx.py [--rgb8] MODEL OUT.onnx

Input `pixels`: float32 (T, C, H, W) in [0, 1], as `mone run` reads a raw frame; output
`logits`: (1, K). With --rgb8 (image models), the input is instead `image`, uint8 (1, H, W, 3)
RGB bytes, what GStreamer's onnxinference hands a model (hwc), turned into the model's input in
the graph (to [0, 1], and to grey with BT.601 luma weights for a one-channel model). Debian's torch 1.13 has only the TorchScript exporter (no dynamo), so the graph
is traced at a fixed shape with opset 17, the first with a LayerNormalization operator. A stem
(mone.stem) is exported as it runs: one Conv (3x3, stride 2, padding 1) and Erf-based GELU per
layer, before the patch embedding's Conv, so ONNX Runtime pays for it as the engine does. The
result is checked with onnx.checker and for its Conv count; that it computes the engine's logits
is checked by run.sh (peers.py), which runs it in ONNX Runtime.
"""

import os
import sys

import onnx
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dense_vit  # noqa: E402

OPSET = 17


class FromRgb8(torch.nn.Module):
    """uint8 (1, H, W, 3) RGB -> the model's (1, C, H, W) float input -> logits."""

    def __init__(self, model):
        super().__init__()
        assert model.config.frames == 1, "--rgb8: image models only"
        self.model = model
        self.grey = model.config.channels == 1
        self.register_buffer("luma", torch.tensor([0.299, 0.587, 0.114]).reshape(1, 3, 1, 1),
                             persistent=False)

    def forward(self, image):
        x = image.permute(0, 3, 1, 2).to(torch.float32) / 255.0
        if self.grey:
            x = (x * self.luma).sum(dim=1, keepdim=True)
        return self.model(x)


def export(model_path, onnx_path, rgb8=False):
    model = dense_vit.DenseViT(model_path)
    generator = torch.Generator().manual_seed(0)
    if rgb8:
        model = FromRgb8(model).eval()
        c = model.model.config
        example = torch.randint(0, 256, (1, c.height, c.width, 3), dtype=torch.uint8, generator=generator)
        input_name = "image"
    else:
        example = torch.rand(model.config.input_shape(), generator=generator)
        input_name = "pixels"
    tmp = onnx_path + ".tmp"
    with torch.no_grad():
        torch.onnx.export(model, (example,), tmp, input_names=[input_name], output_names=["logits"],
                          opset_version=OPSET, do_constant_folding=True)
    if rgb8:
        # onnxinference names each output tensor by the model's metadata entry of the output's
        # name (it refuses a model without one).
        graph = onnx.load(tmp)
        graph.metadata_props.add(key="logits", value="gst-mone-logits")
        onnx.save(graph, tmp)
    graph = onnx.load(tmp)
    onnx.checker.check_model(graph)
    # The stem's layers and the patch embedding, each a Conv of the graph (none folded away).
    convs = sum(node.op_type == "Conv" for node in graph.graph.node)
    c = (model.model if rgb8 else model).config
    assert convs == len(c.stem) + 1, "%s: %d Conv nodes, expected %d" % (onnx_path, convs, len(c.stem) + 1)
    os.replace(tmp, onnx_path)


if __name__ == "__main__":
    args = sys.argv[1:]
    rgb8 = args[:1] == ["--rgb8"]
    if rgb8:
        args = args[1:]
    if len(args) != 2:
        sys.exit("usage: export_onnx.py [--rgb8] MODEL OUT.onnx")
    export(args[0], args[1], rgb8)
