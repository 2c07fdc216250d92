"""Model inputs from cached frame features: mask, deltas, normalization, pooling."""

from __future__ import annotations

import librosa
import numpy as np
import pytest

from ser.inputs import frame_mask, model_inputs, speaker_stats, with_deltas
from ser.params import ModelParams

FRAMES, CHANNELS = 40, 3
VALID = np.array([40, 23, 40, 17, 31, 12])
SPEAKERS = np.array(["tess/OAF", "tess/OAF", "tess/OAF", "ravdess/13", "ravdess/13", "ravdess/13"])


@pytest.fixture
def values() -> np.ndarray:
    """Six clips whose channels have other levels and scales per speaker; padded frames hold junk."""
    rng = np.random.default_rng(0)
    out = rng.standard_normal((len(VALID), FRAMES, CHANNELS)).astype(np.float32)
    out *= np.where(SPEAKERS == "tess/OAF", 2.0, 0.5)[:, None, None]
    out += np.where(SPEAKERS == "tess/OAF", 10.0, -4.0)[:, None, None] + np.arange(CHANNELS)
    out[frame_mask(VALID, FRAMES) == 0] = 77.0  # must never reach the inputs
    return out


def _params(model_params: ModelParams, **changes) -> ModelParams:
    return model_params.model_copy(update=changes)


def _real(inputs: np.ndarray, clip: int) -> np.ndarray:
    """The feature channels of a clip's real frames (frame-model inputs)."""
    return inputs[clip, : VALID[clip], :-1]


def test_frame_mask():
    mask = frame_mask(np.array([0, 2, 5, 7]), 5)
    assert mask.dtype == np.float32
    np.testing.assert_array_equal(mask, [
        [0, 0, 0, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 1, 1], [1, 1, 1, 1, 1],
    ])


def test_with_deltas_order_zero_is_the_identity(values):
    assert with_deltas(values, 0) is values


@pytest.mark.parametrize("order", [1, 2])
def test_with_deltas_appends_delta_channels(values, order):
    out = with_deltas(values, order)
    assert out.shape == (len(values), FRAMES, CHANNELS * (1 + order))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out[..., :CHANNELS], values)
    for k in range(1, order + 1):
        expected = librosa.feature.delta(values, width=9, order=k, axis=1)
        np.testing.assert_allclose(out[..., k * CHANNELS:(k + 1) * CHANNELS], expected, rtol=1e-5, atol=1e-4)


def test_deltas_of_a_ramp_are_its_slope():
    ramp = np.broadcast_to(np.arange(20, dtype=np.float32)[None, :, None] * 0.5, (1, 20, 2)).copy()
    out = with_deltas(ramp, 2)
    np.testing.assert_allclose(out[0, 5:15, 2:4], 0.5, atol=1e-5)  # delta: the slope
    np.testing.assert_allclose(out[0, 5:15, 4:6], 0.0, atol=1e-5)  # delta-delta: no curvature


@pytest.mark.parametrize("frames", [3, 4, 5, 8])
def test_deltas_on_few_frames(frames):
    out = with_deltas(np.random.default_rng(1).standard_normal((2, frames, 4)).astype(np.float32), 2)
    assert out.shape == (2, frames, 12)
    assert np.all(np.isfinite(out))


def test_deltas_need_three_frames():
    with pytest.raises(ValueError, match="3 frames"):
        with_deltas(np.zeros((1, 2, 4), np.float32), 1)


@pytest.mark.parametrize("normalize", ["none", "utterance", "speaker"])
@pytest.mark.parametrize("deltas", [0, 1, 2])
def test_frame_inputs_shape_mask_and_padding(values, model_params, normalize, deltas):
    params = _params(model_params, arch="cnn1d", normalize=normalize, deltas=deltas)
    inputs = model_inputs(values, VALID, SPEAKERS, params)
    assert inputs.shape == (len(VALID), FRAMES, CHANNELS * (1 + deltas) + 1)
    assert inputs.dtype == np.float32
    np.testing.assert_array_equal(inputs[..., -1], frame_mask(VALID, FRAMES))  # the mask channel is last
    padded = frame_mask(VALID, FRAMES) == 0
    np.testing.assert_array_equal(inputs[padded], 0.0)  # padded frames are zero, mask channel included
    assert np.all(np.isfinite(inputs))


def test_no_normalization_keeps_the_real_frames(values, model_params):
    inputs = model_inputs(values, VALID, SPEAKERS, _params(model_params, arch="bigru", normalize="none", deltas=0))
    for clip in range(len(VALID)):
        np.testing.assert_array_equal(_real(inputs, clip), values[clip, : VALID[clip]])


@pytest.mark.parametrize("deltas", [0, 1])
def test_utterance_normalization(values, model_params, deltas):
    inputs = model_inputs(values, VALID, SPEAKERS, _params(model_params, arch="cnn1d", normalize="utterance", deltas=deltas))
    for clip in range(len(VALID)):
        real = _real(inputs, clip)
        np.testing.assert_allclose(real.mean(axis=0), 0.0, atol=1e-4)
        np.testing.assert_allclose(real.std(axis=0), 1.0, atol=1e-3)


def test_utterance_normalization_ignores_other_clips_and_levels(values, model_params):
    params = _params(model_params, arch="cnn1d", normalize="utterance", deltas=0)
    inputs = model_inputs(values, VALID, SPEAKERS, params)
    alone = model_inputs(values[3:4], VALID[3:4], SPEAKERS[3:4], params)
    np.testing.assert_allclose(alone[0], inputs[3], atol=1e-5)
    louder = model_inputs(values[3:4] * 3.0 + 5.0, VALID[3:4], SPEAKERS[3:4], params)
    np.testing.assert_allclose(louder, alone, atol=1e-4)


@pytest.mark.parametrize("deltas", [0, 1, 2])
def test_speaker_normalization_per_speaker(values, model_params, deltas):
    inputs = model_inputs(values, VALID, SPEAKERS, _params(model_params, arch="cnn1d", normalize="speaker", deltas=deltas))
    for speaker in np.unique(SPEAKERS):
        real = np.concatenate([_real(inputs, clip) for clip in np.flatnonzero(SPEAKERS == speaker)])
        np.testing.assert_allclose(real.mean(axis=0), 0.0, atol=1e-4)
        np.testing.assert_allclose(real.std(axis=0), 1.0, atol=1e-3)
    # per speaker, not per clip: single clips keep their own offsets
    per_clip_means = np.array([_real(inputs, clip).mean(axis=0) for clip in range(len(VALID))])
    assert np.abs(per_clip_means).max() > 0.1


def test_speaker_normalization_removes_each_speakers_level_and_scale(values, model_params):
    params = _params(model_params, arch="cnn1d", normalize="speaker", deltas=1)
    inputs = model_inputs(values, VALID, SPEAKERS, params)
    shifted = values.copy()
    shifted[SPEAKERS == "ravdess/13"] = shifted[SPEAKERS == "ravdess/13"] * 4.0 - 20.0
    np.testing.assert_allclose(model_inputs(shifted, VALID, SPEAKERS, params), inputs, atol=1e-3)
    # another speaker's clips do not move a speaker's inputs
    oaf = SPEAKERS == "tess/OAF"
    only_oaf = model_inputs(values[oaf], VALID[oaf], SPEAKERS[oaf], params)
    np.testing.assert_allclose(only_oaf, inputs[oaf], atol=1e-5)


def test_given_speaker_stats_are_used(values, model_params):
    params = _params(model_params, arch="cnn1d", normalize="speaker", deltas=0)
    mean, std = np.array([1.0, 2.0, 3.0], np.float32), np.array([2.0, 4.0, 0.5], np.float32)
    stats = {"tess/OAF": (mean, std), "ravdess/13": (-mean, std * 2)}
    inputs = model_inputs(values.copy(), VALID, SPEAKERS, params, stats)
    for clip in range(len(VALID)):
        m, s = stats[SPEAKERS[clip]]
        np.testing.assert_allclose(_real(inputs, clip), (values[clip, : VALID[clip]] - m) / s, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("deltas", [0, 1, 2])
def test_speaker_stats_match_the_default(values, model_params, deltas):
    """``speaker_stats`` of the raw features (with the model's deltas) are what model_inputs computes itself."""
    params = _params(model_params, arch="cnn1d", normalize="speaker", deltas=deltas)
    stats = speaker_stats(values.copy(), VALID, SPEAKERS, deltas)
    assert set(stats) == {"tess/OAF", "ravdess/13"}
    for mean, std in stats.values():
        assert mean.shape == std.shape == (CHANNELS * (1 + deltas),)
        assert np.all(std > 0)
    np.testing.assert_allclose(
        model_inputs(values.copy(), VALID, SPEAKERS, params, stats), model_inputs(values.copy(), VALID, SPEAKERS, params),
        atol=1e-5,
    )


def test_speaker_stats_from_other_clips_apply_to_new_ones(values, model_params):
    """Statistics computed on some clips normalize other clips of the same speaker (serving)."""
    params = _params(model_params, arch="cnn1d", normalize="speaker", deltas=0)
    stats = speaker_stats(values[:2].copy(), VALID[:2], SPEAKERS[:2], 0)
    inputs = model_inputs(values[2:3].copy(), VALID[2:3], SPEAKERS[2:3], params, stats)
    m, s = stats["tess/OAF"]
    np.testing.assert_allclose(_real(inputs, 0), (values[2, : VALID[2]] - m) / s, rtol=1e-5, atol=1e-5)


def test_missing_speaker_stats_raise(values, model_params):
    params = _params(model_params, arch="cnn1d", normalize="speaker", deltas=0)
    stats = speaker_stats(values[:3].copy(), VALID[:3], SPEAKERS[:3], 0)
    with pytest.raises(ValueError, match="ravdess/13"):
        model_inputs(values.copy(), VALID, SPEAKERS, params, stats)


@pytest.mark.parametrize("normalize", ["none", "utterance", "speaker"])
@pytest.mark.parametrize("arch", ["cnn1d", "seed_lstm"])
def test_padded_frames_do_not_matter(values, model_params, normalize, arch):
    params = _params(model_params, arch=arch, normalize=normalize, deltas=0)
    other = values.copy()
    other[frame_mask(VALID, FRAMES) == 0] = -1234.0
    np.testing.assert_allclose(
        model_inputs(values.copy(), VALID, SPEAKERS, params), model_inputs(other, VALID, SPEAKERS, params), atol=1e-5
    )


@pytest.mark.parametrize("deltas", [0, 1, 2])
def test_seed_lstm_inputs_are_pooled(values, model_params, deltas):
    params = _params(model_params, arch="seed_lstm", normalize="none", deltas=deltas)
    inputs = model_inputs(values, VALID, SPEAKERS, params)
    assert inputs.shape == (len(VALID), CHANNELS * (1 + deltas), 1)
    assert inputs.dtype == np.float32
    full = with_deltas(values, deltas)
    for clip in range(len(VALID)):
        np.testing.assert_allclose(inputs[clip, :, 0], full[clip, : VALID[clip]].mean(axis=0), rtol=1e-5, atol=1e-5)


def test_seed_lstm_pools_the_normalized_frames(values, model_params):
    frames = model_inputs(values, VALID, SPEAKERS, _params(model_params, arch="cnn1d", normalize="utterance", deltas=0))
    pooled = model_inputs(values, VALID, SPEAKERS, _params(model_params, arch="seed_lstm", normalize="utterance", deltas=0))
    np.testing.assert_allclose(pooled[..., 0], 0.0, atol=1e-4)  # each clip's mean over its real frames
    speaker = model_inputs(values, VALID, SPEAKERS, _params(model_params, arch="seed_lstm", normalize="speaker", deltas=0))
    assert np.abs(speaker).max() > 0.1
    assert frames.shape[2] == pooled.shape[1] + 1


def test_list_and_series_arguments(values, model_params):
    import pandas as pd

    params = _params(model_params, arch="cnn1d", normalize="speaker", deltas=1)
    expected = model_inputs(values.copy(), VALID, SPEAKERS, params)
    got = model_inputs(values.copy(), pd.Series(VALID), pd.Series(SPEAKERS, index=range(10, 16)), params)
    np.testing.assert_array_equal(got, expected)
    got = model_inputs(values.copy(), list(VALID), list(SPEAKERS), params)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("normalize", ["speaker"])
def test_model_inputs_does_not_modify_its_arguments(values, model_params, normalize):
    params = _params(model_params, arch="cnn1d", normalize=normalize, deltas=0)
    before = values.copy()
    model_inputs(values, VALID, SPEAKERS, params)
    np.testing.assert_array_equal(values, before)


@pytest.mark.parametrize(("normalize", "deltas"), [("none", 0), ("utterance", 0), ("speaker", 1), ("speaker", 2)])
def test_model_inputs_does_not_modify_its_arguments_otherwise(values, model_params, normalize, deltas):
    params = _params(model_params, arch="cnn1d", normalize=normalize, deltas=deltas)
    before = values.copy()
    model_inputs(values, VALID, SPEAKERS, params)
    np.testing.assert_array_equal(values, before)


@pytest.mark.parametrize("order", [1, 2])
def test_with_deltas_of_no_clips_has_the_channels_it_would_have(order):
    assert with_deltas(np.zeros((0, 30, 4), np.float32), order).shape == (0, 30, 4 * (order + 1))


def test_speakers_of_two_corpora_with_one_name_are_normalized_apart(values, model_params):
    """Speaker ids are qualified by corpus: actor 01 of one corpus and speaker 01 of another are two speakers."""
    params = _params(model_params, arch="cnn1d", normalize="speaker", deltas=0)
    qualified = np.array(["ravdess/01"] * 3 + ["emovo/01"] * 3)
    inputs = model_inputs(values, VALID, qualified, params)
    np.testing.assert_allclose(inputs, model_inputs(values, VALID, SPEAKERS, params), atol=1e-5)
    merged = model_inputs(values, VALID, np.full(6, "01"), params)
    assert not np.allclose(merged, inputs, atol=1e-2)
    assert set(speaker_stats(values, VALID, qualified, 0)) == {"ravdess/01", "emovo/01"}
