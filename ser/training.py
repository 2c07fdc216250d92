"""Training: seeded, deterministic, logged per epoch with dvclive."""

from __future__ import annotations

import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from dvclive import Live
from dvclive.keras import DVCLiveCallback

from ser.inference import META_FILE, MODEL_FILE, ONNX_FILE, SPLIT_FILE
from ser.inputs import Stats, model_inputs, speaker_stats
from ser.models import build_model
from ser.params import ModelParams, TrainParams
from ser.split import TRAIN, VALIDATION


def make_deterministic(seed: int) -> None:
    """Start from a fresh Keras state (layer names too), seed everything, make ops deterministic."""
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def encode_labels(emotions: pd.Series, classes: Sequence[str]) -> np.ndarray:
    """One-hot targets in the order of ``classes``."""
    codes = pd.Categorical(emotions, categories=list(classes)).codes
    if (codes < 0).any():
        unknown = sorted(set(emotions) - set(classes))
        raise ValueError(f"emotions {unknown} are not among the classes {list(classes)}: rerun the labels stage")
    return keras.utils.to_categorical(codes, len(classes))


@dataclass
class FoldData:
    """Inputs and targets of one fold: ``fit`` (training clips and their augmented copies) and ``val``
    (empty when the model trains on everything)."""

    classes: tuple[str, ...]
    fit_x: np.ndarray
    fit_y: np.ndarray
    fit_index: pd.DataFrame
    val_x: np.ndarray
    val_y: np.ndarray


def fold_data(
    features: np.ndarray,
    index: pd.DataFrame,
    augmented: tuple[np.ndarray, pd.DataFrame],
    parts: np.ndarray,
    params: ModelParams,
    classes: Sequence[str],
) -> FoldData:
    """Model inputs of the training clips plus their augmented copies, and of the validation clips.

    Only copies whose source clip is in the ``train`` part are used; validation
    and test clips are never augmented.
    """
    speakers = index["speaker"].to_numpy(dtype=str)
    stats = speaker_stats(features, index["valid_frames"], speakers, params.deltas) if params.normalize == "speaker" else None
    inputs = model_inputs(features, index["valid_frames"], speakers, params, stats)
    fit_rows, val_rows = parts == TRAIN, parts == VALIDATION
    aug_values, aug_index = augmented
    copies = fit_rows[aug_index["source"].to_numpy(dtype=int)]
    aug_index = aug_index[copies].reset_index(drop=True)
    aug_inputs = model_inputs(aug_values[copies], aug_index["valid_frames"], aug_index["speaker"], params, stats)
    fit_index = pd.concat([index[fit_rows].assign(copy=0), aug_index.drop(columns="source")], ignore_index=True)
    return FoldData(
        classes=tuple(classes),
        fit_x=np.concatenate([inputs[fit_rows], aug_inputs]),
        fit_y=encode_labels(fit_index["emotion"], classes),
        fit_index=fit_index,
        val_x=inputs[val_rows],
        val_y=encode_labels(index["emotion"][val_rows], classes),
    )


def _callbacks(params: TrainParams, live_dir: Path | None, validate: bool) -> list[keras.callbacks.Callback]:
    callbacks: list[keras.callbacks.Callback] = []
    if params.early_stopping and validate:
        callbacks.append(keras.callbacks.EarlyStopping(patience=params.early_stopping, restore_best_weights=True))
    if params.reduce_lr and validate:
        callbacks.append(keras.callbacks.ReduceLROnPlateau(factor=0.5, patience=params.reduce_lr, min_lr=1e-5))
    if live_dir is not None:
        callbacks.append(DVCLiveCallback(live=Live(str(live_dir), dvcyaml=False, save_dvc_exp=False)))
    return callbacks


def train_model(
    data: FoldData,
    model_params: ModelParams,
    train_params: TrainParams,
    live_dir: Path | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    epochs: int | None = None,
) -> tuple[keras.Model, dict[str, list[float]]]:
    """Train on ``data.fit_*``, validate (early stopping, learning rate) on ``data.val_*``.

    Without validation clips the model trains for ``epochs`` (default ``train.epochs``)
    epochs, with no early stopping. ``callbacks`` run besides the ones the params ask
    for (e.g. timers).
    """
    make_deterministic(train_params.seed)
    validate = len(data.val_x) > 0
    model = build_model(data.fit_x.shape[1:], len(data.classes), model_params, seed=train_params.seed)
    model.compile(
        loss="categorical_crossentropy",
        optimizer=keras.optimizers.Adam(learning_rate=train_params.learning_rate),
        metrics=["accuracy"],
    )
    history = model.fit(
        data.fit_x, data.fit_y,
        validation_data=(data.val_x, data.val_y) if validate else None,
        epochs=epochs or train_params.epochs, batch_size=train_params.batch_size,
        callbacks=[*_callbacks(train_params, live_dir, validate), *callbacks], verbose=2,
    )
    if live_dir is not None:  # dvclive's own summary: the train stage writes one for all folds
        (live_dir / "metrics.json").unlink(missing_ok=True)
    return model, history.history


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


def reference_stats(features: np.ndarray, index: pd.DataFrame, parts: np.ndarray, params: ModelParams) -> Stats | None:
    """Channel statistics pooled over the clips the model learns from (training and validation), for
    ``normalize: speaker``: what serving uses for a clip of an unknown speaker."""
    if params.normalize != "speaker":
        return None
    rows = np.isin(parts, [TRAIN, VALIDATION])
    pooled = np.zeros(int(rows.sum()), dtype=str)
    return speaker_stats(features[rows], index["valid_frames"][rows], pooled, params.deltas)[""]


def export_onnx(model: keras.Model, path: Path) -> None:
    """Export ``model`` for onnxruntime, with a dynamic batch size."""
    signature = [tf.TensorSpec((None, *model.input_shape[1:]), tf.float32, name="inputs")]
    model.export(str(path), format="onnx", input_signature=signature, verbose=False)


def save_model(
    model_dir: Path,
    model: keras.Model,
    index: pd.DataFrame,
    parts: np.ndarray,
    meta: dict,
    stats: Stats | None = None,
) -> None:
    """Write the model (Keras and ONNX), its metadata (``meta`` with the classes, what it was trained
    on, reference statistics ``stats``) and the split it was trained on."""
    model_dir.mkdir(parents=True, exist_ok=True)
    model.save(model_dir / MODEL_FILE)
    make_archive_deterministic(model_dir / MODEL_FILE)
    export_onnx(model, model_dir / ONNX_FILE)
    meta = {**meta, "input_shape": list(model.input_shape[1:]), "trained_on": trained_on(index, parts)}
    if stats is not None:
        meta["reference_stats"] = {"mean": stats[0].tolist(), "std": stats[1].tolist()}
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


def history_summary(history: dict[str, list[float]], n_fit: int) -> dict:
    """Epochs run, fit-set size, and the best epoch (1-based) with its validation loss and accuracy."""
    best = int(np.argmin(history["val_loss"]))
    return {
        "epochs": len(history["val_loss"]),
        "best_epoch": best + 1,
        "n_fit": n_fit,
        "val_loss": float(f"{history['val_loss'][best]:.6g}"),
        "val_accuracy": round(float(history["val_accuracy"][best]), 6),
    }


def mean_summary(folds: dict[str, dict]) -> dict:
    """Validation scores averaged over folds (the model-selection score), and each fold's."""
    return {
        "val_loss": float(f"{np.mean([f['val_loss'] for f in folds.values()]):.6g}"),
        "val_accuracy": round(float(np.mean([f["val_accuracy"] for f in folds.values()])), 6),
        "folds": folds,
    }


def deployable_epochs(folds: dict[str, dict], params: TrainParams) -> int:
    """Epochs for the model trained on all the data (no clips left to validate on): as many as the
    folds' models ran with, i.e. their median best epoch under early stopping, else ``train.epochs``."""
    if not params.early_stopping:
        return params.epochs
    return max(1, int(np.median([f["best_epoch"] for f in folds.values()])))
