"""Fixed transforms of the recording chain (microphone, gain, codec, room, noise) for robustness scoring.

Each transform has one fixed setting, unlike training augmentation (``ser.augment``), which draws its
settings at random per copy. The random ones (room, noise) draw from their own generator: from the
clip's seed (``clip_seed``: the sha256 of the clip's audio under a salt of its own, never a training
copy's seed) and the transform's name. Every transform keeps the length and the rate of its input and
returns float32; ``apply`` runs one by name.

Codec settings and the bit rates measured (file size over duration, on 40 RAVDESS and EMOVO clips at
16 kHz, and on 20 TESS clips resampled from 24.4 to 48 kHz):

- ``opus_24k``: libsndfile's Ogg Opus (VBR) at compression level ``OPUS_LEVEL`` = 0.928, a target of
  24 kbit/s (libsndfile sets ``6 + 250 * (1 - level)`` kbit/s per channel); measured 20.1 kbit/s at
  16 kHz (pauses take fewer bits), 28.5 kbit/s at 48 kHz.
- ``mp3_32k``: libsndfile's MP3 (LAME, VBR, its default mode) at compression level ``MP3_LEVEL`` = 0.45;
  measured 33.0 kbit/s at 16 kHz, 73.8 kbit/s at 48 kHz (VBR spends more bits on the wider band).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable

import numpy as np
import soundfile as sf

from ser.augment import MP3_RATES, add_noise, apply_gain, mp3_round_trip, reverberate, telephone, tilt
from ser.dsp import fix_length, resample
from ser.params import CHAIN_TRANSFORMS

SALT = "ser.chain"
"""Salt of the scoring seeds: keeps them apart from the training copies' (``augment.copy_rng``)."""
OPUS_RATES = frozenset({8000, 12000, 16000, 24000, 48000})
"""The rates Opus has."""
CODEC_RATE = 48_000
"""Rate at which a codec runs on audio at a rate it lacks (resampled there and back)."""
RESAMPLER = "soxr_hq"
OPUS_LEVEL = 0.928
"""libsndfile's Opus compression level for a 24 kbit/s target."""
MP3_LEVEL = 0.45
"""libsndfile's MP3 compression level that gives about 32 kbit/s on 16 kHz speech."""

Transform = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]


def opus_round_trip(samples: np.ndarray, sr: int, level: float) -> np.ndarray:
    """Encode to Ogg Opus and decode (``level``: libsndfile's compression level, 0 best to 1 worst);
    ``sr`` must be one of ``OPUS_RATES``."""
    buffer = io.BytesIO()
    sf.write(buffer, samples, sr, format="OGG", subtype="OPUS", compression_level=level)
    buffer.seek(0)
    return fix_length(sf.read(buffer, dtype="float32")[0], len(samples))


def _at_rate(codec: Callable[[np.ndarray, int], np.ndarray], samples: np.ndarray, sr: int, rates: frozenset[int]) -> np.ndarray:
    """``codec`` at ``sr`` if it is one of ``rates``, else at ``CODEC_RATE`` (resampled there and back)."""
    if sr in rates:
        return codec(samples, sr)
    coded = codec(resample(samples, sr, CODEC_RATE, RESAMPLER), CODEC_RATE)
    return fix_length(resample(coded, CODEC_RATE, sr, RESAMPLER), len(samples))


def gain_minus_30db(samples: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Scale by -30 dB."""
    return apply_gain(samples, -30.0)


def gain_minus_20db(samples: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Scale by -20 dB."""
    return apply_gain(samples, -20.0)


def gain_minus_10db(samples: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Scale by -10 dB."""
    return apply_gain(samples, -10.0)


def gain_plus_6db(samples: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Scale by +6 dB, without clipping: samples may exceed 1."""
    return apply_gain(samples, 6.0)


def tilt_up(samples: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Brighter: +3 dB per octave around 1 kHz (+3 dB at 2 kHz, -3 dB at 500 Hz; -13 dB below 50 Hz)."""
    return tilt(samples, sr, 3.0)


def tilt_down(samples: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Duller: -3 dB per octave around 1 kHz (-3 dB at 2 kHz, +3 dB at 500 Hz; +13 dB below 50 Hz)."""
    return tilt(samples, sr, -3.0)


def telephone_band(samples: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """The telephone band: 300-3400 Hz, 4th-order Butterworth band-pass (``augment.telephone``)."""
    return telephone(samples, sr)


def opus_24k(samples: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Ogg Opus round trip at a 24 kbit/s target (``OPUS_LEVEL``); at rates Opus lacks, via 48 kHz."""
    return _at_rate(lambda x, rate: opus_round_trip(x, rate, OPUS_LEVEL), samples, sr, OPUS_RATES)


def mp3_32k(samples: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """MP3 round trip at about 32 kbit/s at 16 kHz (VBR, ``MP3_LEVEL``; ``augment.mp3_round_trip``, which
    clips to [-1, 1]); at rates MPEG lacks, via 48 kHz."""
    return _at_rate(lambda x, rate: mp3_round_trip(x, rate, MP3_LEVEL), samples, sr, MP3_RATES)


def room(samples: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """A synthetic room with RT60 0.3 s, drawn from the seed, at the clip's RMS level (``augment.reverberate``)."""
    return reverberate(samples, sr, 0.3, rng)


def noise_20db(samples: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """White noise at 20 dB SNR, drawn from the seed (``augment.add_noise``)."""
    return add_noise(samples, 20.0, rng)


REGISTRY: dict[str, Transform] = dict(zip(CHAIN_TRANSFORMS, (
    gain_minus_30db, gain_minus_20db, gain_minus_10db, gain_plus_6db, tilt_up, tilt_down,
    telephone_band, opus_24k, mp3_32k, room, noise_20db,
)))
"""The scoring transforms by name (``params.CHAIN_TRANSFORMS``; the names are metric keys)."""
TRANSFORMS: tuple[str, ...] = tuple(REGISTRY)


def clip_seed(audio_sha256: str) -> int:
    """The scoring seed of the clip whose audio has this sha256 (salted: no training copy's seed)."""
    return int.from_bytes(hashlib.sha256(f"{SALT}:{audio_sha256}".encode()).digest()[:8], "big")


def apply(name: str, samples: np.ndarray, sr: int, seed: int) -> np.ndarray:
    """The transform ``name`` of mono ``samples`` at ``sr`` Hz: float32, same length and rate, the same
    for the same (name, seed, samples). Raises ``ValueError`` on an unknown name, a rate that is not
    positive, or samples that are not a non-empty, finite 1-D array."""
    if name not in REGISTRY:
        raise ValueError(f"unknown transform {name!r}: the transforms are {', '.join(TRANSFORMS)}")
    if sr <= 0:
        raise ValueError(f"{name}: sample rate {sr} Hz is not positive")
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim != 1 or samples.size == 0:
        raise ValueError(f"{name}: expected a non-empty 1-D (mono) array, got shape {samples.shape}")
    if not np.all(np.isfinite(samples)):
        raise ValueError(f"{name}: samples hold NaN or infinite values")
    rng = np.random.default_rng([seed, int(hashlib.sha256(name.encode()).hexdigest()[:16], 16)])
    out = REGISTRY[name](samples, sr, rng)
    return np.asarray(out, dtype=np.float32)
