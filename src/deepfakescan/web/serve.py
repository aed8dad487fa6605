"""``deepfakescan serve``: the web app and its scan workers in one process, on waitress.

One process on purpose: the model sessions are loaded once and shared by the worker threads,
the SQLite store needs a single writer process, and a newsroom laptop needs nothing else
running. Waitress is a production WSGI server (pure Python, no compiler, Windows too); the
Flask debug server is never used.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading

from ..config import Settings

log = logging.getLogger("deepfakescan.serve")

MiB = 1024 * 1024


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
        "--threads", type=int, help="HTTP threads (DEEPFAKESCAN_HTTP_THREADS, default 8)"
    )
    p.add_argument(
        "--workers", type=int, help="scans run at once (DEEPFAKESCAN_WORKERS, default 2)"
    )
    p.add_argument(
        "--data-dir", help="history, artifacts and pending uploads (DEEPFAKESCAN_DATA_DIR)"
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
    serve(settings)
    return 0


def serve(settings: Settings) -> None:
    """Run until Ctrl+C or SIGTERM, then let running scans reach a stage boundary and stop."""
    from waitress import create_server

    from . import create_app

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
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
    threading.Thread(target=_warm_models, args=(settings,), daemon=True).start()
    shown = "localhost" if settings.host in ("0.0.0.0", "::", "") else settings.host
    print(
        f"deepfakescan is running: open http://{shown}:{server.effective_port}/ in a browser"
        f" (history in {settings.data_path}; Ctrl+C to stop)",
        flush=True,
    )

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
        server.close()
        service.close()


def _warm_models(settings: Settings) -> None:
    """Open every valid model session now, so the first upload does not pay for it."""
    from ..detectors.bundle import list_models, load_model
    from ..errors import DeepfakescanError

    for info in list_models(settings, verify_sha=False):
        if info.valid:
            try:
                load_model(info.name, settings)
            except DeepfakescanError as e:
                log.warning("model %s not loaded: %s", info.name, e.message)
