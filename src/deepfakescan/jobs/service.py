"""Glue between an upload and a stored report: save, validate, queue, scan, keep the evidence.

An upload is written under a private directory (0700) with a random name (0600): the client's
file name is only ever a display string. It is checked before it is queued (``pipeline.check``:
size, sniffed type, declared type, image header pixels) so that a bad file is refused at once
with its HTTP status, and deleted when its scan ends, whatever the outcome. What the result
views need (the report and its artifacts: a downscaled preview, heatmaps, thumbnails) is kept
in the store until the retention sweep.

Uploads live under the data directory rather than /tmp so that a scan left queued or running
by a process that died can be picked up again at the next start (``recover``).
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from .. import pipeline
from ..config import Settings
from ..errors import DeepfakescanError, EmptyInput, ScanCancelled, TooLarge
from ..report import Report
from .executor import Executor, ThreadExecutor
from .store import ACTIVE, JobStore, ScanRecord

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 2
"""A scan interrupted by a dying process is re-queued once; a second death marks it failed."""
PROGRESS_INTERVAL_S = 0.25
CANCEL_POLL_S = 0.5
SWEEP_INTERVAL_S = 3600.0
CHUNK = 1024 * 1024

ScanFn = Callable[..., Report]
ExecutorFactory = Callable[[Callable[[str, Callable[[], bool]], None], int], Executor]

_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f]")


def display_name(client_name: str | None) -> str:
    """A client's file name made safe to show (never to use as a path)."""
    name = (client_name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE_NAME.sub("", name).strip()
    return name[:200] or "upload"


class ScanService:
    """Owns the store, the executor and the upload directory of one server process.

    Parameters
    ----------
    settings
        Limits, data directory, worker count and retention.
    scan_fn
        Replaces ``pipeline.scan`` (tests use it to stand in for models not trained yet).
    executor_factory
        ``factory(run_job, workers) -> Executor``; ``ThreadExecutor`` by default.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        scan_fn: ScanFn | None = None,
        executor_factory: ExecutorFactory | None = None,
    ) -> None:
        self.settings = settings
        self.upload_dir = settings.data_path / "uploads"
        self.upload_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.upload_dir, 0o700)
        self.store = JobStore(settings.db_path)
        self._scan_fn = scan_fn
        self._executor_factory = executor_factory or ThreadExecutor
        self.executor: Executor | None = None
        self._events: dict[str, threading.Event] = {}
        self._events_lock = threading.Lock()
        self._stop = threading.Event()
        self._sweeper: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, *, sweep_every_s: float | None = SWEEP_INTERVAL_S) -> None:
        """Start the workers, pick up scans a dead process left behind, sweep old artifacts."""
        self.executor = self._executor_factory(self.run_job, self.settings.workers)
        for scan_id in self.recover():
            self._submit(scan_id)
        self.sweep()
        if sweep_every_s:
            self._sweeper = threading.Thread(
                target=self._sweep_loop, args=(sweep_every_s,), name="scan-sweeper", daemon=True
            )
            self._sweeper.start()

    def close(self) -> None:
        """Stop the workers and close the store.

        Running scans stop at their next stage boundary and go back to ``queued`` with their
        upload kept, like queued ones, so the next start runs them: a restart loses no scan.
        """
        self._stop.set()
        if self.executor is not None:
            self.executor.shutdown(wait=True)
        self.store.close()

    def recover(self) -> list[str]:
        """Re-queue scans left queued or running by a process that died; return their ids.

        A running scan is retried up to ``MAX_ATTEMPTS`` in all, then marked failed, so a file
        that crashes the process cannot crash it forever. A scan whose upload is gone is failed
        with a message that says so. Upload files no scan refers to are deleted.
        """
        requeued = []
        for record in self.store.active():
            upload = Path(record.upload_path) if record.upload_path else None
            if upload is None or not upload.is_file():
                self.store.fail(
                    record.id,
                    code="interrupted",
                    message="the server stopped before this scan finished and its upload is"
                    " gone; please upload the file again",
                    status=500,
                )
                continue
            if record.status == "running":
                if record.attempts >= MAX_ATTEMPTS:
                    self.store.fail(
                        record.id,
                        code="interrupted",
                        message=f"the server stopped {record.attempts} times while scanning"
                        " this file; it was not retried again",
                        status=500,
                    )
                    upload.unlink(missing_ok=True)
                    continue
                self.store.requeue(record.id)
            requeued.append(record.id)
        referenced = self.store.upload_paths()
        for path in self.upload_dir.iterdir():
            if str(path) not in referenced:
                path.unlink(missing_ok=True)
        return requeued

    def sweep(self) -> int:
        """Delete artifacts older than the retention period; reports and history stay."""
        cutoff = time.time() - self.settings.retention_days * 86400.0
        removed = self.store.delete_artifacts_before(cutoff)
        if removed:
            log.info(
                "retention: removed %d artifacts older than %g days",
                removed,
                self.settings.retention_days,
            )
        return removed

    def _sweep_loop(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            try:
                self.sweep()
            except Exception:
                log.exception("retention sweep failed")

    # -- requests ----------------------------------------------------------------------------

    def submit_upload(
        self, stream: BinaryIO, *, client_name: str | None, kind: str | None = None
    ) -> ScanRecord:
        """Store, validate and queue one upload; raise its ``DeepfakescanError`` if refused."""
        pipeline.check_kind(kind)  # before the upload is saved
        name = display_name(client_name)
        path = self._save(stream, name)
        try:
            media_type = pipeline.check(path, kind, settings=self.settings, name=name).kind
            scan_id = uuid.uuid4().hex
            with self._events_lock:
                self._events[scan_id] = threading.Event()
            record = self.store.create(
                scan_id,
                source_name=name,
                media_type=media_type,
                declared_kind=kind,
                upload_path=str(path),
            )
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        self._submit(scan_id)
        return record

    def wait(self, scan_id: str, timeout_s: float) -> ScanRecord | None:
        """The scan once it has finished, or as it stands after ``timeout_s`` seconds."""
        with self._events_lock:
            event = self._events.get(scan_id)
        if event is not None:
            event.wait(timeout_s)
            return self.store.get(scan_id)
        # not run by this process (another executor) or already finished: poll the store
        deadline = time.monotonic() + timeout_s
        while True:
            record = self.store.get(scan_id)
            if record is None or record.finished or time.monotonic() >= deadline:
                return record
            time.sleep(0.1)

    def cancel_or_delete(self, scan_id: str) -> tuple[ScanRecord | None, bool]:
        """Cancel a queued/running scan (kept in history as cancelled), delete a finished one.

        Returns ``(record, deleted)``: the cancelled record and False, ``(None, True)`` for a
        deleted scan, ``(None, False)`` for an unknown id. Artifacts are removed either way.
        """
        record = self.store.get(scan_id)
        if record is None:
            return None, False
        if record.status in ACTIVE and self.store.cancel(scan_id):
            if self.executor is not None:
                self.executor.cancel(scan_id)
            if record.status == "queued" and record.upload_path:
                Path(record.upload_path).unlink(missing_ok=True)
            self._signal(scan_id)
            return self.store.get(scan_id), False
        return None, self.store.delete(scan_id)

    # -- the job -----------------------------------------------------------------------------

    def run_job(self, scan_id: str, is_cancelled: Callable[[], bool]) -> None:
        """Run one scan and record its outcome; called by the executor on a worker."""
        record = self.store.get(scan_id)
        upload = Path(record.upload_path) if record and record.upload_path else None
        requeued = False
        try:
            if record is None or upload is None or not self.store.start(scan_id):
                return
            requeued = self._run(record, upload, is_cancelled)
        finally:
            if upload is not None and not requeued:
                upload.unlink(missing_ok=True)
            self._signal(scan_id)

    def _run(self, record: ScanRecord, upload: Path, is_cancelled: Callable[[], bool]) -> bool:
        """Run the scan and store its outcome; True when it was put back in the queue."""
        scan_id = record.id
        last = {"write": 0.0, "stage": "", "poll": time.monotonic(), "cancelled": False}

        def progress(fraction: float, stage: str) -> None:
            now = time.monotonic()
            if stage != last["stage"] or now - last["write"] >= PROGRESS_INTERVAL_S:
                last["write"], last["stage"] = now, stage
                self.store.set_progress(scan_id, fraction, stage)

        def user_cancelled() -> bool:
            # the executor's flag is instant; the store's status covers other executors
            if is_cancelled() or last["cancelled"]:
                return True
            now = time.monotonic()
            if now - last["poll"] >= CANCEL_POLL_S:
                last["poll"] = now
                current = self.store.get(scan_id)
                last["cancelled"] = current is None or current.status == "cancelled"
            return last["cancelled"]

        def cancel() -> bool:
            return self._stop.is_set() or user_cancelled()

        scan = self._scan_fn or pipeline.scan
        try:
            report = scan(
                upload,
                kind=record.declared_kind,
                progress=progress,
                cancel=cancel,
                settings=self.settings,
                name=record.source_name,
            )
            artifacts = [
                (a.name, a.kind, a.media_type, report.artifact_data[a.name])
                for a in report.artifacts
                if a.name in report.artifact_data
            ]
            self.store.finish(scan_id, report.to_dict(), artifacts)
        except ScanCancelled:
            if self._stop.is_set() and not user_cancelled():
                # server stopping: run it at the next start, and do not count this attempt
                return self.store.requeue(scan_id, refund_attempt=True)
            self.store.cancel(scan_id)
        except DeepfakescanError as e:
            self.store.fail(scan_id, code=e.code, message=e.message, status=e.status)
        except Exception:
            log.exception("scan %s failed unexpectedly", scan_id)
            self.store.fail(
                scan_id,
                code="internal_error",
                message="the scan failed unexpectedly; the server log has the details",
                status=500,
            )
        return False

    # -- helpers -----------------------------------------------------------------------------

    def _submit(self, scan_id: str) -> None:
        assert self.executor is not None, "ScanService.start() was not called"
        with self._events_lock:
            self._events.setdefault(scan_id, threading.Event())
        self.executor.submit(scan_id)

    def _signal(self, scan_id: str) -> None:
        with self._events_lock:
            event = self._events.pop(scan_id, None)
        if event is not None:
            event.set()

    def _save(self, stream: BinaryIO, name: str) -> Path:
        """Copy the upload to a new private file, refusing it as soon as it is over the limit."""
        path = self.upload_dir / secrets.token_hex(16)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        size = 0
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := stream.read(CHUNK):
                    size += len(chunk)
                    if size > self.settings.max_bytes:
                        raise TooLarge(
                            f"{name}: over the limit of {self.settings.max_bytes} bytes"
                            " (DEEPFAKESCAN_MAX_BYTES)"
                        )
                    out.write(chunk)
            if size == 0:
                raise EmptyInput(f"{name}: the file is empty (0 bytes)")
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path
