"""``TinyNSF``: the network of our small neural source-filter vocoder, and its spectral loss.

After the hn-NSF recipe (Wang & Yamagishi, 2019): a sine source at the F0 harmonics plus noise,
merged by a learned layer, then dilated-convolution filter blocks conditioned on a log-mel
spectrogram; trained only on multi-resolution STFT *magnitudes*, so the phase is whatever the
network makes of the source (as in the NSF family). About 60 k parameters. ``train.py`` trains
it and makes the ``tinynsf`` fakes with it.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as TF

from ...features import SAMPLE_RATE

HOP = 160  # 10 ms frames: the mel and F0 frame rate
N_MELS = 80
N_FFT = 1024
HARMONICS = 8
STFT_RESOLUTIONS = ((512, 80, 320), (128, 40, 80), (2048, 320, 640))
"""(fft size, hop, window) of the spectral losses, as in the NSF papers."""


class SineSource(nn.Module):
    """F0 per sample -> harmonics 1..8 (random start phase) + noise -> one learned mix."""

    def __init__(self) -> None:
        super().__init__()
        self.merge = nn.Linear(HARMONICS, 1)

    def forward(self, f0: torch.Tensor, g: torch.Generator | None = None) -> torch.Tensor:
        voiced = (f0 > 0).float()
        k = torch.arange(1, HARMONICS + 1, dtype=f0.dtype)
        phase0 = 2 * math.pi * torch.rand(f0.shape[0], 1, HARMONICS, generator=g)
        phase = 2 * math.pi * torch.cumsum(f0 / SAMPLE_RATE, dim=1)
        sines = 0.1 * torch.sin(phase[..., None] * k + phase0)
        sines = sines * (f0[..., None] * k < SAMPLE_RATE / 2).float() * voiced[..., None]
        noise_std = (0.003 * voiced + 0.033 * (1 - voiced))[..., None]
        noise = torch.randn(sines.shape, generator=g) * noise_std
        return torch.tanh(self.merge(sines + noise)).squeeze(-1)  # (N, T)


class FilterBlock(nn.Module):
    """Dilated convolutions on the signal, each with the condition added, then a residual."""

    def __init__(self, channels: int, layers: int) -> None:
        super().__init__()
        self.inp = nn.Conv1d(1, channels, 1)
        self.convs = nn.ModuleList(
            nn.Conv1d(channels, channels, 3, padding=2**i, dilation=2**i) for i in range(layers)
        )
        self.out = nn.Conv1d(channels, 1, 1)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.inp(x[:, None]))
        for conv in self.convs:
            h = h + torch.tanh(conv(h) + cond)
        return x + self.out(h).squeeze(1)


class TinyNSF(nn.Module):
    """``(log-mel (N, frames, 80), F0 (N, frames))`` -> waveform ``(N, frames * 160)``."""

    def __init__(self, channels: int = 32, blocks: int = 3, layers: int = 6) -> None:
        super().__init__()
        self.source = SineSource()
        self.cond = nn.Sequential(
            nn.Conv1d(N_MELS + 1, channels, 3, padding=1),
            nn.Tanh(),
            nn.Conv1d(channels, channels, 3, padding=1),
        )
        self.blocks = nn.ModuleList(FilterBlock(channels, layers) for _ in range(blocks))

    def forward(
        self, mel: torch.Tensor, f0: torch.Tensor, g: torch.Generator | None = None
    ) -> torch.Tensor:
        lf0 = torch.where(f0 > 0, torch.log(f0.clamp(min=1.0)) - 5.0, torch.zeros_like(f0))
        c = self.cond(torch.cat([mel, lf0[..., None]], dim=2).transpose(1, 2))
        c = TF.interpolate(c, scale_factor=HOP, mode="linear", align_corners=False)
        f0_s = torch.repeat_interleave(f0, HOP, dim=1)
        x = self.source(f0_s, g)
        for block in self.blocks:
            x = block(x, c)
        return x


def spectral_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean L1 distance of log STFT magnitudes over three resolutions (phase is not compared)."""
    total = pred.new_zeros(())
    for n_fft, hop, win in STFT_RESOLUTIONS:
        window = torch.hann_window(win)
        a, b = (
            torch.stft(s, n_fft, hop, win, window, return_complex=True).abs()
            for s in (pred, target)
        )
        total = total + (torch.log(a + 1e-5) - torch.log(b + 1e-5)).abs().mean()
    return total / len(STFT_RESOLUTIONS)


__all__ = ["HOP", "N_FFT", "N_MELS", "FilterBlock", "SineSource", "TinyNSF", "spectral_loss"]
