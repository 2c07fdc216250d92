"""openSMILE functionals of a clip (``features.functionals``): sizes, values, padding, several sets at
once, the cache key, and the ``functionals_<set>.npy`` files that featurize writes, one per set.

Every signal is synthetic and short; featurize runs inline (one worker) without a cache unless a test
passes its own cache directory under tmp_path.
"""

from __future__ import annotations

import gc
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import make_tone
from ser.audio import AudioError, load_window
from ser.features import FEATURES_FILE, FUNCTIONALS_FILE, INDEX_FILE, load_functionals
from ser.fetch import sha256_of
from ser.functionals import FEATURE_SETS, MIN_SECONDS, SIZES, extractor, functional_sets, functionals
from ser.featurize import FeatureCache, FeaturizeError, Settings, featurize_corpus
from ser.params import AudioParams, AugmentParams, FeatureParams, FeaturizeRuntime
from ser.tables import read_clips

SR = 16_000
AUDIO = AudioParams(sr=SR, offset=0.1, duration=0.8, res_type="soxr_hq")
AUGMENT = AugmentParams(copies=1, seed=3, noise_snr_db=[10.0, 30.0], shift_s=0.0, pitch_semitones=0.0, tempo=[], gain_db=3.0)
MANIFEST_COLUMNS = ["file", "source", "corpus", "speaker", "text", "label", "sha256", "emotion"]


def feature_params(sets: tuple[str, ...] = ("egemaps",)) -> FeatureParams:
    return FeatureParams(kind="mfcc", n_mfcc=13, n_mels=40, n_fft=512, hop_length=256, functionals=list(sets))


def run_params(cache: str | Path = "") -> FeaturizeRuntime:
    return FeaturizeRuntime(workers=1, scheduler="", batch_size=2, cache=str(cache), cache_limit_gb=1.0)


@pytest.fixture(autouse=True)
def _no_user_cache(tmp_path, monkeypatch):
    """``~`` is a temporary directory: nothing here can touch the user's feature cache."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))


def write_corpus(raw: Path, write_tone, clips: list[tuple[str, str, float, float]]) -> pd.DataFrame:
    """Write ``(speaker, text, seconds, f0)`` clips under ``raw`` and return their manifest (the columns
    featurize reads)."""
    rows = []
    for speaker, text, seconds, f0 in clips:
        source = f"{speaker}_sad/{speaker}_{text}_sad.wav"
        file = f"tess/audio/{source}"
        write_tone(raw / file, sr=SR, seconds=seconds, f0=f0, seed=int(f0))
        rows.append({"file": file, "source": source, "corpus": "tess", "speaker": f"tess/{speaker}", "text": text,
                     "label": "sad", "sha256": sha256_of(raw / file), "emotion": "sad"})
    return pd.DataFrame(rows, columns=MANIFEST_COLUMNS)


CLIPS = [("OAF", "back", 0.7, 150.0), ("YAF", "dog", 1.0, 240.0), ("OAF", "bar", 0.15, 190.0)]
"""The last clip is 0.05 s long after the 0.1 s offset: shorter than MIN_SECONDS, so padded."""


# --- one window ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["egemaps", "compare"])
def test_functionals_have_the_feature_sets_size_and_are_finite_float32(kind):
    values = functionals(make_tone(SR, 1.0), SR, kind)
    assert values.shape == (SIZES[kind],)
    assert SIZES[kind] == {"egemaps": 88, "compare": 6373}[kind]
    assert values.dtype == np.float32
    assert np.all(np.isfinite(values))
    assert np.count_nonzero(values) > SIZES[kind] // 2  # real descriptors, not a zero vector


def test_no_functionals_is_an_empty_float32_vector():
    values = functionals(make_tone(SR, 1.0), SR, "none")
    assert values.shape == (0,)
    assert values.dtype == np.float32


@pytest.mark.parametrize("kind", ["egemaps", "compare"])
def test_functionals_are_deterministic_and_do_not_change_the_input(kind):
    signal = make_tone(SR, 0.8, seed=4).astype(np.float32)
    before = signal.copy()
    first = functionals(signal, SR, kind)
    second = functionals(signal.copy(), SR, kind)
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(signal, before)


def test_float64_and_float32_samples_give_the_same_functionals():
    signal = make_tone(SR, 0.8, seed=5)
    np.testing.assert_array_equal(functionals(signal, SR, "egemaps"), functionals(signal.astype(np.float32), SR, "egemaps"))


@pytest.mark.parametrize("kind", ["egemaps", "compare"])
def test_other_signals_give_other_functionals(kind):
    low = functionals(make_tone(SR, 1.0, seed=1, f0=120.0), SR, kind)
    high = functionals(make_tone(SR, 1.0, seed=1, f0=280.0), SR, kind)
    quiet = functionals(make_tone(SR, 1.0, seed=1, f0=120.0, amplitude=0.05), SR, kind)
    assert np.count_nonzero(low != high) > SIZES[kind] // 4
    assert np.count_nonzero(low != quiet) > 0


@pytest.mark.parametrize("f0", [150.0, 240.0])
def test_pitch_functional_follows_the_fundamental(f0):
    """eGeMAPS' first functional is the mean F0 in semitones above 27.5 Hz: it finds a clean harmonic
    tone's pitch, so the samples and their rate reach openSMILE as they are."""
    t = np.arange(SR) / SR
    tone = 0.5 * np.sin(2 * np.pi * f0 * t) + 0.2 * np.sin(4 * np.pi * f0 * t)
    values = functionals(tone, SR, "egemaps")
    assert values[0] == pytest.approx(12 * np.log2(f0 / 27.5), abs=0.5)


@pytest.mark.parametrize("seconds", [0.0, 0.01, 0.05, MIN_SECONDS - 1 / SR])
@pytest.mark.parametrize("kind", ["egemaps", "compare"])
def test_windows_shorter_than_the_minimum_are_padded(kind, seconds):
    samples = make_tone(SR, 0.5, seed=2)[: int(round(seconds * SR))]
    values = functionals(samples, SR, kind)
    assert values.shape == (SIZES[kind],)
    assert values.dtype == np.float32
    assert np.all(np.isfinite(values))
    # zero-padding to the minimum is what "padded" means: the explicitly padded window gives the same values
    padded = np.pad(samples.astype(np.float32), (0, int(MIN_SECONDS * SR) - len(samples)))
    np.testing.assert_array_equal(values, functionals(padded, SR, kind))


def test_a_short_window_still_describes_its_signal():
    short = functionals(make_tone(SR, 0.06, seed=1, f0=150.0), SR, "egemaps")
    other = functionals(make_tone(SR, 0.06, seed=1, f0=300.0, amplitude=0.1), SR, "egemaps")
    assert not np.array_equal(short, other)


@pytest.mark.parametrize("sets", [(), ("egemaps",), ("compare",), ("egemaps", "compare"), ("compare", "egemaps")])
def test_functional_sets_give_each_set_by_name(sets):
    signal = make_tone(SR, 0.8, seed=6, f0=170.0)
    described = functional_sets(signal, SR, sets)
    assert list(described) == list(sets)
    for kind in sets:  # each set as it is alone: computing another alongside changes nothing
        assert described[kind].shape == (SIZES[kind],) and described[kind].dtype == np.float32
        np.testing.assert_array_equal(described[kind], functionals(signal, SR, kind))


@pytest.mark.parametrize("kind", ["egemaps", "compare"])
def test_functionals_equal_opensmiles_own_processing_clip_after_clip(kind):
    """The reused openSMILE instance gives what ``Smile.process_signal`` gives, whatever came before."""
    import opensmile

    smile = opensmile.Smile(feature_set=getattr(opensmile.FeatureSet, FEATURE_SETS[kind]), feature_level=opensmile.FeatureLevel.Functionals)
    rng = np.random.default_rng(3)
    signals = [make_tone(SR, 1.2, f0=180), 0.1 * rng.standard_normal(int(0.3 * SR)), make_tone(SR, 2.5, f0=260), make_tone(SR, 1.2, f0=180)]
    for signal in signals:
        expected = smile.process_signal(np.asarray(signal, np.float32), SR).to_numpy(np.float32)[0]
        np.testing.assert_array_equal(functionals(signal, SR, kind), expected)


def test_threads_computing_at_once_get_each_clip_s_own_functionals():
    """Each thread has its own openSMILE instance: parallel requests (the web app) do not mix."""
    signals = [make_tone(SR, 0.8 + 0.1 * k, f0=150 + 20 * k, seed=k) for k in range(6)]
    expected = [functionals(signal, SR, "compare") for signal in signals]
    with ThreadPoolExecutor(6) as pool:
        for _ in range(3):
            for got, want in zip(pool.map(lambda signal: functionals(signal, SR, "compare"), signals), expected):
                np.testing.assert_array_equal(got, want)


def test_a_thread_that_ends_frees_its_openSMILE_instances():
    """The web app's worker threads come and go; each one's extractors died with it, but their native
    openSMILE instances were never freed (about 9 MB each for ComParE: fuzzing the API grew to gigabytes)."""
    instances = []

    def score_one_window() -> None:
        functionals(make_tone(SR, 0.5), SR, "egemaps")
        instances.append(extractor("egemaps", SR).instance)

    worker = threading.Thread(target=score_one_window)
    worker.start()
    worker.join()
    gc.collect()
    assert instances[0]._smileobj is None  # freed


def test_an_extractor_keeps_one_sink_callback_however_many_clips_it_scores():
    """openSMILE's binding keeps every callback it is given (about 27 KB a clip): a long-running server grew."""
    for seconds in (0.5, 0.6, 0.7):
        functionals(make_tone(SR, seconds), SR, "egemaps")
    assert len(extractor("egemaps", SR).instance._callbacks) == 1


def test_full_scale_samples_are_clipped_not_wrapped_around():
    """openSMILE reads 16-bit PCM: a sample at +1.0 becomes the largest positive value, not the most negative."""
    loud = np.clip(make_tone(SR, 1.0, f0=200) * 4, -1.0, 1.0).astype(np.float32)
    assert (loud == 1.0).any()
    largest = np.where(loud == 1.0, np.float32(32767 / 32768), loud)
    np.testing.assert_array_equal(functionals(loud, SR, "egemaps"), functionals(largest, SR, "egemaps"))


@pytest.mark.filterwarnings("ignore:Segment too short")
def test_functional_sets_name_the_clip_when_openSMILE_gives_nothing_usable():
    with pytest.raises(AudioError, match=r"^clip8\.wav: openSMILE ComParE_2016"):
        functional_sets(make_tone(SR, 0.5, channels=2), SR, ["compare"], name="clip8.wav")


@pytest.mark.filterwarnings("ignore:Segment too short")
def test_the_name_is_in_the_error_when_openSMILE_gives_nothing_usable():
    """A window openSMILE cannot describe (here, 2-D samples) fails with the clip's name."""
    with pytest.raises(AudioError, match=r"^clip7\.wav: openSMILE eGeMAPSv02"):
        functionals(make_tone(SR, 0.5, channels=2), SR, "egemaps", name="clip7.wav")


# --- the cache key -------------------------------------------------------------------------------------


def _keys(sets: tuple[str, ...]) -> tuple[str, str]:
    cache = FeatureCache("", 1.0, Settings(AUDIO, feature_params(sets), AUGMENT))
    return cache.key("ab" * 32, 0), cache.key("ab" * 32, 1)


def test_the_cache_key_changes_with_the_functional_sets_but_not_the_copies_key():
    """A clip's cached value holds the functionals of every set computed: other sets, another entry.
    Augmented copies have no functionals: their entries serve any sets."""
    choices = [(), ("egemaps",), ("compare",), ("egemaps", "compare")]
    keys = {sets: _keys(sets) for sets in choices}
    assert len({clip for clip, _ in keys.values()}) == len(choices)
    assert len({copy for _, copy in keys.values()}) == 1
    assert keys[("egemaps", "compare")] == _keys(("egemaps", "compare"))  # and only with them
    for clip, copy in keys.values():
        assert clip.endswith("/" + "ab" * 32 + "/0") and copy.endswith("/" + "ab" * 32 + "/1")


# --- featurize -----------------------------------------------------------------------------------------


def _written_sets(out: Path) -> list[str]:
    """The sets of the ``functionals_<set>.npy`` files under ``out``."""
    prefix, suffix = FUNCTIONALS_FILE.split("{}")
    return sorted(path.name[len(prefix):-len(suffix)] for path in out.glob(FUNCTIONALS_FILE.format("*")))


@pytest.mark.parametrize("sets", [(), ("egemaps",), ("egemaps", "compare")], ids=["none", "egemaps", "both"])
def test_featurize_writes_one_file_of_functionals_per_set(tmp_path, write_tone, sets):
    raw = tmp_path / "raw"
    manifest = write_corpus(raw, write_tone, CLIPS)
    out = tmp_path / "out"
    featurize_corpus(manifest, raw, out, Settings(AUDIO, feature_params(sets), AUGMENT), run_params())
    assert _written_sets(out) == sorted(sets)  # one file per set computed, none for others
    described = load_functionals(out)
    assert list(described) == list(sets)
    assert len(np.load(out / FEATURES_FILE)) == len(read_clips(out / INDEX_FILE)) == len(manifest)
    for kind in sets:
        assert described[kind].shape == (len(manifest), SIZES[kind])
        assert described[kind].dtype == np.float32
        np.testing.assert_array_equal(described[kind], np.load(out / FUNCTIONALS_FILE.format(kind)))
        assert np.all(np.isfinite(described[kind]))
        assert not np.array_equal(described[kind][0], described[kind][1])
        for row, file in enumerate(manifest["file"]):  # manifest order; each row the clip's own window's values
            expected = functionals(load_window(raw / file, AUDIO), SR, kind)
            np.testing.assert_allclose(described[kind][row], expected, rtol=1e-5, atol=1e-5)


def test_featurize_writes_the_widths_of_egemaps_and_compare(tmp_path, write_tone):
    raw = tmp_path / "raw"
    manifest = write_corpus(raw, write_tone, CLIPS[:1])
    featurize_corpus(manifest, raw, tmp_path / "out", Settings(AUDIO, feature_params(("egemaps", "compare")), AUGMENT), run_params())
    described = load_functionals(tmp_path / "out")
    assert {kind: values.shape for kind, values in described.items()} == {"egemaps": (1, 88), "compare": (1, 6373)}


def test_load_functionals_reads_the_sets_that_params_json_names(tmp_path, write_tone):
    """Only the sets featurize computed by its params.json: a stray file of another set is not read."""
    raw = tmp_path / "raw"
    manifest = write_corpus(raw, write_tone, CLIPS[:2])
    out = tmp_path / "out"
    featurize_corpus(manifest, raw, out, Settings(AUDIO, feature_params(("egemaps",)), AUGMENT), run_params())
    np.save(out / FUNCTIONALS_FILE.format("compare"), np.zeros((2, SIZES["compare"]), np.float32))
    assert list(load_functionals(out)) == ["egemaps"]


def test_featurize_functionals_from_the_cache_are_the_computed_ones(tmp_path, write_tone):
    raw = tmp_path / "raw"
    manifest = write_corpus(raw, write_tone, CLIPS[:2])
    cache = tmp_path / "cache"
    egemaps_file = FUNCTIONALS_FILE.format("egemaps")
    settings = Settings(AUDIO, feature_params(("egemaps",)), AUGMENT)
    first = featurize_corpus(manifest, raw, tmp_path / "a", settings, run_params(cache))
    second = featurize_corpus(manifest, raw, tmp_path / "b", settings, run_params(cache))
    assert first.computed == 4 and (second.computed, second.cached) == (0, 4)
    assert (tmp_path / "a" / egemaps_file).read_bytes() == (tmp_path / "b" / egemaps_file).read_bytes()
    # a clip's entry holds its functionals by set; its augmented copies' hold none
    store = FeatureCache(str(cache), 1.0, settings)
    try:
        sha = manifest["sha256"].iloc[0]
        assert list(store.get(sha, 0)[2]) == ["egemaps"] and store.get(sha, 1)[2] == {}
    finally:
        store.close()
    # other sets: the clips' cached entries do not apply (their copies' do), and the files of the new sets are written
    other = featurize_corpus(manifest, raw, tmp_path / "c", Settings(AUDIO, feature_params(()), AUGMENT), run_params(cache))
    assert (other.computed, other.cached) == (2, 2)
    assert _written_sets(tmp_path / "c") == [] and load_functionals(tmp_path / "c") == {}
    both = featurize_corpus(manifest, raw, tmp_path / "d", Settings(AUDIO, feature_params(("egemaps", "compare")), AUGMENT),
                            run_params(cache))
    assert (both.computed, both.cached) == (2, 2)
    assert _written_sets(tmp_path / "d") == ["compare", "egemaps"]
    # eGeMAPS computed alongside ComParE is the same as alone
    assert (tmp_path / "d" / egemaps_file).read_bytes() == (tmp_path / "a" / egemaps_file).read_bytes()
    again = featurize_corpus(manifest, raw, tmp_path / "e", Settings(AUDIO, feature_params(("egemaps", "compare")), AUGMENT),
                             run_params(cache))
    assert (again.computed, again.cached) == (0, 4)
    for kind in ("egemaps", "compare"):
        file = FUNCTIONALS_FILE.format(kind)
        assert (tmp_path / "e" / file).read_bytes() == (tmp_path / "d" / file).read_bytes()


@pytest.mark.parametrize("damage", ["garbage", "header_only", "empty"])
def test_unreadable_audio_is_named_in_the_error(tmp_path, write_tone, damage):
    raw = tmp_path / "raw"
    manifest = write_corpus(raw, write_tone, CLIPS[:2])
    bad = raw / manifest["file"].iloc[1]
    data = bad.read_bytes()
    bad.write_bytes({"garbage": b"RIFF" + b"\x00" * 8 + b"not a wave file" * 8, "header_only": data[:30], "empty": b""}[damage])
    manifest.loc[1, "sha256"] = sha256_of(bad)
    with pytest.raises(FeaturizeError) as info:
        featurize_corpus(manifest, raw, tmp_path / "out", Settings(AUDIO, feature_params(("egemaps",)), AUGMENT), run_params())
    message = str(info.value)
    assert message.startswith("1 clip(s) could not be featurized:")
    assert str(bad) in message
    assert manifest["file"].iloc[0] not in message


def _truncate(path: Path, seconds: float) -> None:
    """Cut a 16-bit mono WAV after ``seconds`` of samples, leaving its header's sizes as they were."""
    data = path.read_bytes()
    path.write_bytes(data[: 44 + 2 * int(seconds * SR)])


def _corpus_with_a_truncated_clip(tmp_path: Path, write_tone, row: int, seconds: float):
    """Two clips written as a corpus, clip ``row`` cut after ``seconds``: its manifest and the cut file."""
    raw = tmp_path / "raw"
    manifest = write_corpus(raw, write_tone, CLIPS[:2])
    cut = raw / manifest["file"].iloc[row]
    _truncate(cut, seconds)
    manifest.loc[row, "sha256"] = sha256_of(cut)
    return manifest, raw, cut


def test_truncated_audio_uses_what_is_left(tmp_path, write_tone):
    """A WAV cut short in its data: the samples left past the offset are used (0.02 s: padded functionals)."""
    manifest, raw, cut = _corpus_with_a_truncated_clip(tmp_path, write_tone, 1, 0.12)
    out = tmp_path / "out"
    featurize_corpus(manifest, raw, out, Settings(AUDIO, feature_params(("egemaps",)), AUGMENT), run_params())
    described = load_functionals(out)["egemaps"]
    assert described.shape == (2, SIZES["egemaps"]) and np.all(np.isfinite(described))
    window = load_window(cut, AUDIO)
    assert len(window) < MIN_SECONDS * SR
    np.testing.assert_allclose(described[1], functionals(window, SR, "egemaps"), rtol=1e-5, atol=1e-5)


def test_truncated_audio_without_samples_past_the_offset_is_named(tmp_path, write_tone):
    manifest, raw, cut = _corpus_with_a_truncated_clip(tmp_path, write_tone, 0, 0.06)
    with pytest.raises(FeaturizeError) as info:
        featurize_corpus(manifest, raw, tmp_path / "out", Settings(AUDIO, feature_params(("egemaps",)), AUGMENT), run_params())
    message = str(info.value)
    assert message.startswith("1 clip(s) could not be featurized:")
    assert f"{cut}: clip is 0.060 s long, not longer than audio.offset=0.1 s" in message
    assert manifest["file"].iloc[1] not in message
