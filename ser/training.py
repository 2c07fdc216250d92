"""Training: seeded, deterministic, logged per epoch with dvclive."""

from __future__ import annotations

import json
import re
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from ser.determinism import pin_cpu_kernels

pin_cpu_kernels()  # before TensorFlow loads: the same kernels, so the same bits, on any x86-64 CPU

import opensmile  # noqa: E402, F401 - before TensorFlow: imported after it, openSMILE crashes the process
import keras  # noqa: E402
import numpy as np
import onnx
import pandas as pd
import tensorflow as tf
from dvclive import Live
from dvclive.keras import DVCLiveCallback

from ser.evaluation import rounded
from ser.inference import META_FILE, ONNX_FILE, SPLIT_FILE
from ser.inputs import UTTERANCE, Stats, input_kind, input_name, member_functionals, model_inputs, speaker_stats
from ser.models import ensemble, linear
from ser.models.canonical import canonical
from ser.models.networks import build_model
from ser.params import ModelParams, Params, TrainParams
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


def sample_weights(index: pd.DataFrame, balance: str) -> np.ndarray | None:
    """Per-clip training weights under ``train.balance``: ``corpus`` gives each corpus, ``speaker``
    each speaker, the same total weight; the weights average 1. ``none``: no weights."""
    if balance == "none":
        return None
    counts = index.groupby(balance)[balance].transform("size").to_numpy(dtype=float)
    weights = 1.0 / counts
    return (weights * len(weights) / weights.sum()).astype(np.float32)


@dataclass
class FoldData:
    """Inputs and targets of one model in one fold: ``fit`` (training clips, with their augmented
    copies for frame models) and ``val`` (empty when the model trains on everything)."""

    classes: tuple[str, ...]
    fit_x: np.ndarray
    fit_y: np.ndarray
    fit_index: pd.DataFrame
    val_x: np.ndarray
    val_y: np.ndarray
    fit_weights: np.ndarray | None = None
    reference: Stats | None = None
    """The statistics speakers' own shrink toward (``normalize: speaker``), saved with the model."""


@dataclass(frozen=True)
class Clips:
    """The cached features of every clip, their augmented copies, and the clips' functionals by set."""

    features: np.ndarray
    index: pd.DataFrame
    augmented: tuple[np.ndarray, pd.DataFrame]
    functionals: dict[str, np.ndarray] | None = None


def reference_stats(clips: Clips, parts: np.ndarray, params: ModelParams) -> Stats | None:
    """Statistics of ``params.arch``'s inputs pooled over the clips the model learns from (training and
    validation), for ``normalize: speaker``: what a speaker's own statistics shrink toward."""
    if params.normalize != "speaker":
        return None
    rows = np.isin(parts, [TRAIN, VALIDATION])
    functionals = member_functionals(params, clips.functionals)
    functionals = None if functionals is None else functionals[rows]
    pooled = np.zeros(int(rows.sum()), dtype=str)
    stats = speaker_stats(clips.features[rows], clips.index["valid_frames"][rows], pooled, params.deltas,
                          input_kind(params.arch), functionals)
    return stats[""]


def fold_data(clips: Clips, parts: np.ndarray, params: ModelParams, classes: Sequence[str], balance: str = "none") -> FoldData:
    """Model inputs of the training clips (plus their augmented copies for frame models), and of the
    validation clips.

    Only copies whose source clip is in the ``train`` part are used; validation
    and test clips are never augmented. Speakers' statistics come from all their
    clips (no labels), shrunk toward the training clips' (``model.shrinkage``).
    """
    index = clips.index
    kind = input_kind(params.arch)
    functionals = member_functionals(params, clips.functionals)
    speakers = index["speaker"].to_numpy(dtype=str)
    stats, reference = None, reference_stats(clips, parts, params)
    if reference is not None:
        stats = speaker_stats(clips.features, index["valid_frames"], speakers, params.deltas, kind,
                              functionals, reference, params.shrinkage)
    inputs = model_inputs(clips.features, index["valid_frames"], speakers, params, stats, functionals)
    fit_rows, val_rows = parts == TRAIN, parts == VALIDATION
    fit_index, fit_x = index[fit_rows].assign(copy=0), inputs[fit_rows]
    if kind != UTTERANCE:  # augmented copies have frames only
        aug_values, aug_index = clips.augmented
        copies = fit_rows[aug_index["source"].to_numpy(dtype=int)]
        aug_index = aug_index[copies].reset_index(drop=True)
        aug_inputs = model_inputs(aug_values[copies], aug_index["valid_frames"], aug_index["speaker"], params, stats)
        fit_index = pd.concat([fit_index, aug_index.drop(columns="source")], ignore_index=True)
        fit_x = np.concatenate([fit_x, aug_inputs])
    return FoldData(
        classes=tuple(classes),
        fit_x=fit_x,
        fit_y=encode_labels(fit_index["emotion"], classes),
        fit_index=fit_index,
        val_x=inputs[val_rows],
        val_y=encode_labels(index["emotion"][val_rows], classes),
        fit_weights=sample_weights(fit_index, balance),
        reference=reference,
    )


class FoldLive(Live):
    """dvclive's logger for one of several training processes run side by side.

    Inside ``dvc repro`` every dvclive logger writes one shared signal file
    (``.dvc/tmp/exps/run/DVCLIVE_STEP_COMPLETED``) at each step and removes it at
    its end, checking first that it exists: two folds ending together can both
    see it and one fails to remove it. That file is removed either way, so
    its absence is no error here.
    """

    def end(self) -> None:
        try:
            super().end()
        except FileNotFoundError as exc:
            if Path(exc.filename or "").name != "DVCLIVE_STEP_COMPLETED":
                raise


def _callbacks(params: TrainParams, live_dir: Path | None, validate: bool) -> list[keras.callbacks.Callback]:
    callbacks: list[keras.callbacks.Callback] = []
    if params.early_stopping and validate:
        callbacks.append(keras.callbacks.EarlyStopping(patience=params.early_stopping, restore_best_weights=True))
    if params.reduce_lr and validate:
        callbacks.append(keras.callbacks.ReduceLROnPlateau(factor=0.5, patience=params.reduce_lr, min_lr=1e-5))
    if live_dir is not None:
        callbacks.append(DVCLiveCallback(live=FoldLive(str(live_dir), dvcyaml=False, save_dvc_exp=False)))
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
        data.fit_x, data.fit_y, sample_weight=data.fit_weights,
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


@dataclass
class Member:
    """One trained model of a fold: its ONNX graph, its validation probabilities, and what it leaves
    to save (a Keras network and its training history; nothing for a scikit-learn classifier)."""

    params: ModelParams
    graph: onnx.ModelProto
    val_probabilities: np.ndarray
    network: keras.Model | None = None
    history: dict[str, list[float]] | None = None


def export_onnx(model: keras.Model, input_name: str) -> onnx.ModelProto:
    """``model`` as an ONNX graph for onnxruntime, reading ``input_name`` with a dynamic batch size."""
    signature = [tf.TensorSpec((None, *model.input_shape[1:]), tf.float32, name=input_name)]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.onnx"
        model.export(str(path), format="onnx", input_signature=signature, verbose=False)
        return onnx.load(path)


def train_member(
    data: FoldData, params: ModelParams, train_params: TrainParams, live_dir: Path | None = None, epochs: int | None = None
) -> Member:
    """Train one model (a network or an utterance classifier) on ``data``."""
    kind = input_kind(params.arch)
    if kind == UTTERANCE:
        classifier = linear.fit_classifier(data.fit_x, data.fit_y.argmax(axis=1), len(data.classes), params, data.fit_weights)
        val = classifier.predict_proba(data.val_x) if len(data.val_x) else np.zeros((0, len(data.classes)))
        return Member(params, linear.export_onnx(classifier, data.fit_x.shape[1], input_name(params)), val)
    network, history = train_model(data, params, train_params, live_dir, epochs=epochs)
    val = network.predict(data.val_x, verbose=0) if len(data.val_x) else np.zeros((0, len(data.classes)))
    return Member(params, export_onnx(network, input_name(params)), val, network, history)


def keras_file(arch: str) -> str:
    """The file a network member is saved in, in its model directory."""
    return f"{arch}.keras"


def model_meta(feature_params: dict, params: Params, fold: str, folds: Sequence[str]) -> dict:
    """What a saved model records of how it was made: the feature, split, model and train params,
    its classes, its fold and the protocol's folds."""
    made_with = params.model_dump(include={"split", "model", "train"})
    return {**feature_params, **made_with, "classes": params.data.emotions, "fold": fold, "folds": list(folds)}


def save_model(model_dir: Path, members: list[Member], temperature: float, index: pd.DataFrame, parts: np.ndarray,
               meta: dict, reference: dict[str, Stats]) -> None:
    """Write the served graph (:func:`ser.models.ensemble.combine`), each network as Keras, the metadata
    (``meta`` with the classes, the temperature, what the model was trained on, the reference
    statistics of each input kind) and the split it was trained on."""
    model_dir.mkdir(parents=True, exist_ok=True)
    for member in members:
        if member.network is not None:
            member.network.save(model_dir / keras_file(member.params.arch))
            make_archive_deterministic(model_dir / keras_file(member.params.arch))
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


def validation_scores(probabilities: np.ndarray, targets: np.ndarray) -> dict:
    """Log loss and accuracy of (calibrated) probabilities on the validation clips."""
    codes = targets.argmax(axis=1)
    picked = probabilities[np.arange(len(codes)), codes]
    return {
        "val_loss": rounded(-np.mean(np.log(picked + ensemble.TINY))),
        "val_accuracy": rounded(np.mean(probabilities.argmax(axis=1) == codes)),
    }


@dataclass
class TrainedFold:
    members: list[Member]
    temperature: float
    summary: dict
    reference: dict[str, Stats]


def train_fold(
    clips: Clips, parts: np.ndarray, params: ModelParams, train_params: TrainParams, classes: Sequence[str],
    live_dir: Path | None = None, epochs: Mapping[str, int] | None = None, temperature: float | None = None,
) -> TrainedFold:
    """Train every member of ``params`` on one fold's parts; fit the temperature on the validation clips
    (``train.calibrate``). Without validation clips, networks train for ``epochs[arch]`` epochs and
    the ``temperature`` given is used (default 1)."""
    members, summary, reference = [], {"members": {}}, {}
    member_params = params.member_params()
    for member_param in member_params:
        arch = member_param.arch
        data = fold_data(clips, parts, member_param, classes, train_params.balance)
        live = None if live_dir is None else (live_dir if len(member_params) == 1 else live_dir / arch)
        member = train_member(data, member_param, train_params, live, (epochs or {}).get(arch))
        members.append(member)
        if data.reference is not None:
            reference[input_name(member_param)] = data.reference
        if member.history is not None and len(data.val_x):
            summary["members"][arch] = history_summary(member.history, len(data.fit_x))
    targets = data.val_y  # every member validates on the same clips
    if len(targets):
        mean = np.mean([member.val_probabilities for member in members], axis=0)
        temperature = ensemble.fit_temperature(mean, targets.argmax(axis=1)) if train_params.calibrate else 1.0
        summary.update(validation_scores(ensemble.calibrated(mean, temperature), targets))
    temperature = 1.0 if temperature is None else temperature
    return TrainedFold(members, temperature, {**summary, "temperature": temperature}, reference)
