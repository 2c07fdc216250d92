"""Schema and validation of ``params.yaml``.

Every stage validates the whole file before it does any work, so a typo or an
out-of-range value stops the pipeline with a message naming the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

RESAMPLERS = ("soxr_vhq", "soxr_hq", "soxr_mq", "soxr_lq", "soxr_qq", "polyphase", "fft", "scipy")
PROTOCOLS = ("random", "speaker", "word")
ARCHS = ("seed_lstm",)
MAX_SEED = 2**32 - 1


class ParamsError(ValueError):
    """Invalid parameters; the message names each bad key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class DataParams(_Section):
    source: str = Field(min_length=1, description="directory, .zip file or http(s) URL of a zip")
    sha256: str = Field("", pattern=r"^([0-9a-fA-F]{64})?$", description="expected sha256 of a zip")
    max_rejected_fraction: float = Field(ge=0, le=1)


class AudioParams(_Section):
    sr: int = Field(ge=1000, le=192_000)
    offset: float = Field(ge=0)
    duration: float = Field(gt=0, le=600)
    res_type: Literal[RESAMPLERS]  # type: ignore[valid-type]

    @property
    def n_samples(self) -> int:
        """Samples in one fixed-length window at the target rate."""
        return int(round(self.duration * self.sr))


class MfccParams(_Section):
    n_mfcc: int = Field(gt=0, le=128)
    n_fft: int = Field(ge=16, le=65_536)
    hop_length: int = Field(gt=0)
    pooling: Literal["mean", "none"]

    @model_validator(mode="after")
    def _hop_within_window(self) -> MfccParams:
        if self.hop_length > self.n_fft:
            raise ValueError(f"hop_length ({self.hop_length}) must not exceed n_fft ({self.n_fft})")
        return self


class SplitParams(_Section):
    protocol: Literal[PROTOCOLS]  # type: ignore[valid-type]
    test_speaker: str = Field(min_length=1)
    test_fraction: float = Field(gt=0, lt=1)
    validation_fraction: float = Field(gt=0, lt=1)
    seed: int = Field(ge=0, le=MAX_SEED)


class ModelParams(_Section):
    arch: Literal[ARCHS]  # type: ignore[valid-type]
    lstm_units: int = Field(gt=0, le=4096)
    dense_units: list[int] = Field(min_length=0, max_length=8)
    dropout: float = Field(ge=0, lt=1)

    @model_validator(mode="after")
    def _positive_dense_units(self) -> ModelParams:
        if any(units <= 0 for units in self.dense_units):
            raise ValueError(f"dense_units must all be > 0, got {self.dense_units}")
        return self


class TrainParams(_Section):
    epochs: int = Field(gt=0, le=10_000)
    batch_size: int = Field(gt=0, le=65_536)
    learning_rate: float = Field(gt=0, le=1)
    seed: int = Field(ge=0, le=MAX_SEED)


class Params(_Section):
    data: DataParams
    audio: AudioParams
    mfcc: MfccParams
    split: SplitParams
    model: ModelParams
    train: TrainParams


def _describe(error: dict) -> str:
    key = ".".join(str(part) for part in error["loc"]) or "<top level>"
    if error["type"] == "extra_forbidden":
        return f"{key}: unknown key"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "missing":
        return f"{key}: missing"
    return f"{key}: {message} (got {error['input']!r})"


def validate_params(raw: object, origin: str = "params") -> Params:
    """Validate a parsed params mapping; raise ``ParamsError`` listing every problem."""
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        problems = "\n  ".join(_describe(err) for err in exc.errors())
        raise ParamsError(f"invalid {origin}:\n  {problems}") from None


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate ``params.yaml``."""
    path = Path(path)
    with path.open() as handle:
        return validate_params(yaml.safe_load(handle), origin=str(path))
