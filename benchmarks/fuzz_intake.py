"""Fuzz the intake: mutated files through ``scan()`` and through the web API, each case in a
long-lived child process that is started again after a crash or a hang.

The promise (issue #23): whatever the bytes, a case ends in a report or in one of our own 4xx
errors: 0 5xx, 0 other exceptions, 0 crashes, 0 hangs, no file left in the temporary or upload
directories, and a report that is strict JSON (no NaN). Mutants come from ``tests/fuzzing.py``
(seeded: a case id such as ``mp4/0/123`` makes the same file again); the suite runs 43 a kind
of them in ``tests/test_fuzz_smoke.py``. Here the shipped models run, as a server runs them.

Before each case the child resets its peak-RSS mark (``/proc/self/clear_refs``), so "max MB"
is the worst single case's peak (the loaded models included), not the run's.

    python benchmarks/fuzz_intake.py                        # 2000 cases over every kind
    python benchmarks/fuzz_intake.py --cases 300 --kinds wav mp4 --no-web
    python benchmarks/fuzz_intake.py --rerun mp4/0/123      # one case here, with a traceback
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

from common import load_average, print_table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests import fuzzing  # noqa: E402  (the seeds and the mutator the suite uses)

STARTUP_S = 120.0
"""Longest wait for a child to load every model and say it is ready."""
PATHS = ("scan", "web")
COLUMNS = ("report", "400", "413", "415", "422", "429", "4xx", "5xx", "exception", "crash", "hang")
"""Outcome columns: a report (HTTP 200), each status, and what must never happen."""


# ---------------------------------------------------------------------------- the child


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field)) / 1024


def _peak_mb() -> float:
    return _status_mb("VmHWM")


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # Linux: VmHWM starts again from the current RSS


def _strict(text: str | bytes) -> dict:
    def refuse(constant: str):
        raise ValueError(f"{constant} in JSON")

    return json.loads(text, parse_constant=refuse)


def _scan_outcome(data: bytes, settings) -> str:
    import deepfakescan
    from deepfakescan.errors import DeepfakescanError

    try:
        _strict(deepfakescan.scan(data, settings=settings, name="upload.bin").to_json())
        return "report"
    except DeepfakescanError as e:
        return str(e.status)
    except Exception as e:  # the promise under test: nothing else escapes
        return f"exception {type(e).__name__}: {e}"[:300]


def _web_outcome(client, data: bytes, wait_s: float) -> str:
    form = {"file": (io.BytesIO(data), "upload.bin")}
    response = client.post(f"/api/v1/scans?wait={wait_s:g}", data=form)
    try:
        _strict(response.data)
    except ValueError as e:
        return f"exception invalid JSON ({response.status_code}): {e}"[:300]
    return "report" if response.status_code == 200 else str(response.status_code)


def _timed(fn, *args) -> tuple[str, float, float, float]:
    """(outcome, seconds, peak MB, MB the peak is above the RSS before) of ``fn(*args)``.

    The process keeps what its allocators and ONNX Runtime's arenas once took, so the peak
    alone mostly shows the process; the rise shows what this one case asked for."""
    _reset_peak()
    before = _status_mb("VmRSS")
    started = time.perf_counter()
    outcome = fn(*args)
    seconds, peak = time.perf_counter() - started, _peak_mb()
    return outcome, seconds, peak, peak - before


def child_main(conn, home: str, web: bool, timeout_s: float) -> None:
    """Load every model (and the web app), then answer cases until the pipe closes."""
    from deepfakescan.config import Settings
    from deepfakescan.jobs.service import warm_models

    home_dir = Path(home)
    (home_dir / "tmp").mkdir(parents=True)
    os.environ["TMPDIR"] = str(home_dir / "tmp")
    tempfile.tempdir = None
    settings = Settings.from_env(
        data_dir=home_dir / "data",
        workers=1,
        upload_rate="1000000/minute",
        max_wait_seconds=timeout_s,
    )
    warm_models(settings)
    client = None
    if web:
        from deepfakescan.web import create_app

        client = create_app({"SETTINGS": settings}).test_client()
    # files made while loading (onnxruntime 1.32 writes $TMPDIR/.ses on import) are not a
    # scan's: the parent counts only what appears after this
    conn.send(("ready", _peak_mb(), sorted(p.name for p in (home_dir / "tmp").iterdir())))
    while True:
        try:
            data = conn.recv()
        except EOFError:
            return
        conn.send(_timed(_scan_outcome, data, settings))
        if client is not None:
            conn.send(_timed(_web_outcome, client, data, timeout_s))


# ---------------------------------------------------------------------------- the parent


class Worker:
    """The parent's handle on one child; a dead or stuck child is replaced at the next case."""

    def __init__(self, root: Path, web: bool, timeout_s: float) -> None:
        self.root, self.web, self.timeout_s = root, web, timeout_s
        self.starts = 0
        self.proc = None
        self.conn = None
        self.loaded_mb = 0.0
        """Peak RSS of a child once every model (and the web app) is loaded."""
        self.found_at_start: set[str] = set()
        """Files the children's temporary directories held before their first case."""

    def _start(self) -> None:
        ctx = mp.get_context("spawn")
        self.conn, theirs = ctx.Pipe()
        self.starts += 1
        home = self.root / f"worker-{self.starts}"
        args = (theirs, str(home), self.web, self.timeout_s)
        self.proc = ctx.Process(target=child_main, args=args, daemon=True)
        self.proc.start()
        theirs.close()
        if not self.conn.poll(STARTUP_S):
            raise SystemExit(f"the worker did not start within {STARTUP_S:g} s")
        _, self.loaded_mb, names = self.conn.recv()
        self.found_at_start |= {f"worker-{self.starts}/tmp/{name}" for name in names}

    def run(self, case: fuzzing.Case) -> dict[str, tuple[str, float, float, float]]:
        """{path: (outcome, seconds, peak MB, rise MB)} for the paths the case reached."""
        if self.proc is None:
            self._start()
        self.conn.send(case.data)
        results = {}
        for path in PATHS[: 2 if self.web else 1]:
            ended = self._answer()
            if isinstance(ended, str):  # "crash ..." or "hang"
                results[path] = (ended, self.timeout_s if ended == "hang" else 0.0, 0.0, 0.0)
                self.stop()
                break
            results[path] = ended
        return results

    def _answer(self):
        try:
            if self.conn.poll(self.timeout_s):
                return self.conn.recv()
        except (EOFError, OSError):
            pass
        self.proc.join(1.0)
        code = self.proc.exitcode
        return "hang" if code is None else f"crash (exit code {code})"

    def stop(self) -> None:
        if self.proc is not None:
            self.conn.close()
            self.proc.join(5.0)
            if self.proc.is_alive():
                self.proc.kill()
                self.proc.join()
        self.proc = self.conn = None


def plan(kinds: list[str], n: int, seed: int) -> list[tuple[str, int]]:
    """(kind, index) of ``n`` cases, the kinds taking turns."""
    return [(kinds[i % len(kinds)], i // len(kinds)) for i in range(n)]


def run_cases(args, root: Path) -> tuple[list[tuple[fuzzing.Case, dict]], Worker]:
    """Every planned case through one worker (restarted as needed); progress on stderr."""
    seeds = fuzzing.seed_files()
    worker = Worker(root, not args.no_web, args.timeout)
    done = []
    started = time.perf_counter()
    try:
        for i, (kind, index) in enumerate(plan(args.kinds, args.cases, args.seed), start=1):
            case = fuzzing.mutant(seeds[kind], kind, index, args.seed)
            done.append((case, worker.run(case)))
            if i % 100 == 0:
                rate = i / (time.perf_counter() - started)
                print(f"  {i}/{args.cases} cases, {rate:.1f}/s", file=sys.stderr, flush=True)
    finally:
        worker.stop()
    return done, worker


# ---------------------------------------------------------------------------- the tables


def column(outcome: str) -> str:
    """The outcome column an outcome counts in."""
    if outcome in COLUMNS:
        return outcome
    if outcome.startswith(("exception", "crash")):
        return outcome.split()[0]
    status = int(outcome)
    return "5xx" if status >= 500 else "4xx"


def failures(done: list[tuple[fuzzing.Case, dict]]) -> list[str]:
    """What broke the promise, one line per case and path."""
    bad = []
    for case, results in done:
        for path, (outcome, *_) in results.items():
            if column(outcome) in ("5xx", "exception", "crash", "hang"):
                bad.append(f"{case.id} {'+'.join(case.mutations)} [{path}]: {outcome}")
    return bad


def outcome_rows(done, kinds: list[str]) -> list[list]:
    rows = []
    for kind in kinds:
        mine = [results for case, results in done if case.kind == kind]
        for path in PATHS:
            counts = Counter(column(r[path][0]) for r in mine if path in r)
            if counts:
                rows.append([kind, path, sum(counts.values())] + [counts[c] for c in COLUMNS])
    return rows


def cost_rows(done, kinds: list[str]) -> list[list]:
    """Per kind and path: the slowest case, the highest peak RSS, the largest rise in it."""
    rows = []
    for kind in kinds:
        mine = [(case, results) for case, results in done if case.kind == kind]
        row = [kind]
        for path in PATHS:
            timed = [(*r[path][1:], c.id) for c, r in mine if path in r]
            if not timed:
                row += ["-", "-", "-"]
                continue
            slow, big, rise = (max(timed, key=lambda t, i=i: t[i]) for i in range(3))
            row += [f"{slow[0]:.2f} ({slow[3]})", f"{big[1]:.0f}", f"{rise[2]:.0f} ({rise[3]})"]
        rows.append(row)
    return rows


def leftovers(root: Path, found_at_start: set[str]) -> list[str]:
    """Files left in the workers' temporary and upload directories by the cases."""
    found = []
    for pattern in ("worker-*/tmp", "worker-*/data/uploads"):
        for directory in root.glob(pattern):
            found += [str(p.relative_to(root)) for p in directory.rglob("*") if p.is_file()]
    return sorted(set(found) - found_at_start)


def report(done, kinds: list[str], root: Path, worker: Worker) -> None:
    print_table(["kind", "path", "cases", *COLUMNS], outcome_rows(done, kinds))
    print()
    header = ["kind"] + [
        f"{path} {column}"
        for path in PATHS
        for column in ("max s (case)", "peak MB", "max rise MB")
    ]
    print_table(header, cost_rows(done, kinds), align="<" * len(header))
    bad = failures(done)
    fives = sum(column(r[0]) == "5xx" for _, results in done for r in results.values())
    left = leftovers(root, worker.found_at_start)
    print(
        f"\n5xx: {fives} (bar 0); promise broken: {len(bad)} (bar 0); files left behind:"
        f" {len(left)} (bar 0); workers started: {worker.starts} (1 unless one crashed or"
        f" hung); a worker with every model loaded: {worker.loaded_mb:.0f} MB"
    )
    for line in bad[:20] + left[:10]:
        print("  " + line)


# ---------------------------------------------------------------------------- main


def rerun(case_id: str) -> None:
    """One case in this process, with the traceback of whatever it raises."""
    import deepfakescan
    from deepfakescan.config import Settings

    kind, seed, index = case_id.split("/")
    case = fuzzing.mutant(fuzzing.seed_files()[kind], kind, int(index), int(seed))
    print(f"{case.id}: {'+'.join(case.mutations)}, {len(case.data)} bytes")
    try:
        result = deepfakescan.scan(case.data, settings=Settings.from_env(), name="upload.bin")
        print(result.to_json())
    except Exception:
        traceback.print_exc()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=2000, help="cases in all (default 2000)")
    parser.add_argument("--kinds", nargs="*", choices=fuzzing.KINDS, default=list(fuzzing.KINDS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds a path may take")
    parser.add_argument("--no-web", action="store_true", help="scan() only")
    parser.add_argument("--rerun", metavar="CASE_ID")
    args = parser.parse_args()
    if args.rerun:
        rerun(args.rerun)
        return
    print(load_average())
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fuzz-intake-") as tmp:
        root = Path(tmp)
        done, worker = run_cases(args, root)
        print(f"{len(done)} cases in {time.perf_counter() - started:.0f} s; {load_average()}")
        report(done, args.kinds, root, worker)


if __name__ == "__main__":
    main()
