"""The Celery app that web nodes and ``deepfakescan worker`` share, and a broker check.

A web node only sends messages (``send_task`` by name, so it never imports the worker's code);
a message carries the scan id alone, because the upload sits on the shared data volume and
everything else about the scan (status, progress, cancellation, the report) lives in the job
store. There is no result backend for the same reason.

Delivery is "at least once": ``task_acks_late`` acknowledges a message only when its scan has
returned, ``task_reject_on_worker_lost`` puts it back when the process running it dies, and a
prefetch of 1 keeps a busy worker from hoarding messages an idle one could run. A message may
therefore arrive twice; ``JobStore.start`` is the guard (a finished scan is never redone, a
running one with a fresh heartbeat is not started again).

Celery is imported inside the functions: it is the ``[scale]`` extra, and the embedded mode
(``deepfakescan serve`` with nothing configured) must not need it.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from ..config import Settings
from ..errors import DeepfakescanError

if TYPE_CHECKING:
    from celery import Celery

TASK_NAME = "deepfakescan.scan"
QUEUE = "deepfakescan"
"""Our own queue name, so the broker can be shared with other Celery apps."""
VISIBILITY_TIMEOUT_S = 4 * 3600.0
"""Redis hands an unacknowledged message to another worker after this long. It must exceed
the longest scan, or a scan still running would be delivered again: a scan is bounded by the
frame and seconds limits (minutes on a laptop CPU), so four hours is a wide margin. A worker
that died does not make its scans wait this long: the reconciler re-sends a scan as soon as its
heartbeat is ``stale_seconds`` old."""
PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}
"""A web node tries a broken broker connection briefly, then leaves the scan queued in the
store for the reconciler: an upload request must not hang on a broker that is away."""


class BrokerUnavailable(DeepfakescanError):
    """The configured message broker (``DEEPFAKESCAN_BROKER_URL``) does not answer."""

    status = 503
    code = "broker_unavailable"


SCALE_EXTRA = "pip install 'deepfakescan[scale]'"


def make_celery(settings: Settings) -> Celery:
    """A Celery app on ``settings.broker_url`` with the delivery guarantees scans need."""
    try:
        from celery import Celery
    except ModuleNotFoundError as e:  # a broker URL set without the extra: say how to fix it
        raise BrokerUnavailable(
            f"{e.name} is needed for DEEPFAKESCAN_BROKER_URL: {SCALE_EXTRA}"
        ) from e

    if not settings.broker_url:
        raise ValueError("make_celery needs DEEPFAKESCAN_BROKER_URL")
    app = Celery("deepfakescan", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_default_queue=QUEUE,
        task_publish_retry_policy=PUBLISH_RETRY,
        broker_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT_S},
        broker_connection_timeout=3.0,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # a worker outlives a broker outage, however long
        # a running scan keeps going while the broker is away: its state is in the store
        worker_cancel_long_running_tasks_on_connection_loss=False,
        worker_hijack_root_logger=True,
        worker_redirect_stdouts=False,
    )
    return app


def ping_broker(url: str, timeout_s: float) -> None:
    """One round trip to the broker; raises ``BrokerUnavailable`` naming it and the reason.

    Redis gets a ``PING`` on a cached client with socket timeouts of ``timeout_s``, cheap
    enough for every health request; another broker gets a connection attempt through kombu.
    """
    try:
        if urlsplit(url).scheme in ("redis", "rediss"):
            _redis_client(url, timeout_s).ping()
        else:
            from kombu import Connection

            with Connection(url, connect_timeout=timeout_s) as conn:
                conn.ensure_connection(max_retries=1, timeout=timeout_s)
    except ModuleNotFoundError as e:
        raise BrokerUnavailable(
            f"{e.name} is needed for DEEPFAKESCAN_BROKER_URL: {SCALE_EXTRA}"
        ) from e
    except Exception as e:  # redis, kombu and socket errors alike: the broker is not there
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise BrokerUnavailable(f"the broker {redacted(url)} does not answer: {reason}") from e


@functools.lru_cache(maxsize=8)
def _redis_client(url: str, timeout_s: float):
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    # no retries: a health check must answer within its budget, not try again
    return redis.Redis.from_url(
        url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, retry=Retry(NoBackoff(), 0)
    )


def redacted(url: str) -> str:
    """``url`` without its password, fit for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    netloc = f"{parts.username or ''}:***@{host}"
    return urlunsplit(parts._replace(netloc=netloc))
