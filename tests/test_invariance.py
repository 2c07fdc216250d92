"""Level normalization (``audio.level_dbfs``) and the microphone's tilt in training copies.

A clip's features must not depend on the microphone's gain: every window is scaled to one active level
before its features, in featurize and in serving alike, so the same clip recorded 20 dB quieter or 6 dB
louder gives the same frame features and functionals (within float rounding).
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from conftest import make_tone
from ser.audio import active_level_db, normalize_level
from ser.augment import augment_clip, tilt
from ser.featurize import ClipTask, Settings, compute_batch
from ser.params import AudioParams, AugmentParams, FeatureParams, ParamsError, validate_params

SR = 16_000
AUDIO = AudioParams(sr=SR, offset=0.1, duration=1.5, res_type="soxr_hq", level_dbfs=-26.0)
FEATURES = FeatureParams(kind="mfcc", n_mfcc=20, n_mels=40, n_fft=512, hop_length=256, functionals=["egemaps"])
NO_COPIES = AugmentParams(copies=0, seed=0, noise_snr_db=[], shift_s=0.0, pitch_semitones=0.0, tempo=[], gain_db=0.0)


def _level(samples: np.ndarray) -> float:
    return active_level_db(samples, SR)


@pytest.mark.parametrize("gain_db", [-40.0, -10.0, 0.0, 6.0])
def test_a_window_is_scaled_to_the_target_active_level(gain_db):
    voice = make_tone(SR, 1.0) * 10 ** (gain_db / 20)
    normalized = normalize_level(voice, SR, -26.0)
    assert _level(normalized) == pytest.approx(-26.0, abs=0.01)
    assert normalized.dtype == np.float32 and len(normalized) == len(voice)


def test_pauses_do_not_lower_the_active_level():
    voice = make_tone(SR, 1.0, amplitude=0.2)
    with_pause = np.concatenate([voice, np.zeros(SR), voice])
    assert _level(with_pause) == pytest.approx(_level(voice), abs=0.5)
    plain_rms = 10 * np.log10(np.mean(with_pause**2))
    assert plain_rms < _level(with_pause) - 1.0  # a plain RMS would count the pause


def test_silence_and_no_target_leave_samples_as_they_are():
    silence = np.zeros(SR, dtype=np.float32)
    assert _level(silence) is None
    np.testing.assert_array_equal(normalize_level(silence, SR, -26.0), silence)
    voice = make_tone(SR, 0.5).astype(np.float32)
    assert normalize_level(voice, SR, None) is voice


def _features(clips: list[np.ndarray], audio: AudioParams = AUDIO) -> list[tuple[np.ndarray, dict]]:
    """Frame features and functionals of each clip through featurize's worker path."""
    tasks = []
    for number, clip in enumerate(clips):
        buffer = io.BytesIO()
        sf.write(buffer, clip, SR, format="WAV", subtype="FLOAT")
        tasks.append(ClipTask(f"clip{number}.wav", f"{number:064d}", (0,), buffer.getvalue()))
    results = compute_batch(tasks, Settings(audio, FEATURES, NO_COPIES))
    return [(result.features[0][0], result.features[0][2]) for result in results]


def test_features_do_not_depend_on_the_gain():
    voice = make_tone(SR, 2.0, amplitude=0.3, f0=210.0)
    (base, base_f), *others = _features([voice, voice * 10 ** (-20 / 20), voice * 10 ** (6 / 20)])
    for frames, described in others:
        np.testing.assert_allclose(frames, base, atol=1e-3)
        np.testing.assert_allclose(described["egemaps"], base_f["egemaps"], rtol=1e-3, atol=1e-3)


def test_without_level_normalization_the_gain_reaches_the_features():
    voice = make_tone(SR, 2.0, amplitude=0.3, f0=210.0)
    (base, _), (quiet, _) = _features([voice, voice * 0.1], AUDIO.model_copy(update={"level_dbfs": None}))
    assert np.abs(quiet[:, 0] - base[:, 0]).max() > 10  # c0 follows the level


def test_tilt_brightens_or_dulls_and_training_copies_draw_it():
    noise = np.random.default_rng(0).standard_normal(SR).astype(np.float32) * 0.1
    spectrum = lambda x: np.abs(np.fft.rfft(x)) ** 2  # noqa: E731
    freqs = np.fft.rfftfreq(SR, 1 / SR)
    low, high = (freqs > 200) & (freqs < 500), (freqs > 2000) & (freqs < 5000)

    def balance(x: np.ndarray) -> float:
        power = spectrum(x)
        return 10 * np.log10(power[high].sum() / power[low].sum())

    assert balance(tilt(noise, SR, 3.0)) - balance(noise) == pytest.approx(3.0 * np.log2(3162 / 316) , abs=1.0)
    assert balance(tilt(noise, SR, -3.0)) < balance(noise) - 5
    params = NO_COPIES.model_copy(update={"copies": 1, "tilt_db_per_octave": 6.0})
    copies = [augment_clip(noise, SR, params, np.random.default_rng(seed)) for seed in range(8)]
    shifts = [balance(copy) - balance(noise) for copy in copies]
    assert min(shifts) < -2 and max(shifts) > 2  # both ways, drawn per copy
    np.testing.assert_array_equal(augment_clip(noise, SR, params, np.random.default_rng(3)), copies[3])


@pytest.mark.parametrize(("section", "key", "value"), [
    ("audio", "level_dbfs", 3.0), ("audio", "level_dbfs", -120.0), ("augment", "tilt_db_per_octave", -1.0),
    ("augment", "tilt_db_per_octave", 20.0),
])
def test_invalid_level_and_tilt_params_are_refused(raw_params, section, key, value):
    raw_params[section][key] = value
    with pytest.raises(ParamsError, match=f"{section}.{key}"):
        validate_params(raw_params)
