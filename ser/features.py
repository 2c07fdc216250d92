"""Frame features (MFCC or log-mel) of each clip, and of a whole manifest.

Each clip's analysis window (``audio.offset`` .. ``audio.offset + audio.duration``)
is zero-padded to a fixed length, so every clip yields a ``(frames, channels)``
sequence of the same shape, together with the number of leading frames that
hold real audio. Pooling, deltas and normalization happen later, in
:mod:`ser.inputs`, so that one cached set of features serves every model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import librosa
import numpy as np
import pandas as pd
from tqdm import tqdm

from ser.audio import AudioError, load_window
from ser.params import AudioParams, FeatureParams

FEATURES_FILE = "features.npy"
INDEX_FILE = "index.csv"
AUGMENTED_FILE = "augmented.npy"
AUGMENTED_INDEX_FILE = "augmented.csv"
PARAMS_FILE = "params.json"
INDEX_COLUMNS = ["file", "speaker", "word", "emotion", "valid_frames"]


class FeaturizeError(RuntimeError):
    """One or more clips could not be featurized; the message lists each file and reason."""


def frame_count(n_samples: int, features: FeatureParams) -> int:
    """Frames librosa yields for ``n_samples`` samples (centred frames)."""
    return 1 + n_samples // features.hop_length


def feature_shape(audio: AudioParams, features: FeatureParams) -> tuple[int, int]:
    """Shape of one clip's features: ``(frames, channels)`` of the padded window."""
    return (frame_count(audio.n_samples, features), features.n_channels)


def frame_features(samples: np.ndarray, audio: AudioParams, features: FeatureParams) -> tuple[np.ndarray, int]:
    """Features of one analysis window and the number of frames that hold real audio."""
    padded = librosa.util.fix_length(samples[: audio.n_samples], size=audio.n_samples)
    mel = librosa.feature.melspectrogram(
        y=padded, sr=audio.sr, n_fft=features.n_fft, hop_length=features.hop_length, n_mels=features.n_mels
    )
    frames = librosa.power_to_db(mel)
    if features.kind == "mfcc":
        frames = librosa.feature.mfcc(S=frames, n_mfcc=features.n_mfcc)
    valid = min(frame_count(len(samples), features), frames.shape[1])
    return frames.T.astype(np.float32), valid


def clip_features(path: str | Path, audio: AudioParams, features: FeatureParams) -> tuple[np.ndarray, int]:
    """Load one clip and compute its features (the path shared by training and inference)."""
    return frame_features(load_window(path, audio), audio, features)


def featurize(
    manifest: pd.DataFrame,
    raw_dir: Path,
    audio: AudioParams,
    features: FeatureParams,
    transform: Callable[[np.ndarray, int], np.ndarray] | None = None,
    desc: str = "featurize",
) -> tuple[np.ndarray, pd.DataFrame]:
    """Features of every clip in ``manifest`` (rows in manifest order) and their index.

    ``transform(samples, row)``, when given, alters each loaded window before its
    features are computed (augmentation).
    """
    values = np.zeros((len(manifest), *feature_shape(audio, features)), dtype=np.float32)
    valid_frames, errors = [], []
    for row, file in enumerate(tqdm(manifest["file"], desc=desc, unit="clip")):
        try:
            samples = load_window(raw_dir / file, audio)
            if transform is not None:
                samples = transform(samples, row)
            values[row], valid = frame_features(samples, audio, features)
        except AudioError as exc:
            errors.append(str(exc))
            valid = 0
        valid_frames.append(valid)
    if errors:
        raise FeaturizeError(f"{len(errors)} clip(s) could not be featurized:\n  " + "\n  ".join(errors))
    index = manifest[INDEX_COLUMNS[:-1]].reset_index(drop=True).assign(valid_frames=valid_frames)
    return values, index


def save_features(out_dir: Path, values: np.ndarray, index: pd.DataFrame, params: dict, augmented: tuple[np.ndarray, pd.DataFrame]) -> None:
    """Write the clips' features, their augmented copies and the params that made them."""
    out_dir.mkdir(parents=True, exist_ok=True)
    np.save(out_dir / FEATURES_FILE, values)
    index.to_csv(out_dir / INDEX_FILE, index=False)
    np.save(out_dir / AUGMENTED_FILE, augmented[0])
    augmented[1].to_csv(out_dir / AUGMENTED_INDEX_FILE, index=False)
    (out_dir / PARAMS_FILE).write_text(json.dumps(params, indent=2) + "\n")


def load_features(feature_dir: Path) -> tuple[np.ndarray, pd.DataFrame, dict]:
    """Features, their index and the params that made them."""
    params = json.loads((feature_dir / PARAMS_FILE).read_text())
    return np.load(feature_dir / FEATURES_FILE), pd.read_csv(feature_dir / INDEX_FILE), params


def load_augmented(feature_dir: Path) -> tuple[np.ndarray, pd.DataFrame]:
    """Augmented copies' features and their index (``source`` = row of the original clip)."""
    return np.load(feature_dir / AUGMENTED_FILE), pd.read_csv(feature_dir / AUGMENTED_INDEX_FILE)
