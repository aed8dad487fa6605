"""Scans, their reports and their artifacts in one SQLite file, so history survives a restart.

Why SQLite: ``deepfakescan serve`` must run with nothing else installed, and one file is easy to
back up or delete. WAL mode lets the HTTP threads read while a worker writes; each thread gets
its own connection (``sqlite3`` connections must not be shared across threads). Artifacts are
BLOBs keyed by (scan id, artifact name): no file name, from a client or a model, ever becomes a
path, and deleting a scan deletes its evidence in the same transaction.

State machine: ``queued -> running -> done | failed | cancelled``; ``queued -> cancelled``.
Every transition is a conditional UPDATE, so a scan cancelled while it runs is never overwritten
with ``done`` by the worker that finishes a moment later.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

STATUSES = ("queued", "running", "done", "failed", "cancelled")
ACTIVE = ("queued", "running")
FINISHED = ("done", "failed", "cancelled")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS scans (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    progress REAL NOT NULL DEFAULT 0,
    stage TEXT NOT NULL DEFAULT 'queued',
    source_name TEXT NOT NULL,
    declared_kind TEXT,
    media_type TEXT,
    upload_path TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    verdict TEXT,
    fake_probability REAL,
    report TEXT,
    error_code TEXT,
    error_message TEXT,
    error_status INTEGER,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL
);
CREATE INDEX IF NOT EXISTS scans_created ON scans (created_at DESC);
CREATE TABLE IF NOT EXISTS artifacts (
    scan_id TEXT NOT NULL REFERENCES scans (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    media_type TEXT NOT NULL,
    data BLOB NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (scan_id, name)
);
"""


@dataclass
class ScanRecord:
    """One row of ``scans``; ``report`` is the parsed ``Report.to_dict()`` when done."""

    id: str
    status: str
    progress: float
    stage: str
    source_name: str
    declared_kind: str | None
    media_type: str | None
    upload_path: str | None
    attempts: int
    verdict: str | None
    fake_probability: float | None
    report: dict | None
    error_code: str | None
    error_message: str | None
    error_status: int | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    artifacts: list[dict] = field(default_factory=list)
    """Artifacts still stored: ``{"name", "kind", "media_type"}`` (retention removes them)."""

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


@dataclass(frozen=True)
class StoredArtifact:
    name: str
    kind: str
    media_type: str
    data: bytes


class JobStore:
    """SQLite-backed scan store, safe to use from many threads (one connection per thread)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._db().executescript(_SCHEMA)  # executescript manages its own transaction

    # -- connections -------------------------------------------------------------------------

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            # used by one thread only; check_same_thread=False lets close() run at shutdown
            db = sqlite3.connect(
                self.path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            self._local.db = db
            with self._lock:
                self._connections.append(db)
        return db

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; ``BEGIN IMMEDIATE`` so writers queue instead of deadlocking."""
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def close(self) -> None:
        """Close every thread's connection (at shutdown; the store is unusable afterwards)."""
        with self._lock:
            for db in self._connections:
                db.close()
            self._connections.clear()
        self._local = threading.local()

    # -- writes ------------------------------------------------------------------------------

    def create(
        self,
        scan_id: str,
        *,
        source_name: str,
        media_type: str | None,
        declared_kind: str | None = None,
        upload_path: str | None = None,
    ) -> ScanRecord:
        with self._tx() as db:
            db.execute(
                "INSERT INTO scans (id, status, source_name, media_type, declared_kind,"
                " upload_path, created_at) VALUES (?, 'queued', ?, ?, ?, ?, ?)",
                (scan_id, source_name, media_type, declared_kind, upload_path, time.time()),
            )
        record = self.get(scan_id)
        assert record is not None
        return record

    def start(self, scan_id: str) -> bool:
        """queued -> running; False if the scan is gone or no longer queued (cancelled)."""
        with self._tx() as db:
            cur = db.execute(
                "UPDATE scans SET status='running', stage='starting', started_at=?,"
                " attempts=attempts+1 WHERE id=? AND status='queued'",
                (time.time(), scan_id),
            )
            return cur.rowcount == 1

    def set_progress(self, scan_id: str, fraction: float, stage: str) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE scans SET progress=?, stage=? WHERE id=? AND status='running'",
                (float(fraction), stage, scan_id),
            )

    def finish(
        self,
        scan_id: str,
        report: dict,
        artifacts: Iterable[tuple[str, str, str, bytes]] = (),
    ) -> bool:
        """running -> done with the report and its artifacts ``(name, kind, media_type, data)``.

        False (and nothing stored) when the scan was cancelled or deleted meanwhile.
        """
        now = time.time()
        with self._tx() as db:
            cur = db.execute(
                "UPDATE scans SET status='done', progress=1, stage='done', report=?, verdict=?,"
                " fake_probability=?, media_type=?, upload_path=NULL, finished_at=?"
                " WHERE id=? AND status='running'",
                (
                    json.dumps(report),
                    report.get("verdict"),
                    report.get("fake_probability"),
                    report.get("media", {}).get("type"),
                    now,
                    scan_id,
                ),
            )
            if cur.rowcount != 1:
                return False
            db.executemany(
                "INSERT OR REPLACE INTO artifacts (scan_id, name, kind, media_type, data,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?)",
                [(scan_id, n, k, m, sqlite3.Binary(d), now) for n, k, m, d in artifacts],
            )
            return True

    def fail(self, scan_id: str, *, code: str, message: str, status: int) -> bool:
        """queued/running -> failed, with the error a client will see."""
        with self._tx() as db:
            cur = db.execute(
                "UPDATE scans SET status='failed', stage='failed', error_code=?,"
                " error_message=?, error_status=?, upload_path=NULL, finished_at=?"
                " WHERE id=? AND status IN ('queued', 'running')",
                (code, message, int(status), time.time(), scan_id),
            )
            return cur.rowcount == 1

    def cancel(self, scan_id: str) -> bool:
        """queued/running -> cancelled, dropping any artifacts; False if already finished."""
        with self._tx() as db:
            cur = db.execute(
                "UPDATE scans SET status='cancelled', stage='cancelled', upload_path=NULL,"
                " finished_at=? WHERE id=? AND status IN ('queued', 'running')",
                (time.time(), scan_id),
            )
            db.execute("DELETE FROM artifacts WHERE scan_id=?", (scan_id,))
            return cur.rowcount == 1

    def requeue(self, scan_id: str, *, refund_attempt: bool = False) -> bool:
        """running -> queued: its process died under it, or it is stopping (``refund_attempt``,
        so a clean restart does not count towards the retry limit)."""
        with self._tx() as db:
            cur = db.execute(
                "UPDATE scans SET status='queued', stage='queued', progress=0,"
                " attempts=attempts-? WHERE id=? AND status='running'",
                (int(refund_attempt), scan_id),
            )
            return cur.rowcount == 1

    def delete(self, scan_id: str) -> bool:
        with self._tx() as db:
            db.execute("DELETE FROM artifacts WHERE scan_id=?", (scan_id,))
            return db.execute("DELETE FROM scans WHERE id=?", (scan_id,)).rowcount == 1

    def delete_artifacts_before(self, cutoff: float) -> int:
        """Drop artifacts made before ``cutoff`` (retention); reports and history stay."""
        with self._tx() as db:
            return db.execute("DELETE FROM artifacts WHERE created_at < ?", (cutoff,)).rowcount

    # -- reads -------------------------------------------------------------------------------

    def get(self, scan_id: str) -> ScanRecord | None:
        db = self._db()
        row = db.execute("SELECT * FROM scans WHERE id=?", (scan_id,)).fetchone()
        if row is None:
            return None
        record = _record(row)
        record.artifacts = [
            dict(a)
            for a in db.execute(
                "SELECT name, kind, media_type FROM artifacts WHERE scan_id=? ORDER BY name",
                (scan_id,),
            )
        ]
        return record

    def list(self, *, limit: int = 20, offset: int = 0) -> tuple[list[ScanRecord], int]:
        """A page of history, newest first, without reports (they can be large), and the total."""
        db = self._db()
        total = db.execute("SELECT COUNT(*) FROM scans").fetchone()[0]
        rows = db.execute(
            "SELECT id, status, progress, stage, source_name, declared_kind, media_type,"
            " upload_path, attempts, verdict, fake_probability, NULL AS report, error_code,"
            " error_message, error_status, created_at, started_at, finished_at"
            " FROM scans ORDER BY created_at DESC, rowid DESC LIMIT ? OFFSET ?",
            (limit, offset),
        ).fetchall()
        return [_record(r) for r in rows], total

    def active(self) -> list[ScanRecord]:
        """Scans queued or running, oldest first (what a restarting server must pick up)."""
        rows = self._db().execute(
            "SELECT * FROM scans WHERE status IN ('queued', 'running') ORDER BY created_at"
        )
        return [_record(r) for r in rows]

    def upload_paths(self) -> set[str]:
        rows = self._db().execute("SELECT upload_path FROM scans WHERE upload_path IS NOT NULL")
        return {r[0] for r in rows}

    def artifact(self, scan_id: str, name: str) -> StoredArtifact | None:
        row = (
            self._db()
            .execute(
                "SELECT name, kind, media_type, data FROM artifacts WHERE scan_id=? AND name=?",
                (scan_id, name),
            )
            .fetchone()
        )
        if row is None:
            return None
        return StoredArtifact(row["name"], row["kind"], row["media_type"], bytes(row["data"]))


def _record(row: sqlite3.Row) -> ScanRecord:
    values = dict(row)
    values["report"] = json.loads(values["report"]) if values["report"] else None
    return ScanRecord(**values)
