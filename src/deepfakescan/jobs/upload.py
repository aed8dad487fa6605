"""One upload, written once to its final file and checked while its bytes arrive.

The web layer hands a request body over chunk by chunk as it comes off the socket: there is
no spooled copy and no second file, the bytes go straight to the private file the scan will
read. The first ``HEAD_BYTES`` are the bytes ``sniff`` decides on later, so content that is no
format we decode is refused (415) after a few KiB instead of after 500 MiB, and a body over
``max_bytes`` (413) at its first byte past the limit. Whatever stops an upload (a refusal, a
client that goes away, a bug), its file is removed: use it as a context manager.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from types import TracebackType

from ..errors import EmptyInput, TooLarge
from ..media.sniff import refuse_unknown_head
from ..media.source import HEAD_BYTES


class UploadFile:
    """A new private file (0600, random name) in ``directory`` that refuses bad bytes early.

    ``name`` is the client's display name (for messages only, never a path).
    """

    def __init__(self, directory: Path, name: str, max_bytes: int) -> None:
        self.path = Path(directory) / secrets.token_hex(16)
        self.name = name
        self.size = 0
        self.finished = False
        self._max_bytes = max_bytes
        self._head = bytearray()
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._out = os.fdopen(fd, "wb")

    def write(self, chunk: bytes) -> None:
        """Append ``chunk``; raise ``TooLarge`` past the limit, ``UnsupportedMedia`` as soon as
        the first bytes rule the content out."""
        self.size += len(chunk)
        if self.size > self._max_bytes:
            raise TooLarge(
                f"{self.name}: over the limit of {self._max_bytes} bytes (DEEPFAKESCAN_MAX_BYTES)"
            )
        if len(self._head) < HEAD_BYTES:
            self._head += chunk[: HEAD_BYTES - len(self._head)]
            if len(self._head) == HEAD_BYTES:
                refuse_unknown_head(bytes(self._head), self.name)
        self._out.write(chunk)

    def finish(self) -> Path:
        """Close the file after its last byte; an empty or short unknown file is refused here.

        The full checks (container streams, declared kind, image header) run after, on the
        file (``pipeline.check``).
        """
        if not self.finished:
            self._out.close()
            self.finished = True
            if self.size == 0:
                raise EmptyInput(f"{self.name}: the file is empty (0 bytes)")
            if len(self._head) < HEAD_BYTES:
                refuse_unknown_head(bytes(self._head), self.name)
        return self.path

    def discard(self) -> None:
        """Close and remove the file (idempotent)."""
        self._out.close()
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> UploadFile:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.discard()
