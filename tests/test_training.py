"""Training data per fold, the tutorial network, seeded training and its reproducibility, on tiny synthetic data."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

keras = pytest.importorskip("keras")

from ser.features import INDEX_COLUMNS  # noqa: E402
from ser.inputs import model_inputs, speaker_stats  # noqa: E402
from ser.labels import EMOTIONS  # noqa: E402
from ser.models import build_model  # noqa: E402
from ser.params import ModelParams, SpecAugmentParams, SplitParams, TrainParams  # noqa: E402
from ser.split import TEST, TRAIN, VALIDATION, fold_parts  # noqa: E402
from ser.training import (  # noqa: E402
    FoldData,
    _callbacks,
    encode_labels,
    fold_data,
    history_summary,
    mean_summary,
    save_model,
    train_model,
)

NO_SPEC = SpecAugmentParams(time_masks=0, time_width=0, feature_masks=0, feature_width=0)
BASE = {
    "deltas": 0, "normalize": "none", "filters": 8, "kernel_size": 3, "conv_layers": 1, "rnn_units": 4,
    "input_noise": 0.0, "spec_augment": NO_SPEC,
}
TUTORIAL = ModelParams(arch="seed_lstm", lstm_units=256, dense_units=[128, 64], dropout=0.2, **BASE)
FRAMES, CHANNELS = 16, 5
SPEAKERS = ("OAF", "YAF")
WORDS = ("back", "bar", "dog", "food", "germ")
SPLIT = SplitParams(protocol="speaker", test_speaker="YAF", test_fraction=0.2, validation_fraction=0.2, seed=42)


def _train(**changes) -> TrainParams:
    values = {"epochs": 1, "batch_size": 8, "learning_rate": 0.01, "early_stopping": 0, "reduce_lr": 0, "seed": 1}
    return TrainParams(**{**values, **changes})


def toy_data(per_class: int = 6, n_mfcc: int = 40) -> tuple[np.ndarray, pd.DataFrame, np.ndarray]:
    """Frame features whose level depends on the class, with train/val/test parts."""
    rng = np.random.default_rng(0)
    emotions = np.repeat(EMOTIONS, per_class)
    levels = np.array([EMOTIONS.index(e) for e in emotions], dtype=np.float32)
    features = (levels[:, None, None] + rng.normal(0, 0.3, (len(emotions), 8, n_mfcc))).astype(np.float32)
    index = pd.DataFrame({
        "file": [f"clip{i}.wav" for i in range(len(emotions))], "speaker": "OAF", "word": "back", "emotion": emotions,
        "valid_frames": rng.integers(4, 9, len(emotions)),
    })
    parts = np.tile([TRAIN, TRAIN, TRAIN, TRAIN, VALIDATION, TEST], len(EMOTIONS))
    return features, index, parts


def no_copies(features: np.ndarray) -> tuple[np.ndarray, pd.DataFrame]:
    return features[:0], pd.DataFrame(columns=[*INDEX_COLUMNS, "source", "copy"])


# --- the tutorial network --------------------------------------------------------------------------------


def test_seed_lstm_is_the_tutorial_network() -> None:
    model = build_model((40, 1), len(EMOTIONS), TUTORIAL)
    kinds = [(type(layer).__name__, getattr(layer, "units", getattr(layer, "rate", None))) for layer in model.layers]
    assert kinds == [
        ("LSTM", 256), ("Dropout", 0.2), ("Dense", 128), ("Dropout", 0.2),
        ("Dense", 64), ("Dropout", 0.2), ("Dense", 7),
    ]
    assert model.layers[-1].activation.__name__ == "softmax"
    assert model.output_shape == (None, 7)
    # LSTM 4*(256*(1+256)+256) + Dense 256*128+128 + 128*64+64 + 64*7+7
    assert model.count_params() == 264_192 + 32_896 + 8_256 + 455


def test_seed_lstm_reads_the_pooled_inputs() -> None:
    features, index, parts = toy_data()
    data = fold_data(features, index, no_copies(features), parts, TUTORIAL)
    assert data.fit_x.shape == ((parts == TRAIN).sum(), 40, 1)
    assert data.val_x.shape == ((parts == VALIDATION).sum(), 40, 1)


SMALL = ModelParams(arch="seed_lstm", lstm_units=16, dense_units=[8], dropout=0.1, **BASE)


def test_training_learns_and_is_reproducible_under_a_seed() -> None:
    features, index, parts = toy_data()
    data = fold_data(features, index, no_copies(features), parts, SMALL)
    train = _train(epochs=3, seed=7)
    first, history = train_model(data, SMALL, train)
    second, history_again = train_model(data, SMALL, train)
    assert len(history["loss"]) == 3 and "val_accuracy" in history
    assert history["loss"] == history_again["loss"]
    assert history["loss"][-1] < history["loss"][0]
    np.testing.assert_array_equal(first.predict(data.fit_x, verbose=0), second.predict(data.fit_x, verbose=0))
    other, _ = train_model(data, SMALL, train.model_copy(update={"seed": 8}))
    assert not np.array_equal(first.predict(data.fit_x, verbose=0), other.predict(data.fit_x, verbose=0))


def test_retrained_model_saves_to_identical_bytes_and_loads_back(tmp_path) -> None:
    features, index, parts = toy_data()
    small = ModelParams(arch="seed_lstm", lstm_units=8, dense_units=[], dropout=0.0, **BASE)
    data = fold_data(features, index, no_copies(features), parts, small)
    train = _train(seed=1)
    model, _ = train_model(data, small, train)
    retrained, _ = train_model(data, small, train)
    save_model(tmp_path / "a", model, index, parts, {})
    save_model(tmp_path / "b", retrained, index, parts, {})
    first, second = (tmp_path / d / "model.keras" for d in "ab")
    assert first.read_bytes() == second.read_bytes()
    restored = keras.models.load_model(first)
    np.testing.assert_allclose(
        restored.predict(data.fit_x, verbose=0), model.predict(data.fit_x, verbose=0), rtol=0, atol=1e-6
    )


def test_save_model_writes_meta_and_split(tmp_path) -> None:
    import json

    features, index, parts = toy_data()
    data = fold_data(features, index, no_copies(features), parts, SMALL)
    model = build_model(data.fit_x.shape[1:], len(EMOTIONS), SMALL)
    save_model(tmp_path, model, index, parts, {"fold": "test_YAF", "model": SMALL.model_dump()})
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["classes"] == list(EMOTIONS)
    assert meta["input_shape"] == [40, 1]
    assert meta["fold"] == "test_YAF"
    assert ModelParams(**meta["model"]) == SMALL  # evaluate rebuilds the params from here
    split = pd.read_csv(tmp_path / "split.csv")
    assert list(split.columns) == ["file", "speaker", "word", "emotion", "part"]
    assert split["part"].tolist() == list(parts)


# --- what each fold trains on ------------------------------------------------------------------------------


def corpus(copies: int = 2) -> tuple[np.ndarray, pd.DataFrame, tuple[np.ndarray, pd.DataFrame]]:
    """Two speakers x five words x seven emotions of frame features, and ``copies`` augmented copies of each.

    Every clip and every copy has its own level, so any row of model inputs names the clip (and copy) it came from.
    """
    rng = np.random.default_rng(1)
    rows = [
        {"file": f"audio/{s}_{w}_{e}.wav", "speaker": s, "word": w, "emotion": e}
        for s, w, e in itertools.product(SPEAKERS, WORDS, EMOTIONS)
    ]
    index = pd.DataFrame(rows).sample(frac=1.0, random_state=3).reset_index(drop=True)
    index["valid_frames"] = rng.integers(6, FRAMES + 1, len(index))
    n = len(index)
    features = rng.normal(0, 1, (n, FRAMES, CHANNELS)).astype(np.float32)
    features += np.where(index["speaker"] == "OAF", 3.0, -2.0)[:, None, None].astype(np.float32)
    aug_values = np.concatenate([features + rng.normal(0, 0.5, features.shape).astype(np.float32) for _ in range(copies)])
    aug_index = pd.concat(
        [index.assign(source=np.arange(n), copy=copy) for copy in range(1, copies + 1)], ignore_index=True
    )
    # copies are a little shorter or longer, as tempo makes them
    aug_index["valid_frames"] = np.clip(aug_index["valid_frames"] + rng.integers(-2, 3, len(aug_index)), 3, FRAMES)
    return features, index, (aug_values.astype(np.float32), aug_index)


FRAME_MODEL = ModelParams(arch="cnn1d", lstm_units=8, dense_units=[8], dropout=0.0, **{**BASE, "deltas": 1, "normalize": "speaker"})


def _rows(x: np.ndarray) -> list[bytes]:
    """Rows of ``x`` as a sorted list of bytes (a multiset of rows)."""
    return sorted(row.tobytes() for row in np.ascontiguousarray(x))


class _FitCalled(Exception):
    pass


@pytest.fixture
def fit_calls(monkeypatch):
    """Record what ``keras.Model.fit`` is given; ``calls.passthrough = False`` stops before training."""

    class Calls(list):
        passthrough = True

    calls = Calls()
    original = keras.Model.fit

    def fit(self, x=None, y=None, *args, **kwargs):
        calls.append({"x": np.array(x), "y": np.array(y), **kwargs})
        if not calls.passthrough:
            raise _FitCalled
        return original(self, x, y, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "fit", fit)
    return calls


def _captured_fit(data: FoldData, params: ModelParams, fit_calls) -> dict:
    fit_calls.passthrough = False
    with pytest.raises(_FitCalled):
        train_model(data, params, _train())
    return fit_calls[-1]


def _expected_inputs(features, index, augmented, params):
    """Model inputs of every clip and every copy, computed independently of fold_data."""
    speakers = index["speaker"].to_numpy(dtype=str)
    stats = speaker_stats(features.copy(), index["valid_frames"], speakers, params.deltas)
    inputs = model_inputs(features.copy(), index["valid_frames"], speakers, params, stats)
    aug_values, aug_index = augmented
    aug_inputs = model_inputs(aug_values.copy(), aug_index["valid_frames"], aug_index["speaker"], params, stats)
    return inputs, aug_inputs


@pytest.mark.parametrize("test_speaker", SPEAKERS)
def test_speaker_fold_fits_on_the_training_speakers_train_clips_and_their_copies_only(fit_calls, test_speaker):
    features, index, augmented = corpus()
    folds = fold_parts(index, SPLIT.model_copy(update={"test_speaker": test_speaker}))
    parts = folds[f"test_{test_speaker}"]
    data = fold_data(features, index, augmented, parts, FRAME_MODEL)
    fitted = _captured_fit(data, FRAME_MODEL, fit_calls)

    inputs, aug_inputs = _expected_inputs(features, index, augmented, FRAME_MODEL)
    train_rows = parts == TRAIN
    train_speaker = next(s for s in SPEAKERS if s != test_speaker)
    assert set(index.loc[train_rows, "speaker"]) == {train_speaker}
    own_copies = np.isin(augmented[1]["source"], np.flatnonzero(train_rows))
    expected = np.concatenate([inputs[train_rows], aug_inputs[own_copies]])
    assert fitted["x"].shape == expected.shape == (train_rows.sum() * 3, FRAMES, 2 * CHANNELS + 1)
    assert _rows(fitted["x"]) == _rows(expected)
    # nothing of the test speaker, nor of the held-out validation words, is fitted
    for rows in (inputs[parts == TEST], aug_inputs[augmented[1]["speaker"] == test_speaker],
                 inputs[parts == VALIDATION], aug_inputs[np.isin(augmented[1]["source"], np.flatnonzero(parts == VALIDATION))]):
        assert not set(_rows(rows)) & set(_rows(fitted["x"]))
    # labels travel with their rows
    by_row = dict(zip((r.tobytes() for r in expected), encode_labels(
        pd.concat([index.loc[train_rows, "emotion"], augmented[1].loc[own_copies, "emotion"]]))))
    for x, y in zip(fitted["x"], fitted["y"]):
        np.testing.assert_array_equal(y, by_row[x.tobytes()])
    # validation is the training speaker's held-out words, unaugmented
    val_x, val_y = fitted["validation_data"]
    np.testing.assert_array_equal(val_x, inputs[parts == VALIDATION])
    np.testing.assert_array_equal(val_y, encode_labels(index.loc[parts == VALIDATION, "emotion"]))
    assert set(index.loc[parts == VALIDATION, "speaker"]) == {train_speaker}


def test_fit_data_passed_through_to_a_real_fit(fit_calls):
    """The wrapped fit trains for real: what it received is what the model trained on."""
    features, index, augmented = corpus(copies=1)
    parts = fold_parts(index, SPLIT)["test_YAF"]
    params = SMALL.model_copy(update={"deltas": 1, "normalize": "speaker"})
    data = fold_data(features, index, augmented, parts, params)
    model, history = train_model(data, params, _train(epochs=2))
    assert len(fit_calls) == 1 and len(history["loss"]) == 2
    np.testing.assert_array_equal(fit_calls[0]["x"], data.fit_x)
    assert fit_calls[0]["epochs"] == 2 and fit_calls[0]["batch_size"] == 8
    assert len(fit_calls[0]["x"]) == 2 * (parts == TRAIN).sum()
    assert set(data.fit_index["speaker"]) == {"OAF"}
    assert model.input_shape[1:] == (2 * CHANNELS, 1)


@pytest.mark.parametrize("arch", ["seed_lstm", "cnn1d"])
@pytest.mark.parametrize("protocol", ["speaker", "word", "random"])
def test_augmentation_changes_training_inputs_only(arch, protocol):
    features, index, augmented = corpus()
    params = FRAME_MODEL.model_copy(update={"arch": arch})
    split = SPLIT.model_copy(update={"protocol": protocol})
    for parts in fold_parts(index, split).values():
        with_copies = fold_data(features, index, augmented, parts, params)
        without = fold_data(features, index, no_copies(features), parts, params)
        assert with_copies.val_x.tobytes() == without.val_x.tobytes()
        assert with_copies.val_y.tobytes() == without.val_y.tobytes()
        n_train = (parts == TRAIN).sum()
        assert len(without.fit_x) == n_train and len(with_copies.fit_x) == 3 * n_train
        assert with_copies.fit_x[:n_train].tobytes() == without.fit_x.tobytes()
        assert not np.array_equal(with_copies.fit_x[n_train:2 * n_train], without.fit_x)
        # the test inputs, as evaluate computes them, do not involve the copies, and match what training saw
        test_inputs = model_inputs(features.copy(), index["valid_frames"], index["speaker"], params)
        np.testing.assert_allclose(test_inputs[parts == VALIDATION], with_copies.val_x, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("protocol", ["speaker", "word", "random"])
def test_copies_of_validation_and_test_clips_are_never_fitted(protocol):
    features, index, augmented = corpus()
    split = SPLIT.model_copy(update={"protocol": protocol})
    _, aug_inputs = _expected_inputs(features, index, augmented, FRAME_MODEL)
    for name, parts in fold_parts(index, split).items():
        data = fold_data(features, index, augmented, parts, FRAME_MODEL)
        held_out = np.flatnonzero(parts != TRAIN)
        assert (parts[held_out] != TRAIN).all() and len(held_out)
        forbidden = aug_inputs[np.isin(augmented[1]["source"], held_out)]
        assert len(forbidden)
        assert not set(_rows(forbidden)) & set(_rows(data.fit_x)), name
        # fit_index says the same: copies only of training clips
        copies = data.fit_index[data.fit_index["copy"] > 0]
        assert set(copies["file"]) <= set(index.loc[parts == TRAIN, "file"])
        assert len(copies) == 2 * (parts == TRAIN).sum()


def test_fit_index_and_targets_follow_the_fit_rows():
    features, index, augmented = corpus()
    parts = fold_parts(index, SPLIT)["test_YAF"]
    data = fold_data(features, index, augmented, parts, FRAME_MODEL)
    n_train = (parts == TRAIN).sum()
    assert len(data.fit_index) == len(data.fit_x) == len(data.fit_y) == 3 * n_train
    assert data.fit_index["copy"].tolist() == [0] * n_train + [1] * n_train + [2] * n_train
    assert data.fit_index["file"].tolist() == index.loc[parts == TRAIN, "file"].tolist() * 3
    np.testing.assert_array_equal(data.fit_y.argmax(axis=1), data.fit_index["emotion"].map(EMOTIONS.index))
    np.testing.assert_array_equal(data.fit_y.sum(axis=1), 1.0)
    assert len(data.val_x) == len(data.val_y) == (parts == VALIDATION).sum()


def test_fold_data_does_not_change_with_the_folds_before_it():
    features, index, augmented = corpus()
    params = FRAME_MODEL.model_copy(update={"deltas": 0})
    folds = list(fold_parts(index, SPLIT).values())
    fresh = fold_data(features.copy(), index, augmented, folds[1], params)
    fold_data(features, index, augmented, folds[0], params)  # as train.py does, on the same arrays
    after = fold_data(features, index, augmented, folds[1], params)
    np.testing.assert_allclose(after.fit_x, fresh.fit_x, atol=1e-5)


# --- callbacks and summaries -----------------------------------------------------------------------------


def test_callbacks_follow_the_params(tmp_path):
    assert _callbacks(_train(), None) == []
    early, reduce = _callbacks(_train(early_stopping=5, reduce_lr=3), None)
    assert isinstance(early, keras.callbacks.EarlyStopping)
    assert (early.patience, early.monitor, early.restore_best_weights) == (5, "val_loss", True)
    assert isinstance(reduce, keras.callbacks.ReduceLROnPlateau)
    assert (reduce.patience, reduce.factor) == (3, 0.5)
    (only,) = _callbacks(_train(early_stopping=0, reduce_lr=2), None)
    assert isinstance(only, keras.callbacks.ReduceLROnPlateau)


def test_early_stopping_stops_and_restores_the_best_epoch():
    features, index, parts = toy_data()
    data = fold_data(features, index, no_copies(features), parts, SMALL)
    # a learning rate far too high: validation loss soon stops improving
    model, history = train_model(data, SMALL, _train(epochs=40, early_stopping=2, learning_rate=1.0))
    epochs = len(history["val_loss"])
    assert epochs < 40
    best = int(np.argmin(history["val_loss"]))
    assert best == epochs - 3  # stopped after ``patience`` epochs without improvement
    restored = model.evaluate(data.val_x, data.val_y, verbose=0, return_dict=True)["loss"]
    assert restored == pytest.approx(history["val_loss"][best], rel=1e-4)


def test_train_model_logs_every_epoch_with_dvclive(tmp_path):
    features, index, parts = toy_data()
    data = fold_data(features, index, no_copies(features), parts, SMALL)
    train_model(data, SMALL, _train(epochs=2, reduce_lr=1), live_dir=tmp_path / "live")
    for metric in ("train/loss", "train/accuracy", "eval/loss", "eval/accuracy"):
        lines = (tmp_path / "live" / "plots" / "metrics" / f"{metric}.tsv").read_text().splitlines()
        assert len(lines) == 1 + 2, metric
    # dvclive's own summary is dropped: the train stage writes one summary for all folds
    assert not (tmp_path / "live" / "metrics.json").exists()


def test_history_summary_picks_the_best_validation_epoch():
    history = {"loss": [2.0, 1.0, 0.5, 0.2], "val_loss": [1.5, 0.9, 1.1, 1.3],
               "val_accuracy": [0.2, 0.55, 0.6, 0.4], "accuracy": [0.1, 0.5, 0.8, 0.9]}
    assert history_summary(history, n_fit=120) == {"epochs": 4, "n_fit": 120, "val_loss": 0.9, "val_accuracy": 0.55}
    rounded = history_summary({"val_loss": [1 / 3], "val_accuracy": [2 / 3]}, n_fit=1)
    assert rounded["val_loss"] == 0.333333 and rounded["val_accuracy"] == 0.666667


def test_mean_summary_averages_the_folds():
    folds = {
        "test_YAF": {"epochs": 4, "n_fit": 10, "val_loss": 1.0, "val_accuracy": 0.5},
        "test_OAF": {"epochs": 6, "n_fit": 12, "val_loss": 0.5, "val_accuracy": 0.8},
    }
    summary = mean_summary(folds)
    assert summary["val_loss"] == 0.75 and summary["val_accuracy"] == 0.65
    assert summary["folds"] == folds and list(summary["folds"]) == ["test_YAF", "test_OAF"]
    single = mean_summary({"random": folds["test_OAF"]})
    assert (single["val_loss"], single["val_accuracy"]) == (0.5, 0.8)
