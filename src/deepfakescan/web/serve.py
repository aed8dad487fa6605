"""``deepfakescan serve``: the web app, with its scan workers in the same process by default.

Embedded (nothing configured): one process on purpose, since the model sessions are loaded once
and shared by the worker threads, the SQLite store wants a single host, and a newsroom laptop
needs nothing else running. Scaled out (``DEEPFAKESCAN_BROKER_URL``, usually with
``DEEPFAKESCAN_DATABASE_URL``): this process only answers HTTP and queues scans for
``deepfakescan worker`` processes; it refuses to start (exit 2, with the reason) while the
broker or the database it is configured with cannot be reached, rather than serving errors.
The WSGI server is gunicorn with one gthread worker process (``gunicorn_server.py``: it
streams request bodies to the app), or waitress on Windows, where gunicorn does not run; the
Flask debug server is never used.

Access: with API keys on (``deepfakescan keys create``, or ``DEEPFAKESCAN_REQUIRE_KEYS``) the
page's sign-in needs ``DEEPFAKESCAN_SECRET_KEY``, so serve refuses to start without it; without
keys anyone who reaches the port can read every scan, so serve refuses an address other than
loopback unless ``--insecure-no-auth`` says that is meant (a private network, a proxy that
authenticates).
"""

from __future__ import annotations

import argparse
import functools
import logging
import signal
import sys
import threading
from collections.abc import Callable

from ..config import Settings
from ..errors import BadInput, StoreUnavailable

log = logging.getLogger("deepfakescan.serve")

MiB = 1024 * 1024
STARTUP_CHECK_TIMEOUT_S = 5.0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``serve`` on the CLI; flags override the environment, which overrides defaults."""
    p = sub.add_parser(
        "serve",
        help="run the web app and REST API",
        description="Run the web page and the REST API (/api/v1) on a production WSGI server."
        " Scans run on background worker threads and are kept in a SQLite history.",
    )
    p.add_argument("--host", help="address to listen on (DEEPFAKESCAN_HOST, default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (DEEPFAKESCAN_PORT, default 8000)")
    p.add_argument(
        "--threads", type=int, help="HTTP threads (DEEPFAKESCAN_HTTP_THREADS, default 16)"
    )
    p.add_argument(
        "--workers", type=int, help="scans run at once (DEEPFAKESCAN_WORKERS, default 2)"
    )
    p.add_argument(
        "--data-dir", help="history, artifacts and pending uploads (DEEPFAKESCAN_DATA_DIR)"
    )
    p.add_argument(
        "--insecure-no-auth",
        action="store_true",
        help="listen on an address other than loopback without API keys: anyone who reaches"
        " the port can upload, read and delete every scan",
    )
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    from pathlib import Path

    overrides = {
        "host": args.host,
        "port": args.port,
        "http_threads": args.threads,
        "workers": args.workers,
        "data_dir": Path(args.data_dir).expanduser() if args.data_dir else None,
    }
    for name in ("port", "http_threads", "workers"):
        if overrides[name] is not None and overrides[name] <= 0:
            raise ValueError(f"--{name.replace('http_', '')} must be positive")
    settings = Settings.from_env(**{k: v for k, v in overrides.items() if v is not None})
    serve(settings, insecure_no_auth=args.insecure_no_auth)
    return 0


def serve(settings: Settings, *, insecure_no_auth: bool = False) -> None:
    """Run until Ctrl+C or SIGTERM, then let running scans reach a stage boundary and stop."""
    from .limits import check_limits

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    check_limits(settings)  # here, not in the worker process: a bad rate stops serve (exit 2)
    check_parts(settings)
    keys_on = check_access(settings, insecure_no_auth=insecure_no_auth)
    announce = functools.partial(print_banner, settings, keys_on)
    if sys.platform == "win32":  # gunicorn needs fork(): waitress, which buffers bodies
        run_waitress(settings, announce)
    else:
        from .gunicorn_server import run_gunicorn

        run_gunicorn(settings, announce)


def print_banner(settings: Settings, keys_on: bool, port: int) -> None:
    """The one line a person starting the server reads: where to open it, and how it runs."""
    from .access import is_loopback

    if settings.broker_url:
        from ..jobs.celery_app import redacted

        where = f"scans go to the workers on {redacted(settings.broker_url)}"
    else:
        where = f"history in {settings.data_path}"
    where += "; API keys required" if keys_on else "; no API keys: open to anyone who reaches it"
    if not is_loopback(settings.host):
        where += f"; answers to host names {settings.allowed_hosts} (DEEPFAKESCAN_ALLOWED_HOSTS)"
    shown = "localhost" if settings.host in ("0.0.0.0", "::", "") else settings.host
    print(
        f"deepfakescan is running: open http://{shown}:{port}/ in a browser"
        f" ({where}; Ctrl+C to stop)",
        flush=True,
    )


def run_waitress(settings: Settings, announce: Callable[[int], None]) -> None:
    """The same app on waitress, in this process (Windows, where gunicorn does not run)."""
    from waitress import create_server

    from ..jobs.service import warm_models
    from . import create_app

    app = create_app({"SETTINGS": settings})
    service = app.extensions["deepfakescan"]
    server = create_server(
        app,
        host=settings.host,
        port=settings.port,
        threads=settings.http_threads,
        # above Flask's MAX_CONTENT_LENGTH so that Flask, not waitress, answers 413 (as JSON)
        max_request_body_size=settings.max_bytes + 64 * MiB,
        ident="deepfakescan",
    )
    if not service.distributed:  # scans run here: load the models now, not at the first upload
        threading.Thread(target=warm_models, args=(settings,), daemon=True).start()
    announce(server.effective_port)

    def stop(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        server.run()  # waitress returns on Ctrl+C / SIGTERM (KeyboardInterrupt)
    except KeyboardInterrupt:
        pass
    finally:
        log.info("stopping: running scans finish their current stage")
        signal.signal(signal.SIGTERM, previous)
        service.stop_waiting()
        server.close()
        service.close()


def check_parts(settings: Settings) -> None:
    """Refuse to start while a configured broker or database cannot be reached.

    Raises ``BrokerUnavailable`` or ``StoreUnavailable`` (the CLI prints the message and
    exits with 2): a web node that cannot queue or record scans should not take traffic.
    """
    from ..jobs.celery_app import BrokerUnavailable, ping_broker
    from ..jobs.store import open_store

    if settings.broker_url:
        try:
            ping_broker(settings.broker_url, STARTUP_CHECK_TIMEOUT_S)
        except BrokerUnavailable as e:
            raise BrokerUnavailable(f"not starting: {e.message} (DEEPFAKESCAN_BROKER_URL)") from e
    if settings.database_url:
        try:
            open_store(settings).close()  # also migrates a new database, once
        except StoreUnavailable as e:
            raise StoreUnavailable(f"not starting: {e.message} (DEEPFAKESCAN_DATABASE_URL)") from e


def check_access(settings: Settings, *, insecure_no_auth: bool = False) -> bool:
    """Refuse to start open to the network, or with keys that the page cannot sign in with.

    Returns whether API keys are required. Raises ``BadInput`` (the CLI prints the message and
    exits with 2) for keys without ``DEEPFAKESCAN_SECRET_KEY``, and for an address other than
    loopback without keys unless ``insecure_no_auth``.
    """
    from ..jobs import KeyRing
    from ..jobs.store import open_store
    from .access import is_loopback

    store = open_store(settings)
    try:
        keys_on = settings.require_keys or KeyRing(store).enabled()
    finally:
        store.close()
    if keys_on and not settings.secret_key:
        raise BadInput(
            "not starting: API keys are on but DEEPFAKESCAN_SECRET_KEY is not set; set it to a"
            " long random value (the same on every web node), e.g. `openssl rand -hex 32`"
        )
    if not keys_on and not is_loopback(settings.host) and not insecure_no_auth:
        raise BadInput(
            f"not starting: listening on {settings.host} without API keys would let anyone who"
            " reaches it read and delete every scan. Create a key (deepfakescan keys create"
            " --admin) and set DEEPFAKESCAN_SECRET_KEY, or pass --insecure-no-auth"
        )
    return keys_on
