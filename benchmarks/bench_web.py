"""Web server throughput, latency and memory: N clients upload a 640x480 face JPEG at once.

Starts ``deepfakescan serve`` (waitress, the production setup) on loopback with a fresh data
directory, then N client threads each POST ``/api/v1/scans?wait=60`` in a loop over keep-alive
connections until ``--scans`` scans are done. Prints scans per second, p50/p95 latency (upload
to report), the error count, and the server's RSS after 100 scans and at the end (a leak shows as
growth). Never asserts timings: the numbers go in a table.

    python benchmarks/bench_web.py --clients 8 --scans 1000
    python benchmarks/bench_web.py --test-model   # no trained image model yet: the brightness
                                                  # stand-in from tests/conftest.py (needs onnx)
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
from pathlib import Path

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


def wait_until_up(port: int, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/api/v1/health")
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


def run(args: argparse.Namespace) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="bench-web-"))
    env = dict(os.environ, DEEPFAKESCAN_DATA_DIR=str(tmp / "data"))
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
    try:
        wait_until_up(port, server)
        image = face_jpeg()
        alone_wall, alone_cpu = pipeline_ms(image, env.get("DEEPFAKESCAN_MODEL_DIR"))
        body, content_type = multipart(image, "face.jpg")
        headers = {"Content-Type": content_type, "Content-Length": str(len(body))}
        latencies: list[float] = []
        errors: list[str] = []
        rss: dict[int, float] = {}
        lock = threading.Lock()
        counter = {"started": 0, "done": 0}

        def one(conn: http.client.HTTPConnection) -> None:
            t0 = time.perf_counter()
            conn.request("POST", "/api/v1/scans?wait=60", body=body, headers=headers)
            response = conn.getresponse()
            payload = response.read()
            elapsed = time.perf_counter() - t0
            with lock:
                if response.status != 200:
                    errors.append(f"{response.status} {payload[:200]!r}")
                else:
                    status = json.loads(payload)["status"]
                    if status != "done":
                        errors.append(f"status {status}")
                latencies.append(elapsed)
                counter["done"] += 1
                if counter["done"] in (100, args.scans):
                    rss[counter["done"]] = rss_mb(server.pid)

        def client() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            while True:
                with lock:
                    if counter["started"] >= args.scans:
                        return
                    counter["started"] += 1
                try:
                    one(conn)
                except (OSError, http.client.HTTPException) as e:
                    with lock:
                        errors.append(repr(e))
                        counter["done"] += 1
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

        warm = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        for _ in range(args.warmup):
            warm.request("POST", "/api/v1/scans?wait=60", body=body, headers=headers)
            warm.getresponse().read()
        rss_start = rss_mb(server.pid)
        threads = [threading.Thread(target=client) for _ in range(args.clients)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        latencies.sort()
        return {
            "clients": args.clients,
            "scans": len(latencies),
            "wall_s": wall,
            "scans_per_s": len(latencies) / wall,
            "p50_ms": statistics.median(latencies) * 1000,
            "p95_ms": latencies[int(0.95 * (len(latencies) - 1))] * 1000,
            "errors": len(errors),
            "first_error": errors[0] if errors else "",
            "rss_start_mb": rss_start,
            "rss_100_mb": rss.get(100, float("nan")),
            "rss_end_mb": rss.get(args.scans, float("nan")),
            "model": "brightness test bundle" if args.test_model else "installed image model",
            "pipeline_wall_ms": alone_wall,
            "pipeline_cpu_ms": alone_cpu,
        }
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[8])
    parser.add_argument("--scans", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--workers", type=int, help="server scan workers (default: its own)")
    parser.add_argument("--threads", type=int, help="server HTTP threads (default: its own)")
    parser.add_argument("--test-model", action="store_true", help="use the brightness bundle")
    args = parser.parse_args()
    rows = []
    for clients in args.clients:
        rows.append(run(argparse.Namespace(**{**vars(args), "clients": clients})))
    print(f"model: {rows[0]['model']}; {os.cpu_count()} CPUs; 640x480 JPEG, one face")
    print(
        "| clients | scans | scans/s | p50 ms | p95 ms | errors | RSS start MB |"
        " RSS@100 MB | RSS@end MB | end-100 MB |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['clients']} | {r['scans']} | {r['scans_per_s']:.1f} | {r['p50_ms']:.0f} |"
            f" {r['p95_ms']:.0f} | {r['errors']} | {r['rss_start_mb']:.0f} |"
            f" {r['rss_100_mb']:.0f} | {r['rss_end_mb']:.0f} |"
            f" {r['rss_end_mb'] - r['rss_100_mb']:+.1f} |"
        )
        print(
            f"pipeline.scan alone (one thread, no HTTP): {r['pipeline_wall_ms']:.0f} ms wall,"
            f" {r['pipeline_cpu_ms']:.0f} ms CPU per scan -> at most"
            f" {(os.cpu_count() or 1) * 1000 / r['pipeline_cpu_ms']:.1f} scans/s on this machine"
        )
        if r["first_error"]:
            print(f"first error: {r['first_error']}")


if __name__ == "__main__":
    main()
