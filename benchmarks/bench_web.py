"""Web server throughput, latency and memory: N clients upload a 640x480 face JPEG at once.

Starts ``deepfakescan serve`` (gunicorn, the production setup) on loopback with a fresh data
directory, then N client threads each POST ``/api/v1/scans?wait=60`` in a loop over keep-alive
connections until ``--scans`` scans are done. Prints scans per second, p50/p95 latency (upload
to report), the error count, and the server's RSS after 100 scans and at the end (a leak shows as
growth). Never asserts timings: the numbers go in a table.

    python benchmarks/bench_web.py --clients 8 --scans 1000
    python benchmarks/bench_web.py --test-model   # the brightness stand-in from tests/conftest.py
                                                  # (needs onnx): the server's own cost
    python benchmarks/bench_web.py --clients 1 4 --scans 120 --warmup 3   # a quick look
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from common import load_average, print_table

ROOT = Path(__file__).resolve().parents[1]


def face_jpeg(width: int = 640, height: int = 480) -> bytes:
    """A 640x480 JPEG with one face: scikit-image's public-domain astronaut, else a drawing."""
    from PIL import Image

    try:
        from skimage import data

        face = Image.fromarray(data.astronaut())  # 512x512, one face (NASA, public domain)
        img = Image.new("RGB", (width, height), (30, 30, 40))
        face = face.resize((height, height))
        img.paste(face, ((width - height) // 2, 0))
    except ImportError:
        sys.path.insert(0, str(ROOT))
        from tests.test_web_browser import synthetic_portrait

        img = synthetic_portrait(width, height)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def multipart(data: bytes, name: str) -> tuple[bytes, str]:
    boundary = secrets.token_hex(16)
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def wait_until_up(
    port: int,
    proc: subprocess.Popen,
    timeout: float = 60.0,
    *,
    path: str = "/api/v1/health",
    output: Callable[[], str] | None = None,
) -> None:
    """Until ``GET path`` answers 200; exits with the server's last output if it died first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            if output is None and proc.stderr:
                why = proc.stderr.read().decode(errors="replace")
            else:
                why = output() if output else ""
            raise SystemExit(f"server exited with {proc.returncode}:\n{why[-2000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("server did not come up")


def install_test_model(directory: Path) -> None:
    sys.path.insert(0, str(ROOT))
    from tests.conftest import brightness_model, image_card, write_bundle

    write_bundle(directory, "image", brightness_model(), image_card())


def pipeline_ms(data: bytes, model_dir: str | None, runs: int = 20) -> tuple[float, float]:
    """``pipeline.scan`` alone in this process: median wall and CPU ms per scan, one thread.

    What the server cannot go below: scans/s is at most cores * 1000 / CPU ms.
    """
    from deepfakescan import scan
    from deepfakescan.config import Settings

    settings = Settings.from_env(**({"model_dir": Path(model_dir)} if model_dir else {}))
    for _ in range(3):
        scan(data, settings=settings)
    walls, cpus = [], []
    for _ in range(runs):
        w, c = time.perf_counter(), time.process_time()
        scan(data, settings=settings)
        walls.append((time.perf_counter() - w) * 1000)
        cpus.append((time.process_time() - c) * 1000)
    return statistics.median(walls), statistics.median(cpus)


UNLIMITED = {"DEEPFAKESCAN_UPLOAD_RATE": "1000000/minute", "DEEPFAKESCAN_MAX_QUEUED": "1000000"}


class Load:
    """Client threads posting one upload in a loop until ``scans`` scans are done.

    Each client keeps one keep-alive connection (a new one after a network error); the server's
    RSS is read after 100 scans and after the last, so a leak shows as growth.
    """

    def __init__(self, port: int, body: bytes, headers: dict, scans: int, server_pid: int):
        self.port, self.body, self.headers = port, body, headers
        self.scans, self.server_pid = scans, server_pid
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.rss: dict[int, float] = {}
        self.started = self.done = 0
        self.lock = threading.Lock()

    def connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)

    def post(self, conn: http.client.HTTPConnection) -> tuple[int, bytes]:
        conn.request("POST", "/api/v1/scans?wait=60", body=self.body, headers=self.headers)
        response = conn.getresponse()
        return response.status, response.read()

    def _finish(self, elapsed: float, status: int, payload: bytes) -> None:
        with self.lock:
            if status != 200:
                self.errors.append(f"{status} {payload[:200]!r}")
            elif (job := json.loads(payload)["status"]) != "done":
                self.errors.append(f"status {job}")
            self.latencies.append(elapsed)
            self.done += 1
            if self.done in (100, self.scans):
                self.rss[self.done] = rss_mb(self.server_pid)

    def _claim(self) -> bool:
        with self.lock:
            if self.started >= self.scans:
                return False
            self.started += 1
            return True

    def client(self) -> None:
        conn = self.connect()
        while self._claim():
            t0 = time.perf_counter()
            try:
                status, payload = self.post(conn)
            except (OSError, http.client.HTTPException) as e:
                with self.lock:
                    self.errors.append(repr(e))
                    self.done += 1
                conn = self.connect()
                continue
            self._finish(time.perf_counter() - t0, status, payload)

    def drive(self, clients: int) -> float:
        """Run ``clients`` client threads to the end; returns the wall time in seconds."""
        threads = [threading.Thread(target=self.client) for _ in range(clients)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return time.perf_counter() - t0


def start_server(args: argparse.Namespace, tmp: Path) -> tuple[subprocess.Popen, int, dict]:
    """``deepfakescan serve`` on a free loopback port with a fresh data directory."""
    env = dict(os.environ, DEEPFAKESCAN_DATA_DIR=str(tmp / "data"))
    env.update(UNLIMITED)  # the load is the point: no upload rate limit or queue cap
    if args.test_model:
        install_test_model(tmp / "models")
        env["DEEPFAKESCAN_MODEL_DIR"] = str(tmp / "models")
    port = free_port()
    cmd = [sys.executable, "-m", "deepfakescan.cli", "serve", "--port", str(port)]
    if args.workers:
        cmd += ["--workers", str(args.workers)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return server, port, env


def summary(load: Load, wall: float, rss_start: float, args: argparse.Namespace) -> dict:
    latencies = sorted(load.latencies)
    return {
        "clients": args.clients,
        "scans": len(latencies),
        "wall_s": wall,
        "scans_per_s": len(latencies) / wall,
        "p50_ms": statistics.median(latencies) * 1000,
        "p95_ms": latencies[int(0.95 * (len(latencies) - 1))] * 1000,
        "errors": len(load.errors),
        "first_error": load.errors[0] if load.errors else "",
        "rss_start_mb": rss_start,
        "rss_100_mb": load.rss.get(100, float("nan")),
        "rss_end_mb": load.rss.get(args.scans, float("nan")),
        "model": "brightness test bundle" if args.test_model else "installed image model",
    }


def run(args: argparse.Namespace) -> dict:
    """One load test: a fresh server, ``args.clients`` clients, ``args.scans`` scans."""
    server, port, env = start_server(args, Path(tempfile.mkdtemp(prefix="bench-web-")))
    try:
        wait_until_up(port, server)
        image = face_jpeg()
        alone_wall, alone_cpu = pipeline_ms(image, env.get("DEEPFAKESCAN_MODEL_DIR"))
        body, content_type = multipart(image, "face.jpg")
        headers = {"Content-Type": content_type, "Content-Length": str(len(body))}
        load = Load(port, body, headers, args.scans, server.pid)
        warm = load.connect()
        for _ in range(args.warmup):
            load.post(warm)
        rss_start = rss_mb(server.pid)
        wall = load.drive(args.clients)
        row = summary(load, wall, rss_start, args)
        return {**row, "pipeline_wall_ms": alone_wall, "pipeline_cpu_ms": alone_cpu}
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


def print_rows(rows: list[dict]) -> None:
    print(f"model: {rows[0]['model']}; {load_average()}; 640x480 JPEG, one face")
    header = ["clients", "scans", "scans/s", "p50 ms", "p95 ms", "errors"]
    header += ["RSS start MB", "RSS@100 MB", "RSS@end MB", "end-100 MB"]
    cells = [
        [r["clients"], r["scans"], f"{r['scans_per_s']:.1f}", f"{r['p50_ms']:.0f}"]
        + [f"{r['p95_ms']:.0f}", r["errors"], f"{r['rss_start_mb']:.0f}"]
        + [f"{r['rss_100_mb']:.0f}", f"{r['rss_end_mb']:.0f}"]
        + [f"{r['rss_end_mb'] - r['rss_100_mb']:+.1f}"]
        for r in rows
    ]
    print_table(header, cells, ">" * len(header))
    for r in rows:
        print(
            f"clients {r['clients']}: pipeline.scan alone (one thread, no HTTP):"
            f" {r['pipeline_wall_ms']:.0f} ms wall, {r['pipeline_cpu_ms']:.0f} ms CPU per scan"
            f" -> at most {(os.cpu_count() or 1) * 1000 / r['pipeline_cpu_ms']:.1f} scans/s"
            " on this machine"
        )
        if r["first_error"]:
            print(f"first error: {r['first_error']}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[8])
    parser.add_argument("--scans", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--workers", type=int, help="server scan workers (default: its own)")
    parser.add_argument("--threads", type=int, help="server HTTP threads (default: its own)")
    parser.add_argument("--test-model", action="store_true", help="use the brightness bundle")
    args = parser.parse_args(argv)
    rows = [run(argparse.Namespace(**{**vars(args), "clients": n})) for n in args.clients]
    print_rows(rows)


if __name__ == "__main__":
    main()
