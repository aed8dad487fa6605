"""deepfakescan: is this image, voice note or clip manipulated, how sure are we, and where.

>>> import deepfakescan
>>> report = deepfakescan.scan("photo.jpg")          # doctest: +SKIP
>>> report.verdict, report.fake_probability          # doctest: +SKIP
"""

from .config import Settings
from .errors import DeepfakescanError
from .pipeline import scan
from .report import Report

__version__ = "0.1.0"
__all__ = ["DeepfakescanError", "Report", "Settings", "__version__", "scan"]
