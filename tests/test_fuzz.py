"""Property-based fuzzing (hypothesis) of everything that reads files a user hands over.

Damaged audio goes to ``fetch``, ``ser predict`` and ``POST /api/predict``: valid WAV (16-bit and
float), FLAC, AIFF, OGG/Vorbis and MP3 clips turned into random bytes, cut short, with header bytes
overwritten or flipped, a header field set to an edge of its range, another format's header, or
garbage samples under an intact header, saved under any of those suffixes. Malformed CSV manifests
go to ``fetch``'s ``csv`` recipe. Never a crash, a hang or a 500: a damaged file is either used (it
was readable) or named with its reason, and the good files beside it are still processed.

Bounded in time: derandomized (the same examples on every run, after the damaged files that found
bugs, :data:`FOUND`), a few dozen examples per test, and each call under a wall-clock limit
(:func:`bounded`), so that a hang fails instead of stalling."""

from __future__ import annotations

import codecs
import contextlib
import csv
import functools
import io
import json
import os
import re
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, TypeVar

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from fastapi.testclient import TestClient
from hypothesis import example, given, settings
from hypothesis import strategies as st

from conftest import make_tone
from ser.audio import MIN_SAMPLE_RATE, AudioError, load_window
from ser.cli import main
from ser.fetch import REJECTED_FILE, FetchError, check_rejected, fetch
from ser.inference import Predictor
from ser.params import ServeParams, SourceParams
from ser.webapp import create_app

T = TypeVar("T")

CALL_LIMIT_S = 30.0
"""Longest a single fetch, prediction or request may take (each takes well under a second)."""
FUZZ = settings(deadline=None, derandomize=True, database=None)
"""Reproducible (derandomized, no example database); ``deadline`` is off because :func:`bounded` limits
each call instead, including the first, which loads libraries. Each test sets its number of examples:
about 20 seconds' worth on 2 cores at most."""
HEADER_BYTES = 200
"""How much of the start of a file the header mutations touch."""
SEEDS = {"wav": ("WAV", "PCM_16"), "float.wav": ("WAV", "FLOAT"), "flac": ("FLAC", "PCM_16"), "aiff": ("AIFF", "PCM_16"),
         "ogg": ("OGG", "VORBIS"), "mp3": ("MP3", "MPEG_LAYER_III")}
"""The valid clips that are damaged, by name: name -> (soundfile format, subtype)."""
SUFFIXES = (".wav", ".flac", ".aiff", ".ogg", ".mp3")
SEED_SR = 16000
INTERESTING = (0, 1, 2, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF)
"""Values a header field is set to: the edges of its range, where sizes and rates break."""
GOOD_TESS = {"wav": "OAF_back_angry", "flac": "YAF_dog_happy", "aiff": "OAF_food_sad", "ogg": "YAF_germ_fear",
             "mp3": "OAF_bite_neutral"}
"""One good clip of each suffix's format, named as TESS names its files (the ``tess`` recipe labels them)."""
DAMAGED_TESS = "zz_damaged/YAF_fuzz_disgust"
"""The damaged clip, sorted after the good ones, so that it is the one called a copy if it equals one."""
GOOD_CSV = {"a.wav": "happy", "sub/b.flac": "sad", "c.ogg": "angry"}
"""The good clips of the ``csv`` source and their emotions (speaker ``s1``)."""
LINE = re.compile(r"(?:.*labels\.csv )?line (\d+): ")


@functools.cache
def seed_file(name: str) -> bytes:
    """A valid 1.2 s voice-like clip of :data:`SEEDS`."""
    buffer = io.BytesIO()
    file_format, subtype = SEEDS[name]
    sf.write(buffer, make_tone(SEED_SR, 1.2, f0=150.0), SEED_SR, format=file_format, subtype=subtype)
    return buffer.getvalue()


def seed_suffix(name: str) -> str:
    """The suffix of the seed's format (``.wav`` for both WAV seeds)."""
    return f".{SEEDS[name][0].lower()}"


@dataclass(frozen=True)
class Damaged:
    """Damaged audio: its bytes, the suffix it is saved under, and how it was made (shown when a test fails)."""

    data: bytes
    suffix: str
    how: str


@st.composite
def damaged_audio(draw: st.DrawFn) -> Damaged:
    """A valid clip of any seed, damaged one way, saved under any format's suffix."""
    source = draw(st.sampled_from(sorted(SEEDS)))
    seed = seed_file(source)
    header = st.integers(0, HEADER_BYTES - 1)
    how = draw(st.sampled_from(["random bytes", "truncated", "header overwritten", "header bits flipped", "header field",
                                "spliced", "body scrambled"]))
    mutable = bytearray(seed)
    if how == "random bytes":
        mutable = bytearray(draw(st.binary(max_size=4096)))
    elif how == "truncated":
        del mutable[draw(st.integers(0, len(seed) - 1)):]
    elif how == "header overwritten":
        for index, value in draw(st.lists(st.tuples(header, st.integers(0, 255)), min_size=1, max_size=8)):
            mutable[index] = value
    elif how == "header bits flipped":
        for index, bit in draw(st.lists(st.tuples(header, st.integers(0, 7)), min_size=1, max_size=8)):
            mutable[index] ^= 1 << bit
    elif how == "header field":  # a size, rate or count set to an edge of its range
        width, order = draw(st.sampled_from([2, 4])), draw(st.sampled_from(["little", "big"]))
        at = draw(header)
        mutable[at : at + width] = (draw(st.sampled_from(INTERESTING)) % (1 << 8 * width)).to_bytes(width, order)
    elif how == "spliced":  # another format's header on this one's body
        cut = draw(header)
        mutable[:cut] = seed_file(draw(st.sampled_from(sorted(SEEDS))))[:cut]
    else:  # the header kept, the samples garbage
        mutable[HEADER_BYTES:] = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).bytes(len(seed) - HEADER_BYTES)
    suffix = draw(st.sampled_from(SUFFIXES))
    return Damaged(bytes(mutable), suffix, f"{source} {how}, saved as {suffix}")


def overwritten(name: str, at: int, value: bytes, how: str) -> Damaged:
    """Seed ``name`` with ``value`` written at byte ``at``: the damaged files that found bugs."""
    data = bytearray(seed_file(name))
    data[at : at + len(value)] = value
    return Damaged(bytes(data), seed_suffix(name), how)


def float_wav(samples: np.ndarray, how: str) -> Damaged:
    """``samples`` as a 32-bit float WAV (which holds any value, NaN included)."""
    buffer = io.BytesIO()
    sf.write(buffer, samples, SEED_SR, format="WAV", subtype="FLOAT")
    return Damaged(buffer.getvalue(), ".wav", how)


ONE_HERTZ = overwritten("wav", 24, (1).to_bytes(4, "little"), "wav whose header says 1 Hz: 5 hours of windows (a hang)")
HUGE_FLAC = overwritten("flac", 21, bytes([seed_file("flac")[21] | 0x0F]) + b"\xff" * 4,
                        "flac whose header claims 2**36 frames (MemoryError in fetch)")
HUGE_SAMPLES = float_wav(make_tone(SEED_SR, 1.2) * 1e30, "float wav with finite samples of 1e30 (NaN probabilities, a 500)")
NAN_AT_START = float_wav(np.where(np.arange(int(SEED_SR * 1.2)) == 100, np.nan, make_tone(SEED_SR, 1.2)),
                         "float wav with NaN before the offset (a 500 with visuals)")
YEARS_OF_MP3 = overwritten("mp3", 18, b"\xff" * 4, "mp3 whose header says 154 million s: 51 million windows (out of memory)")
FOUND = [ONE_HERTZ, HUGE_FLAC, YEARS_OF_MP3, HUGE_SAMPLES, NAN_AT_START]
"""Damaged files that found bugs, tried first by every test (random examples rarely hit them)."""


def found_examples(**arguments) -> Callable[[Callable], Callable]:
    """Decorate a test with :data:`FOUND` as explicit examples of ``damaged`` (and the other ``arguments``)."""

    def decorate(test: Callable) -> Callable:
        for damaged in reversed(FOUND):
            test = example(damaged=damaged, **arguments)(test)
        return test

    return decorate


def bounded(call: Callable[[], T], seconds: float = CALL_LIMIT_S) -> T:
    """``call()``'s result (or exception), failing the test if it runs longer than ``seconds``: a hang.

    It runs in a daemon thread, which a hung library call cannot keep from exiting."""
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["result"] = call()
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller as it is
            outcome["error"] = exc

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        pytest.fail(f"still running after {seconds:g} s: a hang")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


@contextlib.contextmanager
def fresh_folder(parent: Path) -> Iterator[Path]:
    """An empty folder under ``parent`` for one example, removed after it."""
    with tempfile.TemporaryDirectory(dir=parent) as folder:
        yield Path(folder)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module")
def good_tess(workdir) -> Path:
    """A folder with one good clip of each seed format, named by TESS's convention."""
    folder = workdir / "good_tess"
    folder.mkdir()
    for name, stem in GOOD_TESS.items():
        (folder / f"{stem}{seed_suffix(name)}").write_bytes(seed_file(name))
    return folder


# ---------------------------------------------------------------- fetch: damaged audio


@settings(FUZZ, max_examples=300)
@given(damaged=damaged_audio())
@found_examples()
def test_fetch_uses_or_names_a_damaged_clip_and_keeps_the_good_ones(good_tess, workdir, audio_params, damaged):
    with fresh_folder(workdir) as folder:
        source, raw = folder / "tess", folder / "raw"
        shutil.copytree(good_tess, source)
        damaged_path = source / f"{DAMAGED_TESS}{damaged.suffix}"
        damaged_path.parent.mkdir()
        damaged_path.write_bytes(damaged.data)
        result = bounded(lambda: fetch("tess", SourceParams(recipe="tess", source=str(source)), raw))
        name = damaged_path.relative_to(source).as_posix()
        manifest = result.manifest.set_index("source")
        assert {f"{stem}{seed_suffix(name)}" for name, stem in GOOD_TESS.items()} <= set(manifest.index), damaged.how
        rejected = result.rejected.set_index("file")
        assert (name in manifest.index) != (name in rejected.index), damaged.how
        if name in rejected.index:
            reason = rejected.loc[name, "reason"]
            assert isinstance(reason, str) and reason.strip() and str(source) not in reason, (reason, damaged.how)
            assert pd.read_csv(raw / REJECTED_FILE, keep_default_na=False)["file"].tolist() == [name]
        else:  # used: then it is audio the featurize stage can read, or reject by name
            row = manifest.loc[name]
            assert row["frames"] > 0 and row["sample_rate"] >= MIN_SAMPLE_RATE, damaged.how
            copied = raw / row["file"]
            assert copied.read_bytes() == damaged.data
            try:
                assert np.all(np.isfinite(bounded(lambda: load_window(copied, audio_params))))
            except AudioError as exc:
                assert str(exc).startswith(f"{copied}: "), exc
        check_rejected(result, 1 / (len(GOOD_TESS) + 1), "tess")


# ---------------------------------------------------------------- fetch: malformed CSV manifests


@dataclass(frozen=True)
class Manifest:
    """A CSV's bytes, and whether its good rows are intact (then every good clip must be in the manifest)."""

    data: bytes
    intact: bool
    how: str


JUNK_FILES = ["missing.wav", "../outside.wav", "/elsewhere/clip.wav", "", "sub", ".", "a\x00b.wav", "x" * 300 + ".wav",
              "./a.wav", "sub/../c.ogg", "notes.txt", *GOOD_CSV]
JUNK_WORDS = ["happy", "sad", "", " ", "bored", "Angry", "s1", "s2", "ünïcode", '"', "a,b", "line\nbreak"]


@st.composite
def junk_rows(draw: st.DrawFn, columns: list[str]) -> list[str]:
    """A row with unusable or odd cells: a missing file, a path leaving the folder, empty cells, text,
    too few or too many cells. A good clip it names keeps its emotion (or none), so it cannot change its label."""
    word = st.sampled_from(JUNK_WORDS) | st.text(max_size=8)
    row = {column: draw(word) for column in columns}
    row["file"] = draw(st.sampled_from(JUNK_FILES) | st.text(max_size=12))
    if good := GOOD_CSV.get(os.path.normpath(row["file"].strip())):
        row["emotion"] = draw(st.sampled_from([good, ""]))
    cells = [row[column] for column in columns]
    shorter, longer = cells[: draw(st.integers(0, len(cells)))], cells + draw(st.lists(word, max_size=2))
    return draw(st.sampled_from([cells, shorter, longer]))


@st.composite
def csv_manifests(draw: st.DrawFn) -> Manifest:
    """A CSV listing the good clips among junk rows, written one way (order of columns, quoting, line ends,
    blank lines, a BOM) and maybe damaged (a missing column, another delimiter, a stray quote, bytes that
    are not UTF-8, cut short), or just random text or bytes."""
    if draw(st.integers(0, 3)) == 0:  # not a CSV of ours at all
        data = draw(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
        return Manifest(data, False, "random content")
    optional = draw(st.lists(st.sampled_from(["text", "corpus"]), unique=True))
    columns = draw(st.permutations(["file", "emotion", "speaker", *optional]))
    good_rows = [[{"file": file, "emotion": emotion, "speaker": "s1"}.get(column, "") for column in columns]
                 for file, emotion in GOOD_CSV.items()]
    rows = draw(st.permutations(good_rows + draw(st.lists(junk_rows(columns), max_size=6))))
    damage = draw(st.sampled_from(["none", "none", "missing column", "delimiter", "stray quote", "not utf-8", "cut short"]))
    header = columns
    if damage == "missing column":
        header = [column for column in columns if column != draw(st.sampled_from(["file", "emotion", "speaker"]))]
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";" if damage == "delimiter" else ",",
                        lineterminator=draw(st.sampled_from(["\n", "\r\n", "\r"])),
                        quoting=draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL])))
    writer.writerow(header)
    for row in rows:
        writer.writerow(row)
        if draw(st.integers(0, 4)) == 0:
            buffer.write("\n")  # a blank line
    text = buffer.getvalue()
    if damage == "stray quote":
        at = draw(st.integers(0, len(text)))
        text = text[:at] + '"' + text[at:]
    data = (codecs.BOM_UTF8 if draw(st.booleans()) else b"") + text.encode()
    if damage == "not utf-8":
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.sampled_from([b"\xff", b"\xe9", b"\x80\x81", b"\xc3"])) + data[at:]
    elif damage == "cut short":
        data = data[: draw(st.integers(0, len(data)))]
    return Manifest(data, damage == "none", f"damage: {damage}, columns: {header}")


@pytest.fixture(scope="module")
def good_csv_clips(workdir) -> Path:
    """The good clips of :data:`GOOD_CSV`, and a clip outside their folder (which rows may point to)."""
    folder = workdir / "csv_clips"
    for relative in GOOD_CSV:
        (folder / "clips" / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / "clips" / relative).write_bytes(seed_file(Path(relative).suffix[1:]))
    (folder / "outside.wav").write_bytes(seed_file("wav"))
    return folder


@settings(FUZZ, max_examples=400)
@given(manifest=csv_manifests())
def test_fetch_reads_a_malformed_csv_manifest_or_names_it(good_csv_clips, workdir, manifest):
    with fresh_folder(workdir) as folder:
        shutil.copytree(good_csv_clips, folder, dirs_exist_ok=True)
        source = folder / "clips"
        table = source / "labels.csv"
        table.write_bytes(manifest.data)
        lines = len(manifest.data.splitlines()) + 1
        try:
            result = bounded(lambda: fetch("mine", SourceParams(recipe="csv", source=str(source)), folder / "raw"))
        except FetchError as exc:  # the CSV as a whole cannot be used: named, with the line when it is one
            message = str(exc)
            assert message.startswith(f"{table}"), (message, manifest.how)
            assert not manifest.intact, (message, manifest.how)
            if "not a readable CSV" in message:
                assert 1 <= int(LINE.match(message)[1]) <= lines, (message, manifest.how)
            return
        found = {*result.manifest["source"], *result.rejected["file"]}
        assert set(GOOD_CSV) <= found, manifest.how  # nothing dropped silently
        named_lines = [int(LINE.match(reason)[1]) for reason in result.rejected["reason"] if LINE.match(reason)]
        assert all(1 <= line <= lines for line in named_lines), (result.rejected.to_dict("records"), manifest.how)
        assert set(result.manifest["source"]) <= set(GOOD_CSV), manifest.how
        if manifest.intact:
            labels = result.manifest.set_index("source")["label"].to_dict()
            assert labels == GOOD_CSV, (result.rejected.to_dict("records"), manifest.how)


# ---------------------------------------------------------------- ser predict


@pytest.fixture(scope="module")
def good_clip(workdir) -> Path:
    path = workdir / "good.wav"
    path.write_bytes(seed_file("wav"))
    return path


@settings(FUZZ, max_examples=120)
@given(damaged=damaged_audio())
@found_examples()
def test_ser_predict_names_a_damaged_file_and_scores_the_good_one(served_model_dir, good_clip, workdir, damaged):
    with fresh_folder(workdir) as folder:
        path = folder / f"damaged{damaged.suffix}"
        path.write_bytes(damaged.data)
        out, err = io.StringIO(), io.StringIO()
        argv = ["predict", str(good_clip), str(path), "--model", str(served_model_dir), "--format", "json"]
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = bounded(lambda: main(argv))
    scored = {item["file"]: item for item in json.loads(out.getvalue())}
    assert str(good_clip) in scored, damaged.how
    if code == 0:  # readable after all: scored like any clip
        assert err.getvalue() == "" and str(path) in scored, damaged.how
        assert sum(scored[str(path)]["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    else:
        assert code == 1, (code, err.getvalue(), damaged.how)
        assert str(path) not in scored
        assert re.fullmatch(rf"ser: error: {re.escape(str(path))}: \S.*\n", err.getvalue()), (err.getvalue(), damaged.how)


# ---------------------------------------------------------------- POST /api/predict


@pytest.fixture(scope="module")
def client(served_model_dir) -> Iterator[TestClient]:
    """One app serving every example, as one server would (one event loop, its worker threads reused)."""
    app = create_app(Predictor(served_model_dir), ServeParams(max_upload_mb=5, max_duration_s=60))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")  # nothing raised inside libsndfile's callbacks
@settings(FUZZ, max_examples=150)
@given(damaged=damaged_audio(), visuals=st.booleans())
@found_examples(visuals=True)
def test_api_refuses_a_damaged_upload_with_a_4xx_naming_it_and_still_scores(client, damaged, visuals):
    name = f"damaged{damaged.suffix}"
    url = "/api/predict?visuals=true" if visuals else "/api/predict"
    response = bounded(lambda: client.post(url, files={"file": (name, damaged.data, "application/octet-stream")}))
    if response.status_code == 200:  # readable after all: scored like any clip
        assert response.json()["file"] == name
        assert sum(response.json()["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    else:
        assert 400 <= response.status_code < 500, (response.status_code, response.text, damaged.how)
        assert re.fullmatch(rf"{re.escape(name)}: \S.*", response.json()["detail"], re.DOTALL), (response.text, damaged.how)
    good = bounded(lambda: client.post("/api/predict", files={"file": ("good.wav", seed_file("wav"), "audio/wav")}))
    assert good.status_code == 200, good.text
