"""Background scans: the thread executor and the service's promises (the store's own are in
test_store.py, on SQLite and PostgreSQL).

No scan is silently lost across a restart, uploads are private and short-lived, cancelled
scans stay cancelled, and artifacts expire while the history stays.
"""

from __future__ import annotations

import io
import stat
import threading
import time

import pytest

from deepfakescan.config import Settings
from deepfakescan.errors import ScanCancelled
from deepfakescan.jobs import ScanService, ThreadExecutor, display_name
from deepfakescan.jobs.service import MAX_ATTEMPTS

from .conftest import face_jpeg, solid_jpeg


def make_service(tmp_path, *, start: bool = True, **kw) -> ScanService:
    settings = Settings.from_env(data_dir=tmp_path / "data", workers=1)
    service = ScanService(settings, **kw)
    if start:
        service.start(sweep_every_s=None)
    return service


def leave_behind(tmp_path, *, running: bool, attempts: int = 1) -> str:
    """What a process killed mid-scan leaves: a stored upload and a queued/running row."""
    service = make_service(tmp_path, start=False)
    upload = service.upload_dir / "0123abcd"
    upload.write_bytes(face_jpeg("bright"))
    service.store.create("a" * 32, source_name="x.jpg", media_type="image", upload_path=str(upload))
    for _ in range(attempts if running else 0):
        service.store.requeue("a" * 32)
        service.store.start("a" * 32)
    service.store.close()
    return "a" * 32


# ----------------------------------------------------------------------- restart recovery


def test_scan_left_running_by_a_dead_process_is_requeued_and_finishes(
    tmp_path, brightness_model_dir
):
    scan_id = leave_behind(tmp_path, running=True)
    service = make_service(tmp_path)
    try:
        record = service.wait(scan_id, 60)
        assert record.status == "done" and record.report["verdict"] == "fake"
        assert record.attempts == 2
        assert list(service.upload_dir.iterdir()) == []
    finally:
        service.close()


def test_scan_left_queued_is_picked_up_at_start(tmp_path, brightness_model_dir):
    scan_id = leave_behind(tmp_path, running=False)
    service = make_service(tmp_path)
    try:
        assert service.wait(scan_id, 60).status == "done"
    finally:
        service.close()


def test_scan_interrupted_too_often_is_marked_failed_not_retried_forever(tmp_path):
    scan_id = leave_behind(tmp_path, running=True, attempts=MAX_ATTEMPTS)
    service = make_service(tmp_path)
    try:
        record = service.store.get(scan_id)
        assert record.status == "failed" and record.error_code == "interrupted"
        assert list(service.upload_dir.iterdir()) == []
    finally:
        service.close()


def test_scan_whose_upload_vanished_is_failed_with_the_reason(tmp_path):
    scan_id = leave_behind(tmp_path, running=True)
    for f in (tmp_path / "data" / "uploads").iterdir():
        f.unlink()
    service = make_service(tmp_path)
    try:
        record = service.store.get(scan_id)
        assert record.status == "failed" and "upload the file again" in record.error_message
    finally:
        service.close()


def test_stray_upload_files_are_removed_at_start(tmp_path):
    service = make_service(tmp_path, start=False)
    (service.upload_dir / "stray").write_bytes(b"left by a crash before the row existed")
    service.store.close()
    service = make_service(tmp_path)
    try:
        assert list(service.upload_dir.iterdir()) == []
    finally:
        service.close()


def test_stopping_the_server_puts_running_and_queued_scans_back_for_the_next_start(
    tmp_path, brightness_model_dir
):
    started = threading.Event()

    def until_stopped(path, *, cancel=None, **kw):
        started.set()
        while not cancel():
            time.sleep(0.01)
        raise ScanCancelled("the scan was cancelled")

    service = make_service(tmp_path, scan_fn=until_stopped)
    running = service.submit_upload(io.BytesIO(face_jpeg("bright")), client_name="a.jpg")
    waiting = service.submit_upload(io.BytesIO(face_jpeg("dark")), client_name="b.jpg")
    assert started.wait(10)
    service.close()
    again = make_service(tmp_path)  # the real pipeline this time
    try:
        finished = again.wait(running.id, 60)
        assert finished.report["verdict"] == "fake"
        assert finished.attempts == 1  # a clean stop does not count towards the retry limit
        assert again.wait(waiting.id, 60).report["verdict"] == "real"
    finally:
        again.close()


# -------------------------------------------------------------------------------- uploads


def test_upload_is_private_randomly_named_and_deleted_when_the_scan_ends(tmp_path):
    seen = {}

    def inspect(path, *, name=None, **kw):
        seen["mode"] = stat.S_IMODE(path.stat().st_mode)
        seen["dir_mode"] = stat.S_IMODE(path.parent.stat().st_mode)
        seen["name"], seen["label"] = path.name, name
        raise RuntimeError("stop here")

    service = make_service(tmp_path, scan_fn=inspect)
    try:
        record = service.submit_upload(io.BytesIO(solid_jpeg(9)), client_name="..\\me.jpg")
        assert service.wait(record.id, 60).status == "failed"
        assert seen["mode"] == 0o600 and seen["dir_mode"] == 0o700
        assert len(seen["name"]) == 32 and "me" not in seen["name"]
        assert seen["label"] == "me.jpg"
        assert list(service.upload_dir.iterdir()) == []
    finally:
        service.close()


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("photo.jpg", "photo.jpg"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\clip.mp4", "clip.mp4"),
        ("bad\x00name\n.wav", "badname.wav"),
        ("invoice\u202egpj.exe", "invoicegpj.exe"),  # a right-to-left override shows exe.jpg
        ("a\u2066b\u2069\u200b\ufeffc\u2028.png", "abc.png"),  # isolates, zero-width, separator
        ("Привет 写真 ☀.jpg", "Привет 写真 ☀.jpg"),  # scripts and symbols stay
        ("", "upload"),
        (None, "upload"),
        ("x" * 500, "x" * 200),
    ],
)
def test_client_file_names_become_display_labels_only(raw, shown):
    assert display_name(raw) == shown


# ------------------------------------------------------------------------------ retention


def test_retention_sweep_drops_old_artifacts_and_keeps_the_history(tmp_path, brightness_model_dir):
    service = make_service(tmp_path)
    try:
        record = service.submit_upload(io.BytesIO(solid_jpeg(250)), client_name="a.jpg")
        assert service.wait(record.id, 60).artifacts
        assert service.sweep() == 0
        service.settings = Settings.from_env(data_dir=tmp_path / "data", retention_days=1e-9)
        time.sleep(0.01)
        assert service.sweep() == 1
        kept = service.store.get(record.id)
        assert kept.artifacts == [] and kept.report["verdict"] == "uncertain"
    finally:
        service.close()


# ------------------------------------------------------------------------------- executor


def test_thread_executor_skips_a_job_cancelled_while_queued():
    ran: list[str] = []
    gate, started = threading.Event(), threading.Event()

    def run(job_id, is_cancelled):
        started.set()
        gate.wait(5)
        ran.append(job_id)

    executor = ThreadExecutor(run, workers=1)
    executor.submit("first")  # holds the only worker until the gate opens
    assert started.wait(5)
    executor.submit("second")
    executor.submit("third")
    executor.cancel("second")
    gate.set()
    deadline = time.monotonic() + 5
    while len(ran) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    executor.shutdown(wait=True)
    assert ran == ["first", "third"]


def test_thread_executor_shutdown_leaves_queued_jobs_for_the_next_start():
    ran: list[str] = []
    gate, started = threading.Event(), threading.Event()

    def run(job_id, is_cancelled):
        started.set()
        gate.wait(5)
        ran.append(job_id)

    executor = ThreadExecutor(run, workers=1)
    executor.submit("running")
    assert started.wait(5)
    executor.submit("queued")
    threading.Timer(0.2, gate.set).start()
    executor.shutdown(wait=True)
    assert ran == ["running"]


def test_thread_executor_hands_the_running_job_its_cancel_flag():
    flags: list[bool] = []
    started = threading.Event()

    def run(job_id, is_cancelled):
        started.set()
        deadline = time.monotonic() + 5
        while not is_cancelled() and time.monotonic() < deadline:
            time.sleep(0.005)
        flags.append(is_cancelled())

    executor = ThreadExecutor(run, workers=1)
    executor.submit("job")
    assert started.wait(5)
    executor.cancel("job")
    executor.shutdown(wait=True)
    assert flags == [True]
