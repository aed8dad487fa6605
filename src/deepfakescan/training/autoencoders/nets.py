"""Small autoencoders whose decoders upsample the way image generators do.

Four convolutional autoencoders share one encoder (4x downsampling to ``latent`` channels) and
differ only in their decoder's upsampling layer, the source of a generator's periodic traces:

- ``transposed``: transposed convolution (4x4, stride 2; DCGAN, many GAN decoders);
- ``nearest``: nearest-neighbour upsampling, then a 3x3 convolution (StyleGAN-era, SD's VAE);
- ``bilinear``: bilinear upsampling, then a 3x3 convolution;
- ``pixelshuffle``: a 3x3 convolution to 4x the channels, then sub-pixel shuffling (ESPCN).

``vae`` is a latent-diffusion-style VAE (after Stable Diffusion's ``AutoencoderKL``, smaller):
8x downsampling to 4 latent channels (mean and log-variance, a KL term), and a decoder of
ResNet blocks with GroupNorm and SiLU and nearest upsampling + convolution.

Every net maps (N, 3, H, W) in [-1, 1] to the same shape (H and W multiples of
:attr:`~AutoEncoder.factor`); ``forward`` is the deterministic reconstruction (the VAE decodes
its mean), ``training_pass`` returns the reconstruction and the KL term (0 for the plain ones).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as TF

WIDTH = 32
"""Channels at full resolution; 2x and 4x that below (the plain autoencoders)."""
LATENT = 48
"""Bottleneck channels of the plain autoencoders at 1/4 resolution: as many numbers as the
pixels they stand for (3 x 4 x 4), so the reconstruction can be close and the decoder, not the
code, leaves the trace."""
VAE_LATENT = 4
VAE_WIDTHS = (32, 64, 128, 128)
"""VAE channels at 1, 1/2, 1/4 and 1/8 resolution (SD's are 128, 256, 512, 512)."""


def _act() -> nn.Module:
    return nn.LeakyReLU(0.2, inplace=True)


UPSAMPLERS = ("transposed", "nearest", "bilinear", "pixelshuffle")


def upsampler(kind: str, cin: int, cout: int) -> nn.Sequential:
    """One 2x upsampling layer of ``kind`` from ``cin`` to ``cout`` channels."""
    if kind == "transposed":
        return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1))
    if kind in ("nearest", "bilinear"):
        up = nn.Upsample(
            scale_factor=2, mode=kind, **({"align_corners": False} if kind == "bilinear" else {})
        )
        return nn.Sequential(up, nn.Conv2d(cin, cout, 3, padding=1))
    if kind == "pixelshuffle":
        return nn.Sequential(nn.Conv2d(cin, cout * 4, 3, padding=1), nn.PixelShuffle(2))
    raise ValueError(f"unknown upsampler {kind!r}; available: {', '.join(UPSAMPLERS)}")


class AutoEncoder(nn.Module):
    """Conv encoder (4x down to ``latent`` channels) and a decoder of two ``kind`` upsamplers."""

    factor = 4

    def __init__(self, kind: str, width: int = WIDTH, latent: int = LATENT) -> None:
        super().__init__()
        w = width
        self.kind = kind
        self.encoder = nn.Sequential(
            nn.Conv2d(3, w, 3, padding=1), _act(),
            nn.Conv2d(w, 2 * w, 4, stride=2, padding=1), _act(),
            nn.Conv2d(2 * w, 2 * w, 3, padding=1), _act(),
            nn.Conv2d(2 * w, 4 * w, 4, stride=2, padding=1), _act(),
            nn.Conv2d(4 * w, latent, 3, padding=1),
        )  # fmt: skip
        self.decoder = nn.Sequential(
            nn.Conv2d(latent, 4 * w, 3, padding=1), _act(),
            upsampler(kind, 4 * w, 2 * w), _act(),
            nn.Conv2d(2 * w, 2 * w, 3, padding=1), _act(),
            upsampler(kind, 2 * w, w), _act(),
            nn.Conv2d(w, 3, 3, padding=1),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))

    def training_pass(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self(x), x.new_zeros(())


class ResBlock(nn.Module):
    """GroupNorm, SiLU, 3x3 conv, twice, plus the (projected) input: SD's ``ResnetBlock``."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.GroupNorm(8, cin), nn.SiLU(), nn.Conv2d(cin, cout, 3, padding=1),
            nn.GroupNorm(8, cout), nn.SiLU(), nn.Conv2d(cout, cout, 3, padding=1),
        )  # fmt: skip
        self.skip = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.body(x)


class VAE(nn.Module):
    """SD-style KL autoencoder: 8x down, :data:`VAE_LATENT` channels, nearest-upsampling decoder."""

    factor = 8

    def __init__(self, widths: tuple[int, ...] = VAE_WIDTHS, latent: int = VAE_LATENT) -> None:
        super().__init__()
        enc: list[nn.Module] = [nn.Conv2d(3, widths[0], 3, padding=1)]
        for cin, cout in zip(widths, widths[1:], strict=False):
            enc += [ResBlock(cin, cin), nn.Conv2d(cin, cout, 3, stride=2, padding=1)]
        enc += [ResBlock(widths[-1], widths[-1]), nn.GroupNorm(8, widths[-1]), nn.SiLU()]
        enc.append(nn.Conv2d(widths[-1], 2 * latent, 3, padding=1))
        self.encoder = nn.Sequential(*enc)
        top = widths[::-1]
        dec: list[nn.Module] = [nn.Conv2d(latent, top[0], 3, padding=1), ResBlock(top[0], top[0])]
        for cin, cout in zip(top, top[1:], strict=False):
            dec += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cin, cout, 3, padding=1)]
            dec.append(ResBlock(cout, cout))
        dec += [nn.GroupNorm(8, top[-1]), nn.SiLU(), nn.Conv2d(top[-1], 3, 3, padding=1)]
        self.decoder = nn.Sequential(*dec)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of the latent, (N, 4, H/8, W/8) each."""
        mean, logvar = self.encoder(x).chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encode(x)[0])

    def training_pass(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A sampled reconstruction and the mean KL divergence to N(0, 1) per latent value."""
        mean, logvar = self.encode(x)
        z = mean + torch.randn_like(mean) * torch.exp(0.5 * logvar)
        kl = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).mean()
        return self.decoder(z), kl


ARCHITECTURES: dict[str, Callable[[], nn.Module]] = {
    **{kind: (lambda kind=kind: AutoEncoder(kind)) for kind in UPSAMPLERS},
    "vae": VAE,
}
"""Every fake-maker by name: ``fakes/<name>-<seed>`` and source ``ae-<name>``."""


def build(name: str) -> nn.Module:
    """A fresh net of architecture ``name`` (see :data:`ARCHITECTURES`)."""
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r}; available: {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[name]()


def gradient_l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of horizontal and vertical pixel differences (edges kept sharp)."""
    dx = TF.l1_loss(a[..., :, 1:] - a[..., :, :-1], b[..., :, 1:] - b[..., :, :-1])
    dy = TF.l1_loss(a[..., 1:, :] - a[..., :-1, :], b[..., 1:, :] - b[..., :-1, :])
    return dx + dy


__all__ = [
    "ARCHITECTURES",
    "LATENT",
    "UPSAMPLERS",
    "VAE",
    "VAE_LATENT",
    "AutoEncoder",
    "ResBlock",
    "build",
    "gradient_l1",
    "upsampler",
]
