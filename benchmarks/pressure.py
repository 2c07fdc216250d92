"""Pressure: ``ser serve`` on loopback under a soak of requests, a burst of uploads beyond its limit, and slow clients.

- uploads beyond the limit: UPLOADS clients post at once a real-speech WAV near
  the size limit (``serve.max_upload_mb``); the server takes at most
  ``serve.max_uploads_in_flight`` at a time and refuses the others (503) before
  reading their body. Its peak memory over its idle memory is set against the
  same burst on a server without the limit (the baseline), and every client
  must get an answer, 200 or 503;
- slow clients: one sends its headers and part of its body, then nothing;
  another trickles a byte every half second: the seconds until the server cuts
  each off (408 or a closed connection), against its body timeout (``--body-timeout``);
- soak: SOAK requests from CLIENTS concurrent clients (as many as the default
  limit), half of them uploads of real TESS clips, half health checks: none
  may fail; requests/s, p50/p95/p99 latency, and the server's memory before
  and after.

    python -m benchmarks pressure   # needs models/ (`dvc pull` or `make run`)

The helpers that drive raw uploads (``start_upload``, ``read_response``...)
are also the tests' (tests/test_webapp_pressure.py).
"""

from __future__ import annotations

import http.client
import io
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import httpx
import numpy as np
import soundfile as sf

from benchmarks.common import CORPUS, SMOKE, save, smoke_or
from benchmarks.load import running_server, server_rss_mib
from ser.params import ServeParams

DEFAULTS = ServeParams()
LIMIT = smoke_or(DEFAULTS.max_uploads_in_flight, 2)
MAX_UPLOAD_MB = smoke_or(DEFAULTS.max_upload_mb, 1.0)
NO_LIMIT = 1024  # the most uploads in flight ServeParams allows: the baseline, in effect unlimited
UPLOADS = 3 * LIMIT
CLIENTS = LIMIT  # the soak's clients: as many as the limit, so none may be refused
SOAK = smoke_or(3000, 60)
BODY_TIMEOUT_S = 5.0
TRICKLE_S = 0.5
BOUNDARY = "ser-pressure-boundary"


def multipart(name: str, data: bytes) -> tuple[bytes, str]:
    """A multipart/form-data body holding ``data`` as the field ``file``, and its content type."""
    head = (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n").encode()
    return head + data + f"\r\n--{BOUNDARY}--\r\n".encode(), f"multipart/form-data; boundary={BOUNDARY}"


def start_upload(port: int, body: bytes, content_type: str, sent: int) -> socket.socket:
    """A POST /api/predict on a new connection to 127.0.0.1:``port`` that declares all of ``body``
    and sends only its first ``sent`` bytes (the caller sends the rest, or not)."""
    connection = socket.create_connection(("127.0.0.1", port), timeout=30)
    head = (f"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    connection.sendall(head + body[:sent])
    return connection


def answered_within(connection: socket.socket, seconds: float) -> bool:
    """Whether the server sent something (or closed the connection) within ``seconds``."""
    connection.settimeout(seconds)
    try:
        connection.recv(1, socket.MSG_PEEK)
        return True
    except TimeoutError:
        return False
    except ConnectionError:
        return True


def read_response(connection: socket.socket, timeout: float = 30) -> tuple[int, dict[str, str], bytes]:
    """The status, headers (lower-case names) and body of the response on ``connection``."""
    connection.settimeout(timeout)
    response = http.client.HTTPResponse(connection)
    response.begin()
    return response.status, {name.lower(): value for name, value in response.getheaders()}, response.read()


def cut_off(port: int, trickle_s: float | None, timeout: float) -> tuple[float, int | None]:
    """An upload whose client sends its headers and part of its body, then nothing (``trickle_s`` None)
    or one byte every ``trickle_s`` seconds: the seconds from its headers until the server answered or
    closed, and the status it answered (None: closed without one). Fails after ``timeout`` seconds."""
    body, content_type = multipart("slow.wav", bytes(200_000))
    with start_upload(port, body, content_type, 1000) as connection:
        start = time.monotonic()
        sent = 1000
        while not answered_within(connection, trickle_s or timeout):
            if time.monotonic() - start > timeout:
                raise RuntimeError(f"a slow client was not cut off in {timeout} s")
            try:
                connection.sendall(body[sent:sent + 1])
                sent += 1
            except ConnectionError:
                break
        seconds = time.monotonic() - start
        try:
            return seconds, read_response(connection)[0]
        except (http.client.HTTPException, ConnectionError):
            return seconds, None


class PeakRss:
    """The peak resident memory (MiB) of a server and its workers, sampled in a thread while the block runs."""

    def __init__(self, server, interval: float = 0.02):
        self.server, self.interval, self.peak_mib = server, interval, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while True:
            self.peak_mib = max(self.peak_mib, server_rss_mib(self.server))
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()


def post(url: str, name: str, data: bytes, timeout: float = 120) -> int | str:
    """The status of one upload, or the transport error's name."""
    try:
        return httpx.post(f"{url}/api/predict", files={"file": (name, data)}, timeout=timeout).status_code
    except httpx.TransportError as exc:
        return type(exc).__name__


def at_once(count: int, action: Callable[[int], object]) -> list:
    """``action(k)`` for k < ``count``, each in its own thread, all released at the same moment."""
    start = threading.Barrier(count)

    def run(k: int) -> object:
        start.wait(timeout=60)
        return action(k)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def speech_wav(size: int) -> bytes:
    """A stereo float WAV of real speech (TESS clips end to end) of about ``size`` bytes."""
    frames_wanted, parts, total = size // 8, [], 0
    for clip in sorted(CORPUS.glob("*/*.*")):
        samples, sr = sf.read(clip, dtype="float32")
        parts.append(samples)
        total += len(samples)
        if total >= frames_wanted:
            break
    speech = np.concatenate(parts)[:frames_wanted]
    buffer = io.BytesIO()
    sf.write(buffer, np.stack([speech, speech], axis=1), sr, format="WAV", subtype="FLOAT")
    return buffer.getvalue()


def warm_up(url: str, clips: list[tuple[str, bytes]]) -> None:
    """A few uploads, so that the server's memory is measured warm; fails unless they succeed."""
    if statuses := [status for name, data in clips[:5] if (status := post(url, name, data)) != 200]:
        raise RuntimeError(f"warm-up uploads failed: {statuses}")


def tally(statuses: list[int | str]) -> dict[str, int]:
    """How many answers of each status (or transport error)."""
    return {str(status): statuses.count(status) for status in sorted(set(statuses), key=str)}


def burst(url: str, server, upload: bytes, uploads: int) -> dict:
    """``uploads`` clients post ``upload`` at once: their answers and the server's memory, idle and at its peak."""
    idle = server_rss_mib(server)
    with PeakRss(server) as peak:
        start = time.perf_counter()
        statuses = at_once(uploads, lambda k: post(url, f"big{k}.wav", upload))
        seconds = time.perf_counter() - start
    return {"statuses": tally(statuses), "seconds": seconds, "idle_rss_mib": idle, "peak_rss_mib": peak.peak_mib,
            "growth_mib": peak.peak_mib - idle}


def soak(url: str, clips: list[tuple[str, bytes]], requests: int, clients: int) -> dict:
    """``requests`` requests from ``clients`` clients, uploads of ``clips`` (in turn) and health checks
    alternately: how many failed, the answers by status (or transport error), requests/s and latency."""
    def send(k: int) -> tuple[float, int | str, bool]:
        start = time.perf_counter()
        try:
            if k % 2:
                response = http.get(f"{url}/api/health")
                ok = response.status_code == 200 and response.json()["status"] == "ok"
            else:
                name, data = clips[k // 2 % len(clips)]
                response = http.post(f"{url}/api/predict", files={"file": (name, data)})
                ok = response.status_code == 200 and response.json()["file"] == name
            status: int | str = response.status_code
        except httpx.HTTPError as exc:
            ok, status = False, type(exc).__name__
        return time.perf_counter() - start, status, ok

    with httpx.Client(timeout=60, limits=httpx.Limits(max_connections=clients)) as http:
        start = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            results = list(pool.map(send, range(requests)))
        wall = time.perf_counter() - start
    ms = np.array([seconds for seconds, _, _ in results]) * 1000
    return {
        "clients": clients, "requests": len(results), "failed": sum(not ok for _, _, ok in results),
        "statuses": tally([status for _, status, _ in results]),
        "requests_per_s": len(results) / wall,
        **{f"p{q}_ms": float(np.percentile(ms, q)) for q in (50, 95, 99)}, "max_ms": float(ms.max()),
    }


def main() -> dict:
    clips = sorted(CORPUS.glob("*/*.*"))
    payloads = [(clip.name, clip.read_bytes()) for clip in clips[:: len(clips) // 100][:100]]
    upload = speech_wav(int(0.95 * MAX_UPLOAD_MB * 1_000_000))
    options = ("--max-upload-mb", str(MAX_UPLOAD_MB), "--body-timeout", str(BODY_TIMEOUT_S))
    result: dict = {"smoke": SMOKE, "upload_mb": len(upload) / 1e6, "max_upload_mb": MAX_UPLOAD_MB, "uploads": UPLOADS,
                    "limit": LIMIT, "body_timeout_s": BODY_TIMEOUT_S, "trickle_s": TRICKLE_S}
    with running_server(*options, "--max-uploads-in-flight", str(NO_LIMIT)) as (url, server):
        warm_up(url, payloads)
        result["unlimited"] = burst(url, server, upload, UPLOADS)
    with running_server(*options, "--max-uploads-in-flight", str(LIMIT)) as (url, server):
        warm_up(url, payloads)
        result["limited"] = burst(url, server, upload, UPLOADS)
        port = int(url.rsplit(":", 1)[1])
        for name, trickle_s in (("stalled", None), ("trickling", TRICKLE_S)):
            result[name] = dict(zip(("seconds", "status"), cut_off(port, trickle_s, 2 * BODY_TIMEOUT_S + 10)))
        rss_before = server_rss_mib(server)
        run = soak(url, payloads, SOAK, CLIENTS)
        result["soak"] = {**run, "rss_before_mib": rss_before, "rss_after_mib": server_rss_mib(server)}
    unlimited, limited, run = result["unlimited"], result["limited"], result["soak"]
    stalled, trickling = result["stalled"], result["trickling"]
    print(f"{UPLOADS} uploads of {result['upload_mb']:.1f} MB at once: without a limit {unlimited['statuses']}, "
          f"peak RSS {unlimited['peak_rss_mib']:.0f} MiB (+{unlimited['growth_mib']:.0f} over idle); "
          f"{LIMIT} in flight: {limited['statuses']}, peak RSS {limited['peak_rss_mib']:.0f} MiB "
          f"(+{limited['growth_mib']:.0f})")
    print(f"slow clients, body timeout {BODY_TIMEOUT_S:g} s: stalled cut off after {stalled['seconds']:.2f} s "
          f"({stalled['status']}), trickling after {trickling['seconds']:.2f} s ({trickling['status']})")
    print(f"soak: {run['requests']} requests from {run['clients']} clients, {run['failed']} failed, "
          f"{run['requests_per_s']:.1f} requests/s, p50 {run['p50_ms']:.0f} ms, p95 {run['p95_ms']:.0f} ms, "
          f"p99 {run['p99_ms']:.0f} ms; server RSS {run['rss_before_mib']:.0f} -> {run['rss_after_mib']:.0f} MiB")
    save("pressure", result)
    return result
