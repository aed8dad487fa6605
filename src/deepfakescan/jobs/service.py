"""Glue between an upload and a stored report: save, validate, queue, scan, keep the evidence.

An upload is written under a private directory (0700) with a random name (0600): the client's
file name is only ever a display string. It is checked before it is queued (``pipeline.check``:
size, sniffed type, declared type, image header pixels) so that a bad file is refused at once
with its HTTP status, and deleted when its scan ends, whatever the outcome. What the result
views need (the report and its artifacts: a downscaled preview, heatmaps, thumbnails) is kept
in the store until the retention sweep.

Uploads live under the data directory rather than /tmp so that a scan left queued or running
by a process that died can be picked up again: at the next start in the embedded mode
(``recover``), by another worker when scaled out (``reconcile``; the data directory is then a
volume every web node and worker mounts).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import unicodedata
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from .. import pipeline
from ..config import Settings
from ..errors import (
    Busy,
    DeepfakescanError,
    ScanCancelled,
    StoreUnavailable,
    without_paths,
)
from ..report import Report
from .executor import Executor, ExecutorFactory
from .executor import executor_factory as default_executor_factory
from .running import RunningScan
from .store import ACTIVE, ScanRecord, open_store
from .upload import UploadFile

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 2
"""A scan interrupted by a dying process is run again once; a second death marks it failed."""
SWEEP_INTERVAL_S = 3600.0
OUTCOME_RETRY_S = 1.0
"""A finished scan's outcome is written again this often while the database is away."""
CHUNK = 1024 * 1024
QUEUE_RETRY_AFTER_S = 30
"""What a client refused for a full queue is told to wait (a scan takes seconds to minutes)."""

ScanFn = Callable[..., Report]

_HIDDEN_CATEGORIES = ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")
"""Control characters, format characters (bidi overrides and isolates, zero-width joiners),
surrogates, private use, unassigned, and line/paragraph separators: none belongs in a label,
and a right-to-left override would show ``gpj.exe`` as ``exe.jpg``."""


def display_name(client_name: str | None) -> str:
    """A client's file name made safe to show (never to use as a path)."""
    name = (client_name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if unicodedata.category(c) not in _HIDDEN_CATEGORIES)
    return name.strip()[:200] or "upload"


def public_message(message: str, upload: Path, name: str) -> str:
    """A decoder's words about an upload, fit for its client: the upload's path (even one with
    spaces) and any other absolute path become the client's file name."""
    return without_paths(message.replace(str(upload), name), name)


def warm_models(settings: Settings) -> None:
    """Open every valid model session now, so the first scan does not pay for it.

    Sessions are cached per process and per ``settings.threads``: warm with the settings the
    scans will use.
    """
    from ..detectors.bundle import list_models, load_model

    for info in list_models(settings, verify_sha=False):
        if info.valid:
            try:
                load_model(info.name, settings)
            except DeepfakescanError as e:
                log.warning("model %s not loaded: %s", info.name, e.message)


class ScanService:
    """Owns the store, the executor and the upload directory of one process.

    Parameters
    ----------
    settings
        Limits, data directory, worker count, retention, database and broker.
    scan_fn
        Replaces ``pipeline.scan`` (tests use it to stand in for models not trained yet).
    executor_factory
        ``factory(run_job, workers) -> Executor``; by default threads, or Celery when
        ``settings.broker_url`` is set.
    worker_id
        Recorded on the scans this process runs (``store.start``), so the heartbeat of a scan
        can be told apart from that of another worker that took it over.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        scan_fn: ScanFn | None = None,
        executor_factory: ExecutorFactory | None = None,
        worker_id: str = "local",
    ) -> None:
        self.settings = settings
        self.upload_dir = settings.data_path / "uploads"
        self.upload_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.upload_dir, 0o700)
        self.store = open_store(settings)
        self.worker_id = worker_id
        self.distributed = bool(settings.broker_url)
        """Scans run in worker processes sharing the store, not (only) in this one."""
        self._scan_fn = scan_fn
        self._executor_factory = executor_factory or default_executor_factory(settings)
        self.executor: Executor | None = None
        self._events: dict[str, threading.Event] = {}
        self._events_lock = threading.Lock()
        self._stop = threading.Event()
        self._waking = threading.Event()
        """Set when the process is stopping: requests waiting for scans answer at once."""
        self._sweeper: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, *, sweep_every_s: float | None = SWEEP_INTERVAL_S) -> None:
        """Start the executor, pick up scans a dead process left behind, sweep old artifacts.

        Scaled out, nothing is picked up here: other processes may be running those scans,
        and the workers' reconcilers take over the ones whose worker died.
        """
        self.executor = self._executor_factory(self.run_job, self.settings.workers)
        if not self.distributed:
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

        Embedded mode only (this process is the only one running scans). A running scan is
        retried up to ``MAX_ATTEMPTS`` in all, then marked failed, so a file that crashes the
        process cannot crash it forever. A scan whose upload is gone is failed with a message
        that says so. Upload files no scan refers to are deleted.
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
                    self._give_up(record, record.attempts)
                    continue
                self.store.requeue(record.id)
            requeued.append(record.id)
        referenced = self.store.upload_paths()
        for path in self.upload_dir.iterdir():
            if str(path) not in referenced:
                path.unlink(missing_ok=True)
        return requeued

    def reconcile(self) -> list[str]:
        """Send again the scans nobody is running; return their ids.

        Scaled out, a worker process calls this while it sits idle (``jobs/worker.py``): a
        running scan whose heartbeat is older than ``stale_seconds`` lost its worker, and a scan
        queued for longer than ``requeue_seconds`` while a worker is idle lost its message (a
        broker restarted without persistence). A scan that lost its worker ``MAX_ATTEMPTS``
        times is failed instead, so a file that kills workers cannot kill them all. Sending
        twice is harmless: ``store.start`` lets one delivery run the scan and skips the others.
        """
        resend = []
        for record in self.store.stale_running(self.settings.stale_seconds):
            if record.attempts >= MAX_ATTEMPTS:
                self._give_up(record, record.attempts)
            else:
                resend.append(record.id)
        resend += [r.id for r in self.store.queued_since(self.settings.requeue_seconds)]
        for scan_id in resend:
            self._submit(scan_id)
        return resend

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

    def _give_up(self, record: ScanRecord, deaths: int) -> None:
        """Fail a scan whose workers kept dying under it, and drop its upload."""
        self.store.fail(
            record.id,
            code="interrupted",
            message=f"the server stopped {deaths} times while scanning this file;"
            " it was not retried again",
            status=500,
        )
        if record.upload_path:
            Path(record.upload_path).unlink(missing_ok=True)

    # -- requests ----------------------------------------------------------------------------

    def submit_upload(
        self,
        stream: BinaryIO,
        *,
        client_name: str | None,
        kind: str | None = None,
        owner: str | None = None,
    ) -> ScanRecord:
        """Store, validate and queue one upload read from ``stream``; raise its
        ``DeepfakescanError`` if refused (the file is removed then).

        ``owner`` is the id of the API key uploading it (None without keys). A full queue
        (``max_queued`` scans waiting) refuses the upload with ``Busy`` before it is read.
        """
        pipeline.check_kind(kind)  # before the upload is saved
        with self.new_upload(client_name) as upload:
            while chunk := stream.read(CHUNK):
                upload.write(chunk)
            upload.finish()
            return self.submit_file(upload, kind=kind, owner=owner)

    def new_upload(self, client_name: str | None) -> UploadFile:
        """A new upload file for the web layer to stream a body into (``submit_file`` then).

        Refuses with ``Busy`` when the queue is full, before a byte is written.
        """
        self._check_queue()
        return UploadFile(self.upload_dir, display_name(client_name), self.settings.max_bytes)

    def submit_file(
        self, upload: UploadFile, *, kind: str | None = None, owner: str | None = None
    ) -> ScanRecord:
        """Validate and queue a finished upload; raise its ``DeepfakescanError`` if refused.

        Call it inside ``with upload:`` so that a refusal removes the file; once queued, the
        file belongs to the scan (deleted when the scan ends).
        """
        pipeline.check_kind(kind)
        path, name = upload.finish(), upload.name
        media_type = self._check(path, kind, name)
        scan_id = uuid.uuid4().hex
        if not self.distributed:  # before the scan exists, so no finish is missed
            with self._events_lock:
                self._events[scan_id] = threading.Event()
        try:
            record = self.store.create(
                scan_id,
                source_name=name,
                media_type=media_type,
                declared_kind=kind,
                upload_path=str(path),
                owner=owner,
            )
        except BaseException:
            with self._events_lock:
                self._events.pop(scan_id, None)
            raise
        self._submit(scan_id)
        return record

    def _check_queue(self) -> None:
        queued = self.store.counts()["queued"]
        if queued >= self.settings.max_queued:
            raise Busy(
                f"{queued} scans are waiting, the most this server queues"
                " (DEEPFAKESCAN_MAX_QUEUED): try again shortly",
                retry_after_s=QUEUE_RETRY_AFTER_S,
            )

    def _check(self, path: Path, kind: str | None, name: str) -> str:
        """The upload's media type; a refusal names the client's file, never ``path``."""
        try:
            return pipeline.check(path, kind, settings=self.settings, name=name).kind
        except DeepfakescanError as e:
            e.message = public_message(e.message, path, name)
            e.args = (e.message,)
            raise

    def wait(self, scan_id: str, timeout_s: float) -> ScanRecord | None:
        """The scan once it has finished, or as it stands after ``timeout_s`` seconds (or at
        once when ``stop_waiting`` was called)."""
        with self._events_lock:
            event = self._events.get(scan_id)
        if event is not None:
            if not self._waking.is_set():
                event.wait(timeout_s)
            return self.store.get(scan_id)
        # run by another process (a Celery worker) or already finished: poll the store
        deadline = time.monotonic() + timeout_s
        while True:
            record = self.store.get(scan_id)
            if record is None or record.finished or time.monotonic() >= deadline:
                return record
            if self._waking.wait(0.1):
                return record

    def stop_waiting(self) -> None:
        """Wake every request waiting for a scan, and let none wait from now on.

        Called when the server starts to stop, so that waiting requests answer with their scan
        as it stands (still queued or running: it is picked up again at the next start) and
        do not hold the shutdown for their whole wait.
        """
        self._waking.set()
        with self._events_lock:
            events = list(self._events.values())
        for event in events:
            event.set()

    def cancel_or_delete(self, scan_id: str) -> tuple[ScanRecord | None, bool]:
        """Cancel a queued/running scan (kept in history as cancelled), delete a finished one.

        Returns ``(record, deleted)``: the cancelled record and False, ``(None, True)`` for a
        deleted scan, ``(None, False)`` for an unknown id. Artifacts are removed either way.
        A running scan sees its ``cancelled`` status at its next stage, wherever it runs.
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
        """Run one scan and record its outcome; called by the executor on a worker.

        Any delivery may arrive, twice or late: a finished scan is left alone, one running
        elsewhere with a fresh heartbeat is skipped, a stale one is taken over (``store.start``
        decides). A database that goes away leaves the scan to be taken over when it is back.
        """
        keep_upload, upload = True, None
        try:
            record = self.store.get(scan_id)
            if record is None or record.finished:
                return
            upload = Path(record.upload_path) if record.upload_path else None
            if not self.store.start(
                scan_id, worker=self.worker_id, stale_after_s=self.settings.stale_seconds
            ):
                keep_upload = self._held_elsewhere(scan_id)
                return
            keep_upload = False
            record = self.store.get(scan_id) or record  # with this attempt counted
            if record.attempts > MAX_ATTEMPTS:  # a late delivery of a scan that kills workers
                self._give_up(record, record.attempts - 1)
            elif upload is None or not upload.is_file():
                self.store.fail(
                    scan_id,
                    code="upload_missing",
                    message="the upload is not where this worker looks for it; every web node"
                    " and worker must mount the same DEEPFAKESCAN_DATA_DIR",
                    status=500,
                )
            else:
                keep_upload = self._run(record, upload, is_cancelled)
        except StoreUnavailable as e:
            keep_upload = True  # the scan is taken over once the database is back
            log.warning("scan %s left for later: %s", scan_id, e.message)
        finally:
            if upload is not None and not keep_upload:
                upload.unlink(missing_ok=True)
            self._signal(scan_id)

    def _held_elsewhere(self, scan_id: str) -> bool:
        """After a refused start: True when the scan is still active (another worker has it,
        so its upload must stay), False when it ended (cancelled meanwhile: drop the upload)."""
        current = self.store.get(scan_id)
        return current is not None and current.status in ACTIVE

    def _run(self, record: ScanRecord, upload: Path, is_cancelled: Callable[[], bool]) -> bool:
        """Run the scan and store its outcome; True when the upload must be kept (the scan was
        put back in the queue or taken over)."""
        scan_id, name = record.id, record.source_name
        scan = self._scan_fn or pipeline.scan
        running = RunningScan(
            self.store,
            scan_id,
            self.worker_id,
            heartbeat_s=self.settings.heartbeat_seconds,
            is_cancelled=is_cancelled,
            stopping=self._stop,
        )
        try:
            with running:
                report = scan(
                    upload,
                    kind=record.declared_kind,
                    progress=running.progress,
                    cancel=running.cancel,
                    settings=self.settings,
                    name=record.source_name,
                )
            artifacts = [
                (a.name, a.kind, a.media_type, report.artifact_data[a.name])
                for a in report.artifacts
                if a.name in report.artifact_data
            ]
            outcome = report.to_dict()
            if outcome.get("warnings"):  # decoders' words, which may name the upload's path
                outcome["warnings"] = [public_message(w, upload, name) for w in outcome["warnings"]]
            if self._write_outcome(self.store.finish, scan_id, outcome, artifacts):
                log.info("scan %s done: %s", scan_id, report.verdict)
        except ScanCancelled:
            return self._stopped(running)
        except StoreUnavailable:
            raise
        except DeepfakescanError as e:
            message = public_message(e.message, upload, name)
            self._write_outcome(
                self.store.fail, scan_id, code=e.code, message=message, status=e.status
            )
        except Exception:
            log.exception("scan %s failed unexpectedly", scan_id)
            self._write_outcome(
                self.store.fail,
                scan_id,
                code="internal_error",
                message="the scan failed unexpectedly; the server log has the details",
                status=500,
            )
        return False

    def _stopped(self, running: RunningScan) -> bool:
        """A scan stopped between stages: leave the store as the reason wants it, and say
        where it stopped. True when the upload must be kept."""
        scan_id = running.scan_id
        current = self.store.get(scan_id)
        if current is None or current.status == "cancelled":
            why, keep = "cancelled", False
        elif current.status != "running" or current.worker != self.worker_id:
            why, keep = f"taken over by {current.worker}", True
        elif self._stop.is_set():
            # this process is stopping: run it at the next start, without counting this attempt
            why, keep = "server stopping", self.store.requeue(scan_id, refund_attempt=True)
        else:
            why, keep = "cancelled", False
            self.store.cancel(scan_id)
        log.info(
            "scan %s stopped at stage %r (%.0f %%): %s",
            scan_id,
            running.stage,
            100 * running.fraction,
            why,
        )
        return keep

    def _write_outcome(self, write: Callable[..., bool], *args, **kwargs) -> bool:
        """A finished scan's last write, tried again while the database is away (for up to
        ``stale_seconds``, after which another worker may take the scan over anyway)."""
        deadline = time.monotonic() + self.settings.stale_seconds
        while True:
            try:
                return write(*args, **kwargs)
            except StoreUnavailable:
                if time.monotonic() >= deadline or self._stop.is_set():
                    raise
                time.sleep(OUTCOME_RETRY_S)

    # -- helpers -----------------------------------------------------------------------------

    def _submit(self, scan_id: str) -> None:
        assert self.executor is not None, "ScanService.start() was not called"
        if not self.distributed:
            with self._events_lock:
                self._events.setdefault(scan_id, threading.Event())
        self.executor.submit(scan_id)

    def _signal(self, scan_id: str) -> None:
        with self._events_lock:
            event = self._events.pop(scan_id, None)
        if event is not None:
            event.set()
