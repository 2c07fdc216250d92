"""Training data per fold, the tutorial network, seeded training and its reproducibility, the deployable
model trained without validation, what a saved model says it learned from; on tiny synthetic data."""

from __future__ import annotations

import itertools

import numpy as np
import onnx
import pandas as pd
import pytest

keras = pytest.importorskip("keras")

from ser.features import INDEX_COLUMNS  # noqa: E402
from ser.inputs import input_name, model_inputs, speaker_stats  # noqa: E402
from ser.models.networks import build_model  # noqa: E402
from ser.params import ModelParams, SpecAugmentParams, SplitParams, TrainParams  # noqa: E402
from ser.split import TEST, TRAIN, UNUSED, VALIDATION, fold_parts  # noqa: E402
from ser.folds import deployable_epochs, mean_summary
from ser.assembly import Member, encode_labels, history_summary, keras_file, save_model, trained_on  # noqa: E402
from ser import training  # noqa: E402
from ser.training import (  # noqa: E402
    Clips,
    FoldData,
    FoldLive,
    ShuffledBatches,
    _callbacks,
    export_onnx,
    fold_data,
    reference_stats,
    train_fold,
    train_model,
)

CLASSES = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")

NO_SPEC = SpecAugmentParams(time_masks=0, time_width=0, feature_masks=0, feature_width=0)
BASE = {
    "deltas": 0, "normalize": "none", "filters": 8, "kernel_size": 3, "conv_layers": 1, "rnn_units": 4,
    "input_noise": 0.0, "spec_augment": NO_SPEC,
}
TUTORIAL = ModelParams(arch="seed_lstm", lstm_units=256, dense_units=[128, 64], dropout=0.2, **BASE)
FRAMES, CHANNELS = 16, 5
SPEAKERS = {"tess": ("OAF", "YAF"), "ravdess": ("01", "02")}
"""corpus -> speakers of ``corpus()``; two speaker folds each test one speaker of each corpus."""
TEXTS = ("back", "bar", "dog")
SPLIT = SplitParams(protocol="speaker", folds=2, train_corpora=[], test_fraction=0.2, validation_fraction=0.2, seed=42)


def _train(**changes) -> TrainParams:
    values = {"epochs": 1, "batch_size": 8, "learning_rate": 0.01, "early_stopping": 0, "reduce_lr": 0, "seed": 1}
    return TrainParams(**{**values, **changes})


def toy_data(per_class: int = 6, n_mfcc: int = 40) -> tuple[np.ndarray, pd.DataFrame, np.ndarray]:
    """Frame features whose level depends on the class, with train/val/test parts."""
    rng = np.random.default_rng(0)
    emotions = np.repeat(CLASSES, per_class)
    levels = np.array([CLASSES.index(e) for e in emotions], dtype=np.float32)
    features = (levels[:, None, None] + rng.normal(0, 0.3, (len(emotions), 8, n_mfcc))).astype(np.float32)
    index = pd.DataFrame({
        "file": [f"tess/clip{i}.wav" for i in range(len(emotions))], "corpus": "tess", "speaker": "tess/OAF",
        "text": "back", "emotion": emotions, "valid_frames": rng.integers(4, 9, len(emotions)),
    })
    parts = np.tile([TRAIN, TRAIN, TRAIN, TRAIN, VALIDATION, TEST], len(CLASSES))
    return features, index, parts


def no_copies(features: np.ndarray) -> tuple[np.ndarray, pd.DataFrame]:
    return features[:0], pd.DataFrame(columns=[*INDEX_COLUMNS, "source", "copy"])


def save_network(model_dir, model, params: ModelParams, index: pd.DataFrame, parts: np.ndarray, meta: dict) -> None:
    """Save one network as the train stage saves a fold's model (temperature 1, no reference statistics)."""
    member = Member(params, export_onnx(model, input_name(params)), np.zeros((0, len(CLASSES))), model)
    save_model(model_dir, [member], 1.0, index, parts, meta, {})


# --- the tutorial network --------------------------------------------------------------------------------


def test_seed_lstm_is_the_tutorial_network() -> None:
    model = build_model((40, 1), len(CLASSES), TUTORIAL)
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
    data = fold_data(Clips(features, index, no_copies(features)), parts, TUTORIAL, CLASSES)
    assert data.fit_x.shape == ((parts == TRAIN).sum(), 40, 1)
    assert data.val_x.shape == ((parts == VALIDATION).sum(), 40, 1)


SMALL = ModelParams(arch="seed_lstm", lstm_units=16, dense_units=[8], dropout=0.1, **BASE)


def test_training_learns_and_is_reproducible_under_a_seed() -> None:
    features, index, parts = toy_data()
    data = fold_data(Clips(features, index, no_copies(features)), parts, SMALL, CLASSES)
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
    data = fold_data(Clips(features, index, no_copies(features)), parts, small, CLASSES)
    train = _train(seed=1)
    model, _ = train_model(data, small, train)
    retrained, _ = train_model(data, small, train)
    save_network(tmp_path / "a", model, small, index, parts, {})
    save_network(tmp_path / "b", retrained, small, index, parts, {})
    first, second = (tmp_path / d / keras_file("seed_lstm") for d in "ab")
    assert first.read_bytes() == second.read_bytes()
    restored = keras.models.load_model(first)
    np.testing.assert_allclose(
        restored.predict(data.fit_x, verbose=0), model.predict(data.fit_x, verbose=0), rtol=0, atol=1e-6
    )


def test_save_model_writes_meta_and_split(tmp_path) -> None:
    import json

    features, index, parts = toy_data()
    data = fold_data(Clips(features, index, no_copies(features)), parts, SMALL, CLASSES)
    model = build_model(data.fit_x.shape[1:], len(CLASSES), SMALL)
    save_network(tmp_path, model, SMALL, index, parts, {"fold": "fold1", "folds": ["fold1"], "classes": list(CLASSES),
                                                        "model": SMALL.model_dump()})
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["classes"] == list(CLASSES)
    assert meta["fold"] == "fold1" and meta["folds"] == ["fold1"]
    assert ModelParams(**meta["model"]) == SMALL  # evaluate rebuilds the params from here
    assert meta["temperature"] == 1.0
    learned = np.isin(parts, [TRAIN, VALIDATION])
    assert meta["trained_on"] == {"corpora": {"tess": int(learned.sum())}, "speakers": 1, "clips": int(learned.sum())}
    assert meta["reference_stats"] == {}  # none given
    # the served graph reads the network's inputs, named by their kind, of the network's shape
    graph = onnx.load(tmp_path / "model.onnx").graph
    assert [node.name for node in graph.input] == ["pooled"]
    assert [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim][1:] == [40, 1]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["meta.json", "model.onnx", "seed_lstm.keras", "split.csv"]
    split = pd.read_csv(tmp_path / "split.csv")
    assert list(split.columns) == ["file", "corpus", "speaker", "text", "emotion", "part"]
    assert split["part"].tolist() == list(parts)
    assert split["file"].tolist() == index["file"].tolist()


def three_corpora() -> pd.DataFrame:
    rows = [
        {"file": f"{c}/{s}_{t}_{e}.wav", "corpus": c, "speaker": f"{c}/{s}", "text": t, "emotion": e, "valid_frames": 8}
        for c, speakers in {"tess": ("OAF", "YAF"), "ravdess": ("01", "02", "03"), "emovo": ("f1",)}.items()
        for s, t, e in itertools.product(speakers, ("a", "b"), CLASSES)
    ]
    return pd.DataFrame(rows)


def test_trained_on_counts_the_training_and_validation_clips_only() -> None:
    index = three_corpora()
    split = SPLIT.model_copy(update={"protocol": "corpus", "train_corpora": ["tess"]})
    parts = fold_parts(index, split)["test_ravdess"]
    assert set(parts) == {TRAIN, VALIDATION, TEST, UNUSED}
    # a fold model learned from tess alone: the tested ravdess and the unused emovo are not counted
    assert trained_on(index, parts) == {"corpora": {"tess": 28}, "speakers": 2, "clips": 28}
    # the deployable model learned from everything
    everything = np.full(len(index), TRAIN, dtype=object)
    assert trained_on(index, everything) == {"corpora": {"emovo": 14, "ravdess": 42, "tess": 28}, "speakers": 6, "clips": 84}
    # validation clips count: the model saw them (early stopping, reference statistics)
    some = np.where(index["corpus"] == "emovo", VALIDATION, TEST)
    assert trained_on(index, some) == {"corpora": {"emovo": 14}, "speakers": 1, "clips": 14}


def test_save_model_records_what_it_was_trained_on(tmp_path) -> None:
    import json

    index = three_corpora()
    parts = fold_parts(index, SPLIT.model_copy(update={"protocol": "corpus"}))["test_tess"]
    model = build_model((40, 1), len(CLASSES), SMALL)
    save_network(tmp_path, model, SMALL, index, parts, {"classes": list(CLASSES)})
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["trained_on"] == {"corpora": {"emovo": 14, "ravdess": 42}, "speakers": 4, "clips": 56}
    assert json.loads(json.dumps(meta["trained_on"])) == meta["trained_on"]


# --- labels ------------------------------------------------------------------------------------------------


def test_encode_labels_follows_the_order_of_the_classes() -> None:
    emotions = pd.Series(["sad", "angry", "surprise", "sad"])
    np.testing.assert_array_equal(encode_labels(emotions, CLASSES).argmax(axis=1), [5, 0, 6, 5])
    backwards = encode_labels(emotions, CLASSES[::-1])
    np.testing.assert_array_equal(backwards.argmax(axis=1), [1, 6, 0, 1])
    # a class with no clip still has its column
    assert encode_labels(pd.Series(["angry"]), ["angry", "calm"]).tolist() == [[1.0, 0.0]]


def test_encode_labels_refuses_an_emotion_that_is_not_a_class() -> None:
    with pytest.raises(ValueError, match="ps") as info:
        encode_labels(pd.Series(["angry", "ps"]), CLASSES)
    assert "labels stage" in str(info.value)


# --- what each fold trains on ------------------------------------------------------------------------------


def corpus(copies: int = 2) -> tuple[np.ndarray, pd.DataFrame, tuple[np.ndarray, pd.DataFrame]]:
    """Two corpora x two speakers x three texts x seven classes of frame features, and ``copies`` augmented
    copies of each.

    Every clip and every copy has its own level, so any row of model inputs names the clip (and copy) it came from.
    """
    rng = np.random.default_rng(1)
    rows = [
        {"file": f"{c}/{s}_{t}_{e}.wav", "corpus": c, "speaker": f"{c}/{s}", "text": t, "emotion": e}
        for c, speakers in SPEAKERS.items() for s, t, e in itertools.product(speakers, TEXTS, CLASSES)
    ]
    index = pd.DataFrame(rows).sample(frac=1.0, random_state=3).reset_index(drop=True)
    index["valid_frames"] = rng.integers(6, FRAMES + 1, len(index))
    n = len(index)
    features = rng.normal(0, 1, (n, FRAMES, CHANNELS)).astype(np.float32)
    levels = {speaker: 4.0 * k - 5.0 for k, speaker in enumerate(sorted(index["speaker"].unique()))}
    features += index["speaker"].map(levels).to_numpy()[:, None, None].astype(np.float32)
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
    """Record what training is given (``fit_batches``: one epoch's batches, validation data, epochs);
    ``calls.passthrough = False`` stops before training."""

    class Calls(list):
        passthrough = True

    calls = Calls()
    original = training.fit_batches

    def fit(model, batches, validation, epochs, callbacks):
        assert isinstance(batches, ShuffledBatches)
        epoch = [batches[number] for number in range(len(batches))]
        calls.append({"x": np.concatenate([b[0] for b in epoch]), "y": np.concatenate([b[1] for b in epoch]),
                      "batch_size": batches.batch_size, "validation_data": validation, "epochs": epochs, "callbacks": callbacks})
        if not calls.passthrough:
            raise _FitCalled
        return original(model, batches, validation, epochs, callbacks)

    monkeypatch.setattr(training, "fit_batches", fit)
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


@pytest.mark.parametrize("fold", ["fold1", "fold2"])
def test_speaker_fold_fits_on_the_training_speakers_train_clips_and_their_copies_only(fit_calls, fold):
    features, index, augmented = corpus()
    parts = fold_parts(index, SPLIT)[fold]
    data = fold_data(Clips(features, index, augmented), parts, FRAME_MODEL, CLASSES)
    fitted = _captured_fit(data, FRAME_MODEL, fit_calls)

    inputs, aug_inputs = _expected_inputs(features, index, augmented, FRAME_MODEL)
    train_rows = parts == TRAIN
    test_speakers = set(index.loc[parts == TEST, "speaker"])
    assert len(test_speakers) == 2 and {s.split("/")[0] for s in test_speakers} == set(SPEAKERS)  # one per corpus
    assert not set(index.loc[train_rows, "speaker"]) & test_speakers
    own_copies = np.isin(augmented[1]["source"], np.flatnonzero(train_rows))
    expected = np.concatenate([inputs[train_rows], aug_inputs[own_copies]])
    assert fitted["x"].shape == expected.shape == (train_rows.sum() * 3, FRAMES, 2 * CHANNELS + 1)
    assert _rows(fitted["x"]) == _rows(expected)
    # nothing of the test speakers, nor of the validation speaker, is fitted
    for rows in (inputs[parts == TEST], aug_inputs[augmented[1]["speaker"].isin(test_speakers).to_numpy()],
                 inputs[parts == VALIDATION], aug_inputs[np.isin(augmented[1]["source"], np.flatnonzero(parts == VALIDATION))]):
        assert len(rows) and not set(_rows(rows)) & set(_rows(fitted["x"]))
    # labels travel with their rows
    by_row = dict(zip((r.tobytes() for r in expected), encode_labels(
        pd.concat([index.loc[train_rows, "emotion"], augmented[1].loc[own_copies, "emotion"]]), CLASSES)))
    for x, y in zip(fitted["x"], fitted["y"]):
        np.testing.assert_array_equal(y, by_row[x.tobytes()])
    # validation is a whole training speaker, unaugmented
    val_x, val_y = fitted["validation_data"]
    np.testing.assert_array_equal(val_x, inputs[parts == VALIDATION])
    np.testing.assert_array_equal(val_y, encode_labels(index.loc[parts == VALIDATION, "emotion"], CLASSES))
    val_speakers = set(index.loc[parts == VALIDATION, "speaker"])
    assert len(val_speakers) == 1 and not val_speakers & (test_speakers | set(index.loc[train_rows, "speaker"]))


def test_fit_data_passed_through_to_a_real_fit(fit_calls):
    """The wrapped fit trains for real: what it received is what the model trained on."""
    features, index, augmented = corpus(copies=1)
    parts = fold_parts(index, SPLIT)["fold1"]
    params = SMALL.model_copy(update={"deltas": 1, "normalize": "speaker"})
    data = fold_data(Clips(features, index, augmented), parts, params, CLASSES)
    model, history = train_model(data, params, _train(epochs=2))
    assert len(fit_calls) == 1 and len(history["loss"]) == 2 and len(history["val_loss"]) == 2
    assert _rows(fit_calls[0]["x"]) == _rows(np.asarray(data.fit_x))
    assert fit_calls[0]["epochs"] == 2 and fit_calls[0]["batch_size"] == 8
    assert len(fit_calls[0]["x"]) == 2 * (parts == TRAIN).sum()
    assert set(data.fit_index["speaker"]) == set(index.loc[parts == TRAIN, "speaker"])
    assert model.input_shape[1:] == (2 * CHANNELS, 1)
    assert model.output_shape[1:] == (len(CLASSES),)


PROTOCOL_SPLITS = {
    "speaker": SPLIT,
    "corpus": SPLIT.model_copy(update={"protocol": "corpus"}),
    "text": SPLIT.model_copy(update={"protocol": "text"}),
    "random": SPLIT.model_copy(update={"protocol": "random"}),
}


@pytest.mark.parametrize("arch", ["seed_lstm", "cnn1d"])
@pytest.mark.parametrize("protocol", list(PROTOCOL_SPLITS))
def test_augmentation_changes_training_inputs_only(arch, protocol):
    features, index, augmented = corpus()
    params = FRAME_MODEL.model_copy(update={"arch": arch})
    for parts in fold_parts(index, PROTOCOL_SPLITS[protocol]).values():
        with_copies = fold_data(Clips(features, index, augmented), parts, params, CLASSES)
        without = fold_data(Clips(features, index, no_copies(features)), parts, params, CLASSES)
        assert with_copies.val_x.tobytes() == without.val_x.tobytes()
        assert with_copies.val_y.tobytes() == without.val_y.tobytes()
        n_train = (parts == TRAIN).sum()
        assert len(without.fit_x) == n_train and len(with_copies.fit_x) == 3 * n_train
        assert with_copies.fit_x[:n_train].tobytes() == np.asarray(without.fit_x).tobytes()
        assert not np.array_equal(with_copies.fit_x[n_train:2 * n_train], without.fit_x)
        # the test inputs, as evaluate computes them, do not involve the copies, and match what training saw
        test_inputs = model_inputs(features.copy(), index["valid_frames"], index["speaker"], params)
        np.testing.assert_allclose(test_inputs[parts == VALIDATION], with_copies.val_x, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("protocol", list(PROTOCOL_SPLITS))
def test_copies_of_validation_and_test_clips_are_never_fitted(protocol):
    features, index, augmented = corpus()
    _, aug_inputs = _expected_inputs(features, index, augmented, FRAME_MODEL)
    for name, parts in fold_parts(index, PROTOCOL_SPLITS[protocol]).items():
        data = fold_data(Clips(features, index, augmented), parts, FRAME_MODEL, CLASSES)
        held_out = np.flatnonzero(parts != TRAIN)
        assert (parts[held_out] != TRAIN).all() and len(held_out)
        forbidden = aug_inputs[np.isin(augmented[1]["source"], held_out)]
        assert len(forbidden)
        assert not set(_rows(forbidden)) & set(_rows(data.fit_x)), name
        # fit_index says the same: copies only of training clips
        copies = data.fit_index[data.fit_index["copy"] > 0]
        assert set(copies["file"]) <= set(index.loc[parts == TRAIN, "file"])
        assert len(copies) == 2 * (parts == TRAIN).sum()


def test_unused_clips_are_neither_fitted_nor_validated():
    """corpus protocol with train_corpora: a third corpus's clips play no part in the fold's model."""
    features, index, augmented = corpus()
    third = index["speaker"] == "ravdess/02"
    index = index.assign(corpus=np.where(third, "emovo", index["corpus"]), speaker=index["speaker"].where(~third, "emovo/f1"))
    sources = augmented[1]["source"].to_numpy()
    augmented = (augmented[0], augmented[1].assign(corpus=index["corpus"].to_numpy()[sources], speaker=index["speaker"].to_numpy()[sources]))
    split = SPLIT.model_copy(update={"protocol": "corpus", "train_corpora": ["tess"]})
    parts = fold_parts(index, split)["test_ravdess"]
    unused = parts == UNUSED
    np.testing.assert_array_equal(unused, third.to_numpy())
    data = fold_data(Clips(features, index, augmented), parts, FRAME_MODEL, CLASSES)
    inputs, aug_inputs = _expected_inputs(features, index, augmented, FRAME_MODEL)
    for rows in (inputs[unused], aug_inputs[np.isin(augmented[1]["source"], np.flatnonzero(unused))]):
        assert not set(_rows(rows)) & (set(_rows(data.fit_x)) | set(_rows(data.val_x)))
    assert set(data.fit_index["corpus"]) == {"tess"}


def test_fit_index_and_targets_follow_the_fit_rows():
    features, index, augmented = corpus()
    parts = fold_parts(index, SPLIT)["fold1"]
    data = fold_data(Clips(features, index, augmented), parts, FRAME_MODEL, CLASSES)
    n_train = (parts == TRAIN).sum()
    assert data.classes == CLASSES
    assert len(data.fit_index) == len(data.fit_x) == len(data.fit_y) == 3 * n_train
    assert data.fit_index["copy"].tolist() == [0] * n_train + [1] * n_train + [2] * n_train
    assert data.fit_index["file"].tolist() == index.loc[parts == TRAIN, "file"].tolist() * 3
    np.testing.assert_array_equal(data.fit_y.argmax(axis=1), data.fit_index["emotion"].map(CLASSES.index))
    np.testing.assert_array_equal(data.fit_y.sum(axis=1), 1.0)
    assert data.fit_y.shape[1] == data.val_y.shape[1] == len(CLASSES)
    assert len(data.val_x) == len(data.val_y) == (parts == VALIDATION).sum()


def test_fold_data_targets_follow_the_given_classes():
    features, index, _ = corpus(copies=1)
    parts = fold_parts(index, SPLIT)["fold1"]
    backwards = CLASSES[::-1]
    data = fold_data(Clips(features, index, no_copies(features)), parts, FRAME_MODEL, backwards)
    assert data.classes == backwards
    np.testing.assert_array_equal(data.fit_y.argmax(axis=1), data.fit_index["emotion"].map(backwards.index))
    np.testing.assert_array_equal(data.val_y.argmax(axis=1), index.loc[parts == VALIDATION, "emotion"].map(backwards.index))


def test_fold_data_does_not_change_with_the_folds_before_it():
    features, index, augmented = corpus()
    params = FRAME_MODEL.model_copy(update={"deltas": 0})
    folds = list(fold_parts(index, SPLIT).values())
    fresh = fold_data(Clips(features.copy(), index, augmented), folds[1], params, CLASSES)
    fold_data(Clips(features, index, augmented), folds[0], params, CLASSES)  # as train.py does, on the same arrays
    after = fold_data(Clips(features, index, augmented), folds[1], params, CLASSES)
    np.testing.assert_allclose(after.fit_x, fresh.fit_x, atol=1e-5)


# --- the deployable model: every clip, no validation -------------------------------------------------------


def test_the_deployable_model_fits_every_clip_and_its_copies():
    features, index, augmented = corpus()
    everything = np.full(len(index), TRAIN, dtype=object)
    data = fold_data(Clips(features, index, augmented), everything, FRAME_MODEL, CLASSES)
    assert len(data.fit_x) == 3 * len(index)
    assert data.val_x.shape == (0, FRAMES, 2 * CHANNELS + 1) and data.val_y.shape == (0, len(CLASSES))
    inputs, aug_inputs = _expected_inputs(features, index, augmented, FRAME_MODEL)
    assert _rows(data.fit_x) == _rows(np.concatenate([inputs, aug_inputs]))


def test_without_validation_clips_training_runs_the_given_epochs(fit_calls):
    features, index, _ = corpus(copies=1)
    everything = np.full(len(index), TRAIN, dtype=object)
    data = fold_data(Clips(features, index, no_copies(features)), everything, SMALL, CLASSES)
    # early stopping and the learning-rate schedule are asked for, but there is nothing to watch
    train = _train(epochs=9, early_stopping=1, reduce_lr=1)
    model, history = train_model(data, SMALL, train, epochs=3)
    assert len(history["loss"]) == 3
    assert "val_loss" not in history
    call = fit_calls[-1]
    assert call["epochs"] == 3 and call["validation_data"] is None
    assert not any(isinstance(c, (keras.callbacks.EarlyStopping, keras.callbacks.ReduceLROnPlateau)) for c in call["callbacks"])
    # without ``epochs``, train.epochs
    _, history = train_model(data, SMALL, _train(epochs=2))
    assert len(history["loss"]) == 2


# --- callbacks and summaries -----------------------------------------------------------------------------


def test_callbacks_follow_the_params(tmp_path):
    assert _callbacks(_train(), None, True) == []
    early, reduce = _callbacks(_train(early_stopping=5, reduce_lr=3), None, True)
    assert isinstance(early, keras.callbacks.EarlyStopping)
    assert (early.patience, early.monitor, early.restore_best_weights) == (5, "val_loss", True)
    assert isinstance(reduce, keras.callbacks.ReduceLROnPlateau)
    assert (reduce.patience, reduce.factor) == (3, 0.5)
    (only,) = _callbacks(_train(early_stopping=0, reduce_lr=2), None, True)
    assert isinstance(only, keras.callbacks.ReduceLROnPlateau)
    # nothing to validate on: nothing watches the validation loss
    assert _callbacks(_train(early_stopping=5, reduce_lr=3), None, False) == []


def test_early_stopping_stops_and_restores_the_best_epoch():
    features, index, parts = toy_data()
    data = fold_data(Clips(features, index, no_copies(features)), parts, SMALL, CLASSES)
    # a learning rate far too high: validation loss soon stops improving
    model, history = train_model(data, SMALL, _train(epochs=40, early_stopping=2, learning_rate=1.0))
    epochs = len(history["val_loss"])
    assert epochs < 40
    best = int(np.argmin(history["val_loss"]))
    assert best == epochs - 3  # stopped after ``patience`` epochs without improvement
    assert history_summary(history, len(data.fit_x))["best_epoch"] == best + 1
    restored = model.evaluate(data.val_x, data.val_y, verbose=0, return_dict=True)["loss"]
    assert restored == pytest.approx(history["val_loss"][best], rel=1e-4)


def test_train_model_logs_every_epoch_with_dvclive(tmp_path):
    features, index, parts = toy_data()
    data = fold_data(Clips(features, index, no_copies(features)), parts, SMALL, CLASSES)
    train_model(data, SMALL, _train(epochs=2, reduce_lr=1), live_dir=tmp_path / "live")
    for metric in ("train/loss", "train/accuracy", "eval/loss", "eval/accuracy"):
        lines = (tmp_path / "live" / "plots" / "metrics" / f"{metric}.tsv").read_text().splitlines()
        assert len(lines) == 1 + 2, metric
    # dvclive's own summary is dropped: the train stage writes one summary for all folds
    assert not (tmp_path / "live" / "metrics.json").exists()


def test_history_summary_picks_the_best_validation_epoch():
    history = {"loss": [2.0, 1.0, 0.5, 0.2], "val_loss": [1.5, 0.9, 1.1, 1.3],
               "val_accuracy": [0.2, 0.55, 0.6, 0.4], "accuracy": [0.1, 0.5, 0.8, 0.9]}
    assert history_summary(history, n_fit=120) == {
        "epochs": 4, "best_epoch": 2, "n_fit": 120, "val_loss": 0.9, "val_accuracy": 0.55,
    }
    rounded = history_summary({"val_loss": [1 / 3], "val_accuracy": [2 / 3]}, n_fit=1)
    assert rounded["val_loss"] == 0.3333 and rounded["val_accuracy"] == 0.6667  # METRIC_DIGITS
    assert rounded["best_epoch"] == 1 and rounded["epochs"] == 1


def test_mean_summary_averages_the_folds():
    folds = {
        "fold1": {"epochs": 4, "best_epoch": 2, "n_fit": 10, "val_loss": 1.0, "val_accuracy": 0.5},
        "fold2": {"epochs": 6, "best_epoch": 5, "n_fit": 12, "val_loss": 0.5, "val_accuracy": 0.8},
    }
    summary = mean_summary(folds)
    assert summary["val_loss"] == 0.75 and summary["val_accuracy"] == 0.65
    assert summary["folds"] == folds and list(summary["folds"]) == ["fold1", "fold2"]
    single = mean_summary({"random": folds["fold2"]})
    assert (single["val_loss"], single["val_accuracy"]) == (0.5, 0.8)


def _fold_summary(best: dict[str, int]) -> dict:
    """A fold's training summary (``train_fold``) whose networks' best epochs are ``best``."""
    members = {arch: {"epochs": 40, "best_epoch": b, "n_fit": 100, "val_loss": 1.0, "val_accuracy": 0.5} for arch, b in best.items()}
    return {"members": members, "val_loss": 1.0, "val_accuracy": 0.5, "temperature": 1.0}


@pytest.mark.parametrize(("best", "epochs"), [([3, 7, 5], 5), ([4, 7], 5), ([2, 2, 9, 10], 5), ([1], 1), ([12, 30, 30, 8], 21)])
def test_deployable_epochs_is_the_folds_median_best_epoch(best, epochs, train_params):
    folds = {f"fold{k}": _fold_summary({"bigru": b}) for k, b in enumerate(best, 1)}
    assert train_params.early_stopping > 0
    assert deployable_epochs(folds, train_params) == {"bigru": epochs}
    assert type(deployable_epochs(folds, train_params)["bigru"]) is int


def test_deployable_epochs_are_each_networks_own(train_params):
    """Each network of an ensemble gets its own folds' median."""
    folds = {f"fold{k}": _fold_summary({"bigru": b, "cnn1d": 2 * b + 1}) for k, b in enumerate([3, 7, 5], 1)}
    assert deployable_epochs(folds, train_params) == {"bigru": 5, "cnn1d": 11}


def test_deployable_epochs_without_early_stopping_are_train_epochs(train_params):
    """The folds' models ran every epoch: the deployable model does too, whatever epoch was best."""
    folds = {"fold1": _fold_summary({"bigru": 3}), "fold2": _fold_summary({"bigru": 9})}
    no_stopping = train_params.model_copy(update={"early_stopping": 0, "epochs": 50})
    assert deployable_epochs(folds, no_stopping) == {"bigru": 50}


# --- classifiers reading other functional sets ------------------------------------------------------------

WIDTHS = {"egemaps": 88, "compare": 6373}
CLASSIFIERS = ModelParams(arch="ensemble", members=["logreg", "logreg:compare"], functionals="egemaps", logreg_c=0.1,
                          lstm_units=8, dense_units=[8], dropout=0.0, **{**BASE, "deltas": 1, "normalize": "speaker", "shrinkage": 2.0})


def described(index: pd.DataFrame) -> dict[str, np.ndarray]:
    """Functionals of each set per clip: a clip's class shows in each set, in another way, on its own scales."""
    rng = np.random.default_rng(5)
    codes = index["emotion"].map(CLASSES.index).to_numpy()
    out = {}
    for k, (kind, width) in enumerate(WIDTHS.items()):
        signal = np.zeros((len(index), width))
        signal[np.arange(len(index)), (codes * (k + 3)) % width] = 3.0
        out[kind] = ((signal + rng.normal(0, 1, (len(index), width))) * rng.uniform(0.5, 50, width)).astype(np.float32)
    return out


def test_each_classifier_reads_its_own_functional_set():
    features, index, augmented = corpus()
    functionals = described(index)
    parts = fold_parts(index, SPLIT)["fold1"]
    clips = Clips(features, index, augmented, functionals)
    for member, kind in zip(CLASSIFIERS.member_params(), ["egemaps", "compare"]):
        assert member.functionals == kind
        data = fold_data(clips, parts, member.model_copy(update={"normalize": "none"}), CLASSES)
        assert data.fit_x.shape == ((parts == TRAIN).sum(), WIDTHS[kind] + 2 * CHANNELS * 2)  # no copies: functionals of clips only
        np.testing.assert_array_equal(data.fit_x[:, : WIDTHS[kind]], functionals[kind][parts == TRAIN])
        np.testing.assert_array_equal(data.val_x[:, : WIDTHS[kind]], functionals[kind][parts == VALIDATION])


def test_a_classifier_reading_a_set_that_was_not_computed_names_it():
    features, index, augmented = corpus()
    parts = fold_parts(index, SPLIT)["fold1"]
    compare = CLASSIFIERS.member_params()[1]
    for functionals in (None, {"egemaps": described(index)["egemaps"]}):
        with pytest.raises(ValueError, match="compare"):
            fold_data(Clips(features, index, augmented, functionals), parts, compare, CLASSES)


def test_reference_statistics_are_each_inputs_own():
    """Under ``normalize: speaker`` each classifier's reference is the statistics of its own input (its set
    and the frame moments) over the training and validation clips, keyed by the input's name."""
    features, index, augmented = corpus()
    functionals = described(index)
    parts = fold_parts(index, SPLIT)["fold1"]
    clips = Clips(features, index, augmented, functionals)
    learned = np.isin(parts, [TRAIN, VALIDATION])
    for member in CLASSIFIERS.member_params():
        mean, std = reference_stats(clips, parts, member)
        raw = model_inputs(features[learned], index["valid_frames"][learned], index["speaker"][learned],
                           member.model_copy(update={"normalize": "none"}), functionals=functionals[member.functionals][learned])
        assert mean.shape == (WIDTHS[member.functionals] + 2 * CHANNELS * 2,)
        np.testing.assert_allclose(mean, raw.mean(axis=0), rtol=1e-4, atol=1e-3 * np.abs(raw).max())


@pytest.fixture(scope="module")
def trained_classifiers():
    """The classifiers ensemble trained on a speaker fold: (trained fold, clips, parts)."""
    features, index, augmented = corpus()
    clips = Clips(features, index, augmented, described(index))
    parts = fold_parts(index, SPLIT)["fold1"]
    return train_fold(clips, parts, CLASSIFIERS, _train(), CLASSES), clips, parts


def test_train_fold_names_each_classifiers_input_after_its_set(trained_classifiers):
    trained, clips, parts = trained_classifiers
    names = ["utterance_egemaps", "utterance_compare"]
    assert [[i.name for i in member.graph.graph.input] for member in trained.members] == [[name] for name in names]
    widths = [member.graph.graph.input[0].type.tensor_type.shape.dim[1].dim_value for member in trained.members]
    assert widths == [WIDTHS[kind] + 2 * CHANNELS * 2 for kind in ("egemaps", "compare")]
    assert set(trained.reference) == set(names)
    for member in trained.members:
        expected = reference_stats(clips, parts, member.params)
        np.testing.assert_array_equal(trained.reference[input_name(member.params)][0], expected[0])
    assert trained.summary["members"] == {}  # no network: no training curves
    # two classifiers of other inputs: other opinions on the validation clips
    first, second = (member.val_probabilities for member in trained.members)
    assert first.shape == second.shape == ((parts == VALIDATION).sum(), len(CLASSES))
    assert np.abs(first - second).max() > 1e-3


def test_evaluate_model_serves_each_classifier_its_own_set(trained_classifiers, tmp_path, audio_params, feature_params):
    """The saved ensemble scores the test clips with the mean of its members' graphs, each given its set."""
    import onnxruntime

    from ser.evaluation import evaluate_model
    from ser.models import ensemble

    trained, clips, parts = trained_classifiers
    features = feature_params.model_copy(update={"functionals": ["egemaps", "compare"]})
    meta = {"audio": audio_params.model_dump(), "features": features.model_dump(), "model": CLASSIFIERS.model_dump(),
            "fold": "fold1", "classes": list(CLASSES)}
    save_model(tmp_path, trained.members, trained.temperature, clips.index, parts, meta, trained.reference)
    predictions, _, _ = evaluate_model(tmp_path, clips.features, clips.index, clips.functionals)
    test = parts == TEST
    speakers = clips.index["speaker"].to_numpy(dtype=str)
    own = np.isin(speakers, speakers[test])  # a test speaker's statistics are from all their clips
    outputs = []
    for member in trained.members:
        params, kind = member.params, member.params.functionals
        valid = clips.index["valid_frames"][own]
        stats = speaker_stats(clips.features[own], valid, speakers[own], params.deltas, "utterance", clips.functionals[kind][own],
                              trained.reference[input_name(params)], params.shrinkage)
        inputs = model_inputs(clips.features[own], valid, speakers[own], params, stats, clips.functionals[kind][own])
        session = onnxruntime.InferenceSession(member.graph.SerializeToString(), providers=["CPUExecutionProvider"])
        outputs.append(session.run(None, {input_name(params): inputs})[0][test[own]])
    expected = ensemble.calibrated(np.mean(outputs, axis=0), trained.temperature)
    np.testing.assert_allclose(predictions[[f"p_{c}" for c in CLASSES]].to_numpy(), expected, atol=1e-4)
    assert np.abs(outputs[0] - outputs[1]).max() > 1e-3


@pytest.mark.parametrize(("missing", "tolerated"), [("DVCLIVE_STEP_COMPLETED", True), ("metrics.json", False)])
def test_a_fold_logger_tolerates_another_fold_removing_dvclives_signal_file(tmp_path, monkeypatch, missing, tolerated):
    """Folds trained side by side share dvclive's step signal file: whichever ends second finds it gone."""
    import dvclive.live

    def removed_already() -> None:
        raise FileNotFoundError(2, "No such file or directory", str(tmp_path / ".dvc/tmp/exps/run" / missing))

    monkeypatch.setattr(dvclive.live, "cleanup_dvclive_step_completed", removed_already)
    live = FoldLive(str(tmp_path / "live"), dvcyaml=False, save_dvc_exp=False)
    live.log_metric("loss", 1.0)
    live.next_step()
    if tolerated:
        live.end()
    else:
        with pytest.raises(FileNotFoundError, match=missing):
            live.end()
