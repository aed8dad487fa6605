"""Which parts of a deployment are up, answered within a load balancer's patience (≤ 100 ms).

The parts: the database (a trivial query, and the queue counts), the broker when one is
configured (a Redis ``PING``), and the scan workers: scaled out, the worker processes that
recorded themselves in the store lately (never a broadcast ping, which would wait for the
slowest worker); embedded, this process's thread pool. Each check runs on a small shared
thread pool and gets ``PART_TIMEOUT_S``: a part that has not answered by then is down, and its
check finishes in the background (a hung database cannot pile up more than ``_THREADS`` checks).
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..errors import DeepfakescanError
from .celery_app import ping_broker
from .service import ScanService

PART_TIMEOUT_S = 0.08
"""Each part's answer must come within this, so the whole health answer stays under 100 ms."""
_THREADS = 4

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


@dataclass
class Health:
    """The parts (``{"up": bool, "detail": str}`` each) and the queue as the store sees it."""

    parts: dict[str, dict]
    queued: int | None = None
    running: int | None = None
    workers: int | None = None

    @property
    def down(self) -> list[str]:
        return [name for name, part in self.parts.items() if not part["up"]]


def check(service: ScanService, timeout_s: float = PART_TIMEOUT_S) -> Health:
    """Check every configured part at once; a part that does not answer in time is down."""
    settings = service.settings
    checks: dict[str, Future] = {"database": _submit(_database, service)}
    if settings.broker_url:
        checks["broker"] = _submit(_broker, settings.broker_url, timeout_s)
    wait(checks.values(), timeout=timeout_s)
    health = Health(parts={})
    for name, future in checks.items():
        if not future.done():
            health.parts[name] = _part(False, f"no answer within {timeout_s * 1000:.0f} ms")
            continue
        try:
            result = future.result()
        except DeepfakescanError as e:
            health.parts[name] = _part(False, e.message)
            continue
        health.parts[name] = _part(True, result["detail"])
        health.queued = result.get("queued", health.queued)
        health.running = result.get("running", health.running)
        health.workers = result.get("workers", health.workers)
    if not service.distributed:
        health.workers = settings.workers
        health.parts["workers"] = _part(True, f"{settings.workers} scan threads in this process")
    elif health.workers is not None:
        seen = f"within {3 * settings.heartbeat_seconds:g} s"
        health.parts["workers"] = _part(
            health.workers > 0, f"{health.workers} worker processes seen {seen}"
        )
    return health


def _database(service: ScanService) -> dict:
    store = service.store
    store.ping()
    counts = store.counts()
    result = {
        "detail": store.url.get_backend_name(),
        "queued": counts["queued"],
        "running": counts["running"],
    }
    if service.distributed:
        # a worker process says it is alive every heartbeat / 2: three heartbeats is generous
        max_age = 3 * service.settings.heartbeat_seconds
        result["workers"] = len(store.live_workers(max_age))
    return result


def _broker(url: str, timeout_s: float) -> dict:
    ping_broker(url, timeout_s)
    return {"detail": urlsplit(url).scheme}


def _part(up: bool, detail: str) -> dict:
    return {"up": up, "detail": detail}


def _submit(fn, *args) -> Future:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=_THREADS, thread_name_prefix="health")
    return _pool.submit(fn, *args)
