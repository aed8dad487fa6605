"""Convert the MTCNN weights that the ``mtcnn`` wheel carries into three ONNX graphs with cards.

The ``mtcnn`` package (MIT, Iván de Paz Centeno) stores the P-, R- and O-Net weights as joblib
pickles of plain NumPy arrays (``mtcnn/assets/weights/{p,r,o}net.lz4``), in the order Keras'
``model.get_weights()`` returns them. Its networks are Keras models fed NHWC RGB images scaled
to ``(x - 127.5) / 128``; no TensorFlow is needed to read the arrays, and none is needed here:
the graphs are written node by node with ``onnx.helper``. Run once, by hand::

    pip download mtcnn==1.0.0 --no-deps -d /tmp/mtcnn && unzip -o -q /tmp/mtcnn/*.whl -d /tmp/mtcnn
    pip install --target /tmp/deps joblib lz4      # to read the pickles; not a project dependency
    PYTHONPATH=/tmp/deps python tools/convert_mtcnn.py --weights /tmp/mtcnn/mtcnn/assets/weights

and commit ``src/deepfakescan/models/mtcnn_{pnet,rnet,onet}.{onnx,json}``. The graphs take NCHW
float32 input (already scaled), so the layer order and padding are those of the Keras models:

- P-Net: conv3x3(10) PReLU maxpool2/2 'same' | conv3x3(16) PReLU | conv3x3(32) PReLU |
  conv1x1(4) box offsets, conv1x1(2) softmax. Fully convolutional: a 12x12 window per output cell,
  stride 2.
- R-Net (24x24): conv3x3(28) PReLU maxpool3/2 'same' | conv3x3(48) PReLU maxpool3/2 valid |
  conv2x2(64) PReLU | permute to (W, H, C), flatten | dense(128) PReLU | dense(4), dense(2) softmax.
- O-Net (48x48): conv3x3(32) PReLU maxpool3/2 'same' | conv3x3(64) PReLU maxpool3/2 valid |
  conv3x3(64) PReLU maxpool2/2 'same' | conv2x2(128) PReLU | permute, flatten | dense(256) PReLU |
  dense(4), dense(10) landmarks (x1..x5, y1..y5 as fractions of the box), dense(2) softmax.

Keras' 'same' max pooling pads at the bottom/right only, which is ONNX ``auto_pad=SAME_UPPER``.
The (W, H, C) permute before flattening is kept because the dense weights were converted from the
original Caffe models, which were trained on transposed images.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

VERSION = "1.0.0"
"""Version of the ``mtcnn`` wheel the arrays come from (also the cards' version)."""

OPSET = 17
MODELS_DIR = Path(__file__).resolve().parent.parent / "src" / "deepfakescan" / "models"
LICENCE = (
    "MIT (mtcnn package by Iván de Paz Centeno; original MTCNN weights by Kaipeng Zhang et al.)"
)
MEAN = 127.5
STD = 128.0

# stage -> (input side or None for dynamic, threshold used by deepfakescan.faces)
STAGES = {"pnet": (None, 0.6), "rnet": (24, 0.7), "onet": (48, 0.85)}


class GraphBuilder:
    """Accumulates nodes and initialisers; each helper returns the name of its output tensor."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._n = 0

    def _name(self, kind: str) -> str:
        self._n += 1
        return f"{self.prefix}/{kind}{self._n}"

    def const(self, array: np.ndarray, kind: str = "w") -> str:
        name = self._name(kind)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(self, op: str, inputs: list[str], output: str | None = None, **attrs) -> str:
        output = output or self._name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output

    def conv(self, x: str, kernel: np.ndarray, bias: np.ndarray) -> str:
        """Keras kernel (kh, kw, in, out) -> ONNX (out, in, kh, kw); 'valid' padding, stride 1."""
        w = self.const(np.transpose(kernel, (3, 2, 0, 1)).astype(np.float32))
        b = self.const(bias.astype(np.float32), "b")
        return self.node("Conv", [x, w, b], kernel_shape=list(kernel.shape[:2]))

    def prelu(self, x: str, alpha: np.ndarray, *, spatial: bool) -> str:
        """Keras PReLU alpha (1, 1, C) shared over H, W -> slope (C, 1, 1) for NCHW."""
        slope = alpha.reshape(-1, 1, 1) if spatial else alpha.reshape(-1)
        return self.node("PRelu", [x, self.const(slope.astype(np.float32), "slope")])

    def maxpool(self, x: str, size: int, stride: int, same: bool) -> str:
        attrs = {"auto_pad": "SAME_UPPER"} if same else {}
        return self.node(
            "MaxPool", [x], kernel_shape=[size, size], strides=[stride, stride], **attrs
        )

    def dense(self, x: str, kernel: np.ndarray, bias: np.ndarray, output: str | None = None) -> str:
        w = self.const(kernel.astype(np.float32))
        b = self.const(bias.astype(np.float32), "b")
        return self.node("Gemm", [x, w, b], output)

    def flatten_whc(self, x: str) -> str:
        """NCHW -> N x (W*H*C), in the order of Keras' Permute((2, 1, 3)) + Flatten on NHWC."""
        return self.node("Flatten", [self.node("Transpose", [x], perm=[0, 3, 2, 1])], axis=1)


def _model(
    builder: GraphBuilder, name: str, side: int | None, outputs: list[tuple]
) -> onnx.ModelProto:
    dims = ["batch", 3, side or "height", side or "width"]
    graph = helper.make_graph(
        builder.nodes,
        name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n, shape in outputs],
        builder.inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="deepfakescan tools/convert_mtcnn.py",
        producer_version=VERSION,
    )
    model.ir_version = 8  # readable by every onnxruntime >= 1.14
    onnx.checker.check_model(model, full_check=True)
    return model


def build_pnet(w: list[np.ndarray]) -> onnx.ModelProto:
    g = GraphBuilder("pnet")
    x = g.prelu(g.conv("input", w[0], w[1]), w[2], spatial=True)
    x = g.maxpool(x, 2, 2, same=True)
    x = g.prelu(g.conv(x, w[3], w[4]), w[5], spatial=True)
    x = g.prelu(g.conv(x, w[6], w[7]), w[8], spatial=True)
    g.node("Conv", [x, g.const(np.transpose(w[9], (3, 2, 0, 1))), g.const(w[10], "b")], "bbox_reg",
           kernel_shape=[1, 1])  # fmt: skip
    logits = g.node("Conv", [x, g.const(np.transpose(w[11], (3, 2, 0, 1))), g.const(w[12], "b")],
                    kernel_shape=[1, 1])  # fmt: skip
    g.node("Softmax", [logits], "prob", axis=1)
    out_hw = ["batch", None, "out_height", "out_width"]
    return _model(
        g, "mtcnn_pnet", None, [("prob", _with(out_hw, 2)), ("bbox_reg", _with(out_hw, 4))]
    )


def build_rnet(w: list[np.ndarray]) -> onnx.ModelProto:
    g = GraphBuilder("rnet")
    x = g.maxpool(g.prelu(g.conv("input", w[0], w[1]), w[2], spatial=True), 3, 2, same=True)
    x = g.maxpool(g.prelu(g.conv(x, w[3], w[4]), w[5], spatial=True), 3, 2, same=False)
    x = g.prelu(g.conv(x, w[6], w[7]), w[8], spatial=True)
    x = g.prelu(g.dense(g.flatten_whc(x), w[9], w[10]), w[11], spatial=False)
    g.dense(x, w[12], w[13], "bbox_reg")
    g.node("Softmax", [g.dense(x, w[14], w[15])], "prob", axis=1)
    return _model(g, "mtcnn_rnet", 24, [("prob", ["batch", 2]), ("bbox_reg", ["batch", 4])])


def build_onet(w: list[np.ndarray]) -> onnx.ModelProto:
    g = GraphBuilder("onet")
    x = g.maxpool(g.prelu(g.conv("input", w[0], w[1]), w[2], spatial=True), 3, 2, same=True)
    x = g.maxpool(g.prelu(g.conv(x, w[3], w[4]), w[5], spatial=True), 3, 2, same=False)
    x = g.maxpool(g.prelu(g.conv(x, w[6], w[7]), w[8], spatial=True), 2, 2, same=True)
    x = g.prelu(g.conv(x, w[9], w[10]), w[11], spatial=True)
    x = g.prelu(g.dense(g.flatten_whc(x), w[12], w[13]), w[14], spatial=False)
    g.dense(x, w[15], w[16], "bbox_reg")
    g.dense(x, w[17], w[18], "landmarks")
    g.node("Softmax", [g.dense(x, w[19], w[20])], "prob", axis=1)
    outputs = [("prob", ["batch", 2]), ("bbox_reg", ["batch", 4]), ("landmarks", ["batch", 10])]
    return _model(g, "mtcnn_onet", 48, outputs)


def _with(dims: list, channels: int) -> list:
    return [channels if d is None else d for d in dims]


BUILDERS = {"pnet": build_pnet, "rnet": build_rnet, "onet": build_onet}

DESCRIPTIONS = {
    "pnet": "MTCNN proposal network: fully convolutional face/non-face score and box offsets for "
    "every 12x12 window (stride 2) of one pyramid level.",
    "rnet": "MTCNN refinement network: face score and box offsets for 24x24 candidate crops.",
    "onet": "MTCNN output network: face score, box offsets and 5 landmarks (eyes, nose, mouth "
    "corners) for 48x48 candidate crops.",
}


def _outputs(stage: str, side: int | None) -> list[dict]:
    outputs = [
        {
            "name": "prob",
            "kind": "probabilities",
            "description": "softmax over [not_face, face]"
            + (", per output cell (N, 2, H', W')" if side is None else ", shape (N, 2)"),
        },
        {
            "name": "bbox_reg",
            "kind": "raw",
            "description": "offsets (dx1, dy1, dx2, dy2) as fractions of the window's width/height",
        },
    ]
    if stage == "onet":
        outputs.append(
            {
                "name": "landmarks",
                "kind": "raw",
                "description": "x of left eye, right eye, nose, mouth left, mouth right, then "
                "their y, as fractions of the box (image left/right, not the person's)",
            }
        )
    return outputs


def _input(side: int | None) -> dict:
    return {
        "name": "input",
        "layout": "NCHW",
        "shape": [None, 3, side, side],
        "dtype": "float32",
        "preprocessing": {
            "channels": "RGB",
            "mean": [MEAN] * 3,
            "std": [STD] * 3,
            "formula": "(x - 127.5) / 128 on 0-255 pixel values",
            "resize": "area (box filter) per pyramid level"
            if side is None
            else f"bilinear crop of a square candidate box to {side}x{side}",
        },
    }


def _training(stage: str) -> dict:
    return {
        "sources": [
            {
                "name": "WIDER FACE (boxes) and CelebA (landmarks), as trained by Zhang "
                "et al., 'Joint Face Detection and Alignment using Multi-task Cascaded "
                "Convolutional Networks', IEEE SPL 2016",
                "licence": "MIT (weights as redistributed by the mtcnn package)",
            }
        ],
        "command": "PYTHONPATH=/tmp/deps python tools/convert_mtcnn.py "
        "--weights /tmp/mtcnn/mtcnn/assets/weights",
        "notes": f"Converted from mtcnn=={VERSION} ({stage}.lz4, joblib arrays) without "
        "TensorFlow; numerically checked against a NumPy reference of the Keras layers.",
    }


def card(stage: str, sha256: str) -> dict:
    """The model card for one stage, in the form ``deepfakescan.detectors.card`` checks."""
    side, threshold = STAGES[stage]
    return {
        "name": f"mtcnn_{stage}",
        "version": VERSION,
        "task": "face-detector",
        "description": DESCRIPTIONS[stage],
        "inputs": [_input(side)],
        "outputs": _outputs(stage, side),
        "labels": ["not_face", "face"],
        "calibration": {"method": "none"},
        "threshold": threshold,
        "uncertain_band": [threshold, threshold],
        "training": _training(stage),
        "metrics": {},
        "licence": LICENCE,
        "sha256": sha256,
    }


# ------------------------------------------------------- a NumPy reference of the Keras nets


def _ref_conv(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    from numpy.lib.stride_tricks import sliding_window_view

    kh, kw = kernel.shape[:2]
    patches = sliding_window_view(x, (kh, kw), axis=(1, 2))  # N, H', W', C, kh, kw
    return np.einsum("nhwcij,ijco->nhwo", patches, kernel) + bias


def _ref_prelu(x: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    return np.where(x > 0, x, x * alpha)


def _ref_pool(x: np.ndarray, size: int, stride: int, same: bool) -> np.ndarray:
    from numpy.lib.stride_tricks import sliding_window_view

    if same:  # Keras: output ceil(n / stride), the padding at the end
        _, h, w, _ = x.shape
        ph = max((-(-h // stride) - 1) * stride + size - h, 0)
        pw = max((-(-w // stride) - 1) * stride + size - w, 0)
        x = np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)),
                   constant_values=-np.inf)  # fmt: skip
    return sliding_window_view(x, (size, size), axis=(1, 2))[:, ::stride, ::stride].max((-2, -1))


def _ref_softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def reference(stage: str, w: list[np.ndarray], x: np.ndarray) -> dict[str, np.ndarray]:
    """The Keras models' forward pass on NHWC ``x``, layer by layer in NumPy (outputs in NCHW)."""
    conv, prelu, pool = _ref_conv, _ref_prelu, _ref_pool
    if stage == "pnet":
        h = pool(prelu(conv(x, w[0], w[1]), w[2]), 2, 2, True)
        h = prelu(conv(prelu(conv(h, w[3], w[4]), w[5]), w[6], w[7]), w[8])
        reg, prob = conv(h, w[9], w[10]), _ref_softmax(conv(h, w[11], w[12]))
        return {"prob": prob.transpose(0, 3, 1, 2), "bbox_reg": reg.transpose(0, 3, 1, 2)}
    h = pool(prelu(conv(x, w[0], w[1]), w[2]), 3, 2, True)
    h = pool(prelu(conv(h, w[3], w[4]), w[5]), 3, 2, False)
    if stage == "onet":
        h = pool(prelu(conv(h, w[6], w[7]), w[8]), 2, 2, True)
        w = w[3:]
    h = prelu(conv(h, w[6], w[7]), w[8])
    h = h.transpose(0, 2, 1, 3).reshape(len(x), -1)  # Permute((2, 1, 3)) + Flatten
    h = prelu(h @ w[9] + w[10], w[11])
    out = {"bbox_reg": h @ w[12] + w[13], "prob": _ref_softmax(h @ w[-2] + w[-1])}
    if stage == "onet":
        out["landmarks"] = h @ w[14] + w[15]
    return out


def verify(stage: str, arrays: list[np.ndarray], graph: bytes) -> float:
    """Largest difference between the ONNX graph and the NumPy reference on random input."""
    import onnxruntime as ort

    side = STAGES[stage][0]
    shape = (2, 37, 51, 3) if side is None else (3, side, side, 3)  # odd sizes test the padding
    x = np.random.default_rng(0).uniform(-1, 1, shape).astype(np.float32)
    session = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    got = dict(zip(names, session.run(None, {"input": x.transpose(0, 3, 1, 2)}), strict=True))
    expected = reference(stage, arrays, x)
    return max(float(np.abs(got[k] - v).max()) for k, v in expected.items())


def load_arrays(weights_dir: Path, stage: str) -> list[np.ndarray]:
    import joblib  # only needed here, to read the package's pickles

    arrays = joblib.load(weights_dir / f"{stage}.lz4")
    return [np.asarray(a, dtype=np.float32) for a in arrays]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, required=True, help="mtcnn/assets/weights dir")
    parser.add_argument("--out", type=Path, default=MODELS_DIR)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for stage, build in BUILDERS.items():
        arrays = load_arrays(args.weights, stage)
        data = build(arrays).SerializeToString()
        error = verify(stage, arrays, data)
        if error > 1e-4:
            raise SystemExit(f"{stage}: the ONNX graph differs from the reference by {error:.2g}")
        onnx_path = args.out / f"mtcnn_{stage}.onnx"
        onnx_path.write_bytes(data)
        sha = hashlib.sha256(data).hexdigest()
        text = json.dumps(card(stage, sha), indent=2, ensure_ascii=False) + "\n"
        onnx_path.with_suffix(".json").write_text(text, encoding="utf-8")
        print(f"{onnx_path} {len(data) / 1024:.0f} KiB sha256={sha[:12]} max|diff|={error:.1g}")


if __name__ == "__main__":
    main()
