"""Training (torch-only, extra ``[train]``): one package per model, shared parts once.

``audio/`` (the audio detector), ``image/`` (the face detector and the family classifier),
``synthetic/`` (the whole-image detector), and the fake makers ``vocoders/`` (the neural vocoder
behind ``tinynsf``) and ``autoencoders/`` (decoders whose reconstructions are fakes) each hold
what applies of ``data.py``, ``nets.py``, ``train.py``, ``export.py``, ``command.py``; they share
``checkpoint.py`` (the seeded, resumable loop), ``onnx_export.py`` (export, round trip, bundle),
``manifest.py`` (split manifests), ``paths.py`` (where data, caches and runs live),
``eval_metrics.py`` (test metrics for cards) and ``command.py`` (``deepfakescan train``).
"""
