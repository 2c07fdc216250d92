"""Waveform augmentation for training copies, seeded per clip and copy.

Every copy draws its own random settings from ``augment.seed``, the sha256 of
the clip's audio and the copy number, so copies are reproducible, independent
of the order in which clips are processed, and cacheable per clip. The transforms, in the order they are applied:

- ``tempo``: time-stretch by a factor in ``tempo`` (pitch kept; length becomes
  ``len / factor``);
- ``pitch_semitones``: pitch shift up or down (length and rate kept);
- ``shift_s``: move the audio later or earlier within the same length, filling
  with silence;
- ``gain_db``: scale by a gain in dB (length and rate kept);
- ``noise_snr_db``: add white noise at an SNR in that range (length and rate kept).

The sample rate never changes. Validation and test clips are never augmented:
the train stage uses only the copies of its training clips.
"""

from __future__ import annotations

import librosa
import numpy as np

from ser.params import AugmentParams


def copy_rng(seed: int, audio_sha256: str, copy: int) -> np.random.Generator:
    """The random generator of one augmented copy of the clip whose audio has this sha256."""
    return np.random.default_rng([seed, int(audio_sha256[:16], 16), copy])


def time_stretch(samples: np.ndarray, factor: float) -> np.ndarray:
    """Faster (``factor`` > 1) or slower speech at the same pitch."""
    return librosa.effects.time_stretch(samples, rate=factor) if factor != 1 else samples


def pitch_shift(samples: np.ndarray, sr: int, semitones: float) -> np.ndarray:
    """The same clip, ``semitones`` higher or lower, same length."""
    return librosa.effects.pitch_shift(samples, sr=sr, n_steps=semitones) if semitones else samples


def time_shift(samples: np.ndarray, shift: int) -> np.ndarray:
    """Delay (``shift`` > 0) or advance the audio by ``shift`` samples, keeping the length."""
    out = np.zeros_like(samples)
    if shift >= 0:
        out[shift:] = samples[: len(samples) - shift]
    else:
        out[:shift] = samples[-shift:]
    return out


def apply_gain(samples: np.ndarray, gain_db: float) -> np.ndarray:
    return samples * np.float32(10 ** (gain_db / 20))


def add_noise(samples: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Add white noise whose power is the clip's power divided by ``10**(snr_db/10)``."""
    power = float(np.mean(samples.astype(np.float64) ** 2))
    noise = rng.standard_normal(len(samples)) * np.sqrt(power / 10 ** (snr_db / 10))
    return (samples + noise).astype(np.float32)


def augment_clip(samples: np.ndarray, sr: int, params: AugmentParams, rng: np.random.Generator) -> np.ndarray:
    """One augmented copy of ``samples`` with every transform that ``params`` turns on."""
    out = np.asarray(samples, dtype=np.float32)
    if params.tempo:
        out = time_stretch(out, float(rng.uniform(*params.tempo)))
    if params.pitch_semitones:
        out = pitch_shift(out, sr, float(rng.uniform(-params.pitch_semitones, params.pitch_semitones)))
    if params.shift_s:
        limit = min(int(params.shift_s * sr), len(out) - 1)
        out = time_shift(out, int(rng.integers(-limit, limit + 1)))
    if params.gain_db:
        out = apply_gain(out, float(rng.uniform(-params.gain_db, params.gain_db)))
    if params.noise_snr_db:
        out = add_noise(out, float(rng.uniform(*params.noise_snr_db)), rng)
    return out.astype(np.float32)
