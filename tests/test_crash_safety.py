"""Crash safety: a killed featurize resumes from its cache with identical outputs, a corrupt cache
entry is recomputed (never used), and an interrupted fetch leaves no half-copied corpus."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import diskcache
import numpy as np
import pandas as pd
import pytest
from test_featurize import SETTINGS, outputs, run_params, write_clips

from ser.featurize import CHECKSUM_BYTES, CorruptEntry, FeatureCache, featurize_corpus, seal, unseal
from ser.fetch import MANIFEST_FILE, fetch
from ser.files import partial_path, replaced_directory
from ser.params import SourceParams

TESTS = Path(__file__).resolve().parent
CLIPS = 40
KILL_AFTER_ENTRIES = 12
"""The child is killed once its cache holds this many entries (clips x variants): about a tenth of them."""
WAIT_S = 120


def many_clips(count: int) -> list[tuple]:
    """``count`` TESS-named clips of other pitches and lengths (write_clips's tuples)."""
    emotions = ["angry", "disgust", "fear", "happy", "neutral", "ps", "sad"]
    return [("OAF", f"word{i}", emotions[i % 7], 16_000, 0.5 + 0.01 * i, 120.0 + 7 * i, "WAV") for i in range(count)]


def kill_when(process: subprocess.Popen, ready) -> None:
    """SIGKILL ``process`` as soon as ``ready()``; fail if it ends first or takes too long."""
    deadline = time.monotonic() + WAIT_S
    while not ready():
        assert process.poll() is None, f"the run ended before it could be killed:\n{process.stderr.read()}"
        assert time.monotonic() < deadline, "the run never got far enough to be killed"
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=WAIT_S)


def cached_entries(directory: Path) -> int:
    if not (directory / "cache.db").exists():
        return 0
    with diskcache.Cache(str(directory)) as cache:
        return len(cache)


FEATURIZE_CHILD = """
import sys
import pandas as pd
sys.path.insert(0, sys.argv[1])
from test_featurize import SETTINGS, run_params
from ser.featurize import featurize_corpus
manifest = pd.read_csv(sys.argv[2], dtype=str)
featurize_corpus(manifest, *map(__import__("pathlib").Path, sys.argv[3:5]), SETTINGS, run_params(sys.argv[5], batch_size=1))
"""


def test_a_killed_featurize_resumes_from_the_cache_with_identical_outputs(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    manifest = write_clips(raw, many_clips(CLIPS))
    manifest.to_csv(tmp_path / "manifest.csv", index=False)
    reference = featurize_corpus(manifest, raw, tmp_path / "reference", SETTINGS, run_params(tmp_path / "cache-reference"))
    out, cache = tmp_path / "features", tmp_path / "cache"
    child = subprocess.Popen(
        [sys.executable, "-c", FEATURIZE_CHILD, str(TESTS), str(tmp_path / "manifest.csv"), str(raw), str(out), str(cache)],
        stderr=subprocess.PIPE, text=True,
    )
    kill_when(child, lambda: cached_entries(cache) >= KILL_AFTER_ENTRIES)
    assert child.returncode == -signal.SIGKILL
    assert not out.exists()  # no partial output where the stage's output goes

    resumed = featurize_corpus(manifest, raw, out, SETTINGS, run_params(cache))
    total = reference.computed
    assert resumed.cached >= KILL_AFTER_ENTRIES and resumed.computed == total - resumed.cached
    assert outputs(out) == outputs(tmp_path / "reference")
    assert not partial_path(out).exists()


def test_seal_round_trip_and_every_damage_is_detected() -> None:
    value = (np.arange(12, dtype=np.float32).reshape(3, 4), 3, {"egemaps": np.ones(5, np.float32)})
    entry = seal(value)
    restored = unseal(entry)
    np.testing.assert_array_equal(restored[0], value[0])
    assert restored[1] == 3 and np.array_equal(restored[2]["egemaps"], value[2]["egemaps"])
    for damaged in [entry[: len(entry) // 2], entry[:CHECKSUM_BYTES], b"", b"x" * 100]:
        with pytest.raises(CorruptEntry):
            unseal(damaged)
    for position in [0, CHECKSUM_BYTES, len(entry) // 2, len(entry) - 1]:  # one bit flipped, anywhere
        flipped = bytearray(entry)
        flipped[position] ^= 0x01
        with pytest.raises(CorruptEntry):
            unseal(bytes(flipped))


def damage_entries(cache: Path, how: list[str]) -> int:
    """Damage one stored entry per item of ``how`` (``truncate`` or ``flip`` a bit) where diskcache
    keeps it (small values in its SQLite file, large ones in files of their own); the count damaged."""
    with sqlite3.connect(cache / "cache.db") as db:
        rows = db.execute("SELECT rowid, value, filename FROM Cache ORDER BY rowid").fetchall()
        assert len(rows) >= len(how)
        for (rowid, value, filename), kind in zip(rows, how):
            data = bytearray(value if filename is None else (cache / filename).read_bytes())
            if kind == "truncate":
                data = data[: len(data) // 3]
            else:
                data[len(data) // 2] ^= 0x10
            if filename is None:
                db.execute("UPDATE Cache SET value = ? WHERE rowid = ?", (bytes(data), rowid))
            else:
                (cache / filename).write_bytes(bytes(data))
    return len(how)


def test_corrupt_cache_entries_are_recomputed_never_used(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    raw = tmp_path / "raw"
    manifest = write_clips(raw, many_clips(6))
    first = featurize_corpus(manifest, raw, tmp_path / "first", SETTINGS, run_params(tmp_path / "cache"))
    damaged = damage_entries(tmp_path / "cache", ["truncate", "flip", "flip"])
    capsys.readouterr()
    second = featurize_corpus(manifest, raw, tmp_path / "second", SETTINGS, run_params(tmp_path / "cache"))
    assert (second.corrupt, second.computed, second.cached) == (damaged, damaged, first.computed - damaged)
    assert outputs(tmp_path / "second") == outputs(tmp_path / "first")
    err = capsys.readouterr().err
    assert err.count("is corrupt (checksum mismatch); recomputing it") == damaged
    assert f"({damaged} corrupt cache entries recomputed)" in str(second)
    third = featurize_corpus(manifest, raw, tmp_path / "third", SETTINGS, run_params(tmp_path / "cache"))
    assert (third.corrupt, third.computed) == (0, 0)  # the recomputed entries were stored again


def test_a_value_stored_by_something_else_is_corrupt_not_trusted(tmp_path: Path) -> None:
    cache = FeatureCache(str(tmp_path / "cache"), 1.0, SETTINGS)
    cache.store.set(cache.key("ab" * 32, 0), (np.zeros((2, 2), np.float32), 2, {}))  # unsealed (an old format)
    assert cache.get("ab" * 32, 0) is None and cache.corrupt == 1
    assert cache.key("ab" * 32, 0) not in cache.store
    cache.close()


def test_replaced_directory_appears_whole_or_not_at_all(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), replaced_directory(target) as building:
        (building / "new.txt").write_text("half")
        raise RuntimeError("killed half way")
    assert [p.name for p in target.iterdir()] == ["old.txt"] and not partial_path(target).exists()
    partial_path(target).mkdir()  # left by a killed run
    (partial_path(target) / "stale.txt").write_text("stale")
    with replaced_directory(target) as building:
        assert not any(building.iterdir())
        (building / "new.txt").write_text("new")
    assert [p.name for p in target.iterdir()] == ["new.txt"] and not partial_path(target).exists()


FETCH_CHILD = """
import sys
from pathlib import Path
from ser.fetch import fetch
from ser.params import SourceParams
fetch("tess", SourceParams(recipe="tess", source=sys.argv[1]), Path(sys.argv[2]))
"""


def test_an_interrupted_fetch_leaves_no_half_copied_corpus(tmp_path: Path) -> None:
    source = tmp_path / "tess"
    write_clips(source, many_clips(150))
    corpus = source / "tess" / "audio"
    out = tmp_path / "raw" / "tess"
    child = subprocess.Popen([sys.executable, "-c", FETCH_CHILD, str(corpus), str(out)], stderr=subprocess.PIPE, text=True)
    kill_when(child, lambda: len(list(partial_path(out).rglob("*.wav"))) >= 20)
    assert not out.exists()  # nothing DVC (or `dvc commit`) could take for a complete corpus
    assert partial_path(out).exists()

    result = fetch("tess", SourceParams(recipe="tess", source=str(corpus)), out)
    assert len(result.manifest) == 150 and not partial_path(out).exists()
    reference = fetch("tess", SourceParams(recipe="tess", source=str(corpus)), tmp_path / "reference")
    pd.testing.assert_frame_equal(pd.read_csv(out / MANIFEST_FILE), pd.read_csv(tmp_path / "reference" / MANIFEST_FILE))
    assert len(list(out.rglob("*.wav"))) == 150 == len(reference.manifest)
    assert os.listdir(out.parent) == ["tess"]  # no partial folder left beside it
