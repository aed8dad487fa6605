"""The package's layers stay one-way: the web app sits on the jobs, the jobs on the pipeline.

ARCHITECTURE: no module imports ``web/`` or ``jobs/`` from below, and only ``training/``
imports torch (serving never needs it). Checked on the source, so a lazy import inside a
function counts as well.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "deepfakescan"


def _module(path: Path) -> tuple[str, ...]:
    parts = ("deepfakescan", *path.relative_to(PACKAGE).with_suffix("").parts)
    return parts[:-1] if parts[-1] == "__init__" else parts


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, as absolute dotted names (relative imports resolved)."""
    here = _module(path)
    package = here if path.name == "__init__.py" else here[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else ()
            module = ".".join((*base, *(node.module.split(".") if node.module else ())))
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def _sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _layer(path: Path) -> str:
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else path.stem


def _reaches(imports: set[str], package: str) -> bool:
    name = f"deepfakescan.{package}"
    return any(i == name or i.startswith(name + ".") for i in imports)


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_nothing_below_imports_the_web_app_or_the_jobs(path: Path):
    layer, imports = _layer(path), _imports(path)
    if layer not in ("web", "cli"):
        assert not _reaches(imports, "web"), f"{path.name} imports web/ from below"
    if layer not in ("web", "jobs", "cli"):
        assert not _reaches(imports, "jobs"), f"{path.name} imports jobs/ from below"


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_only_training_imports_torch(path: Path):
    if _layer(path) != "training":
        assert not any(i == "torch" or i.startswith("torch.") for i in _imports(path))


def test_the_import_reader_sees_relative_and_lazy_imports():
    probe = PACKAGE / "jobs" / "service.py"
    imports = _imports(probe)
    assert "deepfakescan.pipeline" in imports  # `from .. import pipeline`
    assert "deepfakescan.jobs.store" in imports  # `from .store import ...`
    assert _reaches(_imports(PACKAGE / "web" / "serve.py"), "web")  # lazy `from . import ...`
