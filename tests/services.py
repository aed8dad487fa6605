"""Real servers for the tests: each starts on a free loopback port in its own temporary
directory and is stopped and removed afterwards. Never the system-wide services.

The binaries come from Debian packages (``scripts/test.sh`` installs them). Where they are
missing a test is skipped with the reason, except under CI (``CI`` set), where it fails: CI
must run what these tests guard. Servers that refuse to run as root (PostgreSQL) are run as
their own user through ``runuser``, in a directory made under /tmp that this user can enter
(pytest's ``tmp_path`` sits under 0700 folders).

Add a server as a small class with ``start``/``stop`` and a context manager, like
``PostgresServer``, using the helpers at the top.
"""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

# ------------------------------------------------------------------------------ helpers


def unavailable(reason: str) -> None:
    """Skip the test for a missing server, or fail under CI, where everything must run."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: the test suite must run with it)")
    pytest.skip(reason)


def find_binary(name: str, *search: str) -> str | None:
    """``name`` on PATH, else the last match of the ``search`` globs (newest version)."""
    found = shutil.which(name)
    if found:
        return found
    matches = sorted((m for pattern in search for m in glob.glob(pattern)), key=_version_key)
    return matches[-1] if matches else None


def _version_key(path: str) -> list:
    return [int(p) if p.isdigit() else p for p in path.replace(".", "/").split("/")]


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def service_dir(prefix: str, user: str | None = None) -> Path:
    """A fresh directory under /tmp, owned by ``user`` when we are root."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    if user and os.geteuid() == 0:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)
    return path


def as_user(user: str) -> list[str]:
    """The command prefix that runs a command as ``user`` when we are root (nothing otherwise)."""
    return ["runuser", "-u", user, "--"] if os.geteuid() == 0 else []


def run(command: list[str], what: str, log: Path | None = None) -> None:
    """Run a server's control command; on failure, say what failed with its output and log."""
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
        raise RuntimeError(f"{what} failed ({done.returncode}): {done.stderr or done.stdout}{tail}")


# --------------------------------------------------------------------------- PostgreSQL

PG_SEARCH = "/usr/lib/postgresql/*/bin/{}"
PG_OPTIONS = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",  # a test database need not survive a power cut: much faster
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
}


class _Server:
    """A server of a test's own: made in ``__enter__``, stopped and removed in ``__exit__``;
    ``start``/``stop`` in between take it away and bring it back on the same port."""

    root: Path

    def __enter__(self):
        try:
            self.create()
            self.start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        with contextlib.suppress(Exception):
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def create(self) -> None:
        """What happens once, before the first start (nothing by default)."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError


class PostgresServer(_Server):
    """A PostgreSQL cluster of its own: ``initdb`` once, then ``start``/``stop`` at will.

    ``url`` stays valid across a stop and a start (same port, same data directory), so a test
    can take the database away and bring it back.
    """

    user = "postgres"

    def __init__(self) -> None:
        self.initdb = find_binary("initdb", PG_SEARCH.format("initdb"))
        self.pg_ctl = find_binary("pg_ctl", PG_SEARCH.format("pg_ctl"))
        if not (self.initdb and self.pg_ctl):
            unavailable("PostgreSQL is not installed (Debian package postgresql)")
        if importlib.util.find_spec("psycopg") is None:
            unavailable("psycopg is not installed (pip install -e '.[scale]')")
        if os.geteuid() == 0 and not _user_exists(self.user):
            unavailable(f"running as root and there is no {self.user!r} user to run PostgreSQL")
        self.port = free_port()
        self.root = service_dir("deepfakescan-pg-", self.user)
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.running = False

    def create(self) -> None:
        run(
            [*as_user(self.user), self.initdb, "-D", str(self.data), "-U", "postgres"]
            + ["--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"],
            "initdb",
        )

    def start(self) -> None:
        """Start (again) on the same port; returns once it accepts connections."""
        options = " ".join(f"-c {k}={v}" for k, v in PG_OPTIONS.items())
        options += f" -p {self.port} -k {self.root}"
        run(
            [*as_user(self.user), self.pg_ctl, "-D", str(self.data), "-l", str(self.log)]
            + ["-o", options, "-w", "-t", "60", "start"],
            "pg_ctl start",
            self.log,
        )
        self.running = True

    def stop(self) -> None:
        """Stop at once (fast shutdown: open connections are cut, as when a server dies)."""
        if self.running:
            run(
                [*as_user(self.user), self.pg_ctl, "-D", str(self.data), "-m", "fast", "-w"]
                + ["stop"],
                "pg_ctl stop",
                self.log,
            )
            self.running = False


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """A running PostgreSQL server for the block: yields ``postgresql://postgres@127.0.0.1:PORT
    /postgres`` (trust authentication), then stops it and removes its directory."""
    with PostgresServer() as server:
        yield server.url


@contextlib.contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """A new empty database on the server at ``server_url`` for the block, dropped after."""
    import psycopg

    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield server_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --------------------------------------------------------------------------------- Redis


class RedisServer(_Server):
    """A Redis server of its own, without persistence (no RDB snapshot, no AOF): a restart
    loses every queued message, the worst case the workers' reconciler must cover.

    ``url`` stays valid across a stop and a start (same port), so a test can restart it.
    """

    def __init__(self) -> None:
        self.binary = find_binary("redis-server", "/usr/bin/redis-server")
        if not self.binary:
            unavailable("Redis is not installed (Debian package redis-server)")
        self.port = free_port()
        self.root = service_dir("deepfakescan-redis-")
        self.log = self.root / "server.log"
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        """Start (again) on the same port, empty; returns once it answers PING."""
        command = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no", "--dir", str(self.root)]
        command += ["--logfile", str(self.log), "--daemonize", "no"]
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                tail = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
                self.stop()
                raise RuntimeError(f"redis-server did not start: {tail}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop it (SIGTERM; nothing is saved) and wait until the port is closed."""
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)
            self.process = None

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A running Redis server for the block: yields ``redis://127.0.0.1:PORT/0``, then stops
    it and removes its directory."""
    with RedisServer() as server:
        yield server.url
