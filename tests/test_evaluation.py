"""Scores on the held-out test parts: predictions table, metrics, calibration, summaries over folds, mistakes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

from ser.evaluation import (
    ECE_BINS,
    confident_mistakes,
    expected_calibration_error,
    predictions_table,
    score,
    summarize,
)
from ser.labels import EMOTIONS
from ser.split import TEST, TRAIN, VALIDATION

CLASSES = list(EMOTIONS)


@pytest.fixture
def split() -> pd.DataFrame:
    """9 train, 4 val and 10 test rows, interleaved (the table must pick the test rows in order)."""
    test_emotions = iter(["angry", "angry", "disgust", "fear", "happy", "neutral", "ps", "sad", "sad", "fear"])
    parts = "RTVRTRTTVRRTTVRTRTVTRRT"  # R: train, V: validation, T: test
    rows = []
    for i, code in enumerate(parts):
        part = {"R": TRAIN, "V": VALIDATION, "T": TEST}[code]
        emotion = next(test_emotions) if part == TEST else CLASSES[i % len(CLASSES)]
        speaker = "YAF" if part == TEST else "OAF"
        rows.append({"file": f"audio/{speaker}_w{i}_{emotion}.wav", "speaker": speaker, "emotion": emotion, "part": part})
    frame = pd.DataFrame(rows)
    assert frame["part"].value_counts().to_dict() == {TEST: 10, TRAIN: 9, VALIDATION: 4}
    return frame


@pytest.fixture
def probabilities() -> np.ndarray:
    """One row per test clip, columns in CLASSES order; argmax gives PREDICTED."""
    rng = np.random.default_rng(0)
    probs = rng.uniform(0.0, 0.1, size=(10, len(CLASSES)))
    for row, label in enumerate(PREDICTED):
        probs[row, CLASSES.index(label)] = 0.5 + 0.01 * row
    return probs / probs.sum(axis=1, keepdims=True)


# 7 of 10 right; "happy" never predicted, "disgust" predicted twice
PREDICTED = ["angry", "disgust", "disgust", "fear", "sad", "neutral", "ps", "sad", "angry", "fear"]


def test_predictions_table(split, probabilities):
    table = predictions_table(split, probabilities, CLASSES, "test_YAF")
    test = split[split["part"] == TEST]
    assert list(table.columns) == ["fold", "file", "actual", "predicted", "confidence", *[f"p_{c}" for c in CLASSES]]
    assert (table["fold"] == "test_YAF").all()
    assert table["file"].tolist() == test["file"].tolist()
    assert table["actual"].tolist() == test["emotion"].tolist()
    assert table["predicted"].tolist() == PREDICTED
    np.testing.assert_allclose(table["confidence"], probabilities.max(axis=1), atol=1e-6)
    np.testing.assert_allclose(table[[f"p_{c}" for c in CLASSES]].to_numpy(), probabilities, atol=1e-6)
    assert table.index.tolist() == list(range(10))


def test_predictions_table_class_columns_follow_the_classes(split, probabilities):
    """The p_ columns are named after ``classes`` in their order, whatever that order is."""
    classes = CLASSES[::-1]
    table = predictions_table(split, probabilities, classes, "word")
    assert [c for c in table.columns if c.startswith("p_")] == [f"p_{c}" for c in classes]
    np.testing.assert_allclose(table[f"p_{classes[0]}"], probabilities[:, 0], atol=1e-6)
    assert table["predicted"].tolist() == [classes[i] for i in probabilities.argmax(axis=1)]


def _score(split, probabilities):
    return score(predictions_table(split, probabilities, CLASSES, "test_YAF"), split, CLASSES)


def test_score_matches_sklearn(split, probabilities):
    metrics = _score(split, probabilities)
    actual = split.loc[split["part"] == TEST, "emotion"].tolist()
    assert metrics["accuracy"] == pytest.approx(accuracy_score(actual, PREDICTED), abs=1e-6) == 0.7
    assert metrics["macro_f1"] == pytest.approx(
        f1_score(actual, PREDICTED, labels=CLASSES, average="macro", zero_division=0), abs=1e-6
    )
    for key, metric in (("f1", f1_score), ("precision", precision_score), ("recall", recall_score)):
        assert list(metrics[key]) == CLASSES
        per_class = metric(actual, PREDICTED, labels=CLASSES, average=None, zero_division=0)
        for label, value in zip(CLASSES, per_class):
            assert metrics[key][label] == pytest.approx(value, abs=1e-6), (key, label)
    assert metrics["f1"]["happy"] == 0.0
    assert metrics["f1"]["neutral"] == 1.0
    assert metrics["f1"]["disgust"] == pytest.approx(2 / 3, abs=1e-6)
    assert metrics["precision"]["disgust"] == 0.5 and metrics["recall"]["disgust"] == 1.0
    assert metrics["recall"]["sad"] == 0.5 and metrics["precision"]["sad"] == 0.5


def test_min_recall_is_the_worst_class(split, probabilities):
    metrics = _score(split, probabilities)
    assert metrics["min_recall"] == min(metrics["recall"].values()) == 0.0  # happy is never recognised
    test = split[split["part"] == TEST]
    perfect = np.eye(len(CLASSES))[[CLASSES.index(e) for e in test["emotion"]]]
    perfect[-1] = np.eye(len(CLASSES))[CLASSES.index("sad")]  # one of the two fear clips taken for sad
    assert _score(split, perfect)["min_recall"] == 0.5


def test_score_includes_the_calibration_error(split, probabilities):
    table = predictions_table(split, probabilities, CLASSES, "test_YAF")
    metrics = score(table, split, CLASSES)
    expected = expected_calibration_error(table["confidence"], table["actual"] == table["predicted"])
    assert metrics["ece"] == pytest.approx(expected, abs=1e-6)
    assert 0 < metrics["ece"] <= 1


def test_score_counts_parts(split, probabilities):
    metrics = _score(split, probabilities)
    counts = split["part"].value_counts()
    assert (metrics["n_train"], metrics["n_val"], metrics["n_test"]) == (counts[TRAIN], counts[VALIDATION], counts[TEST])
    assert metrics["n_train"] + metrics["n_val"] + metrics["n_test"] == len(split)
    assert metrics["n_test"] == 10
    assert all(type(metrics[k]) is int for k in ("n_train", "n_val", "n_test"))


def test_score_without_validation_rows(split, probabilities):
    no_val = split.assign(part=split["part"].replace({VALIDATION: TRAIN}))
    metrics = _score(no_val, probabilities)
    assert metrics["n_val"] == 0
    assert metrics["n_train"] == (split["part"] != TEST).sum()


def test_perfect_predictions(split):
    test = split[split["part"] == TEST]
    probs = np.eye(len(CLASSES))[[CLASSES.index(e) for e in test["emotion"]]]
    table = predictions_table(split, probs, CLASSES, "random")
    metrics = score(table, split, CLASSES)
    assert metrics["accuracy"] == 1.0
    assert metrics["macro_f1"] == 1.0
    assert metrics["ece"] == 0.0
    assert (table["confidence"] == 1.0).all()


def test_metrics_are_json_serialisable(split, probabilities):
    import json

    metrics = _score(split, probabilities)
    assert json.loads(json.dumps(metrics)) == metrics
    summary = summarize("speaker", {"test_YAF": metrics, "test_OAF": metrics})
    assert json.loads(json.dumps(summary)) == summary


def test_class_missing_from_the_test_part_is_scored_over_all_classes(split):
    """macro F1 is over every class the model knows (sklearn with labels=classes), absent ones scoring 0."""
    test = split[split["part"] == TEST]
    no_sad = test["emotion"].replace({"sad": "angry"})
    frame = split.copy()
    frame.loc[test.index, "emotion"] = no_sad
    predicted = list(no_sad)  # perfect on the six classes present
    probs = np.eye(len(CLASSES))[[CLASSES.index(e) for e in predicted]]
    table = predictions_table(frame, probs, CLASSES, "random")
    metrics = score(table, frame, CLASSES)
    assert "sad" not in set(table["actual"]) | set(table["predicted"])
    assert metrics["f1"]["sad"] == 0.0
    assert metrics["macro_f1"] == pytest.approx(
        f1_score(table["actual"], table["predicted"], labels=CLASSES, average="macro", zero_division=0), abs=1e-6
    )
    assert metrics["macro_f1"] == pytest.approx(6 / 7, abs=1e-6)  # sklearn without labels= would say 1.0


# --- expected calibration error ----------------------------------------------------------------------------


def test_ece_hand_computed():
    confidence = [0.95, 0.9, 0.85, 0.62, 0.55, 0.3]
    correct = [True, True, False, True, False, False]
    # 5 bins of width 0.2: [0.85, 0.9, 0.95] -> bin 4 (mean 0.9, accuracy 2/3), 0.62 -> bin 3 (accuracy 1),
    # 0.55 -> bin 2 (accuracy 0), 0.3 -> bin 1 (accuracy 0)
    expected = (3 * abs(0.9 - 2 / 3) + abs(0.62 - 1) + abs(0.55 - 0) + abs(0.3 - 0)) / 6
    assert expected == pytest.approx(0.321667, abs=1e-6)
    assert expected_calibration_error(confidence, correct, bins=5) == pytest.approx(expected, abs=1e-9)
    # one bin: |mean confidence - accuracy|
    assert expected_calibration_error(confidence, correct, bins=1) == pytest.approx(abs(np.mean(confidence) - 0.5))


def test_ece_default_bins():
    assert ECE_BINS == 15
    # 0.5 and 0.52 share the bin [7/15, 8/15); 0.9 is alone in [13/15, 14/15)
    confidence, correct = [0.5, 0.52, 0.9], [True, False, False]
    expected = (2 * abs(0.51 - 0.5) + abs(0.9 - 0)) / 3
    assert expected_calibration_error(confidence, correct) == pytest.approx(expected, abs=1e-9)
    # with 50 bins they do not
    assert expected_calibration_error(confidence, correct, bins=50) == pytest.approx((0.5 + 0.52 + 0.9) / 3)


@pytest.mark.parametrize(
    ("confidence", "correct"),
    [
        ([1.0] * 8, [True] * 8),
        ([0.8] * 10, [True] * 8 + [False] * 2),
        ([0.3] * 10 + [0.7] * 10, [True] * 3 + [False] * 7 + [True] * 7 + [False] * 3),
        ([0.25, 0.25, 0.25, 0.25, 0.5, 0.5], [True, False, False, False, True, False]),
    ],
)
def test_ece_of_perfect_calibration_is_zero(confidence, correct):
    assert expected_calibration_error(np.array(confidence), np.array(correct)) == pytest.approx(0.0, abs=1e-12)


def test_ece_of_confident_wrong_predictions_is_one():
    assert expected_calibration_error([1.0, 1.0, 0.999], [False, False, False]) == pytest.approx(0.999667, abs=1e-6)
    assert expected_calibration_error([1.0] * 4, [False] * 4) == 1.0


def test_ece_is_order_independent_and_bounded():
    rng = np.random.default_rng(0)
    confidence = rng.uniform(1 / 7, 1, 200)
    correct = rng.uniform(size=200) < confidence ** 2
    ece = expected_calibration_error(confidence, correct)
    order = rng.permutation(200)
    assert expected_calibration_error(confidence[order], correct[order]) == pytest.approx(ece, abs=1e-12)
    assert 0 < ece < 1


def test_ece_of_nothing_is_zero():
    assert expected_calibration_error(np.array([]), np.array([], dtype=bool)) == 0.0


# --- summaries over folds ------------------------------------------------------------------------------------


def _fold(accuracy, macro_f1, ece, min_recall):
    return {"n_test": 10, "accuracy": accuracy, "macro_f1": macro_f1, "ece": ece, "min_recall": min_recall}


def test_summarize_averages_the_folds():
    folds = {"test_YAF": _fold(0.4, 0.3, 0.2, 0.0), "test_OAF": _fold(0.6, 0.5, 0.1, 0.25)}
    summary = summarize("speaker", folds)
    assert summary["protocol"] == "speaker"
    assert summary["accuracy"] == 0.5 and summary["macro_f1"] == 0.4
    assert summary["ece"] == pytest.approx(0.15, abs=1e-9)
    assert summary["min_recall"] == 0.0  # the worst class of any fold
    assert summary["folds"] == folds and list(summary["folds"]) == ["test_YAF", "test_OAF"]


def test_summarize_one_fold_is_that_fold():
    fold = _fold(0.123457, 0.2, 0.3, 0.1)
    summary = summarize("random", {"random": fold})
    assert (summary["accuracy"], summary["macro_f1"], summary["ece"], summary["min_recall"]) == (0.123457, 0.2, 0.3, 0.1)
    assert summary["protocol"] == "random"


def test_summarize_rounds_the_means():
    summary = summarize("speaker", {"a": _fold(1 / 3, 0.0, 0.0, 0.0), "b": _fold(0.0, 0.0, 0.0, 0.0)})
    assert summary["accuracy"] == 0.166667


# --- the most confident mistakes -------------------------------------------------------------------------------


def _predictions() -> pd.DataFrame:
    return pd.DataFrame({
        "fold": ["test_YAF"] * 4 + ["test_OAF"] * 4,
        "file": ["y1", "y2", "y3", "y4", "o1", "o2", "o3", "o4"],
        "actual": ["sad", "ps", "fear", "angry", "sad", "happy", "ps", "neutral"],
        "predicted": ["sad", "happy", "sad", "disgust", "fear", "happy", "happy", "sad"],
        "confidence": [0.99, 0.7, 0.9, 0.7, 0.4, 0.95, 0.85, 0.6],
        "p_angry": 0.0,
    })


def test_confident_mistakes_are_wrong_rows_most_confident_first():
    mistakes = confident_mistakes(_predictions(), top=10)
    assert list(mistakes.columns) == ["fold", "file", "actual", "predicted", "confidence"]
    assert (mistakes["actual"] != mistakes["predicted"]).all()
    # y1 and o2 are right however confident; ties (0.7) by file name
    assert mistakes["file"].tolist() == ["y3", "o3", "y2", "y4", "o4", "o1"]
    assert mistakes["confidence"].is_monotonic_decreasing


@pytest.mark.parametrize("top", [0, 1, 3, 6])
def test_confident_mistakes_top_n(top):
    mistakes = confident_mistakes(_predictions(), top=top)
    assert len(mistakes) == top
    assert mistakes["file"].tolist() == ["y3", "o3", "y2", "y4", "o4", "o1"][:top]


def test_no_mistakes():
    right = _predictions().assign(predicted=lambda f: f["actual"])
    assert confident_mistakes(right, top=5).empty
