"""Training of ``image-synthetic``, the whole-image detector (issue #20).

``data.py`` (manifest rows, epoch plans, the random chain every sample goes through),
``nets.py`` (the early stages of EfficientNet-Lite0 and a one-logit head), ``train.py`` (steps
for the shared loop, validation AUC per source pair on images scored as served), ``export.py``
(ONNX, Platt calibration and threshold on validation, the card), ``baseline.py`` (the
sharpness-only baseline) and ``robustness.py`` (JPEG q75, 0.5x resize) measured beside the
model, ``table.py`` (the card's per-pair table), ``command.py``
(``deepfakescan train image-synthetic``).
"""
