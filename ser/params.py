"""Schema and validation of ``params.yaml``.

Every stage validates the whole file before it does any work, so a typo or an
out-of-range value stops the pipeline with a message naming the key.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

RESAMPLERS = ("soxr_vhq", "soxr_hq", "soxr_mq", "soxr_lq", "soxr_qq", "polyphase", "fft", "scipy")
PROTOCOLS = ("speaker", "corpus", "text", "random")
RECIPES = ("tess", "ravdess", "emovo", "cremad", "savee", "emodb", "ased", "nemo", "csv")
"""The corpus recipes of :mod:`ser.corpora`, by name."""
RESERVED_CORPUS = "all"
"""What the reports call all corpora together (``confusion/all.png``): not a corpus name."""
NAME = r"^[a-z][a-z0-9_]*$"
"""Corpus and class names: lower case, digits and underscores (they name folders and columns)."""
NETWORKS = ("seed_lstm", "cnn1d", "bigru")
"""Keras networks (:mod:`ser.models.networks`)."""
CLASSIFIERS = ("logreg",)
"""scikit-learn classifiers of whole utterances (:mod:`ser.models.linear`)."""
ENSEMBLE = "ensemble"
ARCHS = (*NETWORKS, *CLASSIFIERS, ENSEMBLE)
FEATURE_KINDS = ("mfcc", "logmel")
FUNCTIONALS = ("egemaps", "compare")
"""openSMILE functional sets: eGeMAPSv02 (88), ComParE_2016 (6373)."""
MEMBER = rf"^({'|'.join(NETWORKS)}|({'|'.join(CLASSIFIERS)})(:({'|'.join(FUNCTIONALS)}))?)$"
"""An ensemble member: an architecture, and for a classifier optionally ``:<functional set>`` (e.g. ``logreg:compare``)."""
BALANCES = ("none", "corpus", "speaker")
NORMALIZATIONS = ("none", "utterance", "speaker")
MAX_SEED = 2**32 - 1


class ParamsError(ValueError):
    """Invalid parameters; the message names each bad key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class SourceParams(_Section):
    recipe: Literal[RECIPES]  # type: ignore[valid-type]
    source: str = Field(min_length=1, description="directory, .zip file, http(s) URL of a zip, or a CSV (recipe csv)")
    sha256: str = Field("", pattern=r"^([0-9a-fA-F]{64})?$", description="expected sha256 of a zip")

    @model_validator(mode="before")
    @classmethod
    def _no_map(cls, raw: object) -> object:
        if isinstance(raw, dict) and "map" in raw:
            raise ValueError("map is not a source key: a corpus's label map goes in data.maps.<corpus>")
        return raw


class DataParams(_Section):
    sources: dict[str, SourceParams] = Field(min_length=1, description="corpora by name, in this order")
    emotions: list[str] = Field(min_length=2, max_length=64, description="the classes, in the models' output order")
    maps: dict[str, dict[str, str | None]] = Field(
        default_factory=dict, description="per corpus: its emotion names -> a class of data.emotions, or null to leave out"
    )
    max_rejected_fraction: float = Field(ge=0, le=1)

    def map_of(self, corpus: str) -> dict[str, str | None]:
        """The label map of ``corpus`` (empty: its recipe's own mapping)."""
        return self.maps.get(corpus, {})

    @model_validator(mode="after")
    def _names_and_mappings(self) -> DataParams:
        for kind, names in (("source", list(self.sources)), ("emotion", self.emotions)):
            if bad := [name for name in names if not re.fullmatch(NAME, name)]:
                raise ValueError(f"{kind} names must be lower case letters, digits and _, starting with a letter: {bad}")
        if RESERVED_CORPUS in self.sources:
            raise ValueError(f"a source may not be named {RESERVED_CORPUS!r}: the reports use it for all corpora together")
        if len(set(self.emotions)) != len(self.emotions):
            raise ValueError(f"emotions must not repeat, got {self.emotions}")
        if unknown := sorted(set(self.maps) - set(self.sources)):
            raise ValueError(f"maps names corpora not in data.sources: {unknown} (sources: {', '.join(self.sources)})")
        for name, mapping in self.maps.items():
            if wrong := {label: target for label, target in mapping.items() if target is not None and target not in self.emotions}:
                raise ValueError(
                    f"maps.{name} maps onto classes not in data.emotions: {wrong} (emotions: {', '.join(self.emotions)})"
                )
        return self


class AudioParams(_Section):
    sr: int = Field(ge=1000, le=192_000)
    offset: float = Field(ge=0)
    duration: float = Field(gt=0, le=600)
    res_type: Literal[RESAMPLERS]  # type: ignore[valid-type]
    level_dbfs: float | None = Field(None, ge=-80, le=0, description="active level each window is scaled to before its features; None = as recorded")

    @property
    def n_samples(self) -> int:
        """Samples in one fixed-length window at the target rate."""
        return int(round(self.duration * self.sr))


class FeatureParams(_Section):
    kind: Literal[FEATURE_KINDS]  # type: ignore[valid-type]
    n_mfcc: int = Field(gt=0, le=128)
    n_mels: int = Field(gt=0, le=512)
    n_fft: int = Field(ge=16, le=65_536)
    hop_length: int = Field(gt=0)
    functionals: list[Literal[FUNCTIONALS]] = Field(  # type: ignore[valid-type]
        default_factory=list, max_length=len(FUNCTIONALS), description="openSMILE functional sets computed per clip"
    )

    @model_validator(mode="after")
    def _consistent(self) -> FeatureParams:
        if self.n_fft % 2:
            raise ValueError(f"n_fft must be even, got {self.n_fft}")
        if len(set(self.functionals)) < len(self.functionals):
            raise ValueError(f"functionals must not repeat a set, got {self.functionals}")
        if self.hop_length > self.n_fft:
            raise ValueError(f"hop_length ({self.hop_length}) must not exceed n_fft ({self.n_fft})")
        if self.kind == "mfcc" and self.n_mfcc > self.n_mels:
            raise ValueError(f"n_mfcc ({self.n_mfcc}) must not exceed n_mels ({self.n_mels})")
        return self

    @property
    def n_channels(self) -> int:
        """Coefficients per frame."""
        return self.n_mfcc if self.kind == "mfcc" else self.n_mels


def _check_range(name: str, bounds: list[float]) -> None:
    if bounds and (len(bounds) != 2 or bounds[0] > bounds[1]):
        raise ValueError(f"{name} must be [] (off) or [low, high] with low <= high, got {bounds}")


class AugmentParams(_Section):
    copies: int = Field(ge=0, le=64, description="augmented copies of every clip; 0 turns augmentation off")
    seed: int = Field(ge=0, le=MAX_SEED)
    noise_snr_db: list[float] = Field(max_length=2, description="white noise at an SNR drawn from [low, high] dB")
    shift_s: float = Field(ge=0, le=5, description="largest time shift, either way (s)")
    pitch_semitones: float = Field(ge=0, le=12, description="largest pitch shift, up or down")
    tempo: list[float] = Field(max_length=2, description="tempo factor drawn from [low, high]")
    gain_db: float = Field(ge=0, le=40, description="largest gain change, up or down (dB)")
    reverb_prob: float = Field(0.0, ge=0, le=1, description="share of copies with synthetic room reverberation")
    reverb_rt60_s: list[float] = Field([0.2, 0.8], min_length=2, max_length=2, description="RT60 drawn from [low, high] (s)")
    tilt_db_per_octave: float = Field(0.0, ge=0, le=12, description="largest spectral tilt around 1 kHz, either way (dB per octave)")
    telephone_prob: float = Field(0.0, ge=0, le=1, description="share of copies band-limited to 300-3400 Hz")
    codec_prob: float = Field(0.0, ge=0, le=1, description="share of copies passed through an MP3 codec")

    @model_validator(mode="after")
    def _ranges(self) -> AugmentParams:
        _check_range("noise_snr_db", self.noise_snr_db)
        _check_range("tempo", self.tempo)
        _check_range("reverb_rt60_s", self.reverb_rt60_s)
        if not 0.01 <= self.reverb_rt60_s[0] <= self.reverb_rt60_s[1] <= 5:
            raise ValueError(f"reverb_rt60_s must lie in [0.01, 5] s, got {self.reverb_rt60_s}")
        if self.tempo and not 0.25 <= self.tempo[0] <= self.tempo[1] <= 4:
            raise ValueError(f"tempo factors must lie in [0.25, 4], got {self.tempo}")
        if self.noise_snr_db and not -20 <= self.noise_snr_db[0] <= self.noise_snr_db[1] <= 100:
            raise ValueError(f"noise_snr_db must lie in [-20, 100] dB, got {self.noise_snr_db}")
        return self


CHAIN_TRANSFORMS = (
    "gain_-30db", "gain_-20db", "gain_-10db", "gain_+6db", "tilt_+3db_oct", "tilt_-3db_oct",
    "telephone", "opus_24k", "mp3_32k", "room", "noise_20db",
)
"""The fixed transforms of the recording chain that robustness scoring can pass clips through (:mod:`ser.chain`)."""


class RobustnessParams(_Section):
    transforms: list[Literal[CHAIN_TRANSFORMS]] = Field(  # type: ignore[valid-type]
        max_length=len(CHAIN_TRANSFORMS), description="transforms each scored clip passes through, one at a time"
    )
    clips_per_class: int = Field(ge=0, le=100_000, description="clips drawn per corpus and class; 0 turns robustness scoring off")
    seed: int = Field(ge=0, le=MAX_SEED)

    @model_validator(mode="after")
    def _distinct(self) -> RobustnessParams:
        if len(set(self.transforms)) < len(self.transforms):
            raise ValueError(f"transforms must not repeat, got {self.transforms}")
        return self


class FeaturizeRuntime(_Section):
    workers: int = Field(0, ge=0, le=1024, description="local worker processes; 0 = one per CPU core")
    scheduler: str = Field(
        "", pattern=r"^((tcp|tls|ucx)://\S+)?$", description="'' = local processes, or a Dask scheduler address"
    )
    batch_size: int = Field(16, gt=0, le=4096, description="clips per task sent to a worker")
    cache: str = Field("~/.cache/ser/features", description="directory of the per-clip feature cache; '' = no cache")
    cache_limit_gb: float = Field(20.0, gt=0, le=1_000_000, description="size of the cache before old entries go")


class TrainRuntime(_Section):
    workers: int = Field(0, ge=0, le=256, description="folds trained at once, one process each; 0 = one per CPU core")


class RuntimeParams(_Section):
    """How the stages run, not what they compute: no stage tracks this section (changing it reruns nothing)."""

    featurize: FeaturizeRuntime = FeaturizeRuntime()
    train: TrainRuntime = TrainRuntime()


class SplitParams(_Section):
    protocol: Literal[PROTOCOLS]  # type: ignore[valid-type]
    folds: int = Field(ge=2, le=1000, description="speaker: folds of whole speakers, each tested once")
    train_corpora: list[str] = Field(max_length=1000, description="corpus: train on these only; [] = leave one corpus out")
    test_fraction: float = Field(gt=0, lt=1)
    validation_fraction: float = Field(gt=0, lt=1)
    seed: int = Field(ge=0, le=MAX_SEED)


class SpecAugmentParams(_Section):
    time_masks: int = Field(ge=0, le=16)
    time_width: int = Field(ge=0, le=1000, description="largest masked run of frames")
    feature_masks: int = Field(ge=0, le=16)
    feature_width: int = Field(ge=0, le=512, description="largest masked run of coefficients")


class ModelParams(_Section):
    arch: Literal[ARCHS]  # type: ignore[valid-type]
    deltas: int = Field(ge=0, le=2, description="append delta (1) and delta-delta (2) coefficients")
    normalize: Literal[NORMALIZATIONS]  # type: ignore[valid-type]
    lstm_units: int = Field(gt=0, le=4096)
    dense_units: list[int] = Field(min_length=0, max_length=8)
    dropout: float = Field(ge=0, lt=1)
    filters: int = Field(gt=0, le=4096)
    kernel_size: int = Field(gt=0, le=64)
    conv_layers: int = Field(gt=0, le=16)
    rnn_units: int = Field(gt=0, le=4096)
    max_frames: int = Field(0, ge=0, le=100_000, description="bigru: frames kept from the start of each clip; 0 = all")
    time_stride: int = Field(1, gt=0, le=16, description="bigru: average runs of this many frames before the GRU")
    input_noise: float = Field(ge=0, le=10, description="std of Gaussian noise added to inputs in training")
    spec_augment: SpecAugmentParams
    shrinkage: float = Field(0.0, ge=0, le=1e6, description="speaker statistics shrink toward the training "
                             "population's as if it added this many clips (normalize: speaker)")
    logreg_c: float = Field(1.0, gt=0, le=1e6, description="logreg: inverse L2 regularization strength")
    functionals: Literal[(*FUNCTIONALS, "none")] = Field(  # type: ignore[valid-type]
        "none", description="the functional set an utterance classifier reads besides the frame statistics"
    )
    members: list[str] = Field(
        default_factory=list, max_length=8, description="ensemble: the members (arch, or classifier:functionals), probabilities averaged"
    )

    @model_validator(mode="after")
    def _consistent(self) -> ModelParams:
        if any(units <= 0 for units in self.dense_units):
            raise ValueError(f"dense_units must all be > 0, got {self.dense_units}")
        if bad := [member for member in self.members if not re.fullmatch(MEMBER, member)]:
            raise ValueError(f"members must be architectures, or {'|'.join(CLASSIFIERS)}:<{'|'.join(FUNCTIONALS)}>, got {bad}")
        if self.arch == ENSEMBLE:
            distinct = {(member.arch, member.functionals if member.arch in CLASSIFIERS else "") for member in self.member_params()}
            if len(self.members) < 2 or len(distinct) < len(self.members):
                raise ValueError(f"ensemble members must be at least two, none repeated (the same model twice), got {self.members}")
        if self.arch != ENSEMBLE and self.members:
            raise ValueError(f"members are for arch ensemble, not {self.arch}")
        return self

    def member_params(self) -> list[ModelParams]:
        """The params of each model to train: the ensemble's members, or this model alone."""
        if self.arch != ENSEMBLE:
            return [self]
        members = []
        for member in self.members:
            arch, _, functionals = member.partition(":")
            members.append(self.model_copy(update={"arch": arch, "members": [], "functionals": functionals or self.functionals}))
        return members

    def functional_sets(self) -> set[str]:
        """The functional sets the model's classifiers read."""
        return {m.functionals for m in self.member_params() if m.arch in CLASSIFIERS and m.functionals != "none"}


class TrainParams(_Section):
    epochs: int = Field(gt=0, le=10_000)
    batch_size: int = Field(gt=0, le=65_536)
    learning_rate: float = Field(gt=0, le=1)
    early_stopping: int = Field(ge=0, le=10_000, description="patience in epochs on val_loss; 0 = off")
    reduce_lr: int = Field(ge=0, le=10_000, description="patience before halving the learning rate; 0 = off")
    seed: int = Field(ge=0, le=MAX_SEED)
    balance: Literal[BALANCES] = "none"  # type: ignore[valid-type]
    calibrate: bool = False


class ServeParams(_Section):
    max_upload_mb: float = Field(20.0, gt=0, le=4096, description="largest upload the web app accepts (MB)")
    max_duration_s: float = Field(300.0, gt=0, le=86_400, description="longest clip the web app accepts (s)")
    workers: int = Field(1, gt=0, le=64, description="server processes, each with its own copy of the model")
    max_uploads_in_flight: int = Field(8, gt=0, le=1024, description="uploads each server process handles at once; more get 503")
    body_timeout_s: float = Field(60.0, gt=0, le=3600, description="seconds a client has to send a request's whole body; then 408")


class Params(_Section):
    data: DataParams
    audio: AudioParams
    features: FeatureParams
    augment: AugmentParams
    robustness: RobustnessParams
    split: SplitParams
    model: ModelParams
    train: TrainParams
    runtime: RuntimeParams = RuntimeParams()
    serve: ServeParams = ServeParams()

    @model_validator(mode="after")
    def _functionals_computed(self) -> Params:
        if missing := sorted(self.model.functional_sets() - set(self.features.functionals)):
            raise ValueError(f"model reads functionals {missing} that features.functionals {self.features.functionals} does not compute")
        return self


def describe_error(error: dict) -> str:
    """One pydantic error as ``key: message (got value)``."""
    key = ".".join(str(part) for part in error["loc"]) or "<top level>"
    if error["type"] == "extra_forbidden":
        return f"{key}: unknown key"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "missing":
        return f"{key}: missing"
    if not error["loc"]:  # a check across sections: the input is the whole file
        return f"{key}: {message}"
    return f"{key}: {message} (got {error['input']!r})"


def validate_params(raw: object, origin: str = "params") -> Params:
    """Validate a parsed params mapping; raise ``ParamsError`` listing every problem."""
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        problems = "\n  ".join(describe_error(err) for err in exc.errors())
        raise ParamsError(f"invalid {origin}:\n  {problems}") from None


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate ``params.yaml``."""
    path = Path(path)
    with path.open() as handle:
        return validate_params(yaml.safe_load(handle), origin=str(path))
