"""``deepfakescan serve``: flags over the environment over defaults, bad flags refused."""

from __future__ import annotations


def test_serve_flags_override_the_environment(monkeypatch):
    from deepfakescan.cli import build_parser
    from deepfakescan.web import serve as serve_module

    seen = {}
    monkeypatch.setattr(
        serve_module, "serve", lambda settings, **kw: seen.setdefault("s", settings)
    )
    monkeypatch.setenv("DEEPFAKESCAN_PORT", "9000")
    monkeypatch.setenv("DEEPFAKESCAN_HOST", "0.0.0.0")
    args = build_parser().parse_args(["serve", "--port", "8123", "--workers", "3"])
    assert args.func(args) == 0
    settings = seen["s"]
    assert (settings.port, settings.host, settings.workers) == (8123, "0.0.0.0", 3)


def test_serve_refuses_a_non_positive_flag():
    from deepfakescan.cli import main

    assert main(["serve", "--threads", "0"]) == 2
