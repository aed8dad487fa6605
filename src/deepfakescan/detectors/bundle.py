"""One loader for every model: ``name.onnx`` + ``name.json`` (its card) → a ready ``ModelBundle``.

Bundles ship in ``deepfakescan/models/``; ``Settings.model_dir`` (``DEEPFAKESCAN_MODEL_DIR``) adds a
directory whose bundles override shipped ones of the same name, so a model trained elsewhere
plugs in without touching the package. The loader refuses rather than guesses: an invalid card, a
graph whose sha256 differs from its card, or a card that does not match the graph's inputs and
outputs is a ``ModelMissing`` (503) with a message saying what to fix.

Sessions are heavy, so they are opened once per process and cached per (file, threads); the cache
notices a replaced file by its modification time. The web server calls ``load_model`` from worker
threads, hence the lock.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import onnxruntime as ort

from ..config import Settings
from ..errors import ModelMissing
from ..report import ModelRef
from .card import BINARY_KINDS, read_card

SHIPPED_DIR = Path(__file__).resolve().parent.parent / "models"
"""Bundles that ship with the package (package data)."""

TASK_BUNDLES = {"image-detector": "image", "image-family": "family", "audio-detector": "audio"}
"""The bundle name a missing-model message suggests for each task."""

ModelSource = Literal["shipped", "model_dir"]
"""Where a bundle was found: package data, or ``Settings.model_dir``."""
MODEL_SOURCES: tuple[ModelSource, ...] = get_args(ModelSource)

_EPS = 1e-7
"""Probabilities are clipped to [eps, 1 - eps] before taking their logit, so 0 and 1 stay finite."""

_ORT_TYPES = {
    "float32": "tensor(float)",
    "float16": "tensor(float16)",
    "float64": "tensor(double)",
    "int64": "tensor(int64)",
    "int32": "tensor(int32)",
    "uint8": "tensor(uint8)",
    "int8": "tensor(int8)",
    "bool": "tensor(bool)",
}

_cache: dict[tuple[Path, int], tuple[tuple[int, int], ModelBundle]] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class ModelInfo:
    """One line of ``deepfakescan models``: what is installed, where, and whether it loads."""

    name: str
    path: Path
    """The ``.onnx`` file (which may be missing when ``valid`` is false)."""
    version: str | None = None
    task: str | None = None
    source: ModelSource = "shipped"
    """``"shipped"`` (package data) or ``"model_dir"`` (``DEEPFAKESCAN_MODEL_DIR``)."""
    overridden: bool = False
    """True when this bundle comes from the model directory and hides a shipped one."""
    valid: bool = True
    problem: str | None = None
    """Why the bundle cannot be loaded, when ``valid`` is false."""
    summary: dict[str, Any] = field(default_factory=dict)
    """Description, licence, inputs, labels, threshold, uncertain band and held-out metrics."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": str(self.path),
            "version": self.version,
            "task": self.task,
            "source": self.source,
            "overridden": self.overridden,
            "valid": self.valid,
            "problem": self.problem,
            **self.summary,
        }


class ModelBundle:
    """An open ONNX Runtime session with its card: how to feed it and how to read its output.

    Built by ``load_model``; do not construct one yourself (the loader checks the card against the
    graph and caches the session).
    """

    def __init__(self, card: dict, path: Path, session: ort.InferenceSession) -> None:
        self.card = card
        self.path = path
        self.session = session
        self.name: str = card["name"]
        self.version: str = card["version"]
        self.task: str = card["task"]
        self.labels: list[str] = list(card["labels"])
        self.threshold: float = float(card["threshold"])
        self.uncertain_band: tuple[float, float] = tuple(map(float, card["uncertain_band"]))
        self.input_names: list[str] = [spec["name"] for spec in card["inputs"]]
        self.output_names: list[str] = [spec["name"] for spec in card["outputs"]]
        self._dtypes = {spec["name"]: np.dtype(spec["dtype"]) for spec in card["inputs"]}

    def __repr__(self) -> str:
        return f"ModelBundle({self.name!r}, version={self.version!r}, path={str(self.path)!r})"

    def run(self, feeds: dict[str, np.ndarray] | np.ndarray) -> dict[str, np.ndarray]:
        """Run the graph; a bare array feeds the first input. Returns the card's outputs by name.

        Arrays are cast to the dtype the card declares (float64 from NumPy becomes float32), so
        callers need not know the graph's precision.
        """
        if not isinstance(feeds, dict):
            feeds = {self.input_names[0]: feeds}
        unknown = set(feeds) - set(self.input_names)
        if unknown:
            raise ValueError(
                f"model {self.name!r} has no input {sorted(unknown)}; inputs = {self.input_names}"
            )
        feeds = {k: np.asarray(v, dtype=self._dtypes[k]) for k, v in feeds.items()}
        values = self.session.run(self.output_names, feeds)
        return dict(zip(self.output_names, values, strict=True))

    def calibrate(self, raw: np.ndarray) -> np.ndarray:
        """Calibrated probabilities from the first output, per its kind and the card's calibration.

        Binary outputs (``logit``/``probability``, or two columns labelled real/fake) give the
        probability of "fake", shape (N,). Multi-class outputs give a (N, C) row-stochastic array
        in the order of ``labels``; only temperature scaling applies to them.
        """
        kind = self.card["outputs"][0]["kind"]
        z = np.asarray(raw, dtype=np.float64)
        if kind in ("map", "raw"):
            raise ValueError(f"model {self.name!r} outputs a {kind}, not a class score")
        if kind in BINARY_KINDS:
            if z.ndim >= 1 and z.shape[-1] == 1:
                z = z[..., 0]
            if kind == "probability":
                if self.card["calibration"]["method"] == "none":
                    return np.clip(z, 0.0, 1.0)
                z = _logit(z)
            return _sigmoid(self._scale(z))
        if z.shape[-1] != len(self.labels):
            raise ValueError(
                f"model {self.name!r} gave {z.shape[-1]} columns for {len(self.labels)} labels"
            )
        if kind == "probabilities":
            z = np.log(np.clip(z, _EPS, 1.0))
        if len(self.labels) == 2 and "fake" in self.labels:
            fake = self.labels.index("fake")
            # softmax over two columns is the sigmoid of their difference
            return _sigmoid(self._scale(z[..., fake] - z[..., 1 - fake]))
        z = self._scale(z)
        z = np.exp(z - z.max(axis=-1, keepdims=True))
        return z / z.sum(axis=-1, keepdims=True)

    def predict(self, feeds: dict[str, np.ndarray] | np.ndarray) -> np.ndarray:
        """``calibrate(run(feeds)[first output])``: the calibrated scores the detectors use."""
        return self.calibrate(self.run(feeds)[self.output_names[0]])

    def ref(self, role: str) -> ModelRef:
        """How a report names this model (name, version, and what it was used for)."""
        return ModelRef(name=self.name, version=self.version, role=role)

    def _scale(self, z: np.ndarray) -> np.ndarray:
        cal = self.card["calibration"]
        if cal["method"] == "temperature":
            return z / float(cal["temperature"])
        if cal["method"] == "platt":
            return float(cal["a"]) * z + float(cal["b"])
        return z


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # no overflow warning for large |z|


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1.0 - _EPS)
    return np.log(p) - np.log1p(-p)


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in blocks (what a card's ``sha256`` must hold)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _bundle_dirs(settings: Settings) -> list[tuple[Path, bool]]:
    """(directory, is_override) pairs, shipped first so that the model directory wins."""
    dirs = [(SHIPPED_DIR, False)]
    if settings.model_dir is not None:
        dirs.append((Path(settings.model_dir).expanduser(), True))
    return dirs


def _discover(settings: Settings) -> dict[str, tuple[Path, bool, bool]]:
    """name -> (onnx path, from the model dir, hides a shipped bundle), per .onnx or .json stem."""
    found: dict[str, tuple[Path, bool, bool]] = {}
    for directory, is_override in _bundle_dirs(settings):
        if not directory.is_dir():
            continue
        stems = {p.stem for p in directory.glob("*.onnx")} | {
            p.stem for p in directory.glob("*.json")
        }
        for stem in sorted(stems):
            found[stem] = (directory / f"{stem}.onnx", is_override, is_override and stem in found)
    return found


def _problem(name: str, onnx_path: Path, *, verify_sha: bool) -> tuple[dict | None, str | None]:
    """(card, None) for a usable bundle, else (card or None, why not); never raises."""
    card_path = onnx_path.with_suffix(".json")
    if not card_path.is_file():
        return None, f"no model card: {card_path.name} is missing beside {onnx_path.name}"
    try:
        card = read_card(card_path)
    except ModelMissing as e:
        return None, e.message
    if not onnx_path.is_file():
        return card, f"no graph: {onnx_path.name} is missing beside {card_path.name}"
    if card["name"] != name:
        return card, f"card {card_path} names the model {card['name']!r}, not {name!r}"
    if verify_sha:
        actual = file_sha256(onnx_path)
        if actual != card["sha256"]:
            return card, _sha_problem(onnx_path, actual, card)
    return card, None


def _sha_problem(onnx_path: Path, actual: str, card: dict) -> str:
    return (
        f"{onnx_path} does not match its card: sha256 is {actual}, the card says "
        f"{card['sha256']}; re-export the model or update the card's sha256"
    )


def list_models(settings: Settings | None = None, *, verify_sha: bool = True) -> list[ModelInfo]:
    """Every bundle that ``load_model`` would see, broken ones included with their problem.

    Never raises for a bad bundle: the listing is how a user finds out what is wrong. Sessions
    are not opened, so a graph that does not match its card's inputs is only caught on load.
    """
    settings = settings or Settings.from_env()
    infos = []
    for name, (path, from_dir, overridden) in sorted(_discover(settings).items()):
        card, problem = _problem(name, path, verify_sha=verify_sha)
        summary = {}
        if card is not None:
            keys = (
                "description",
                "licence",
                "inputs",
                "labels",
                "threshold",
                "uncertain_band",
                "metrics",
            )
            summary = {k: card[k] for k in keys}
        infos.append(
            ModelInfo(
                name=name,
                path=path,
                version=card["version"] if card else None,
                task=card["task"] if card else None,
                source="model_dir" if from_dir else "shipped",
                overridden=overridden,
                valid=problem is None,
                problem=problem,
                summary=summary,
            )
        )
    return infos


def load_model(name: str, settings: Settings | None = None) -> ModelBundle:
    """The bundle called ``name``, checked and with its session open (cached per process).

    Raises ``ModelMissing`` for an unknown name (listing the available ones) and for a bundle
    that is invalid, altered (sha256) or does not match its graph.
    """
    settings = settings or Settings.from_env()
    found = _discover(settings)
    if name not in found:
        available = sorted(
            n for n, (p, *_) in found.items() if _problem(n, p, verify_sha=False)[1] is None
        )
        raise ModelMissing(f"no model named {name!r}; available models = {available}")
    onnx_path = found[name][0]
    card_path = onnx_path.with_suffix(".json")
    key = (onnx_path.resolve(), settings.threads)
    # one lock for every model: a first load briefly delays other lookups; inference never locks
    with _lock:
        try:
            stamp = (onnx_path.stat().st_mtime_ns, card_path.stat().st_mtime_ns)
        except OSError:
            stamp = None
        cached = _cache.get(key)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        card, problem = _problem(name, onnx_path, verify_sha=False)
        if problem is not None:
            raise ModelMissing(f"model {name!r} cannot be loaded: {problem}")
        # hash the very bytes we hand to ONNX Runtime, so a file swapped in between is caught
        graph = onnx_path.read_bytes()
        actual = hashlib.sha256(graph).hexdigest()
        if actual != card["sha256"]:
            raise ModelMissing(
                f"model {name!r} cannot be loaded: " + _sha_problem(onnx_path, actual, card)
            )
        bundle = ModelBundle(card, onnx_path, _open_session(graph, onnx_path, card, settings))
        _cache[key] = (stamp, bundle)
        return bundle


def require_model(name: str, settings: Settings | None = None, *, what: str) -> ModelBundle:
    """``load_model`` for the pipeline: a missing model says how to install one.

    ``what`` is the user's word for the input (``"images"``, ``"audio"``), as in "no model
    installed for images: put image.onnx + image.json in the model directory ...".
    """
    settings = settings or Settings.from_env()
    if name not in _discover(settings):
        raise ModelMissing(_install_hint(what, name))
    return load_model(name, settings)


def optional_model(
    name: str, settings: Settings | None = None
) -> tuple[ModelBundle | None, str | None]:
    """``(bundle, None)``, or ``(None, why it is unavailable)`` for a model a scan can do without
    (the family classifier; one of a video's two detectors): the caller says what it skipped."""
    try:
        return load_model(name, settings), None
    except ModelMissing as e:
        return None, e.message


def find_model(
    task: str, settings: Settings | None = None, *, what: str | None = None
) -> ModelBundle:
    """The first loadable bundle whose card says ``task`` (model directory first, then by name)."""
    settings = settings or Settings.from_env()
    infos = [i for i in list_models(settings, verify_sha=False) if i.valid and i.task == task]
    infos.sort(key=lambda i: (i.source != "model_dir", i.name))
    if not infos:
        raise ModelMissing(_install_hint(what or task, TASK_BUNDLES.get(task, task)))
    return load_model(infos[0].name, settings)


def clear_cache() -> None:
    """Forget every open session (tests; a server reloading its models)."""
    with _lock:
        _cache.clear()


def _install_hint(what: str, name: str) -> str:
    return (
        f"no model installed for {what}: put {name}.onnx + {name}.json in the model directory "
        "(DEEPFAKESCAN_MODEL_DIR) or install a release that ships one"
    )


def _open_session(graph: bytes, path: Path, card: dict, settings: Settings) -> ort.InferenceSession:
    """Open the graph on CPU and check that the card describes it; wrap ORT's own message.

    The graph is given as bytes (those we hashed); a graph with external weight files is
    therefore not supported: export with the weights inside the .onnx (under 2 GB).
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = settings.threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    # A scan runs several small sessions (three MTCNN stages, the detector) beside decoding on
    # few cores; spinning idle workers steal those cores (measured: 11.6 s -> 4.6 s on a 30 s
    # 720p clip, benchmarks/bench_video.py), so idle threads sleep instead.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        session = ort.InferenceSession(
            graph, sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as e:  # ORT raises its own (unexported) exception types
        raise ModelMissing(f"model {card['name']!r}: ONNX Runtime cannot load {path}: {e}") from e
    problems = _mismatches(card, session)
    if problems:
        raise ModelMissing(
            f"model card for {card['name']!r} does not match {path}: " + "; ".join(problems)
        )
    return session


def _mismatches(card: dict, session: ort.InferenceSession) -> list[str]:
    graph_inputs = {i.name: i for i in session.get_inputs()}
    graph_outputs = {o.name for o in session.get_outputs()}
    declared = [spec["name"] for spec in card["inputs"]]
    problems = []
    if set(declared) != set(graph_inputs):
        problems.append(f"card inputs {declared} but graph inputs {list(graph_inputs)}")
    for spec in card["inputs"]:
        node = graph_inputs.get(spec["name"])
        if node is None:
            continue
        if node.type != _ORT_TYPES[spec["dtype"]]:
            problems.append(f"input {spec['name']!r} is {node.type}, card says {spec['dtype']}")
        shape = node.shape
        fixed = zip(spec["shape"], shape, strict=False)
        if len(spec["shape"]) != len(shape) or any(
            isinstance(a, int) and isinstance(b, int) and a != b for a, b in fixed
        ):
            problems.append(f"input {spec['name']!r} has shape {shape}, card says {spec['shape']}")
    missing = [spec["name"] for spec in card["outputs"] if spec["name"] not in graph_outputs]
    if missing:
        problems.append(f"card outputs {missing} are not graph outputs {sorted(graph_outputs)}")
    return problems


def to_batch(crops: list[np.ndarray] | np.ndarray, spec: dict) -> np.ndarray:
    """Stack uint8 (S, S, 3) crops into the float32 batch the card describes (NCHW or NHWC)."""
    pre = spec.get("preprocessing", {})
    x = np.stack(crops).astype(np.float32) / 255.0
    x = (x - np.asarray(pre.get("mean", [0.0] * 3), np.float32)) / np.asarray(
        pre.get("std", [1.0] * 3), np.float32
    )
    if spec.get("layout", "NCHW") == "NCHW":
        x = x.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(x)
