"""Waveform augmentation: what each transform does to length, rate, level and noise; seeding; copies."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ser.audio import load_window
from ser.augment import (
    add_noise,
    apply_gain,
    augment_clip,
    augmented_features,
    copy_rng,
    pitch_shift,
    time_shift,
    time_stretch,
)
from ser.features import INDEX_COLUMNS, feature_shape, featurize, frame_features
from ser.params import AudioParams, AugmentParams, FeatureParams

SR = 16_000
OFF = {"copies": 1, "seed": 0, "noise_snr_db": [], "shift_s": 0.0, "pitch_semitones": 0.0, "tempo": [], "gain_db": 0.0}
AUDIO = AudioParams(sr=SR, offset=0.1, duration=0.8, res_type="soxr_hq")
FEATURES = FeatureParams(kind="mfcc", n_mfcc=13, n_mels=40, n_fft=512, hop_length=256)


def _augment(**changes) -> AugmentParams:
    """Augment params with every transform off except ``changes``."""
    return AugmentParams(**{**OFF, **changes})


def _sine(freq: float = 440.0, seconds: float = 1.0, sr: int = SR, amplitude: float = 0.5) -> np.ndarray:
    return (amplitude * np.sin(2 * np.pi * freq * np.arange(int(sr * seconds)) / sr)).astype(np.float32)


def _voice(seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    """Noise-like, non-periodic test audio (a shifted copy cannot match the original by chance)."""
    rng = np.random.default_rng(seed)
    return (0.3 * rng.standard_normal(int(SR * seconds)) * np.hanning(int(SR * seconds))).astype(np.float32)


def _peak_hz(samples: np.ndarray, sr: int = SR) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / sr)[np.argmax(spectrum)])


def _rms_db(samples: np.ndarray) -> float:
    return 10 * np.log10(np.mean(np.asarray(samples, np.float64) ** 2))


# --- single transforms -------------------------------------------------------------------------------


@pytest.mark.parametrize("factor", [0.8, 0.9, 1.15, 1.25])
def test_time_stretch_length_is_len_over_factor_and_pitch_is_kept(factor):
    samples = _sine(440.0)
    out = time_stretch(samples, factor)
    assert abs(len(out) - len(samples) / factor) <= 1
    # same pitch at the same sample rate
    assert _peak_hz(out) == pytest.approx(440.0, abs=3.0)


def test_time_stretch_by_one_is_the_identity():
    samples = _voice()
    np.testing.assert_array_equal(time_stretch(samples, 1.0), samples)


@pytest.mark.parametrize("semitones", [-3.0, 2.0, 12.0])
def test_pitch_shift_keeps_length_and_moves_the_pitch(semitones):
    samples = _sine(440.0)
    out = pitch_shift(samples, SR, semitones)
    assert len(out) == len(samples)
    # at the same sample rate, the tone is now ``semitones`` away
    assert _peak_hz(out) == pytest.approx(440.0 * 2 ** (semitones / 12), rel=0.02)


def test_pitch_shift_by_zero_is_the_identity():
    samples = _voice()
    np.testing.assert_array_equal(pitch_shift(samples, SR, 0.0), samples)


@pytest.mark.parametrize("shift", [0, 1, 37, 999, -1, -37, -999])
def test_time_shift_fills_with_zeros_and_keeps_length(shift):
    samples = _voice(0.1) + 0.5  # no zeros in the input, so filled zeros show
    out = time_shift(samples, shift)
    assert len(out) == len(samples) and out.dtype == samples.dtype
    if shift >= 0:
        np.testing.assert_array_equal(out[:shift], 0)
        np.testing.assert_array_equal(out[shift:], samples[: len(samples) - shift])
    else:
        np.testing.assert_array_equal(out[shift:], 0)
        np.testing.assert_array_equal(out[:shift], samples[-shift:])
    assert np.count_nonzero(out == 0) == abs(shift)


@pytest.mark.parametrize("gain_db", [-6.0, -0.5, 0.0, 3.0, 12.0])
def test_apply_gain_in_db(gain_db):
    samples = _voice()
    out = apply_gain(samples, gain_db)
    assert out.shape == samples.shape and out.dtype == np.float32
    assert _rms_db(out) - _rms_db(samples) == pytest.approx(gain_db, abs=1e-4)
    np.testing.assert_allclose(out, samples * 10 ** (gain_db / 20), rtol=1e-6)


@pytest.mark.parametrize("snr_db", [-5.0, 0.0, 10.0, 25.0, 40.0])
def test_add_noise_at_the_requested_snr(snr_db):
    samples = _sine(300.0, seconds=4.0)
    out = add_noise(samples, snr_db, np.random.default_rng(1))
    assert out.shape == samples.shape and out.dtype == np.float32
    noise = out.astype(np.float64) - samples
    assert _rms_db(samples) - _rms_db(noise) == pytest.approx(snr_db, abs=0.1)
    # white: flat spectrum, mean zero
    assert abs(noise.mean()) < 0.05 * noise.std()


def test_add_noise_to_silence_stays_silent_and_finite():
    out = add_noise(np.zeros(1000, np.float32), 20.0, np.random.default_rng(0))
    np.testing.assert_array_equal(out, 0)


# --- one augmented copy ------------------------------------------------------------------------------


def test_copy_rng_depends_on_seed_row_and_copy():
    draw = lambda *key: copy_rng(*key).uniform(size=4)  # noqa: E731
    np.testing.assert_array_equal(draw(42, 3, 1), draw(42, 3, 1))
    for other in [(43, 3, 1), (42, 4, 1), (42, 3, 2), (42, 1, 3)]:
        assert not np.array_equal(draw(42, 3, 1), draw(*other)), other


def test_everything_off_returns_the_clip():
    samples = _voice()
    out = augment_clip(samples, SR, _augment(), copy_rng(0, 0, 1))
    np.testing.assert_array_equal(out, samples)
    assert out.dtype == np.float32


ALL_ON = {"noise_snr_db": [15, 30], "shift_s": 0.05, "pitch_semitones": 2, "tempo": [0.9, 1.1], "gain_db": 6}


def test_augment_clip_is_deterministic_per_seed_row_and_copy():
    samples = _voice()
    params = _augment(**ALL_ON)
    first = augment_clip(samples, SR, params, copy_rng(7, 2, 1))
    again = augment_clip(samples.copy(), SR, params, copy_rng(7, 2, 1))
    np.testing.assert_array_equal(first, again)
    other_copy = augment_clip(samples, SR, params, copy_rng(7, 2, 2))
    other_row = augment_clip(samples, SR, params, copy_rng(7, 3, 1))
    other_seed = augment_clip(samples, SR, params, copy_rng(8, 2, 1))
    for other in (other_copy, other_row, other_seed):
        assert len(other) != len(first) or not np.array_equal(other, first)
    assert not np.array_equal(first[: len(samples)], samples[: len(first)])


def test_augment_clip_does_not_modify_its_input():
    samples = _voice()
    before = samples.copy()
    augment_clip(samples, SR, _augment(**ALL_ON), copy_rng(0, 0, 1))
    np.testing.assert_array_equal(samples, before)


@pytest.mark.parametrize("copy", range(1, 6))
def test_tempo_alone_changes_the_length_within_the_range(copy):
    samples = _voice()
    out = augment_clip(samples, SR, _augment(tempo=[0.8, 1.25]), copy_rng(0, 0, copy))
    assert len(samples) / 1.25 - 1 <= len(out) <= len(samples) / 0.8 + 1
    assert len(out) != len(samples)


@pytest.mark.parametrize(
    "changes", [{"pitch_semitones": 3}, {"shift_s": 0.1}, {"gain_db": 10}, {"noise_snr_db": [10, 20]}],
    ids=["pitch", "shift", "gain", "noise"],
)
@pytest.mark.parametrize("copy", [1, 2, 3])
def test_other_transforms_keep_the_length(changes, copy):
    samples = _voice()
    out = augment_clip(samples, SR, _augment(**changes), copy_rng(0, 5, copy))
    assert len(out) == len(samples) and out.dtype == np.float32
    assert not np.array_equal(out, samples)


@pytest.mark.parametrize("copy", [1, 2, 3, 4])
def test_shift_alone_is_a_zero_filled_shift_within_the_limit(copy):
    samples = _voice(0.5) + 0.5
    limit = int(0.01 * SR)
    out = augment_clip(samples, SR, _augment(shift_s=0.01), copy_rng(1, 0, copy))
    matches = [k for k in range(-limit, limit + 1) if np.array_equal(out, time_shift(samples, k))]
    assert len(matches) == 1


@pytest.mark.parametrize("copy", [1, 2, 3, 4])
def test_gain_alone_stays_within_the_range(copy):
    samples = _voice()
    out = augment_clip(samples, SR, _augment(gain_db=4), copy_rng(2, 0, copy))
    ratio = out.astype(np.float64)[samples != 0] / samples[samples != 0]
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-5)  # one gain for the whole clip
    assert -4 - 1e-4 <= 20 * np.log10(ratio[0]) <= 4 + 1e-4


@pytest.mark.parametrize("copy", [1, 2, 3, 4])
def test_noise_alone_has_an_snr_within_the_range(copy):
    samples = _sine(250.0, seconds=3.0)
    out = augment_clip(samples, SR, _augment(noise_snr_db=[12, 18]), copy_rng(3, 0, copy))
    snr = _rms_db(samples) - _rms_db(out.astype(np.float64) - samples)
    assert 12 - 0.15 <= snr <= 18 + 0.15


def test_shift_is_capped_by_the_clip_length():
    samples = _voice(0.01) + 0.5  # 160 samples, shift_s allows 5 s
    for copy in range(1, 6):
        out = augment_clip(samples, SR, _augment(shift_s=5.0), copy_rng(0, 0, copy))
        assert len(out) == len(samples)


# --- augmented copies of a manifest --------------------------------------------------------------------


@pytest.fixture
def corpus(tmp_path, write_tone):
    """(raw_dir, manifest) of four short synthetic clips."""
    raw = tmp_path / "raw"
    rows = []
    for i, (speaker, word, emotion) in enumerate(
        [("OAF", "back", "angry"), ("OAF", "bar", "sad"), ("YAF", "back", "ps"), ("YAF", "dog", "fear")]
    ):
        file = f"audio/{speaker}_{word}_{emotion}.wav"
        write_tone(raw / file, sr=SR, seconds=0.6 + 0.2 * i, f0=150.0 + 40 * i, seed=i)
        rows.append({"file": file, "speaker": speaker, "word": word, "emotion": emotion})
    return raw, pd.DataFrame(rows)


def test_augmented_features_rows_and_columns(corpus):
    raw, manifest = corpus
    params = _augment(copies=2, seed=3, gain_db=6, noise_snr_db=[10, 30], tempo=[0.9, 1.1])
    values, index = augmented_features(manifest, raw, AUDIO, FEATURES, params)
    n = len(manifest)
    assert values.shape == (2 * n, *feature_shape(AUDIO, FEATURES))
    assert values.dtype == np.float32
    assert list(index.columns) == [*INDEX_COLUMNS, "source", "copy"]
    assert index["copy"].tolist() == [1] * n + [2] * n
    assert index["source"].tolist() == list(range(n)) * 2
    for column in ("file", "speaker", "word", "emotion"):
        assert index[column].tolist() == manifest[column].tolist() * 2
    originals, _ = featurize(manifest, raw, AUDIO, FEATURES)
    for row in range(2 * n):
        source, copy = index.loc[row, "source"], index.loc[row, "copy"]
        samples = load_window(raw / manifest.loc[source, "file"], AUDIO)
        expected, valid = frame_features(
            augment_clip(samples, AUDIO.sr, params, copy_rng(params.seed, source, copy)), AUDIO, FEATURES
        )
        np.testing.assert_array_equal(values[row], expected)
        assert index.loc[row, "valid_frames"] == valid
        assert not np.allclose(values[row], originals[source], atol=1e-2)
    assert not np.allclose(values[0], values[n], atol=1e-2)  # copies 1 and 2 of one clip differ


def test_augmented_features_are_byte_identical_when_rerun(corpus):
    raw, manifest = corpus
    params = _augment(copies=2, seed=5, **ALL_ON)
    values, index = augmented_features(manifest, raw, AUDIO, FEATURES, params)
    again, again_index = augmented_features(manifest, raw, AUDIO, FEATURES, params)
    assert values.tobytes() == again.tobytes()
    pd.testing.assert_frame_equal(index, again_index)
    other, _ = augmented_features(manifest, raw, AUDIO, FEATURES, params.model_copy(update={"seed": 6}))
    assert values.tobytes() != other.tobytes()


def test_a_copy_depends_only_on_its_row_not_on_the_other_clips(corpus):
    raw, manifest = corpus
    params = _augment(copies=2, seed=1, gain_db=6, noise_snr_db=[10, 30], shift_s=0.05)
    values, index = augmented_features(manifest, raw, AUDIO, FEATURES, params)
    head, head_index = augmented_features(manifest.iloc[:2], raw, AUDIO, FEATURES, params)
    rows = index["source"].lt(2).to_numpy()
    np.testing.assert_array_equal(head, values[rows])
    assert head_index["file"].tolist() == index.loc[rows, "file"].tolist()


def test_no_copies(corpus):
    raw, manifest = corpus
    values, index = augmented_features(manifest, raw, AUDIO, FEATURES, _augment(copies=0, **ALL_ON))
    assert values.shape == (0, *feature_shape(AUDIO, FEATURES))
    assert len(index) == 0
    assert list(index.columns) == [*INDEX_COLUMNS, "source", "copy"]


def test_copies_with_every_transform_off_equal_the_originals(corpus):
    raw, manifest = corpus
    values, index = augmented_features(manifest, raw, AUDIO, FEATURES, _augment(copies=2))
    originals, original_index = featurize(manifest, raw, AUDIO, FEATURES)
    np.testing.assert_array_equal(values, np.concatenate([originals, originals]))
    assert index["valid_frames"].tolist() == original_index["valid_frames"].tolist() * 2


def test_faster_tempo_gives_fewer_real_frames(tmp_path, write_tone):
    """A clip sped up beyond the window keeps the shape, with fewer real frames (the rest zero-padded)."""
    raw = tmp_path / "raw"
    write_tone(raw / "OAF_back_sad.wav", sr=SR, seconds=AUDIO.offset + AUDIO.duration)
    manifest = pd.DataFrame([{"file": "OAF_back_sad.wav", "speaker": "OAF", "word": "back", "emotion": "sad"}])
    _, original = featurize(manifest, raw, AUDIO, FEATURES)
    values, index = augmented_features(manifest, raw, AUDIO, FEATURES, _augment(copies=1, tempo=[1.5, 2.0]))
    assert values.shape[1:] == feature_shape(AUDIO, FEATURES)
    assert index.loc[0, "valid_frames"] < original.loc[0, "valid_frames"]
