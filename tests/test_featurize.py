"""Featurizing a corpus: outputs, order, parallel runs, the per-clip cache, a Dask cluster, bad input, params.

Every test runs on a few short synthetic clips and passes its own cache directory
(under tmp_path), so nothing reads or writes the user's cache.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import librosa
import numpy as np
import pandas as pd
import pytest

import ser.featurize
from ser.audio import load_window
from ser.augment import augment_clip, copy_rng
from ser.features import (
    AUGMENTED_FILE,
    AUGMENTED_INDEX_FILE,
    FEATURES_FILE,
    FUNCTIONALS_FILE,
    INDEX_COLUMNS,
    INDEX_FILE,
    PARAMS_FILE,
    clip_features,
    feature_shape,
    frame_features,
    load_augmented,
    load_features,
    load_functionals,
)
from ser.featurize import (
    FeatureCache,
    FeaturizeError,
    FeaturizeSummary,
    InlineExecutor,
    LazyProcessPool,
    NpyWriter,
    Settings,
    code_digest,
    featurize_corpus,
    worker_count,
    worker_pool,
)
from conftest import write_tone_file
from ser.corpora import tess
from ser.fetch import sha256_of
from ser.params import AudioParams, AugmentParams, FeatureParams, FeaturizeRuntime, ParamsError, validate_params

SR = 16_000
AUDIO = AudioParams(sr=SR, offset=0.1, duration=0.8, res_type="soxr_hq")
FEATURES = FeatureParams(kind="mfcc", n_mfcc=13, n_mels=40, n_fft=512, hop_length=256)
AUGMENT = AugmentParams(
    copies=2, seed=3, noise_snr_db=[10.0, 30.0], shift_s=0.05, pitch_semitones=0.0, tempo=[0.9, 1.1], gain_db=6.0
)
SETTINGS = Settings(AUDIO, FEATURES, AUGMENT)
OUTPUTS = (FEATURES_FILE, INDEX_FILE, AUGMENTED_FILE, AUGMENTED_INDEX_FILE, PARAMS_FILE)
"""The files featurize writes under FEATURES (no functional set: no ``functionals_<set>.npy``)."""
AUGMENTED_COLUMNS = [*INDEX_COLUMNS, "source", "copy"]

# TESS clips (speaker, text, TESS's emotion, native rate, seconds, f0, container): other rates (resampled),
# containers, and lengths shorter than the window (0.1 + 0.8 s), about it, and longer
CLIPS = [
    ("OAF", "back", "angry", SR, 0.7, 150.0, "WAV"),
    ("OAF", "bar", "sad", 24414, 1.0, 190.0, "FLAC"),
    ("YAF", "back", "ps", SR, 0.95, 230.0, "WAV"),
    ("YAF", "dog", "fear", 22050, 0.5, 270.0, "AIFF"),
]
MORE_CLIPS = [
    ("YAF", "food", "happy", SR, 1.2, 310.0, "WAV"),
    ("OAF", "dog", "neutral", SR, 0.4, 120.0, "FLAC"),
]
EXTENSIONS = {"WAV": "wav", "FLAC": "flac", "AIFF": "aiff"}
MANIFEST_COLUMNS = ["file", "source", "corpus", "speaker", "text", "label", "sha256", "emotion"]
"""The columns of data/manifest.csv that featurize reads, or passes on to its indexes."""


@pytest.fixture(autouse=True)
def _no_user_cache(tmp_path, monkeypatch):
    """``~`` is a temporary directory: a test that forgot its cache could not touch the user's."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))


def manifest_row(file: str, source: str, speaker: str, text: str, label: str, sha256: str) -> dict[str, str]:
    """A TESS clip's row of data/manifest.csv (``file`` relative to data/raw, speaker ``tess/<id>``)."""
    return {"file": file, "source": source, "corpus": "tess", "speaker": f"tess/{speaker}", "text": text,
            "label": label, "sha256": sha256, "emotion": tess.EMOTIONS[label]}


def write_clips(raw: Path, clips) -> pd.DataFrame:
    """Write ``clips`` under ``raw`` and return their manifest (the columns the labels stage writes that
    featurize reads)."""
    rows = []
    for speaker, text, label, sr, seconds, f0, container in clips:
        source = f"{speaker}_{label}/{speaker}_{text}_{label}.{EXTENSIONS[container]}"
        file = f"tess/audio/{source}"
        write_tone_file(raw / file, sr=sr, seconds=seconds, f0=f0, seed=int(f0), format=container)
        rows.append(manifest_row(file, source, speaker, text, label, sha256_of(raw / file)))
    return pd.DataFrame(rows, columns=MANIFEST_COLUMNS)


@pytest.fixture
def corpus(tmp_path) -> tuple[Path, pd.DataFrame]:
    """(raw_dir, manifest) of four short synthetic clips."""
    raw = tmp_path / "raw"
    return raw, write_clips(raw, CLIPS)


def run_params(cache: str | Path = "", workers: int = 1, batch_size: int = 2, scheduler: str = "",
               limit_gb: float = 1.0) -> FeaturizeRuntime:
    return FeaturizeRuntime(workers=workers, scheduler=scheduler, batch_size=batch_size, cache=str(cache),
                           cache_limit_gb=limit_gb)


def featurize(manifest: pd.DataFrame, raw: Path, out: Path, cache: str | Path, settings: Settings = SETTINGS,
              **params) -> FeaturizeSummary:
    return featurize_corpus(manifest, raw, out, settings, run_params(cache, **params))


def outputs(out: Path) -> dict[str, bytes]:
    """Every file featurize wrote under ``out`` (OUTPUTS, and a functionals file per set computed), by name."""
    written = {path.name: path.read_bytes() for path in out.iterdir()}
    assert set(OUTPUTS) <= set(written)
    return written


def settings(audio: AudioParams = AUDIO, features: FeatureParams = FEATURES, **augment) -> Settings:
    return Settings(audio, features, AUGMENT.model_copy(update=augment))


def expected_copy(raw: Path, row: pd.Series, copy: int, augment: AugmentParams = AUGMENT) -> tuple[np.ndarray, int]:
    samples = load_window(raw / row["file"], AUDIO)
    return frame_features(augment_clip(samples, AUDIO.sr, augment, copy_rng(augment.seed, row["sha256"], copy)),
                          AUDIO, FEATURES)


def by_file(out: Path) -> dict[str, tuple[bytes, list[bytes]]]:
    """Each file's feature bytes and its copies' bytes, whatever the row order."""
    values, index, _ = load_features(out)
    copies, copy_index = load_augmented(out)
    return {
        file: (values[row].tobytes(), [copies[k].tobytes() for k in np.flatnonzero(copy_index["source"] == row)])
        for row, file in enumerate(index["file"])
    }


# --- outputs ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["mfcc", "logmel"])
def test_outputs_follow_the_manifest(corpus, tmp_path, kind):
    raw, manifest = corpus
    features = FEATURES.model_copy(update={"kind": kind})
    run_settings = Settings(AUDIO, features, AUGMENT)
    manifest = manifest.iloc[[2, 0, 3, 1]]  # not in file order, and a non-default index
    summary = featurize_corpus(manifest, raw, tmp_path / "out", run_settings, run_params(tmp_path / "cache"))
    n, copies = len(manifest), AUGMENT.copies
    assert (summary.clips, summary.copies, summary.computed, summary.cached) == (n, n * copies, n * (copies + 1), 0)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(OUTPUTS)

    values, index, used = load_features(tmp_path / "out")
    assert values.dtype == np.float32 and values.shape == (n, *feature_shape(AUDIO, features))
    assert list(index.columns) == INDEX_COLUMNS
    for column in ("file", "corpus", "speaker", "text", "emotion"):
        assert index[column].tolist() == manifest[column].tolist()
    assert used == {"audio": AUDIO.model_dump(), "features": features.model_dump()}
    assert json.loads((tmp_path / "out" / PARAMS_FILE).read_text()) == used
    for row, file in enumerate(manifest["file"]):
        expected, valid = clip_features(raw / file, AUDIO, features)
        np.testing.assert_allclose(values[row], expected, rtol=1e-6, atol=1e-5)
        assert index.loc[row, "valid_frames"] == valid
    assert index["valid_frames"].max() == feature_shape(AUDIO, features)[0]  # a clip fills the window
    assert index["valid_frames"].min() < feature_shape(AUDIO, features)[0]  # a shorter one is padded
    assert not np.allclose(values[0], values[1], atol=1e-2)  # rows really differ

    augmented, augmented_index = load_augmented(tmp_path / "out")
    assert augmented.dtype == np.float32 and augmented.shape == (n * copies, *values.shape[1:])
    assert list(augmented_index.columns) == AUGMENTED_COLUMNS
    assert augmented_index["source"].tolist() == [row for row in range(n) for _ in range(copies)]
    assert augmented_index["copy"].tolist() == [1, 2] * n
    for column in ("file", "corpus", "speaker", "text", "emotion"):
        assert augmented_index[column].tolist() == [value for value in manifest[column] for _ in range(copies)]
    for k, (source, copy) in enumerate(augmented_index[["source", "copy"]].itertuples(index=False)):
        expected, valid = frame_features(
            augment_clip(load_window(raw / manifest.iloc[source]["file"], AUDIO), SR, AUGMENT,
                         copy_rng(AUGMENT.seed, manifest.iloc[source]["sha256"], copy)),
            AUDIO, features,
        )
        np.testing.assert_allclose(augmented[k], expected, rtol=1e-6, atol=1e-5)
        assert augmented_index.loc[k, "valid_frames"] == valid
        assert not np.allclose(augmented[k], values[source], atol=1e-2)
    assert not np.allclose(augmented[0], augmented[1], atol=1e-2)  # copies 1 and 2 of a clip differ

    assert features.functionals == []  # no functional set: no functionals file, and none to load
    assert not any((tmp_path / "out").glob(FUNCTIONALS_FILE.format("*")))
    assert load_functionals(tmp_path / "out") == {}


def test_no_copies(corpus, tmp_path):
    raw, manifest = corpus
    summary = featurize(manifest, raw, tmp_path / "out", tmp_path / "cache", settings(copies=0))
    assert (summary.copies, summary.computed, summary.cached) == (0, len(manifest), 0)
    augmented, index = load_augmented(tmp_path / "out")
    assert augmented.shape == (0, *feature_shape(AUDIO, FEATURES)) and augmented.dtype == np.float32
    assert len(index) == 0 and list(index.columns) == AUGMENTED_COLUMNS
    assert load_features(tmp_path / "out")[0].shape == (len(manifest), *feature_shape(AUDIO, FEATURES))


def test_empty_manifest(tmp_path):
    manifest = pd.DataFrame(columns=MANIFEST_COLUMNS)
    summary = featurize(manifest, tmp_path, tmp_path / "out", tmp_path / "cache")
    assert (summary.clips, summary.copies, summary.computed, summary.cached) == (0, 0, 0, 0)
    values, index, _ = load_features(tmp_path / "out")
    assert values.shape == (0, *feature_shape(AUDIO, FEATURES))
    assert len(index) == 0 and list(index.columns) == INDEX_COLUMNS
    augmented, augmented_index = load_augmented(tmp_path / "out")
    assert augmented.shape == (0, *feature_shape(AUDIO, FEATURES))
    assert len(augmented_index) == 0 and list(augmented_index.columns) == AUGMENTED_COLUMNS


def test_copies_with_every_transform_off_equal_the_originals(corpus, tmp_path):
    raw, manifest = corpus
    off = settings(noise_snr_db=[], shift_s=0.0, tempo=[], gain_db=0.0)
    featurize(manifest, raw, tmp_path / "out", tmp_path / "cache", off)
    values, index, _ = load_features(tmp_path / "out")
    augmented, augmented_index = load_augmented(tmp_path / "out")
    np.testing.assert_array_equal(augmented, np.repeat(values, 2, axis=0))
    assert augmented_index["valid_frames"].tolist() == np.repeat(index["valid_frames"], 2).tolist()


def test_faster_tempo_gives_fewer_real_frames(tmp_path):
    """A clip sped up beyond the window keeps the shape, with fewer real frames (the rest zero-padded)."""
    raw = tmp_path / "raw"
    manifest = write_clips(raw, [("OAF", "back", "sad", SR, AUDIO.offset + AUDIO.duration + 0.05, 200.0, "WAV")])
    fast = settings(copies=1, tempo=[1.5, 2.0], noise_snr_db=[], shift_s=0.0, gain_db=0.0)
    featurize(manifest, raw, tmp_path / "out", "", fast)
    augmented, augmented_index = load_augmented(tmp_path / "out")
    _, index, _ = load_features(tmp_path / "out")
    assert augmented.shape[1:] == feature_shape(AUDIO, FEATURES)
    assert index.loc[0, "valid_frames"] == feature_shape(AUDIO, FEATURES)[0]
    assert augmented_index.loc[0, "valid_frames"] < index.loc[0, "valid_frames"]


def test_summary_line(corpus, tmp_path, capsys):
    raw, manifest = corpus
    summary = featurize(manifest, raw, tmp_path / "out", tmp_path / "cache")
    assert re.fullmatch(
        r"featurized 4 clips and 8 augmented copies in \d+\.\d s: 12 computed, 0 from the cache", str(summary)
    )
    assert summary.seconds > 0
    assert "featurize" in capsys.readouterr().err  # the progress bar


# --- the same bytes however they are computed ---------------------------------------------------------


@pytest.mark.parametrize("sets", [[], ["egemaps"]], ids=["no-functionals", "egemaps"])
def test_one_worker_two_workers_and_the_cache_give_identical_bytes(corpus, tmp_path, sets):
    raw, manifest = corpus
    run_settings = settings(features=FEATURES.model_copy(update={"functionals": sets}))
    featurize(manifest, raw, tmp_path / "one", "", run_settings, workers=1)
    two = featurize(manifest, raw, tmp_path / "two", tmp_path / "cache", run_settings, workers=2, batch_size=1)
    again = featurize(manifest, raw, tmp_path / "again", tmp_path / "cache", run_settings, workers=2, batch_size=3)
    assert (two.computed, two.cached) == (12, 0)
    assert (again.computed, again.cached) == (0, 12)
    assert sorted(outputs(tmp_path / "one")) == sorted([*OUTPUTS, *(FUNCTIONALS_FILE.format(kind) for kind in sets)])
    assert outputs(tmp_path / "one") == outputs(tmp_path / "two") == outputs(tmp_path / "again")


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("per_worker", [1, 4])
def test_rows_stay_in_order_with_more_batches_than_are_in_flight(tmp_path, monkeypatch, workers, per_worker):
    """Six one-clip batches, at most ``workers * per_worker`` in flight, some from the cache: rows in manifest order."""
    monkeypatch.setattr(ser.featurize, "BATCHES_PER_WORKER", per_worker)
    raw = tmp_path / "raw"
    manifest = write_clips(raw, CLIPS + MORE_CLIPS)
    featurize(manifest.iloc[[1, 4]], raw, tmp_path / "some", tmp_path / "cache")  # two clips cached, in the middle
    summary = featurize(manifest, raw, tmp_path / "out", tmp_path / "cache", workers=workers, batch_size=1)
    assert (summary.computed, summary.cached) == (4 * 3, 2 * 3)
    values, index, _ = load_features(tmp_path / "out")
    assert index["file"].tolist() == manifest["file"].tolist()
    for row, file in enumerate(manifest["file"]):
        expected, valid = clip_features(raw / file, AUDIO, FEATURES)
        np.testing.assert_allclose(values[row], expected, rtol=1e-6, atol=1e-5)
        assert index.loc[row, "valid_frames"] == valid
    featurize(manifest, raw, tmp_path / "fresh", "", batch_size=6)  # one batch
    assert outputs(tmp_path / "out") == outputs(tmp_path / "fresh")


_PID_DIR: Path | None = None


def _compute_batch_noting_the_process(tasks, run_settings):
    """``compute_batch`` that leaves a file named after the process that ran it (module level: picklable)."""
    (_PID_DIR / str(os.getpid())).touch()
    return _real_compute_batch(tasks, run_settings)


_real_compute_batch = ser.featurize.compute_batch


@pytest.mark.parametrize(("workers", "in_this_process"), [(1, True), (2, False)])
def test_workers_run_where_asked(corpus, tmp_path, monkeypatch, workers, in_this_process):
    global _PID_DIR
    raw, manifest = corpus
    monkeypatch.setattr(ser.featurize, "compute_batch", _compute_batch_noting_the_process)
    _PID_DIR = tmp_path / "pids"
    _PID_DIR.mkdir()
    featurize(manifest, raw, tmp_path / "out", "", workers=workers, batch_size=1)
    pids = {int(p.name) for p in _PID_DIR.iterdir()}
    assert pids and (pids == {os.getpid()}) == in_this_process
    assert len(pids) <= workers


def test_worker_count_and_pool():
    assert worker_count(run_params(workers=0)) == len(os.sched_getaffinity(0)) >= 1
    assert worker_count(run_params(workers=3)) == 3
    with worker_pool(run_params(workers=1)) as (pool, slots):
        assert isinstance(pool, InlineExecutor) and slots == 1
    with worker_pool(run_params(workers=3)) as (pool, slots):
        assert isinstance(pool, LazyProcessPool) and slots == 3
        assert pool.pool is None  # no process yet: a rerun from the cache starts none
        assert pool.submit(pow, 3, 4).result() == 81
        assert isinstance(pool.pool, ProcessPoolExecutor)


def test_inline_executor_hands_back_results_and_errors():
    executor = InlineExecutor()
    assert executor.submit(pow, 2, 10).result() == 1024
    future = executor.submit(int, "not a number")
    with pytest.raises(ValueError):
        future.result()


# --- the per-clip cache --------------------------------------------------------------------------------


def test_rerun_computes_nothing(corpus, tmp_path):
    raw, manifest = corpus
    first = featurize(manifest, raw, tmp_path / "first", tmp_path / "cache")
    again = featurize(manifest, raw, tmp_path / "again", tmp_path / "cache")
    assert (first.computed, first.cached) == (12, 0)
    assert (again.computed, again.cached) == (0, 12)
    assert outputs(tmp_path / "first") == outputs(tmp_path / "again")


def test_new_clips_are_the_only_ones_computed(corpus, tmp_path):
    raw, manifest = corpus
    featurize(manifest, raw, tmp_path / "first", tmp_path / "cache")
    more = pd.concat([manifest.iloc[:2], write_clips(raw, MORE_CLIPS), manifest.iloc[2:]], ignore_index=True)
    summary = featurize(more, raw, tmp_path / "more", tmp_path / "cache")
    assert (summary.clips, summary.computed, summary.cached) == (6, 2 * 3, 4 * 3)
    featurize(more, raw, tmp_path / "fresh", "")  # no cache at all
    assert outputs(tmp_path / "more") == outputs(tmp_path / "fresh")


@pytest.mark.parametrize(
    "changed",
    [
        settings(features=FEATURES.model_copy(update={"n_mfcc": 12})),
        settings(features=FEATURES.model_copy(update={"kind": "logmel"})),
        settings(features=FEATURES.model_copy(update={"hop_length": 128})),
        settings(audio=AUDIO.model_copy(update={"offset": 0.15})),
        settings(audio=AUDIO.model_copy(update={"res_type": "soxr_vhq"})),
        settings(audio=AUDIO.model_copy(update={"sr": 22050})),
    ],
    ids=["n_mfcc", "kind", "hop_length", "offset", "res_type", "sr"],
)
def test_audio_or_feature_params_recompute_everything(corpus, tmp_path, changed):
    raw, manifest = corpus
    featurize(manifest, raw, tmp_path / "first", tmp_path / "cache")
    summary = featurize(manifest, raw, tmp_path / "changed", tmp_path / "cache", changed)
    assert (summary.computed, summary.cached) == (12, 0)
    featurize(manifest, raw, tmp_path / "fresh", "", changed)
    assert outputs(tmp_path / "changed") == outputs(tmp_path / "fresh")
    # and the first settings are still cached
    assert featurize(manifest, raw, tmp_path / "back", tmp_path / "cache").computed == 0


@pytest.mark.parametrize(
    "changes",
    [{"gain_db": 5.0}, {"seed": 4}, {"noise_snr_db": []}, {"tempo": [0.8, 1.2]}, {"shift_s": 0.0},
     {"pitch_semitones": 1.0}],
    ids=["gain_db", "seed", "noise", "tempo", "shift", "pitch"],
)
def test_augment_params_recompute_only_the_copies(corpus, tmp_path, changes):
    raw, manifest = corpus
    featurize(manifest, raw, tmp_path / "first", tmp_path / "cache")
    summary = featurize(manifest, raw, tmp_path / "changed", tmp_path / "cache", settings(**changes))
    assert (summary.computed, summary.cached) == (4 * 2, 4)
    first, changed = outputs(tmp_path / "first"), outputs(tmp_path / "changed")
    assert changed[FEATURES_FILE] == first[FEATURES_FILE]
    assert changed[AUGMENTED_FILE] != first[AUGMENTED_FILE]
    featurize(manifest, raw, tmp_path / "fresh", "", settings(**changes))
    assert outputs(tmp_path / "fresh") == changed


def test_more_copies_compute_only_the_new_ones(corpus, tmp_path):
    raw, manifest = corpus
    one = featurize(manifest, raw, tmp_path / "one", tmp_path / "cache", settings(copies=1))
    two = featurize(manifest, raw, tmp_path / "two", tmp_path / "cache", settings(copies=2))
    assert (one.computed, one.cached) == (8, 0)
    assert (two.computed, two.cached) == (4, 8)  # copy 2 of each clip
    featurize(manifest, raw, tmp_path / "fresh", "", settings(copies=2))
    assert outputs(tmp_path / "two") == outputs(tmp_path / "fresh")
    # copy 1 is the same whatever the number of copies
    one_copies, _ = load_augmented(tmp_path / "one")
    two_copies, _ = load_augmented(tmp_path / "two")
    np.testing.assert_array_equal(two_copies[0::2], one_copies)
    fewer = featurize(manifest, raw, tmp_path / "fewer", tmp_path / "cache", settings(copies=1))
    assert (fewer.computed, fewer.cached) == (0, 8)
    assert outputs(tmp_path / "fewer") == outputs(tmp_path / "one")


def test_how_it_runs_is_not_part_of_the_key(corpus, tmp_path):
    raw, manifest = corpus
    featurize(manifest, raw, tmp_path / "first", tmp_path / "cache", workers=1, batch_size=1)
    again = featurize(manifest, raw, tmp_path / "again", tmp_path / "cache", workers=2, batch_size=3, limit_gb=2.0)
    assert again.computed == 0


def test_no_cache_always_computes(corpus, tmp_path):
    raw, manifest = corpus
    for out in ("first", "second"):
        summary = featurize(manifest, raw, tmp_path / out, "")
        assert (summary.computed, summary.cached) == (12, 0)
    assert outputs(tmp_path / "first") == outputs(tmp_path / "second")
    assert not any((tmp_path / "home").iterdir())  # nothing under ~ either


def test_cache_directory_may_start_with_a_tilde(corpus, tmp_path):
    raw, manifest = corpus
    featurize(manifest, raw, tmp_path / "out", "~/features-cache")
    assert (tmp_path / "home" / "features-cache").is_dir()
    assert featurize(manifest, raw, tmp_path / "again", "~/features-cache").computed == 0


def test_the_cache_is_keyed_by_audio_content_not_file_name(corpus, tmp_path):
    raw, manifest = corpus
    featurize(manifest, raw, tmp_path / "first", tmp_path / "cache")
    renamed = manifest.copy()
    for row in renamed.itertuples():
        new = f"tess/renamed/{row.speaker.split('/')[1]}_other{row.Index}_{row.label}.wav"
        (raw / new).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(raw / row.file, raw / new)
        renamed.loc[row.Index, ["file", "text"]] = [new, f"other{row.Index}"]
    summary = featurize(renamed, raw, tmp_path / "renamed", tmp_path / "cache")
    assert (summary.computed, summary.cached) == (0, 12)
    first, again = outputs(tmp_path / "first"), outputs(tmp_path / "renamed")
    assert again[FEATURES_FILE] == first[FEATURES_FILE] and again[AUGMENTED_FILE] == first[AUGMENTED_FILE]
    assert load_features(tmp_path / "renamed")[1]["file"].tolist() == renamed["file"].tolist()


def test_changed_audio_under_the_same_name_is_recomputed(corpus, tmp_path):
    raw, manifest = corpus
    featurize(manifest, raw, tmp_path / "first", tmp_path / "cache")
    write_tone_file(raw / manifest.loc[0, "file"], sr=SR, seconds=0.7, f0=400.0, seed=9)  # new audio, same name
    manifest.loc[0, "sha256"] = sha256_of(raw / manifest.loc[0, "file"])
    summary = featurize(manifest, raw, tmp_path / "second", tmp_path / "cache")
    assert (summary.computed, summary.cached) == (3, 9)
    first, second = load_features(tmp_path / "first")[0], load_features(tmp_path / "second")[0]
    assert not np.allclose(first[0], second[0], atol=1e-2)
    np.testing.assert_array_equal(first[1:], second[1:])


def test_code_or_library_versions_invalidate_the_cache(corpus, tmp_path, monkeypatch):
    raw, manifest = corpus
    digest = code_digest()
    assert re.fullmatch(r"[0-9a-f]{64}", digest) and code_digest() == digest
    featurize(manifest, raw, tmp_path / "first", tmp_path / "cache")
    monkeypatch.setattr(librosa, "__version__", "0.0.0-other")
    assert code_digest() != digest
    assert featurize(manifest, raw, tmp_path / "other", tmp_path / "cache").computed == 12
    monkeypatch.undo()
    assert featurize(manifest, raw, tmp_path / "back", tmp_path / "cache").computed == 0


def test_cache_keys(tmp_path):
    cache = FeatureCache(str(tmp_path / "cache"), 0.5, SETTINGS)
    try:
        assert cache.store.size_limit == 500_000_000
        sha = "ab" * 32
        assert len({cache.key(sha, 0), cache.key(sha, 1), cache.key(sha, 2), cache.key("cd" * 32, 1)}) == 4
        # copies depend on the augment params, the clip itself does not; the number of copies is in neither
        for other in (settings(gain_db=1.0), settings(seed=9), settings(copies=5)):
            other_cache = FeatureCache("", 1.0, other)
            assert other_cache.store is None and other_cache.get(sha, 0) is None
            assert other_cache.key(sha, 0) == cache.key(sha, 0)
            assert (other_cache.key(sha, 1) == cache.key(sha, 1)) == (other.augment.seed == AUGMENT.seed
                                                                     and other.augment.gain_db == AUGMENT.gain_db)
        other_features = settings(features=FEATURES.model_copy(update={"n_mels": 64}))
        assert FeatureCache("", 1.0, other_features).key(sha, 0) != cache.key(sha, 0)
    finally:
        cache.close()


def test_a_tiny_cache_still_gives_the_right_outputs(corpus, tmp_path):
    """Entries beyond ``cache_limit_gb`` are evicted; the outputs do not change."""
    raw, manifest = corpus
    featurize(manifest, raw, tmp_path / "fresh", "")
    for out in ("tiny", "tiny-again"):
        featurize(manifest, raw, tmp_path / out, tmp_path / "cache", limit_gb=1e-6)
        assert outputs(tmp_path / out) == outputs(tmp_path / "fresh")


def test_copies_do_not_depend_on_manifest_order_or_the_other_clips(corpus, tmp_path):
    raw, manifest = corpus
    featurize(manifest, raw, tmp_path / "ordered", "")
    shuffled = manifest.sample(frac=1.0, random_state=1)
    assert shuffled["file"].tolist() != manifest["file"].tolist()
    featurize(shuffled, raw, tmp_path / "shuffled", "")
    featurize(manifest.iloc[[3]], raw, tmp_path / "alone", "")
    ordered, reordered = by_file(tmp_path / "ordered"), by_file(tmp_path / "shuffled")
    alone = by_file(tmp_path / "alone")
    assert ordered == reordered
    assert alone == {file: ordered[file] for file in alone}
    for row in manifest.itertuples(index=False):  # the clip's own copies, drawn from its sha256
        _, copies = ordered[row.file]
        assert len(copies) == 2 and copies[0] != copies[1]
        for copy in (1, 2):
            values, _ = expected_copy(raw, pd.Series(row._asdict()), copy)
            np.testing.assert_allclose(np.frombuffer(copies[copy - 1], np.float32).reshape(values.shape), values,
                                       rtol=1e-6, atol=1e-5)


# --- bad input -----------------------------------------------------------------------------------------


def _with_bad_clips(raw: Path, manifest: pd.DataFrame) -> pd.DataFrame:
    """The corpus with a corrupt file and a clip shorter than the offset among the good ones."""
    (raw / "tess/audio/YAF_sad").mkdir(parents=True, exist_ok=True)
    corrupt = raw / "tess/audio/YAF_sad/YAF_corrupt_sad.wav"
    corrupt.write_bytes(b"RIFF" + os.urandom(16) + b"this is not a wave file" * 10)
    short = write_tone_file(raw / "tess/audio/OAF_sad/OAF_short_sad.flac", sr=SR, seconds=0.05, format="FLAC")
    bad = pd.DataFrame([
        manifest_row("tess/audio/YAF_sad/YAF_corrupt_sad.wav", "", "YAF", "corrupt", "sad", sha256_of(corrupt)),
        manifest_row("tess/audio/OAF_sad/OAF_short_sad.flac", "", "OAF", "short", "sad", sha256_of(short)),
    ], columns=MANIFEST_COLUMNS)
    return pd.concat([manifest.iloc[:1], bad.iloc[:1], manifest.iloc[1:3], bad.iloc[1:], manifest.iloc[3:]],
                     ignore_index=True)


@pytest.mark.parametrize("workers", [1, 2])
def test_bad_clips_are_all_reported(corpus, tmp_path, workers):
    raw, manifest = corpus
    with_bad = _with_bad_clips(raw, manifest)
    with pytest.raises(FeaturizeError) as info:
        featurize(with_bad, raw, tmp_path / "out", tmp_path / "cache", workers=workers, batch_size=2)
    message = str(info.value)
    assert message.startswith("2 clip(s) could not be featurized:")
    assert re.search(r"YAF_corrupt_sad\.wav: cannot decode audio", message), message
    short = r"OAF_short_sad\.flac: clip is 0\.050 s long, not longer than audio\.offset=0\.1 s"
    assert re.search(short, message), message
    for file in manifest["file"]:
        assert file not in message
    # the good clips were computed and cached; the bad ones are not cached: they fail again
    good = featurize(manifest, raw, tmp_path / "good", tmp_path / "cache")
    assert (good.computed, good.cached) == (0, 12)
    with pytest.raises(FeaturizeError, match=r"^2 clip\(s\)"):
        featurize(with_bad, raw, tmp_path / "out", tmp_path / "cache")


def test_every_bad_file_is_listed_in_manifest_order(tmp_path):
    raw = tmp_path / "raw"
    good = write_clips(raw, CLIPS[:2])
    bad = write_clips(raw, [
        ("OAF", "tiny", "sad", SR, 0.08, 150.0, "WAV"),
        ("YAF", "tiny", "fear", 96000, 0.1, 170.0, "FLAC"),  # exactly the offset: not longer
        ("YAF", "half", "sad", 24414, 0.05, 190.0, "AIFF"),
    ])
    (raw / "tess/audio/garbage").mkdir()
    (raw / "tess/audio/garbage/YAF_text_sad.wav").write_text("not audio")
    (raw / "tess/audio/garbage/YAF_empty_sad.wav").write_bytes(b"")
    garbage = pd.DataFrame([
        manifest_row(f"tess/audio/garbage/YAF_{text}_sad.wav", "", "YAF", text, "sad",
                     sha256_of(raw / f"tess/audio/garbage/YAF_{text}_sad.wav")) for text in ("text", "empty")
    ], columns=MANIFEST_COLUMNS)
    manifest = pd.concat([good.iloc[:1], bad.iloc[:1], good.iloc[1:], bad.iloc[1:], garbage], ignore_index=True)
    with pytest.raises(FeaturizeError) as info:
        featurize(manifest, raw, tmp_path / "out", "", batch_size=2)
    lines = str(info.value).splitlines()
    assert lines[0] == "5 clip(s) could not be featurized:"
    named = [file for file in manifest["file"] if any(file in line for line in lines[1:])]
    assert named == [*bad["file"], *garbage["file"]]
    assert len(lines) == 6
    assert sum("cannot decode" in line for line in lines) == 2
    assert sum("not longer than audio.offset" in line for line in lines) == 3


@pytest.mark.parametrize("workers", [1, 2])
def test_a_missing_file_is_named_and_the_other_clips_still_run(corpus, tmp_path, workers):
    raw, manifest = corpus
    missing = raw / manifest["file"].iloc[1]
    missing.unlink()
    with pytest.raises(FeaturizeError, match="1 clip") as error:
        featurize(manifest, raw, tmp_path / "out", tmp_path / "cache", workers=workers)
    assert f"{missing}: cannot read the file (No such file or directory)" in str(error.value)
    summary = featurize(manifest.drop(index=1), raw, tmp_path / "again", tmp_path / "cache", workers=workers)
    assert summary.computed == 0  # the good clips were computed (and cached) despite the failure


def test_an_unexpected_error_is_not_masked(corpus, tmp_path, monkeypatch):
    raw, manifest = corpus

    def boom(tasks, run_settings):
        raise RuntimeError("boom")

    monkeypatch.setattr(ser.featurize, "compute_batch", boom)
    with pytest.raises(RuntimeError, match="boom"):
        featurize(manifest, raw, tmp_path / "out", "")


# --- NpyWriter -----------------------------------------------------------------------------------------


def test_npy_writer_round_trip(tmp_path):
    rows = np.random.default_rng(0).standard_normal((5, 7, 3))
    writer = NpyWriter(tmp_path / "a.npy", rows.shape)
    for row in rows:  # float64 in, float32 out
        writer.append(row)
    writer.close()
    loaded = np.load(tmp_path / "a.npy")
    assert loaded.dtype == np.float32 and loaded.shape == rows.shape
    np.testing.assert_array_equal(loaded, rows.astype(np.float32))
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy", mmap_mode="r"), loaded)
    header = np.lib.format.read_array_header_2_0  # a version 2.0 header, whose length field allows any shape
    with (tmp_path / "a.npy").open("rb") as handle:
        assert np.lib.format.read_magic(handle) == (2, 0)
        assert header(handle) == (rows.shape, False, np.dtype(np.float32))


def test_npy_writer_empty_and_other_dtypes(tmp_path):
    writer = NpyWriter(tmp_path / "empty.npy", (0, 4, 2))
    writer.close()
    empty = np.load(tmp_path / "empty.npy")
    assert empty.shape == (0, 4, 2) and empty.dtype == np.float32
    writer = NpyWriter(tmp_path / "ints.npy", (3, 2), dtype=np.int64)
    for row in ([1, 2], [3, 4], [5, 6]):
        writer.append(np.array(row))
    writer.close()
    np.testing.assert_array_equal(np.load(tmp_path / "ints.npy"), [[1, 2], [3, 4], [5, 6]])


@pytest.mark.parametrize("written", [0, 2, 4])
def test_npy_writer_raises_unless_every_row_was_written(tmp_path, written):
    writer = NpyWriter(tmp_path / "a.npy", (3, 2))
    for _ in range(written):
        writer.append(np.zeros(2))
    with pytest.raises(FeaturizeError, match=rf"a\.npy: wrote {written} of 3 rows"):
        writer.close()


# --- a Dask cluster ------------------------------------------------------------------------------------


def test_a_dask_cluster_gives_the_same_bytes(corpus, tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    raw, manifest = corpus
    featurize(manifest, raw, tmp_path / "local", "", workers=1)
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        address = cluster.scheduler_address
        assert address.startswith("tcp://127.0.0.1:")
        with worker_pool(run_params(scheduler=address, workers=1)) as (_, slots):
            assert slots == 2  # as many batches at once as the cluster has threads, whatever featurize.workers says
        summary = featurize(manifest, raw, tmp_path / "dask", tmp_path / "cache", scheduler=address, batch_size=1)
        assert (summary.computed, summary.cached) == (12, 0)
        assert outputs(tmp_path / "dask") == outputs(tmp_path / "local")
        prefix = cluster.scheduler.task_prefixes.get("compute_batch")
        assert prefix is not None and prefix.state_counts["memory"] == len(manifest)  # one batch per clip ran there
        # a rerun is all from the cache, nothing sent to the cluster
        again = featurize(manifest, raw, tmp_path / "again", tmp_path / "cache", scheduler=address, batch_size=3)
        assert (again.computed, again.cached) == (0, 12)
        assert outputs(tmp_path / "again") == outputs(tmp_path / "local")
        assert prefix.state_counts["memory"] == len(manifest)
        # bad clips are reported from the cluster's workers too
        with pytest.raises(FeaturizeError) as info:
            featurize(_with_bad_clips(raw, manifest), raw, tmp_path / "bad", "", scheduler=address)
        assert "YAF_corrupt_sad.wav: cannot decode" in str(info.value)
        assert "OAF_short_sad.flac: clip is" in str(info.value)


SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
REAL_CLIPS = {  # two real clips of each corpus of the default run: FLAC at 24 414 and 16 000 Hz, Ogg Opus
    "tess": ["OAF_angry/OAF_back_angry.flac", "YAF_sad/YAF_bath_sad.flac"],
    "ravdess": ["Actor_13/03-01-01-01-01-01-13.flac", "Actor_14/03-01-05-02-01-01-14.flac"],
    "emovo": ["f1/dis-f1-b1.flac", "m1/tri-m1-l2.flac"],
    "ased": ["01Neutral/n1-01-01-01-01.opus", "05Angry/a5-03-01-01-05.opus"],
    "nemo": ["EB0_anger_1.opus", "IC0_sadness_2.opus"],
}


def test_a_dask_cluster_featurizes_real_clips_of_every_corpus_as_local_workers_do(tmp_path):
    """The cluster's workers receive each file's bytes (no shared file system): FLAC and Ogg Opus of the
    five corpora give the same bytes there as here, augmented copies and both openSMILE sets included."""
    distributed = pytest.importorskip("dask.distributed")
    files = [f"{corpus}/{name}" for corpus, names in REAL_CLIPS.items() for name in names]
    if missing := [file for file in files if not (SHARED / file).is_file()]:
        pytest.skip(f"real corpora not found in {SHARED}: {', '.join(missing)}")
    manifest = pd.DataFrame([
        {"file": file, "source": file, "corpus": file.split("/")[0], "speaker": f"{file.split('/')[0]}/s{k}",
         "text": f"t{k}", "label": "sad", "sha256": sha256_of(SHARED / file), "emotion": "sad"}
        for k, file in enumerate(files)
    ], columns=MANIFEST_COLUMNS)
    real = Settings(AudioParams(sr=16000, offset=0.5, duration=1.0, res_type="soxr_hq"), FEATURES.model_copy(
        update={"functionals": ["egemaps", "compare"]}), AUGMENT)
    featurize(manifest, SHARED, tmp_path / "local", "", settings=real, workers=1)
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        summary = featurize(manifest, SHARED, tmp_path / "dask", "", settings=real, scheduler=cluster.scheduler_address)
    assert (summary.clips, summary.computed) == (len(files), len(files) * (AUGMENT.copies + 1))
    assert outputs(tmp_path / "dask") == outputs(tmp_path / "local")
    assert {"functionals_egemaps.npy", "functionals_compare.npy"} <= set(outputs(tmp_path / "dask"))


# --- params ---------------------------------------------------------------------------------------------


def _errors(raw) -> str:
    with pytest.raises(ParamsError) as info:
        validate_params(raw)
    return str(info.value)


def test_params_yaml_featurize_runtime(repo_params):
    runtime = repo_params.runtime.featurize
    assert runtime.scheduler == ""
    assert runtime.cache  # on by default
    assert runtime.batch_size > 0 and runtime.workers >= 0


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("scheduler", "localhost:8786"),
        ("scheduler", "http://x"),
        ("scheduler", "tcp://"),
        ("scheduler", "tcp://host :8786"),
        ("scheduler", 8786),
        ("workers", -1),
        ("workers", 1.5),
        ("workers", True),
        ("workers", 1025),
        ("batch_size", 0),
        ("batch_size", -3),
        ("batch_size", 4097),
        ("cache", None),
        ("cache", 0),
        ("cache_limit_gb", 0),
        ("cache_limit_gb", -1.0),
        ("cache_limit_gb", "20"),
    ],
)
def test_bad_featurize_params_name_the_key(raw_params, key, value):
    raw_params["runtime"]["featurize"][key] = value
    assert f"runtime.featurize.{key}" in _errors(raw_params)


@pytest.mark.parametrize(
    ("key", "value"),
    [("scheduler", ""), ("scheduler", "tcp://10.0.0.5:8786"), ("scheduler", "tls://scheduler.example:8786"),
     ("scheduler", "ucx://host:13337"), ("workers", 0), ("workers", 1), ("workers", 64), ("batch_size", 1),
     ("cache", ""), ("cache", "/tmp/features"), ("cache_limit_gb", 0.5), ("cache_limit_gb", 1)],
)
def test_good_featurize_params(raw_params, key, value):
    raw_params["runtime"]["featurize"][key] = value
    assert getattr(validate_params(raw_params).runtime.featurize, key) == value


def test_unknown_featurize_key(raw_params):
    raw_params["runtime"]["featurize"]["threads"] = 2
    assert "runtime.featurize.threads: unknown key" in _errors(raw_params)


def test_a_missing_featurize_setting_takes_its_default(raw_params):
    del raw_params["runtime"]["featurize"]["cache"]
    assert validate_params(raw_params).runtime.featurize.cache == "~/.cache/ser/features"
    del raw_params["runtime"]["featurize"]
    assert validate_params(raw_params).runtime.featurize.workers == 0


def test_the_old_featurize_section_is_refused(raw_params):
    raw_params["featurize"] = raw_params["runtime"]["featurize"]
    assert "featurize: unknown key" in _errors(raw_params)


def test_a_rerun_from_the_cache_starts_no_worker_process(corpus, tmp_path, monkeypatch):
    raw, manifest = corpus
    featurize(manifest, raw, tmp_path / "first", tmp_path / "cache", workers=2)
    monkeypatch.setattr(ser.featurize, "ProcessPoolExecutor", None)  # starting a pool would fail
    summary = featurize(manifest, raw, tmp_path / "again", tmp_path / "cache", workers=2)
    assert summary.computed == 0
    assert outputs(tmp_path / "again") == outputs(tmp_path / "first")


def test_worker_processes_run_blas_on_one_thread():
    """The pool's initializer pins BLAS (a failure there would go unseen)."""
    from threadpoolctl import threadpool_info

    with LazyProcessPool(1) as pool:
        assert {entry["num_threads"] for entry in pool.submit(threadpool_info).result()} <= {1}
