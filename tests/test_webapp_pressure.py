"""The web service under pressure, on a real server: ``ser serve`` with the small test model in a subprocess
on 127.0.0.1, with small limits. Uploads beyond the limit in flight are refused at once (503) while the
health and model endpoints still answer; the server's memory stays bounded when many clients post uploads
near the size limit; a client that never finishes its body is cut off (408) and its slot freed, as is a
client that leaves; a soak of requests at the limit loses none.

The clients that hold uploads half sent are raw sockets (the pressure benchmark's helpers)."""

from __future__ import annotations

import contextlib
import json
import select
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterator

import httpx
import numpy as np
import pytest

from benchmarks.load import running_server, server_rss_mib
from benchmarks.pressure import burst, cut_off, multipart, post, read_response, soak, start_upload
from conftest import make_tone
from test_webapp import encode, tone_wav

LIMIT = 3  # uploads in flight
BODY_TIMEOUT_S = 4.0
MAX_UPLOAD_MB = 4.0
SLACK_S = 2.0  # how late a cut-off may come on a busy 2-core machine
HEAD = 65536  # bytes of a held upload's body sent before it stalls


@dataclass(frozen=True)
class Server:
    url: str
    port: int
    process: subprocess.Popen


@pytest.fixture(scope="module")
def server(served_model_dir, tmp_path_factory) -> Iterator[Server]:
    options = [
        "--model", str(served_model_dir), "--params", str(tmp_path_factory.mktemp("pressure") / "no-params.yaml"),
        "--max-upload-mb", str(MAX_UPLOAD_MB), "--max-duration", "600",
        "--max-uploads-in-flight", str(LIMIT), "--body-timeout", str(BODY_TIMEOUT_S),
    ]
    with running_server(*options) as (url, process):
        yield Server(url, int(url.rsplit(":", 1)[1]), process)
    assert process.poll() is not None


@pytest.fixture(scope="module")
def near_limit_wav() -> bytes:
    """A WAV of 90% of the size limit: 18 s at 96 kHz (a 1 s tone repeated)."""
    sr, seconds = 96_000, int(0.9 * MAX_UPLOAD_MB * 1e6 / (2 * 96_000))
    data = encode(np.tile(make_tone(sr, 1.0, seed=3), seconds), sr, "WAV", "PCM_16")
    assert 0.85 * MAX_UPLOAD_MB * 1e6 < len(data) < 0.95 * MAX_UPLOAD_MB * 1e6
    return data


@contextlib.contextmanager
def held_uploads(port: int, body: bytes, content_type: str, count: int) -> Iterator[list[socket.socket]]:
    """``count`` uploads of ``body`` whose clients sent their headers and its first bytes, then stall."""
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(start_upload(port, body, content_type, HEAD)) for _ in range(count)]


def answered(uploads: list[socket.socket], expected: int, within: float = 5.0) -> list[socket.socket]:
    """The uploads the server answered (or closed): waits until ``expected`` are, then a little more for any other."""
    deadline = time.monotonic() + within
    ready: list[socket.socket] = []
    while len(ready) < expected and time.monotonic() < deadline:
        ready, _, _ = select.select(uploads, [], [], 0.05)
    time.sleep(0.3)  # time for a wrong answer to arrive too
    return select.select(uploads, [], [], 0)[0]


def finish(upload: socket.socket, body: bytes) -> tuple[int, dict[str, str], bytes]:
    upload.sendall(body[HEAD:])
    return read_response(upload)


def assert_busy(response: tuple[int, dict[str, str], bytes]) -> None:
    status, headers, body = response
    assert status == 503
    assert headers["retry-after"] == "1" and headers["connection"] == "close"
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {"detail": f"server busy: at its limit of uploads in flight ({LIMIT}); retry in 1 s"}


def all_slots_free(port: int) -> bool:
    """Whether LIMIT uploads are all taken at once (each then scored: 200); False if one is refused."""
    body, content_type = multipart("free.wav", tone_wav(seconds=3.0))  # 96 kB: more than the held part
    with held_uploads(port, body, content_type, LIMIT) as uploads:
        if answered(uploads, 0, within=0):
            return False
        assert [finish(upload, body)[0] for upload in uploads] == [200] * LIMIT
    return True


def test_uploads_beyond_the_limit_are_refused_at_once_while_the_others_and_health_go_on(server, near_limit_wav):
    extra = 5
    body, content_type = multipart("big.wav", near_limit_wav)
    with held_uploads(server.port, body, content_type, LIMIT + extra) as uploads:
        refused = answered(uploads, extra)
        assert len(refused) == extra  # before their bodies were read: their clients sent 64 KiB of 3.5 MB
        for upload in refused:
            assert_busy(read_response(upload))
            assert upload.recv(1) == b""  # and the connection closed
        assert httpx.get(f"{server.url}/api/health", timeout=10).json()["status"] == "ok"  # not limited
        assert httpx.get(f"{server.url}/api/model", timeout=10).json()["limits"]["max_uploads_in_flight"] == LIMIT
        for upload in (upload for upload in uploads if upload not in refused):
            status, _, answer = finish(upload, body)
            assert status == 200, answer
            assert json.loads(answer)["duration"] == pytest.approx(len(near_limit_wav) / (2 * 96_000), abs=0.01)
    assert all_slots_free(server.port)


def test_many_uploads_near_the_size_limit_at_once_keep_the_servers_memory_bounded(server, near_limit_wav):
    """4x the limit post 3.6 MB at once: at most LIMIT are read and scored at a time, the others refused."""
    uploads = 4 * LIMIT
    post(server.url, "warm.wav", near_limit_wav)  # the allocator's first growth for a clip this size
    result = burst(server.url, server.process, near_limit_wav, uploads)
    statuses = result["statuses"]
    assert set(statuses) <= {"200", "503"} and sum(statuses.values()) == uploads, statuses
    assert statuses["200"] >= LIMIT and statuses.get("503", 0) >= 1, statuses
    assert result["growth_mib"] < 150, result  # about 60 MiB; without the limit, the 12 at once take 300 MiB more
    assert post(server.url, "after.wav", tone_wav()) == 200


def test_a_client_that_stalls_or_trickles_its_body_is_cut_off_and_frees_its_slot(server):
    with ThreadPoolExecutor(2) as pool:  # side by side: one waits for the other's cut-off
        stalled, trickling = pool.map(lambda trickle: cut_off(server.port, trickle, BODY_TIMEOUT_S + 30), (None, 0.25))
    for seconds, status in (stalled, trickling):
        assert BODY_TIMEOUT_S - 0.05 <= seconds <= BODY_TIMEOUT_S + SLACK_S
        assert status in (408, None)  # None: closed while the client was still sending
    assert stalled[1] == 408
    assert all_slots_free(server.port)


def test_a_client_that_leaves_mid_body_frees_its_slot(server):
    body, content_type = multipart("gone.wav", tone_wav(seconds=3.0))
    with held_uploads(server.port, body, content_type, LIMIT) as uploads:
        assert not answered(uploads, 0, within=0)
    deadline = time.monotonic() + 5  # the server learns of the disconnects when its event loop next runs
    while not all_slots_free(server.port):
        assert time.monotonic() < deadline, "the slots of clients that left were not freed"
        time.sleep(0.1)


def test_a_soak_of_requests_at_the_limit_loses_none(server):
    """LIMIT clients (as many as the limit: a slot is free again before its client hears the answer)."""
    clips = [(f"soak{k}.wav", tone_wav(sr=16000, seconds=0.6 + 0.1 * k, seed=k)) for k in range(4)]
    warm_up = soak(server.url, clips, 100, LIMIT)  # every thread of the server's pool has scored a clip
    rss_before = server_rss_mib(server.process)
    run = soak(server.url, clips, 1000, LIMIT)
    assert warm_up["failed"] == run["failed"] == 0 and run["statuses"] == {"200": 1000}, (warm_up, run)
    assert server_rss_mib(server.process) - rss_before < 40  # no upload kept: about 14 MiB of allocator slack
