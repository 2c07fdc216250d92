"""Loading audio: one implementation for the pipeline, the CLI and the web app.

``load_window`` reproduces ``librosa.load(path, sr=sr, offset=offset,
duration=duration, res_type=res_type)`` sample for sample, but decodes through
libsndfile directly (WAV, FLAC, AIFF, OGG, MP3, any channel count) and fails
with the file's name when the clip is shorter than the offset, or its header
or samples cannot be those of a recording (a damaged file).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np
import soundfile as sf

from ser.dsp import resample
from ser.params import AudioParams


AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".ogg", ".oga", ".opus", ".aif", ".aiff", ".aifc", ".mp3", ".au", ".caf", ".w64"})
"""File suffixes taken for audio when a folder is searched (lower case; libsndfile decodes them)."""
MIN_SAMPLE_RATE = 4000
"""Lowest native sample rate taken (Hz), half telephone speech's: a damaged header's rate of a few
hertz would make a short file hours long, and hold no speech."""
MAX_PEAK = 1e6
"""Largest sample magnitude taken; full scale is 1. Float files written at integer scale reach 32768;
far beyond that the samples are damaged, and the features overflow."""
BLOCK_FRAMES = 1 << 16
"""Frames decoded at a time when reading a whole file or window."""


class AudioError(ValueError):
    """Audio that cannot be used; the message names the file and the reason."""


AudioSource = str | Path | BinaryIO


def check_sample_rate(sample_rate: int, name: str | Path) -> None:
    """Raise ``AudioError`` naming the file if ``sample_rate`` is below :data:`MIN_SAMPLE_RATE`."""
    if sample_rate < MIN_SAMPLE_RATE:
        raise AudioError(f"{name}: sample rate {sample_rate} Hz is below {MIN_SAMPLE_RATE} Hz (a damaged header?)")


def check_samples(samples: np.ndarray, name: str | Path) -> None:
    """Raise ``AudioError`` naming the file if any sample is NaN, infinite or beyond :data:`MAX_PEAK`."""
    if not np.all(np.isfinite(samples)):
        raise AudioError(f"{name}: audio holds NaN or infinite samples")
    if samples.size and (peak := float(np.max(np.abs(samples)))) > MAX_PEAK:
        raise AudioError(f"{name}: samples reach {peak:.3g}, far beyond full scale (1): damaged audio")


def read_blocks(audio: sf.SoundFile, frames: int = -1) -> Iterator[np.ndarray]:
    """Decode up to ``frames`` frames (-1: all) as float32 blocks of shape (frames, channels).

    Stops where decoding stops, whatever the header claims: a damaged header can claim
    billions of frames, more memory than one array can take."""
    remaining = frames if frames >= 0 else math.inf
    while remaining > 0:
        block = audio.read(int(min(BLOCK_FRAMES, remaining)), dtype="float32", always_2d=True)
        if not len(block):
            return
        yield block
        remaining -= len(block)


def read_window(source: AudioSource, offset: float, duration: float, name: str | None = None) -> tuple[np.ndarray, int]:
    """Decode ``duration`` seconds from ``offset`` as mono float32 at the native rate.

    ``source`` is a path or an open binary file; ``name`` (default: the path)
    is what error messages call it. The rate and the samples are checked
    (:func:`check_sample_rate`, :func:`check_samples`).
    """
    path = name or str(source)
    try:
        with sf.SoundFile(source) as audio:
            native_sr, claimed = audio.samplerate, audio.frames
            check_sample_rate(native_sr, path)
            start = int(native_sr * offset)  # truncation, as librosa.load does
            if claimed and start >= claimed:
                raise AudioError(f"{path}: clip is {claimed / native_sr:.3f} s long, not longer than audio.offset={offset} s")
            audio.seek(start)
            blocks = list(read_blocks(audio, int(native_sr * duration)))
    except sf.LibsndfileError as exc:
        raise AudioError(f"{path}: cannot decode audio ({exc.error_string})") from None
    if not blocks:
        cut = f" at {offset:.3f} s, though its header says {claimed / native_sr:.3f} s (cut short or damaged)"
        raise AudioError(f"{path}: no audio samples{cut if 0 < start < claimed else ''}")
    frames = np.concatenate(blocks)
    check_samples(frames, path)
    return (frames[:, 0] if frames.shape[1] == 1 else frames.mean(axis=1)), native_sr


def load_window(source: AudioSource, audio: AudioParams, name: str | None = None) -> np.ndarray:
    """The analysis window of a clip, mono at ``audio.sr``; shorter than the window if the clip is."""
    samples, native_sr = read_window(source, audio.offset, audio.duration, name)
    if native_sr != audio.sr:
        samples = resample(samples, native_sr, audio.sr, audio.res_type)
    return samples


LEVEL_FRAME_S = 0.02
"""Frames over which the active level is measured (s)."""
ACTIVE_RANGE_DB = 30.0
"""Frames within this many dB of the loud frames (the 95th percentile of frame power) count as active."""


def active_level_db(samples: np.ndarray, sr: int) -> float | None:
    """The clip's active level in dBFS: the mean power of its active frames (see ``ACTIVE_RANGE_DB``);
    ``None`` for digital silence."""
    frame = max(1, int(LEVEL_FRAME_S * sr))
    usable = max(frame, len(samples) // frame * frame)
    frames = np.resize(np.asarray(samples[:usable], dtype=np.float64), (-(-usable // frame), frame))
    power = (frames**2).mean(axis=1)
    loud = np.percentile(power, 95)
    if loud <= 0:
        return None
    return float(10 * np.log10(power[power >= loud * 10 ** (-ACTIVE_RANGE_DB / 10)].mean()))


def normalize_level(samples: np.ndarray, sr: int, level_dbfs: float | None) -> np.ndarray:
    """``samples`` scaled to an active level of ``level_dbfs`` (``None``: as they are; silence stays silent),
    so that the microphone's gain does not reach the features."""
    level = None if level_dbfs is None else active_level_db(samples, sr)
    if level is None:
        return samples
    return (np.asarray(samples, dtype=np.float32) * np.float32(10 ** ((level_dbfs - level) / 20))).astype(np.float32)
