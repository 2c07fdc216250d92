"""Shared fixtures: synthetic audio, the repo's params, the real TESS corpus."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from ser.params import (
    AudioParams, AugmentParams, FeatureParams, ModelParams, Params, SplitParams, TrainParams, validate_params,
)

REPO = Path(__file__).resolve().parents[1]
PARAMS_YAML = REPO / "params.yaml"
TESS_DIR = Path(__file__).parents[1] / ".." / "shared" / "data" / "tess"

# Vowel-like formant centres (Hz) and bandwidths, loosely /a/.
_FORMANTS = ((730.0, 90.0), (1090.0, 110.0), (2440.0, 170.0))


def make_tone(
    sr: int,
    seconds: float,
    channels: int = 1,
    seed: int = 0,
    f0: float = 180.0,
    amplitude: float = 0.5,
) -> np.ndarray:
    """A voice-like test signal: harmonics of ``f0`` shaped by formants, a slow
    vibrato, an amplitude envelope and a little seeded noise.

    Returns float64 of shape ``(n,)`` for mono or ``(n, channels)``; every
    channel differs (other f0, other noise) so a channel mix-up shows.
    """
    rng = np.random.default_rng(seed)
    n = int(round(sr * seconds))
    t = np.arange(n) / sr
    out = np.zeros((n, channels))
    for ch in range(channels):
        base = f0 * (1.0 + 0.15 * ch)
        phase = 2 * np.pi * np.cumsum(base * (1.0 + 0.02 * np.sin(2 * np.pi * 5.0 * t))) / sr
        signal = np.zeros(n)
        for k in range(1, 40):
            freq = k * base
            if freq >= 0.45 * sr:
                break
            gain = sum(1.0 / (1.0 + ((freq - fc) / bw) ** 2) for fc, bw in _FORMANTS) + 0.02
            signal += gain * np.sin(k * phase + rng.uniform(0, 2 * np.pi))
        envelope = np.minimum(1.0, np.minimum(t, t[-1] - t if n else t) / 0.05 + 1e-3)
        signal *= envelope
        signal /= max(np.max(np.abs(signal)), 1e-9)
        out[:, ch] = amplitude * signal + 0.005 * rng.standard_normal(n)
    out = np.clip(out, -0.99, 0.99)
    return out[:, 0] if channels == 1 else out


def write_tone_file(
    path: str | Path,
    sr: int = 24414,
    seconds: float = 2.0,
    channels: int = 1,
    subtype: str = "PCM_16",
    format: str | None = None,  # noqa: A002 - mirrors soundfile's argument
    seed: int = 0,
    f0: float = 180.0,
) -> Path:
    """Write a synthetic clip with soundfile (format from the extension unless given)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = make_tone(sr, seconds, channels=channels, seed=seed, f0=f0)
    sf.write(str(path), data, sr, subtype=subtype, format=format)
    return path


@pytest.fixture(scope="session")
def write_tone():
    """``write_tone(path, sr=..., seconds=..., channels=1, subtype="PCM_16", format=None, seed=0, f0=180.0)``."""
    return write_tone_file


@pytest.fixture(scope="session")
def params_yaml() -> dict:
    """The repo's params.yaml, parsed (a fresh deep copy per use via ``raw_params``)."""
    with PARAMS_YAML.open() as handle:
        return yaml.safe_load(handle)


@pytest.fixture
def raw_params(params_yaml) -> dict:
    """A mutable deep copy of params.yaml."""
    return copy.deepcopy(params_yaml)


@pytest.fixture(scope="session")
def repo_params(params_yaml) -> Params:
    """params.yaml, validated; the section fixtures below are its parts."""
    return validate_params(params_yaml)


@pytest.fixture(scope="session")
def audio_params(repo_params) -> AudioParams:
    return repo_params.audio


@pytest.fixture(scope="session")
def feature_params(repo_params) -> FeatureParams:
    return repo_params.features


@pytest.fixture(scope="session")
def augment_params(repo_params) -> AugmentParams:
    return repo_params.augment


@pytest.fixture(scope="session")
def model_params(repo_params) -> ModelParams:
    return repo_params.model


@pytest.fixture(scope="session")
def train_params(repo_params) -> TrainParams:
    return repo_params.train


@pytest.fixture(scope="session")
def split_params(repo_params) -> SplitParams:
    return repo_params.split


@pytest.fixture(scope="session")
def tess_dir() -> Path:
    """The real TESS corpus at ../shared/data/tess, or skip."""
    path = TESS_DIR.resolve()
    if not path.is_dir():
        pytest.skip(f"real TESS corpus not found at {path} (see shared/data/README.md)")
    return path
