"""Frame features (MFCC or log-mel) of each clip.

Each clip's analysis window (``audio.offset`` .. ``audio.offset + audio.duration``)
is zero-padded to a fixed length, so every clip yields a ``(frames, channels)``
sequence of the same shape, together with the number of leading frames that
hold real audio. Pooling, deltas and normalization happen later, in
:mod:`ser.inputs`, so that one cached set of features serves every model.

:func:`frame_features` equals librosa's computation on the zero-padded window
(``melspectrogram`` -> ``power_to_db`` -> ``mfcc``), through :mod:`ser.dsp`
(librosa's pieces without librosa's import), but transforms only the frames
that reach real audio: the frames of pure padding are silence, whose value it
fills in directly.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from ser.audio import AudioSource, load_window, normalize_level
from ser.dsp import dct, mel_power, power_to_db, stft_power
from ser.params import AudioParams, FeatureParams
from ser.tables import read_clips

FEATURES_FILE = "features.npy"
INDEX_FILE = "index.csv"
AUGMENTED_FILE = "augmented.npy"
FUNCTIONALS_FILE = "functionals_{}.npy"
"""The clips' functionals of one set (``features.functionals``), one row per clip."""
AUGMENTED_INDEX_FILE = "augmented.csv"
PARAMS_FILE = "params.json"
INDEX_COLUMNS = ["file", "corpus", "speaker", "text", "emotion", "valid_frames"]
TOP_DB = 80.0  # librosa.power_to_db's defaults
AMIN = 1e-10


def frame_count(n_samples: int, features: FeatureParams) -> int:
    """Frames librosa yields for ``n_samples`` samples (centred frames)."""
    return 1 + n_samples // features.hop_length


def feature_shape(audio: AudioParams, features: FeatureParams) -> tuple[int, int]:
    """Shape of one clip's features: ``(frames, channels)`` of the padded window."""
    return (frame_count(audio.n_samples, features), features.n_channels)


def audible_length(n_samples: int, audio: AudioParams, features: FeatureParams) -> int:
    """Samples to transform so that every frame whose window reaches real audio is computed."""
    frames = math.ceil((n_samples + features.n_fft // 2) / features.hop_length)
    return min(audio.n_samples, (frames - 1) * features.hop_length)


def transform_length(n_samples: int, audio: AudioParams, features: FeatureParams) -> int:
    """Samples to transform for a clip of ``n_samples``: its audible frames, and at least one window."""
    return min(audio.n_samples, max(n_samples, audible_length(n_samples, audio, features), features.n_fft))


def batch_frame_features(clips: list[np.ndarray], audio: AudioParams, features: FeatureParams) -> list[tuple[np.ndarray, int]]:
    """:func:`frame_features` of several windows at once (one STFT and one mel product for all).

    Every clip is zero-padded to the longest one's transform length; frames of
    padding are silence either way, so each clip's values do not depend on the others.
    """
    clips = [np.asarray(clip, dtype=np.float32)[: audio.n_samples] for clip in clips]
    total = frame_count(audio.n_samples, features)
    size = max(max(len(clip), transform_length(len(clip), audio, features)) for clip in clips)
    power = stft_power(clips, size, features.n_fft, features.hop_length)[:, :total]
    frames = power.shape[1]
    # each frame's mel bands are summed on their own (so a clip's values do not depend on its batch)
    mel = mel_power(power, audio.sr, features.n_fft, features.n_mels)
    mel = np.pad(mel, ((0, 0), (0, total - frames), (0, 0)))  # frames of pure padding: zero power
    decibels = power_to_db(mel, amin=AMIN)
    # top_db per clip, as librosa.power_to_db applies it to each clip alone
    decibels = np.maximum(decibels, decibels.max(axis=(1, 2), keepdims=True) - TOP_DB)
    frames = dct(decibels, features.n_mfcc, axis=2) if features.kind == "mfcc" else decibels
    frames = frames.astype(np.float32)
    return [(values, min(frame_count(len(clip), features), total)) for values, clip in zip(frames, clips)]


def frame_features(samples: np.ndarray, audio: AudioParams, features: FeatureParams) -> tuple[np.ndarray, int]:
    """Features of one analysis window and the number of frames that hold real audio."""
    return batch_frame_features([samples], audio, features)[0]


def clip_features(source: AudioSource, audio: AudioParams, features: FeatureParams, name: str | None = None) -> tuple[np.ndarray, int]:
    """Load one clip and compute its features (the path shared by training and inference)."""
    return frame_features(normalize_level(load_window(source, audio, name), audio.sr, audio.level_dbfs), audio, features)


def load_features(feature_dir: Path) -> tuple[np.ndarray, pd.DataFrame, dict]:
    """Features (read-only, mapped from the file: processes that read them share its pages), their
    index and the params that made them."""
    params = json.loads((feature_dir / PARAMS_FILE).read_text())
    return np.load(feature_dir / FEATURES_FILE, mmap_mode="r"), read_clips(feature_dir / INDEX_FILE), params


def load_functionals(feature_dir: Path) -> dict[str, np.ndarray]:
    """The clips' openSMILE functionals, ``(clips, width)``, of each set that featurize computed."""
    sets = json.loads((feature_dir / PARAMS_FILE).read_text())["features"]["functionals"]
    return {kind: np.load(feature_dir / FUNCTIONALS_FILE.format(kind), mmap_mode="r") for kind in sets}


def load_augmented(feature_dir: Path) -> tuple[np.ndarray, pd.DataFrame]:
    """Augmented copies' features (read-only, mapped) and their index (``source`` = row of the original clip)."""
    return np.load(feature_dir / AUGMENTED_FILE, mmap_mode="r"), read_clips(feature_dir / AUGMENTED_INDEX_FILE)
