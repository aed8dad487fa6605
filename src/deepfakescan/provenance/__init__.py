"""What a file declares about itself: C2PA manifests, IPTC/XMP, EXIF, generator metadata.

No model runs here and nothing from the file is executed or fetched: the records are read
with size limits, and a damaged one is a warning. The public surface is two functions::

    provenance = read_provenance(source, fmt)           # -> Provenance (items, warnings)
    hint, reasons = provenance_judgement(provenance)    # -> "fake" | "real" | None, sentences

``Provenance.to_dict()`` is the JSON form. The rule that turns records into a hint, and why a
camera manifest never overrides the models, is in :mod:`.judgement`.
"""

from .judgement import Judgement, provenance_judgement
from .model import Provenance, ProvenanceItem
from .reader import read_provenance

__all__ = [
    "Judgement",
    "Provenance",
    "ProvenanceItem",
    "provenance_judgement",
    "read_provenance",
]
