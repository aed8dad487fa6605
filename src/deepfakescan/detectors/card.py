"""The model card: the JSON beside every ``name.onnx`` that says how to feed and read the model.

The formal contract is ``docs/model-card.schema.json``; the test suite validates every card
against it. At run time we check the same rules by hand (``check_card``) so that ``jsonschema``
stays a development dependency, and we add the rules a JSON Schema cannot say
(``low <= threshold <= high``, a "fake" label for binary outputs). Keep the two in step: the
tests feed the same broken cards to both.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from ..errors import ModelMissing

REQUIRED_FIELDS = (
    "name",
    "version",
    "task",
    "description",
    "inputs",
    "outputs",
    "labels",
    "calibration",
    "threshold",
    "uncertain_band",
    "training",
    "metrics",
    "licence",
    "sha256",
)
"""Every top-level field of a card; none is optional and no other is allowed."""

OUTPUT_KINDS = ("logit", "probability", "logits", "probabilities", "map", "raw")
"""``logit``/``probability``: one score per item (shape (N,) or (N, 1)); ``logits``/
``probabilities``: one column per label; ``map``/``raw``: not a class score, never calibrated."""

BINARY_KINDS = ("logit", "probability")
DTYPES = ("float32", "float16", "float64", "int64", "int32", "uint8", "int8", "bool")
LAYOUTS = ("NCHW", "NHWC", "NC", "NTC", "NCT", "NT", "N")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
TASK = re.compile(r"^[a-z][a-z0-9-]{0,63}$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")


def read_card(path: Path) -> dict:
    """Parse and check the card at ``path``; ``ModelMissing`` names the file and every problem."""
    try:
        card = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise ModelMissing(f"cannot read model card {path}: {e.strerror or e}") from e
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelMissing(f"model card {path} is not valid JSON: {e}") from e
    problems = check_card(card)
    if problems:
        raise ModelMissing(f"model card {path} is invalid: " + "; ".join(problems))
    return card


def check_card(card: Any) -> list[str]:
    """Every problem with ``card``, as plain sentences naming the field; empty when valid."""
    if not isinstance(card, dict):
        return ["the card must be a JSON object"]
    problems = [f"missing required field {key!r}" for key in REQUIRED_FIELDS if key not in card]
    problems += [f"unknown field {key!r}" for key in card if key not in REQUIRED_FIELDS]
    for key, check in _CHECKS.items():
        if key in card:
            # nested checks already name their path ("inputs[0].dtype ..."); others get the key
            problems += [p if p.startswith(key) else f"{key}: {p}" for p in check(card[key])]
    if not problems:
        problems += _cross_checks(card)
    return problems


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _string(pattern: re.Pattern | None = None, what: str = "") -> Any:
    def check(value: Any) -> list[str]:
        if not isinstance(value, str) or not value:
            return ["must be a non-empty string"]
        if pattern is not None and not pattern.match(value):
            return [f"{value!r} is not {what}"]
        return []

    return check


def _inputs(value: Any) -> list[str]:
    if not isinstance(value, list) or not value:
        return ["must be a non-empty list"]
    problems = []
    for i, spec in enumerate(value):
        where = f"inputs[{i}]"
        if not isinstance(spec, dict):
            problems.append(f"{where} must be an object")
            continue
        for key in ("name", "layout", "shape", "dtype"):
            if key not in spec:
                problems.append(f"{where} is missing {key!r}")
        if "name" in spec and not (isinstance(spec["name"], str) and spec["name"]):
            problems.append(f"{where}.name must be a non-empty string")
        if "layout" in spec and spec["layout"] not in LAYOUTS:
            problems.append(f"{where}.layout {spec['layout']!r} is not one of {list(LAYOUTS)}")
        shape = spec.get("shape", [])
        if not isinstance(shape, list) or not all(
            d is None or (isinstance(d, int) and not isinstance(d, bool) and d > 0) for d in shape
        ):
            problems.append(f"{where}.shape must be a list of positive ints or null (dynamic)")
        if "dtype" in spec and spec["dtype"] not in DTYPES:
            problems.append(f"{where}.dtype {spec['dtype']!r} is not one of {list(DTYPES)}")
        if "preprocessing" in spec and not isinstance(spec["preprocessing"], dict):
            problems.append(f"{where}.preprocessing must be an object")
    return problems


def _outputs(value: Any) -> list[str]:
    if not isinstance(value, list) or not value:
        return ["must be a non-empty list"]
    problems = []
    for i, spec in enumerate(value):
        if not isinstance(spec, dict):
            problems.append(f"outputs[{i}] must be an object")
            continue
        if not (isinstance(spec.get("name"), str) and spec["name"]):
            problems.append(f"outputs[{i}] is missing 'name'")
        if spec.get("kind") not in OUTPUT_KINDS:
            problems.append(f"outputs[{i}].kind must be one of {list(OUTPUT_KINDS)}")
    return problems


def _labels(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(x, str) and x for x in value):
        return ["must be a list of class names"]
    if len(set(value)) != len(value):
        return ["class names must be unique"]
    return []


def _calibration(value: Any) -> list[str]:
    if not isinstance(value, dict):
        return ["must be an object with a 'method'"]
    method = value.get("method")
    expected = {"none": set(), "temperature": {"temperature"}, "platt": {"a", "b"}}
    if method not in expected:
        return [f"method must be one of {list(expected)}"]
    problems = [f"{method} needs {k!r}" for k in sorted(expected[method] - set(value))]
    problems += [
        f"{k!r} is not a parameter of {method}" for k in set(value) - expected[method] - {"method"}
    ]
    given = expected[method] & set(value)
    problems += [f"{k!r} must be a number" for k in sorted(given) if not _is_number(value[k])]
    temperature = value.get("temperature")
    if method == "temperature" and _is_number(temperature) and temperature <= 0:
        problems.append("temperature must be positive")
    return problems


def _probability(value: Any) -> list[str]:
    return [] if _is_number(value) and 0 <= value <= 1 else ["must be a number in [0, 1]"]


def _band(value: Any) -> list[str]:
    if not (
        isinstance(value, list) and len(value) == 2 and all(_probability(v) == [] for v in value)
    ):
        return ["must be [low, high] with both in [0, 1]"]
    return []


def _training(value: Any) -> list[str]:
    if not isinstance(value, dict):
        return ["must be an object with 'sources' and 'command'"]
    problems = [f"missing {k!r}" for k in ("sources", "command") if k not in value]
    sources = value.get("sources", [])
    if not isinstance(sources, list) or not all(_source(s) for s in sources):
        problems.append("sources must be a list of {name, licence, count?}")
    if "command" in value and not isinstance(value["command"], str):
        problems.append("command must be a string")
    return problems


def _source(source: Any) -> bool:
    count = source.get("count", 0) if isinstance(source, dict) else None
    return (
        isinstance(source, dict)
        and isinstance(source.get("name"), str)
        and isinstance(source.get("licence"), str)
        and isinstance(count, int)
        and not isinstance(count, bool)
        and count >= 0
    )


def _object(value: Any) -> list[str]:
    return [] if isinstance(value, dict) else ["must be an object"]


_CHECKS = {
    "name": _string(NAME, "a safe model name (letters, digits, '_', '.', '-')"),
    "version": _string(),
    "task": _string(TASK, "a task such as 'image-detector' (lower case, '-')"),
    "description": _string(),
    "inputs": _inputs,
    "outputs": _outputs,
    "labels": _labels,
    "calibration": _calibration,
    "threshold": _probability,
    "uncertain_band": _band,
    "training": _training,
    "metrics": _object,
    "licence": _string(),
    "sha256": _string(SHA256, "a lower-case hex sha256 digest"),
}


def _cross_checks(card: dict) -> list[str]:
    """Rules across fields, run only once every field is well formed."""
    problems = []
    low, high = card["uncertain_band"]
    if not low <= card["threshold"] <= high:
        problems.append(
            f"uncertain_band {card['uncertain_band']} must satisfy low <= threshold "
            f"({card['threshold']}) <= high"
        )
    kind = card["outputs"][0]["kind"]
    if kind in BINARY_KINDS and "fake" not in card["labels"]:
        problems.append(f"labels must include 'fake' for a {kind} output, e.g. ['real', 'fake']")
    binary_columns = len(card["labels"]) == 2 and "fake" in card["labels"]
    if card["calibration"]["method"] == "platt" and not (kind in BINARY_KINDS or binary_columns):
        problems.append("platt calibration needs a binary output (labels ['real', 'fake'])")
    return problems
