"""The job store's promises, on SQLite and on a real PostgreSQL server alike.

A transition happens only from the states that allow it (a cancelled or finished scan stays so),
of two deliveries of one scan only one runs it, a scan whose worker died is taken over, the
reconciler's queries find what was lost, evidence goes with its scan, a 0.1.0 history is
upgraded in place, two processes may open one database at once, and a database that goes away
is a 503 that heals when it returns.
"""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading

import pytest
import sqlalchemy as sa

from deepfakescan.config import Settings
from deepfakescan.errors import StoreUnavailable
from deepfakescan.jobs import migrate
from deepfakescan.jobs.schema import HEAD, metadata
from deepfakescan.jobs.store import JobStore, database_url, open_store

from .services import PostgresServer, fresh_database

REPORT = {"verdict": "fake", "fake_probability": 0.9, "media": {"type": "image"}}

# The DDL deepfakescan 0.1.0 ran itself, before migrations: the fixture of an old history.
SCHEMA_0_1_0 = """
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


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    """A new, empty database of each kind (PostgreSQL: one database of the session's server)."""
    if request.param == "sqlite":
        yield str(tmp_path / "scans.sqlite3")
        return
    with fresh_database(request.getfixturevalue("pg_url")) as url:
        yield url


@pytest.fixture
def store(store_url):
    store = JobStore(store_url)
    yield store
    store.close()


def age(store: JobStore, column: str, seconds: float, **where) -> None:
    """Move a time column into the past, as if ``seconds`` had gone by since it was written."""
    table = metadata.tables["workers" if column == "last_seen" else "scans"]
    query = table.update().values({column: table.c[column] - seconds})
    query = query.where(*(table.c[k] == v for k, v in where.items()))
    with store.engine.begin() as conn:
        conn.execute(query)


def running(store: JobStore, scan_id: str, worker: str = "w1") -> None:
    store.create(scan_id, source_name=f"{scan_id}.jpg", media_type="image")
    assert store.start(scan_id, worker=worker)


# --------------------------------------------------------------------------- state machine


def test_a_scan_goes_queued_running_done_and_a_finished_scan_is_never_restarted(store):
    record = store.create("s1", source_name="a.jpg", media_type="image", upload_path="/u/1")
    assert (record.status, record.attempts, record.worker) == ("queued", 0, None)
    assert store.start("s1", worker="w1")
    record = store.get("s1")
    assert (record.status, record.attempts, record.worker) == ("running", 1, "w1")
    assert record.heartbeat_at == record.started_at
    assert store.finish("s1", REPORT, [("preview", "preview", "image/jpeg", b"\xff\xd8")])
    age(store, "heartbeat_at", 3600, id="s1")
    assert not store.start("s1", worker="w2", stale_after_s=0)
    assert not store.requeue("s1") and not store.cancel("s1")
    assert not store.fail("s1", code="x", message="y", status=500)
    done = store.get("s1")
    assert (done.status, done.verdict, done.report, done.upload_path) == (
        "done",
        "fake",
        REPORT,
        None,
    )
    assert done.attempts == 1 and done.artifacts[0]["name"] == "preview"


def test_a_cancelled_scan_is_never_overwritten_by_a_late_finish_or_restart(store):
    running(store, "s1")
    assert store.cancel("s1")
    assert not store.finish("s1", REPORT, [("heatmap", "heatmap", "image/png", b"png")])
    assert not store.fail("s1", code="x", message="y", status=500)
    age(store, "heartbeat_at", 3600, id="s1")
    assert not store.start("s1", worker="w2")
    record = store.get("s1")
    assert record.status == "cancelled" and record.artifacts == []


def test_of_many_deliveries_of_one_scan_exactly_one_starts_it(store):
    store.create("s1", source_name="a.jpg", media_type="image")
    gate = threading.Barrier(6)
    started: list[bool] = []

    def deliver(n: int) -> None:
        gate.wait(10)
        started.append(store.start("s1", worker=f"w{n}"))

    threads = [threading.Thread(target=deliver, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(started) == [False] * 5 + [True]
    assert store.get("s1").attempts == 1


def test_a_running_scan_is_taken_over_once_its_heartbeat_is_stale_and_not_before(store):
    running(store, "s1", worker="w1")
    assert not store.start("s1", worker="w2", stale_after_s=60)
    age(store, "heartbeat_at", 61, id="s1")
    assert store.start("s1", worker="w2", stale_after_s=60)
    record = store.get("s1")
    assert (record.status, record.worker, record.attempts) == ("running", "w2", 2)
    assert not store.heartbeat("s1", "w1")  # the first worker learns it lost the scan
    assert store.heartbeat("s1", "w2")


def test_heartbeat_is_refused_after_cancel_so_the_worker_stops(store):
    running(store, "s1", worker="w1")
    assert store.heartbeat("s1", "w1")
    assert store.cancel("s1")
    assert not store.heartbeat("s1", "w1")


def test_heartbeat_keeps_a_long_scan_from_being_taken_over(store):
    running(store, "s1", worker="w1")
    age(store, "heartbeat_at", 3600, id="s1")
    assert store.heartbeat("s1", "w1")
    assert not store.start("s1", worker="w2", stale_after_s=60)
    assert store.stale_running(60) == []


def test_requeue_puts_a_scan_back_without_its_worker_and_can_refund_the_attempt(store):
    running(store, "s1", worker="w1")
    assert store.requeue("s1", refund_attempt=True)
    record = store.get("s1")
    assert (record.status, record.attempts, record.worker, record.heartbeat_at) == (
        "queued",
        0,
        None,
        None,
    )


# ----------------------------------------------------------------------------- reconciler


def test_the_reconciler_sees_stale_running_and_long_queued_scans_only(store):
    for scan_id in ("queued-old", "queued-new"):
        store.create(scan_id, source_name="a.jpg", media_type="image")
    for scan_id in ("running-old", "running-fresh", "done-old"):
        running(store, scan_id)
    store.finish("done-old", REPORT)
    age(store, "queued_at", 120, id="queued-old")
    age(store, "heartbeat_at", 120, id="running-old")
    age(store, "heartbeat_at", 120, id="done-old")
    assert [r.id for r in store.stale_running(60)] == ["running-old"]
    assert [r.id for r in store.queued_since(60)] == ["queued-old"]


def test_a_requeued_scan_counts_as_queued_from_the_requeue_not_its_creation(store):
    running(store, "s1")
    age(store, "created_at", 3600, id="s1")
    age(store, "queued_at", 3600, id="s1")
    assert store.requeue("s1")
    assert store.queued_since(60) == []


def test_workers_seen_recently_are_live_and_report_their_latest_info(store):
    store.worker_seen("w1", {"host": "a", "processes": 1})
    store.worker_seen("w2", {"host": "b", "processes": 2})
    store.worker_seen("w1", {"host": "a", "processes": 4})
    age(store, "last_seen", 100, id="w2")
    live = store.live_workers(max_age_s=30)
    assert [(w["id"], w["info"]) for w in live] == [("w1", {"host": "a", "processes": 4})]
    assert [w["id"] for w in store.live_workers(max_age_s=300)] == ["w1", "w2"]


# ------------------------------------------------------------------------------ artifacts


def test_artifacts_come_back_byte_for_byte_and_go_with_their_scan(store):
    blob = bytes(range(256)) * 64
    running(store, "s1")
    assert store.finish("s1", REPORT, [("heatmap", "heatmap", "image/png", blob)])
    assert store.artifact("s1", "heatmap").data == blob
    assert store.artifact("s1", "../heatmap") is None
    assert store.delete("s1")
    assert store.artifact("s1", "heatmap") is None and store.get("s1") is None


def test_deleting_a_scan_row_cascades_to_its_artifacts(store):
    running(store, "s1")
    store.finish("s1", REPORT, [("a", "heatmap", "image/png", b"1"), ("b", "preview", "x", b"2")])
    with store.engine.begin() as conn:  # a DELETE that forgets the artifacts, as by hand
        conn.execute(sa.text("DELETE FROM scans WHERE id = 's1'"))
        left = conn.execute(sa.text("SELECT COUNT(*) FROM artifacts")).scalar_one()
    assert left == 0


def test_retention_drops_old_artifacts_and_keeps_the_report(store):
    running(store, "s1")
    store.finish("s1", REPORT, [("heatmap", "heatmap", "image/png", b"png")])
    assert store.delete_artifacts_before(0) == 0
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE artifacts SET created_at = created_at - 86400"))
    assert store.delete_artifacts_before(store.get("s1").finished_at - 3600) == 1
    kept = store.get("s1")
    assert kept.artifacts == [] and kept.report == REPORT


# ------------------------------------------------------------------------------- history


def test_history_pages_newest_first_with_a_total(store):
    for i in range(5):
        store.create(f"s{i}", source_name=f"{i}.jpg", media_type="image")
    page, total = store.list(limit=2, offset=1)
    assert total == 5 and [r.id for r in page] == ["s3", "s2"]
    assert [r.id for r in store.active()] == [f"s{i}" for i in range(5)]


def test_a_keys_history_holds_only_the_scans_it_uploaded(store):
    store.create("a1", source_name="a.jpg", media_type="image", owner="alice")
    store.create("b1", source_name="b.jpg", media_type="image", owner="bob")
    store.create("a2", source_name="c.jpg", media_type="image", owner="alice")
    store.create("old", source_name="d.jpg", media_type="image")  # made before keys
    page, total = store.list(owner="alice")
    assert total == 2 and [r.id for r in page] == ["a2", "a1"]
    assert store.get("b1").owner == "bob" and store.get("old").owner is None
    assert store.list()[1] == 4  # no owner: every scan (an admin key, or keys off)


def test_api_keys_keep_a_digest_and_a_revoked_key_stays_revoked(store):
    from deepfakescan.jobs import KeyRing

    ring = KeyRing(store)
    assert not ring.enabled()
    listed, key = ring.create("  desk\n editor ", admin=True)
    assert listed.label == "desk editor" and listed.admin and ring.enabled()
    assert ring.verify(key) == listed and ring.get(listed.id) == listed
    assert ring.verify(key + "x") is None
    assert ring.revoke(listed.id) and not ring.revoke(listed.id)
    assert ring.verify(key) is None and ring.get(listed.id) is None
    assert KeyRing(store).enabled()  # revoking the last key does not open the server
    assert [k.active for k in ring.list()] == [False]


def test_health_counts_scans_per_status_without_loading_them(store):
    for i in range(4):
        store.create(f"s{i}", source_name=f"{i}.jpg", media_type="image")
    store.start("s0")
    store.start("s1")
    store.finish("s1", REPORT, [])
    store.cancel("s2")
    assert store.counts() == {"queued": 1, "running": 1, "done": 1, "failed": 0, "cancelled": 1}


def test_store_is_usable_from_many_threads_at_once(store):
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(10):
                running(store, f"t{n}-{i}", worker=f"w{n}")
                store.set_progress(f"t{n}-{i}", 0.5, "detect")
                store.heartbeat(f"t{n}-{i}", f"w{n}")
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and store.list()[1] == 40


# ------------------------------------------------------------------------ schema, opening


def schema_differences(store: JobStore) -> set[tuple[str, ...]]:
    """What Alembic's autogenerate finds between the database and ``schema.py``, as
    ``(operation, table[, column])``; asserts first that the database is stamped at HEAD."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with store.engine.connect() as conn:
        assert migrate.current_revision(conn) == HEAD
        diffs = compare_metadata(MigrationContext.configure(conn), metadata)
    found = set()
    for diff in (d for item in diffs for d in (item if isinstance(item, list) else [item])):
        if diff[0].startswith("modify_"):
            found.add((diff[0], diff[2], diff[3]))
        else:
            found.add((diff[0], getattr(diff[1], "table", diff[1]).name))
    return found


def test_the_schema_in_code_is_what_the_migrations_build(store):
    assert schema_differences(store) == set()


def test_migrating_down_and_up_again_keeps_scans_and_their_artifacts(store):
    from alembic import command

    running(store, "s1")
    store.finish("s1", REPORT, [("heatmap", "heatmap", "image/png", b"png")])
    with store.engine.begin() as conn:
        command.downgrade(migrate.alembic_config(conn), migrate.FIRST)
        assert migrate.current_revision(conn) == migrate.FIRST
    store.close()
    store = JobStore(store.url.render_as_string(hide_password=False))
    assert store.get("s1").report == REPORT
    assert store.artifact("s1", "heatmap").data == b"png"
    store.close()


def test_head_is_the_newest_migration():
    from alembic.script import ScriptDirectory

    assert ScriptDirectory.from_config(migrate.alembic_config()).get_current_head() == HEAD


def test_a_history_written_by_0_1_0_is_upgraded_in_place_keeping_its_rows(tmp_path):
    path = tmp_path / "scans.sqlite3"
    old = sqlite3.connect(path)
    old.executescript(SCHEMA_0_1_0)
    old.executemany(
        "INSERT INTO scans (id, status, source_name, created_at, started_at, report)"
        " VALUES (?, ?, 'a.jpg', ?, ?, ?)",
        [
            ("old-queued", "queued", 100.0, None, None),
            ("old-running", "running", 200.0, 250.0, None),
        ]
        + [("old-done", "done", 300.0, 310.0, '{"verdict": "real"}')],
    )
    old.execute(
        "INSERT INTO artifacts VALUES ('old-done', 'preview', 'preview', 'x', ?, 320.0)", (b"jpg",)
    )
    old.commit()
    old.close()

    store = JobStore(path)
    # SQLite reflects neither the ON DELETE of 0.1.0's inline REFERENCES nor the NOT NULL its
    # ``id TEXT PRIMARY KEY`` lacked (SQLite allows NULL there): the cascade is checked below
    assert schema_differences(store) == {
        ("remove_fk", "artifacts"),
        ("add_fk", "artifacts"),
        ("modify_nullable", "scans", "id"),
    }
    assert [r.id for r in store.list()[0]] == ["old-done", "old-running", "old-queued"]
    assert store.get("old-done").report == {"verdict": "real"}
    assert store.artifact("old-done", "preview").data == b"jpg"
    assert store.get("old-queued").queued_at == 100.0
    assert [r.id for r in store.stale_running(60)] == ["old-running"]  # its heartbeat: started_at
    assert store.start("old-running", worker="new")
    with store.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM scans WHERE id = 'old-done'"))
    assert store.artifact("old-done", "preview") is None
    store.close()


def _open_with_the_others(url: str, barrier, results) -> None:
    """In a new process: wait for the others, then open the store (which migrates it)."""
    try:
        import alembic.command  # noqa: F401 - loaded before the barrier: all reach the lock together

        barrier.wait(60)
        store = JobStore(url)
        store.create(multiprocessing.current_process().name, source_name="a", media_type="image")
        store.close()
        results.put("ok")
    except BaseException as e:  # noqa: BLE001 - sent to the test
        results.put(repr(e))


def open_at_once(url: str, processes: int = 3) -> None:
    """Open the store at ``url`` from new processes released together; all must succeed."""
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(processes), context.Queue()
    started = [
        context.Process(target=_open_with_the_others, args=(url, barrier, results))
        for _ in range(processes)
    ]
    for p in started:
        p.start()
    outcomes = [results.get(timeout=120) for _ in started]
    for p in started:
        p.join(30)
    assert outcomes == ["ok"] * processes
    store = JobStore(url)
    assert store.list()[1] == processes
    store.close()


def test_processes_opening_a_new_database_at_once_migrate_it_once(store_url):
    open_at_once(store_url)


def test_processes_opening_a_0_1_0_history_at_once_upgrade_it_once(tmp_path):
    path = tmp_path / "scans.sqlite3"
    sqlite3.connect(path).executescript(SCHEMA_0_1_0).close()
    open_at_once(str(path))


# ----------------------------------------------------------------------------- unavailable


def test_a_stopped_database_is_a_503_and_the_store_works_again_when_it_returns():
    with PostgresServer() as server:
        store = JobStore(server.url)
        store.create("s1", source_name="a.jpg", media_type="image")
        server.stop()
        for call in (store.ping, lambda: store.get("s1"), lambda: store.start("s1")):
            with pytest.raises(StoreUnavailable) as caught:
                call()
            assert caught.value.status == 503 and caught.value.code == "store_unavailable"
        assert "postgres@127.0.0.1" in caught.value.message
        with pytest.raises(StoreUnavailable):
            JobStore(server.url)  # opening, as `deepfakescan serve` does at start
        server.start()
        store.ping()
        assert store.start("s1") and store.get("s1").status == "running"
        store.close()


# ---------------------------------------------------------------------------- configuration


def test_postgresql_urls_get_the_psycopg_driver_and_paths_mean_sqlite(tmp_path):
    assert database_url("postgresql://u:p@db:5432/scans").drivername == "postgresql+psycopg"
    assert database_url("postgres://u@db/scans").drivername == "postgresql+psycopg"
    assert database_url(tmp_path / "x.db").database == str(tmp_path / "x.db")
    assert database_url(f"sqlite:///{tmp_path}/x.db").database == f"{tmp_path}/x.db"
    for unsupported in ("mysql://u@db/scans", "sqlite://", "sqlite:///:memory:"):
        with pytest.raises(ValueError, match="unsupported database URL"):
            database_url(unsupported)


def test_without_a_database_url_the_store_is_the_sqlite_file_in_the_data_dir(tmp_path):
    settings = Settings.from_env(env={}, data_dir=tmp_path / "data")
    store = open_store(settings)
    assert store.url.get_backend_name() == "sqlite"
    assert store.url.database == str(settings.db_path) and settings.db_path.is_file()
    store.close()
