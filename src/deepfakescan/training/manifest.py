"""Split manifests: one CSV line per file, one frozen dataclass per line.

Every model's manifest is written and read here, so they share one format: a header naming the
row type's fields in order, ``\\n`` line ends, ``None`` written as an empty cell, and each cell
read back as its field's type (``str``, ``int`` or ``int | None``). The committed manifests
under ``data/manifests`` are written by this code and must come back byte for byte.
"""

from __future__ import annotations

import csv
import dataclasses
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

Row = TypeVar("Row")


class FrameKey:
    """For rows naming a file, or one frame of a video (``path``, ``source``, ``frame``): the
    key that names the image and the committed manifests' order, defined once for every model."""

    path: str
    source: str
    frame: int | None

    @property
    def key(self) -> str:
        """Unique name of the image: the path, plus ``#frame`` for video frames."""
        return self.path if self.frame is None else f"{self.path}#{self.frame}"

    def sort_key(self) -> tuple[str, str, int]:
        """The committed order: by source, path, frame (stills first)."""
        return (self.source, self.path, -1 if self.frame is None else self.frame)


def fields_of(row_type: type) -> tuple[str, ...]:
    """The manifest header of ``row_type``: its dataclass fields, in order."""
    return tuple(f.name for f in dataclasses.fields(row_type))


def write_manifest(path: Path, rows: Iterable[Any], row_type: type) -> Path:
    """Write ``rows`` (instances of ``row_type``) to ``path`` in the order given."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(fields_of(row_type))
        for r in rows:
            writer.writerow(["" if v is None else v for v in dataclasses.astuple(r)])
    return path


def read_manifest(path: Path, row_type: type[Row]) -> list[Row]:
    """Rows of a manifest of ``row_type``; refuses a header that is not its fields."""
    names = fields_of(row_type)
    parse = {name: _parser(hint) for name, hint in typing.get_type_hints(row_type).items()}
    with Path(path).open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != names:
            raise ValueError(f"{path}: header must be {','.join(names)}")
        return [row_type(**{k: parse[k](line[k]) for k in names}) for line in reader]


def _parser(hint: Any):
    """Cell text -> value for a field annotated ``hint``."""
    if hint is int:
        return int
    if hint == int | None:
        return lambda text: int(text) if text else None
    return lambda text: text or ""


__all__ = ["fields_of", "read_manifest", "write_manifest"]
