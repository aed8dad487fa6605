"""Keep freed memory in the process during CPU training.

glibc serves every block above its mmap threshold (128 KB to 32 MB) with a fresh ``mmap`` and
hands it back to the kernel on ``free``. A training step allocates and frees the same large
activation and gradient buffers again and again (a batch of 64 spectrogram windows puts 52 MB
in the first layer's activations alone), so every step faults hundreds of megabytes of zeroed
pages back in. Measured on the 2-core training machine during an audio epoch: about 200 000
minor page faults a second and 27 % of the CPU time in the kernel (epochs of 128-149 s;
resumed with this change, the same run's next epochs took 91-94 s). Serving those blocks from
the heap and never trimming it lets each step reuse the pages of the step before.
``benchmarks/bench_training.py`` measures the effect.

Only training calls this (audio: before the vocoder and the synthesis workers it forks, which
inherit the setting; image: before its epoch loop): the heap then keeps its high-water mark,
which a long-lived scanning server should not.
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
"""``mallopt`` parameter numbers from glibc's ``malloc.h``."""


def reuse_freed_memory() -> bool:
    """Tell glibc to keep large freed blocks for reuse; ``False`` where that is not glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # musl and other C libraries: leave them alone
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, 2**31 - 1))


__all__ = ["reuse_freed_memory"]
