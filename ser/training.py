"""Training: seeded, deterministic, logged per epoch with dvclive."""

from __future__ import annotations

import tempfile
import time
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

from ser.assembly import Member, TrainedFold, assemble, encode_labels
from ser.folds import sample_weights
from ser.inputs import UTTERANCE, RowInputs, Stats, input_kind, input_name, member_functionals, model_inputs, pooled_stats, speaker_stats
from ser.models import linear
from ser.models.networks import build_model
from ser.params import ModelParams, TrainParams
from ser.split import TRAIN, VALIDATION


def make_deterministic(seed: int) -> None:
    """Start from a fresh Keras state (layer names too), seed everything, make ops deterministic."""
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


@dataclass
class FoldData:
    """Inputs and targets of one model in one fold: ``fit`` (training clips, with their augmented
    copies for frame models) and ``val`` (empty when the model trains on everything)."""

    classes: tuple[str, ...]
    fit_x: np.ndarray | RowInputs
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
    functionals = member_functionals(params, clips.functionals)
    return pooled_stats(clips.features, clips.index["valid_frames"], params.deltas, input_kind(params.arch), functionals,
                        rows=np.flatnonzero(np.isin(parts, [TRAIN, VALIDATION])))


def fold_data(clips: Clips, parts: np.ndarray, params: ModelParams, classes: Sequence[str], balance: str = "none") -> FoldData:
    """Model inputs of the training clips (plus their augmented copies for frame models), and of the
    validation clips.

    Only copies whose source clip is in the ``train`` part are used; validation
    and test clips are never augmented. Speakers' statistics come from all their
    clips (no labels), shrunk toward the training clips' (``model.shrinkage``).
    Only the rows used are computed; a frame model's training inputs when it trains on them (:class:`RowInputs`).
    """
    index = clips.index
    functionals = member_functionals(params, clips.functionals)
    fit_rows, val_rows = np.flatnonzero(parts == TRAIN), np.flatnonzero(parts == VALIDATION)
    stats, reference = speaker_stats_of(clips, parts, params)

    def compute(rows: np.ndarray) -> np.ndarray:
        return model_inputs(clips.features, index["valid_frames"], index["speaker"].to_numpy(dtype=str), params, stats, functionals, rows=rows)

    fit_index = index.iloc[fit_rows].assign(copy=0)
    if input_kind(params.arch) == UTTERANCE:
        fit_x = compute(fit_rows)
    else:  # frame models also learn from the training clips' augmented copies, computed batch by batch
        aug_values, aug_index = clips.augmented
        copies = np.flatnonzero(np.isin(aug_index["source"].to_numpy(dtype=int), fit_rows))
        fit_index = pd.concat([fit_index, aug_index.iloc[copies].drop(columns="source")], ignore_index=True)
        fit_x = RowInputs.of(params, stats, [(clips.features, index, fit_rows), (aug_values, aug_index, copies)])
    return FoldData(
        classes=tuple(classes),
        fit_x=fit_x,
        fit_y=encode_labels(fit_index["emotion"], classes),
        fit_index=fit_index,
        val_x=compute(val_rows),
        val_y=encode_labels(index["emotion"].iloc[val_rows], classes),
        fit_weights=sample_weights(fit_index, balance),
        reference=reference,
    )


def speaker_stats_of(clips: Clips, parts: np.ndarray, params: ModelParams) -> tuple[dict[str, Stats] | None, Stats | None]:
    """For ``normalize: speaker``: the statistics of each speaker who trains or validates (from all their
    clips), and the reference they shrink toward; ``(None, None)`` otherwise."""
    reference = reference_stats(clips, parts, params)
    if reference is None:
        return None, None
    speakers = clips.index["speaker"].to_numpy(dtype=str)
    rows = np.flatnonzero(np.isin(speakers, speakers[np.isin(parts, [TRAIN, VALIDATION])]))
    stats = speaker_stats(clips.features, clips.index["valid_frames"], speakers, params.deltas, input_kind(params.arch),
                          member_functionals(params, clips.functionals), reference, params.shrinkage, rows)
    return stats, reference


class ShuffledBatches:
    """Training batches of ``inputs`` (an array, or :class:`RowInputs` computed batch by batch), in an
    order shuffled anew each epoch from ``seed`` and the epoch's number."""

    def __init__(self, inputs: np.ndarray | RowInputs, targets: np.ndarray, weights: np.ndarray | None, batch_size: int, seed: int):
        self.inputs, self.targets, self.weights = inputs, targets, weights
        self.batch_size, self.seed, self.epoch = batch_size, seed, 0
        self.order = self.shuffled()

    def shuffled(self) -> np.ndarray:
        return np.random.default_rng([self.seed, self.epoch]).permutation(len(self.targets))

    def __len__(self) -> int:
        return -(-len(self.targets) // self.batch_size)

    def __getitem__(self, number: int) -> tuple:
        rows = np.sort(self.order[number * self.batch_size: (number + 1) * self.batch_size])
        batch = (self.inputs[rows], self.targets[rows])
        return batch if self.weights is None else (*batch, self.weights[rows])

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self.order = self.shuffled()


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
    model = build_model(tuple(data.fit_x.shape[1:]), len(data.classes), model_params, seed=train_params.seed)
    model.compile(
        loss="categorical_crossentropy",
        optimizer=keras.optimizers.Adam(learning_rate=train_params.learning_rate),
        metrics=["accuracy"],
    )
    history = fit_batches(
        model, ShuffledBatches(data.fit_x, data.fit_y, data.fit_weights, train_params.batch_size, train_params.seed),
        (data.val_x, data.val_y) if validate else None, epochs or train_params.epochs,
        [*_callbacks(train_params, live_dir, validate), *callbacks],
    )
    if live_dir is not None:  # dvclive's own summary: the train stage writes one for all folds
        (live_dir / "metrics.json").unlink(missing_ok=True)
    return model, history


def fit_batches(
    model: keras.Model, batches: ShuffledBatches, validation: tuple[np.ndarray, np.ndarray] | None, epochs: int,
    callbacks: Sequence[keras.callbacks.Callback],
) -> dict[str, list[float]]:
    """``model.fit`` batch by batch (``train_on_batch``): the same epochs, logs and callbacks (early
    stopping, learning-rate schedule, dvclive), without Keras's tf.data input pipeline, whose iterator
    thread stalls a one-thread process that shares its cores with another (2.5x slower steps here).
    An epoch's training loss and accuracy are its batches' means weighted by batch size."""
    history = keras.callbacks.History()
    hooks = keras.callbacks.CallbackList([*callbacks, history], model=model, epochs=epochs, steps=len(batches), verbose=0)
    model.stop_training = False
    hooks.on_train_begin()
    logs: dict[str, float] = {}
    for epoch in range(epochs):
        start, sums, seen = time.perf_counter(), {}, 0
        hooks.on_epoch_begin(epoch)
        for step in range(len(batches)):
            batch = batches[step]
            hooks.on_train_batch_begin(step)
            scores = model.train_on_batch(*batch, return_dict=True)
            hooks.on_train_batch_end(step, scores)
            sums = {name: sums.get(name, 0.0) + value * len(batch[1]) for name, value in scores.items()}
            seen += len(batch[1])
        logs = {name: total / seen for name, total in sums.items()}
        if validation is not None:
            logs.update({f"val_{name}": value for name, value in model.evaluate(*validation, verbose=0, return_dict=True).items()})
        logs["learning_rate"] = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
        print(f"epoch {epoch + 1}/{epochs}: {time.perf_counter() - start:.0f} s, "
              + ", ".join(f"{name} {value:.4g}" for name, value in logs.items()), flush=True)
        hooks.on_epoch_end(epoch, logs)
        batches.on_epoch_end()
        if model.stop_training:
            break
    hooks.on_train_end(logs)
    return history.history


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
        graph = linear.export_onnx(classifier, data.fit_x.shape[1], input_name(params))
        return Member(params, graph, val, n_fit=len(data.fit_x), reference=data.reference)
    network, history = train_model(data, params, train_params, live_dir, epochs=epochs)
    val = network.predict(data.val_x, verbose=0) if len(data.val_x) else np.zeros((0, len(data.classes)))
    return Member(params, export_onnx(network, input_name(params)), val, network, history, len(data.fit_x), data.reference)


def member_live_dir(live_dir: Path | None, params: ModelParams, member: ModelParams) -> Path | None:
    """Where ``member`` of model ``params`` logs its epochs: the model's own folder when it is the only member."""
    if live_dir is None or len(params.member_params()) == 1:
        return live_dir
    return live_dir / member.arch


def train_fold_member(
    clips: Clips, parts: np.ndarray, member: ModelParams, train_params: TrainParams, classes: Sequence[str],
    live_dir: Path | None = None, epochs: int | None = None,
) -> Member:
    """Train one member of a fold's model on the fold's ``parts`` (``epochs``: a network's, when it has no
    validation clips)."""
    return train_member(fold_data(clips, parts, member, classes, train_params.balance), member, train_params, live_dir, epochs)


def train_fold(
    clips: Clips, parts: np.ndarray, params: ModelParams, train_params: TrainParams, classes: Sequence[str],
    live_dir: Path | None = None, epochs: Mapping[str, int] | None = None, temperature: float | None = None,
) -> TrainedFold:
    """Train every member of ``params`` on one fold's parts, one after another, and join them
    (:func:`ser.assembly.assemble`). Without validation clips, networks train for ``epochs[arch]``
    epochs and the ``temperature`` given is used (default 1)."""
    members = [
        train_fold_member(clips, parts, member, train_params, classes, member_live_dir(live_dir, params, member),
                          (epochs or {}).get(member.arch))
        for member in params.member_params()
    ]
    targets = encode_labels(clips.index["emotion"][parts == VALIDATION], classes)
    return assemble(members, targets, train_params.calibrate, temperature)
