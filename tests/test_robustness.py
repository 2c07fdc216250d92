"""Robustness to the recording chain: the stratified draw of clips, their features through each transform
(outputs, order, the cache and its keys, bad clips), the robustness scores and table, serving recall,
and the ``robustness`` params section.

Featurizing runs on a few short synthetic clips the tests write, each test with its own cache directory
under tmp_path, so nothing reads or writes the user's cache.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from sklearn.metrics import recall_score

from conftest import SERVED_FUNCTIONALS, write_tone_file
from ser import chain
from ser.audio import load_window
from ser.dsp import dct
from ser.evaluation import (
    METRIC_DIGITS, robustness_rows, robustness_scores, robustness_table, score, scored_probabilities, summarize, transformed_predictions,
)
from ser.inference import ClipFeatures, Predictor
from ser.features import (
    FEATURES_FILE, FUNCTIONALS_FILE, INDEX_COLUMNS, INDEX_FILE, PARAMS_FILE, feature_shape, frame_features, load_features, load_functionals,
)
from ser.featurize import (
    FeatureCache, FeaturizeError, Settings, Tally, featurize_corpus, featurize_transforms, has_functionals, variant_window,
)
from ser.fetch import sha256_of
from ser.functionals import FEATURE_SETS, SIZES, functional_sets
from ser.params import (
    CHAIN_TRANSFORMS, AudioParams, AugmentParams, FeatureParams, FeaturizeRuntime, ParamsError, RobustnessParams, validate_params,
)
from ser.robustness import draw_clips

SR = 16_000
AUDIO = AudioParams(sr=SR, offset=0.1, duration=0.8, res_type="soxr_hq")
FEATURES = FeatureParams(kind="mfcc", n_mfcc=13, n_mels=40, n_fft=512, hop_length=256, functionals=["egemaps"])
AUGMENT = AugmentParams(copies=1, seed=3, noise_snr_db=[10.0, 30.0], shift_s=0.05, pitch_semitones=0.0, tempo=[], gain_db=6.0)
SETTINGS = Settings(AUDIO, FEATURES, AUGMENT)
TRANSFORMS = ("gain_-20db", "telephone", "noise_20db")
"""A few cheap transforms, a fixed one, a filter and a seeded random one; not in CHAIN_TRANSFORMS order."""
MANIFEST_COLUMNS = ["file", "source", "corpus", "speaker", "text", "label", "sha256", "emotion"]
ROUNDING = 0.5 * 10**-METRIC_DIGITS
"""The most a reported score differs from the exact one."""


@pytest.fixture(autouse=True)
def _no_user_cache(tmp_path, monkeypatch):
    """``~`` is a temporary directory: a test that forgot its cache could not touch the user's."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))


# --- draw_clips --------------------------------------------------------------------------------------------


def _manifest(counts: dict[tuple[str, str], int], seed: int = 0) -> pd.DataFrame:
    """A manifest with ``counts[corpus, emotion]`` clips of each cell, its rows shuffled (cells interleaved),
    its index increasing but not 0, 1, 2... (the labels stage's manifest, read back, has a RangeIndex)."""
    rows = [
        {"file": f"{corpus}/{emotion}_{k}.wav", "corpus": corpus, "speaker": f"{corpus}/s{k % 3}", "emotion": emotion}
        for (corpus, emotion), count in counts.items() for k in range(count)
    ]
    frame = pd.DataFrame(rows).sample(frac=1.0, random_state=seed)
    frame.index = 1000 + 7 * np.arange(len(frame))
    return frame


def _in_manifest_order(drawn: pd.DataFrame, manifest: pd.DataFrame) -> bool:
    return bool((np.diff(manifest.index.get_indexer(drawn.index)) > 0).all())


COUNTS = {("tess", "angry"): 9, ("tess", "sad"): 2, ("ravdess", "angry"): 4, ("ravdess", "happy"): 1, ("emovo", "sad"): 6}


@pytest.mark.parametrize("per_class", [1, 3, 4, 50])
def test_draw_takes_min_of_n_and_available_per_corpus_and_class(per_class):
    manifest = _manifest(COUNTS)
    drawn = draw_clips(manifest, per_class, seed=7)
    sizes = drawn.groupby(["corpus", "emotion"]).size().to_dict()
    assert sizes == {cell: min(per_class, count) for cell, count in COUNTS.items()}
    assert list(drawn.columns) == list(manifest.columns)
    # the drawn rows are the manifest's own rows (same index, same values) ...
    assert drawn.index.is_unique and set(drawn.index) <= set(manifest.index)
    pd.testing.assert_frame_equal(drawn, manifest.loc[drawn.index])
    assert _in_manifest_order(drawn, manifest)
    if per_class >= max(COUNTS.values()):
        pd.testing.assert_frame_equal(drawn, manifest)  # every clip drawn: the manifest as it is


def test_same_seed_same_draw_other_seed_other_draw():
    manifest = _manifest({("tess", "angry"): 200, ("tess", "sad"): 150, ("emovo", "angry"): 120})
    first = draw_clips(manifest, 5, seed=11)
    pd.testing.assert_frame_equal(first, draw_clips(manifest, 5, seed=11))
    other = draw_clips(manifest, 5, seed=12)
    assert len(other) == len(first) == 15
    assert set(other["file"]) != set(first["file"])
    # the draw is not the first rows of each cell
    heads = manifest.groupby(["corpus", "emotion"]).head(5)
    assert set(first["file"]) != set(heads["file"])


def test_draw_keeps_the_order_of_a_reordered_manifest():
    counts = {("tess", "angry"): 30, ("ravdess", "sad"): 30}
    manifest = _manifest(counts, seed=0)
    reordered = manifest.sample(frac=1.0, random_state=5).reset_index(drop=True)
    drawn = draw_clips(reordered, 4, seed=3)
    assert _in_manifest_order(drawn, reordered)
    assert drawn.groupby(["corpus", "emotion"]).size().to_dict() == {cell: 4 for cell in counts}


def test_draw_keeps_manifest_order_whatever_the_index():
    """A manifest whose index is not increasing (a filtered or reordered frame) is drawn in row order too."""
    manifest = _manifest(COUNTS).sample(frac=1.0, random_state=1)
    drawn = draw_clips(manifest, 3, seed=7)
    assert len(drawn) == sum(min(3, count) for count in COUNTS.values())
    assert _in_manifest_order(drawn, manifest)


def test_zero_per_class_and_an_empty_manifest_give_empty_frames_with_the_columns():
    manifest = _manifest(COUNTS)
    for drawn in (draw_clips(manifest, 0, seed=1), draw_clips(manifest.iloc[:0], 5, seed=1)):
        assert len(drawn) == 0
        assert list(drawn.columns) == list(manifest.columns)
        assert (drawn.dtypes == manifest.dtypes).all()


# --- featurize_transforms ------------------------------------------------------------------------------------


def _noise(path, sr: int, seconds: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    sf.write(str(path), 0.2 * rng.standard_normal(int(sr * seconds)), sr, subtype="PCM_16")


def _write_corpus(raw) -> pd.DataFrame:
    """Three short clips under ``raw`` (a voice-like WAV at 16 kHz, one as FLAC at 24414 Hz, white noise as WAV
    at 22050 Hz) and their manifest (the columns the labels stage writes that featurize reads)."""
    rows = []
    specs = [("OAF", "back", "angry", "wav", 0.9), ("YAF", "bar", "sad", "flac", 1.1), ("OAF", "dog", "fear", "wav", 0.7)]
    for k, (speaker, text, emotion, extension, seconds) in enumerate(specs):
        source = f"{speaker}_{emotion}/{speaker}_{text}_{emotion}.{extension}"
        file = f"tess/audio/{source}"
        (raw / file).parent.mkdir(parents=True, exist_ok=True)
        if k == 0:
            write_tone_file(raw / file, sr=SR, seconds=seconds, f0=150.0, seed=1)
        elif k == 1:
            write_tone_file(raw / file, sr=24414, seconds=seconds, f0=230.0, seed=2, format="FLAC")
        else:
            _noise(raw / file, 22050, seconds, seed=3)
        rows.append({"file": file, "source": source, "corpus": "tess", "speaker": f"tess/{speaker}", "text": text,
                     "label": emotion, "sha256": sha256_of(raw / file), "emotion": emotion})
    return pd.DataFrame(rows, columns=MANIFEST_COLUMNS)


def _run(cache="", workers: int = 1, batch_size: int = 2) -> FeaturizeRuntime:
    return FeaturizeRuntime(workers=workers, scheduler="", batch_size=batch_size, cache=str(cache), cache_limit_gb=1.0)


def _files(out) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in out.iterdir()}


@pytest.fixture(scope="module")
def transformed(tmp_path_factory):
    """A corpus featurized through TRANSFORMS with a fresh cache, then as featurize does it (the clips' own features),
    sharing the cache: (raw, manifest, out, own, cache, tally of the transforms run, summary of the corpus run)."""
    root = tmp_path_factory.mktemp("robustness")
    raw, cache = root / "raw", root / "cache"
    manifest = _write_corpus(raw).iloc[[2, 0, 1]]  # not in file order, and a non-default index
    tally = featurize_transforms(manifest, raw, root / "out", SETTINGS, _run(cache), TRANSFORMS)
    summary = featurize_corpus(manifest, raw, root / "own", SETTINGS, _run(cache))
    return raw, manifest, root / "out", root / "own", cache, tally, summary


def test_outputs_one_row_per_clip_and_transform_clip_by_clip(transformed):
    raw, manifest, out, _, _, tally, _ = transformed
    n, k = len(manifest), len(TRANSFORMS)
    assert isinstance(tally, Tally) and tally.computed == n * k and tally.errors == [] and tally.corrupt == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([FEATURES_FILE, INDEX_FILE, PARAMS_FILE, FUNCTIONALS_FILE.format("egemaps")])
    assert not any(p.name.endswith(".partial") for p in out.parent.iterdir())

    values, index, used = load_features(out)
    assert values.dtype == np.float32 and values.shape == (n * k, *feature_shape(AUDIO, FEATURES))
    assert list(index.columns) == [*INDEX_COLUMNS, "transform"]
    assert index["transform"].tolist() == list(TRANSFORMS) * n
    for column in ("file", "corpus", "speaker", "text", "emotion"):
        assert index[column].tolist() == [value for value in manifest[column] for _ in TRANSFORMS]
    assert used == {"audio": AUDIO.model_dump(), "features": FEATURES.model_dump()}
    assert json.loads((out / PARAMS_FILE).read_text()) == used

    for row, (file, sha256, name) in enumerate(zip(index["file"], np.repeat(manifest["sha256"].to_numpy(), k), index["transform"])):
        samples = chain.apply(name, load_window(raw / file, AUDIO), SR, chain.clip_seed(sha256))
        expected, valid = frame_features(samples, AUDIO, FEATURES)
        np.testing.assert_allclose(values[row], expected, rtol=1e-6, atol=1e-5)
        assert index.loc[row, "valid_frames"] == valid > 0


def test_functionals_for_every_row(transformed):
    raw, manifest, out, own, _, _, _ = transformed
    described = load_functionals(out)
    assert set(described) == {"egemaps"}
    egemaps = described["egemaps"]
    assert egemaps.shape == (len(manifest) * len(TRANSFORMS), SIZES["egemaps"]) and egemaps.dtype == np.float32
    assert np.isfinite(egemaps).all()
    assert (np.abs(egemaps).sum(axis=1) > 0).all()  # none is a failed clip's blank row
    assert len(np.unique(egemaps, axis=0)) == len(egemaps)  # every clip and transform has its own
    # the functionals of a row are those of its clip through its transform
    _, index, _ = load_features(out)
    for row in (0, len(index) - 1):
        file, name = index.loc[row, ["file", "transform"]]
        sha256 = manifest.set_index("file").loc[file, "sha256"]
        samples = chain.apply(name, load_window(raw / file, AUDIO), SR, chain.clip_seed(sha256))
        np.testing.assert_allclose(egemaps[row], functional_sets(samples, SR, ["egemaps"])["egemaps"], rtol=1e-5, atol=1e-5)
    # the untransformed clip's functionals are none of its transforms'
    mine = load_functionals(own)["egemaps"]
    for clip in range(len(manifest)):
        assert not np.isclose(egemaps[clip * len(TRANSFORMS) : (clip + 1) * len(TRANSFORMS)], mine[clip]).all(axis=1).any()


def test_gain_lowers_c0_by_the_gain_and_leaves_the_rest(transformed):
    """-20 dB shifts every log-mel value of real audio by -20 dB (top_db clamps relative to the maximum): MFCC c0
    drops by the orthonormal DCT of that constant shift, the other coefficients stay; eGeMAPS loudness drops too."""
    _, manifest, out, own, _, _, _ = transformed
    values, index, _ = load_features(out)
    clips, clip_index, _ = load_features(own)
    assert clip_index["file"].tolist() == manifest["file"].tolist()
    shift = dct(np.full((1, 1, FEATURES.n_mels), -20.0), FEATURES.n_mfcc, axis=2)[0, 0]
    assert shift[0] < 0 and np.allclose(shift[1:], 0)
    import opensmile

    names = opensmile.Smile(feature_set=getattr(opensmile.FeatureSet, FEATURE_SETS["egemaps"])).feature_names
    loudness = names.index("loudness_sma3_amean")
    gained, mine = load_functionals(out)["egemaps"], load_functionals(own)["egemaps"]
    for clip, file in enumerate(manifest["file"]):
        row = np.flatnonzero((index["file"] == file) & (index["transform"] == "gain_-20db"))
        assert len(row) == 1
        gain, original = values[row[0]], clips[clip]
        assert index.loc[row[0], "valid_frames"] == clip_index.loc[clip, "valid_frames"]
        assert (gain[:, 0] < original[:, 0]).all()
        # on the frames of real audio (padding is floored at AMIN's -100 dB, which does not move)
        real = clip_index.loc[clip, "valid_frames"]
        np.testing.assert_allclose(gain[:real] - original[:real], np.broadcast_to(shift, gain[:real].shape), atol=0.05)
        assert gained[row[0], loudness] < 0.5 * mine[clip, loudness]
        # other transforms change the features, and not as a gain does
        for name in ("telephone", "noise_20db"):
            other = values[np.flatnonzero((index["file"] == file) & (index["transform"] == name))[0]]
            assert not np.allclose(other, original, atol=0.5)


def test_reruns_give_identical_bytes_and_come_from_the_cache(transformed, tmp_path):
    raw, manifest, out, _, cache, _, _ = transformed
    again = featurize_transforms(manifest, raw, tmp_path / "again", SETTINGS, _run(cache, batch_size=1), TRANSFORMS)
    assert again.computed == 0 and again.errors == []
    fresh = featurize_transforms(manifest, raw, tmp_path / "fresh", SETTINGS, _run("", batch_size=3), TRANSFORMS)
    assert fresh.computed == len(manifest) * len(TRANSFORMS)
    assert _files(out) == _files(tmp_path / "again") == _files(tmp_path / "fresh")


def test_two_workers_give_the_same_bytes(transformed, tmp_path):
    raw, manifest, out, _, _, _, _ = transformed
    two = featurize_transforms(manifest, raw, tmp_path / "two", SETTINGS, _run("", workers=2, batch_size=1), TRANSFORMS)
    assert two.computed == len(manifest) * len(TRANSFORMS)
    assert _files(out) == _files(tmp_path / "two")


def test_a_subset_of_the_transforms_in_another_order_comes_from_the_cache(transformed, tmp_path):
    raw, manifest, out, _, cache, _, _ = transformed
    names = TRANSFORMS[::-1][:2]
    tally = featurize_transforms(manifest.iloc[::-1], raw, tmp_path / "sub", SETTINGS, _run(cache), names)
    assert tally.computed == 0
    values, index, _ = load_features(tmp_path / "sub")
    assert index["transform"].tolist() == list(names) * len(manifest)
    full, full_index, _ = load_features(out)
    for row, (file, name) in enumerate(zip(index["file"], index["transform"])):
        match = np.flatnonzero((full_index["file"] == file) & (full_index["transform"] == name))
        np.testing.assert_array_equal(values[row], full[match[0]])


def test_transforms_and_the_clips_own_features_do_not_share_cache_entries(transformed, tmp_path):
    """The clips' own features and augmented copies were computed after the transforms, into the same cache:
    none came from a transform's entry, and a transform run after them finds only its own entries."""
    raw, manifest, _, _, _, _, summary = transformed
    assert summary.cached == 0 and summary.computed == len(manifest) * (AUGMENT.copies + 1)
    cache = tmp_path / "cache"
    featurize_corpus(manifest, raw, tmp_path / "own", SETTINGS, _run(cache))
    tally = featurize_transforms(manifest, raw, tmp_path / "out", SETTINGS, _run(cache), TRANSFORMS)
    assert tally.computed == len(manifest) * len(TRANSFORMS)


def test_cache_keys_of_transforms_differ_from_the_clip_and_its_copies(tmp_path):
    store = FeatureCache(str(tmp_path / "cache"), 1.0, Settings(AUDIO, FEATURES, AUGMENT.model_copy(update={"copies": 4})))
    try:
        sha256 = "ab" * 32
        transforms = [store.key(sha256, name) for name in CHAIN_TRANSFORMS]
        plain = [store.key(sha256, copy) for copy in range(5)]
        assert len(set(transforms)) == len(transforms)
        assert not set(transforms) & set(plain)
        assert len(set(plain)) == len(plain)
        assert all(sha256 in key for key in transforms)
        assert store.key("cd" * 32, "room") != store.key(sha256, "room")
    finally:
        store.close()


def test_variants():
    assert has_functionals(0) and not has_functionals(1) and not has_functionals(3)
    assert all(has_functionals(name) for name in CHAIN_TRANSFORMS)
    samples = np.random.default_rng(0).standard_normal(SR).astype(np.float32) * 0.1
    sha256 = "ef" * 32
    assert variant_window(samples, 0, sha256, SETTINGS) is samples
    expected = chain.apply("room", samples, SR, chain.clip_seed(sha256))
    np.testing.assert_array_equal(variant_window(samples, "room", sha256, SETTINGS), expected)
    np.testing.assert_allclose(variant_window(samples, "gain_-20db", sha256, SETTINGS), samples * 0.1, rtol=1e-5)
    assert not np.array_equal(variant_window(samples, "room", sha256, SETTINGS), variant_window(samples, "room", "01" * 32, SETTINGS))


def test_an_unreadable_clip_fails_naming_it(tmp_path):
    raw = tmp_path / "raw"
    manifest = _write_corpus(raw)
    corrupt = raw / "tess/audio/YAF_sad/YAF_corrupt_sad.wav"
    corrupt.write_bytes(b"RIFF" + os.urandom(16) + b"this is not a wave file" * 10)
    bad = {**manifest.iloc[0].to_dict(), "file": "tess/audio/YAF_sad/YAF_corrupt_sad.wav", "sha256": sha256_of(corrupt)}
    missing = {**manifest.iloc[0].to_dict(), "file": "tess/audio/OAF_sad/OAF_gone_sad.wav", "sha256": "00" * 32}
    with_bad = pd.concat([manifest.iloc[:1], pd.DataFrame([bad, missing]), manifest.iloc[1:]], ignore_index=True)
    out = tmp_path / "out"
    with pytest.raises(FeaturizeError) as info:
        featurize_transforms(with_bad, raw, out, SETTINGS, _run(tmp_path / "cache"), TRANSFORMS[:1])
    message = str(info.value)
    assert message.startswith("2 clip(s) could not be featurized:"), message
    assert "YAF_corrupt_sad.wav: cannot decode audio" in message
    assert "OAF_gone_sad.wav: cannot read the file" in message
    for file in manifest["file"]:
        assert file not in message
    assert not out.exists() and not (tmp_path / ".out.partial").exists()  # no partial output
    # the good clips were computed and cached
    good = featurize_transforms(manifest, raw, out, SETTINGS, _run(tmp_path / "cache"), TRANSFORMS[:1])
    assert good.computed == 0 and len(load_features(out)[1]) == len(manifest)


def test_no_clip_or_no_transform_gives_empty_outputs(tmp_path):
    raw = tmp_path / "raw"
    manifest = _write_corpus(raw)
    for name, clips, names in (("no-clips", manifest.iloc[:0], TRANSFORMS), ("no-transforms", manifest, ())):
        tally = featurize_transforms(clips, raw, tmp_path / name, SETTINGS, _run(""), names)
        assert tally.computed == 0
        values, index, _ = load_features(tmp_path / name)
        assert values.shape == (0, *feature_shape(AUDIO, FEATURES))
        assert len(index) == 0 and list(index.columns) == [*INDEX_COLUMNS, "transform"]
        assert load_functionals(tmp_path / name)["egemaps"].shape == (0, SIZES["egemaps"])


# --- transformed clips scored alone ---------------------------------------------------------------------------


def test_transformed_clips_are_scored_alone_by_the_fold_model(served_model_dir, repo_params, tmp_path):
    """Each transformed clip of the fold's test files is scored as ``ser predict`` scores a clip: alone (its own
    statistics), whatever other clips are scored with it; clips of other files are left out."""
    raw = tmp_path / "raw"
    manifest = _write_corpus(raw)
    features = repo_params.features.model_copy(update={"functionals": list(SERVED_FUNCTIONALS)})
    run_settings = Settings(repo_params.audio, features, repo_params.augment)
    names = ("gain_-20db", "noise_20db")
    featurize_transforms(manifest, raw, tmp_path / "out", run_settings, _run(""), names)
    values, index, _ = load_features(tmp_path / "out")
    described = load_functionals(tmp_path / "out")
    files = manifest["file"].iloc[[2, 0]]  # the fold's test clips: two of the three

    found = transformed_predictions(served_model_dir, values, index, described, files)
    assert list(found.columns) == ["file", "transform", "predicted"]
    chosen = index["file"].isin(files).to_numpy()
    pd.testing.assert_frame_equal(found[["file", "transform"]], index.loc[chosen, ["file", "transform"]].reset_index(drop=True))

    predictor = Predictor(served_model_dir, threads=1)
    assert set(found["predicted"]) <= set(predictor.classes)
    for row, expected in zip(np.flatnonzero(chosen), found["predicted"]):
        clip = ClipFeatures(index.loc[row, "file"], 1.0, [0.0], values[row : row + 1], index["valid_frames"].to_numpy()[row : row + 1],
                            {kind: described[kind][row : row + 1] for kind in described})
        alone = predictor.predict([clip])[0]
        assert expected == predictor.classes[int(np.argmax(alone.probabilities))]

    # alone: a row's probabilities do not depend on the other rows scored with it ...
    everyone = np.ones(len(index), dtype=bool)
    apart = scored_probabilities(predictor, values, index, described, np.arange(len(index)).astype(str), everyone)
    some = scored_probabilities(predictor, values, index, described, np.arange(int(chosen.sum())).astype(str), chosen)
    np.testing.assert_allclose(some, apart[chosen], rtol=1e-5, atol=1e-6)
    # ... while scored as one speaker they would (the model normalizes per speaker)
    together = scored_probabilities(predictor, values, index, described, np.zeros(len(index)).astype(str), everyone)
    assert not np.allclose(together, apart, atol=1e-4)

    none = transformed_predictions(served_model_dir, values, index, described, pd.Series(["nobody.wav"]))
    assert len(none) == 0 and list(none.columns) == ["file", "transform", "predicted"]


# --- robustness scores ---------------------------------------------------------------------------------------


# the evaluation's predictions: (file, corpus, actual, predicted with the speaker's statistics, served alone)
PREDICTIONS = [
    ("tess/a.wav", "tess", "angry", "angry", "angry"),
    ("tess/b.wav", "tess", "sad", "sad", "neutral"),
    ("tess/c.wav", "tess", "happy", "happy", "happy"),
    ("ravdess/d.wav", "ravdess", "fear", "fear", "sad"),
    ("ravdess/e.wav", "ravdess", "neutral", "neutral", "neutral"),
    ("ravdess/f.wav", "ravdess", "sad", "sad", "sad"),
    ("emovo/g.wav", "emovo", "angry", "angry", "happy"),  # not drawn for robustness
    ("emovo/h.wav", "emovo", "happy", "angry", "angry"),  # not drawn for robustness
]
NAMES = ["gain_-20db", "telephone", "room"]
# the transformed clips' predictions, clip by clip: file -> predicted class per transform of NAMES
TRANSFORMED = {
    "tess/a.wav": ["angry", "sad", "angry"],
    "tess/b.wav": ["sad", "neutral", "neutral"],
    "tess/c.wav": ["happy", "happy", "sad"],
    "ravdess/d.wav": ["sad", "happy", "fear"],
    "ravdess/e.wav": ["neutral", "neutral", "sad"],
    "ravdess/f.wav": ["sad", "sad", "sad"],
}


@pytest.fixture
def predictions() -> pd.DataFrame:
    frame = pd.DataFrame(PREDICTIONS, columns=["file", "corpus", "actual", "predicted", "served"])
    return frame.assign(fold="fold1", speaker=frame["corpus"] + "/s1", confidence=0.6)


@pytest.fixture
def transformed_clips() -> pd.DataFrame:
    rows = [(file, name, label) for file, labels in TRANSFORMED.items() for name, label in zip(NAMES, labels)]
    return pd.DataFrame(rows, columns=["file", "transform", "predicted"])


def test_robustness_table_joins_each_clips_own_prediction(predictions, transformed_clips):
    table = robustness_table(transformed_clips, predictions)
    assert list(table.columns) == ["file", "transform", "predicted", "corpus", "actual", "served"]
    assert len(table) == len(transformed_clips)
    pd.testing.assert_frame_equal(table[["file", "transform", "predicted"]], transformed_clips)
    own = predictions.set_index("file")
    for row in table.itertuples():
        assert (row.corpus, row.actual, row.served) == tuple(own.loc[row.file, ["corpus", "actual", "served"]])


def test_robustness_scores(predictions, transformed_clips):
    table = robustness_table(transformed_clips, predictions)
    scores = robustness_scores(table, NAMES)
    own = {file: (actual, served) for file, _, actual, _, served in PREDICTIONS}
    drawn = list(TRANSFORMED)
    untransformed = sum(own[f][0] == own[f][1] for f in drawn) / len(drawn)
    # the drawn clips served alone, not their predictions with speaker statistics, nor all the clips
    assert untransformed != sum(p[2] == p[3] for p in PREDICTIONS if p[0] in TRANSFORMED) / len(drawn)
    assert untransformed != sum(p[2] == p[4] for p in PREDICTIONS) / len(PREDICTIONS)
    assert set(scores) == {"n_clips", "untransformed", *NAMES}
    assert scores["n_clips"] == len(drawn)
    assert scores["untransformed"]["accuracy"] == pytest.approx(untransformed, abs=ROUNDING)
    for k, name in enumerate(NAMES):
        accuracy = sum(TRANSFORMED[f][k] == own[f][0] for f in drawn) / len(drawn)
        unchanged = sum(TRANSFORMED[f][k] == own[f][1] for f in drawn) / len(drawn)
        assert set(scores[name]) == {"accuracy", "accuracy_change", "unchanged"}
        assert scores[name]["accuracy"] == pytest.approx(accuracy, abs=ROUNDING)
        assert scores[name]["accuracy_change"] == pytest.approx(accuracy - untransformed, abs=2 * ROUNDING)
        assert scores[name]["unchanged"] == pytest.approx(unchanged, abs=ROUNDING)
        for value in scores[name].values():
            assert value == round(value, METRIC_DIGITS)
    assert len({scores[name]["accuracy"] for name in NAMES}) > 1  # the table tells the transforms apart
    assert any(scores[name]["unchanged"] != scores[name]["accuracy"] for name in NAMES)  # and agreement from accuracy
    json.dumps(scores, allow_nan=False)


def test_robustness_scores_follow_the_order_asked(predictions, transformed_clips):
    table = robustness_table(transformed_clips, predictions)
    assert list(robustness_scores(table, NAMES[::-1])) == ["n_clips", "untransformed", *NAMES[::-1]]


def test_a_transformed_clip_that_is_no_test_clip_is_left_out(predictions, transformed_clips):
    stray = pd.DataFrame([("emovo/z.wav", name, "sad") for name in NAMES], columns=transformed_clips.columns)
    table = robustness_table(pd.concat([transformed_clips, stray], ignore_index=True), predictions)
    assert "emovo/z.wav" not in set(table["file"])
    assert table.equals(robustness_table(transformed_clips, predictions))


def test_robustness_rows(predictions, transformed_clips):
    scores = robustness_scores(robustness_table(transformed_clips, predictions), NAMES)
    rows = robustness_rows(scores)
    assert list(rows.columns) == ["transform", "accuracy", "unchanged"]
    assert rows["transform"].tolist() == ["untransformed", *NAMES]
    assert rows.loc[0, "accuracy"] == scores["untransformed"]["accuracy"] and rows.loc[0, "unchanged"] == 1.0
    for k, name in enumerate(NAMES, 1):
        assert (rows.loc[k, "accuracy"], rows.loc[k, "unchanged"]) == (scores[name]["accuracy"], scores[name]["unchanged"])


def test_no_clip_drawn_gives_scores_that_are_valid_json(predictions):
    """``robustness.clips_per_class: 0`` turns robustness scoring off: evaluate still scores the empty table, and
    what it writes to metrics.json must be JSON (NaN is not)."""
    empty = robustness_table(pd.DataFrame(columns=["file", "transform", "predicted"]), predictions)
    scores = robustness_scores(empty, [])
    assert scores["n_clips"] == 0
    json.dumps(scores, allow_nan=False)


# --- serving recall -----------------------------------------------------------------------------------------


CLASSES = ["angry", "fear", "happy", "neutral", "sad", "surprise"]


def test_serving_recall_is_the_recall_of_the_served_column(predictions):
    scores = score(predictions, CLASSES)
    actual, served = predictions["actual"].tolist(), predictions["served"].tolist()
    present = [c for c in CLASSES if c in actual]
    assert "surprise" not in present
    assert list(scores["serving_recall"]) == present
    for c in present:
        rows = [k for k, a in enumerate(actual) if a == c]
        assert scores["serving_recall"][c] == pytest.approx(sum(served[k] == c for k in rows) / len(rows), abs=ROUNDING)
    expected = recall_score(actual, served, labels=present, average=None, zero_division=0)
    assert scores["serving_min_recall"] == pytest.approx(expected.min(), abs=ROUNDING)
    assert scores["serving_min_recall"] == min(scores["serving_recall"].values())
    # served predictions differ from the predicted ones: so do the recalls
    assert scores["serving_recall"] != scores["recall"]
    assert scores["serving_min_recall"] != scores["min_recall"]
    brief = score(predictions, CLASSES, detail=False)
    assert "serving_recall" not in brief and brief["serving_min_recall"] == scores["serving_min_recall"]


def test_serving_recall_equals_recall_when_served_is_predicted(predictions):
    same = predictions.assign(served=predictions["predicted"])
    scores = score(same, CLASSES)
    assert scores["serving_recall"] == scores["recall"] and scores["serving_min_recall"] == scores["min_recall"]


def test_summary_reports_serving_recall_and_corpus_mean_serving_accuracy(predictions):
    summary = summarize("speaker", predictions, {}, CLASSES)
    assert summary["serving_recall"] == score(predictions, CLASSES)["serving_recall"]
    assert summary["serving_min_recall"] == score(predictions, CLASSES)["serving_min_recall"]
    per_corpus = [
        np.mean([p[2] == p[4] for p in PREDICTIONS if p[1] == corpus]) for corpus in sorted({p[1] for p in PREDICTIONS})
    ]
    assert summary["corpus_mean_serving_accuracy"] == pytest.approx(np.mean(per_corpus), abs=2 * ROUNDING)
    for corpus, scores in summary["by_corpus"].items():
        assert "serving_recall" in scores


# --- params --------------------------------------------------------------------------------------------------


def _errors(raw) -> str:
    with pytest.raises(ParamsError) as info:
        validate_params(raw)
    return str(info.value)


def test_repo_params_have_a_valid_robustness_section(repo_params):
    section = repo_params.robustness
    assert isinstance(section, RobustnessParams)
    assert set(section.transforms) <= set(CHAIN_TRANSFORMS) and len(set(section.transforms)) == len(section.transforms)
    assert section.clips_per_class >= 0


@pytest.mark.parametrize("name", ["bogus", "gain_-20dB", "telephone ", ""])
def test_an_unknown_transform_is_named(raw_params, name):
    raw_params["robustness"]["transforms"] = ["gain_-20db", name]
    message = _errors(raw_params)
    assert "robustness.transforms.1" in message and repr(name) in message
    for option in CHAIN_TRANSFORMS:
        assert f"'{option}'" in message


def test_a_repeated_transform_is_refused(raw_params):
    raw_params["robustness"]["transforms"] = ["room", "telephone", "room"]
    message = _errors(raw_params)
    assert "robustness" in message and "transforms" in message and "repeat" in message


@pytest.mark.parametrize(("key", "value"), [("clips_per_class", -1), ("seed", -1), ("clips_per_class", 2.5), ("transforms", "room")])
def test_bad_counts_and_seeds_are_named(raw_params, key, value):
    raw_params["robustness"][key] = value
    message = _errors(raw_params)
    assert f"robustness.{key}" in message and f"(got {value!r})" in message


def test_the_section_is_required_and_closed(raw_params):
    extra = {**raw_params, "robustness": {**raw_params["robustness"], "clips": 3}}
    assert "robustness.clips: unknown key" in _errors(extra)
    del raw_params["robustness"]
    assert "robustness: missing" in _errors(raw_params)


def test_every_transform_at_once_zero_clips_and_no_transform_are_accepted(raw_params):
    raw_params["robustness"].update(transforms=list(CHAIN_TRANSFORMS), clips_per_class=0)
    assert validate_params(raw_params).robustness.transforms == list(CHAIN_TRANSFORMS)
    raw_params["robustness"]["transforms"] = []
    assert validate_params(raw_params).robustness.transforms == []


def test_the_chain_registry_is_the_params_transforms():
    assert set(chain.REGISTRY) == set(CHAIN_TRANSFORMS)
    assert chain.TRANSFORMS == CHAIN_TRANSFORMS
    # each gain name runs the gain it names (the registry pairs names and functions by position)
    samples = np.random.default_rng(0).uniform(-0.1, 0.1, SR).astype(np.float32)
    for name, db in (("gain_-30db", -30), ("gain_-20db", -20), ("gain_-10db", -10), ("gain_+6db", 6)):
        np.testing.assert_allclose(chain.apply(name, samples, SR, 0), samples * 10 ** (db / 20), rtol=1e-5)
    assert chain.REGISTRY["room"] is chain.room and chain.REGISTRY["noise_20db"] is chain.noise_20db
    assert chain.REGISTRY["telephone"] is chain.telephone_band and chain.REGISTRY["mp3_32k"] is chain.mp3_32k
