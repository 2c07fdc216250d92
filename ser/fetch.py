"""Bring one corpus into ``data/raw/<corpus>``: from a directory, a zip archive, an http(s) URL or a CSV.

Its recipe (:mod:`ser.corpora`) labels each file; every file found is either
copied and listed in the corpus's manifest or listed in its rejected table
with the reason, none is dropped silently. The same audio found twice (by
sha256) is listed as a copy and kept once.
"""

from __future__ import annotations

import hashlib
import shutil
import struct
import tempfile
import urllib.request
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pandas as pd
import soundfile as sf
from tqdm import tqdm

from ser.audio import check_sample_rate, check_samples, read_blocks
from ser.corpora import Entry, LabelError, Recipe, recipes
from ser.files import replaced_directory
from ser.params import SourceParams

MANIFEST_FILE = "manifest.csv"
REJECTED_FILE = "rejected.csv"
AUDIO_DIR = "audio"
MANIFEST_COLUMNS = [
    "file", "source", "corpus", "speaker", "text", "label", "format", "subtype",
    "sample_rate", "channels", "frames", "duration", "sha256",
]
"""``file``: path under the corpus's folder; ``source``: path in the source; ``label``: the emotion as the corpus names it."""
REJECTED_COLUMNS = ["file", "corpus", "recipe", "reason", "counts_as_rejected"]
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
        raise FetchError(f"{path}: sha256 does not match the source's sha256={expected}")


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
def source_location(source: str, sha256: str = "") -> Iterator[Path]:
    """Yield the directory (or, for a CSV, the file) holding the corpus named by ``source``."""
    if source.startswith(("http://", "https://")):
        with tempfile.TemporaryDirectory(prefix="ser-fetch-") as tmp:
            archive = download(source, Path(tmp) / "corpus.zip")
            with source_location(str(archive), sha256) as root:
                yield root
        return
    path = Path(source)
    if path.is_dir() or (path.is_file() and path.suffix.lower() == ".csv"):
        if sha256:
            raise FetchError(f"{source}: sha256 applies to a zip or URL, not to a directory or CSV")
        yield path
    elif path.is_file() and zipfile.is_zipfile(path):
        _verify_sha256(path, sha256)
        with tempfile.TemporaryDirectory(prefix="ser-fetch-") as tmp, zipfile.ZipFile(path) as archive:
            archive.extractall(tmp)
            yield Path(tmp)
    elif path.exists():
        raise FetchError(f"{source}: the source is neither a directory, a zip archive nor a CSV")
    else:
        raise FetchError(f"{source}: the source does not exist")


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
            check_sample_rate(audio.samplerate, path)
            frames = 0
            for block in read_blocks(audio):  # block by block: the header's frame count may be a lie
                check_samples(block, path)
                frames += len(block)
            described = {
                "format": audio.format,
                "subtype": audio.subtype,
                "sample_rate": audio.samplerate,
                "channels": audio.channels,
                "frames": frames,
                "duration": round(frames / audio.samplerate, 6),
            }
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise ValueError(f"cannot decode audio ({getattr(exc, 'error_string', exc)})") from None
    if frames == 0:
        raise ValueError("no audio samples")
    return described


def _relative(path: Path, root: Path) -> str:
    """``path`` under the source's folder, as the manifest and the rejected list name it."""
    base = root if root.is_dir() else root.parent
    try:
        return path.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def collect(root: Path, recipe: Recipe, corpus: str, out_dir: Path) -> FetchResult:
    """Copy every usable, labelled audio file of ``root`` to ``out_dir/audio`` and describe all files."""
    rows, rejected, seen = [], [], {}

    def reject(source: str, reason: str, counts: bool = True) -> None:
        rejected.append({"file": source, "corpus": corpus, "recipe": recipe.name, "reason": reason, "counts_as_rejected": counts})

    entries: list[Entry] = list(recipe.entries(root))
    for entry in tqdm(entries, desc=f"fetch {corpus}", unit="file"):
        source = _relative(entry.path, root)
        if entry.label is None:
            reject(source, entry.reason, entry.counts_as_rejected)
            continue
        try:
            described = inspect_audio(entry.path)
        except ValueError as exc:
            reject(source, str(exc).removeprefix(f"{entry.path}: "))
            continue
        sha256 = sha256_of(entry.path)
        if sha256 in seen:
            reject(source, f"identical copy of {seen[sha256]}", counts=False)
            continue
        seen[sha256] = source
        name = entry.corpus or corpus
        file = f"{AUDIO_DIR}/{source}"
        rows.append({
            "file": file, "source": source, "corpus": name, "speaker": f"{name}/{entry.label.speaker}",
            "text": entry.label.text, "label": entry.label.emotion, **described, "sha256": sha256,
        })
        target = out_dir / file
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(entry.path, target)
    return FetchResult(
        pd.DataFrame(rows, columns=MANIFEST_COLUMNS),
        pd.DataFrame(rejected, columns=REJECTED_COLUMNS),
    )


def check_rejected(result: FetchResult, max_fraction: float, corpus: str) -> None:
    """Fail when more than ``max_fraction`` of the files were rejected (copies and files left aside on purpose aside)."""
    bad = int(result.rejected["counts_as_rejected"].sum())
    total = len(result.manifest) + bad
    if total == 0:
        raise FetchError(f"{corpus}: no audio files found in the source")
    if result.manifest.empty:
        raise FetchError(f"{corpus}: no usable audio in the source: all {total} file(s) rejected")
    if bad / total > max_fraction:
        raise FetchError(
            f"{corpus}: {bad} of {total} files rejected ({bad / total:.1%}), more than "
            f"data.max_rejected_fraction={max_fraction}; see the rejected list for each reason"
        )


def fetch(corpus: str, source: SourceParams, out_dir: Path) -> FetchResult:
    """Fetch one corpus into a fresh ``out_dir``; write its ``manifest.csv`` and ``rejected.csv`` there.
    The folder appears complete or not at all (:func:`ser.files.replaced_directory`): an interrupted
    fetch never leaves a half-copied corpus."""
    recipe = recipes()[source.recipe]
    with replaced_directory(out_dir) as building, source_location(source.source, source.sha256) as root:
        try:
            result = collect(root, recipe, corpus, building)
        except LabelError as exc:  # the source as a whole cannot be read (e.g. a CSV without its columns)
            raise FetchError(str(exc)) from None
        result.manifest.to_csv(building / MANIFEST_FILE, index=False)
        result.rejected.to_csv(building / REJECTED_FILE, index=False)
    return result
