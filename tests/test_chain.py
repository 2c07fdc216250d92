"""Recording-chain transforms for robustness scoring: each transform's effect at its fixed setting,
measured on tones, noise and a formant-like voice; length, dtype and rates; seeding; bad input."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import scipy.signal

from ser.augment import add_noise, copy_rng
from ser.chain import REGISTRY, TRANSFORMS, apply, clip_seed

SR = 16_000
RATES = (16_000, 44_100, 48_000)
SHA = hashlib.sha256(b"clip").hexdigest()


def _tone(freq: float, sr: int = SR, seconds: float = 1.0, amplitude: float = 0.3) -> np.ndarray:
    return (amplitude * np.sin(2 * np.pi * freq * np.arange(int(sr * seconds)) / sr)).astype(np.float32)


def _voice(sr: int = SR, seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    """Formant-like speech: a 110-150 Hz sawtooth through resonances at 700, 1200 and 2600 Hz, with a
    syllable-rate envelope and a little breath noise."""
    n = int(sr * seconds)
    t = np.arange(n) / sr
    source = scipy.signal.sawtooth(2 * np.pi * np.cumsum(130 + 20 * np.sin(2 * np.pi * 0.7 * t)) / sr)
    voiced = sum(scipy.signal.lfilter(*scipy.signal.iirpeak(f, f / bw, fs=sr), source) for f, bw in [(700, 80), (1200, 100), (2600, 150)])
    out = voiced * (0.3 + 0.7 * np.sin(2 * np.pi * 3 * t) ** 2) + 0.01 * np.random.default_rng(seed).standard_normal(n)
    return (0.3 * out / np.max(np.abs(out))).astype(np.float32)


def _db(samples: np.ndarray) -> float:
    """Power in dB, over the middle half (away from filter and codec edges)."""
    middle = samples[len(samples) // 4 : 3 * len(samples) // 4].astype(np.float64)
    return float(10 * np.log10(np.mean(middle**2)))


def _change_db(name: str, samples: np.ndarray, sr: int = SR) -> float:
    return _db(apply(name, samples, sr, 0)) - _db(samples)


def _peak_hz(samples: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / sr)[np.argmax(spectrum)])


def test_names() -> None:
    assert TRANSFORMS == (
        "gain_-30db", "gain_-20db", "gain_-10db", "gain_+6db", "tilt_+3db_oct", "tilt_-3db_oct",
        "telephone", "opus_24k", "mp3_32k", "room", "noise_20db",
    )  # fmt: skip
    assert all(REGISTRY[name].__doc__ for name in TRANSFORMS)


@pytest.mark.parametrize(("name", "db"), [("gain_-30db", -30), ("gain_-20db", -20), ("gain_-10db", -10), ("gain_+6db", 6)])
def test_gain_changes_the_level_exactly(name: str, db: float) -> None:
    voice = _voice()
    assert _change_db(name, voice) == pytest.approx(db, abs=1e-4)
    np.testing.assert_allclose(apply(name, voice, SR, 0), voice * 10 ** (db / 20), rtol=1e-6)


def test_gain_does_not_clip() -> None:
    loud = _tone(440, amplitude=0.9)
    out = apply("gain_+6db", loud, SR, 0)
    assert np.max(np.abs(out)) == pytest.approx(0.9 * 10 ** (6 / 20), rel=1e-3)  # about 1.8


@pytest.mark.parametrize("sr", [SR, 48_000])
@pytest.mark.parametrize(("name", "sign"), [("tilt_+3db_oct", 1), ("tilt_-3db_oct", -1)])
def test_tilt_is_3db_per_octave_around_1khz(name: str, sign: int, sr: int) -> None:
    for freq, db in [(500, -3), (1000, 0), (2000, 3), (4000, 6), (250, -6)]:
        assert _change_db(name, _tone(freq, sr), sr) == pytest.approx(sign * db, abs=0.1), freq


def test_tilt_is_held_below_50hz() -> None:
    held = 3 * np.log2(50 / 1000)  # -13 dB
    assert _change_db("tilt_+3db_oct", _tone(20)) == pytest.approx(held, abs=0.3)
    constant = np.full(SR, 0.1, dtype=np.float32)
    assert np.isfinite(apply("tilt_-3db_oct", constant, SR, 0)).all()
    assert _change_db("tilt_-3db_oct", constant) == pytest.approx(-held, abs=0.3)


@pytest.mark.parametrize("sr", RATES)
def test_telephone_band(sr: int) -> None:
    assert _change_db("telephone", _tone(1000, sr), sr) == pytest.approx(0, abs=0.5)
    assert _change_db("telephone", _tone(100, sr), sr) < -20
    assert _change_db("telephone", _tone(6000, sr), sr) < -20


@pytest.mark.parametrize("sr", RATES)
@pytest.mark.parametrize("name", ["opus_24k", "mp3_32k"])
def test_codec_keeps_a_tone(name: str, sr: int) -> None:
    tone = _tone(440, sr)
    out = apply(name, tone, sr, 0)
    assert _peak_hz(out, sr) == pytest.approx(440, abs=2)
    assert _db(out) - _db(tone) == pytest.approx(0, abs=1.0)
    np.testing.assert_array_equal(out, apply(name, tone, sr, 0))


@pytest.mark.parametrize("sr", RATES)
@pytest.mark.parametrize("name", ["opus_24k", "mp3_32k"])
def test_codec_is_lossy_on_voice(name: str, sr: int) -> None:
    """The codec runs at every rate (none is skipped): the voice comes back changed, at about its level."""
    voice = _voice(sr)
    out = apply(name, voice, sr, 0)
    assert _db(out) - _db(voice) == pytest.approx(0, abs=1.5)
    assert not np.allclose(out, voice, atol=1e-3)


def test_room_keeps_the_level_and_adds_a_tail() -> None:
    voice = _voice()
    out = apply("room", voice, SR, 1)
    assert np.sqrt(np.mean(out.astype(np.float64) ** 2)) == pytest.approx(np.sqrt(np.mean(voice.astype(np.float64) ** 2)), rel=1e-3)
    burst = np.zeros(SR, dtype=np.float32)
    burst[: SR // 10] = _voice(seconds=0.1)
    tail = apply("room", burst, SR, 1)[SR // 10 + SR // 20 : SR // 10 + SR // 5]  # 50-200 ms after the burst
    assert np.max(np.abs(tail)) > 1e-3


def test_room_is_seeded() -> None:
    voice = _voice()
    np.testing.assert_array_equal(apply("room", voice, SR, 1), apply("room", voice, SR, 1))
    assert not np.allclose(apply("room", voice, SR, 1), apply("room", voice, SR, 2))


def test_noise_is_20db_below_the_signal_and_seeded() -> None:
    voice = _voice(seconds=2.0)
    out = apply("noise_20db", voice, SR, 1)
    noise = out.astype(np.float64) - voice
    snr = 10 * np.log10(np.mean(voice.astype(np.float64) ** 2) / np.mean(noise**2))
    assert snr == pytest.approx(20, abs=0.2)
    np.testing.assert_array_equal(out, apply("noise_20db", voice, SR, 1))
    assert not np.allclose(out, apply("noise_20db", voice, SR, 2))


def test_scoring_seeds_are_not_the_training_copies() -> None:
    seed = clip_seed(SHA)
    assert seed == clip_seed(SHA) != clip_seed(hashlib.sha256(b"other").hexdigest())
    voice = _voice()
    scored = apply("noise_20db", voice, SR, seed)
    for copy in range(4):
        assert not np.allclose(scored, add_noise(voice, 20.0, copy_rng(seed, SHA, copy)))
        assert not np.allclose(scored, add_noise(voice, 20.0, copy_rng(42, SHA, copy)))


@pytest.mark.parametrize("sr", RATES)
@pytest.mark.parametrize("name", TRANSFORMS)
def test_every_transform_keeps_length_and_dtype_and_is_deterministic(name: str, sr: int) -> None:
    voice = _voice(sr, seconds=0.77)  # a length that is no multiple of a codec frame
    before = voice.copy()
    out = apply(name, voice.astype(np.float64), sr, 7)
    assert out.dtype == np.float32 and out.shape == voice.shape
    assert np.isfinite(out).all()
    np.testing.assert_array_equal(out, apply(name, voice, sr, 7))
    np.testing.assert_array_equal(voice, before)


@pytest.mark.parametrize("name", TRANSFORMS)
def test_short_and_silent_input(name: str) -> None:
    for samples in (np.zeros(SR, dtype=np.float32), _voice(seconds=0.01)):
        out = apply(name, samples, SR, 0)
        assert out.shape == samples.shape and np.isfinite(out).all()


@pytest.mark.parametrize(
    ("name", "samples", "sr", "match"),
    [
        ("no_such", _tone(440), SR, "unknown transform 'no_such'"),
        ("telephone", np.zeros(0, dtype=np.float32), SR, "non-empty 1-D"),
        ("telephone", np.zeros((2, SR), dtype=np.float32), SR, "non-empty 1-D"),
        ("telephone", np.array([0.1, np.nan], dtype=np.float32), SR, "NaN or infinite"),
        ("opus_24k", np.array([0.1, np.inf], dtype=np.float32), SR, "NaN or infinite"),
        ("telephone", _tone(440), 0, "not positive"),
    ],
)
def test_bad_input_raises(name: str, samples: np.ndarray, sr: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        apply(name, samples, sr, 0)
