"""A fold's model from its trained members, without TensorFlow: calibration, summary, the saved directory.

Members train apart (:mod:`ser.training`, possibly in other processes, each
saving its own network); this module joins them: the served graph
(:func:`ser.models.ensemble.combine`), the temperature fitted on the validation
clips, the fold's summary, and the model directory's metadata and split.
"""

from __future__ import annotations

import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import onnx
import pandas as pd

from ser.evaluation import rounded
from ser.inference import META_FILE, ONNX_FILE, SPLIT_FILE
from ser.inputs import Stats, input_name
from ser.models import ensemble
from ser.models.canonical import canonical
from ser.params import ModelParams, Params
from ser.split import TRAIN, VALIDATION


@dataclass
class Member:
    """One trained model of a fold: its ONNX graph, its validation probabilities, and what it leaves
    to save (a Keras network and its training history; nothing for a scikit-learn classifier).

    ``n_fit`` counts the inputs it trained on (augmented copies included); ``reference`` holds the
    statistics speakers' own shrink toward (``normalize: speaker``)."""

    params: ModelParams
    graph: onnx.ModelProto
    val_probabilities: np.ndarray
    network: Any = None  # a keras.Model, or None once saved (or for a classifier)
    history: dict[str, list[float]] | None = None
    n_fit: int = 0
    reference: Stats | None = None


@dataclass
class TrainedFold:
    members: list[Member]
    temperature: float
    summary: dict
    reference: dict[str, Stats]


def encode_labels(emotions: pd.Series, classes: Sequence[str]) -> np.ndarray:
    """One-hot targets in the order of ``classes``."""
    codes = pd.Categorical(emotions, categories=list(classes)).codes
    if (codes < 0).any():
        unknown = sorted(set(emotions) - set(classes))
        raise ValueError(f"emotions {unknown} are not among the classes {list(classes)}: rerun the labels stage")
    return np.eye(len(classes))[codes]


def history_summary(history: dict[str, list[float]], n_fit: int) -> dict:
    """Epochs run, fit-set size, and the best epoch (1-based) with its validation loss and accuracy."""
    best = int(np.argmin(history["val_loss"]))
    return {
        "epochs": len(history["val_loss"]),
        "best_epoch": best + 1,
        "n_fit": n_fit,
        "val_loss": rounded(history["val_loss"][best]),
        "val_accuracy": rounded(history["val_accuracy"][best]),
    }


def network_summaries(members: Sequence[Member]) -> dict[str, dict]:
    """Each network member's :func:`history_summary`, by architecture (networks that validated only)."""
    return {
        member.params.arch: history_summary(member.history, member.n_fit)
        for member in members if member.history is not None and "val_loss" in member.history
    }


def validation_scores(probabilities: np.ndarray, targets: np.ndarray) -> dict:
    """Log loss and accuracy of (calibrated) probabilities on the validation clips."""
    codes = targets.argmax(axis=1)
    picked = probabilities[np.arange(len(codes)), codes]
    return {
        "val_loss": rounded(-np.mean(np.log(picked + ensemble.TINY))),
        "val_accuracy": rounded(np.mean(probabilities.argmax(axis=1) == codes)),
    }


def assemble(members: list[Member], targets: np.ndarray, calibrate: bool, temperature: float | None = None) -> TrainedFold:
    """A fold's members joined: with validation ``targets``, the temperature is fitted on them
    (``calibrate``, else 1) and the fold is scored; without, ``temperature`` is used (default 1)."""
    summary: dict = {"members": network_summaries(members) if len(targets) else {}}
    if len(targets):
        mean = np.mean([member.val_probabilities for member in members], axis=0)
        temperature = ensemble.fit_temperature(mean, targets.argmax(axis=1)) if calibrate else 1.0
        summary.update(validation_scores(ensemble.calibrated(mean, temperature), targets))
    temperature = 1.0 if temperature is None else temperature
    reference = {input_name(m.params): m.reference for m in members if m.reference is not None}
    return TrainedFold(members, temperature, {**summary, "temperature": temperature}, reference)


def keras_file(arch: str) -> str:
    """The file a network member is saved in, in its model directory."""
    return f"{arch}.keras"


def _renumber_shared_objects(config: str) -> str:
    """Replace Keras's memory-address ``shared_object_id`` values by their order of appearance."""
    numbers: dict[str, int] = {}

    def renumber(match: re.Match) -> str:
        return f'"shared_object_id": {numbers.setdefault(match[1], len(numbers))}'

    return re.sub(r'"shared_object_id": (\d+)', renumber, config)


def make_archive_deterministic(path: Path) -> None:
    """Drop save times and memory addresses from a ``.keras`` archive, so equal models give equal bytes."""
    with zipfile.ZipFile(path) as archive:
        entries = [(info.filename, archive.read(info)) for info in archive.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, payload in entries:
            if name == "metadata.json":
                metadata = json.loads(payload)
                metadata.pop("date_saved", None)
                payload = json.dumps(metadata).encode()
            elif name == "config.json":
                payload = _renumber_shared_objects(payload.decode()).encode()
            archive.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), payload, zipfile.ZIP_DEFLATED)


def save_network(model_dir: Path, member: Member) -> None:
    """Save ``member``'s network (if it has one) in ``model_dir``, byte for byte the same for the same weights."""
    if member.network is not None:
        model_dir.mkdir(parents=True, exist_ok=True)
        member.network.save(model_dir / keras_file(member.params.arch))
        make_archive_deterministic(model_dir / keras_file(member.params.arch))


def model_meta(feature_params: dict, params: Params, fold: str, folds: Sequence[str]) -> dict:
    """What a saved model records of how it was made: the feature, split, model and train params,
    its classes, its fold and the protocol's folds."""
    made_with = params.model_dump(include={"split", "model", "train"})
    return {**feature_params, **made_with, "classes": params.data.emotions, "fold": fold, "folds": list(folds)}


def save_model(model_dir: Path, members: list[Member], temperature: float, index: pd.DataFrame, parts: np.ndarray,
               meta: dict, reference: dict[str, Stats]) -> None:
    """Write the served graph (:func:`ser.models.ensemble.combine`), each network not yet saved as Keras,
    the metadata (``meta`` with the classes, the temperature, what the model was trained on, the reference
    statistics of each input kind) and the split it was trained on."""
    model_dir.mkdir(parents=True, exist_ok=True)
    for member in members:
        save_network(model_dir, member)
    onnx.save(canonical(ensemble.combine([member.graph for member in members], temperature)), model_dir / ONNX_FILE)
    meta = {**meta, "temperature": temperature, "trained_on": trained_on(index, parts)}
    meta["reference_stats"] = {kind: {"mean": s[0].tolist(), "std": s[1].tolist()} for kind, s in reference.items()}
    (model_dir / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    index[["file", "corpus", "speaker", "text", "emotion"]].assign(part=parts).to_csv(model_dir / SPLIT_FILE, index=False)


def trained_on(index: pd.DataFrame, parts: np.ndarray) -> dict:
    """The corpora, speakers and clips a model learned from (its training and validation parts)."""
    seen = index[np.isin(parts, [TRAIN, VALIDATION])]
    return {
        "corpora": {corpus: int(n) for corpus, n in seen.groupby("corpus", sort=True).size().items()},
        "speakers": int(seen["speaker"].nunique()),
        "clips": int(len(seen)),
    }
