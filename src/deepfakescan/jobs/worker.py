"""``deepfakescan worker``: a Celery worker that runs the scans web nodes queue.

Prefork, one scan at a time per process: a scan is CPU-bound Python around ONNX Runtime, so
processes (not threads) use the cores, and a process that crashes takes one scan with it. Each
process, when the pool starts it (``worker_process_init``, not per task):

- opens the store and warms the model sessions, with ONNX Runtime threads = cores / processes
  (at least 1; ``DEEPFAKESCAN_THREADS`` wins when set), so N processes do not fight for cores;
- says it is alive every ``heartbeat_seconds / 2`` (``store.worker_seen``): health counts the
  workers from the store, never by a broadcast ping;
- reconciles every ``requeue_seconds / 2`` while it sits idle (``ScanService.reconcile``):
  scans whose worker died are sent again, and so are scans whose message was lost. Only an
  idle process does it: with a prefetch of 1, a worker idle that long means the broker holds
  nothing for it, so a scan still queued then has no message; and a busy pool, whose queue
  is legitimately long, does not flood the broker with copies.

The main process checks the broker and the database before it starts (a clear error, exit 2)
and migrates the database once, before the pool forks.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import warnings
from dataclasses import replace
from typing import TYPE_CHECKING

from .. import __version__
from ..config import ENV_VARS, Settings
from ..errors import StoreUnavailable
from .celery_app import TASK_NAME, make_celery, ping_broker, redacted
from .executor import CeleryExecutor
from .service import ScanService, warm_models
from .store import open_store

if TYPE_CHECKING:
    from celery import Celery

log = logging.getLogger("deepfakescan.worker")

BROKER_CHECK_TIMEOUT_S = 5.0
PROCESS_START_TIMEOUT_S = 300.0
"""Time a pool process may take to open the store and load the models (Celery's default of 4 s
is too short for a cold disk)."""

_process: WorkerProcess | None = None
"""This pool process's state, made by ``worker_process_init``."""
_process_lock = threading.Lock()


def default_name() -> str:
    return f"deepfakescan@{socket.gethostname()}"


def worker_settings(settings: Settings, concurrency: int) -> Settings:
    """ONNX Runtime threads shared out between the pool's processes (at least 1 each), unless
    ``DEEPFAKESCAN_THREADS`` says otherwise."""
    if os.environ.get(ENV_VARS["threads"]):
        return settings
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return replace(settings, threads=max(1, (cores or 1) // concurrency))


def run_worker(
    settings: Settings, *, concurrency: int | None = None, name: str | None = None
) -> None:
    """Check the broker and the database, then run the Celery worker until it is stopped.

    ``concurrency`` defaults to ``settings.workers``, ``name`` to ``deepfakescan@HOSTNAME``.
    Raises ``ValueError`` without a broker URL, ``BrokerUnavailable`` or ``StoreUnavailable``
    when either does not answer.
    """
    concurrency = settings.workers if concurrency is None else concurrency
    name = name or default_name()
    if concurrency <= 0:
        raise ValueError("--concurrency must be positive")
    if not settings.broker_url:
        raise ValueError(
            "deepfakescan worker takes its scans from a broker: set DEEPFAKESCAN_BROKER_URL"
            " (for example redis://localhost:6379/0) on the web nodes and the workers"
        )
    ping_broker(settings.broker_url, BROKER_CHECK_TIMEOUT_S)
    open_store(settings).close()  # StoreUnavailable: exit 2; migrated once, before the fork
    settings = worker_settings(settings, concurrency)
    app = worker_app(settings, name)
    # Celery warns at every broker reconnection that this default will change; ours is chosen
    # (a running scan goes on while the broker is away: its state is in the store)
    warnings.filterwarnings("ignore", message="(?s).*worker_cancel_long_running_tasks_on_conn")
    print(  # before Celery sets up logging, which would drop a log line here
        f"deepfakescan worker {name}: {concurrency} processes, {settings.threads} ONNX threads"
        f" each, scans from {redacted(settings.broker_url)}",
        flush=True,
    )
    app.worker_main(
        [
            "worker",
            f"--concurrency={concurrency}",
            "--pool=prefork",
            f"--hostname={name}",
            "--loglevel=INFO",
            # gossip, mingle and Celery's own heartbeats serve monitoring we do through the
            # store; without them a worker starts faster and talks less to the broker
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
    )


def worker_app(settings: Settings, name: str) -> Celery:
    """The Celery app with the scan task and the per-process set-up attached."""
    from celery.signals import worker_process_init, worker_process_shutdown

    app = make_celery(settings)
    app.conf.worker_proc_alive_timeout = PROCESS_START_TIMEOUT_S

    @app.task(name=TASK_NAME)
    def scan(scan_id: str) -> None:
        """Run one scan by id; its outcome goes to the store, not to a result backend."""
        _process_state(settings, name, app).run(scan_id)

    def on_init(**_) -> None:
        try:
            _process_state(settings, name, app)
        except StoreUnavailable as e:  # keep trying in the background (tasks try too)
            log.warning("worker process %d started without the store: %s", os.getpid(), e)
            threading.Thread(
                target=_retry_process_state, args=(settings, name, app), daemon=True
            ).start()

    def on_shutdown(**_) -> None:
        if _process is not None:
            _process.close()

    worker_process_init.connect(on_init, weak=False)
    worker_process_shutdown.connect(on_shutdown, weak=False)
    return app


def _process_state(settings: Settings, name: str, app: Celery) -> WorkerProcess:
    """This process's state, made on first use (raises ``StoreUnavailable`` meanwhile)."""
    global _process
    with _process_lock:
        if _process is None:
            warm_models(settings)
            _process = WorkerProcess(settings, name, app)
        return _process


def _retry_process_state(settings: Settings, name: str, app: Celery) -> None:
    """Until the store answers: without this a process started during a database outage would
    never reconcile nor say it is alive until a message reached it."""
    while True:
        time.sleep(settings.requeue_seconds / 2)
        try:
            _process_state(settings, name, app)
            return
        except StoreUnavailable:
            continue


class WorkerProcess:
    """One pool process: its scan service, and the threads that keep it visible and tidy."""

    def __init__(self, settings: Settings, name: str, app: Celery) -> None:
        self.id = f"{name}:{os.getpid()}"
        self.settings = settings
        self.service = ScanService(
            settings,
            worker_id=self.id,
            executor_factory=lambda run, workers: CeleryExecutor(settings, app=app),
        )
        self.service.start(sweep_every_s=None)
        self.running: str | None = None
        self.scans = 0
        self.idle_since = time.monotonic()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._alive_loop, name="worker-alive", daemon=True),
            threading.Thread(target=self._reconcile_loop, name="worker-reconcile", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def run(self, scan_id: str) -> None:
        self.running = scan_id
        try:
            self.service.run_job(scan_id, _never)
        finally:
            self.running = None
            self.scans += 1
            self.idle_since = time.monotonic()

    def info(self) -> dict:
        """What health and an operator see of this process."""
        return {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "version": __version__,
            "threads": self.settings.threads,
            "running": self.running,
            "scans": self.scans,
        }

    def close(self) -> None:
        self._stop.set()
        self.service.close()

    def _alive_loop(self) -> None:
        every = self.settings.heartbeat_seconds / 2
        while True:
            try:
                self.service.store.worker_seen(self.id, self.info())
            except StoreUnavailable as e:
                log.warning("worker %s: not recorded as alive: %s", self.id, e.message)
            if self._stop.wait(every):
                return

    def _reconcile_loop(self) -> None:
        every = self.settings.requeue_seconds / 2
        while not self._stop.wait(every):
            if self.running is not None or time.monotonic() - self.idle_since < every:
                continue
            try:
                sent = self.service.reconcile()
            except StoreUnavailable as e:
                log.warning("worker %s: reconcile skipped: %s", self.id, e.message)
            except Exception:
                log.exception("worker %s: reconcile failed", self.id)
            else:
                if sent:
                    log.info("worker %s: sent %d scans again: %s", self.id, len(sent), sent)


def _never() -> bool:
    """A Celery task has no cancel flag of its own: cancellation comes through the store."""
    return False
