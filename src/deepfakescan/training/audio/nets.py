"""The audio detector's network, trained here and exported to ONNX.

``AudioResNet``: a compact residual 2D CNN over one window of ``features.window_features``.
Small on purpose (0.12 M parameters; 25 M multiply-adds per 2 s spectrogram window, 14-17 M
for the cepstral kinds): a 10-minute file is ~600 windows and must be scored in well under a
second on two CPU cores.
"""

from __future__ import annotations

import torch
from torch import nn

from ... import features as F


class ResBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN plus a (strided 1x1) shortcut, then ReLU."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.short = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(y + self.short(x))


class AudioResNet(nn.Module):
    """Feature windows ``(N, *features.feature_shape(kind))`` -> fake logit ``(N,)``.

    A spectrogram (257 bins) enters through a stride-2 stem, so that after the stem's pooling
    it is 64 x 49 (cepstral kinds: 16 x 99): 25 M multiply-adds a window (cepstral: 14-17 M).
    Global average *and* max pooling: vocoder artefacts can be brief, an average alone dilutes them.
    """

    def __init__(
        self,
        channels: tuple[int, ...] = (16, 32, 48, 64),
        dropout: float = 0.2,
        kind: str = F.FEATURE_KIND,
    ) -> None:
        super().__init__()
        c0 = channels[0]
        in_ch, height, _ = F.feature_shape(kind)
        stride = 2 if height > 64 else 1
        self.stem = nn.Sequential(
            nn.Conv2d(in_ch, c0, 3, stride, 1, bias=False),
            nn.BatchNorm2d(c0),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        blocks = [ResBlock(a, b, 2) for a, b in zip(channels[:-1], channels[1:], strict=False)]
        self.blocks = nn.Sequential(*blocks)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(2 * channels[-1], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(self.stem(x))
        pooled = torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1)
        return self.head(self.drop(pooled)).squeeze(1)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
