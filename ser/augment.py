"""Waveform augmentation for training copies, seeded per clip and copy.

Every copy draws its own random settings from ``augment.seed``, the sha256 of
the clip's audio and the copy number, so copies are reproducible, independent
of the order in which clips are processed, and cacheable per clip. The transforms, in the order they are applied:

- ``tempo``: time-stretch by a factor in ``tempo`` (pitch kept; length becomes
  ``len / factor``);
- ``pitch_semitones``: pitch shift up or down (length and rate kept);
- ``shift_s``: move the audio later or earlier within the same length, filling
  with silence;
- ``reverb_prob``: with this probability, reverberation: convolution with a
  synthetic room response (a direct path and an exponentially decaying noise
  tail whose RT60 is drawn from ``reverb_rt60_s``), at the clip's level;
- ``tilt_db_per_octave``: a spectral tilt (a brighter or duller microphone) drawn up to
  this many dB per octave either way around 1 kHz;
- ``telephone_prob``: with this probability, the telephone band (300-3400 Hz,
  a 4th-order Butterworth band-pass);
- ``codec_prob``: with this probability, a round trip through an MP3 encoder
  (libsndfile's LAME) at a quality drawn between medium and the lowest (at
  the rates MPEG has: 8 to 48 kHz);
- ``gain_db``: scale by a gain in dB (length and rate kept);
- ``noise_snr_db``: add white noise at an SNR in that range (length and rate kept).

The sample rate never changes. Validation and test clips are never augmented:
the train stage uses only the copies of its training clips.
"""

from __future__ import annotations

import io

import librosa
import numpy as np
import scipy.fft
import scipy.signal
import soundfile as sf

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


TELEPHONE_BAND = (300.0, 3400.0)
"""Hz: the pass band of ``telephone_prob``."""
MP3_RATES = frozenset({8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000})
"""The rates MPEG audio has: at any other rate the codec is skipped."""
TILT_PIVOT_HZ = 1000.0
TILT_LOW_HZ = 50.0
"""Below this frequency the tilt's gain stays at its value here."""
TILT_PAD_S = 0.1
"""Zeros appended before the FFT filter, so that the ends of the clip do not wrap into each other."""
WORST_MP3_QUALITY = 0.999
"""libsndfile refuses compression levels above about 0.9999."""


def reverberate(samples: np.ndarray, sr: int, rt60: float, rng: np.random.Generator) -> np.ndarray:
    """Convolve with a synthetic room response (direct path plus an exponentially decaying noise
    tail that falls by 60 dB in ``rt60`` seconds); same length, same RMS level."""
    length = max(1, int(rt60 * sr))
    decay = np.exp(-6.9078 * np.arange(length) / length)  # ln(1000): -60 dB at rt60
    response = rng.standard_normal(length) * decay * 0.1
    response[0] = 1.0
    wet = scipy.signal.fftconvolve(samples.astype(np.float64), response)[: len(samples)]
    level = np.sqrt(np.mean(samples.astype(np.float64) ** 2) / max(np.mean(wet**2), 1e-20))
    return (wet * level).astype(np.float32)


def tilt(samples: np.ndarray, sr: int, db_per_octave: float) -> np.ndarray:
    """Zero-phase spectral tilt: gain ``db_per_octave * log2(f / 1 kHz)`` dB, with ``f`` held at
    ``TILT_LOW_HZ`` below it (so that DC does not explode); same length."""
    size = scipy.fft.next_fast_len(len(samples) + int(TILT_PAD_S * sr), real=True)
    freqs = np.maximum(np.fft.rfftfreq(size, 1 / sr), TILT_LOW_HZ)
    gain = 10 ** (db_per_octave * np.log2(freqs / TILT_PIVOT_HZ) / 20)
    spectrum = scipy.fft.rfft(samples.astype(np.float64), size)
    return scipy.fft.irfft(spectrum * gain, size)[: len(samples)].astype(np.float32)


def telephone(samples: np.ndarray, sr: int) -> np.ndarray:
    """The telephone band (300-3400 Hz, capped below the Nyquist frequency)."""
    high = min(TELEPHONE_BAND[1], 0.45 * sr)
    sos = scipy.signal.butter(4, [TELEPHONE_BAND[0], high], btype="bandpass", fs=sr, output="sos")
    return scipy.signal.sosfilt(sos, samples).astype(np.float32)


def mp3_round_trip(samples: np.ndarray, sr: int, quality: float) -> np.ndarray:
    """Encode to MP3 and decode (``quality``: libsndfile's compression level, 0 best to 1 worst;
    capped at ``WORST_MP3_QUALITY``). At rates MPEG lacks (``MP3_RATES``) the samples come back as they are."""
    if sr not in MP3_RATES or len(samples) == 0:
        return samples
    quality = min(quality, WORST_MP3_QUALITY)
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(samples, -1, 1), sr, format="MP3", subtype="MPEG_LAYER_III", compression_level=quality)
    buffer.seek(0)
    decoded = sf.read(buffer, dtype="float32")[0]
    return librosa.util.fix_length(decoded, size=len(samples))


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
    if params.reverb_prob and rng.uniform() < params.reverb_prob:
        out = reverberate(out, sr, float(rng.uniform(*params.reverb_rt60_s)), rng)
    if params.tilt_db_per_octave:
        out = tilt(out, sr, float(rng.uniform(-params.tilt_db_per_octave, params.tilt_db_per_octave)))
    if params.telephone_prob and rng.uniform() < params.telephone_prob:
        out = telephone(out, sr)
    if params.codec_prob and rng.uniform() < params.codec_prob:
        out = mp3_round_trip(out, sr, float(rng.uniform(0.5, 1.0)))
    if params.gain_db:
        out = apply_gain(out, float(rng.uniform(-params.gain_db, params.gain_db)))
    if params.noise_snr_db:
        out = add_noise(out, float(rng.uniform(*params.noise_snr_db)), rng)
    return out.astype(np.float32)
