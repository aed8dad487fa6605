"""Training loops keep freed memory for the next step instead of faulting it back in."""

from __future__ import annotations

import resource
import subprocess
import sys

import pytest

pytest.importorskip("torch")  # the child process trains nothing but allocates through torch

CHILD = r"""
import resource, sys
import torch
if sys.argv[1] == "reuse":
    from deepfakescan.training.allocator import reuse_freed_memory
    assert reuse_freed_memory()
n, steps = 64 << 20, int(sys.argv[2])
for _ in range(2):  # the first "steps": allocated, touched, freed (the heap settles)
    torch.ones(n, dtype=torch.uint8)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(steps):  # the next steps, same size
    torch.ones(n, dtype=torch.uint8)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


STEPS = 8


def _faults(mode: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(STEPS)], capture_output=True, text=True, check=True
    )
    return int(out.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_a_repeated_large_allocation_reuses_the_pages_of_the_freed_one():
    pages = STEPS * (64 << 20) // resource.getpagesize()
    assert _faults("default") > 0.9 * pages  # glibc's default: mmap, munmap, fault in again
    assert _faults("reuse") < 0.5 * pages  # most steps find the freed pages still mapped
