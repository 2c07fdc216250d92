"""Waveform augmentation: what each transform does to length, rate, level, noise, room, band and codec;
seeding; the augment section's validation.

Augmented copies of a whole manifest (``featurize_corpus``) are tested in test_featurize.py."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from ser.augment import (
    MP3_RATES,
    add_noise,
    apply_gain,
    augment_clip,
    copy_rng,
    mp3_round_trip,
    pitch_shift,
    reverberate,
    telephone,
    time_shift,
    time_stretch,
)
from ser.params import AugmentParams, validate_params
from test_params import _errors, _names_key

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


# --- realistic recording: reverberation, telephone band, MP3 codec -----------------------------------


def _burst(seconds: float = 1.0, start_s: float = 0.1, burst_s: float = 0.01, sr: int = SR) -> np.ndarray:
    """Silence, a short 1 kHz tone burst at ``start_s``, then silence to the end."""
    out = np.zeros(int(sr * seconds), np.float32)
    start = int(sr * start_s)
    out[start : start + int(sr * burst_s)] = _sine(1000.0, burst_s, sr)
    return out


def _lag(out: np.ndarray, samples: np.ndarray) -> int:
    """The lag (samples) at which ``out`` best matches ``samples``: > 0 when ``out`` is late."""
    correlation = np.correlate(np.asarray(out, np.float64), np.asarray(samples, np.float64), "full")
    return int(np.argmax(correlation)) - (len(samples) - 1)


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(np.asarray(a, np.float64), np.asarray(b, np.float64))[0, 1])


@pytest.mark.parametrize("rt60", [0.01, 0.3, 1.0, 5.0])
@pytest.mark.parametrize("signal", ["voice", "sine", "burst"])
def test_reverberate_keeps_length_dtype_and_rms(rt60, signal):
    samples = {"voice": _voice, "sine": _sine, "burst": _burst}[signal]()
    out = reverberate(samples, SR, rt60, np.random.default_rng(0))
    assert out.shape == samples.shape and out.dtype == np.float32
    assert np.all(np.isfinite(out))
    assert np.sqrt(np.mean(out.astype(np.float64) ** 2)) == pytest.approx(
        np.sqrt(np.mean(samples.astype(np.float64) ** 2)), rel=0.01
    )
    assert not np.allclose(out, samples, atol=1e-3)


def test_reverberate_returns_float32_for_float64_input():
    out = reverberate(_voice().astype(np.float64), SR, 0.3, np.random.default_rng(0))
    assert out.dtype == np.float32


def test_reverberate_is_deterministic_for_a_seeded_rng():
    samples = _voice()
    first = reverberate(samples, SR, 0.5, np.random.default_rng(3))
    np.testing.assert_array_equal(first, reverberate(samples.copy(), SR, 0.5, np.random.default_rng(3)))
    assert not np.array_equal(first, reverberate(samples, SR, 0.5, np.random.default_rng(4)))


def test_reverberate_does_not_modify_its_input():
    samples = _voice()
    before = samples.copy()
    reverberate(samples, SR, 0.5, np.random.default_rng(0))
    np.testing.assert_array_equal(samples, before)


def test_reverberate_is_causal():
    """Nothing before the burst: the room response starts with the direct path."""
    samples = _burst(start_s=0.1)
    out = reverberate(samples, SR, 1.0, np.random.default_rng(0))
    assert np.max(np.abs(out[: int(0.1 * SR)])) < 1e-6 * np.max(np.abs(out))


def test_longer_rt60_leaves_more_energy_after_the_burst():
    """A 10 ms burst at 0.1 s: the share of energy after 0.2 s grows with the RT60."""
    samples = _burst(start_s=0.1, burst_s=0.01)
    tail = int(0.2 * SR)
    assert np.sum(samples[tail:] ** 2) == 0

    def tail_share(rt60: float) -> float:
        out = reverberate(samples, SR, rt60, np.random.default_rng(0)).astype(np.float64)
        return float(np.sum(out[tail:] ** 2) / np.sum(out**2))

    short, medium, long = tail_share(0.1), tail_share(0.3), tail_share(1.0)
    assert short < 1e-4  # 90 ms after the burst, a 0.1 s room has decayed by about 54 dB
    assert long > 0.05
    assert short < medium < long
    assert long > 100 * short


def test_reverberate_of_silence_is_silence():
    out = reverberate(np.zeros(SR // 10, np.float32), SR, 0.5, np.random.default_rng(0))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, 0)


def _band_loss_db(freq: float, sr: int) -> float:
    """Level change (dB) of a tone through ``telephone``, after the filter's start-up (first 0.2 s)."""
    samples = _sine(freq, sr=sr)
    out = telephone(samples, sr)
    assert out.shape == samples.shape and out.dtype == np.float32
    start = int(0.2 * sr)
    return _rms_db(out[start:]) - _rms_db(samples[start:])


@pytest.mark.parametrize("freq", [50.0, 100.0, 6000.0, 7000.0])
def test_telephone_attenuates_outside_the_band(freq):
    assert _band_loss_db(freq, SR) < -20


@pytest.mark.parametrize("freq", [500.0, 1000.0, 2000.0])
def test_telephone_keeps_the_band(freq):
    assert _band_loss_db(freq, SR) == pytest.approx(0.0, abs=1.0)


def test_telephone_is_deterministic_and_keeps_the_input():
    samples = _voice()
    before = samples.copy()
    np.testing.assert_array_equal(telephone(samples, SR), telephone(samples, SR))
    np.testing.assert_array_equal(samples, before)


@pytest.mark.parametrize("sr", [8000, 7000])
def test_telephone_below_16k_caps_the_band_below_nyquist(sr):
    """At 8 kHz the 3400 Hz edge is kept; at 7 kHz it is capped at 0.45 * sr (3150 Hz)."""
    assert _band_loss_db(1000.0, sr) == pytest.approx(0.0, abs=1.0)
    assert _band_loss_db(100.0, sr) < -20
    assert _band_loss_db(0.49 * sr, sr) < -20
    out = telephone(_voice(), sr)
    assert np.all(np.isfinite(out)) and out.dtype == np.float32


MP3_RATES = [8000, 11025, 16000, 22050, 44100, 48000]


@pytest.mark.parametrize("sr", MP3_RATES)
@pytest.mark.parametrize("n", [1, 100, 1152, 12_345])
def test_mp3_round_trip_keeps_length_and_dtype(sr, n):
    samples = (0.3 * np.random.default_rng(n).standard_normal(n)).astype(np.float32)
    out = mp3_round_trip(samples, sr, 0.5)
    assert out.shape == samples.shape and out.dtype == np.float32
    assert np.all(np.isfinite(out))


def test_mp3_round_trip_returns_float32_for_float64_input():
    assert mp3_round_trip(_voice().astype(np.float64), SR, 0.5).dtype == np.float32


@pytest.mark.parametrize("quality", [0.0, 0.5, 0.9])
@pytest.mark.parametrize("sr", [8000, SR, 44100])
def test_mp3_round_trip_of_a_tone_is_close_to_it(quality, sr):
    """No codec delay to allow for: libsndfile trims the encoder's delay and padding."""
    samples = _sine(440.0, sr=sr)
    out = mp3_round_trip(samples, sr, quality)
    assert _correlation(out, samples) > 0.99
    assert _rms_db(out) - _rms_db(samples) == pytest.approx(0.0, abs=1.0)


@pytest.mark.parametrize("sr", [8000, SR, 44100])
def test_mp3_round_trip_adds_no_delay(sr):
    """Noise-like audio (a tone's correlation is periodic): the best match is at lag 0."""
    samples = (0.3 * np.random.default_rng(0).standard_normal(sr // 2)).astype(np.float32)
    assert _lag(mp3_round_trip(samples, sr, 0.5), samples) == 0


def test_mp3_round_trip_is_lossy_and_lower_quality_is_worse():
    samples = _voice()
    best, worst = mp3_round_trip(samples, SR, 0.0), mp3_round_trip(samples, SR, 0.9)
    assert not np.array_equal(best, samples)
    assert 0.5 < _correlation(worst, samples) < _correlation(best, samples) < 1.0


def test_mp3_round_trip_is_deterministic():
    samples = _voice()
    np.testing.assert_array_equal(mp3_round_trip(samples, SR, 0.7), mp3_round_trip(samples.copy(), SR, 0.7))


@pytest.mark.parametrize("sr", [1000, 4000, 7999])
def test_mp3_round_trip_below_8k_returns_the_input(sr):
    samples = _voice()
    out = mp3_round_trip(samples, sr, 0.5)
    np.testing.assert_array_equal(out, samples)
    assert out.dtype == samples.dtype


def test_mp3_round_trip_of_nothing_is_nothing():
    assert len(mp3_round_trip(np.zeros(0, np.float32), SR, 0.5)) == 0


@pytest.mark.parametrize("quality", [0.0, 0.9999, 0.99995, 1.0])
def test_mp3_round_trip_accepts_the_whole_quality_range(quality):
    """The docstring's range is 0 (best) to 1 (worst), and augment_clip draws from [0.5, 1)."""
    samples = _voice(0.2)
    out = mp3_round_trip(samples, SR, quality)
    assert out.shape == samples.shape and out.dtype == np.float32


@pytest.mark.parametrize("sr", [9000, 10_000, 24_414, 96_000])
def test_mp3_round_trip_at_rates_mp3_lacks(sr):
    """audio.sr may be any rate in [1000, 192000]; MPEG has only nine rates from 8 kHz up. A rate it
    lacks must not stop augmentation (whether the codec is then skipped or resampled around)."""
    samples = (0.3 * np.random.default_rng(0).standard_normal(sr // 4)).astype(np.float32)
    out = mp3_round_trip(samples, sr, 0.5)
    assert out.shape == samples.shape and out.dtype == np.float32


# --- the realistic transforms in augment_clip --------------------------------------------------------

REALISTIC_OFF = {"reverb_prob": 0.0, "telephone_prob": 0.0, "codec_prob": 0.0, "reverb_rt60_s": [0.1, 3.0]}
REALISTIC_ON = {"reverb_prob": 1.0, "telephone_prob": 1.0, "codec_prob": 1.0, "reverb_rt60_s": [0.2, 0.8]}


def test_realistic_transforms_default_to_off():
    params = _augment()
    assert (params.reverb_prob, params.telephone_prob, params.codec_prob) == (0.0, 0.0, 0.0)
    assert params.reverb_rt60_s == [0.2, 0.8]


@pytest.mark.parametrize("copy", [1, 2, 3])
@pytest.mark.parametrize("base", [{}, ALL_ON], ids=["alone", "all_on"])
def test_realistic_transforms_at_probability_zero_leave_the_old_behaviour(base, copy):
    """Probability 0 draws nothing: the copy is exactly the one without these params (same rng)."""
    samples = _voice()
    old = augment_clip(samples, SR, _augment(**base), copy_rng(4, _sha("6"), copy))
    new = augment_clip(samples, SR, _augment(**base, **REALISTIC_OFF), copy_rng(4, _sha("6"), copy))
    np.testing.assert_array_equal(new, old)
    assert new.dtype == old.dtype


@pytest.mark.parametrize("copy", [1, 2, 3])
def test_reverb_prob_one_reverberates(copy):
    samples = _voice()
    out = augment_clip(samples, SR, _augment(reverb_prob=1.0, reverb_rt60_s=[0.3, 0.6]), copy_rng(0, _sha("7"), copy))
    assert out.shape == samples.shape and out.dtype == np.float32
    assert not np.allclose(out, samples, atol=1e-3)
    assert _rms_db(out) == pytest.approx(_rms_db(samples), abs=0.1)


@pytest.mark.parametrize("copy", [1, 2])
def test_telephone_prob_one_is_the_telephone_band(copy):
    samples = _voice()
    out = augment_clip(samples, SR, _augment(telephone_prob=1.0), copy_rng(0, _sha("7"), copy))
    assert not np.allclose(out, samples, atol=1e-3)
    np.testing.assert_array_equal(out, telephone(samples, SR))


@pytest.mark.parametrize("copy", [1, 2, 3])
def test_codec_prob_one_is_a_lossy_round_trip(copy):
    samples = _voice()
    out = augment_clip(samples, SR, _augment(codec_prob=1.0), copy_rng(0, _sha("7"), copy))
    assert out.shape == samples.shape and out.dtype == np.float32
    assert not np.allclose(out, samples, atol=1e-3)
    assert _correlation(out, samples) > 0.5


def test_codec_prob_one_below_8k_leaves_the_clip():
    samples = _voice()
    out = augment_clip(samples, 4000, _augment(codec_prob=1.0), copy_rng(0, _sha("7"), 1))
    np.testing.assert_array_equal(out, samples)


def test_telephone_prob_is_a_share_of_copies():
    samples = _voice(0.25)
    band = telephone(samples, SR)
    params = _augment(telephone_prob=0.5)
    outs = [augment_clip(samples, SR, params, copy_rng(0, _sha("8"), copy)) for copy in range(1, 21)]
    filtered = sum(np.array_equal(out, band) for out in outs)
    unchanged = sum(np.array_equal(out, samples) for out in outs)
    assert filtered + unchanged == len(outs)
    assert 3 <= filtered <= 17


def test_realistic_transforms_are_deterministic_per_seed_audio_and_copy():
    samples = _voice(0.5)
    params = _augment(**ALL_ON, **REALISTIC_ON)
    first = augment_clip(samples, SR, params, copy_rng(7, _sha("2"), 1))
    np.testing.assert_array_equal(first, augment_clip(samples.copy(), SR, params, copy_rng(7, _sha("2"), 1)))
    for other in (copy_rng(7, _sha("2"), 2), copy_rng(8, _sha("2"), 1)):
        out = augment_clip(samples, SR, params, other)
        assert len(out) != len(first) or not np.array_equal(out, first)


def test_realistic_transforms_do_not_modify_the_input():
    samples = _voice(0.5)
    before = samples.copy()
    augment_clip(samples, SR, _augment(**REALISTIC_ON), copy_rng(0, _sha("0"), 1))
    np.testing.assert_array_equal(samples, before)


def test_codec_in_augment_clip_survives_the_top_of_its_quality_range():
    """augment_clip draws the MP3 quality from uniform(0.5, 1.0); with seed 1512 (clip "clip", copy 1)
    the draw is 0.99994..., which libsndfile (LAME's VBR quality <= 9.999) refuses."""
    samples = _voice(0.2)
    out = augment_clip(samples, SR, _augment(codec_prob=1.0), copy_rng(1512, SHA, 1))
    assert out.shape == samples.shape and out.dtype == np.float32


# --- validation of the realistic transforms' params (as test_params.py) ------------------------------


PROBABILITIES = ["reverb_prob", "telephone_prob", "codec_prob"]


@pytest.mark.parametrize("key", PROBABILITIES)
@pytest.mark.parametrize("value", [-0.1, -1, 1.01, 2, float("nan"), "often"])
def test_augment_probabilities_outside_0_1_are_rejected(raw_params, key, value):
    raw_params["augment"][key] = value
    message = _errors(raw_params)
    assert _names_key(message, f"augment.{key}"), message
    assert all(other not in message for other in PROBABILITIES if other != key), message


@pytest.mark.parametrize("key", PROBABILITIES)
@pytest.mark.parametrize("value", [0, 0.0, 0.25, 1, 1.0])
def test_augment_probabilities_in_0_1_are_accepted(raw_params, key, value):
    raw_params["augment"][key] = value
    assert getattr(validate_params(raw_params).augment, key) == value


@pytest.mark.parametrize(
    "value",
    [
        [0.8, 0.2],  # low > high
        [0.005, 0.5], [0.0, 0.5], [-0.1, 0.5], [0.2, 5.5], [6.0, 7.0],  # outside [0.01, 5]
        [0.2], [], [0.2, 0.4, 0.8],  # wrong length
        [float("nan"), float("nan")], [0.2, float("nan")],
        0.5, "long",
    ],
)
def test_reverb_rt60_is_rejected_unless_low_high_in_range(raw_params, value):
    raw_params["augment"]["reverb_rt60_s"] = value
    message = _errors(raw_params)
    assert _names_key(message, "augment.reverb_rt60_s"), message


@pytest.mark.parametrize("value", [[0.01, 5.0], [0.5, 0.5], [0.2, 0.8], [0.01, 0.01], [5, 5]])
def test_reverb_rt60_in_range_is_accepted(raw_params, value):
    raw_params["augment"]["reverb_rt60_s"] = value
    assert validate_params(raw_params).augment.reverb_rt60_s == value


def test_realistic_params_may_be_left_out_of_params_yaml(raw_params):
    for key in (*PROBABILITIES, "reverb_rt60_s"):
        raw_params["augment"].pop(key, None)
    augment = validate_params(raw_params).augment
    assert (augment.reverb_prob, augment.telephone_prob, augment.codec_prob) == (0.0, 0.0, 0.0)
    assert augment.reverb_rt60_s == [0.2, 0.8]
