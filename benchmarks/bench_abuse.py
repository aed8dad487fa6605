"""Abuse load on a real ``deepfakescan serve`` (loopback only, bounded in count and time): does
``/api/v1/health`` keep answering fast while uploads wait, stall, are refused or arrive at once?

Starts the server on a fresh data directory (one scan worker, upload rate limits lifted so
that the server, not the limiter, is measured; a 32 MiB byte limit so over-limit bodies are
cheap to send), then runs each phase while a prober GETs health on a new connection every
``--probe-ms`` (as a load balancer does):

    idle     nothing else
    waits    N uploads with ?wait=60 at once, queued behind one scan worker (they hold threads)
    slow     M clients that trickle a body at 1 KiB/s for the phase
    refused  K chunked bodies over the byte limit and K chunked bodies of junk
    burst    U uploads at once, no wait

Printed per phase: answers by status, 5xx, refusals that were not JSON, health p50/p99/max in
ms (the bar: p99 <= 100 ms), and the upload folder's peak bytes against the bytes of accepted
uploads. Never asserts: a shared 2-core machine makes single numbers noisy.

    python benchmarks/bench_abuse.py     # 50 waits, 20 slow, 10+10 refused, 200 at once
    python benchmarks/bench_abuse.py --waits 10 --slow 5 --refused 3 --burst 40 --phase-s 10
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from bench_web import free_port, multipart, wait_until_up
from common import load_average, print_table

MAX_BYTES = 32 * 1024 * 1024


def small_jpeg() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (96, 72), (120, 90, 60)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


class Phase:
    """Answers, health latencies and upload-folder peak of one phase (filled by threads)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.statuses: Counter[int] = Counter()
        self.not_json = 0
        self.health_ms: list[float] = []
        self.accepted_bytes = 0
        self.peak_upload_bytes = 0
        self.lock = threading.Lock()

    def answer(self, status: int, body: bytes, sent: int = 0) -> None:
        with self.lock:
            self.statuses[status] += 1
            if status >= 400 and not _is_json_error(body):
                self.not_json += 1
            if status in (200, 202):
                self.accepted_bytes += sent

    def row(self) -> list:
        ms = sorted(self.health_ms)
        p99 = ms[min(len(ms) - 1, int(0.99 * len(ms)))] if ms else float("nan")
        statuses = " ".join(f"{s}:{n}" for s, n in sorted(self.statuses.items())) or "-"
        fives = sum(n for s, n in self.statuses.items() if s >= 500)
        return [
            self.name,
            statuses,
            fives,
            self.not_json,
            len(ms),
            f"{statistics.median(ms):.1f}" if ms else "-",
            f"{p99:.1f}",
            f"{max(ms):.1f}" if ms else "-",
            f"{self.peak_upload_bytes / 1e6:.1f} / {self.accepted_bytes / 1e6:.1f}",
        ]


def _is_json_error(body: bytes) -> bool:
    try:
        return set(json.loads(body)["error"]) == {"code", "message"}
    except (ValueError, KeyError, TypeError):
        return False


# ---------------------------------------------------------------------------- the clients


def post(port: int, path: str, data: bytes, name: str, phase: Phase) -> None:
    body, content_type = multipart(data, name)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        conn.request("POST", path, body=body, headers={"Content-Type": content_type})
        response = conn.getresponse()
        phase.answer(response.status, response.read(), len(data))
        conn.close()
    except OSError:
        phase.answer(0, b"")  # no answer at all: a dropped connection


def chunked_post(port: int, name: str, payload: bytes, step: int, pace_s: float, phase: Phase):
    """Send ``payload`` as a chunked multipart upload, ``step`` bytes every ``pace_s``, then
    read the answer; stop sending as soon as the server answers (an early refusal)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=120)
    request = (
        f"POST /api/v1/scans HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n"
        "Content-Type: multipart/form-data; boundary=b0undary\r\nTransfer-Encoding: chunked\r\n"
        "\r\n"
    ).encode()
    head = part_head(name)
    try:
        sock.sendall(request + _chunk(head))
        for i in range(0, len(payload), step):
            if _readable(sock):
                break
            sock.sendall(_chunk(payload[i : i + step]))
            time.sleep(pace_s)
        else:
            sock.sendall(_chunk(b"\r\n--b0undary--\r\n") + b"0\r\n\r\n")
        status, body = _read_answer(sock)
    except OSError:
        status, body = 0, b""
    finally:
        sock.close()
    phase.answer(status, body, len(payload))


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _readable(sock: socket.socket) -> bool:
    """True once the server has answered (or closed): nothing more needs sending."""
    sock.setblocking(False)
    try:
        sock.recv(1, socket.MSG_PEEK)
        return True
    except BlockingIOError:
        return False
    finally:
        sock.setblocking(True)


def _read_answer(sock: socket.socket) -> tuple[int, bytes]:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def part_head(name: str) -> bytes:
    return (
        f'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n\r\n'
    ).encode()


# ------------------------------------------------------------------------------ the phases


def probe_health(port: int, phase: Phase, stop: threading.Event, every_s: float, uploads: Path):
    while not stop.is_set():
        start = time.perf_counter()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("GET", "/api/v1/health")
            conn.getresponse().read()
            conn.close()
            phase.health_ms.append((time.perf_counter() - start) * 1000.0)
        except OSError:
            phase.answer(0, b"")
        size = sum(p.stat().st_size for p in uploads.iterdir() if p.is_file())
        phase.peak_upload_bytes = max(phase.peak_upload_bytes, size)
        stop.wait(every_s)


def run_phase(name: str, port: int, clients: list[Callable[[Phase], None]], args, uploads: Path):
    """Start the clients, probe health until they are done (at least ``--phase-s``)."""
    phase, stop = Phase(name), threading.Event()
    prober = threading.Thread(
        target=probe_health, args=(port, phase, stop, args.probe_ms / 1000, uploads)
    )
    prober.start()
    threads = [threading.Thread(target=c, args=(phase,), daemon=True) for c in clients]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=max(1.0, args.timeout_s - (time.monotonic() - started)))
    stop.wait(max(0.0, args.phase_s - (time.monotonic() - started)))
    stop.set()
    prober.join()
    return phase


def phase_clients(args, port: int, jpeg: bytes) -> dict[str, list[Callable[[Phase], None]]]:
    over = b"\xff\xd8\xff\xe0" + bytes(MAX_BYTES + 4 * 1024 * 1024)  # a JPEG's start, too long
    junk = b"meeting notes " * (MAX_BYTES // 14)
    return {
        "idle": [],
        "waits": [
            lambda ph, i=i: post(port, "/api/v1/scans?wait=60", jpeg, f"w{i}.jpg", ph)
            for i in range(args.waits)
        ],
        "slow": [  # the whole JPEG, 64 bytes a second
            lambda ph, i=i: chunked_post(port, f"s{i}.jpg", jpeg, 64, 1.0, ph)
            for i in range(args.slow)
        ],
        "refused": [
            lambda ph: chunked_post(port, "big.jpg", over, 1024 * 1024, 0.0, ph)
            for _ in range(args.refused)
        ]
        + [
            lambda ph: chunked_post(port, "notes.jpg", junk, 1024 * 1024, 0.0, ph)
            for _ in range(args.refused)
        ],
        "burst": [
            lambda ph, i=i: post(port, "/api/v1/scans", jpeg, f"b{i}.jpg", ph)
            for i in range(args.burst)
        ],
    }


def start_server(data_dir: Path, port: int) -> subprocess.Popen:
    env = dict(os.environ)
    env.update(
        DEEPFAKESCAN_UPLOAD_RATE="1000000/minute",
        DEEPFAKESCAN_UPLOAD_BYTES_PER_HOUR=str(1 << 50),
        DEEPFAKESCAN_MAX_BYTES=str(MAX_BYTES),
        DEEPFAKESCAN_WORKERS="1",
    )
    cmd = [sys.executable, "-m", "deepfakescan.cli", "serve", "--port", str(port)]
    cmd += ["--data-dir", str(data_dir)]
    return subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--waits", type=int, default=50)
    parser.add_argument("--slow", type=int, default=20)
    parser.add_argument("--refused", type=int, default=10)
    parser.add_argument("--burst", type=int, default=200)
    parser.add_argument("--phase-s", type=float, default=15.0, help="each phase lasts this long")
    parser.add_argument("--timeout-s", type=float, default=120.0, help="longest phase")
    parser.add_argument("--probe-ms", type=float, default=50.0)
    args = parser.parse_args()
    port, jpeg = free_port(), small_jpeg()
    with tempfile.TemporaryDirectory(prefix="bench-abuse-") as tmp:
        data = Path(tmp)
        proc = start_server(data, port)
        try:
            wait_until_up(port, proc, timeout=120)
            post(port, "/api/v1/scans?wait=60", jpeg, "warm.jpg", Phase("warm-up"))
            phases = [
                run_phase(name, port, clients, args, data / "uploads")
                for name, clients in phase_clients(args, port, jpeg).items()
            ]
        finally:
            os.killpg(proc.pid, 15)
            proc.wait(60)
    print(f"deepfakescan serve on loopback, 16 HTTP threads, 1 scan worker; {load_average()}")
    header = ["phase", "answers (status:n)", "5xx", "non-JSON refusals", "probes"]
    header += ["health p50 ms", "p99 ms", "max ms", "upload dir peak / accepted MB"]
    print_table(header, [p.row() for p in phases])


if __name__ == "__main__":
    main()
