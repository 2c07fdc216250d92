"""Waveform augmentation: what each transform does to length, rate, level and noise; seeding.

Augmented copies of a whole manifest (``featurize_corpus``) are tested in test_featurize.py."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from ser.augment import (
    add_noise,
    apply_gain,
    augment_clip,
    copy_rng,
    pitch_shift,
    time_shift,
    time_stretch,
)
from ser.params import AugmentParams

SR = 16_000
OFF = {"copies": 1, "seed": 0, "noise_snr_db": [], "shift_s": 0.0, "pitch_semitones": 0.0, "tempo": [], "gain_db": 0.0}


def _sha(name: str) -> str:
    """A stand-in for the sha256 of a clip's audio."""
    return hashlib.sha256(name.encode()).hexdigest()


SHA = _sha("clip")


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


def test_copy_rng_depends_on_seed_audio_and_copy():
    draw = lambda *key: copy_rng(*key).uniform(size=4)  # noqa: E731
    a, b = _sha("a"), _sha("b")
    np.testing.assert_array_equal(draw(42, a, 1), draw(42, a, 1))
    for other in [(43, a, 1), (42, b, 1), (42, a, 2), (42, b, 2), (0, a, 1)]:
        assert not np.array_equal(draw(42, a, 1), draw(*other)), other


def test_copy_rng_accepts_any_sha256_and_either_case():
    """The generator is seeded from the digest's value, so hex case does not matter; any digest is usable."""
    for digest in ("0" * 64, "f" * 64, _sha("x")):
        assert copy_rng(2**32 - 1, digest, 64).uniform() >= 0
    np.testing.assert_array_equal(copy_rng(1, SHA.upper(), 1).uniform(size=3), copy_rng(1, SHA, 1).uniform(size=3))


def test_everything_off_returns_the_clip():
    samples = _voice()
    out = augment_clip(samples, SR, _augment(), copy_rng(0, _sha("0"), 1))
    np.testing.assert_array_equal(out, samples)
    assert out.dtype == np.float32


ALL_ON = {"noise_snr_db": [15, 30], "shift_s": 0.05, "pitch_semitones": 2, "tempo": [0.9, 1.1], "gain_db": 6}


def test_augment_clip_is_deterministic_per_seed_audio_and_copy():
    samples = _voice()
    params = _augment(**ALL_ON)
    first = augment_clip(samples, SR, params, copy_rng(7, _sha("2"), 1))
    again = augment_clip(samples.copy(), SR, params, copy_rng(7, _sha("2"), 1))
    np.testing.assert_array_equal(first, again)
    other_copy = augment_clip(samples, SR, params, copy_rng(7, _sha("2"), 2))
    other_audio = augment_clip(samples, SR, params, copy_rng(7, _sha("3"), 1))
    other_seed = augment_clip(samples, SR, params, copy_rng(8, _sha("2"), 1))
    for other in (other_copy, other_audio, other_seed):
        assert len(other) != len(first) or not np.array_equal(other, first)
    assert not np.array_equal(first[: len(samples)], samples[: len(first)])


def test_augment_clip_does_not_modify_its_input():
    samples = _voice()
    before = samples.copy()
    augment_clip(samples, SR, _augment(**ALL_ON), copy_rng(0, _sha("0"), 1))
    np.testing.assert_array_equal(samples, before)


@pytest.mark.parametrize("copy", range(1, 6))
def test_tempo_alone_changes_the_length_within_the_range(copy):
    samples = _voice()
    out = augment_clip(samples, SR, _augment(tempo=[0.8, 1.25]), copy_rng(0, _sha("0"), copy))
    assert len(samples) / 1.25 - 1 <= len(out) <= len(samples) / 0.8 + 1
    assert len(out) != len(samples)


@pytest.mark.parametrize(
    "changes", [{"pitch_semitones": 3}, {"shift_s": 0.1}, {"gain_db": 10}, {"noise_snr_db": [10, 20]}],
    ids=["pitch", "shift", "gain", "noise"],
)
@pytest.mark.parametrize("copy", [1, 2, 3])
def test_other_transforms_keep_the_length(changes, copy):
    samples = _voice()
    out = augment_clip(samples, SR, _augment(**changes), copy_rng(0, _sha("5"), copy))
    assert len(out) == len(samples) and out.dtype == np.float32
    assert not np.array_equal(out, samples)


@pytest.mark.parametrize("copy", [1, 2, 3, 4])
def test_shift_alone_is_a_zero_filled_shift_within_the_limit(copy):
    samples = _voice(0.5) + 0.5
    limit = int(0.01 * SR)
    out = augment_clip(samples, SR, _augment(shift_s=0.01), copy_rng(1, _sha("0"), copy))
    matches = [k for k in range(-limit, limit + 1) if np.array_equal(out, time_shift(samples, k))]
    assert len(matches) == 1


@pytest.mark.parametrize("copy", [1, 2, 3, 4])
def test_gain_alone_stays_within_the_range(copy):
    samples = _voice()
    out = augment_clip(samples, SR, _augment(gain_db=4), copy_rng(2, _sha("0"), copy))
    ratio = out.astype(np.float64)[samples != 0] / samples[samples != 0]
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-5)  # one gain for the whole clip
    assert -4 - 1e-4 <= 20 * np.log10(ratio[0]) <= 4 + 1e-4


@pytest.mark.parametrize("copy", [1, 2, 3, 4])
def test_noise_alone_has_an_snr_within_the_range(copy):
    samples = _sine(250.0, seconds=3.0)
    out = augment_clip(samples, SR, _augment(noise_snr_db=[12, 18]), copy_rng(3, _sha("0"), copy))
    snr = _rms_db(samples) - _rms_db(out.astype(np.float64) - samples)
    assert 12 - 0.15 <= snr <= 18 + 0.15


def test_shift_is_capped_by_the_clip_length():
    samples = _voice(0.01) + 0.5  # 160 samples, shift_s allows 5 s
    for copy in range(1, 6):
        out = augment_clip(samples, SR, _augment(shift_s=5.0), copy_rng(0, _sha("0"), copy))
        assert len(out) == len(samples)
