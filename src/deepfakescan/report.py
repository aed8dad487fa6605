"""The report: the contract between detectors, CLI, API and web page.

A ``Report`` is plain data. ``Report.to_dict()`` is the JSON form shared by every interface
and validated against ``docs/report.schema.json`` by the tests. Artifacts (heatmaps,
thumbnails, previews) are named in the report; their bytes travel beside it in
``Report.artifact_data`` and are never part of the JSON.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Literal, get_args

if TYPE_CHECKING:
    from .provenance.model import Source, Validation

SCHEMA_VERSION = "1.1"
"""1.1 added ``whole_image`` (absent when the whole-image model did not run) and
``provenance`` (always present: see ``ProvenanceSection``)."""

# One definition of each vocabulary: the type for annotations, the tuple (derived from it) for
# checks and for the OpenAPI document; docs/report.schema.json repeats them and a test compares.
Verdict = Literal["real", "fake", "uncertain"]
MediaType = Literal["image", "audio", "video"]
Modality = Literal["visual", "audio"]
ArtifactKind = Literal["heatmap", "thumbnail", "preview", "timeline"]
VERDICTS: tuple[Verdict, ...] = get_args(Verdict)
MEDIA_KINDS: tuple[MediaType, ...] = get_args(MediaType)
"""What a scan routes on (``pipeline._ROUTES``) and what a caller may declare."""
MODALITIES: tuple[Modality, ...] = get_args(Modality)
ARTIFACT_KINDS: tuple[ArtifactKind, ...] = get_args(ArtifactKind)

ARTIFACT_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


def verdict_for(probability: float | None, band: tuple[float, float]) -> Verdict:
    """Verdict from a calibrated probability and the model's uncertain band ``[low, high)``.

    ``low <= threshold <= high`` comes from the model card; below ``low`` is real, at or above
    ``high`` is fake, in between we say we are unsure rather than flip a coin. A missing
    probability (nothing to judge) is uncertain.
    """
    if probability is None:
        return "uncertain"
    low, high = band
    if probability >= high:
        return "fake"
    if probability < low:
        return "real"
    return "uncertain"


def percent(probability: float) -> str:
    """A probability for people: never "100%" or "0%" for a score that is not certain."""
    if probability > 0.99:
        return ">99%"
    if probability < 0.01:
        return "<1%"
    return f"{probability:.0%}"


@dataclass
class Box:
    """Pixel box in the original image after EXIF orientation."""

    x: int
    y: int
    w: int
    h: int


@dataclass
class Face:
    box: Box
    fake_probability: float
    verdict: Verdict
    detection_confidence: float
    landmarks: list[list[float]] | None = None
    """Five (x, y) points: eyes, nose, mouth corners, in original-image pixels."""
    family: str | None = None
    family_probabilities: dict[str, float] | None = None
    heatmap: str | None = None
    """Name of the heatmap overlay artifact, if one was made."""
    time_s: float | None = None
    """For faces found in video frames: the frame's time."""
    track_id: int | None = None


@dataclass
class Segment:
    start_s: float
    end_s: float
    fake_probability: float
    modality: Modality


@dataclass
class Track:
    """One person followed across sampled video frames."""

    track_id: int
    frame_times_s: list[float]
    fake_probability: float
    verdict: Verdict
    frames_judged_fake: int
    family: str | None = None


@dataclass
class FrameScore:
    """One sampled video frame's whole-image score."""

    time_s: float
    fake_probability: float


@dataclass
class WholeImage:
    """The whole-image detector's own judgement (``detectors.synthetic``), kept beside the
    combined verdict so a reader sees what that model said whichever model decided.

    ``fake_probability`` is calibrated for an image; for a video it is the median of the
    frames' calibrated probabilities (a score judged against the same band).
    """

    fake_probability: float
    verdict: Verdict
    threshold: float
    uncertain_band: tuple[float, float]
    crops: int
    """Crops scored per image, or per frame of a video."""
    artifact: str | None = None
    """Name of the picture of the crops and their scores (images); ``None`` for a video."""
    frames: list[FrameScore] | None = None
    """Videos: every sampled frame's score in time order; ``None`` for an image."""

    def to_dict(self) -> dict:
        out = asdict(self)
        out["fake_probability"] = round(float(self.fake_probability), 6)
        out["threshold"] = round(float(self.threshold), 6)
        out["uncertain_band"] = [float(v) for v in self.uncertain_band]
        if self.frames is not None:
            out["frames"] = [
                {"time_s": round(f.time_s, 3), "fake_probability": round(f.fake_probability, 6)}
                for f in self.frames
            ]
        return out


@dataclass
class ProvenanceRecord:
    """One record the file declares about itself (``provenance.ProvenanceItem`` as data)."""

    source: Source
    """Where it was found: ``c2pa``, ``xmp``, ``iptc``, ``exif``, ``png-text``, or a
    container's tags (``id3``, ``mp4``, ``vorbis``, ``matroska``, ``riff``)."""
    field: str
    value: str
    """The record's text, cut to a few hundred characters (a ComfyUI graph can be megabytes)."""
    verified: bool
    """A C2PA signature covers it and verifies; never true for plain metadata."""
    validation: Validation | None
    signer: str | None
    claim_generator: str | None
    actions: list[str]
    digital_source_type: str | None
    ingredients: list[str]
    generator: str | None
    declares_ai: bool
    camera_capture: bool


@dataclass
class ProvenanceSection:
    """What the file declares about itself, and whether that set the verdict.

    Always in the JSON (unlike ``whole_image``): the records are read for every scan, an
    empty ``items`` list is itself the answer ("nothing declared", which counts for nothing),
    and ``warnings`` (a damaged manifest, C2PA not checked) need a place even when no record
    could be read. ``model_verdict`` keeps the models' own verdict visible when a record
    decided (``decided``); the report's ``fake_probability`` is always the models'.
    """

    items: list[ProvenanceRecord] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    hint: Literal["fake", "real"] | None = None
    """``fake``: a record declares AI generation; ``real``: a trusted camera manifest
    (supporting only); ``None``: the records say nothing either way."""
    decided: bool = False
    """True when a record set the verdict (``hint`` is ``fake``); its reasons come first."""
    model_verdict: Verdict | None = None
    """The verdict the models reached on their own (``None`` in a report no scan made)."""


@dataclass
class MediaInfo:
    type: MediaType
    format: str
    size_bytes: int
    width: int | None = None
    height: int | None = None
    duration_s: float | None = None
    analysed_duration_s: float | None = None
    sample_rate: int | None = None
    channels: int | None = None
    frame_rate: float | None = None
    frames_sampled: int | None = None


@dataclass
class ModelRef:
    name: str
    version: str
    role: str


@dataclass
class Artifact:
    name: str
    kind: ArtifactKind
    media_type: str
    description: str = ""

    def __post_init__(self) -> None:
        if not ARTIFACT_NAME.match(self.name):
            raise ValueError(f"artifact name {self.name!r} is not a safe file name")


@dataclass
class Report:
    verdict: Verdict
    fake_probability: float | None
    threshold: float | None
    uncertain_band: tuple[float, float] | None
    reasons: list[str]
    media: MediaInfo
    models: list[ModelRef] = field(default_factory=list)
    faces: list[Face] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)
    tracks: list[Track] = field(default_factory=list)
    whole_image: WholeImage | None = None
    """The whole-image model's own judgement; left out of the JSON when it did not run."""
    provenance: ProvenanceSection = field(default_factory=ProvenanceSection)
    """What the file declares about itself; always in the JSON (see ``ProvenanceSection``)."""
    artifacts: list[Artifact] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    source_name: str | None = None
    """Display name of the input (a client file name is never used as a path)."""
    schema_version: str = SCHEMA_VERSION
    artifact_data: dict[str, bytes] = field(default_factory=dict, repr=False)

    def add_artifact(self, artifact: Artifact, data: bytes) -> None:
        self.artifacts.append(artifact)
        self.artifact_data[artifact.name] = data

    def to_dict(self) -> dict:
        out = asdict(self)
        del out["artifact_data"]
        if self.whole_image is None:
            del out["whole_image"]
        else:
            out["whole_image"] = self.whole_image.to_dict()
        if self.uncertain_band is not None:
            out["uncertain_band"] = list(self.uncertain_band)
        for name in ("fake_probability", "threshold"):
            if out[name] is not None:
                out[name] = round(float(out[name]), 6)
        out["timings_ms"] = {k: round(float(v), 3) for k, v in out["timings_ms"].items()}
        return out

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)


@dataclass
class Evidence:
    """What one detector (image, audio, video, fusion) concludes; the pipeline makes it a Report.

    ``fake_probability`` is calibrated; ``None`` when there was nothing to judge (no face,
    no speech), in which case ``verdict`` is ``uncertain`` and ``reasons`` says why.
    """

    verdict: Verdict
    fake_probability: float | None
    threshold: float | None
    uncertain_band: tuple[float, float] | None
    reasons: list[str] = field(default_factory=list)
    faces: list[Face] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)
    tracks: list[Track] = field(default_factory=list)
    models: list[ModelRef] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    artifacts: list[tuple[Artifact, bytes]] = field(default_factory=list)
    whole_image: WholeImage | None = None
