"""``deepfakescan serve`` on gunicorn: one gthread worker process, embedded in the CLI.

Why gunicorn: it hands a request's body to the app as it comes off the socket, so an upload
is written once, straight to its final file, and refused after its first bytes when they show
it is no media (``intake.py``); waitress reads every body whole into its own buffer first. It
has no body limit of its own, so every refusal is the app's, in JSON.

One worker process with ``http_threads`` threads, on purpose: the scan workers, the model
sessions and the SQLite store live in that one process, as ``serve.py`` explains. The app is
built in the worker, after the fork (threads do not survive a fork), and gunicorn's master
only watches it: a worker that dies (a decoder crash) is started again, and the scans it was
running are picked up again (``ScanService.recover``, a bounded number of times).

Stopping: SIGTERM (or Ctrl+C) reaches the worker; requests waiting for a scan answer at once
with the scan as it stands (``stop_waiting``), then the scan service closes (running scans stop
at a stage boundary and are queued again for the next start) within ``GRACEFUL_S``.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable

from gunicorn.app.base import BaseApplication

from ..config import Settings

log = logging.getLogger("deepfakescan.serve")

GRACEFUL_S = 30
"""A stopping worker finishes its requests and its scans' current stage within this."""
BOOT_TIMEOUT_S = 120
"""The master restarts a worker silent this long; gthread's loop reports every second even
while its threads are busy, so this only bounds a stuck start."""
KEEPALIVE_S = 5


def bind_address(host: str, port: int) -> str:
    """``host:port`` as gunicorn binds it (an IPv6 address in brackets)."""
    host = host.strip("[]")
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class EmbeddedServer(BaseApplication):
    """Gunicorn configured in code (no config file, no ``GUNICORN_CMD_ARGS``) for one app.

    ``announce(port)`` is called by the master once it listens.
    """

    def __init__(self, settings: Settings, announce: Callable[[int], None]) -> None:
        self.settings = settings
        self.announce = announce
        self.service = None
        super().__init__(prog="deepfakescan serve")

    def load_config(self) -> None:
        s = self.settings
        options = {
            "bind": [bind_address(s.host, s.port)],
            "workers": 1,
            "worker_class": "gthread",
            "threads": s.http_threads,
            "timeout": BOOT_TIMEOUT_S,
            "graceful_timeout": GRACEFUL_S,
            "keepalive": KEEPALIVE_S,
            "proc_name": "deepfakescan",
            "loglevel": "warning",
            "control_socket_disable": True,  # no socket file in $HOME shared by two servers
            "when_ready": self.when_ready,
            "post_worker_init": self.post_worker_init,
            "worker_int": self.worker_int,
            "worker_exit": self.worker_exit,
        }
        for key, value in options.items():
            if key in self.cfg.settings:  # control_socket_disable is new in recent releases
                self.cfg.set(key, value)

    def load(self):
        """Build the app in the worker process (the master never does)."""
        from ..jobs.service import warm_models
        from . import create_app

        app = create_app({"SETTINGS": self.settings})
        self.service = app.extensions["deepfakescan"]
        if not self.service.distributed:  # scans run here: load the models now
            threading.Thread(target=warm_models, args=(self.settings,), daemon=True).start()
        return app

    # -- hooks (gunicorn calls them with the arbiter or the worker) --------------------------

    def when_ready(self, arbiter) -> None:
        self.announce(arbiter.LISTENERS[0].sock.getsockname()[1])

    def post_worker_init(self, worker) -> None:
        """SIGTERM (a graceful stop) also wakes the requests waiting for scans."""
        graceful = signal.getsignal(signal.SIGTERM)

        def on_term(signum, frame) -> None:
            self.stop_waiting()
            if callable(graceful):
                graceful(signum, frame)

        signal.signal(signal.SIGTERM, on_term)

    def worker_int(self, worker) -> None:
        self.stop_waiting()

    def worker_exit(self, arbiter, worker) -> None:
        """Close the scan service, not to be cut short by the master's next signal."""
        for signum in (signal.SIGINT, signal.SIGQUIT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)
        if self.service is not None:
            log.info("stopping: running scans finish their current stage")
            self.service.stop_waiting()
            self.service.close()

    def stop_waiting(self) -> None:
        if self.service is not None:
            self.service.stop_waiting()


def run_gunicorn(settings: Settings, announce: Callable[[int], None]) -> None:
    """Serve until SIGTERM or Ctrl+C; returns once the worker has stopped."""
    try:
        EmbeddedServer(settings, announce).run()
    except SystemExit as e:  # gunicorn's master leaves through sys.exit
        if e.code not in (None, 0):
            raise
