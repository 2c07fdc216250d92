"""Frame features (MFCC or log-mel) of each clip.

Each clip's analysis window (``audio.offset`` .. ``audio.offset + audio.duration``)
is zero-padded to a fixed length, so every clip yields a ``(frames, channels)``
sequence of the same shape, together with the number of leading frames that
hold real audio. Pooling, deltas and normalization happen later, in
:mod:`ser.inputs`, so that one cached set of features serves every model.

:func:`frame_features` equals librosa's computation on the zero-padded window
(``melspectrogram`` -> ``power_to_db`` -> ``mfcc``) but transforms only the
frames that reach real audio: the frames of pure padding are silence, whose
value it fills in directly.
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import librosa
import numpy as np
import pandas as pd

from ser.audio import AudioSource, load_window
from ser.params import AudioParams, FeatureParams

FEATURES_FILE = "features.npy"
INDEX_FILE = "index.csv"
AUGMENTED_FILE = "augmented.npy"
AUGMENTED_INDEX_FILE = "augmented.csv"
PARAMS_FILE = "params.json"
INDEX_COLUMNS = ["file", "speaker", "word", "emotion", "valid_frames"]
TOP_DB = 80.0  # librosa.power_to_db's defaults
AMIN = 1e-10


def frame_count(n_samples: int, features: FeatureParams) -> int:
    """Frames librosa yields for ``n_samples`` samples (centred frames)."""
    return 1 + n_samples // features.hop_length


def feature_shape(audio: AudioParams, features: FeatureParams) -> tuple[int, int]:
    """Shape of one clip's features: ``(frames, channels)`` of the padded window."""
    return (frame_count(audio.n_samples, features), features.n_channels)


@functools.lru_cache(maxsize=16)
def mel_basis(sr: int, n_fft: int, n_mels: int) -> np.ndarray:
    """The mel filter bank, built once per setting (librosa builds it on every call)."""
    return librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels)


def audible_length(n_samples: int, audio: AudioParams, features: FeatureParams) -> int:
    """Samples to transform so that every frame whose window reaches real audio is computed."""
    frames = math.ceil((n_samples + features.n_fft // 2) / features.hop_length)
    return min(audio.n_samples, (frames - 1) * features.hop_length)


def frame_features(samples: np.ndarray, audio: AudioParams, features: FeatureParams) -> tuple[np.ndarray, int]:
    """Features of one analysis window and the number of frames that hold real audio."""
    samples = samples[: audio.n_samples]
    total = frame_count(audio.n_samples, features)
    # at least one window long (as the padded window is), so librosa has no short-signal warning
    size = min(audio.n_samples, max(len(samples), audible_length(len(samples), audio, features), features.n_fft))
    padded = librosa.util.fix_length(samples, size=max(len(samples), size))
    power = np.abs(librosa.stft(y=padded, n_fft=features.n_fft, hop_length=features.hop_length)) ** 2
    mel = np.einsum("ft,mf->mt", power[:, :total], mel_basis(audio.sr, features.n_fft, features.n_mels), optimize=True)
    decibels = librosa.power_to_db(mel, amin=AMIN, top_db=None)
    silence = max(10 * np.log10(AMIN), float(decibels.max()) - TOP_DB)  # a frame of padding, after top_db
    decibels = np.pad(np.maximum(decibels, silence), ((0, 0), (0, total - decibels.shape[1])), constant_values=silence)
    frames = librosa.feature.mfcc(S=decibels, n_mfcc=features.n_mfcc) if features.kind == "mfcc" else decibels
    valid = min(frame_count(len(samples), features), total)
    return frames.T.astype(np.float32), valid


def clip_features(source: AudioSource, audio: AudioParams, features: FeatureParams, name: str | None = None) -> tuple[np.ndarray, int]:
    """Load one clip and compute its features (the path shared by training and inference)."""
    return frame_features(load_window(source, audio, name), audio, features)


def load_features(feature_dir: Path) -> tuple[np.ndarray, pd.DataFrame, dict]:
    """Features, their index and the params that made them."""
    params = json.loads((feature_dir / PARAMS_FILE).read_text())
    return np.load(feature_dir / FEATURES_FILE), pd.read_csv(feature_dir / INDEX_FILE), params


def load_augmented(feature_dir: Path) -> tuple[np.ndarray, pd.DataFrame]:
    """Augmented copies' features and their index (``source`` = row of the original clip)."""
    return np.load(feature_dir / AUGMENTED_FILE), pd.read_csv(feature_dir / AUGMENTED_INDEX_FILE)
