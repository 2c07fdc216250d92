"""Load: ``ser serve`` on loopback under concurrent clients posting real TESS clips.

Starts the web app on 127.0.0.1 (the model in models/), then sends the same
fixed number of requests from 1 client (the baseline) and from CLIENTS
concurrent clients, to one server process and then to two (``--workers 2``);
reports requests/s, p50/p95 latency, the failures (there should be none) and
the server's memory after the run.

    python -m benchmarks load   # needs models/ (`dvc pull` or `make run`)
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import httpx
import numpy as np
import psutil

from benchmarks.common import CORPUS, REPO, SMOKE, save, smoke_or

REQUESTS = smoke_or(300, 16)
CLIENTS = 8


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_up(url: str, server: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"ser serve exited: {server.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"{url}/api/health").status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise RuntimeError("ser serve did not start")


def run_load(url: str, payloads: list[tuple[str, bytes]], clients: int) -> dict:
    """Send every payload once, from ``clients`` threads; latencies and failures."""
    def send(item: tuple[str, bytes]) -> tuple[float, bool]:
        name, data = item
        start = time.perf_counter()
        try:
            response = http.post(f"{url}/api/predict", files={"file": (name, data)})
            ok = response.status_code == 200 and "emotion" in response.json()
        except httpx.HTTPError:
            ok = False
        return time.perf_counter() - start, ok

    with httpx.Client(timeout=60, limits=httpx.Limits(max_connections=clients)) as http:
        start = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            results = list(pool.map(send, payloads))
        wall = time.perf_counter() - start
    ms = np.array([seconds for seconds, _ in results]) * 1000
    return {
        "clients": clients, "requests": len(results), "failed": sum(not ok for _, ok in results),
        "requests_per_s": len(results) / wall,
        "p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)), "max_ms": float(ms.max()),
    }


def server_rss_mib(server: subprocess.Popen) -> float:
    """Resident memory of the server and its worker processes."""
    tree = [psutil.Process(server.pid), *psutil.Process(server.pid).children(recursive=True)]
    return sum(process.memory_info().rss for process in tree) / 2**20


@contextlib.contextmanager
def running_server(*options: str) -> Iterator[tuple[str, subprocess.Popen]]:
    """``ser serve`` with the committed model on a free local port, until the block ends: its URL and process."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    ser = str(Path(sys.executable).with_name("ser"))
    server = subprocess.Popen([ser, "serve", "--port", str(port), "--log-level", "warning", *options],
                              cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_until_up(url, server)
        yield url, server
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:  # uvicorn waits for open requests to end; a stuck one must not outlive us
            server.kill()
            server.wait()


def load_server(payloads: list[tuple[str, bytes]], workers: int, clients: tuple[int, ...]) -> dict:
    """Start ``ser serve --workers N`` and run the payloads with each number of clients."""
    with running_server("--workers", str(workers)) as (url, server):
        run_load(url, payloads[:20], max(clients))  # warm-up, every worker
        runs = {f"{n}_clients": run_load(url, payloads, n) for n in clients}
        return {"workers": workers, **runs, "server_rss_mib": server_rss_mib(server)}


def main() -> dict:
    clips = sorted(CORPUS.glob("*/*.*"))
    payloads = [(clip.name, clip.read_bytes()) for clip in clips[:: len(clips) // REQUESTS][:REQUESTS]]
    one_process = load_server(payloads, 1, (1, CLIENTS))
    two_processes = load_server(payloads, 2, (CLIENTS,))
    baseline = one_process["1_clients"]
    result = {"smoke": SMOKE, "one_process": one_process, "two_processes": two_processes}
    for name, run in (("1 process, 1 client", baseline), (f"1 process, {CLIENTS} clients", one_process[f"{CLIENTS}_clients"]),
                      (f"2 processes, {CLIENTS} clients", two_processes[f"{CLIENTS}_clients"])):
        print(f"{name}: {run['requests']} requests, {run['failed']} failed, {run['requests_per_s']:.1f} requests/s "
              f"({run['requests_per_s'] / baseline['requests_per_s']:.2f}x), p50 {run['p50_ms']:.0f} ms, "
              f"p95 {run['p95_ms']:.0f} ms, max {run['max_ms']:.0f} ms")
    print(f"server RSS: {one_process['server_rss_mib']:.0f} MiB (1 process), {two_processes['server_rss_mib']:.0f} MiB (2)")
    save("load", result)
    return result
