"""Command line: ``deepfakescan scan|provenance|models|serve|worker|keys|eval|train``.

The CLI parses flags, calls the library and picks a writer from ``WRITERS``; it holds no
analysis logic of its own.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .config import Settings
from .errors import DeepfakescanError

if TYPE_CHECKING:
    from .detectors.bundle import ModelInfo
    from .provenance import Provenance

EXIT_REAL = 0
EXIT_FAKE = 1
EXIT_ERROR = 2
EXIT_UNCERTAIN = 3

SCAN_EPILOG = """\
exit codes:
  0  every file was judged real
  1  at least one file was judged fake (wins over everything else)
  2  usage or input error: a named file is missing, empty, corrupt, too large or of an
     unsupported type, or no model is installed for it (the batch is incomplete)
  3  some files are uncertain (no face, no speech, score in the uncertain band), none fake

Files found by walking a folder that are not images, audio or video are listed as skipped
and do not count as errors; files named on the command line always do.
"""


@dataclass
class ScanResult:
    """One row of a batch: a report, or the error that stopped the file."""

    path: Path
    report: object | None = None
    error: DeepfakescanError | None = None
    skipped: bool = False


def iter_inputs(paths: Sequence[str]) -> Iterable[tuple[Path, bool]]:
    """Yield (file, named_explicitly) for each argument, walking folders in sorted order."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if child.is_file() and not any(p.startswith(".") for p in child.parts[-1:]):
                    yield child, False
        else:
            yield path, True


def scan_files(
    paths: Sequence[str],
    settings: Settings,
    *,
    show_progress: bool,
    on_result: Callable[[ScanResult], None] | None = None,
) -> list[ScanResult]:
    """Scan every input with a progress bar on stderr; errors are collected, not raised."""
    from tqdm import tqdm

    from .errors import UnsupportedMedia
    from .pipeline import scan

    inputs = list(iter_inputs(paths))
    results: list[ScanResult] = []
    bar = tqdm(total=len(inputs), unit="file", disable=not show_progress, file=sys.stderr)
    with bar:
        for path, explicit in inputs:
            bar.set_description(path.name[:30])

            def progress(fraction: float, stage: str) -> None:
                bar.set_postfix_str(f"{stage} {fraction:.0%}", refresh=False)

            try:
                result = ScanResult(path, report=scan(path, settings=settings, progress=progress))
            except UnsupportedMedia as e:
                result = ScanResult(path, error=e, skipped=not explicit)
            except DeepfakescanError as e:
                result = ScanResult(path, error=e)
            results.append(result)
            if on_result is not None:
                on_result(result)
            bar.update(1)
    return results


def exit_code(results: Sequence[ScanResult]) -> int:
    """Fake beats error beats uncertain beats real (see ``SCAN_EPILOG``)."""
    verdicts = {r.report.verdict for r in results if r.report is not None}
    if "fake" in verdicts:
        return EXIT_FAKE
    if any(r.error is not None and not r.skipped for r in results) or not results:
        return EXIT_ERROR
    if "uncertain" in verdicts:
        return EXIT_UNCERTAIN
    return EXIT_REAL


def _row(result: ScanResult) -> dict:
    report = result.report
    if report is None:
        assert result.error is not None
        return {
            "file": str(result.path),
            "media_type": "",
            "verdict": "skipped" if result.skipped else "error",
            "fake_probability": "",
            "top_reason": result.error.message,
        }
    probability = report.fake_probability
    return {
        "file": str(result.path),
        "media_type": report.media.type,
        "verdict": report.verdict,
        "fake_probability": "" if probability is None else f"{probability:.3f}",
        "top_reason": report.reasons[0] if report.reasons else "",
    }


def write_table(results: Sequence[ScanResult], out: io.TextIOBase) -> None:
    rows = [_row(r) for r in results]
    headers = {
        "file": "FILE",
        "media_type": "TYPE",
        "verdict": "VERDICT",
        "fake_probability": "P(FAKE)",
        "top_reason": "TOP REASON",
    }
    widths = {
        key: min(60, max([len(title)] + [len(str(r[key])) for r in rows]))
        for key, title in headers.items()
        if key != "top_reason"
    }

    def fit(text: str, width: int) -> str:
        # keep the end of long paths: the file name is what a reader scans for
        return text if len(text) <= width else "…" + text[-(width - 1) :]

    def line(values: dict) -> str:
        cells = [fit(str(values[k]), widths[k]).ljust(widths[k]) for k in widths]
        return "  ".join(cells + [str(values["top_reason"])])

    out.write(line(headers) + "\n")
    for row in rows:
        out.write(line(row) + "\n")


def write_json(results: Sequence[ScanResult], out: io.TextIOBase) -> None:
    items = []
    for r in results:
        item: dict = {"file": str(r.path)}
        if r.report is not None:
            item["report"] = r.report.to_dict()
        else:
            assert r.error is not None
            item["error"] = r.error.to_dict()["error"]
            item["skipped"] = r.skipped
        items.append(item)
    json.dump(items, out, indent=2)
    out.write("\n")


def write_csv(results: Sequence[ScanResult], out: io.TextIOBase) -> None:
    fields = ["file", "media_type", "verdict", "fake_probability", "top_reason"]
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for r in results:
        writer.writerow(_row(r))


WRITERS: dict[str, Callable[[Sequence[ScanResult], io.TextIOBase], None]] = {
    "table": write_table,
    "json": write_json,
    "csv": write_csv,
}


def _safe_stem(index: int, path: Path) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", path.stem)[:48].strip("._") or "file"
    return f"{index:04d}-{stem}"


def write_artifacts(results: Sequence[ScanResult], root: Path) -> None:
    """Each file's artifacts under ``root/<index>-<stem>/<artifact name>``."""
    for index, r in enumerate(results):
        if r.report is None or not r.report.artifact_data:
            continue
        folder = root / _safe_stem(index, r.path)
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in r.report.artifact_data.items():
            (folder / name).write_bytes(data)


def cmd_scan(args: argparse.Namespace) -> int:
    settings = Settings.from_env(**({"video_frames": args.frames} if args.frames else {}))
    show = sys.stderr.isatty() if args.progress is None else args.progress
    results = scan_files(args.paths, settings, show_progress=show)
    WRITERS[args.format](results, sys.stdout)
    if args.artifacts:
        write_artifacts(results, Path(args.artifacts))
    for r in results:
        if r.error is not None and not r.skipped:
            print(f"error: {r.path}: {r.error.message}", file=sys.stderr)
    return exit_code(results)


def cmd_models(args: argparse.Namespace) -> int:
    from .detectors.bundle import list_models

    models = list_models(Settings.from_env())
    if args.json:
        json.dump([m.to_dict() for m in models], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    if not models:
        print("No models installed. Scans will fail with 'no model installed' until they are.")
        return 0
    for m in models:
        print(describe_model(m))
        print()
    return 0


def cmd_provenance(args: argparse.Namespace) -> int:
    from .media.source import MediaSource
    from .provenance import provenance_judgement, read_provenance

    settings = Settings.from_env()
    source = MediaSource.from_any(args.path, settings)
    provenance = read_provenance(source, settings=settings)
    hint, reasons = provenance_judgement(provenance)
    if args.json:
        out = {"file": args.path, **provenance.to_dict(), "hint": hint, "reasons": list(reasons)}
        json.dump(out, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
        return 0
    print(describe_provenance(provenance, hint, reasons))
    return 0


def describe_provenance(provenance: Provenance, hint: str | None, reasons: Sequence[str]) -> str:
    """``deepfakescan provenance`` for people: the hint and why, then one line per record."""
    lines = [
        f"hint: {hint or 'none (the records neither show AI generation nor count as a capture)'}"
    ]
    lines += [f"  {reason}" for reason in reasons]
    if not provenance.items:
        lines.append("no provenance records found (absence means nothing: most sites strip them)")
    for item in provenance.items:
        flags = [f for f, on in (("AI", item.declares_ai), ("camera", item.camera_capture)) if on]
        if item.source == "c2pa":
            flags.insert(0, item.validation or "")
        lines.append(
            f"{item.source} {item.field}: {item.value}"
            + (f"  [{', '.join(flags)}]" if flags else "")
        )
        for label, value in (
            ("signer", item.signer),
            ("claim generator", item.claim_generator),
            ("actions", ", ".join(item.actions)),
            ("digital source type", item.digital_source_type),
            ("ingredients", ", ".join(item.ingredients)),
        ):
            if value and item.source == "c2pa":
                lines.append(f"    {label}: {value}")
    lines += [f"warning: {w}" for w in provenance.warnings]
    return "\n".join(lines)


def cmd_worker(args: argparse.Namespace) -> int:
    # jobs/ is imported here, not at the top: the store's SQLAlchemy would slow every command
    from .jobs.worker import run_worker

    run_worker(Settings.from_env(), concurrency=args.concurrency, name=args.name)
    return 0


def describe_model(info: ModelInfo) -> str:
    """A few human lines for ``deepfakescan models``: what it is, what it eats, how good."""
    where = "model directory" if info.source == "model_dir" else "shipped"
    if info.overridden:
        where += ", overrides the shipped bundle"
    head = f"{info.name} {info.version or '?'}  [{info.task or 'unknown task'}]  ({where})"
    if not info.valid:
        return f"{head}\n  INVALID: {info.problem}"
    s = info.summary
    lines = [head, f"  {s['description']}"]
    for spec in s["inputs"]:
        shape = "x".join("?" if d is None else str(d) for d in spec.get("shape", []))
        lines.append(f"  input {spec['name']}: {spec.get('layout', '')} {shape} {spec['dtype']}")
    if s["labels"] == ["real", "fake"]:
        low, high = s["uncertain_band"]
        lines.append(
            f"  threshold {s['threshold']:.3f}, uncertain between {low:.3f} and {high:.3f}"
        )
    else:
        lines.append(f"  labels: {', '.join(s['labels'])}")
    lines.extend(f"  {line}" for line in metric_lines(s["metrics"]))
    lines.append(f"  licence: {s['licence']}")
    return "\n".join(lines)


def metric_lines(metrics: dict[str, Any], limit: int = 12) -> list[str]:
    """The card's metrics for people: one line per overall/family group of each evaluation
    (the shape ``deepfakescan eval`` writes), other numbers as ``key: value``."""
    out: list[str] = []
    _walk_metrics("", metrics, out)
    if not out:
        return ["test metrics: none recorded"]
    if len(out) > limit:
        out = out[:limit] + [f"... {len(out) - limit} more (deepfakescan models --json)"]
    return ["metrics (held-out):"] + [f"  {line}" for line in out]


def _walk_metrics(prefix: str, item: Any, out: list[str]) -> None:
    if isinstance(item, dict) and isinstance(item.get("groups"), dict):
        for name, g in item["groups"].items():
            if name == "overall" or (name.startswith("family:") and name != "family:real"):
                out.append(
                    f"{prefix} {name}: {g.get('n_real', 0)} real / {g.get('n_fake', 0)} fake,"
                    f" AUC {_metric(g.get('auc'))}, EER {_metric(g.get('eer'))},"
                    f" FPR {_metric(g.get('fpr'))}, recall {_metric(g.get('recall'))}"
                )
    elif isinstance(item, dict):
        for k, v in item.items():
            _walk_metrics(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif isinstance(item, float):
        out.append(f"{prefix}: {item:.4g}")
    elif isinstance(item, int | str):
        out.append(f"{prefix}: {item}")


def _metric(entry: Any) -> str:
    """One metric as eval writes it (``{"value": ...}`` with an interval) or a bare number."""
    v = entry.get("value") if isinstance(entry, dict) else entry
    return "n/a" if v is None else f"{v:.3f}"


def build_parser() -> argparse.ArgumentParser:
    from .evaluation import command as eval_command
    from .training import command as train_command
    from .web import serve as serve_command

    parser = argparse.ArgumentParser(
        prog="deepfakescan",
        description="Offline deepfake detector for images, audio and video.",
    )
    parser.add_argument("--version", action="version", version=f"deepfakescan {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "scan",
        help="scan files or folders and print verdicts",
        description="Scan images, audio and video files (folders are walked recursively).",
        epilog=SCAN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("paths", nargs="+", metavar="FILE|DIR")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", dest="format", action="store_const", const="json")
    fmt.add_argument("--csv", dest="format", action="store_const", const="csv")
    p.set_defaults(format="table", func=cmd_scan)
    p.add_argument("--artifacts", metavar="DIR", help="write heatmaps, thumbnails and previews")
    p.add_argument("--frames", type=int, help="frames to sample per video (default 32)")
    bar = p.add_mutually_exclusive_group()
    bar.add_argument("--progress", dest="progress", action="store_true", default=None)
    bar.add_argument("--no-progress", dest="progress", action="store_false")

    p = sub.add_parser(
        "provenance",
        help="print what a file declares about its origin (C2PA, XMP/IPTC, generator tags)",
        description="Read the file's own provenance records (C2PA manifests, IPTC digital"
        " source type, EXIF, PNG text such as Stable Diffusion parameters or ComfyUI graphs,"
        " audio and video tags) without running a model, and the hint they give.",
    )
    p.add_argument("path", metavar="FILE")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_provenance)

    p = sub.add_parser("models", help="list installed models and their cards")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_models)

    eval_command.add_parser(sub)
    serve_command.add_parser(sub)
    add_worker_parser(sub)
    add_keys_parser(sub)
    train_command.add_parser(sub)
    return parser


def add_worker_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "worker",
        help="run queued scans (a Celery worker; needs DEEPFAKESCAN_BROKER_URL)",
        description="Run the scans that web nodes (deepfakescan serve) queue on the broker"
        " DEEPFAKESCAN_BROKER_URL, keeping the history in DEEPFAKESCAN_DATABASE_URL. Uploads are"
        " read from DEEPFAKESCAN_DATA_DIR, a volume every web node and worker mounts.",
    )
    p.add_argument(
        "--concurrency",
        type=int,
        help="scans run at once, one process each (DEEPFAKESCAN_WORKERS, default 2)",
    )
    p.add_argument("--name", help="this worker's node name (default deepfakescan@HOSTNAME)")
    p.set_defaults(func=cmd_worker)


def add_keys_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "keys",
        help="create, list and revoke API keys for the web app and REST API",
        description="API keys live in the scan history's database (DEEPFAKESCAN_DATABASE_URL,"
        " or SQLite under DEEPFAKESCAN_DATA_DIR), so every web node sees them at once. Once a"
        " key exists, the server asks for one on every request but the page shell and health;"
        " each key sees only its own scans, an admin key sees all.",
    )
    keys = p.add_subparsers(dest="keys_command", required=True)
    create = keys.add_parser("create", help="make a key and print it once")
    create.add_argument("--label", default="", help="who or what the key is for")
    create.add_argument("--admin", action="store_true", help="sees and deletes every scan")
    create.set_defaults(func=cmd_keys_create)
    listing = keys.add_parser("list", help="list keys (never the keys themselves)")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_keys_list)
    revoke = keys.add_parser("revoke", help="revoke a key: its requests and sessions stop")
    revoke.add_argument("key_id", metavar="ID", help="the key's id, from `deepfakescan keys list`")
    revoke.set_defaults(func=cmd_keys_revoke)


def _keyring():
    from .jobs import KeyRing
    from .jobs.store import open_store

    return KeyRing(open_store(Settings.from_env()))


def cmd_keys_create(args: argparse.Namespace) -> int:
    ring = _keyring()
    try:
        key, secret = ring.create(args.label, admin=args.admin)
    finally:
        ring.store.close()
    role = "admin key" if key.admin else "key"
    print(f"{role} {key.id} created; it is shown once, keep it now:", file=sys.stderr)
    print(secret)
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    from dataclasses import asdict
    from datetime import datetime

    ring = _keyring()
    try:
        keys = ring.list()
    finally:
        ring.store.close()
    if args.json:
        json.dump([asdict(k) | {"active": k.active} for k in keys], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    if not keys:
        print("No API keys: the server is open to whoever reaches it (loopback by default).")
    for k in keys:
        state = "active" if k.active else "revoked"
        made = datetime.fromtimestamp(k.created_at).strftime("%Y-%m-%d")
        print(f"{k.id}  {made}  {'admin' if k.admin else 'user '}  {state:7}  {k.label}")
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    ring = _keyring()
    try:
        revoked = ring.revoke(args.key_id)
    finally:
        ring.store.close()
    if not revoked:
        print(f"error: no active key with id {args.key_id!r}", file=sys.stderr)
        return EXIT_ERROR
    print(f"key {args.key_id} revoked")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except DeepfakescanError as e:
        print(f"error: {e.message}", file=sys.stderr)
        return EXIT_ERROR
    except ValueError as e:  # bad environment variables
        print(f"error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:
        # `deepfakescan models | head`: the reader left early. No traceback; silence the
        # interpreter's final flush too (the pattern the Python docs give for SIGPIPE).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
