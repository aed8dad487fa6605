"""Background scans: a job store, an executor interface and the service that glues them.

``ScanService`` saves and validates an upload, queues it on an ``Executor`` (this process's
threads, or Celery workers on a broker: only ``submit``/``cancel``/``shutdown`` cross the
seam), runs ``pipeline.scan`` with progress, cancellation and a heartbeat (``running.py``), and
keeps the report and its artifacts in the store (SQLite, or PostgreSQL shared by every node).
``worker.py`` is ``deepfakescan worker``; ``health.py`` says which parts are up.
"""

from __future__ import annotations

from .executor import CeleryExecutor, Executor, ThreadExecutor
from .keys import ApiKey, KeyRing
from .service import ScanService, display_name
from .store import STATUSES, JobStore, ScanRecord

__all__ = [
    "STATUSES",
    "ApiKey",
    "CeleryExecutor",
    "Executor",
    "JobStore",
    "KeyRing",
    "ScanRecord",
    "ScanService",
    "ThreadExecutor",
    "display_name",
]
