"""Bring a corpus into ``data/raw``: from a directory, a zip archive or an http(s) URL.

Every file found is either copied and listed in the manifest or listed in the
rejected table with its reason; none is dropped silently.
"""

from __future__ import annotations

import hashlib
import shutil
import struct
import tempfile
import urllib.request
import zipfile
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

import pandas as pd
import soundfile as sf
from tqdm import tqdm

from ser.audio import require_finite
from ser.labels import AUDIO_EXTENSIONS, LabelError, parse_label

MANIFEST_COLUMNS = [
    "file", "source", "speaker", "word", "emotion", "format", "subtype",
    "sample_rate", "channels", "frames", "duration", "sha256",
]
REJECTED_COLUMNS = ["source", "reason", "counts_as_rejected"]
CHUNK = 1 << 20


class FetchError(RuntimeError):
    """The corpus could not be fetched, or too much of it was rejected."""


@dataclass
class FetchResult:
    manifest: pd.DataFrame
    rejected: pd.DataFrame


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _verify_sha256(path: Path, expected: str) -> None:
    if expected and sha256_of(path) != expected.lower():
        raise FetchError(f"{path}: sha256 does not match data.sha256={expected}")


def download(url: str, target: Path) -> Path:
    """Download ``url`` to ``target`` with a progress bar."""
    try:
        with urllib.request.urlopen(url, timeout=60) as response, target.open("wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=f"download {url}") as bar:
                for block in iter(lambda: response.read(CHUNK), b""):
                    out.write(block)
                    bar.update(len(block))
    except OSError as exc:
        raise FetchError(f"{url}: download failed ({exc})") from None
    return target


@contextmanager
def source_directory(source: str, sha256: str = "") -> Iterator[Path]:
    """Yield a directory holding the corpus named by ``source`` (dir, zip or URL of a zip)."""
    if source.startswith(("http://", "https://")):
        with tempfile.TemporaryDirectory(prefix="ser-fetch-") as tmp:
            archive = download(source, Path(tmp) / "corpus.zip")
            with source_directory(str(archive), sha256) as root:
                yield root
        return
    path = Path(source)
    if path.is_dir():
        if sha256:
            raise FetchError(f"{source}: data.sha256 applies to a zip or URL, not to a directory")
        yield path
    elif path.is_file() and zipfile.is_zipfile(path):
        _verify_sha256(path, sha256)
        with tempfile.TemporaryDirectory(prefix="ser-fetch-") as tmp, zipfile.ZipFile(path) as archive:
            archive.extractall(tmp)
            yield Path(tmp)
    elif path.exists():
        raise FetchError(f"{source}: data.source is neither a directory nor a zip archive")
    else:
        raise FetchError(f"{source}: data.source does not exist")


def truncation_reason(path: Path) -> str | None:
    """Why a RIFF/WAV or AIFF file is cut short (a chunk runs past the end), if it is."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(12)
        if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
            order = "<"
        elif head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
            order = ">"
        else:
            return None
        position = 12
        while position + 8 <= size:
            handle.seek(position)
            chunk_id, chunk_size = struct.unpack(f"{order}4sI", handle.read(8))
            if chunk_size in (0, 0xFFFFFFFF):  # streamed: size unknown
                return None
            end = position + 8 + chunk_size
            if end > size:
                return f"truncated: chunk {chunk_id.decode('latin-1')!r} needs {end - size} more bytes"
            position = end + (chunk_size & 1)
    return None


def inspect_audio(path: Path) -> dict:
    """Decode a whole file and describe it; raise ``ValueError`` with the reason if unusable."""
    if path.stat().st_size == 0:
        raise ValueError("empty file (0 bytes)")
    reason = truncation_reason(path)
    if reason:
        raise ValueError(reason)
    try:
        with sf.SoundFile(path) as audio:
            samples = audio.read(dtype="float32", always_2d=True)
            described = {
                "format": audio.format,
                "subtype": audio.subtype,
                "sample_rate": audio.samplerate,
                "channels": audio.channels,
                "frames": samples.shape[0],
                "duration": round(samples.shape[0] / audio.samplerate, 6),
            }
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise ValueError(f"cannot decode audio ({getattr(exc, 'error_string', exc)})") from None
    if samples.shape[0] == 0:
        raise ValueError("no audio samples")
    require_finite(samples, path)
    return described


def _describe_file(path: Path) -> dict:
    if path.suffix.lower() not in AUDIO_EXTENSIONS:
        raise ValueError(f"not an audio file extension ({path.suffix or 'none'})")
    label = parse_label(path)
    return {**asdict(label), **inspect_audio(path)}


def collect(root: Path, raw_dir: Path) -> FetchResult:
    """Copy every usable audio file under ``root`` to ``raw_dir/audio`` and describe all files."""
    files = sorted(p for p in root.rglob("*") if p.is_file())
    rows, rejected, seen = [], [], {}
    for path in tqdm(files, desc="fetch", unit="file"):
        source = path.relative_to(root).as_posix()
        try:
            row = _describe_file(path)
        except (LabelError, ValueError) as exc:
            reason = str(exc).removeprefix(f"{path}: ")
            rejected.append({"source": source, "reason": reason, "counts_as_rejected": True})
            continue
        row["sha256"] = sha256_of(path)
        key = (row["speaker"], row["word"], row["emotion"])
        if key in seen:
            first = seen[key]
            same = first["sha256"] == row["sha256"]
            reason = f"{'identical copy' if same else 'same label, different audio'} of {first['source']}"
            rejected.append({"source": source, "reason": reason, "counts_as_rejected": not same})
            continue
        row["source"] = source
        row["file"] = f"audio/{source}"
        seen[key] = row
        target = raw_dir / row["file"]
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        rows.append(row)
    return FetchResult(
        pd.DataFrame(rows, columns=MANIFEST_COLUMNS),
        pd.DataFrame(rejected, columns=REJECTED_COLUMNS),
    )


def check_rejected(result: FetchResult, max_fraction: float) -> None:
    """Fail when more than ``max_fraction`` of the files were rejected (identical copies aside)."""
    bad = int(result.rejected["counts_as_rejected"].sum())
    total = len(result.manifest) + bad
    if total == 0:
        raise FetchError("no audio files found in data.source")
    if result.manifest.empty:
        raise FetchError(f"no usable audio in data.source: all {total} file(s) rejected")
    if bad / total > max_fraction:
        raise FetchError(
            f"{bad} of {total} files rejected ({bad / total:.1%}), more than "
            f"data.max_rejected_fraction={max_fraction}; see the rejected list for each reason"
        )


def fetch(source: str, raw_dir: Path, sha256: str = "") -> FetchResult:
    """Fetch ``source`` into a fresh ``raw_dir`` and write ``raw_dir/manifest.csv``."""
    if raw_dir.exists():
        shutil.rmtree(raw_dir)
    raw_dir.mkdir(parents=True)
    with source_directory(source, sha256) as root:
        result = collect(root, raw_dir)
    result.manifest.to_csv(raw_dir / "manifest.csv", index=False)
    return result
