"""Shared fixtures: synthetic audio, the repo's params and classes, the real TESS corpus, a served model."""

from __future__ import annotations

import copy
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from ser.determinism import kernel_environment

os.environ.update(kernel_environment())  # before numpy loads: tests train with the train stage's kernels

import numpy as np  # noqa: E402
import opensmile  # noqa: F401 - before any test module imports TensorFlow: openSMILE, loaded after it, crashes
import pytest
import soundfile as sf
import yaml

from ser.params import (
    AudioParams, AugmentParams, FeatureParams, ModelParams, Params, SplitParams, TrainParams, validate_params,
)
from ser.paths import FOLD_MODEL_DIR, METRICS, MODEL_DIR

REPO = Path(__file__).resolve().parents[1]
PARAMS_YAML = REPO / "params.yaml"
TESS_DIR = Path(__file__).parents[1] / ".." / "shared" / "data" / "tess"
REPO_CLASSES: tuple[str, ...] = tuple(yaml.safe_load(PARAMS_YAML.read_text())["data"]["emotions"])
"""The classes of params.yaml (``data.emotions``), in the models' output order (``served_model_dir``'s too)."""
REPO_SR: int = yaml.safe_load(PARAMS_YAML.read_text())["audio"]["sr"]
"""The target sample rate of params.yaml (``audio.sr``), for parametrizations that cannot use ``audio_params``."""

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


SERVED_CORPORA = {"tess": ("OAF", "YAF"), "ravdess": ("03",), "emovo": ("f1",)}
"""The corpora and speakers of the clips that ``served_model_dir`` was "trained" on."""
SERVED_FOLDS = ("fold1", "fold2")
SERVED_MEMBERS = ("logreg", "logreg:compare", "bigru")
"""The served model is an ensemble, as params.yaml's: an utterance classifier on eGeMAPS (``model.functionals``),
one on ComParE, and a frame network."""
SERVED_FUNCTIONALS = ("egemaps", "compare")
"""The functional sets the served model's features compute (``features.functionals``)."""
SERVED_INPUTS = ("utterance_egemaps", "utterance_compare", "frames")
"""The served graph's inputs, one per member (``ser.inputs.input_name``)."""


@dataclass(frozen=True)
class ServedModel:
    """``served_model``: the model directory, and its members as they were before export (the
    reference that the served ONNX graph is compared with)."""

    model_dir: Path
    network: object
    """The bigru member, a ``keras.Model`` (also saved as ``bigru.keras``)."""
    classifiers: dict
    """The logreg members by the input they read (``utterance_egemaps``, ``utterance_compare``), fitted
    scikit-learn pipelines (saved only as part of ``model.onnx``)."""


@pytest.fixture(scope="session")
def served_model(tmp_path_factory, repo_params) -> ServedModel:
    """A small seeded ensemble (logreg on eGeMAPS, logreg on ComParE, and a bigru) saved as the train stage
    saves the deployable model
    (``models/``, fold ``all``, trained on every clip): the served ONNX graph, the network as Keras,
    split, and meta.json with the repo's audio/feature params, classes, folds, what it was trained on,
    temperature 1 and reference statistics of each input kind, from one synthetic clip per class
    from three corpora and four speakers.

    The bigru is untrained and the logregs learned seven clips: tests compare paths (Keras and
    scikit-learn vs ONNX, CLI vs web app), not accuracy."""
    import pandas as pd

    from ser import assembly, training
    from ser.features import INDEX_COLUMNS, frame_features
    from ser.functionals import functional_sets
    from ser.inputs import UTTERANCE, input_kind, input_name
    from ser.models import linear
    from ser.models.networks import build_model
    from ser.split import TRAIN

    audio = repo_params.audio
    features = repo_params.features.model_copy(update={"functionals": list(SERVED_FUNCTIONALS)})
    classes = list(repo_params.data.emotions)
    params = repo_params.model.model_copy(
        update={"arch": "ensemble", "members": list(SERVED_MEMBERS), "functionals": "egemaps", "rnn_units": 8, "dense_units": [8]}
    )
    # what params.yaml would be with these sections: valid, the model reading only sets that are computed
    Params(**{**repo_params.model_dump(), "features": features.model_dump(), "model": params.model_dump()})
    assert [input_name(member) for member in params.member_params()] == list(SERVED_INPUTS)
    speakers = [(corpus, f"{corpus}/{speaker}") for corpus, names in SERVED_CORPORA.items() for speaker in names]
    tones = [make_tone(audio.sr, 1.5 + 0.2 * k, seed=k, f0=120.0 + 30 * k) for k in range(len(classes))]
    computed = [frame_features(tone, audio, features) for tone in tones]
    values = np.stack([v for v, _ in computed])
    computed_sets = [functional_sets(tone, audio.sr, features.functionals) for tone in tones]
    described = {kind: np.stack([found[kind] for found in computed_sets]) for kind in features.functionals}
    corpus_speaker = [speakers[k % len(speakers)] for k in range(len(classes))]
    index = pd.DataFrame({
        "file": [f"{c}/{s.split('/')[1]}_t{k}_{e}.wav" for k, ((c, s), e) in enumerate(zip(corpus_speaker, classes))],
        "corpus": [c for c, _ in corpus_speaker], "speaker": [s for _, s in corpus_speaker],
        "text": [f"t{k}" for k in range(len(classes))], "emotion": classes, "valid_frames": [n for _, n in computed],
    }, columns=INDEX_COLUMNS)
    no_copies = (values[:0], pd.DataFrame(columns=[*INDEX_COLUMNS, "source", "copy"]))
    clips = training.Clips(values, index, no_copies, described)
    parts = np.full(len(index), TRAIN, dtype=object)  # the deployable model learns from every clip
    members, network, classifiers = [], None, {}
    for member in params.member_params():
        name = input_name(member)
        data = training.fold_data(clips, parts, member, classes)
        nothing = np.zeros((0, len(classes)))
        if input_kind(member.arch) == UTTERANCE:
            classifier = linear.fit_classifier(data.fit_x, data.fit_y.argmax(axis=1), len(classes), member)
            classifiers[name] = classifier
            members.append(assembly.Member(member, linear.export_onnx(classifier, data.fit_x.shape[1], name), nothing))
        else:
            training.make_deterministic(0)
            network = build_model(data.fit_x.shape[1:], len(classes), member, seed=0)
            members.append(assembly.Member(member, training.export_onnx(network, name), nothing, network))
    reference = {input_name(m): training.reference_stats(clips, parts, m) for m in params.member_params()}
    meta = {
        **repo_params.model_dump(include={"audio", "split", "train"}), "features": features.model_dump(),
        "model": params.model_dump(), "classes": classes, "fold": "all", "folds": list(SERVED_FOLDS),
    }
    model_dir = tmp_path_factory.mktemp("served") / MODEL_DIR
    assembly.save_model(model_dir, members, 1.0, index, parts, meta, reference)
    return ServedModel(model_dir, network, classifiers)


@pytest.fixture(scope="session")
def served_model_dir(served_model) -> Path:
    """The directory of ``served_model``."""
    return served_model.model_dir


def served_project(served_model_dir: Path, root: Path, report: dict, fold: str = "all") -> Path:
    """``served_model_dir`` copied into a project at ``root`` whose evaluation report is ``report``: as
    the deployable model (``root/models``), or as the model of ``fold`` (``root/models/folds/<fold>``)."""
    model_dir = root / MODEL_DIR if fold == "all" else root / FOLD_MODEL_DIR / fold
    shutil.copytree(served_model_dir, model_dir)
    meta = json.loads((model_dir / "meta.json").read_text())
    (model_dir / "meta.json").write_text(json.dumps({**meta, "fold": fold}))
    (root / METRICS).parent.mkdir(parents=True)
    (root / METRICS).write_text(json.dumps(report))
    return model_dir
