"""Speaker statistics shrunk toward a reference (``model.shrinkage``), utterance inputs (one vector per
clip for utterance classifiers) and per-clip training weights (``train.balance``).

``ser.training`` imports TensorFlow: only the sample-weight tests import it, through a fixture.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ser.inputs import (
    EPSILON, FRAMES as FRAME_INPUTS, POOLED, UTTERANCE, frame_mask, input_kind, input_name, member_functionals,
    model_inputs, shrink, speaker_stats, with_deltas,
)
from ser.params import ModelParams, load_params

PARAMS_YAML = Path(__file__).resolve().parents[1] / "params.yaml"
FRAMES, CHANNELS, WIDTH = 30, 4, 5
SPEAKERS = np.array(["tess/OAF"] * 6 + ["ravdess/03"] * 3 + ["emovo/f1"])
"""Three speakers with 6, 3 and 1 clips."""
VALID = np.array([30, 22, 17, 30, 9, 25, 30, 14, 20, 26])
PADDING = 55.0
"""What padded frames hold here: it must never reach a statistic."""


def logreg(**changes) -> ModelParams:
    """params.yaml's model section as a lone logreg."""
    return load_params(PARAMS_YAML).model.model_copy(update={"arch": "logreg", "members": [], **changes})


@pytest.fixture
def values() -> np.ndarray:
    """Frame features whose level and scale differ per speaker; padded frames hold junk."""
    rng = np.random.default_rng(0)
    level = {"tess/OAF": 6.0, "ravdess/03": -3.0, "emovo/f1": 1.0}
    scale = {"tess/OAF": 2.0, "ravdess/03": 0.5, "emovo/f1": 1.0}
    out = rng.standard_normal((len(SPEAKERS), FRAMES, CHANNELS))
    out = out * np.array([scale[s] for s in SPEAKERS])[:, None, None] + np.array([level[s] for s in SPEAKERS])[:, None, None]
    out += np.arange(CHANNELS)
    out[frame_mask(VALID, FRAMES) == 0] = PADDING
    return out.astype(np.float32)


@pytest.fixture
def described() -> np.ndarray:
    """Functionals of each clip, on their own scales."""
    rng = np.random.default_rng(1)
    return (rng.standard_normal((len(SPEAKERS), WIDTH)) * [1, 10, 100, 0.1, 5] + [0, 50, -20, 3, 7]).astype(np.float32)


def expected_vectors(values: np.ndarray, described: np.ndarray | None, deltas: int) -> np.ndarray:
    """Functionals, then the mean, then the standard deviation of every channel over each clip's real
    frames (computed here, clip by clip)."""
    frames = with_deltas(values.copy(), deltas)
    rows = []
    for clip, valid in enumerate(VALID):
        real = frames[clip, :valid].astype(np.float64)
        head = [] if described is None else [described[clip]]
        rows.append(np.concatenate([*head, real.mean(axis=0), real.std(axis=0) + EPSILON]))
    return np.array(rows)


def reference_stats(width: int, seed: int = 2) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal(width).astype(np.float32) * 3, (0.5 + rng.random(width)).astype(np.float32)


# --- shrink --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("clips, shrinkage", [(1, 10.0), (3, 1.0), (10, 10.0), (50, 2.5), (7, 0.5)])
def test_shrink_weighs_own_statistics_by_n_over_n_plus_k(clips, shrinkage):
    own = (np.array([1.0, -2.0, 5.0]), np.array([2.0, 0.5, 1.0]))
    reference = (np.array([0.0, 4.0, 5.0]), np.array([1.0, 3.0, 1.0]))
    mean, std = shrink(own, clips, reference, shrinkage)
    weight = clips / (clips + shrinkage)
    np.testing.assert_allclose(mean, weight * own[0] + (1 - weight) * reference[0], rtol=1e-6)
    np.testing.assert_allclose(std ** 2, weight * own[1] ** 2 + (1 - weight) * reference[1] ** 2, rtol=1e-5)
    assert mean.dtype == np.float32 and std.dtype == np.float32
    # between the two, never outside
    low, high = np.minimum(own[0], reference[0]), np.maximum(own[0], reference[0])
    assert np.all((low - 1e-6 <= mean) & (mean <= high + 1e-6))


def test_no_shrinkage_or_no_reference_keeps_own_statistics():
    own = (np.array([1.0, 2.0]), np.array([0.3, 4.0]))
    reference = (np.zeros(2), np.ones(2))
    for result in (shrink(own, 1, reference, 0.0), shrink(own, 1, None, 10.0), shrink(own, 5, None, 0.0)):
        np.testing.assert_array_equal(result[0], own[0])
        np.testing.assert_array_equal(result[1], own[1])


def test_many_clips_keep_their_own_and_one_clip_takes_the_reference():
    own = (np.array([3.0, -1.0]), np.array([2.0, 0.2]))
    reference = (np.array([-5.0, 8.0]), np.array([0.5, 4.0]))
    many = shrink(own, 1_000_000, reference, 10.0)
    np.testing.assert_allclose(many[0], own[0], atol=0.01)
    np.testing.assert_allclose(many[1], own[1], rtol=0.01)
    alone = shrink(own, 1, reference, 1000.0)
    np.testing.assert_allclose(alone[0], reference[0], atol=0.01)
    np.testing.assert_allclose(alone[1], reference[1], rtol=0.01)
    # more clips: closer to their own
    distances = [np.abs(shrink(own, n, reference, 10.0)[0] - own[0]).max() for n in (1, 2, 5, 20, 100)]
    assert distances == sorted(distances, reverse=True) and distances[0] > distances[-1]


# --- group and speaker statistics ----------------------------------------------------------------------


@pytest.mark.parametrize("shrinkage", [0.0, 1.0, 10.0])
def test_speaker_stats_shrink_each_speaker_by_its_own_clip_count(values, shrinkage):
    reference = reference_stats(CHANNELS)
    stats = speaker_stats(values, VALID, SPEAKERS, 0, reference=reference, shrinkage=shrinkage)
    assert set(stats) == set(SPEAKERS)
    for speaker in np.unique(SPEAKERS):
        rows = np.flatnonzero(SPEAKERS == speaker)
        real = np.concatenate([values[row, :VALID[row]] for row in rows]).astype(np.float64)
        own_mean, own_std = real.mean(axis=0), real.std(axis=0) + EPSILON
        weight = len(rows) / (len(rows) + shrinkage)
        np.testing.assert_allclose(stats[speaker][0], weight * own_mean + (1 - weight) * reference[0], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(stats[speaker][1] ** 2, weight * own_std ** 2 + (1 - weight) * reference[1] ** 2,
                                   rtol=1e-4, atol=1e-4)


def test_the_speaker_with_one_clip_moves_furthest_toward_the_reference(values):
    reference = reference_stats(CHANNELS)
    own = speaker_stats(values, VALID, SPEAKERS, 0)
    shrunk = speaker_stats(values, VALID, SPEAKERS, 0, reference=reference, shrinkage=10.0)

    def moved(speaker):  # share of the way from its own mean to the reference's
        return float(np.mean((shrunk[speaker][0] - own[speaker][0]) / (reference[0] - own[speaker][0])))

    assert moved("emovo/f1") == pytest.approx(10 / 11, rel=1e-3)
    assert moved("ravdess/03") == pytest.approx(10 / 13, rel=1e-3)
    assert moved("tess/OAF") == pytest.approx(10 / 16, rel=1e-3)


@pytest.mark.parametrize("deltas", [0, 1])
def test_speaker_stats_of_utterance_inputs_shrink_the_vectors_statistics(values, described, deltas):
    vectors = expected_vectors(values, described, deltas)
    reference = reference_stats(vectors.shape[1], seed=3)
    stats = speaker_stats(values, VALID, SPEAKERS, deltas, kind=UTTERANCE, functionals=described,
                          reference=reference, shrinkage=4.0)
    for speaker in np.unique(SPEAKERS):
        rows = SPEAKERS == speaker
        n = int(rows.sum())
        own_mean, own_std = vectors[rows].mean(axis=0), vectors[rows].std(axis=0) + EPSILON
        weight = n / (n + 4.0)
        assert stats[speaker][0].shape == (vectors.shape[1],)
        np.testing.assert_allclose(stats[speaker][0], weight * own_mean + (1 - weight) * reference[0], rtol=1e-4, atol=1e-3)
        np.testing.assert_allclose(np.sqrt(weight * own_std ** 2 + (1 - weight) * reference[1] ** 2), stats[speaker][1],
                                   rtol=1e-4, atol=1e-3)


# --- utterance inputs ----------------------------------------------------------------------------------


def test_logreg_reads_utterance_inputs():
    assert input_kind("logreg") == UTTERANCE


@pytest.mark.parametrize(
    ("arch", "functionals", "name"),
    [
        ("logreg", "egemaps", "utterance_egemaps"), ("logreg", "compare", "utterance_compare"), ("logreg", "none", UTTERANCE),
        ("bigru", "egemaps", FRAME_INPUTS), ("cnn1d", "compare", FRAME_INPUTS), ("seed_lstm", "egemaps", POOLED),
    ],
)
def test_input_name_is_the_kind_and_the_set_a_classifier_reads(arch, functionals, name):
    assert input_name(logreg(arch=arch, functionals=functionals)) == name


def test_the_ensembles_members_read_inputs_named_apart():
    params = logreg(arch="ensemble", members=["logreg", "logreg:compare", "bigru"], functionals="egemaps")
    assert [input_name(member) for member in params.member_params()] == ["utterance_egemaps", "utterance_compare", "frames"]


def test_member_functionals_are_the_set_the_member_reads(described):
    computed = {"egemaps": described, "compare": described[:, :2]}
    assert member_functionals(logreg(functionals="egemaps"), computed) is described
    assert member_functionals(logreg(functionals="compare"), computed) is computed["compare"]
    assert member_functionals(logreg(functionals="none"), computed) is None
    assert member_functionals(logreg(functionals="none"), None) is None
    assert member_functionals(logreg(arch="bigru", functionals="egemaps"), computed) is None  # networks read frames only
    assert member_functionals(logreg(arch="bigru", functionals="egemaps"), None) is None


@pytest.mark.parametrize("computed", [None, {}, {"egemaps": np.zeros((3, 88), np.float32)}])
def test_member_functionals_of_a_set_not_computed_name_it(computed):
    with pytest.raises(ValueError, match=r"compare.*features\.functionals"):
        member_functionals(logreg(functionals="compare"), computed)


@pytest.mark.parametrize("deltas", [0, 1, 2])
def test_utterance_inputs_are_functionals_then_channel_means_then_stds(values, described, deltas):
    inputs = model_inputs(values, VALID, SPEAKERS, logreg(normalize="none", deltas=deltas), functionals=described)
    assert inputs.shape == (len(SPEAKERS), WIDTH + 2 * CHANNELS * (deltas + 1))
    assert inputs.dtype == np.float32
    np.testing.assert_array_equal(inputs[:, :WIDTH], described)
    np.testing.assert_allclose(inputs, expected_vectors(values, described, deltas), rtol=1e-4, atol=1e-4)


def test_utterance_inputs_without_functionals_are_the_moments(values):
    inputs = model_inputs(values, VALID, SPEAKERS, logreg(normalize="none", deltas=0))
    assert inputs.shape == (len(SPEAKERS), 2 * CHANNELS)
    np.testing.assert_allclose(inputs, expected_vectors(values, None, 0), rtol=1e-5, atol=1e-5)


def test_utterance_inputs_ignore_padded_frames(values, described):
    params = logreg(normalize="none", deltas=0)
    changed = values.copy()
    changed[frame_mask(VALID, FRAMES) == 0] = -999.0
    np.testing.assert_array_equal(model_inputs(values, VALID, SPEAKERS, params, functionals=described),
                                  model_inputs(changed, VALID, SPEAKERS, params, functionals=described))
    moments = model_inputs(values, VALID, SPEAKERS, params, functionals=described)[:, WIDTH:]
    assert np.abs(moments).max() < PADDING / 2


@pytest.mark.parametrize("deltas", [0, 1])
def test_speaker_normalized_utterance_inputs_have_zero_mean_per_speaker(values, described, deltas):
    params = logreg(normalize="speaker", deltas=deltas, shrinkage=0.0)
    inputs = model_inputs(values, VALID, SPEAKERS, params, functionals=described)
    assert inputs.shape == (len(SPEAKERS), WIDTH + 2 * CHANNELS * (deltas + 1))
    for speaker in ("tess/OAF", "ravdess/03"):
        rows = SPEAKERS == speaker
        np.testing.assert_allclose(inputs[rows].mean(axis=0), 0.0, atol=1e-4)
        np.testing.assert_allclose(inputs[rows].std(axis=0), 1.0, atol=1e-2)
    np.testing.assert_allclose(inputs[SPEAKERS == "emovo/f1"], 0.0, atol=1e-4)  # one clip: itself is its mean
    raw = model_inputs(values, VALID, SPEAKERS, logreg(normalize="none", deltas=deltas), functionals=described)
    assert not np.allclose(inputs, raw)


def test_shrinkage_without_a_reference_normalizes_with_own_statistics(values, described):
    shrunk = model_inputs(values, VALID, SPEAKERS, logreg(normalize="speaker", shrinkage=10.0), functionals=described)
    own = model_inputs(values, VALID, SPEAKERS, logreg(normalize="speaker", shrinkage=0.0), functionals=described)
    np.testing.assert_array_equal(shrunk, own)


def test_speaker_normalized_utterance_inputs_use_the_shrunk_statistics(values, described):
    params = logreg(normalize="speaker", deltas=0, shrinkage=3.0)
    vectors = expected_vectors(values, described, 0)
    reference = reference_stats(vectors.shape[1], seed=4)
    inputs = model_inputs(values, VALID, SPEAKERS, params, functionals=described, reference=reference)
    for speaker in np.unique(SPEAKERS):
        rows = SPEAKERS == speaker
        n = int(rows.sum())
        weight = n / (n + 3.0)
        mean = weight * vectors[rows].mean(axis=0) + (1 - weight) * reference[0]
        std = np.sqrt(weight * (vectors[rows].std(axis=0) + EPSILON) ** 2 + (1 - weight) * reference[1] ** 2)
        np.testing.assert_allclose(inputs[rows], (vectors[rows] - mean) / std, rtol=1e-3, atol=1e-3)


def test_a_clip_alone_with_large_shrinkage_is_normalized_by_the_reference(values, described):
    params = logreg(normalize="speaker", deltas=0, shrinkage=1e6)
    vectors = expected_vectors(values, described, 0)
    reference = reference_stats(vectors.shape[1], seed=5)
    alone = model_inputs(values[:1], VALID[:1], np.array(["someone"]), params, functionals=described[:1], reference=reference)
    np.testing.assert_allclose(alone[0], (vectors[0] - reference[0]) / reference[1], rtol=1e-3, atol=1e-3)


def test_given_stats_override_the_shrinkage(values, described):
    params = logreg(normalize="speaker", deltas=0, shrinkage=3.0)
    width = WIDTH + 2 * CHANNELS
    stats = {speaker: (np.full(width, 1.0, np.float32), np.full(width, 2.0, np.float32)) for speaker in np.unique(SPEAKERS)}
    inputs = model_inputs(values, VALID, SPEAKERS, params, stats=stats, functionals=described, reference=reference_stats(width))
    np.testing.assert_allclose(inputs, (expected_vectors(values, described, 0) - 1.0) / 2.0, rtol=1e-4, atol=1e-4)


# --- sample weights ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_weights():
    from ser.folds import sample_weights as function

    return function


def clip_index() -> pd.DataFrame:
    """Clips of uneven corpora and speakers (tess 6 clips of 2 speakers, ravdess 3 of 3, emovo 1)."""
    speakers = ["tess/OAF"] * 4 + ["tess/YAF"] * 2 + ["ravdess/01", "ravdess/02", "ravdess/03", "emovo/f1"]
    return pd.DataFrame({
        "file": [f"clip{k}.wav" for k in range(len(speakers))],
        "corpus": [s.split("/")[0] for s in speakers],
        "speaker": speakers,
    })


def test_fold_composition_counts_each_part_and_each_corpus_share_of_the_loss(sample_weights):
    from ser.folds import fold_composition

    index = clip_index().assign(emotion="angry")
    parts = np.array(["train"] * 3 + ["val"] + ["test"] * 2 + ["train", "train", "test", "train"], dtype=object)
    table = fold_composition(index, {"fold1": parts}, "corpus").set_index("corpus")
    assert table.loc["tess", ["train_speakers", "train_clips", "val_speakers", "val_clips", "test_speakers", "test_clips"]].tolist() == [1, 3, 1, 1, 1, 2]
    assert table.loc["ravdess", ["train_clips", "test_clips"]].tolist() == [2, 1]
    assert table["loss_share"].to_dict() == pytest.approx({"emovo": 1 / 3, "ravdess": 1 / 3, "tess": 1 / 3}, abs=1e-4)
    unweighted = fold_composition(index, {"fold1": parts}, "none").set_index("corpus")["loss_share"]
    assert unweighted.to_dict() == pytest.approx({"emovo": 1 / 6, "ravdess": 2 / 6, "tess": 3 / 6}, abs=1e-4)
    by_speaker = fold_composition(index, {"fold1": parts}, "speaker").set_index("corpus")["loss_share"]
    assert by_speaker.to_dict() == pytest.approx({"emovo": 1 / 4, "ravdess": 2 / 4, "tess": 1 / 4}, abs=1e-4)


def test_no_balance_gives_no_weights(sample_weights):
    assert sample_weights(clip_index(), "none") is None


@pytest.mark.parametrize("balance", ["corpus", "speaker"])
def test_balance_gives_each_group_the_same_total_weight(sample_weights, balance):
    index = clip_index()
    weights = sample_weights(index, balance)
    assert weights.shape == (len(index),) and weights.dtype == np.float32
    assert np.all(weights > 0)
    assert weights.mean() == pytest.approx(1.0, rel=1e-6)
    totals = pd.Series(weights).groupby(index[balance].to_numpy()).sum()
    np.testing.assert_allclose(totals.to_numpy(), len(index) / index[balance].nunique(), rtol=1e-5)
    for _, group in pd.Series(weights).groupby(index[balance].to_numpy()):  # equal within a group
        assert group.nunique() == 1


def test_corpus_balance_weighs_clips_of_small_corpora_up(sample_weights):
    index = clip_index()
    weights = sample_weights(index, "corpus")
    by_corpus = pd.Series(weights).groupby(index["corpus"].to_numpy()).first()
    assert by_corpus["emovo"] > by_corpus["ravdess"] > by_corpus["tess"]
    assert by_corpus["emovo"] / by_corpus["tess"] == pytest.approx(6.0, rel=1e-5)


def test_balanced_groups_get_weights_of_one(sample_weights):
    index = pd.DataFrame({"corpus": ["a", "a", "b", "b"], "speaker": ["a/1", "a/2", "b/1", "b/2"]})
    for balance in ("corpus", "speaker"):
        np.testing.assert_allclose(sample_weights(index, balance), 1.0, rtol=1e-6)


def test_weights_follow_the_rows_of_a_filtered_index(sample_weights):
    """An index whose labels are not 0..n-1 (some clips taken out): each weight is still its own row's."""
    full = clip_index()
    index = full.iloc[[9, 0, 6, 1, 2, 7]]
    weights = sample_weights(index, "corpus")
    counts = index["corpus"].map(index["corpus"].value_counts()).to_numpy()
    expected = (1 / counts) * len(index) / (1 / counts).sum()
    np.testing.assert_allclose(weights, expected, rtol=1e-6)
    pd.testing.assert_frame_equal(full, clip_index())  # the index is left as it was
