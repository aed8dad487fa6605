"""One Settings object: every limit and location, with its default and environment variable.

Bytes and still-image pixels are hard limits (``TooLarge``, HTTP 413), checked before decoding.
Durations and frame counts bound the work instead: only the first N seconds / N sampled frames
are analysed, and the report says so. Read the environment once with ``Settings.from_env()``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

MiB = 1024 * 1024

# name of the field -> environment variable that overrides it
ENV_VARS = {
    "max_bytes": "DEEPFAKESCAN_MAX_BYTES",
    "max_image_pixels": "DEEPFAKESCAN_MAX_PIXELS",
    "decode_pixels": "DEEPFAKESCAN_DECODE_PIXELS",
    "max_audio_seconds": "DEEPFAKESCAN_MAX_AUDIO_SECONDS",
    "max_video_seconds": "DEEPFAKESCAN_MAX_VIDEO_SECONDS",
    "video_frames": "DEEPFAKESCAN_VIDEO_FRAMES",
    "max_video_frames": "DEEPFAKESCAN_MAX_VIDEO_FRAMES",
    "detection_max_side": "DEEPFAKESCAN_DETECTION_MAX_SIDE",
    "image_min_face": "DEEPFAKESCAN_IMAGE_MIN_FACE",
    "video_detection_max_side": "DEEPFAKESCAN_VIDEO_DETECTION_MAX_SIDE",
    "video_min_face": "DEEPFAKESCAN_VIDEO_MIN_FACE",
    "audio_block_seconds": "DEEPFAKESCAN_AUDIO_BLOCK_SECONDS",
    "model_dir": "DEEPFAKESCAN_MODEL_DIR",
    "threads": "DEEPFAKESCAN_THREADS",
    "data_dir": "DEEPFAKESCAN_DATA_DIR",
    "workers": "DEEPFAKESCAN_WORKERS",
    "retention_days": "DEEPFAKESCAN_RETENTION_DAYS",
    "host": "DEEPFAKESCAN_HOST",
    "port": "DEEPFAKESCAN_PORT",
    "http_threads": "DEEPFAKESCAN_HTTP_THREADS",
    "database_url": "DEEPFAKESCAN_DATABASE_URL",
    "broker_url": "DEEPFAKESCAN_BROKER_URL",
    "heartbeat_seconds": "DEEPFAKESCAN_HEARTBEAT_SECONDS",
    "stale_seconds": "DEEPFAKESCAN_STALE_SECONDS",
    "requeue_seconds": "DEEPFAKESCAN_REQUEUE_SECONDS",
    "c2pa_trust": "DEEPFAKESCAN_C2PA_TRUST",
    "require_keys": "DEEPFAKESCAN_REQUIRE_KEYS",
    "secret_key": "DEEPFAKESCAN_SECRET_KEY",
    "allowed_hosts": "DEEPFAKESCAN_ALLOWED_HOSTS",
    "cors_origins": "DEEPFAKESCAN_CORS_ORIGINS",
    "upload_rate": "DEEPFAKESCAN_UPLOAD_RATE",
    "upload_bytes_per_hour": "DEEPFAKESCAN_UPLOAD_BYTES_PER_HOUR",
    "max_queued": "DEEPFAKESCAN_MAX_QUEUED",
    "max_wait_seconds": "DEEPFAKESCAN_MAX_WAIT_SECONDS",
}
BOOLEANS = {"1": True, "true": True, "yes": True, "on": True}
BOOLEANS |= {"0": False, "false": False, "no": False, "off": False}
LOOPBACK_NAMES = "localhost,127.0.0.1,::1"
"""Host names a server bound to loopback answers to: anything else is DNS rebinding."""


@dataclass(frozen=True)
class Settings:
    """Limits and locations shared by every interface (CLI, API, Python)."""

    max_bytes: int = 500 * MiB
    """Hard limit on the size of one input, in bytes (413 above it)."""
    max_image_pixels: int = 64_000_000
    """Hard limit on width x height of a still image, read from its header (413 above it)."""
    decode_pixels: int = 24_000_000
    """A still image or video frame larger than this is analysed at a reduced size (a whole
    factor on each side; JPEG and video frames decode directly small): memory stays bounded
    and 48-50 MP photos and 8K video still scan. The report says so; face boxes stay in the
    file's pixels."""
    max_audio_seconds: float = 1800.0
    """Only the first N seconds of an audio file (or a video's audio track) are analysed."""
    max_video_seconds: float = 4 * 3600.0
    """Frames are sampled from the first N seconds of a video."""
    video_frames: int = 32
    """Frames sampled evenly across a video."""
    max_video_frames: int = 256
    """Upper bound on ``video_frames`` whatever a caller asks for."""
    detection_max_side: int = 1280
    """Frames and images are downscaled to at most this side before face detection."""
    image_min_face: float = 0.05
    """Smallest face searched in a photo, as a share of its shorter side (never under 20 px):
    faces smaller than that are too small to judge, and skipping them makes detection fast."""
    video_detection_max_side: int = 640
    """Video frames are downscaled to at most this side before face detection: 32 frames must
    cost what one photo does, and faces too small to survive this are too small to judge."""
    video_min_face: float = 0.06
    """Smallest face searched in a video frame, as a share of the detection image's shorter
    side (never under MTCNN's 20 px): a larger minimum makes the detector's pyramid smaller."""
    audio_block_seconds: float = 30.0
    """Block length when audio is decoded as a stream."""
    model_dir: Path | None = None
    """Extra model directory whose bundles override the shipped ones."""
    threads: int = 2
    """Intra-op threads for ONNX Runtime sessions."""
    data_dir: Path | None = None
    """Where ``deepfakescan serve`` keeps its scan history (SQLite), artifacts and pending
    uploads; ``$XDG_DATA_HOME/deepfakescan`` (``~/.local/share/deepfakescan``) when unset."""
    workers: int = 2
    """Scans the web server runs at once (worker threads); more queue up."""
    retention_days: float = 7.0
    """Artifacts (previews, heatmaps, thumbnails) of finished scans are deleted after N days."""
    host: str = "127.0.0.1"
    """Address ``deepfakescan serve`` listens on (loopback only by default)."""
    port: int = 8000
    """Port ``deepfakescan serve`` listens on."""
    http_threads: int = 16
    """Threads of the WSGI server answering HTTP requests (scans run on ``workers``). Uploads,
    which stream their body and may wait for their scan, hold at most three quarters of them
    (more get 429), so health, status polls and the page always have threads to answer."""
    database_url: str | None = None
    """Where the scan history lives: ``postgresql://...`` for a history shared by many web
    nodes and workers, ``sqlite:///...`` (one host only); unset: SQLite under ``data_dir``."""
    broker_url: str | None = None
    """``redis://...``: scans are queued to Celery workers (``deepfakescan worker``) instead of
    running on this process's threads. Unset: the embedded thread pool."""
    heartbeat_seconds: float = 10.0
    """A running scan refreshes its heartbeat in the store this often; a worker process says it
    is alive twice as often (health counts workers seen within three heartbeats)."""
    stale_seconds: float = 60.0
    """A running scan whose heartbeat is older than this has lost its worker: the next delivery
    or the reconciler gives it to another worker. Keep it well above ``heartbeat_seconds``."""
    requeue_seconds: float = 30.0
    """A scan queued this long while a worker sat idle lost its message (a broker restarted
    without persistence): the reconciler, which runs twice as often, sends it again."""
    c2pa_trust: Path | None = None
    """PEM bundle of the C2PA signers' root certificates the operator trusts. A camera-capture
    manifest supports a ``real`` verdict only when its signer chains to one of them; unset,
    no signer is trusted (signatures are still checked)."""
    require_keys: bool = False
    """Every request but the page shell, static files and health needs an API key, even before
    the first key exists (a deployment turns this on; ``deepfakescan keys create`` makes keys).
    Off, keys are required as soon as one has been created."""
    secret_key: str | None = field(default=None, repr=False)
    """Signs the page's session cookie; the same value on every web node. Needed with keys."""
    allowed_hosts: str = LOOPBACK_NAMES
    """Comma-separated host names the server answers to (the ``Host`` header, without port);
    ``*`` for any. Others get 400: a page on another site cannot reach us by DNS rebinding."""
    cors_origins: str | None = None
    """Comma-separated origins (``https://newsroom.example``) whose pages may call the API with
    a Bearer key; unset, no cross-origin reads."""
    upload_rate: str = "60/minute"
    """Uploads per API key (or per client address without keys), in Flask-Limiter's notation
    (``10/minute;200/day``); over it: 429 with ``Retry-After``."""
    upload_bytes_per_hour: int = 16 * 1024 * MiB
    """Upload bytes per API key (or client address) per hour; over it: 429."""
    max_queued: int = 200
    """Scans waiting in the queue at most; a new upload beyond it gets 429 (try later)."""
    max_wait_seconds: float = 60.0
    """The longest a request waits for its scan (``?wait=``, ``POST /predict``) while holding
    an HTTP thread; after it ``?wait=`` answers 202 with the scan, ``/predict`` 504."""

    @property
    def data_path(self) -> Path:
        """``data_dir``, or the XDG default: history must outlive the process, so not /tmp."""
        if self.data_dir is not None:
            return Path(self.data_dir)
        xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
        return Path(xdg) / "deepfakescan"

    @property
    def host_names(self) -> tuple[str, ...]:
        """``allowed_hosts`` as lower-case names (``[::1]`` and ``::1`` alike)."""
        return _split(self.allowed_hosts.replace("[", "").replace("]", "").lower())

    @property
    def cors_origin_list(self) -> tuple[str, ...]:
        return _split(self.cors_origins or "")

    @property
    def db_path(self) -> Path:
        """The SQLite file holding scans, reports and artifacts."""
        return self.data_path / "scans.sqlite3"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides) -> Settings:
        """Defaults, then environment variables, then explicit keyword overrides."""
        env = os.environ if env is None else env
        values: dict = {}
        types = {f.name: f.type for f in fields(cls)}
        for name, var in ENV_VARS.items():
            raw = env.get(var)
            if raw is None or raw == "":
                continue
            values[name] = _parse(name, types[name], raw, var)
        values.update(overrides)
        return cls(**values)


def _split(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _parse(name: str, type_: str, raw: str, var: str):
    if str(type_) == "bool":
        if raw.strip().lower() not in BOOLEANS:
            raise ValueError(f"{var}={raw!r} is not one of true/false, yes/no, on/off, 1/0")
        return BOOLEANS[raw.strip().lower()]
    try:
        if "Path" in str(type_):
            return Path(raw).expanduser()
        if str(type_) in ("str", "str | None"):
            return raw
        value = int(raw) if "int" in str(type_) else float(raw)
    except ValueError as e:
        raise ValueError(f"{var}={raw!r} is not a valid number for {name}") from e
    if value <= 0:
        raise ValueError(f"{var}={raw!r} must be positive")
    return value
