"""Loading audio: one implementation for the pipeline, the CLI and the web app.

``load_window`` reproduces ``librosa.load(path, sr=sr, offset=offset,
duration=duration, res_type=res_type)`` sample for sample, but decodes through
libsndfile directly (WAV, FLAC, AIFF, OGG, any rate, any channel count) and
fails with the file's name when the clip is shorter than the offset.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf

from ser.dsp import resample
from ser.params import AudioParams


AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".ogg", ".oga", ".opus", ".aif", ".aiff", ".aifc", ".mp3", ".au", ".caf", ".w64"})
"""File suffixes taken for audio when a folder is searched (lower case; libsndfile decodes them)."""


class AudioError(ValueError):
    """Audio that cannot be used; the message names the file and the reason."""


AudioSource = str | Path | BinaryIO


def read_window(source: AudioSource, offset: float, duration: float, name: str | None = None) -> tuple[np.ndarray, int]:
    """Decode ``duration`` seconds from ``offset`` as mono float32 at the native rate.

    ``source`` is a path or an open binary file; ``name`` (default: the path)
    is what error messages call it.
    """
    path = name or str(source)
    try:
        with sf.SoundFile(source) as audio:
            native_sr = audio.samplerate
            start = int(native_sr * offset)  # truncation, as librosa.load does
            if audio.frames and start >= audio.frames:
                raise AudioError(
                    f"{path}: clip is {audio.frames / native_sr:.3f} s long, "
                    f"not longer than audio.offset={offset} s"
                )
            audio.seek(start)
            frames = audio.read(int(native_sr * duration), dtype="float32", always_2d=True)
    except sf.LibsndfileError as exc:
        raise AudioError(f"{path}: cannot decode audio ({exc.error_string})") from None
    if frames.size == 0:
        raise AudioError(f"{path}: no audio samples")
    return (frames[:, 0] if frames.shape[1] == 1 else frames.mean(axis=1)), native_sr


def require_finite(samples: np.ndarray, path: str | Path) -> None:
    """Raise ``AudioError`` naming ``path`` if any sample is NaN or infinite."""
    if not np.all(np.isfinite(samples)):
        raise AudioError(f"{path}: audio holds NaN or infinite samples")


def load_window(source: AudioSource, audio: AudioParams, name: str | None = None) -> np.ndarray:
    """The analysis window of a clip, mono at ``audio.sr``; shorter than the window if the clip is."""
    samples, native_sr = read_window(source, audio.offset, audio.duration, name)
    require_finite(samples, name or source)
    if native_sr != audio.sr:
        samples = resample(samples, native_sr, audio.sr, audio.res_type)
    return samples
