"""One input, from a path or from bytes, checked against the byte limit before anything reads it.

Decoders take a ``MediaSource`` and call ``open()`` for a fresh binary stream each time, so
a file on disk is never read whole into memory (videos and long audio are streamed).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..config import Settings
from ..errors import BadInput, EmptyInput, TooLarge

HEAD_BYTES = 4096


@dataclass(frozen=True)
class MediaSource:
    """Bytes to analyse. ``name`` is for display only and never becomes a path."""

    path: Path | None
    data: bytes | None
    size: int
    name: str

    @classmethod
    def from_any(
        cls,
        source: str | os.PathLike | bytes | bytearray | memoryview,
        settings: Settings,
        name: str | None = None,
    ) -> MediaSource:
        """Wrap a path or bytes; refuse empty or over-limit input before reading it."""
        if isinstance(source, bytes | bytearray | memoryview):
            data = bytes(source)
            src = cls(path=None, data=data, size=len(data), name=name or "upload")
        else:
            path = Path(source)
            if not path.is_file():
                raise BadInput(f"{path}: no such file")
            src = cls(path=path, data=None, size=path.stat().st_size, name=name or path.name)
        if src.size == 0:
            raise EmptyInput(f"{src.name}: the input is empty (0 bytes)")
        if src.size > settings.max_bytes:
            raise TooLarge(
                f"{src.name}: {src.size} bytes is over the limit of {settings.max_bytes} bytes"
                " (DEEPFAKESCAN_MAX_BYTES)"
            )
        return src

    def open(self) -> BinaryIO:
        """A new binary stream positioned at the start; the caller closes it."""
        if self.data is not None:
            return io.BytesIO(self.data)
        assert self.path is not None
        return open(self.path, "rb")

    def head(self, n: int = HEAD_BYTES) -> bytes:
        """The first ``n`` bytes, enough for magic-number sniffing."""
        if self.data is not None:
            return self.data[:n]
        with self.open() as f:
            return f.read(n)
