"""Scaled-out serving on one machine: Celery workers on Redis and PostgreSQL against embedded.

Starts its own ``redis-server`` and PostgreSQL on free loopback ports in temporary folders
(``tests/services.py``, as the tests do: PostgreSQL with ``fsync=off``, so commit latency is
not what a durable server's would be), then, for each mode in turn, fresh processes:

- ``embedded N``: ``deepfakescan serve --workers N``, SQLite and N scan threads in one process;
- ``celery N``: one ``deepfakescan serve`` web node on the broker and the database, and one
  ``deepfakescan worker --concurrency N`` (N prefork processes), sharing a data folder.

Every scan process runs ONNX Runtime on one thread (``DEEPFAKESCAN_THREADS=1``), so N is the
number of cores doing inference. Per mode: ``--clients`` client threads upload a 640x480 face
JPEG (``POST /api/v1/scans?wait=60``) until ``--scans`` are done (scans/s, p50/p95 from upload
to report), then one client posts ``--idle`` scans one after the other to an idle worker:
queueing overhead is the scan's ``started_at - created_at`` (enqueue to task start) as the
store records it (the API gives it to the millisecond). A second table gives what one scan
costs each part: CPU of the web node, the worker and the clients, the share of all cores busy,
the RSS of each process; in celery modes also Redis memory per queued scan (``--backlog``
scans posted before the worker starts) and PostgreSQL's growth, commits and rows written per
table (what ``docs/scale-out.md`` sizes a cluster with). Modes take turns for
``--rounds`` rounds and the table gives medians, with ratios against embedded measured in the
same run. Never asserts: the issue's bars (2 processes >= 1.6x one; overhead p95 <= 50 ms)
are printed beside the figures.

    python benchmarks/bench_scaleout.py --rounds 2            # ~3 min on 2 cores
    python benchmarks/bench_scaleout.py --scans 60 --idle 10 --rounds 1 --modes celery-1 celery-2
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from bench_web import Load, face_jpeg, free_port, multipart, rss_mb, wait_until_up
from common import load_average, print_table

ROOT = Path(__file__).resolve().parents[1]
MODES = ("embedded-1", "embedded-2", "celery-1", "celery-2")
NAN = float("nan")


@dataclass
class Services:
    """URLs of the broker and the database every celery mode shares."""

    broker_url: str
    database_url: str


@dataclass
class Cluster:
    """The processes of one mode: a web node and, in celery modes, one worker node."""

    web: subprocess.Popen
    port: int
    worker: subprocess.Popen | None
    env: dict


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[int(0.95 * (len(ordered) - 1))] if ordered else float("nan")


def spawn(argv: list[str], env: dict, log: Path) -> subprocess.Popen:
    """``deepfakescan ...`` in its own process group, so that stopping it stops its children.

    Its output goes to ``log``, a file: a pipe nobody reads fills up with a worker's per-task
    log lines and then blocks the worker.
    """
    cmd = [sys.executable, "-m", "deepfakescan.cli", *argv]
    with log.open("ab") as out:
        return subprocess.Popen(
            cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop(proc: subprocess.Popen | None) -> None:
    """SIGTERM to the process group, SIGKILL after 30 s (the group: Celery's pool children)."""
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def wait_for_web(port: int, proc: subprocess.Popen, log: Path, timeout: float = 90.0) -> None:
    """Until the web node answers HTTP (its health may say 503 while no worker is up)."""

    def output() -> str:
        return log.read_text(errors="replace")

    wait_until_up(port, proc, timeout, path="/api/v1/openapi.json", output=output)


def start_cluster(mode: str, services: Services, tmp: Path) -> Cluster:
    """Fresh processes for ``mode`` on a fresh data folder; the celery worker is not started."""
    kind, n = mode.split("-")
    env = dict(os.environ, DEEPFAKESCAN_DATA_DIR=str(tmp / "data"), DEEPFAKESCAN_THREADS="1")
    # the load is the point: no upload rate limit or queue cap
    env.update(DEEPFAKESCAN_UPLOAD_RATE="1000000/minute", DEEPFAKESCAN_MAX_QUEUED="1000000")
    for var in ("DEEPFAKESCAN_BROKER_URL", "DEEPFAKESCAN_DATABASE_URL"):
        env.pop(var, None)
    if kind == "celery":
        env["DEEPFAKESCAN_BROKER_URL"] = services.broker_url
        env["DEEPFAKESCAN_DATABASE_URL"] = services.database_url
    port = free_port()
    web = spawn(["serve", "--port", str(port), "--workers", n], env, tmp / "web.log")
    try:
        wait_for_web(port, web, tmp / "web.log")
    except BaseException:
        stop(web)
        raise
    return Cluster(web, port, None, env)


def start_worker(cluster: Cluster, concurrency: str) -> None:
    log = Path(cluster.env["DEEPFAKESCAN_DATA_DIR"]).parent / "worker.log"
    cluster.worker = spawn(["worker", "--concurrency", concurrency], cluster.env, log)


def post(port: int, body: bytes, headers: dict, query: str = "?wait=60") -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.request("POST", f"/api/v1/scans{query}", body=body, headers=headers)
    response = conn.getresponse()
    return response.status, json.loads(response.read())


def queue_overhead_ms(port: int, body: bytes, headers: dict, n: int) -> list[float]:
    """``started_at - created_at`` of ``n`` scans posted one after another (an idle worker)."""
    out = []
    for _ in range(n):
        status, scan = post(port, body, headers)
        if status != 200 or scan.get("started_at") is None:
            continue
        created = datetime.fromisoformat(scan["created_at"])
        started = datetime.fromisoformat(scan["started_at"])
        out.append((started - created).total_seconds() * 1000.0)
    return out


def redis_queue_bytes(url: str) -> tuple[int, int]:
    """Bytes Redis holds for the scan queue (``MEMORY USAGE``, exact) and its length."""
    import redis

    from deepfakescan.jobs.celery_app import QUEUE

    client = redis.Redis.from_url(url)
    return int(client.memory_usage(QUEUE, samples=0) or 0), int(client.llen(QUEUE))


def pg_counters(url: str) -> dict[str, int]:
    """The database's size, its committed transactions, and rows written to each table.

    Rows are those statements wrote (``pg_stat_user_tables``), not the TOAST chunks that a
    large report or artifact is stored in (their bytes are in the size). Read before a mode
    starts and after its processes exited: a backend sends its statistics when it exits, so
    the difference holds everything the mode did.
    """
    import psycopg

    time.sleep(1.0)  # exiting backends report their statistics asynchronously
    with psycopg.connect(url, autocommit=True) as conn:
        size, commits = conn.execute(
            "SELECT pg_database_size(datname), xact_commit"
            " FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
        tables = conn.execute(
            "SELECT relname, n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables"
            " WHERE relname <> 'alembic_version'"
        ).fetchall()
    return {"bytes": size, "commits": commits, **{f"rows {name}": n for name, n in tables}}


def backlog_bytes(cluster: Cluster, services: Services, body, headers, n: int) -> float:
    """Redis memory per queued scan: ``n`` scans posted while no worker consumes the queue."""
    bytes0, length0 = redis_queue_bytes(services.broker_url)
    for _ in range(n):
        post(cluster.port, body, headers, "")
    bytes1, length1 = redis_queue_bytes(services.broker_url)
    return (bytes1 - bytes0) / (length1 - length0) if length1 > length0 else NAN


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (Celery's prefork pool), from ``/proc/*/stat``."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [pid]
    while frontier:
        children = [c for c, p in parents.items() if p in frontier]
        found += children
        frontier = children
    return found


def cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds of ``pids`` so far (``/proc/PID/stat``)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / os.sysconf("SC_CLK_TCK")


def worker_pids(cluster: Cluster) -> list[int]:
    return [cluster.worker.pid, *descendants(cluster.worker.pid)] if cluster.worker else []


def process_rss(cluster: Cluster) -> dict:
    """RSS of the web node, of the worker's main process and of each of its pool processes."""
    out = {"web_mb": rss_mb(cluster.web.pid), "worker_main_mb": float("nan"), "pool_mb": []}
    if cluster.worker is not None:
        out["worker_main_mb"] = rss_mb(cluster.worker.pid)
        out["pool_mb"] = [rss_mb(pid) for pid in descendants(cluster.worker.pid)]
    return out


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) clock ticks of every CPU so far, from ``/proc/stat``."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = ticks[3] + ticks[4]  # idle, iowait
    return sum(ticks) - idle, sum(ticks)


def load_phase(cluster: Cluster, body: bytes, headers: dict, args, clients: int) -> dict:
    """Warm-up, then ``args.scans`` scans from ``clients`` client threads; CPU per scan.

    The machine's busy share says whether the cores ran out: the clients (this process),
    PostgreSQL and Redis share them with the scan processes.
    """
    Load(cluster.port, body, headers, args.warmup, cluster.web.pid).drive(clients)
    load = Load(cluster.port, body, headers, args.scans, cluster.web.pid)
    web0, workers0 = cpu_s([cluster.web.pid]), cpu_s(worker_pids(cluster))
    client0, (busy0, total0) = time.process_time(), machine_jiffies()
    wall = load.drive(clients)
    client1, (busy1, total1) = time.process_time(), machine_jiffies()
    web1, workers1 = cpu_s([cluster.web.pid]), cpu_s(worker_pids(cluster))
    latencies = [s * 1000.0 for s in load.latencies]
    return {
        "scans_per_s": len(latencies) / wall,
        "p50_ms": statistics.median(latencies),
        "p95_ms": p95(latencies),
        "errors": len(load.errors),
        "first_error": load.errors[0] if load.errors else "",
        "web_cpu_ms": (web1 - web0) * 1000.0 / args.scans,
        "worker_cpu_ms": (workers1 - workers0) * 1000.0 / args.scans,
        "client_cpu_ms": (client1 - client0) * 1000.0 / args.scans,
        "busy_pct": 100.0 * (busy1 - busy0) / max(total1 - total0, 1),
    }


def run_mode(mode: str, args, services: Services, image: bytes) -> dict:
    """One mode on fresh processes: backlog (celery), load, idle queueing overhead, RSS."""
    body, content_type = multipart(image, "face.jpg")
    headers = {"Content-Type": content_type, "Content-Length": str(len(body))}
    kind, n = mode.split("-")
    celery = kind == "celery"
    row: dict = {"mode": mode, "redis_bytes": NAN, "db": {}}
    before = pg_counters(services.database_url) if celery else {}
    with ExitStack() as stack:
        tmp = Path(tempfile.mkdtemp(prefix="bench-scale-"))
        stack.callback(shutil.rmtree, tmp, ignore_errors=True)
        cluster = start_cluster(mode, services, tmp)
        stack.callback(lambda: (stop(cluster.worker), stop(cluster.web)))
        if celery:
            row["redis_bytes"] = backlog_bytes(cluster, services, body, headers, args.backlog)
            start_worker(cluster, n)
        row.update(load_phase(cluster, body, headers, args, max(args.clients, 2 * int(n))))
        row["overhead_ms"] = queue_overhead_ms(cluster.port, body, headers, args.idle)
        row.update(process_rss(cluster))
    if celery:
        after = pg_counters(services.database_url)
        scans = args.backlog + args.warmup + args.scans + args.idle
        row["db"] = {k: (after[k] - before.get(k, 0)) / scans for k in sorted(after)}
    return row


def start_services(stack: ExitStack, modes: list[str]) -> Services:
    """Redis and PostgreSQL from the test suite's helpers, only when a celery mode runs.

    The database is migrated here, so that no mode's per-scan figures count the schema."""
    if not any(m.startswith("celery") for m in modes):
        return Services("", "")
    sys.path.insert(0, str(ROOT))
    from deepfakescan.config import Settings
    from deepfakescan.jobs.store import open_store
    from tests.services import postgres_server, redis_server

    services = Services(stack.enter_context(redis_server()), stack.enter_context(postgres_server()))
    open_store(Settings(database_url=services.database_url)).close()
    return services


def summarise(runs: list[dict]) -> dict:
    """Medians over the rounds of one mode; overheads and pool processes pooled."""
    overheads = [ms for r in runs for ms in r["overhead_ms"]]
    pool = [mb for r in runs for mb in r["pool_mb"]]
    keys = ("scans_per_s", "p50_ms", "p95_ms", "web_mb", "worker_main_mb", "web_cpu_ms")
    keys += ("worker_cpu_ms", "client_cpu_ms", "busy_pct", "redis_bytes")
    out = {k: statistics.median(r[k] for r in runs) for k in keys}
    out["db"] = {k: statistics.median(r["db"].get(k, NAN) for r in runs) for k in runs[0]["db"]}
    out.update(
        errors=sum(r["errors"] for r in runs),
        first_error=next((r["first_error"] for r in runs if r["first_error"]), ""),
        overhead_p50=statistics.median(overheads) if overheads else NAN,
        overhead_p95=p95(overheads),
        pool_mb=statistics.median(pool) if pool else NAN,
    )
    return out


def print_speed(rows: dict[str, dict]) -> None:
    header = ["mode", "scans/s", "x embedded", "p50 ms", "p95 ms", "errors"]
    header += ["queue p50 ms", "queue p95 ms"]
    cells = []
    for mode, r in rows.items():
        base = rows.get(f"embedded-{mode.split('-')[1]}")
        ratio = r["scans_per_s"] / base["scans_per_s"] if base else NAN
        cells.append(
            [mode, f"{r['scans_per_s']:.1f}", f"{ratio:.2f}", f"{r['p50_ms']:.0f}"]
            + [f"{r['p95_ms']:.0f}", r["errors"], f"{r['overhead_p50']:.1f}"]
            + [f"{r['overhead_p95']:.1f}"]
        )
    print_table(header, cells, "<" + ">" * (len(header) - 1))
    for kind in ("embedded", "celery"):
        one, two = rows.get(f"{kind}-1"), rows.get(f"{kind}-2")
        if one and two:
            speedup = two["scans_per_s"] / one["scans_per_s"]
            what = "processes" if kind == "celery" else "scan threads"
            print(f"{kind}: 2 {what} / 1 = {speedup:.2f}x (bar for celery: >= 1.6x)")
    for mode, r in rows.items():
        if mode.startswith("celery"):
            print(f"{mode}: queueing overhead p95 {r['overhead_p95']:.1f} ms (bar <= 50 ms)")
        if r["first_error"]:
            print(f"{mode}: first error: {r['first_error']}")


def print_costs(rows: dict[str, dict]) -> None:
    """What one scan costs each part: the figures docs/scale-out.md sizes a cluster with."""
    header = ["mode", "web CPU ms", "worker CPU ms", "client CPU ms", "busy %", "web RSS MB"]
    header += ["worker main MB", "pool proc MB", "Redis B/queued"]
    cells = [
        [mode, f"{r['web_cpu_ms']:.1f}", f"{r['worker_cpu_ms']:.1f}"]
        + [f"{r['client_cpu_ms']:.1f}", f"{r['busy_pct']:.0f}", f"{r['web_mb']:.0f}"]
        + [f"{r['worker_main_mb']:.0f}", f"{r['pool_mb']:.0f}", f"{r['redis_bytes']:.0f}"]
        for mode, r in rows.items()
    ]
    print("per scan during the load: CPU of each part; busy % of all cores; RSS at the end:")
    print_table(header, cells, "<" + ">" * (len(header) - 1))
    for mode, r in rows.items():
        db = dict(r["db"])
        if db:
            size, commits = db.pop("bytes"), db.pop("commits")
            tables = ", ".join(f"{k.split()[1]} {v:.1f}" for k, v in db.items())
            print(
                f"{mode}: PostgreSQL per scan (whole run): +{size / 1024:.0f} KiB,"
                f" {commits:.1f} commits, rows written: {tables}"
            )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--scans", type=int, default=200, help="scans per mode and round")
    parser.add_argument("--clients", type=int, default=4, help="at least 2 per scan process")
    parser.add_argument("--warmup", type=int, default=8)
    parser.add_argument("--idle", type=int, default=30, help="scans for the queueing overhead")
    parser.add_argument("--backlog", type=int, default=50, help="scans queued with no worker")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args(argv)
    image = face_jpeg()
    runs: dict[str, list[dict]] = {m: [] for m in args.modes}
    with ExitStack() as stack:
        services = start_services(stack, args.modes)
        for _ in range(args.rounds):
            for mode in args.modes:
                runs[mode].append(run_mode(mode, args, services, image))
    rows = {m: summarise(r) for m, r in runs.items()}
    print(f"{load_average()}; 640x480 JPEG, one face; 1 inference thread per scan process")
    print_speed(rows)
    print_costs(rows)


if __name__ == "__main__":
    main()
