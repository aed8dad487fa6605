"""Where scans run: one small interface, an in-process thread pool or Celery workers behind it.

The web layer and the job service only ever call ``submit``, ``cancel`` and ``shutdown``.
``ThreadExecutor`` runs scans in this process (the embedded mode: nothing else to install).
``CeleryExecutor`` sends the scan id to a broker, and ``deepfakescan worker`` processes run
``ScanService.run_job`` for it; its ``cancel`` needs to do nothing, because cancellation is the
store's ``cancelled`` status, which the running job polls between stages wherever it runs.
``executor_factory`` picks one from the settings: a broker URL means Celery.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from ..config import Settings

if TYPE_CHECKING:
    from celery import Celery

log = logging.getLogger(__name__)

CancelCheck = Callable[[], bool]
JobRunner = Callable[[str, CancelCheck], None]
"""``run(job_id, is_cancelled)``: does the work and records the outcome itself."""


class Executor(Protocol):
    """Runs jobs by id; the job's state lives in the store, not in the executor."""

    def submit(self, job_id: str) -> None:
        """Queue a job; returns at once."""

    def cancel(self, job_id: str) -> None:
        """Ask a queued or running job to stop (a running one stops at its next stage)."""

    def shutdown(self, wait: bool = True) -> None:
        """Stop taking jobs (queued ones stay queued in the store); with ``wait``, wait for
        the running ones to return (the service stops them at their next stage)."""


class ThreadExecutor:
    """A fixed pool of daemon threads taking job ids from a FIFO queue.

    Threads, not processes: ONNX Runtime and the decoders release the GIL, and the model
    sessions are loaded once per process and shared. Cancellation is a per-job flag that the
    job polls between stages; a queued job that was cancelled is skipped when dequeued.
    """

    def __init__(self, run: JobRunner, workers: int = 2, *, name: str = "scan-worker") -> None:
        if workers < 1:
            raise ValueError("an executor needs at least one worker")
        self._run = run
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._cancelled: set[str] = set()
        self._lock = threading.Lock()
        self._closed = False
        self._threads = [
            threading.Thread(target=self._loop, name=f"{name}-{i}", daemon=True)
            for i in range(workers)
        ]
        for t in self._threads:
            t.start()

    def submit(self, job_id: str) -> None:
        if self._closed:
            raise RuntimeError("executor is shut down")
        self._queue.put(job_id)

    def cancel(self, job_id: str) -> None:
        with self._lock:
            self._cancelled.add(job_id)

    def is_cancelled(self, job_id: str) -> bool:
        with self._lock:
            return job_id in self._cancelled

    def shutdown(self, wait: bool = True) -> None:
        if self._closed:
            return
        self._closed = True
        for _ in self._threads:
            self._queue.put(None)
        if wait:
            for t in self._threads:
                t.join(timeout=30)

    def _loop(self) -> None:
        while True:
            job_id = self._queue.get()
            if job_id is None:
                return
            if self._closed:
                continue  # shutting down: the job stays queued in the store for the next start
            try:
                if not self.is_cancelled(job_id):
                    self._run(job_id, lambda j=job_id: self.is_cancelled(j))
            except Exception:  # the runner records failures; this is a last resort
                log.exception("job %s crashed its worker loop", job_id)
            finally:
                with self._lock:
                    self._cancelled.discard(job_id)


class CeleryExecutor:
    """Sends scan ids to Celery workers through the broker (``settings.broker_url``).

    ``submit`` never raises for a broker that is away: the scan is already ``queued`` in the
    store, and a worker's reconciler sends it again once the broker is back and a worker sits
    idle (``ScanService.reconcile``). Refusing the upload would lose nothing less.
    """

    def __init__(self, settings: Settings, *, app: Celery | None = None) -> None:
        from .celery_app import make_celery

        self.app = app if app is not None else make_celery(settings)
        self._own_app = app is None

    def submit(self, job_id: str) -> None:
        from .celery_app import TASK_NAME

        try:
            self.app.send_task(TASK_NAME, args=[job_id])
        except Exception as e:  # kombu's OperationalError, socket errors: the broker is away
            log.warning("scan %s stays queued: the broker did not take it (%s)", job_id, e)

    def cancel(self, job_id: str) -> None:
        """Nothing to do: the store's ``cancelled`` status reaches the job wherever it runs."""

    def shutdown(self, wait: bool = True) -> None:
        if self._own_app:
            self.app.close()


ExecutorFactory = Callable[[JobRunner, int], Executor]
"""``factory(run_job, workers) -> Executor``, how ``ScanService`` makes its executor."""


def executor_factory(settings: Settings) -> ExecutorFactory:
    """Celery when a broker is configured, else the in-process thread pool."""
    if settings.broker_url:
        return lambda run, workers: CeleryExecutor(settings)
    return ThreadExecutor
