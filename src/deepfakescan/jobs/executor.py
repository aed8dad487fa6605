"""Where scans run: one small interface, an in-process thread pool behind it.

The web layer and the job service only ever call ``submit``, ``cancel`` and ``shutdown``, so a
Celery + Redis executor can replace ``ThreadExecutor`` later without touching them: its
``submit`` would send the job id to a task that calls ``ScanService.run_job`` in a worker
process, and its ``cancel`` would rely on the store's ``cancelled`` status, which the job's
cancel hook also reads.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Protocol

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
