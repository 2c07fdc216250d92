"""MFCC features: per clip, and for a whole manifest.

Each clip's analysis window (``audio.offset`` .. ``audio.offset + audio.duration``)
is zero-padded to a fixed length, so every clip yields the same number of
frames. ``pooling: mean`` averages only the frames that hold real audio, which
equals the tutorial's mean MFCC of the unpadded clip; ``pooling: none`` keeps
the whole (frames, n_mfcc) sequence for sequence models.
"""

from __future__ import annotations

import json
from pathlib import Path

import librosa
import numpy as np
import pandas as pd
from tqdm import tqdm

from ser.audio import AudioError, load_window
from ser.params import AudioParams, MfccParams

FEATURES_FILE = "features.npy"
INDEX_FILE = "index.csv"
PARAMS_FILE = "params.json"
INDEX_COLUMNS = ["file", "speaker", "word", "emotion", "valid_frames"]


class FeaturizeError(RuntimeError):
    """One or more clips could not be featurized; the message lists each file and reason."""


def frame_count(n_samples: int, mfcc: MfccParams) -> int:
    """MFCC frames librosa yields for ``n_samples`` samples (centred frames)."""
    return 1 + n_samples // mfcc.hop_length


def feature_shape(audio: AudioParams, mfcc: MfccParams) -> tuple[int, int]:
    """Shape of one clip's features: ``(n_mfcc, 1)`` for mean pooling, else ``(frames, n_mfcc)``."""
    if mfcc.pooling == "mean":
        return (mfcc.n_mfcc, 1)
    return (frame_count(audio.n_samples, mfcc), mfcc.n_mfcc)


def mfcc_features(samples: np.ndarray, audio: AudioParams, mfcc: MfccParams) -> tuple[np.ndarray, int]:
    """Features of one analysis window and the number of frames that hold real audio."""
    padded = librosa.util.fix_length(samples, size=audio.n_samples)
    frames = librosa.feature.mfcc(
        y=padded, sr=audio.sr, n_mfcc=mfcc.n_mfcc, n_fft=mfcc.n_fft, hop_length=mfcc.hop_length
    ).T
    valid = min(frame_count(len(samples), mfcc), len(frames))
    if mfcc.pooling == "mean":
        return frames[:valid].mean(axis=0)[:, np.newaxis], valid
    return frames, valid


def clip_features(path: str | Path, audio: AudioParams, mfcc: MfccParams) -> tuple[np.ndarray, int]:
    """Load one clip and compute its features (the path shared by training and inference)."""
    return mfcc_features(load_window(path, audio), audio, mfcc)


def featurize(manifest: pd.DataFrame, raw_dir: Path, audio: AudioParams, mfcc: MfccParams) -> tuple[np.ndarray, pd.DataFrame]:
    """Features of every clip in ``manifest`` (rows in manifest order) and their index."""
    features = np.zeros((len(manifest), *feature_shape(audio, mfcc)), dtype=np.float32)
    valid_frames, errors = [], []
    for row, file in enumerate(tqdm(manifest["file"], desc="featurize", unit="clip")):
        try:
            features[row], valid = clip_features(raw_dir / file, audio, mfcc)
        except AudioError as exc:
            errors.append(str(exc))
            valid = 0
        valid_frames.append(valid)
    if errors:
        raise FeaturizeError(f"{len(errors)} clip(s) could not be featurized:\n  " + "\n  ".join(errors))
    index = manifest[INDEX_COLUMNS[:-1]].assign(valid_frames=valid_frames)
    return features, index


def save_features(out_dir: Path, features: np.ndarray, index: pd.DataFrame, audio: AudioParams, mfcc: MfccParams) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    np.save(out_dir / FEATURES_FILE, features)
    index.to_csv(out_dir / INDEX_FILE, index=False)
    params = {"audio": audio.model_dump(), "mfcc": mfcc.model_dump()}
    (out_dir / PARAMS_FILE).write_text(json.dumps(params, indent=2) + "\n")


def load_features(feature_dir: Path) -> tuple[np.ndarray, pd.DataFrame, dict]:
    """Features, their index and the audio/MFCC params that made them."""
    params = json.loads((feature_dir / PARAMS_FILE).read_text())
    return np.load(feature_dir / FEATURES_FILE), pd.read_csv(feature_dir / INDEX_FILE), params
