"""Training step time on the CPU: glibc's default allocator, freed memory reused, and then
channels-last tensors as well (what both training loops do now).

Each cell is a fresh child interpreter (2 torch threads) that trains the shipped audio or image
network on seeded random batches of the real input shape (audio: 64 spectrogram windows;
vocoder: the tinynsf vocoder on 8 segments of 0.5 s with its spectral loss; image: 32 aligned
160 px crops, stem frozen, as the detector recipe does) and reports
the median step time, minor page faults per step and the share of CPU time spent in the kernel.
``reuse`` calls :func:`deepfakescan.training.allocator.reuse_freed_memory` first, as both
training loops do; ``default`` does not; ``reuse+cl`` also puts the network and its batch in
channels-last memory (``training/audio/train.py`` and ``training/image/train.py``'s
``CHANNELS_LAST``; the
vocoder's 1-D layers have no such layout, so it has no such row). Each row's speed-up is
against ``default``. Prints a table (never asserts).

    python benchmarks/bench_training.py [--steps 20] [--rounds 3]

Run it on an idle machine: a concurrent job changes both columns.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
import torch
mode, net, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
if mode in ("reuse", "reuse+cl"):
    from deepfakescan.training.allocator import reuse_freed_memory
    assert reuse_freed_memory()
torch.set_num_threads(2)
torch.manual_seed(0)
if net == "audio":
    from deepfakescan import features as F
    from deepfakescan.training.audio.nets import AudioResNet
    model = AudioResNet()
    shape = (64, *F.feature_shape(F.FEATURE_KIND))
elif net == "vocoder":
    from deepfakescan.training.vocoders import nets as NV
    from deepfakescan.training.vocoders.train import SEGMENT_FRAMES
    model = NV.TinyNSF()
    frames = SEGMENT_FRAMES
    mel, f0 = torch.randn(8, frames, NV.N_MELS), torch.full((8, frames), 120.0)
    wav = 0.1 * torch.randn(8, frames * NV.HOP)
    g = torch.Generator().manual_seed(0)
else:
    from deepfakescan.training.image.train import build_model, default_config
    model = build_model(default_config("detector", pretrained=False))
    shape = (32, 3, 160, 160)
model.train()
params = [p for p in model.parameters() if p.requires_grad]
opt = torch.optim.AdamW(params, lr=1e-3)
loss_fn = torch.nn.BCEWithLogitsLoss()
if net == "vocoder":
    def loss_of():
        return NV.spectral_loss(model(mel, f0, g), wav)
else:
    x = torch.randn(shape)
    if mode == "reuse+cl":
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    y = (torch.rand(shape[0]) < 0.5).float()
    def loss_of():
        out = model(x)
        out = out[0] if isinstance(out, tuple) else out  # the image net also returns its CAM
        return loss_fn(out.reshape(-1), y)

def step():
    loss = loss_of()
    opt.zero_grad()
    loss.backward()
    opt.step()

for _ in range(3):
    step()
times = []
r0 = resource.getrusage(resource.RUSAGE_SELF)
for _ in range(steps):
    t = time.perf_counter()
    step()
    times.append(time.perf_counter() - t)
r1 = resource.getrusage(resource.RUSAGE_SELF)
user, system = r1.ru_utime - r0.ru_utime, r1.ru_stime - r0.ru_stime
print(json.dumps({
    "step_ms": 1000 * sorted(times)[len(times) // 2],
    "faults_per_step": (r1.ru_minflt - r0.ru_minflt) / steps,
    "system_share": system / (user + system),
}))
"""


NETS = ("audio", "vocoder", "image")


def modes(net: str) -> tuple[str, ...]:
    return ("default", "reuse") if net == "vocoder" else ("default", "reuse", "reuse+cl")


def child(mode: str, net: str, steps: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode, net, str(steps)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=20, help="timed steps per child")
    ap.add_argument("--rounds", type=int, default=3, help="children per cell (alternating)")
    args = ap.parse_args()

    results: dict[tuple[str, str], list[dict]] = {}
    for net in NETS:
        for _ in range(args.rounds):  # alternate so drift in machine load hits every mode
            for mode in modes(net):
                results.setdefault((net, mode), []).append(child(mode, net, args.steps))

    def med(net: str, mode: str, key: str) -> float:
        return statistics.median(r[key] for r in results[(net, mode)])

    print(f"{args.rounds} children x {args.steps} steps per cell; medians")
    print("| net | mode | step ms | page faults / step | kernel CPU share | speed-up |")
    print("|---|---|---:|---:|---:|---:|")
    for net in NETS:
        base = med(net, "default", "step_ms")
        for mode in modes(net):
            ms = med(net, mode, "step_ms")
            print(
                f"| {net} | {mode} | {ms:.0f} | {med(net, mode, 'faults_per_step'):.0f} | "
                f"{100 * med(net, mode, 'system_share'):.0f} % | {base / ms:.2f}x |"
            )


if __name__ == "__main__":
    main()
