"""Architectures on tiny synthetic inputs: build, train, save/load; SpecAugment and masked pooling layers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

keras = pytest.importorskip("keras")

from ser.assembly import Member, encode_labels, keras_file, save_model  # noqa: E402
from ser.evaluation import evaluate_model  # noqa: E402
from ser.features import INDEX_COLUMNS  # noqa: E402
from ser.inputs import frame_mask, input_name, model_inputs, speaker_stats  # noqa: E402
from ser.models.networks import ARCHITECTURES, MaskedStatsPooling, PoolFrames, SpecAugment, build_model  # noqa: E402
from ser.params import ModelParams, SpecAugmentParams, TrainParams  # noqa: E402
from ser.split import TEST, TRAIN, UNUSED, VALIDATION  # noqa: E402
from conftest import REPO_CLASSES  # noqa: E402
from ser.training import (  # noqa: E402
    Clips, FoldData, export_onnx, reference_stats, train_model,
)

FRAMES, CHANNELS = 24, 4
SPEC = SpecAugmentParams(time_masks=2, time_width=4, feature_masks=1, feature_width=2)
SMALL = ModelParams(
    arch="cnn1d", deltas=0, normalize="none", lstm_units=8, dense_units=[8], dropout=0.1, filters=8, kernel_size=3,
    conv_layers=2, rnn_units=4, input_noise=0.1, spec_augment=SPEC,
)
TRAIN_PARAMS = TrainParams(epochs=1, batch_size=8, learning_rate=0.01, early_stopping=2, reduce_lr=1, seed=3)
EMOTIONS = REPO_CLASSES


def _small(arch: str, **changes) -> ModelParams:
    return SMALL.model_copy(update={"arch": arch, **changes})


def toy_frames(per_class: int = 3, seed: int = 0) -> tuple[np.ndarray, pd.DataFrame]:
    """Frame features whose level depends on the class, of varying real length, and their index."""
    rng = np.random.default_rng(seed)
    emotions = np.repeat(EMOTIONS, per_class)
    levels = np.array([EMOTIONS.index(e) for e in emotions], dtype=np.float32)
    values = (levels[:, None, None] + rng.normal(0, 0.3, (len(emotions), FRAMES, CHANNELS))).astype(np.float32)
    valid = rng.integers(FRAMES // 2, FRAMES + 1, len(emotions))
    corpora = np.resize(["tess", "ravdess", "emovo"], len(emotions))
    index = pd.DataFrame({
        "file": [f"{c}/clip{i}.wav" for i, c in enumerate(corpora)], "corpus": corpora,
        "speaker": [f"{c}/s{i % 2}" for i, c in enumerate(corpora)], "text": "back",
        "emotion": emotions, "valid_frames": valid,
    })
    return values, index


def _clips(values: np.ndarray, index: pd.DataFrame) -> Clips:
    """The toy clips, without augmented copies or functionals."""
    return Clips(values, index, (values[:0], pd.DataFrame(columns=[*INDEX_COLUMNS, "source", "copy"])))


def _save(model_dir, model, params: ModelParams, index: pd.DataFrame, parts: np.ndarray, meta: dict, values=None) -> None:
    """Save ``model`` alone as the train stage saves a fold's model (its reference statistics from
    ``values`` under ``normalize: speaker``)."""
    member = Member(params, export_onnx(model, input_name(params)), np.zeros((0, len(EMOTIONS))), model)
    stats = None if values is None else reference_stats(_clips(values, index), parts, params)
    reference = {} if stats is None else {input_name(params): stats}
    save_model(model_dir, [member], 1.0, index, parts, meta, reference)


def _meta(audio_params, feature_params, params: ModelParams, fold: str) -> dict:
    """What a fold model's meta.json holds for :class:`ser.inference.Predictor`."""
    return {"audio": audio_params.model_dump(), "features": feature_params.model_dump(), "model": params.model_dump(),
            "fold": fold, "classes": list(EMOTIONS)}


def _data(arch: str) -> tuple[FoldData, np.ndarray]:
    values, index = toy_frames()
    inputs = model_inputs(values, index["valid_frames"], index["speaker"], _small(arch))
    y = encode_labels(index["emotion"], EMOTIONS)
    return FoldData(classes=EMOTIONS, fit_x=inputs, fit_y=y, fit_index=index, val_x=inputs[::3], val_y=y[::3]), inputs


def test_every_arch_is_registered():
    assert set(ARCHITECTURES) == {"seed_lstm", "cnn1d", "bigru"}


@pytest.fixture(scope="module", params=["seed_lstm", "cnn1d", "bigru"])
def trained(request):
    """(arch, model, history, data, inputs): each architecture trained once for one epoch."""
    data, inputs = _data(request.param)
    model, history = train_model(data, _small(request.param), TRAIN_PARAMS)
    return request.param, model, history, data, inputs


def test_arch_trains_one_epoch_and_predicts_probabilities(trained):
    arch, model, history, _, inputs = trained
    expected_shape = (CHANNELS, 1) if arch == "seed_lstm" else (FRAMES, CHANNELS + 1)
    assert inputs.shape[1:] == expected_shape
    assert model.name == arch
    assert model.input_shape == (None, *expected_shape)
    assert len(history["loss"]) == 1 and np.isfinite(history["loss"][0]) and "val_loss" in history
    probabilities = model.predict(inputs, verbose=0)
    assert probabilities.shape == (len(inputs), len(EMOTIONS)) == (21, 7)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert (probabilities >= 0).all()
    # and the epoch did train: the weights moved from their initial values
    untrained = build_model(inputs.shape[1:], len(EMOTIONS), _small(arch), seed=TRAIN_PARAMS.seed)
    assert not np.allclose(untrained.predict(inputs, verbose=0), probabilities, atol=1e-4)


def test_save_and_load_round_trip(tmp_path, trained):
    arch, model, _, data, inputs = trained
    parts = np.resize([TRAIN, TRAIN, VALIDATION, TEST], len(data.fit_index))
    _save(tmp_path, model, _small(arch), data.fit_index, parts, {"fold": "fold1", "classes": list(EMOTIONS)})
    restored = keras.models.load_model(tmp_path / keras_file(arch))
    np.testing.assert_allclose(restored.predict(inputs, verbose=0), model.predict(inputs, verbose=0), rtol=0, atol=1e-6)
    assert [type(layer).__name__ for layer in restored.layers] == [type(layer).__name__ for layer in model.layers]
    split = pd.read_csv(tmp_path / "split.csv")
    assert split["part"].tolist() == list(parts)
    assert split["corpus"].tolist() == data.fit_index["corpus"].tolist()


def test_evaluate_model_scores_the_saved_model_on_its_test_part(tmp_path, trained, audio_params, feature_params):
    arch, model, _, data, inputs = trained
    values, index = toy_frames()
    parts = np.resize([TRAIN, TRAIN, VALIDATION, TEST, UNUSED], len(index))
    params = _small(arch)
    _save(tmp_path, model, params, index, parts, _meta(audio_params, feature_params, params, "fold3"), values)
    no_functionals = {}  # a network reads no functional set
    predictions, scores, meta = evaluate_model(tmp_path, values, index, no_functionals)
    test = parts == TEST
    assert meta["fold"] == "fold3" and (predictions["fold"] == "fold3").all()
    assert predictions["file"].tolist() == index["file"][test].tolist()
    assert predictions["corpus"].tolist() == index["corpus"][test].tolist()
    assert predictions["speaker"].tolist() == index["speaker"][test].tolist()
    # the served (ONNX) graph says what the Keras model says
    expected = model.predict(inputs[test], verbose=0)
    np.testing.assert_allclose(predictions[[f"p_{c}" for c in EMOTIONS]].to_numpy(), expected, atol=1e-5)
    # served: each clip alone, as `ser predict` scores it (here without speaker statistics: the same inputs)
    alone = model_inputs(values[test], index["valid_frames"][test], np.arange(test.sum()).astype(str), params)
    assert predictions["served"].tolist() == [EMOTIONS[i] for i in model.predict(alone, verbose=0).argmax(axis=1)]
    assert scores["n_test"] == test.sum()
    assert (scores["n_train"], scores["n_val"]) == ((parts == TRAIN).sum(), (parts == VALIDATION).sum())
    assert scores["accuracy"] == pytest.approx((predictions["actual"] == predictions["predicted"]).mean(), abs=1e-6)
    assert scores["serving_accuracy"] == pytest.approx((predictions["actual"] == predictions["served"]).mean(), abs=1e-6)
    with pytest.raises(RuntimeError, match="rerun the train stage"):
        evaluate_model(tmp_path, values[::-1], index[::-1].reset_index(drop=True), no_functionals)


def _shrunk_stats(values: np.ndarray, valid: np.ndarray, speakers: np.ndarray, reference, shrinkage: float) -> dict:
    """Each speaker's statistics from their clips here, ``n / (n + shrinkage)`` their own and the rest the
    reference's (for the mean and the variance)."""
    stats = {}
    for speaker, (mean, std) in speaker_stats(values, valid, speakers, 0).items():
        n = int((speakers == speaker).sum())
        weight = n / (n + shrinkage)
        stats[speaker] = (weight * mean + (1 - weight) * reference[0],
                          np.sqrt(weight * std**2 + (1 - weight) * reference[1] ** 2))
    return stats


def test_evaluate_model_serves_speaker_normalized_clips_with_the_reference_statistics(tmp_path, audio_params, feature_params):
    """Under ``normalize: speaker`` the fold scores each test clip with its speaker's statistics, and
    ``served`` with the clip's own alone; both are shrunk toward the training clips' pooled
    statistics by their number of clips, so the two columns can differ."""
    values, index = toy_frames()
    values = values + np.where(index["speaker"].str.endswith("s1"), 4.0, -4.0)[:, None, None].astype(np.float32)
    params = _small("cnn1d", normalize="speaker", shrinkage=3.0)
    # the test part holds whole speakers (the speaker protocol): all their clips are test clips
    parts = np.where(index["corpus"] == "emovo", TEST, np.resize([TRAIN, TRAIN, VALIDATION], len(index)))
    model = build_model((FRAMES, CHANNELS + 1), len(EMOTIONS), params, seed=0)
    _save(tmp_path, model, params, index, parts, _meta(audio_params, feature_params, params, "fold1"), values)
    predictions, _, meta = evaluate_model(tmp_path, values, index, {})
    test = parts == TEST
    reference = tuple(np.float32(meta["reference_stats"]["frames"][key]) for key in ("mean", "std"))
    learned = np.isin(parts, [TRAIN, VALIDATION])
    real = values[learned][frame_mask(index["valid_frames"][learned], FRAMES) == 1]
    np.testing.assert_allclose(reference[0], real.mean(axis=0), atol=1e-4)  # the training clips' pooled statistics
    np.testing.assert_allclose(reference[1], real.std(axis=0), atol=1e-4)
    test_values, valid, speakers = values[test], index["valid_frames"][test].to_numpy(), index["speaker"][test].to_numpy(dtype=str)
    assert len(set(speakers)) == 2
    own = model_inputs(test_values, valid, speakers, params, _shrunk_stats(test_values, valid, speakers, reference, 3.0))
    each = np.arange(len(speakers)).astype(str)
    alone = model_inputs(test_values, valid, each, params, _shrunk_stats(test_values, valid, each, reference, 3.0))
    assert not np.allclose(own, alone, atol=1e-3)
    np.testing.assert_allclose(predictions[[f"p_{c}" for c in EMOTIONS]].to_numpy(), model.predict(own, verbose=0), atol=1e-5)
    assert predictions["served"].tolist() == [EMOTIONS[i] for i in model.predict(alone, verbose=0).argmax(axis=1)]


@pytest.mark.parametrize("arch", ["cnn1d", "bigru"])
def test_frame_models_augment_in_training_only(arch):
    _, inputs = _data(arch)
    model = build_model(inputs.shape[1:], len(EMOTIONS), _small(arch), seed=1)
    kinds = {type(layer).__name__ for layer in model.layers}
    assert {"SpecAugment", "GaussianNoise", "MaskedStatsPooling"} <= kinds
    inference = model(inputs, training=False)
    np.testing.assert_array_equal(model(inputs, training=False), inference)
    assert not np.allclose(model(inputs, training=True), inference, atol=1e-6)


@pytest.mark.parametrize("arch", ["cnn1d", "bigru"])
def test_augmentation_layers_are_left_out_when_off(arch):
    off = _small(arch, input_noise=0.0, spec_augment=SpecAugmentParams(time_masks=0, time_width=4, feature_masks=0, feature_width=2))
    model = build_model((FRAMES, CHANNELS + 1), len(EMOTIONS), off)
    kinds = {type(layer).__name__ for layer in model.layers}
    assert not kinds & {"SpecAugment", "GaussianNoise"}


@pytest.mark.parametrize("max_frames, time_stride", [(0, 1), (0, 3), (FRAMES, 2)])
def test_bigru_ignores_padded_frames(max_frames, time_stride):
    """The GRU runs over real frames only and pools over them: padding content cannot matter."""
    values, index = toy_frames()
    params = _small("bigru", max_frames=max_frames, time_stride=time_stride)
    inputs = model_inputs(values, index["valid_frames"], index["speaker"], params)
    model = build_model(inputs.shape[1:], len(EMOTIONS), params, seed=0)
    other = inputs.copy()
    padded = frame_mask(index["valid_frames"], FRAMES) == 0
    assert padded.any()
    other[..., :-1][padded] = 5.0  # features of padded frames, not the mask channel
    np.testing.assert_allclose(model.predict(other, verbose=0), model.predict(inputs, verbose=0), atol=1e-5)
    # while a change to a real frame does move the output
    real = inputs.copy()
    real[:, 0, :-1] += 3.0
    assert not np.allclose(model.predict(real, verbose=0), model.predict(inputs, verbose=0), atol=1e-4)


# --- SpecAugment ---------------------------------------------------------------------------------------


def _ones(batch: int = 6) -> np.ndarray:
    return np.ones((batch, 30, 10), dtype=np.float32)


def test_pool_frames_averages_real_frames_and_keeps_a_frame_with_any_real_one():
    features = np.arange(1, 8, dtype=np.float32).reshape(1, 7, 1)
    mask = np.array([[1, 1, 1, 1, 1, 0, 0]], dtype=np.float32)
    pooled, pooled_mask = PoolFrames(max_frames=6, stride=2)([features * mask[..., None] + 9 * (1 - mask[..., None]), mask])
    np.testing.assert_allclose(np.asarray(pooled)[0, :, 0], [1.5, 3.5, 5.0])
    np.testing.assert_array_equal(np.asarray(pooled_mask), [[1, 1, 1]])
    pooled, pooled_mask = PoolFrames(stride=3)([features, mask])  # 7 frames: padded to 9
    np.testing.assert_allclose(np.asarray(pooled)[0, :, 0], [2.0, 4.5, 0.0])
    np.testing.assert_array_equal(np.asarray(pooled_mask), [[1, 1, 0]])


def test_pool_frames_config_round_trip():
    layer = PoolFrames.from_config(PoolFrames(max_frames=10, stride=3).get_config())
    assert (layer.max_frames, layer.stride) == (10, 3)


def test_spec_augment_is_the_identity_at_inference():
    layer = SpecAugment(3, 8, 2, 4, seed=0)
    x = np.random.default_rng(0).standard_normal((4, 30, 10)).astype(np.float32)
    np.testing.assert_array_equal(layer(x, training=False), x)
    np.testing.assert_array_equal(layer(x), x)


def test_spec_augment_masks_runs_of_frames_and_coefficients_in_training():
    layer = SpecAugment(time_masks=2, time_width=5, feature_masks=1, feature_width=3, seed=1)
    out = keras.ops.convert_to_numpy(layer(_ones(16), training=True))
    assert set(np.unique(out)) <= {0.0, 1.0}
    assert (out == 0).any()
    for sample in out:
        zero_frames = (sample == 0).all(axis=1)
        zero_channels = (sample == 0).all(axis=0)
        # every zero lies in a fully masked frame or a fully masked coefficient
        expected = zero_frames[:, None] | zero_channels[None, :]
        np.testing.assert_array_equal(sample == 0, expected)
        assert zero_frames.sum() <= 2 * 5
        assert zero_channels.sum() <= 1 * 3


def test_spec_augment_masks_values_not_rescales_them():
    x = np.random.default_rng(2).standard_normal((8, 30, 10)).astype(np.float32)
    out = keras.ops.convert_to_numpy(SpecAugment(2, 6, 2, 3, seed=4)(x, training=True))
    kept = out != 0
    np.testing.assert_array_equal(out[kept], x[kept])
    assert not kept.all()


def test_spec_augment_is_deterministic_under_its_seed():
    first = keras.ops.convert_to_numpy(SpecAugment(2, 6, 2, 3, seed=5)(_ones(), training=True))
    again = keras.ops.convert_to_numpy(SpecAugment(2, 6, 2, 3, seed=5)(_ones(), training=True))
    other = keras.ops.convert_to_numpy(SpecAugment(2, 6, 2, 3, seed=6)(_ones(), training=True))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_spec_augment_draws_new_masks_each_call():
    layer = SpecAugment(2, 6, 2, 3, seed=5)
    first = keras.ops.convert_to_numpy(layer(_ones(), training=True))
    second = keras.ops.convert_to_numpy(layer(_ones(), training=True))
    assert not np.array_equal(first, second)


def test_spec_augment_without_masks_is_the_identity():
    x = np.random.default_rng(3).standard_normal((4, 30, 10)).astype(np.float32)
    np.testing.assert_array_equal(SpecAugment(0, 6, 0, 3, seed=0)(x, training=True), x)
    np.testing.assert_array_equal(SpecAugment(2, 0, 2, 0, seed=0)(x, training=True), x)


def test_spec_augment_config_round_trip():
    layer = SpecAugment(2, 6, 1, 3, seed=9, name="spec")
    clone = SpecAugment.from_config(layer.get_config())
    assert (clone.time_masks, clone.time_width, clone.feature_masks, clone.feature_width, clone.seed) == (2, 6, 1, 3, 9)


# --- MaskedStatsPooling --------------------------------------------------------------------------------


def _pool_inputs(seed: int = 0):
    rng = np.random.default_rng(seed)
    values = rng.standard_normal((5, 20, 6)).astype(np.float32)
    valid = np.array([20, 12, 7, 1, 15])
    return values, frame_mask(valid, 20), valid


def test_stats_pooling_is_mean_and_std_over_real_frames():
    values, mask, valid = _pool_inputs()
    out = keras.ops.convert_to_numpy(MaskedStatsPooling()([values, mask]))
    assert out.shape == (5, 12)
    for clip, n in enumerate(valid):
        real = values[clip, :n]
        np.testing.assert_allclose(out[clip, :6], real.mean(axis=0), atol=1e-5)
        np.testing.assert_allclose(out[clip, 6:], np.sqrt(real.var(axis=0) + 1e-6), atol=1e-4)


@pytest.mark.parametrize("attention", [False, True])
def test_stats_pooling_ignores_padded_frames(attention):
    values, mask, _ = _pool_inputs()
    layer = MaskedStatsPooling(attention=attention)
    out = keras.ops.convert_to_numpy(layer([values, mask]))
    changed = values.copy()
    changed[mask == 0] = 1000.0 * np.random.default_rng(1).standard_normal((int((mask == 0).sum()), 6))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer([changed, mask])), out, rtol=1e-5, atol=1e-5)
    # a real frame does count
    moved = values.copy()
    moved[:, 0] += 10.0
    assert not np.allclose(keras.ops.convert_to_numpy(layer([moved, mask])), out, atol=1e-3)


def test_attentive_pooling_weights_sum_to_one_over_real_frames():
    """With equal frames the attention weights cannot matter: mean is the frame, std is ~0."""
    frame = np.random.default_rng(4).standard_normal(6).astype(np.float32)
    values = np.broadcast_to(frame, (3, 20, 6)).copy()
    mask = frame_mask(np.array([20, 9, 2]), 20)
    values[mask == 0] = -50.0
    out = keras.ops.convert_to_numpy(MaskedStatsPooling(attention=True)([values, mask]))
    np.testing.assert_allclose(out[:, :6], np.broadcast_to(frame, (3, 6)), atol=1e-4)
    np.testing.assert_allclose(out[:, 6:], 1e-3, atol=1e-3)
