"""Scans, their reports and their artifacts in one database, so history survives a restart.

Embedded (nothing configured): one SQLite file under the data directory, because
``deepfakescan serve`` must run with nothing else installed and one file is easy to back up or
delete. Scaled out (``DEEPFAKESCAN_DATABASE_URL=postgresql://...``): PostgreSQL, shared by every
web node and worker. Both use the same tables (``schema.py``, SQLAlchemy Core), brought to the
newest schema by Alembic when the store opens (``migrate.py``).

SQLite runs in WAL mode so the HTTP threads read while a worker writes; SQLAlchemy's pool hands
each thread its own connection for the length of one call, and write transactions begin
``IMMEDIATE`` so writers queue (busy timeout 30 s) instead of deadlocking. Artifacts are BLOBs
keyed by (scan id, artifact name): no file name, from a client or a model, ever becomes a path,
and deleting a scan deletes its evidence in the same transaction (and by foreign-key cascade).

State machine: ``queued -> running -> done | failed | cancelled``; ``queued -> cancelled``;
``running -> queued`` (requeue). Every transition is a conditional UPDATE, so a scan cancelled
while it runs is never overwritten with ``done`` by the worker that finishes a moment later,
and of two workers handed the same scan only one starts it. A running scan carries its worker
and a heartbeat; one whose heartbeat is stale (its worker died) may be started again elsewhere.

A database that cannot be reached raises ``StoreUnavailable`` (HTTP 503) from every method.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import Connection, Engine

from ..config import Settings
from ..errors import StoreUnavailable
from . import migrate, schema
from .schema import artifacts, scans, workers

STATUSES = ("queued", "running", "done", "failed", "cancelled")
ACTIVE = ("queued", "running")
FINISHED = ("done", "failed", "cancelled")

SQLITE_BUSY_TIMEOUT_S = 30.0
"""How long a SQLite writer waits for another one before giving up."""
CONNECT_TIMEOUT_S = 5
"""How long connecting to PostgreSQL may take before the store is called unavailable."""
WORKER_FORGET_S = 7 * 86400.0
"""Workers silent for this long are removed from ``workers`` (an autoscaled pool comes and goes)."""

_LOST_CONNECTION = (exc.OperationalError, exc.InterfaceError, exc.TimeoutError)

# get() answers every poll of every page: its statements are built once (a third of its time)
_GET_SCAN = scans.select().where(scans.c.id == sa.bindparam("scan_id"))
_LIST_ARTIFACTS = (
    sa.select(artifacts.c.name, artifacts.c.kind, artifacts.c.media_type)
    .where(artifacts.c.scan_id == sa.bindparam("scan_id"))
    .order_by(artifacts.c.name)
)


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
    worker: str | None = None
    """The worker that started (or took over) the scan last."""
    heartbeat_at: float | None = None
    """When that worker last said it was still on it (running scans only)."""
    queued_at: float | None = None
    """When the scan last entered the queue (created or requeued)."""
    owner: str | None = None
    """The id of the API key that uploaded it; None without keys."""
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


def open_store(settings: Settings) -> JobStore:
    """The store ``settings`` name: ``database_url``, or the SQLite file under the data dir."""
    return JobStore(settings.database_url or settings.db_path)


def database_url(target: str | Path) -> sa.URL:
    """A SQLAlchemy URL from a path (SQLite) or a URL; ``postgresql://`` gets psycopg 3.

    Raises ``ValueError`` for a database the store does not support.
    """
    if isinstance(target, Path) or "://" not in target:
        return sa.URL.create("sqlite", database=str(Path(target).expanduser()))
    try:
        url = sa.make_url(target)
    except exc.ArgumentError as e:
        raise ValueError(f"not a database URL: {target!r}") from e
    if url.drivername in ("postgresql", "postgres"):
        return url.set(drivername="postgresql+psycopg")
    if url.get_backend_name() == "postgresql":
        return url
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        return url
    raise ValueError(
        f"unsupported database URL {url.render_as_string(hide_password=True)!r}:"
        " use postgresql://user:password@host/db or sqlite:////path/to/file"
    )


class JobStore:
    """The scan store on SQLite or PostgreSQL, safe to use from many threads and processes.

    Parameters
    ----------
    target
        A SQLite file path, or a database URL (``postgresql://...``, ``sqlite:///...``).
        Opening migrates the database to the newest schema.
    """

    def __init__(self, target: str | Path) -> None:
        self.url = database_url(target)
        self._where = self.url.render_as_string(hide_password=True)
        self.engine = _create_engine(self.url)
        with self._reachable():
            if not migrate.is_current(self.engine):
                migrate.upgrade(self.engine)

    # -- connections -------------------------------------------------------------------------

    @contextmanager
    def _reachable(self) -> Iterator[None]:
        """Turn a lost or refused connection into ``StoreUnavailable`` (503)."""
        try:
            yield
        except _LOST_CONNECTION as e:
            reason = str(getattr(e, "orig", None) or e).strip().splitlines()[0]
            raise StoreUnavailable(
                f"the job store {self._where} cannot be reached: {reason}"
            ) from e

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._reachable(), self.engine.connect() as conn:
            yield conn

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """One write transaction; on SQLite ``BEGIN IMMEDIATE`` so writers queue."""
        with (
            self._reachable(),
            self.engine.connect() as conn,
            conn.execution_options(sqlite_begin="IMMEDIATE").begin(),
        ):
            yield conn

    def _update(self, scan_id: str, when: sa.ColumnElement[bool], **values) -> bool:
        """One conditional transition: True when the scan was in a state ``when`` accepts."""
        with self._write() as conn:
            query = scans.update().where(scans.c.id == scan_id, when).values(**values)
            return conn.execute(query).rowcount == 1

    def ping(self) -> None:
        """A trivial query; raises ``StoreUnavailable`` when the database cannot be reached."""
        with self._read() as conn:
            conn.execute(sa.text("SELECT 1"))

    def close(self) -> None:
        """Close every pooled connection (at shutdown; a later call would open new ones)."""
        self.engine.dispose()

    # -- writes ------------------------------------------------------------------------------

    def create(
        self,
        scan_id: str,
        *,
        source_name: str,
        media_type: str | None,
        declared_kind: str | None = None,
        upload_path: str | None = None,
        owner: str | None = None,
    ) -> ScanRecord:
        now = time.time()
        with self._write() as conn:
            conn.execute(
                scans.insert().values(
                    id=scan_id,
                    status="queued",
                    source_name=source_name,
                    media_type=media_type,
                    declared_kind=declared_kind,
                    upload_path=upload_path,
                    owner=owner,
                    created_at=now,
                    queued_at=now,
                )
            )
        record = self.get(scan_id)
        assert record is not None
        return record

    def start(self, scan_id: str, *, worker: str = "local", stale_after_s: float = 60.0) -> bool:
        """queued -> running for ``worker``; a running scan whose heartbeat is older than
        ``stale_after_s`` (its worker died) is taken over the same way.

        False if the scan is gone, finished (done, failed, cancelled) or running with a fresh
        heartbeat: of two deliveries of one scan, only one runs it.
        """
        now = time.time()
        stale = sa.and_(scans.c.status == "running", scans.c.heartbeat_at < now - stale_after_s)
        return self._update(
            scan_id,
            sa.or_(scans.c.status == "queued", stale),
            status="running",
            stage="starting",
            progress=0.0,
            started_at=now,
            heartbeat_at=now,
            worker=worker,
            attempts=scans.c.attempts + 1,
        )

    def heartbeat(self, scan_id: str, worker: str) -> bool:
        """Say ``worker`` is still running the scan; False once it no longer is (cancelled,
        finished, or taken over by another worker): the worker should then stop."""
        when = sa.and_(scans.c.status == "running", scans.c.worker == worker)
        return self._update(scan_id, when, heartbeat_at=time.time())

    def set_progress(self, scan_id: str, fraction: float, stage: str) -> None:
        self._update(scan_id, scans.c.status == "running", progress=float(fraction), stage=stage)

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
        rows = {
            name: {"scan_id": scan_id, "name": name, "kind": kind, "media_type": media_type}
            | {"data": bytes(data), "created_at": now}
            for name, kind, media_type, data in artifacts
        }  # by name, the last one wins
        with self._write() as conn:
            done = scans.update().where(scans.c.id == scan_id, scans.c.status == "running")
            done = done.values(
                status="done",
                progress=1.0,
                stage="done",
                report=json.dumps(report),
                verdict=report.get("verdict"),
                fake_probability=report.get("fake_probability"),
                media_type=report.get("media", {}).get("type"),
                upload_path=None,
                finished_at=now,
            )
            if conn.execute(done).rowcount != 1:
                return False
            if rows:  # ``artifacts`` is the argument here: the table is schema.artifacts
                table = schema.artifacts
                conn.execute(table.delete().where(table.c.scan_id == scan_id))
                conn.execute(table.insert(), list(rows.values()))
            return True

    def fail(self, scan_id: str, *, code: str, message: str, status: int) -> bool:
        """queued/running -> failed, with the error a client will see."""
        return self._update(
            scan_id,
            scans.c.status.in_(ACTIVE),
            status="failed",
            stage="failed",
            error_code=code,
            error_message=message,
            error_status=int(status),
            upload_path=None,
            finished_at=time.time(),
        )

    def cancel(self, scan_id: str) -> bool:
        """queued/running -> cancelled, dropping any artifacts; False if already finished."""
        with self._write() as conn:
            query = scans.update().where(scans.c.id == scan_id, scans.c.status.in_(ACTIVE))
            query = query.values(
                status="cancelled", stage="cancelled", upload_path=None, finished_at=time.time()
            )
            if conn.execute(query).rowcount != 1:
                return False  # a finished scan keeps its evidence
            conn.execute(artifacts.delete().where(artifacts.c.scan_id == scan_id))
            return True

    def requeue(self, scan_id: str, *, refund_attempt: bool = False) -> bool:
        """running -> queued: its process died under it, or it is stopping (``refund_attempt``,
        so a clean restart does not count towards the retry limit)."""
        return self._update(
            scan_id,
            scans.c.status == "running",
            status="queued",
            stage="queued",
            progress=0.0,
            attempts=scans.c.attempts - int(refund_attempt),
            worker=None,
            heartbeat_at=None,
            queued_at=time.time(),
        )

    def delete(self, scan_id: str) -> bool:
        with self._write() as conn:
            conn.execute(artifacts.delete().where(artifacts.c.scan_id == scan_id))
            return conn.execute(scans.delete().where(scans.c.id == scan_id)).rowcount == 1

    def delete_artifacts_before(self, cutoff: float) -> int:
        """Drop artifacts made before ``cutoff`` (retention); reports and history stay."""
        with self._write() as conn:
            return conn.execute(artifacts.delete().where(artifacts.c.created_at < cutoff)).rowcount

    def worker_seen(self, worker_id: str, info: dict) -> None:
        """Record that a worker is alive (its heartbeat), with what it says about itself."""
        now = time.time()
        insert = _upsert(self.engine)(workers).values(
            id=worker_id, info=json.dumps(info), last_seen=now
        )
        update = {"info": insert.excluded.info, "last_seen": insert.excluded.last_seen}
        with self._write() as conn:
            conn.execute(insert.on_conflict_do_update(index_elements=["id"], set_=update))
            conn.execute(workers.delete().where(workers.c.last_seen < now - WORKER_FORGET_S))

    # -- reads -------------------------------------------------------------------------------

    def get(self, scan_id: str) -> ScanRecord | None:
        with self._read() as conn:
            row = conn.execute(_GET_SCAN, {"scan_id": scan_id}).first()
            if row is None:
                return None
            record = _record(row)
            listed = conn.execute(_LIST_ARTIFACTS, {"scan_id": scan_id})
            record.artifacts = [dict(a._mapping) for a in listed]
        return record

    def list(
        self, *, limit: int = 20, offset: int = 0, owner: str | None = None
    ) -> tuple[list[ScanRecord], int]:
        """A page of history, newest first, without reports (they can be large), and the total.

        With ``owner``, only the scans that key uploaded; without, every scan.
        """
        columns = [sa.null().label("report") if c.name == "report" else c for c in scans.c]
        page = sa.select(*columns).order_by(scans.c.created_at.desc(), scans.c.id.desc())
        count = sa.select(sa.func.count()).select_from(scans)
        if owner is not None:
            page, count = page.where(scans.c.owner == owner), count.where(scans.c.owner == owner)
        with self._read() as conn:
            total = conn.execute(count).scalar_one()
            rows = conn.execute(page.limit(limit).offset(offset)).all()
        return [_record(r) for r in rows], total

    def active(self) -> list[ScanRecord]:
        """Scans queued or running, oldest first (what a restarting server must pick up)."""
        return self._scans(scans.c.status.in_(ACTIVE), scans.c.created_at)

    def counts(self) -> dict[str, int]:
        """Scans per status, counted by the database: health asks this on every call, and a
        backlog of many thousand scans must not be loaded to be counted."""
        query = sa.select(scans.c.status, sa.func.count()).group_by(scans.c.status)
        with self._read() as conn:
            found = dict(conn.execute(query).all())
        return {status: int(found.get(status, 0)) for status in STATUSES}

    def stale_running(self, older_than_s: float) -> list[ScanRecord]:
        """Running scans whose heartbeat is older than ``older_than_s``: their worker died."""
        stale = scans.c.heartbeat_at < time.time() - older_than_s
        return self._scans(sa.and_(scans.c.status == "running", stale), scans.c.heartbeat_at)

    def queued_since(self, older_than_s: float) -> list[ScanRecord]:
        """Scans queued for longer than ``older_than_s``: their message may have been lost."""
        waiting = scans.c.queued_at < time.time() - older_than_s
        return self._scans(sa.and_(scans.c.status == "queued", waiting), scans.c.queued_at)

    def live_workers(self, max_age_s: float = 30.0) -> list[dict]:
        """Workers seen in the last ``max_age_s`` seconds: ``{"id", "last_seen", "info"}``."""
        query = workers.select().where(workers.c.last_seen >= time.time() - max_age_s)
        with self._read() as conn:
            rows = conn.execute(query.order_by(workers.c.id)).all()
        return [{"id": r.id, "last_seen": r.last_seen, "info": json.loads(r.info)} for r in rows]

    def upload_paths(self) -> set[str]:
        query = sa.select(scans.c.upload_path).where(scans.c.upload_path.is_not(None))
        with self._read() as conn:
            return set(conn.execute(query).scalars())

    def artifact(self, scan_id: str, name: str) -> StoredArtifact | None:
        query = sa.select(artifacts.c.name, artifacts.c.kind, artifacts.c.media_type)
        query = query.add_columns(artifacts.c.data)
        query = query.where(artifacts.c.scan_id == scan_id, artifacts.c.name == name)
        with self._read() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        return StoredArtifact(row.name, row.kind, row.media_type, bytes(row.data))

    def _scans(self, where: sa.ColumnElement[bool], order: sa.Column) -> list[ScanRecord]:
        with self._read() as conn:
            rows = conn.execute(scans.select().where(where).order_by(order)).all()
        return [_record(r) for r in rows]


def _record(row: sa.Row) -> ScanRecord:
    values = dict(row._mapping)
    values["report"] = json.loads(values["report"]) if values["report"] else None
    return ScanRecord(**values)


def _upsert(engine: Engine):
    """The dialect's ``insert`` that knows ``on_conflict_do_update`` (same API on both)."""
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


def _create_engine(url: sa.URL) -> Engine:
    if url.get_backend_name() == "postgresql":
        try:
            return sa.create_engine(
                url, pool_pre_ping=True, connect_args={"connect_timeout": CONNECT_TIMEOUT_S}
            )
        except ModuleNotFoundError as e:  # a PostgreSQL URL set without the extra
            raise StoreUnavailable(
                f"{e.name} is needed for PostgreSQL: pip install 'deepfakescan[scale]'"
            ) from e
    Path(url.database).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # connections are cheap and threads many: keep 16, open more when needed (as one per thread)
    engine = sa.create_engine(
        url, pool_size=16, max_overflow=-1, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S}
    )
    event.listen(engine, "connect", _sqlite_connected)
    event.listen(engine, "begin", _sqlite_begin)
    return engine


def _sqlite_connected(dbapi_connection, _record) -> None:
    # transactions are begun by _sqlite_begin, not by the sqlite3 module behind our back
    dbapi_connection.isolation_level = None
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
        dbapi_connection.execute(f"PRAGMA {pragma}")


def _sqlite_begin(conn: Connection) -> None:
    """``BEGIN IMMEDIATE`` for writes (the write lock at once, so writers wait their turn
    instead of failing to upgrade a read lock), a deferred ``BEGIN`` for reads."""
    conn.exec_driver_sql(f"BEGIN {conn.get_execution_options().get('sqlite_begin', '')}".strip())
