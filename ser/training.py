"""Training: seeded, deterministic, logged per epoch with dvclive."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from dvclive import Live
from dvclive.keras import DVCLiveCallback

from ser.labels import EMOTIONS
from ser.models import build_model
from ser.params import ModelParams, TrainParams
from ser.split import TRAIN, VALIDATION

MODEL_FILE = "model.keras"
META_FILE = "meta.json"
SPLIT_FILE = "split.csv"


def make_deterministic(seed: int) -> None:
    """Start from a fresh Keras state (layer names too), seed everything, make ops deterministic."""
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def encode_labels(emotions: pd.Series) -> np.ndarray:
    """One-hot targets in the fixed ``EMOTIONS`` order."""
    return keras.utils.to_categorical(emotions.map(EMOTIONS.index).to_numpy(), len(EMOTIONS))


def train_model(
    features: np.ndarray,
    index: pd.DataFrame,
    parts: np.ndarray,
    model_params: ModelParams,
    train_params: TrainParams,
    live_dir: Path | None = None,
) -> tuple[keras.Model, dict[str, list[float]]]:
    """Train on the ``train`` rows, validate on the ``val`` rows; return the model and its history."""
    make_deterministic(train_params.seed)
    targets = encode_labels(index["emotion"])
    fit_rows, val_rows = parts == TRAIN, parts == VALIDATION
    model = build_model(features.shape[1:], len(EMOTIONS), model_params)
    model.compile(
        loss="categorical_crossentropy",
        optimizer=keras.optimizers.Adam(learning_rate=train_params.learning_rate),
        metrics=["accuracy"],
    )
    callbacks = []
    if live_dir is not None:
        callbacks.append(DVCLiveCallback(live=Live(str(live_dir), dvcyaml=False, save_dvc_exp=False)))
    history = model.fit(
        features[fit_rows], targets[fit_rows],
        validation_data=(features[val_rows], targets[val_rows]),
        epochs=train_params.epochs, batch_size=train_params.batch_size,
        callbacks=callbacks, verbose=2,
    )
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


def save_model(model_dir: Path, model: keras.Model, index: pd.DataFrame, parts: np.ndarray, meta: dict) -> None:
    """Write the model, its metadata (classes, params) and the split it was trained on."""
    model_dir.mkdir(parents=True, exist_ok=True)
    model.save(model_dir / MODEL_FILE)
    make_archive_deterministic(model_dir / MODEL_FILE)
    meta = {"classes": list(EMOTIONS), "input_shape": list(model.input_shape[1:]), **meta}
    (model_dir / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    index[["file", "speaker", "word", "emotion"]].assign(part=parts).to_csv(model_dir / SPLIT_FILE, index=False)
