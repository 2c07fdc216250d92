"""Scores on the held-out test part: predictions table and metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score

from ser.evaluation import predictions_table, score
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
    table = predictions_table(split, probabilities, CLASSES)
    test = split[split["part"] == TEST]
    assert list(table.columns) == ["file", "actual", "predicted", "confidence"]
    assert table["file"].tolist() == test["file"].tolist()
    assert table["actual"].tolist() == test["emotion"].tolist()
    assert table["predicted"].tolist() == PREDICTED
    np.testing.assert_allclose(table["confidence"], probabilities.max(axis=1), atol=1e-6)
    assert table.index.tolist() == list(range(10))


def test_score_matches_sklearn(split, probabilities):
    table = predictions_table(split, probabilities, CLASSES)
    metrics = score(table, split, CLASSES, {"protocol": "random", "test_speaker": "YAF"})
    actual = split.loc[split["part"] == TEST, "emotion"].tolist()
    assert metrics["accuracy"] == pytest.approx(accuracy_score(actual, PREDICTED), abs=1e-6) == 0.7
    assert metrics["macro_f1"] == pytest.approx(
        f1_score(actual, PREDICTED, labels=CLASSES, average="macro", zero_division=0), abs=1e-6
    )
    assert list(metrics["f1"]) == CLASSES
    per_class = f1_score(actual, PREDICTED, labels=CLASSES, average=None, zero_division=0)
    for label, value in zip(CLASSES, per_class):
        assert metrics["f1"][label] == pytest.approx(value, abs=1e-6)
    assert metrics["f1"]["happy"] == 0.0
    assert metrics["f1"]["neutral"] == 1.0
    assert metrics["f1"]["disgust"] == pytest.approx(2 / 3, abs=1e-6)


def test_score_counts_parts(split, probabilities):
    table = predictions_table(split, probabilities, CLASSES)
    metrics = score(table, split, CLASSES, {"protocol": "word", "test_speaker": "YAF"})
    counts = split["part"].value_counts()
    assert (metrics["n_train"], metrics["n_val"], metrics["n_test"]) == (counts[TRAIN], counts[VALIDATION], counts[TEST])
    assert metrics["n_train"] + metrics["n_val"] + metrics["n_test"] == len(split)
    assert metrics["n_test"] == 10
    assert all(type(metrics[k]) is int for k in ("n_train", "n_val", "n_test"))


def test_score_without_validation_rows(split, probabilities):
    no_val = split.assign(part=split["part"].replace({VALIDATION: TRAIN}))
    table = predictions_table(no_val, probabilities, CLASSES)
    metrics = score(table, no_val, CLASSES, {"protocol": "random", "test_speaker": "YAF"})
    assert metrics["n_val"] == 0
    assert metrics["n_train"] == (split["part"] != TEST).sum()


@pytest.mark.parametrize(("protocol", "has_speaker"), [("speaker", True), ("random", False), ("word", False)])
def test_test_speaker_only_for_speaker_protocol(split, probabilities, protocol, has_speaker):
    table = predictions_table(split, probabilities, CLASSES)
    metrics = score(table, split, CLASSES, {"protocol": protocol, "test_speaker": "YAF", "seed": 42})
    assert metrics["protocol"] == protocol
    assert ("test_speaker" in metrics) is has_speaker
    if has_speaker:
        assert metrics["test_speaker"] == "YAF"


def test_perfect_predictions(split):
    test = split[split["part"] == TEST]
    probs = np.eye(len(CLASSES))[[CLASSES.index(e) for e in test["emotion"]]]
    table = predictions_table(split, probs, CLASSES)
    metrics = score(table, split, CLASSES, {"protocol": "speaker", "test_speaker": "YAF"})
    assert metrics["accuracy"] == 1.0
    assert metrics["macro_f1"] == 1.0
    assert (table["confidence"] == 1.0).all()


def test_metrics_are_json_serialisable(split, probabilities):
    import json

    table = predictions_table(split, probabilities, CLASSES)
    metrics = score(table, split, CLASSES, {"protocol": "speaker", "test_speaker": "YAF"})
    assert json.loads(json.dumps(metrics)) == metrics


def test_class_missing_from_the_test_part_is_scored_over_all_classes(split):
    """macro F1 is over every class the model knows (sklearn with labels=classes), absent ones scoring 0."""
    test = split[split["part"] == TEST]
    no_sad = test["emotion"].replace({"sad": "angry"})
    frame = split.copy()
    frame.loc[test.index, "emotion"] = no_sad
    predicted = list(no_sad)  # perfect on the six classes present
    probs = np.eye(len(CLASSES))[[CLASSES.index(e) for e in predicted]]
    table = predictions_table(frame, probs, CLASSES)
    metrics = score(table, frame, CLASSES, {"protocol": "random"})
    assert "sad" not in set(table["actual"]) | set(table["predicted"])
    assert metrics["f1"]["sad"] == 0.0
    assert metrics["macro_f1"] == pytest.approx(
        f1_score(table["actual"], table["predicted"], labels=CLASSES, average="macro", zero_division=0), abs=1e-6
    )
    assert metrics["macro_f1"] == pytest.approx(6 / 7, abs=1e-6)  # sklearn without labels= would say 1.0
