"""Scaled out: web nodes and Celery workers on one PostgreSQL and one Redis, with faults.

Everything is real: ``redis-server`` and PostgreSQL from ``tests/services.py``, two
``deepfakescan serve`` processes and two ``deepfakescan worker --concurrency 1`` processes, each
in a process group of its own so that a test can SIGKILL a worker with its pool. Short
heartbeat, stale and requeue intervals (through the settings' environment variables) make a
takeover a matter of seconds. The tests share one cluster (starting it is most of the cost) and
each begins by bringing it back to health.

The fast tests above the cluster check the same promises one level down: the reconciler and a
second delivery against a real store, with an executor that records what it would send (the
``Executor`` interface, not a stand-in for Celery), and the health answer and the start-up
refusals against a broker and a database that are not there.
"""

from __future__ import annotations

import functools
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from deepfakescan.cli import main
from deepfakescan.config import Settings
from deepfakescan.jobs import ScanService
from deepfakescan.jobs.schema import scans
from deepfakescan.jobs.store import open_store
from deepfakescan.web import create_app

from .conftest import brightness_model, face_jpeg, image_card, write_bundle
from .fixtures import make_video
from .services import PostgresServer, RedisServer, free_port, service_dir
from .test_synthetic_detector import red_minus_green_model, synthetic_card

pytest.importorskip("celery")  # the [scale] extra: CI installs it, a bare install skips
from .test_openapi import check_response

TIMEOUT_S = 90.0
INTERVALS = {
    "DEEPFAKESCAN_HEARTBEAT_SECONDS": "1",
    "DEEPFAKESCAN_STALE_SECONDS": "4",
    "DEEPFAKESCAN_REQUEUE_SECONDS": "3",
}


def until(what: str, check, timeout_s: float = TIMEOUT_S, every_s: float = 0.1):
    """Poll ``check()`` until it returns something truthy; fail with ``what`` after timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(every_s)


# ------------------------------------------------------------------------------ HTTP


def http(method: str, url: str, body: bytes | None = None, headers=None) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    return status, json.loads(raw) if raw else {}


def upload(node: str, data: bytes, name: str) -> dict:
    from werkzeug.datastructures import FileStorage
    from werkzeug.test import encode_multipart

    boundary, body = encode_multipart({"file": FileStorage(io.BytesIO(data), filename=name)})
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    status, scan = http("POST", f"{node}/api/v1/scans", body, headers)
    assert status == 202, scan
    return scan


# --------------------------------------------------------------------------- the cluster


class Process:
    """A ``deepfakescan`` command in a process group of its own, its output in a log file."""

    def __init__(self, args: list[str], env: dict, log: Path) -> None:
        self.args, self.env, self.log = args, env, log
        self.popen: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "deepfakescan.cli", *self.args],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill_group(self) -> None:
        """SIGKILL the whole group: a machine lost, with every process of the worker's pool."""
        os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=30)

    def stop(self) -> None:
        if not self.alive:
            return
        os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill_group()

    def output(self) -> str:
        return self.log.read_text(errors="replace")


class Cluster:
    """Two web nodes, two workers, one database, one broker, one shared data directory."""

    def __init__(self, root: Path, postgres: PostgresServer, redis: RedisServer) -> None:
        self.postgres, self.redis = postgres, redis
        write_bundle(root / "models", "image", brightness_model(), image_card())
        # the shipped whole-image model would judge these grey test faces too: a stand-in that
        # finds every whole image real keeps the verdicts the face model's (overrides shipped)
        real_card = synthetic_card(calibration={"method": "platt", "a": 0.0, "b": -10.0})
        write_bundle(root / "models", "image-synthetic", red_minus_green_model(), real_card)
        env = {k: v for k, v in os.environ.items() if not k.startswith("DEEPFAKESCAN_")}
        env.update(INTERVALS)
        env.update(
            DEEPFAKESCAN_DATABASE_URL=postgres.url,
            DEEPFAKESCAN_BROKER_URL=redis.url,
            DEEPFAKESCAN_DATA_DIR=str(root / "data"),
            DEEPFAKESCAN_MODEL_DIR=str(root / "models"),
            DEEPFAKESCAN_VIDEO_FRAMES="96",
            # every test's uploads come from 127.0.0.1 and count together in Redis
            DEEPFAKESCAN_UPLOAD_RATE="100000/minute",
        )
        self.settings = Settings.from_env(env)
        ports = [free_port(), free_port()]
        self.nodes = [f"http://127.0.0.1:{p}" for p in ports]
        self.web = [
            Process(["serve", "--port", str(p), "--threads", "4"], env, root / f"web{i}.log")
            for i, p in enumerate(ports)
        ]
        self.workers = {
            name: Process(
                ["worker", "--concurrency", "1", "--name", f"{name}@test"],
                env,
                root / f"{name}.log",
            )
            for name in ("a", "b")
        }
        self.store = None

    def start(self) -> None:
        for p in [*self.workers.values(), *self.web]:
            p.start()
        for node, process in zip(self.nodes, self.web, strict=True):
            until(f"{node} to answer", lambda n=node, p=process: self._answers(n, p), 60)
        self.store = open_store(self.settings)
        self.healthy()

    def stop(self) -> None:
        for p in [*self.web, *self.workers.values()]:
            p.stop()
        if self.store is not None:
            self.store.close()

    def healthy(self) -> None:
        """Every worker running and seen, every node answering 200: the state a test starts in."""
        for process in self.workers.values():
            if not process.alive:
                process.start()
        for node in self.nodes:
            until(f"{node} healthy", lambda n=node: http("GET", f"{n}/api/v1/health")[0] == 200)
        until("both workers seen", lambda: self.seen_workers() >= {"a", "b"})

    def seen_workers(self) -> set[str]:
        return {w["id"].split("@")[0] for w in self.store.live_workers(3.0)}

    def finished(self, ids: list[str], timeout_s: float = TIMEOUT_S) -> list:
        def done():
            records = [self.store.get(i) for i in ids]
            return records if all(r.finished for r in records) else None

        return until(f"{len(ids)} scans to finish", done, timeout_s, every_s=0.2)

    def logs(self) -> str:
        return "\n".join(p.output() for p in [*self.web, *self.workers.values()])

    @staticmethod
    def _answers(node: str, process: Process) -> bool:
        if not process.alive:
            pytest.fail(f"{node} exited: {process.output()[-3000:]}")
        try:
            http("GET", f"{node}/api/v1/health")
        except OSError:
            return False
        return True


@pytest.fixture(scope="module")
def cluster():
    root = service_dir("deepfakescan-scaleout-")
    with PostgresServer() as postgres, RedisServer() as redis:
        cluster = Cluster(root, postgres, redis)
        try:
            cluster.start()
            yield cluster
        finally:
            cluster.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def healthy(cluster):
    """The cluster, healed; its logs are printed after the test (pytest shows them on failure)."""
    cluster.healthy()
    yield cluster
    print(cluster.logs()[-20000:])


@functools.cache
def video(seconds: float) -> bytes:
    """A 640x480 clip: about 2 s of scanning per 4 s of clip here (96 frames sampled)."""
    return make_video(seconds=seconds, size=(640, 480), fps=30)


# -------------------------------------------------------------------- without a cluster


class Recorder:
    """An executor that only records what it was asked to send (the Executor interface)."""

    def __init__(self, run, workers: int) -> None:
        self.sent: list[str] = []

    def submit(self, job_id: str) -> None:
        self.sent.append(job_id)

    def cancel(self, job_id: str) -> None:
        pass

    def shutdown(self, wait: bool = True) -> None:
        pass


def scaled_service(tmp_path, **settings) -> ScanService:
    """A service as a worker process has it (broker configured), its messages recorded."""
    settings = Settings.from_env(
        data_dir=tmp_path / "data", broker_url=f"redis://127.0.0.1:{free_port()}/0", **settings
    )
    service = ScanService(settings, executor_factory=Recorder, worker_id="w2@test:2")
    service.start(sweep_every_s=None)
    return service


def age(service: ScanService, scan_id: str, **seconds_ago: float) -> None:
    """Move a scan's ``heartbeat_at`` / ``queued_at`` into the past."""
    now = time.time()
    values = {column: now - ago for column, ago in seconds_ago.items()}
    with service.store.engine.begin() as conn:
        conn.execute(scans.update().where(scans.c.id == scan_id).values(**values))


def test_reconcile_resends_stale_and_lost_scans_and_fails_one_that_keeps_killing_workers(
    tmp_path,
):
    service = scaled_service(tmp_path, stale_seconds=60, requeue_seconds=30)
    store = service.store
    try:
        for scan_id in ("fresh", "stale", "deadly", "lost", "waiting"):
            store.create(scan_id, source_name=f"{scan_id}.jpg", media_type="image")
        for scan_id in ("fresh", "stale", "deadly"):
            store.start(scan_id, worker="w1@test:1")
        store.requeue("deadly")
        store.start("deadly", worker="w1@test:1")  # its second worker died too
        age(service, "stale", heartbeat_at=61)
        age(service, "deadly", heartbeat_at=61)
        age(service, "lost", queued_at=31)
        assert sorted(service.reconcile()) == ["lost", "stale"]
        assert sorted(service.executor.sent) == ["lost", "stale"]
        dead = store.get("deadly")
        assert dead.status == "failed" and dead.error_code == "interrupted"
        assert store.get("fresh").status == "running" and store.get("waiting").status == "queued"
    finally:
        service.close()


def test_a_second_delivery_is_skipped_while_its_scan_runs_and_takes_over_once_it_is_stale(
    tmp_path, brightness_model_dir
):
    service = scaled_service(tmp_path, stale_seconds=60)
    store = service.store
    try:
        record = service.submit_upload(io.BytesIO(face_jpeg("bright")), client_name="a.jpg")
        assert store.start(record.id, worker="w1@test:1")  # the first delivery, elsewhere
        service.run_job(record.id, lambda: False)
        held = store.get(record.id)
        assert held.status == "running" and held.worker == "w1@test:1"
        assert Path(record.upload_path).exists()  # still the other worker's to read
        age(service, record.id, heartbeat_at=61)  # that worker died
        service.run_job(record.id, lambda: False)
        done = store.get(record.id)
        assert done.status == "done" and done.attempts == 2 and done.worker == "w2@test:2"
        assert not Path(record.upload_path).exists()
        service.run_job(record.id, lambda: False)  # a late copy of the message
        assert store.get(record.id).attempts == 2  # a finished scan is never redone
    finally:
        service.close()


def test_embedded_health_names_its_parts(tmp_path):
    app = create_app({"SETTINGS": Settings.from_env(data_dir=tmp_path / "data", workers=1)})
    try:
        response = app.test_client().get("/api/v1/health")
        check_response(app, response)
        body = response.get_json()
        assert response.status_code == 200 and body["mode"] == "embedded"
        assert body["down"] == [] and body["workers"] == 1
        assert body["parts"]["database"] == {"up": True, "detail": "sqlite"}
        assert set(body["parts"]) == {"database", "workers"}
    finally:
        app.extensions["deepfakescan"].close()


def test_health_answers_503_naming_a_broker_that_is_down_and_workers_not_seen(tmp_path):
    settings = Settings.from_env(
        data_dir=tmp_path / "data", broker_url=f"redis://127.0.0.1:{free_port()}/0"
    )
    app = create_app({"SETTINGS": settings})
    try:
        response = app.test_client().get("/api/v1/health")
        check_response(app, response)
        body = response.get_json()
        assert response.status_code == 503 and body["status"] == "unavailable"
        assert body["mode"] == "scaled" and body["down"] == ["broker", "workers"]
        assert body["workers"] == 0 and body["parts"]["database"]["up"]
    finally:
        app.extensions["deepfakescan"].close()


@pytest.mark.parametrize(
    ("variable", "url"),
    [
        ("DEEPFAKESCAN_BROKER_URL", "redis://127.0.0.1:{port}/0"),
        ("DEEPFAKESCAN_DATABASE_URL", "postgresql://postgres@127.0.0.1:{port}/postgres"),
    ],
)
def test_serve_refuses_to_start_while_a_configured_part_is_down(
    variable, url, monkeypatch, capsys, tmp_path
):
    monkeypatch.setenv(variable, url.format(port=free_port()))
    assert main(["serve", "--port", str(free_port()), "--data-dir", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: not starting:") and variable in error


def test_worker_without_a_broker_says_which_variable_to_set(monkeypatch, capsys):
    monkeypatch.delenv("DEEPFAKESCAN_BROKER_URL", raising=False)
    assert main(["worker", "--concurrency", "1"]) == 2
    assert "DEEPFAKESCAN_BROKER_URL" in capsys.readouterr().err


# ------------------------------------------------------------------------ with the cluster


@pytest.mark.slow
def test_forty_scans_on_two_nodes_and_two_workers_all_finish_and_read_the_same(healthy):
    cluster = healthy
    tones = ["bright", "dark"]
    images = {tone: face_jpeg(tone) for tone in tones}
    posted = [upload(cluster.nodes[i % 2], images[tones[i % 2]], f"face{i}.jpg") for i in range(40)]
    records = cluster.finished([s["id"] for s in posted])
    assert [r.status for r in records] == ["done"] * 40
    expected = {"bright": "fake", "dark": "real"}
    assert [r.verdict for r in records] == [expected[tones[i % 2]] for i in range(40)]
    assert {r.worker.split("@")[0] for r in records} == {"a", "b"}  # both workers took part
    for scan in posted:
        answers = [http("GET", f"{node}/api/v1/scans/{scan['id']}") for node in cluster.nodes]
        assert answers[0][0] == answers[1][0] == 200
        assert answers[0][1] == answers[1][1] and answers[0][1]["report"] is not None


@pytest.mark.slow
def test_a_worker_killed_mid_scan_loses_no_scan_and_reports_none_twice(healthy):
    cluster = healthy
    clip = video(4)
    ids = [upload(cluster.nodes[i % 2], clip, f"clip{i}.mp4")["id"] for i in range(6)]

    def running_on_a():
        for scan_id in ids:
            r = cluster.store.get(scan_id)
            if r.status == "running" and r.worker.startswith("a@") and r.progress > 0:
                return scan_id
        return None

    victim = until("a scan running on worker a", running_on_a, every_s=0.02)
    cluster.workers["a"].kill_group()
    records = cluster.finished(ids)
    assert [r.status for r in records] == ["done"] * 6
    by_id = {r.id: r for r in records}
    assert by_id[victim].attempts == 2 and by_id[victim].worker.startswith("b@")
    assert all(r.attempts == 1 for r in records if r.id != victim)
    assert len({r.id for r in cluster.store.list(limit=100)[0]} & set(ids)) == 6
    recorded = [i for i in re.findall(r"scan ([0-9a-f]{32}) done", cluster.logs()) if i in ids]
    assert sorted(recorded) == sorted(ids)  # each report recorded once, by one worker


@pytest.mark.slow
def test_scans_queued_when_redis_restarts_finish_after_it_returns(healthy):
    cluster = healthy
    clip = video(4)
    ids = [upload(cluster.nodes[i % 2], clip, f"clip{i}.mp4")["id"] for i in range(6)]
    until(
        "both workers busy",
        lambda: sum(cluster.store.get(i).status == "running" for i in ids) == 2,
        every_s=0.02,
    )
    cluster.redis.stop()  # no persistence: the queued messages are gone
    assert sum(cluster.store.get(i).status == "queued" for i in ids) >= 2
    ids.append(upload(cluster.nodes[0], face_jpeg("bright"), "while-down.jpg")["id"])
    cluster.redis.start()
    records = cluster.finished(ids)
    assert [r.status for r in records] == ["done"] * 7


@pytest.mark.slow
def test_database_down_answers_503_naming_it_and_work_resumes_when_it_returns(healthy):
    cluster = healthy
    node = cluster.nodes[0]
    scan_id = upload(node, video(4), "during.mp4")["id"]
    until("the scan to run", lambda: cluster.store.get(scan_id).status == "running")
    cluster.postgres.stop()
    try:
        status, health = http("GET", f"{node}/api/v1/health")
        assert status == 503 and health["down"] == ["database"]
        assert health["parts"]["database"]["up"] is False and health["parts"]["broker"]["up"]
        status, body = http("GET", f"{cluster.nodes[1]}/api/v1/scans/{scan_id}")
        assert status == 503 and body["error"]["code"] == "store_unavailable"
        status, body = http("GET", f"{node}/api/v1/scans")
        assert status == 503 and body["error"]["code"] == "store_unavailable"
    finally:
        cluster.postgres.start()
    until("health 200 again", lambda: http("GET", f"{node}/api/v1/health")[0] == 200)
    after = upload(node, face_jpeg("dark"), "after.jpg")["id"]
    records = cluster.finished([scan_id, after])
    assert [r.status for r in records] == ["done", "done"]


@pytest.mark.slow
def test_cancel_from_a_web_node_stops_the_scan_running_on_a_worker(healthy):
    cluster = healthy
    scan_id = upload(cluster.nodes[0], video(10), "long.mp4")["id"]

    def running():
        r = cluster.store.get(scan_id)
        return r if r.status == "running" and r.progress > 0 else None

    record = until("the scan to run", running, every_s=0.02)
    status, body = http("DELETE", f"{cluster.nodes[1]}/api/v1/scans/{scan_id}")
    assert status == 200 and body["status"] == "cancelled"
    worker = cluster.workers[record.worker.split("@")[0]]
    stopped = until(
        "the worker to stop the scan",
        lambda: re.search(
            rf"scan {scan_id} stopped at stage '(\w+)' \((\d+) %\): cancelled", worker.output()
        ),
    )
    assert int(stopped.group(2)) < 100
    until("the upload to be dropped", lambda: not Path(record.upload_path).exists())
    final = cluster.store.get(scan_id)
    assert final.status == "cancelled" and final.report is None
