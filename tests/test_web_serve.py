"""``deepfakescan serve``: flags over the environment over defaults, bad flags refused; on a
real server (gunicorn), an upload streams into one file, is refused as soon as its bytes show
it, leaves no file behind whatever stops it, and SIGTERM stops everything cleanly."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from .conftest import solid_jpeg
from .services import free_port


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


# ------------------------------------------------- a real server: gunicorn streams the body

BOUNDARY = "deepfakescanboundary"
UP_TIMEOUT_S = 90.0


class Served:
    """``deepfakescan serve`` in a child process (its own process group) on a free port."""

    def __init__(self, tmp_path, **env) -> None:

        self.port = free_port()
        self.data = tmp_path / "data"
        self.log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115 (closed in stop)
        variables = {**os.environ, **{k: str(v) for k, v in env.items()}}
        args = ["serve", "--port", str(self.port), "--threads", "4", "--data-dir", str(self.data)]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "deepfakescan.cli", *args],
            env=variables,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.wait_healthy()

    @property
    def uploads(self) -> list:
        return sorted((self.data / "uploads").iterdir())

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + UP_TIMEOUT_S
        url = f"http://127.0.0.1:{self.port}/api/v1/health"
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "serve exited at start"
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise AssertionError("serve did not answer health in time")

    def stop(self, sig=None) -> int:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig or signal.SIGTERM)
        try:
            return self.proc.wait(timeout=60)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.log.close()


@pytest.fixture
def served(tmp_path, brightness_model_dir):
    server = Served(tmp_path, DEEPFAKESCAN_MAX_BYTES=2 * 1024 * 1024)
    yield server
    server.stop()


def part_head(name: str = "photo.jpg") -> bytes:
    return (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()


def part_tail() -> bytes:
    return f"\r\n--{BOUNDARY}--\r\n".encode()


def open_post(port: int, headers: dict[str, str], path: str = "/api/v1/scans"):
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += [f"Content-Type: multipart/form-data; boundary={BOUNDARY}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    return sock


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def read_answer(sock) -> tuple[int, dict]:
    """Status and JSON body of the answer (which may come before the request's end)."""
    data = b""
    while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
        got = sock.recv(65536)
        if not got:
            break
        data += got
    head, _, body = data.partition(b"\r\n\r\n")
    if b"chunked" in head.lower():
        body = body.split(b"\r\n", 1)[1].rsplit(b"\r\n0\r\n", 1)[0]
    return int(head.split()[1]), json.loads(body[body.index(b"{") :])


def test_junk_is_refused_after_its_first_bytes_not_after_its_whole_body(served):
    sock = open_post(served.port, {"Transfer-Encoding": "chunked"})
    sock.sendall(chunk(part_head("photo.jpg")))
    sock.sendall(chunk(b"Meeting notes, nothing to see.\n" * 4096))  # 128 KiB of a "body" of GiB
    status, body = read_answer(sock)  # answered now: the server did not wait for the rest
    sock.close()
    assert status == 415 and body["error"]["code"] == "unsupported_media"
    assert "photo.jpg" in body["error"]["message"]
    assert served.uploads == []


def test_a_chunked_body_over_the_byte_limit_is_our_json_413_and_leaves_no_file(served):
    sock = open_post(served.port, {"Transfer-Encoding": "chunked"})
    sock.sendall(chunk(part_head()) + chunk(b"\xff\xd8\xff\xe0" + bytes(1024 * 1024)))
    sock.sendall(chunk(bytes(1024 * 1024)) + chunk(bytes(1024 * 1024)))
    status, body = read_answer(sock)
    sock.close()
    assert status == 413 and "DEEPFAKESCAN_MAX_BYTES" in body["error"]["message"]
    assert served.uploads == []


def test_a_chunked_upload_is_streamed_to_one_file_and_queued(served):
    body = part_head() + solid_jpeg(200) + part_tail()
    sock = open_post(served.port, {"Transfer-Encoding": "chunked"})
    sock.sendall(chunk(body[:100]) + chunk(body[100:]) + b"0\r\n\r\n")
    status, answer = read_answer(sock)
    sock.close()
    assert status == 202 and answer["source_name"] == "photo.jpg"


def test_an_upload_cut_off_midway_leaves_no_file_behind(served):
    sock = open_post(served.port, {"Content-Length": str(1024 * 1024)})
    sock.sendall(part_head() + b"\xff\xd8\xff\xe0" + bytes(300 * 1024))
    sock.close()  # the client goes away with two thirds of its body unsent
    deadline = time.monotonic() + 30
    while served.uploads and time.monotonic() < deadline:
        time.sleep(0.1)
    assert served.uploads == []


def test_sigterm_stops_the_server_and_its_scan_service_cleanly(tmp_path, brightness_model_dir):
    server = Served(tmp_path)
    assert server.stop() == 0
    assert (
        b"stopping: running scans finish their current stage"
        in (tmp_path / "serve.log").read_bytes()
    )
