"""The code stays readable top to bottom: no function a newcomer has to scroll through.

Long functions hid the two parallel training loops that issue #18 merged; this keeps new ones
from growing back. Tests are exempt (a test reads as one story), everything that ships or that
people run is not.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECKED = ("src", "benchmarks", "tools")
MAX_LINES = 60


def _functions(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node.name, node.lineno, node.end_lineno - node.lineno + 1


def _sources() -> list[Path]:
    return sorted(p for top in CHECKED for p in (ROOT / top).rglob("*.py"))


def test_the_walk_finds_the_package_and_the_benchmarks():
    found = {p.relative_to(ROOT).parts[0] for p in _sources()}
    assert {"src", "benchmarks", "tools"} <= found
    assert any(p.name == "pipeline.py" for p in _sources())


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_function_is_longer_than_sixty_lines(path: Path):
    long = [
        f"{name} (line {line}, {n} lines)" for name, line, n in _functions(path) if n > MAX_LINES
    ]
    assert not long, f"split into named steps (<= {MAX_LINES} lines each): {', '.join(long)}"


def test_the_length_rule_sees_a_long_function(tmp_path: Path):
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES))
    f = tmp_path / "long.py"
    f.write_text(f"def too_long():\n{body}\n")
    assert [n for _, _, n in _functions(f)] == [MAX_LINES + 1]
