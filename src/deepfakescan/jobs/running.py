"""A running scan's line to the store: progress, the cancel check and the heartbeat.

Whatever process runs a scan (a thread of ``deepfakescan serve``, a Celery worker process),
everything about it that other processes need goes through the job store, so any web node can
answer for any scan: progress is written a few times a second, the ``cancelled`` status is read
between stages, and a heartbeat thread tells the store every ``heartbeat_seconds`` that the
scan's worker is alive. When the heartbeat is refused (the scan was cancelled, or another worker
took it over because this one looked dead) the scan stops at its next stage.

A database that goes away must not kill the scan: failed progress writes and polls are skipped
(the scan keeps going), failed heartbeats are tried again at the next beat.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from ..errors import StoreUnavailable
from .store import JobStore

log = logging.getLogger(__name__)

PROGRESS_INTERVAL_S = 0.25
"""Progress is written at most this often (and at every new stage)."""
CANCEL_POLL_S = 0.5
"""The store's status is read at most this often by the cancel check."""


class RunningScan:
    """Progress, cancellation and heartbeat of one scan, used as a context manager.

    Parameters
    ----------
    store, scan_id, worker
        Where the scan lives and who runs it (``store.start`` recorded ``worker``).
    heartbeat_s
        Seconds between heartbeats.
    is_cancelled
        The executor's own cancel flag (instant in the embedded mode).
    stopping
        Set when this process is shutting down: the scan stops at its next stage too.
    """

    def __init__(
        self,
        store: JobStore,
        scan_id: str,
        worker: str,
        *,
        heartbeat_s: float,
        is_cancelled: Callable[[], bool],
        stopping: threading.Event,
    ) -> None:
        self.store, self.scan_id, self.worker = store, scan_id, worker
        self.heartbeat_s = heartbeat_s
        self.lost = threading.Event()
        """The heartbeat was refused: the scan is cancelled, finished or someone else's."""
        self.stage, self.fraction = "starting", 0.0
        self._is_cancelled = is_cancelled
        self._stopping = stopping
        self._done = threading.Event()
        self._last_write = 0.0
        self._last_poll = time.monotonic()
        self._cancelled = False
        self._store_away = False
        self._beat = threading.Thread(target=self._beat_loop, name=f"heartbeat-{scan_id[:8]}")
        self._beat.daemon = True

    def __enter__(self) -> RunningScan:
        self._beat.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._done.set()
        self._beat.join(timeout=5)

    def progress(self, fraction: float, stage: str) -> None:
        """``scan(progress=...)``: written when the stage changes, else at most 4 times a second."""
        now = time.monotonic()
        if stage == self.stage and now - self._last_write < PROGRESS_INTERVAL_S:
            return
        self._last_write, self.stage, self.fraction = now, stage, fraction
        try:
            self.store.set_progress(self.scan_id, fraction, stage)
        except StoreUnavailable as e:
            self._away(e)
        else:
            self._back()

    def cancel(self) -> bool:
        """``scan(cancel=...)``: stop for a user's cancel, a lost heartbeat or a shutdown."""
        return self._stopping.is_set() or self.lost.is_set() or self.user_cancelled()

    def user_cancelled(self) -> bool:
        """The executor's flag (instant), else the store's status read every ``CANCEL_POLL_S``:
        a cancel sent to any web node reaches the scan wherever it runs."""
        if self._is_cancelled() or self._cancelled:
            return True
        now = time.monotonic()
        if now - self._last_poll >= CANCEL_POLL_S:
            self._last_poll = now
            try:
                current = self.store.get(self.scan_id)
            except StoreUnavailable:
                return False  # keep scanning; the store is asked again at the next poll
            self._cancelled = current is None or current.status == "cancelled"
        return self._cancelled

    def _beat_loop(self) -> None:
        while not self._done.wait(self.heartbeat_s):
            try:
                if not self.store.heartbeat(self.scan_id, self.worker):
                    self.lost.set()
                    return
            except StoreUnavailable as e:
                self._away(e)

    def _away(self, e: StoreUnavailable) -> None:
        if not self._store_away:  # once per outage, not at every frame
            self._store_away = True
            log.warning("scan %s goes on without saving progress: %s", self.scan_id, e.message)

    def _back(self) -> None:
        if self._store_away:
            self._store_away = False
            log.info("scan %s: the store answers again", self.scan_id)
