"""``deepfakescan eval DATA``: scan a labelled corpus and report metrics with intervals.

The CLI stays thin: list the corpus (``datasets``), score it (``runner.evaluate`` with
``deepfakescan.scan``), then print a table or JSON and optionally write the output folder.
``cli.py`` registers it with ``add_parser(subparsers)`` and dispatches to ``run(args)``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..errors import DeepfakescanError
from .datasets import ASVSPOOF_SPLITS, LAYOUTS, load_dataset, sample_per_class
from .outputs import PLOTS_EXTRA, write_outputs
from .reencode import Reencode, parse_reencode
from .runner import EvalResult, ScoreFn, evaluate, format_table

EXIT_OK = 0
EXIT_NOTHING_SCORED = 1
EXIT_BAD_INPUT = 2


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``eval`` on an ``argparse`` subparsers object; returns the new parser."""
    layouts = "; ".join(f"{name}: {layout.description}" for name, layout in LAYOUTS.items())
    parser = subparsers.add_parser(
        "eval",
        help="measure the detector on a labelled corpus",
        description=(
            "Scan a labelled corpus and report, overall, per source and per fake family: "
            "counts, ROC AUC, EER, average precision, accuracy/precision/recall/FPR at the "
            "model's threshold and calibration error, each with a 95% bootstrap interval."
        ),
    )
    parser.add_argument("data", type=Path, metavar="DATA", help="corpus folder or CSV manifest")
    parser.add_argument(
        "--layout",
        choices=sorted(LAYOUTS),
        help=f"corpus layout (default: detected from marker files). {layouts}",
    )
    parser.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="write metrics.json, metrics.md, scores.csv, roc.png, hist.png",
    )
    parser.add_argument(
        "--bootstrap",
        type=int,
        default=1000,
        metavar="N",
        help="bootstrap resamples for the intervals (0: none; default 1000)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for bootstrap and --limit")
    parser.add_argument(
        "--threshold",
        type=float,
        help="call fake when fake_probability >= this (default: each model card's threshold)",
    )
    parser.add_argument(
        "--split",
        choices=list(ASVSPOOF_SPLITS),
        default="eval",
        help="ASVspoof 2019 LA protocol to evaluate (default eval)",
    )
    parser.add_argument(
        "--limit",
        type=int,
        metavar="N",
        help="at most N reals and N fakes, a fixed random sample (for quick runs)",
    )
    _add_input_options(parser)
    parser.add_argument("--json", action="store_true", help="print metrics.json to stdout")
    parser.set_defaults(func=run)
    return parser


def _add_input_options(parser: argparse.ArgumentParser) -> None:
    """Where a manifest's files are, and how images are prepared before the scan."""
    parser.add_argument(
        "--data-root",
        type=Path,
        metavar="DIR",
        help=(
            "folder a manifest's paths start from (default: the manifest's folder, or "
            "$DEEPFAKESCAN_DATA_ROOT, else ../shared/data, when no listed file is there)"
        ),
    )
    parser.add_argument(
        "--reencode",
        type=_reencode_arg,
        metavar="FORMAT:QUALITY",
        help=(
            "re-encode every image in memory before scanning, e.g. webp:80 or jpeg:75 "
            "(does lossy WebP alone read as fake?); audio and video are scanned as stored"
        ),
    )


def _reencode_arg(text: str) -> Reencode:
    try:
        return parse_reencode(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _scan_score_fn(reencode: Reencode | None = None) -> ScoreFn:
    """The whole pipeline as the score function (imported late: it loads models); with
    ``reencode``, images are scanned as re-encoded bytes (``reencode.scan_input``)."""
    from deepfakescan import Settings, scan

    from .reencode import scan_input

    settings = Settings.from_env()

    def score(path: Path) -> Any:
        return scan(scan_input(path, reencode, settings), settings=settings, name=path.name)

    return score


def _check_args(args: argparse.Namespace) -> str | None:
    if args.bootstrap < 0:
        return "--bootstrap must be 0 or more"
    if args.limit is not None and args.limit < 1:
        return "--limit must be at least 1"
    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
        return "--threshold must lie in [0, 1]"
    return None


def run(args: argparse.Namespace, score_fn: ScoreFn | None = None) -> int:
    """Run ``eval``: 0 when done, 2 on bad input, 1 when not a single file could be scored.

    ``score_fn`` replaces ``deepfakescan.scan`` (tests, or a model evaluated in memory).
    """
    problem = _check_args(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        items = load_dataset(args.data, args.layout, split=args.split, data_root=args.data_root)
    except DeepfakescanError as e:
        print(f"error: {e.message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.limit is not None:
        items = sample_per_class(items, args.limit, seed=args.seed)

    from tqdm import tqdm

    with tqdm(total=len(items), file=sys.stderr, unit="file", desc="eval", disable=None) as bar:
        result = evaluate(
            items,
            score_fn or _scan_score_fn(args.reencode),
            threshold=args.threshold,
            bootstrap=args.bootstrap,
            seed=args.seed,
            progress=lambda done, total: bar.update(1),
        )
    if args.reencode is not None:
        result.notes.append(args.reencode.description)
    written = write_outputs(result, args.out) if args.out is not None else {}
    _print_result(args, result, written)
    if not any(s.scored for s in result.items):
        print("error: no file could be scored; see the errors above", file=sys.stderr)
        return EXIT_NOTHING_SCORED
    return EXIT_OK


def _print_result(args: argparse.Namespace, result: EvalResult, written: dict[str, Path]) -> None:
    """The table (or metrics.json with ``--json``) on stdout, and what ``--out`` wrote."""
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(format_table(result))
        if written:
            print(f"wrote {args.out}/" + ", ".join(p.name for p in written.values()))
    if written and "roc" not in written:
        print(
            "note: roc.png and hist.png were not drawn: matplotlib is not installed"
            f" ({PLOTS_EXTRA})",
            file=sys.stderr,
        )
