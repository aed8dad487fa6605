"""Background scans: a SQLite job store, an executor interface and the service that glues them.

``ScanService`` saves and validates an upload, queues it on an ``Executor`` (threads today,
Celery + Redis later: only ``submit``/``cancel``/``shutdown`` cross the seam), runs
``pipeline.scan`` with progress and cancellation, and keeps the report and its artifacts.
"""

from __future__ import annotations

from .executor import Executor, ThreadExecutor
from .service import ScanService, display_name
from .store import STATUSES, JobStore, ScanRecord

__all__ = [
    "STATUSES",
    "Executor",
    "JobStore",
    "ScanRecord",
    "ScanService",
    "ThreadExecutor",
    "display_name",
]
