"""Fetching one corpus from a directory, a zip or a URL: every file is accepted or rejected with a reason."""

from __future__ import annotations

import functools
import hashlib
import re
import http.server
import shutil
import threading
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from ser.audio import MIN_SAMPLE_RATE
from ser.fetch import (
    MANIFEST_COLUMNS, REJECTED_COLUMNS, FetchError, FetchResult, check_rejected, fetch, inspect_audio, source_location,
    truncation_reason,
)
from ser.params import SourceParams

CORPUS = "tess"


def _fetch(source, raw: Path, sha256: str = "", recipe: str = "tess", corpus: str = CORPUS) -> FetchResult:
    return fetch(corpus, SourceParams(recipe=recipe, source=str(source), sha256=sha256), raw)

# (relative path in the source, sr, seconds, channels, soundfile format, expected (speaker, text, label))
GOOD = [
    ("OAF_angry/OAF_back_angry.wav", 24414, 1.4, 1, "WAV", ("OAF", "back", "angry")),
    ("OAF_Fear/OAF_back_fear.flac", 24414, 1.3, 1, "FLAC", ("OAF", "back", "fear")),
    ("OAF_Pleasant_surprise/OAF_back_ps.wav", 24414, 1.2, 1, "WAV", ("OAF", "back", "ps")),
    ("OAF_neutral/OA_bite_neutral.flac", 24414, 1.1, 1, "FLAC", ("OAF", "bite", "neutral")),
    ("OAF_fear/OAF_food_fear.flac", 96000, 1.5, 1, "FLAC", ("OAF", "food", "fear")),
    ("OAF_Sad/OAF_dog_sad.wav", 44100, 1.0, 2, "WAV", ("OAF", "dog", "sad")),
    ("YAF_angry/YAF_germ_angry.wav", 24414, 1.6, 1, "AIFF", ("YAF", "germ", "angry")),
    ("YAF_disgust/YAF_back_disgust.wav", 16000, 1.25, 1, "WAV", ("YAF", "back", "disgust")),
    ("YAF_happy/YAF_dog_happy.flac", 24414, 2.0, 1, "FLAC", ("YAF", "dog", "happy")),
    ("YAF_pleasant_surprised/YAF_food_pleasant_surprised.wav", 24414, 1.3, 1, "WAV", ("YAF", "food", "ps")),
    ("YAF_sad/YAF_bite_sad.aiff", 22050, 1.2, 1, "AIFF", ("YAF", "bite", "sad")),
]


def _write_good(root: Path, write_tone) -> None:
    for i, (relative, sr, seconds, channels, fmt, _) in enumerate(GOOD):
        write_tone(root / relative, sr=sr, seconds=seconds, channels=channels, format=fmt, seed=i, f0=120 + 20 * i)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, write_tone) -> Path:
    """A small, well-formed synthetic TESS-like corpus (shared; tests must not modify it)."""
    root = tmp_path_factory.mktemp("corpus") / "tess"
    _write_good(root, write_tone)
    return root


@pytest.fixture(scope="module")
def corpus_zip(tmp_path_factory, corpus) -> Path:
    """The corpus zipped under the release's oddly-cased folder names."""
    path = tmp_path_factory.mktemp("zip") / "corpus.zip"
    top = "TESS Toronto emotional speech set data"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{top}/", "")
        for relative, *_ in GOOD:
            archive.write(corpus / relative, f"{top}/{relative}")
    return path


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _check_manifest(result: FetchResult, raw: Path, source_root: Path | None = None, prefix: str = "") -> pd.DataFrame:
    manifest = pd.read_csv(raw / "manifest.csv", keep_default_na=False, dtype={"speaker": str, "text": str, "label": str})
    assert list(manifest.columns) == MANIFEST_COLUMNS
    assert list(result.manifest.columns) == MANIFEST_COLUMNS
    assert list(result.rejected.columns) == REJECTED_COLUMNS
    assert manifest["file"].tolist() == result.manifest["file"].tolist()
    assert (manifest["corpus"] == CORPUS).all()
    by_source = manifest.set_index("source")
    assert sorted(by_source.index) == sorted(prefix + g[0] for g in GOOD)
    for relative, sr, seconds, channels, fmt, (speaker, text, label) in GOOD:
        row = by_source.loc[prefix + relative]
        assert (row["speaker"], row["text"], row["label"]) == (f"{CORPUS}/{speaker}", text, label)
        assert row["file"] == f"audio/{prefix}{relative}"
        assert (row["sample_rate"], row["channels"], row["format"]) == (sr, channels, fmt)
        assert row["frames"] == round(sr * seconds)
        assert row["duration"] == pytest.approx(round(sr * seconds) / sr, abs=1e-6)
        copied = raw / row["file"]
        assert copied.is_file()
        assert row["sha256"] == _sha256(copied)
        if source_root is not None:
            assert row["sha256"] == _sha256(source_root / relative)
            assert copied.read_bytes() == (source_root / relative).read_bytes()
    return manifest


def test_fetch_directory(corpus, tmp_path):
    raw = tmp_path / "raw"
    result = _fetch(corpus, raw)
    assert result.rejected.empty
    _check_manifest(result, raw, corpus)
    check_rejected(result, 0.0, CORPUS)
    # only the manifest, the (empty) rejected list and the audio land in the corpus's folder
    assert sorted(p.name for p in raw.iterdir()) == ["audio", "manifest.csv", "rejected.csv"]
    assert pd.read_csv(raw / "rejected.csv").columns.tolist() == REJECTED_COLUMNS
    assert len([p for p in (raw / "audio").rglob("*") if p.is_file()]) == len(GOOD)


def test_fetch_replaces_an_old_corpus_folder(corpus, tmp_path):
    raw = tmp_path / "raw"
    (raw / "audio" / "stale").mkdir(parents=True)
    (raw / "audio" / "stale" / "YAF_old_sad.wav").write_bytes(b"old")
    result = _fetch(corpus, raw)
    assert not (raw / "audio" / "stale").exists()
    assert len(result.manifest) == len(GOOD)


def test_corpus_name_qualifies_speakers(corpus, tmp_path):
    result = _fetch(corpus, tmp_path / "raw", corpus="tess_copy")
    assert set(result.manifest["corpus"]) == {"tess_copy"}
    assert set(result.manifest["speaker"]) == {"tess_copy/OAF", "tess_copy/YAF"}


def _truncated_wav(path: Path, write_tone, cut=None) -> None:
    write_tone(path, sr=24414, seconds=1.0, format="WAV")
    data = path.read_bytes()
    path.write_bytes(data[: cut if cut is not None else len(data) // 2])


def _truncated_aiff(path: Path, write_tone) -> None:
    write_tone(path, sr=24414, seconds=1.0, format="AIFF")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])


def _nan_audio(path: Path) -> None:
    samples = np.full(2000, 0.1, dtype=np.float32)
    samples[700] = np.nan
    sf.write(str(path), samples, 16000, subtype="FLOAT", format="WAV")


def _silent_header_only(path: Path) -> None:
    sf.write(str(path), np.zeros(0, dtype=np.float32), 16000, subtype="PCM_16", format="WAV")


# relative path -> (how to make it, reason substring)
BAD = {
    "OAF_empty/OAF_hollow_angry.wav": (lambda p, w: p.write_bytes(b""), "empty file (0 bytes)"),
    "OAF_cut/OAF_halve_angry.wav": (lambda p, w: _truncated_wav(p, w), "truncated: chunk 'data'"),
    "OAF_cut/OAF_stub_angry.wav": (lambda p, w: _truncated_wav(p, w, cut=30), "truncated"),
    "YAF_cut/YAF_neat_fear.wav": (lambda p, w: _truncated_aiff(p, w), "truncated: chunk 'SSND'"),
    "YAF_text/YAF_prose_sad.wav": (lambda p, w: p.write_text("plain text, not audio\n" * 10), "cannot decode"),
    "YAF_nan/YAF_void_sad.wav": (lambda p, w: _nan_audio(p), "NaN or infinite"),
    "YAF_nan/YAF_hush_sad.wav": (lambda p, w: _silent_header_only(p), "no audio samples"),
    "misc/hello.wav": (lambda p, w: w(p, sr=24414, seconds=0.3), "does not match"),
    "YAF_bored/YAF_back_bored.wav": (lambda p, w: w(p, sr=24414, seconds=0.3), "unknown emotion 'bored'"),
    "notes.txt": (lambda p, w: p.write_text("recording notes\n"), "not an audio file extension (.txt)"),
    "OAF_angry/.DS_Store": (lambda p, w: p.write_bytes(b"\x00\x00\x00\x01Bud1"), "not an audio file extension (none)"),
}


@pytest.fixture
def messy_corpus(tmp_path, write_tone) -> Path:
    root = tmp_path / "messy"
    _write_good(root, write_tone)
    for relative, (make, _) in BAD.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        make(path, write_tone)
    return root


def test_bad_files_are_rejected_with_reasons(messy_corpus, tmp_path):
    raw = tmp_path / "raw"
    result = _fetch(messy_corpus, raw)
    n_files = len([p for p in messy_corpus.rglob("*") if p.is_file()])
    assert n_files == len(GOOD) + len(BAD)
    assert len(result.manifest) + len(result.rejected) == n_files  # nothing lost
    _check_manifest(result, raw, messy_corpus)
    written = pd.read_csv(raw / "rejected.csv", keep_default_na=False)
    assert written.columns.tolist() == REJECTED_COLUMNS
    assert written["file"].tolist() == result.rejected["file"].tolist()
    rejected = result.rejected.set_index("file")
    assert sorted(rejected.index) == sorted(BAD)
    for relative, (_, why) in BAD.items():
        reason = rejected.loc[relative, "reason"]
        assert why in reason, f"{relative}: {reason!r} does not say {why!r}"
        assert str(messy_corpus) not in reason  # the reason is short, the file column names the file
        assert bool(rejected.loc[relative, "counts_as_rejected"]) is True
        assert (rejected.loc[relative, "corpus"], rejected.loc[relative, "recipe"]) == (CORPUS, "tess")
    assert rejected.loc["misc/hello.wav", "reason"].endswith("expected <SPEAKER>_<word>_<emotion>.<ext> (e.g. OAF_back_ps.wav)")
    # nothing rejected was copied
    copied = {p.relative_to(raw / "audio").as_posix() for p in (raw / "audio").rglob("*") if p.is_file()}
    assert copied == {g[0] for g in GOOD}


def test_check_rejected_threshold(messy_corpus, tmp_path):
    result = _fetch(messy_corpus, tmp_path / "raw")
    share = len(BAD) / (len(GOOD) + len(BAD))
    check_rejected(result, 0.99, CORPUS)
    check_rejected(result, share, CORPUS)  # exactly at the limit is allowed
    with pytest.raises(FetchError) as info:
        check_rejected(result, share - 0.01, CORPUS)
    message = str(info.value)
    assert message.startswith(f"{CORPUS}: {len(BAD)} of {len(GOOD) + len(BAD)} files rejected")
    assert "max_rejected_fraction" in message


def test_check_rejected_with_no_files(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    result = _fetch(src, tmp_path / "raw")
    assert result.manifest.empty and result.rejected.empty
    assert (tmp_path / "raw" / "manifest.csv").is_file()
    with pytest.raises(FetchError, match=f"{CORPUS}: no audio files"):
        check_rejected(result, 1.0, CORPUS)


def test_check_rejected_with_no_usable_audio(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "readme.txt").write_text("nothing here")
    (src / "OAF_empty_angry.wav").write_bytes(b"")
    result = _fetch(src, tmp_path / "raw")
    assert result.manifest.empty and len(result.rejected) == 2
    with pytest.raises(FetchError, match="no usable audio in the source: all 2 file"):
        check_rejected(result, 1.0, CORPUS)


def test_identical_copies_are_listed_once(corpus, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(corpus, src)
    (src / "OAF_Angry_copy").mkdir()
    shutil.copyfile(src / "OAF_angry/OAF_back_angry.wav", src / "OAF_Angry_copy/OAF_back_angry.wav")
    shutil.copyfile(src / "YAF_happy/YAF_dog_happy.flac", src / "YAF_dog_happy.flac")
    # the same audio under another label is still the same audio
    shutil.copyfile(src / "YAF_sad/YAF_bite_sad.aiff", src / "YAF_sad/YAF_bite_angry.aiff")
    result = _fetch(src, tmp_path / "raw")
    assert len(result.manifest) == len(GOOD)
    assert result.manifest["sha256"].is_unique
    rejected = result.rejected.set_index("file")
    assert sorted(rejected.index) == ["OAF_angry/OAF_back_angry.wav", "YAF_happy/YAF_dog_happy.flac", "YAF_sad/YAF_bite_sad.aiff"]
    # the first path in sorted order is kept; the later one is the copy
    assert rejected.loc["OAF_angry/OAF_back_angry.wav", "reason"] == "identical copy of OAF_Angry_copy/OAF_back_angry.wav"
    assert rejected.loc["YAF_happy/YAF_dog_happy.flac", "reason"] == "identical copy of YAF_dog_happy.flac"
    assert rejected.loc["YAF_sad/YAF_bite_sad.aiff", "reason"] == "identical copy of YAF_sad/YAF_bite_angry.aiff"
    assert not rejected["counts_as_rejected"].any()
    assert not (tmp_path / "raw" / "audio" / "OAF_angry" / "OAF_back_angry.wav").exists()
    check_rejected(result, 0.0, CORPUS)


def test_same_label_different_audio_is_two_clips(corpus, tmp_path, write_tone):
    src = tmp_path / "src"
    shutil.copytree(corpus, src)
    write_tone(src / "zz_other/OAF_back_angry.wav", sr=24414, seconds=0.5, seed=999, f0=300)
    result = _fetch(src, tmp_path / "raw")
    assert result.rejected.empty
    angry = result.manifest[result.manifest["source"].str.endswith("OAF_back_angry.wav")]
    assert sorted(angry["source"]) == ["OAF_angry/OAF_back_angry.wav", "zz_other/OAF_back_angry.wav"]
    assert set(angry["text"]) == {"back"}


def test_fetch_zip_with_sha256(corpus, corpus_zip, tmp_path):
    raw = tmp_path / "raw"
    prefix = "TESS Toronto emotional speech set data/"
    result = _fetch(corpus_zip, raw, sha256=_sha256(corpus_zip))
    assert result.rejected.empty
    _check_manifest(result, raw, corpus, prefix=prefix)
    # an upper-case digest is the same digest
    result = _fetch(corpus_zip, tmp_path / "raw2", sha256=_sha256(corpus_zip).upper())
    assert len(result.manifest) == len(GOOD)


def test_fetch_zip_without_sha256(corpus_zip, tmp_path):
    result = _fetch(corpus_zip, tmp_path / "raw")
    assert len(result.manifest) == len(GOOD)
    assert set(result.manifest["label"]) == {g[5][2] for g in GOOD}


def test_fetch_zip_wrong_sha256(corpus_zip, tmp_path):
    with pytest.raises(FetchError, match="sha256 does not match") as info:
        _fetch(corpus_zip, tmp_path / "raw", sha256="0" * 64)
    assert str(corpus_zip) in str(info.value)
    assert not (tmp_path / "raw" / "manifest.csv").exists()


def test_zip_temporary_folder_is_removed(corpus_zip):
    with source_location(str(corpus_zip), _sha256(corpus_zip)) as root:
        assert root.is_dir() and any(root.rglob("*.flac"))
    assert not root.exists()


def test_sha256_on_a_directory_source_is_an_error(corpus, tmp_path):
    with pytest.raises(FetchError, match="sha256 applies to a zip or URL"):
        _fetch(corpus, tmp_path / "raw", sha256="0" * 64)


def test_missing_source(tmp_path):
    with pytest.raises(FetchError) as info:
        _fetch(tmp_path / "no-such-corpus", tmp_path / "raw")
    assert "no-such-corpus" in str(info.value)
    assert "does not exist" in str(info.value)


def test_source_that_is_neither_dir_nor_zip(tmp_path):
    path = tmp_path / "corpus.tar"
    path.write_bytes(b"not a zip at all")
    with pytest.raises(FetchError, match="neither a directory, a zip archive nor a CSV"):
        _fetch(path, tmp_path / "raw")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass


@pytest.fixture
def http_root(tmp_path, monkeypatch):
    """Serve a folder on 127.0.0.1:<free port>; yields (folder, base URL)."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    folder = tmp_path / "www"
    folder.mkdir()
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(folder))
    )
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_fetch_url(corpus, corpus_zip, http_root, tmp_path):
    folder, base = http_root
    shutil.copyfile(corpus_zip, folder / "corpus.zip")
    raw = tmp_path / "raw"
    result = _fetch(f"{base}/corpus.zip", raw, sha256=_sha256(corpus_zip))
    assert result.rejected.empty
    _check_manifest(result, raw, corpus, prefix="TESS Toronto emotional speech set data/")


def test_fetch_url_wrong_sha256(corpus_zip, http_root, tmp_path):
    folder, base = http_root
    shutil.copyfile(corpus_zip, folder / "corpus.zip")
    with pytest.raises(FetchError, match="sha256"):
        _fetch(f"{base}/corpus.zip", tmp_path / "raw", sha256="f" * 64)


def test_fetch_url_404(http_root, tmp_path):
    _, base = http_root
    with pytest.raises(FetchError) as info:
        _fetch(f"{base}/missing.zip", tmp_path / "raw")
    assert f"{base}/missing.zip" in str(info.value)
    assert "404" in str(info.value)


def test_fetch_url_not_a_zip(http_root, tmp_path):
    folder, base = http_root
    (folder / "page.zip").write_text("<html>not a zip</html>")
    with pytest.raises(FetchError, match="neither a directory, a zip archive nor a CSV"):
        _fetch(f"{base}/page.zip", tmp_path / "raw")


# ---------------------------------------------------------------------------------------------------------------
# inspect_audio and truncation_reason on single files


@pytest.mark.parametrize(
    ("sr", "channels", "fmt", "subtype"),
    [(8000, 1, "WAV", "PCM_16"), (16000, 2, "FLAC", "PCM_24"), (44100, 2, "AIFF", "PCM_16"), (96000, 1, "WAV", "FLOAT")],
)
def test_inspect_audio_describes_a_file(tmp_path, write_tone, sr, channels, fmt, subtype):
    path = write_tone(tmp_path / f"clip.{fmt.lower()}", sr=sr, seconds=0.25, channels=channels, format=fmt, subtype=subtype)
    assert truncation_reason(path) is None
    assert inspect_audio(path) == {
        "format": fmt, "subtype": subtype, "sample_rate": sr, "channels": channels,
        "frames": round(sr * 0.25), "duration": pytest.approx(0.25, abs=1e-6),
    }


@pytest.mark.parametrize(
    ("cut", "reason"),
    [
        (4, "cannot decode"), (13, "cannot decode"), (36, "cannot decode"),  # no data chunk at all
        (20, "truncated: chunk 'fmt ' needs 16 more bytes"), (44, "truncated: chunk 'data' needs 1600 more bytes"),
        (100, "truncated: chunk 'data' needs 1544 more bytes"), (-1, "truncated: chunk 'data' needs 1 more bytes"),
    ],
)
def test_every_cut_of_a_wav_is_rejected(tmp_path, write_tone, cut, reason):
    path = write_tone(tmp_path / "clip.wav", sr=8000, seconds=0.1, format="WAV")  # 44-byte header + 1600 bytes
    data = path.read_bytes()
    assert len(data) == 44 + 1600
    path.write_bytes(data[:cut])
    with pytest.raises(ValueError, match=re.escape(reason)):
        inspect_audio(path)
    if reason.startswith("truncated"):
        assert truncation_reason(path) == reason


def test_truncation_reason_ignores_other_formats_and_padding(tmp_path, write_tone):
    flac = write_tone(tmp_path / "clip.flac", sr=8000, seconds=0.1)
    assert truncation_reason(flac) is None
    # 801 one-byte frames: an odd-sized data chunk followed by a pad byte, which is not a truncation
    odd = write_tone(tmp_path / "odd.wav", sr=8000, seconds=801 / 8000, subtype="PCM_U8", f0=200)
    assert odd.stat().st_size == 44 + 801 + 1
    assert truncation_reason(odd) is None
    assert inspect_audio(odd)["frames"] == 801
    # a chunk after the data chunk cut short is still a truncation
    odd.write_bytes(odd.read_bytes() + b"LIST" + (100).to_bytes(4, "little") + b"INFO")
    assert truncation_reason(odd) == "truncated: chunk 'LIST' needs 96 more bytes"


def _overwritten(path: Path, at: int, value: bytes) -> Path:
    data = bytearray(path.read_bytes())
    data[at : at + len(value)] = value
    path.write_bytes(bytes(data))
    return path


def test_damaged_headers_and_samples_are_rejected_with_reasons(tmp_path, write_tone):
    """What fuzzing found: a FLAC header claiming 2**36 frames raised MemoryError (the whole file was read
    into one array of that size), and a header rate of 1 Hz or float samples of 1e30 were accepted."""
    flac = write_tone(tmp_path / "huge.flac", sr=16000, seconds=0.5)
    _overwritten(flac, 21, bytes([flac.read_bytes()[21] | 0x0F]) + b"\xff" * 4)  # STREAMINFO's 36-bit frame count
    assert sf.info(str(flac)).frames == 2**36 - 1
    with pytest.raises(ValueError, match=r"^cannot decode audio"):
        inspect_audio(flac)
    slow = _overwritten(write_tone(tmp_path / "slow.wav", sr=16000, seconds=0.5), 24, (1).to_bytes(4, "little"))
    with pytest.raises(ValueError, match=rf": sample rate 1 Hz is below {MIN_SAMPLE_RATE} Hz"):
        inspect_audio(slow)
    loud = tmp_path / "loud.wav"
    sf.write(str(loud), np.full(8000, 1e30), 16000, subtype="FLOAT")
    with pytest.raises(ValueError, match=r": samples reach 1e\+30, far beyond full scale"):
        inspect_audio(loud)


REAL = {
    "YAF_angry/YAF_germ_angry.wav": (("YAF", "germ", "angry"), 24414, "AIFF"),
    "OAF_fear/OAF_food_fear.flac": (("OAF", "food", "fear"), 96000, "FLAC"),
    "OAF_neutral/OA_bite_neutral.flac": (("OAF", "bite", "neutral"), 24414, "FLAC"),
    "YAF_fear/YAF_neat_fear.wav": (("YAF", "neat", "fear"), 24414, "AIFF"),
    "OAF_angry/OAF_back_angry.flac": (("OAF", "back", "angry"), 24414, "FLAC"),
    "YAF_ps/YAF_back_ps.flac": (("YAF", "back", "ps"), 24414, "FLAC"),
}


def test_fetch_real_tess_subset(tess_dir, tmp_path):
    src = tmp_path / "tess"
    for relative in REAL:
        (src / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(tess_dir / relative, src / relative)
    raw = tmp_path / "raw"
    result = _fetch(src, raw)
    assert result.rejected.empty, result.rejected.to_dict("records")
    manifest = pd.read_csv(raw / "manifest.csv").set_index("source")
    assert sorted(manifest.index) == sorted(REAL)
    for relative, ((speaker, text, label), sr, fmt) in REAL.items():
        row = manifest.loc[relative]
        assert (row["speaker"], row["text"], row["label"]) == (f"{CORPUS}/{speaker}", text, label)
        assert (row["sample_rate"], row["format"], row["channels"], row["subtype"]) == (sr, fmt, 1, "PCM_16")
        info = sf.info(str(tess_dir / relative))
        assert row["frames"] == info.frames
        assert 1.2 <= row["duration"] <= 3.0
        assert row["sha256"] == _sha256(tess_dir / relative)
    check_rejected(result, 0.0, CORPUS)
