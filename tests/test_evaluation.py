"""Scores on the held-out test parts: predictions table, metrics (classes a subset lacks left out),
calibration, serving accuracy, summaries pooled over folds and per corpus and speaker, mistakes."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

from ser.evaluation import (
    ECE_BINS,
    METRIC_DIGITS,
    confident_mistakes,
    expected_calibration_error,
    fold_score,
    predictions_table,
    score,
    summarize,
)
from ser.split import TEST, TRAIN, UNUSED, VALIDATION

CLASSES = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]

# the ten test clips, in order: (corpus, speaker, actual, predicted, served alone)
TEST_CLIPS = [
    ("tess", "tess/YAF", "angry", "angry", "angry"),
    ("tess", "tess/YAF", "angry", "disgust", "disgust"),
    ("tess", "tess/YAF", "disgust", "disgust", "disgust"),
    ("tess", "tess/YAF", "fear", "fear", "sad"),
    ("tess", "tess/YAF", "happy", "sad", "sad"),
    ("ravdess", "ravdess/07", "neutral", "neutral", "neutral"),
    ("ravdess", "ravdess/07", "surprise", "surprise", "happy"),
    ("ravdess", "ravdess/12", "sad", "sad", "sad"),
    ("ravdess", "ravdess/12", "sad", "angry", "angry"),
    ("ravdess", "ravdess/12", "fear", "fear", "fear"),
]
ACTUAL = [clip[2] for clip in TEST_CLIPS]
PREDICTED = [clip[3] for clip in TEST_CLIPS]  # 7 of 10 right; happy never predicted, disgust twice
SERVED = [clip[4] for clip in TEST_CLIPS]  # 5 of 10 right

ROUNDING = 0.5 * 10**-METRIC_DIGITS
"""The most a reported score differs from the exact one."""


@pytest.fixture
def split() -> pd.DataFrame:
    """A fold's split.csv: 9 train, 4 val, 10 test and 2 unused rows, interleaved (the table must pick
    the test rows in order)."""
    codes = "RTVRTRTTVRRTUTVRTRTVTRRTU"  # R: train, V: validation, T: test, U: unused
    tests = iter(TEST_CLIPS)
    rows = []
    for i, code in enumerate(codes):
        part = {"R": TRAIN, "V": VALIDATION, "T": TEST, "U": UNUSED}[code]
        if part == TEST:
            corpus, speaker, emotion, _, _ = next(tests)
        else:
            corpus, speaker, emotion = ("emovo", "emovo/f1", CLASSES[i % 7]) if part == UNUSED else ("tess", "tess/OAF", CLASSES[i % 7])
        rows.append({"file": f"{corpus}/{speaker.split('/')[1]}_t{i}_{emotion}.wav", "corpus": corpus, "speaker": speaker,
                     "text": f"t{i}", "emotion": emotion, "part": part})
    frame = pd.DataFrame(rows)
    assert frame["part"].value_counts().to_dict() == {TEST: 10, TRAIN: 9, VALIDATION: 4, UNUSED: 2}
    return frame


def _probabilities(labels: list[str], classes: list[str] = CLASSES, seed: int = 0) -> np.ndarray:
    """One row per test clip, columns in ``classes`` order, whose argmax is ``labels``."""
    rng = np.random.default_rng(seed)
    probs = rng.uniform(0.0, 0.1, size=(len(labels), len(classes)))
    for row, label in enumerate(labels):
        probs[row, classes.index(label)] = 0.5 + 0.01 * row
    return probs / probs.sum(axis=1, keepdims=True)


@pytest.fixture
def probabilities() -> np.ndarray:
    return _probabilities(PREDICTED)


@pytest.fixture
def served() -> np.ndarray:
    return _probabilities(SERVED, seed=1)


@pytest.fixture
def table(split, probabilities, served) -> pd.DataFrame:
    return predictions_table(split, probabilities, served, CLASSES, "fold2")


def _one_hot(labels, classes=CLASSES) -> np.ndarray:
    return np.eye(len(classes))[[classes.index(e) for e in labels]]


# --- the predictions table ----------------------------------------------------------------------------


def test_predictions_table(split, probabilities, table):
    test = split[split["part"] == TEST]
    assert list(table.columns) == [
        "fold", "file", "corpus", "speaker", "text", "actual", "predicted", "confidence", "served",
        *[f"p_{c}" for c in CLASSES],
    ]
    assert (table["fold"] == "fold2").all()
    assert table["file"].tolist() == test["file"].tolist()
    assert table["corpus"].tolist() == [c[0] for c in TEST_CLIPS]
    assert table["speaker"].tolist() == [c[1] for c in TEST_CLIPS]
    assert table["actual"].tolist() == ACTUAL
    assert table["predicted"].tolist() == PREDICTED
    assert table["served"].tolist() == SERVED
    np.testing.assert_allclose(table["confidence"], probabilities.max(axis=1), atol=1e-6)
    np.testing.assert_allclose(table[[f"p_{c}" for c in CLASSES]].to_numpy(), probabilities, atol=1e-6)
    assert table.index.tolist() == list(range(10))


def test_predictions_table_class_columns_follow_the_classes(split, probabilities, served):
    """The p_ columns are named after ``classes`` in their order, whatever that order is."""
    classes = CLASSES[::-1]
    table = predictions_table(split, probabilities, served, classes, "text")
    assert [c for c in table.columns if c.startswith("p_")] == [f"p_{c}" for c in classes]
    np.testing.assert_allclose(table[f"p_{classes[0]}"], probabilities[:, 0], atol=1e-6)
    assert table["predicted"].tolist() == [classes[i] for i in probabilities.argmax(axis=1)]
    assert table["served"].tolist() == [classes[i] for i in served.argmax(axis=1)]


def test_unused_and_training_rows_are_never_scored(split, table):
    assert not set(table["file"]) & set(split.loc[split["part"] != TEST, "file"])
    assert "emovo" not in set(table["corpus"])


# --- scores ---------------------------------------------------------------------------------------------


def test_score_matches_sklearn(table):
    metrics = score(table, CLASSES)
    present = [c for c in CLASSES if c in ACTUAL]
    assert present == CLASSES  # every class has a test clip here
    assert metrics["accuracy"] == pytest.approx(accuracy_score(ACTUAL, PREDICTED), abs=ROUNDING) == 0.7
    assert metrics["macro_f1"] == pytest.approx(
        f1_score(ACTUAL, PREDICTED, labels=CLASSES, average="macro", zero_division=0), abs=ROUNDING
    )
    for key, metric in (("f1", f1_score), ("precision", precision_score), ("recall", recall_score)):
        assert list(metrics[key]) == CLASSES
        per_class = metric(ACTUAL, PREDICTED, labels=CLASSES, average=None, zero_division=0)
        for label, value in zip(CLASSES, per_class):
            assert metrics[key][label] == pytest.approx(value, abs=ROUNDING), (key, label)
    assert metrics["f1"]["happy"] == 0.0
    assert metrics["f1"]["neutral"] == 1.0
    assert metrics["f1"]["disgust"] == pytest.approx(2 / 3, abs=ROUNDING)
    assert metrics["precision"]["disgust"] == 0.5 and metrics["recall"]["disgust"] == 1.0
    assert metrics["recall"]["sad"] == 0.5 and metrics["precision"]["sad"] == 0.5
    assert metrics["n_test"] == 10 and type(metrics["n_test"]) is int


def test_score_without_detail_has_no_per_class_scores(table):
    brief = score(table, CLASSES, detail=False)
    assert set(brief) == {"n_test", "accuracy", "macro_f1", "ece", "min_recall", "serving_accuracy", "serving_min_recall"}
    full = score(table, CLASSES)
    assert {k: full[k] for k in brief} == brief


def test_min_recall_is_the_worst_class(split, served, table):
    metrics = score(table, CLASSES)
    assert metrics["min_recall"] == min(metrics["recall"].values()) == 0.0  # happy is never recognised
    better = _one_hot(ACTUAL)
    better[-1] = _one_hot(["sad"])[0]  # one of the two fear clips taken for sad
    assert score(predictions_table(split, better, served, CLASSES, "fold2"), CLASSES)["min_recall"] == 0.5


def test_score_includes_the_calibration_error(table):
    metrics = score(table, CLASSES)
    expected = expected_calibration_error(table["confidence"], table["actual"] == table["predicted"])
    assert metrics["ece"] == pytest.approx(expected, abs=ROUNDING)
    assert 0 < metrics["ece"] <= 1


def test_serving_accuracy_is_the_accuracy_of_the_served_column(split, probabilities, table):
    metrics = score(table, CLASSES)
    assert metrics["serving_accuracy"] == pytest.approx(accuracy_score(ACTUAL, SERVED), abs=ROUNDING) == 0.5
    assert metrics["accuracy"] == 0.7  # the fold's own predictions, a different column
    # served alone exactly as in the fold: the two accuracies agree
    same = predictions_table(split, probabilities, probabilities, CLASSES, "fold2")
    assert score(same, CLASSES)["serving_accuracy"] == score(same, CLASSES)["accuracy"] == 0.7
    # the served column does not move the other scores
    serving = ("serving_accuracy", "serving_min_recall", "serving_recall")
    assert {k: v for k, v in score(same, CLASSES).items() if k not in serving} == {
        k: v for k, v in metrics.items() if k not in serving
    }


def test_perfect_predictions(split):
    probs = _one_hot(ACTUAL)
    table = predictions_table(split, probs, probs, CLASSES, "random")
    metrics = score(table, CLASSES)
    assert metrics["accuracy"] == metrics["macro_f1"] == metrics["min_recall"] == metrics["serving_accuracy"] == 1.0
    assert metrics["ece"] == 0.0
    assert (table["confidence"] == 1.0).all()


def test_classes_without_test_clips_are_left_out(split, served):
    """A subset with no surprise clip (a corpus without the class) is not scored on surprise: macro F1
    and the lowest recall are over the classes it has, and surprise has no per-class score."""
    no_surprise = split.assign(emotion=split["emotion"].replace({"surprise": "happy"}))
    actual = [e if e != "surprise" else "happy" for e in ACTUAL]
    table = predictions_table(no_surprise, _one_hot(actual), served, CLASSES, "fold1")
    metrics = score(table, CLASSES)
    assert "surprise" not in set(table["actual"])
    assert "surprise" not in metrics["f1"] and "surprise" not in metrics["recall"] and "surprise" not in metrics["precision"]
    assert list(metrics["recall"]) == [c for c in CLASSES if c != "surprise"]
    assert metrics["macro_f1"] == metrics["min_recall"] == 1.0  # sklearn with labels=CLASSES would say 6/7 and 0
    assert metrics["macro_f1"] != pytest.approx(
        f1_score(table["actual"], table["predicted"], labels=CLASSES, average="macro", zero_division=0)
    )


def test_predicting_an_absent_class_still_costs_recall(split, served):
    """A clip taken for a class that the subset lacks is a mistake: its own class loses recall."""
    no_surprise = split.assign(emotion=split["emotion"].replace({"surprise": "happy"}))
    actual = [e if e != "surprise" else "happy" for e in ACTUAL]
    predicted = list(actual)
    predicted[0] = "surprise"  # an angry clip
    metrics = score(predictions_table(no_surprise, _one_hot(predicted), served, CLASSES, "fold1"), CLASSES)
    assert "surprise" not in metrics["recall"]
    assert metrics["recall"]["angry"] == 0.5 and metrics["min_recall"] == 0.5
    assert metrics["accuracy"] == 0.9
    assert metrics["macro_f1"] == pytest.approx(
        f1_score(actual, predicted, labels=[c for c in CLASSES if c != "surprise"], average="macro"), abs=ROUNDING
    )


def test_fold_score_counts_parts(split, table):
    metrics = fold_score(table, split, CLASSES)
    counts = split["part"].value_counts()
    assert (metrics["n_train"], metrics["n_val"], metrics["n_test"]) == (counts[TRAIN], counts[VALIDATION], counts[TEST])
    assert metrics["n_train"] + metrics["n_val"] + metrics["n_test"] + counts[UNUSED] == len(split)
    assert all(type(metrics[k]) is int for k in ("n_train", "n_val", "n_test"))
    assert {k: v for k, v in metrics.items() if k not in ("n_train", "n_val")} == score(table, CLASSES)


def test_fold_score_without_validation_rows(split, table):
    no_val = split.assign(part=split["part"].replace({VALIDATION: TRAIN}))
    metrics = fold_score(table, no_val, CLASSES)
    assert metrics["n_val"] == 0
    assert metrics["n_train"] == 13


def test_metrics_are_json_serialisable(split, table):
    fold = fold_score(table, split, CLASSES)
    assert json.loads(json.dumps(fold)) == fold
    summary = summarize("speaker", table, {"fold2": fold}, CLASSES)
    assert json.loads(json.dumps(summary)) == summary


# --- expected calibration error ----------------------------------------------------------------------------


def test_ece_hand_computed():
    confidence = [0.95, 0.9, 0.85, 0.62, 0.55, 0.3]
    correct = [True, True, False, True, False, False]
    # 5 bins of width 0.2: [0.85, 0.9, 0.95] -> bin 4 (mean 0.9, accuracy 2/3), 0.62 -> bin 3 (accuracy 1),
    # 0.55 -> bin 2 (accuracy 0), 0.3 -> bin 1 (accuracy 0)
    expected = (3 * abs(0.9 - 2 / 3) + abs(0.62 - 1) + abs(0.55 - 0) + abs(0.3 - 0)) / 6
    assert expected == pytest.approx(0.321667, abs=ROUNDING)
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
    assert expected_calibration_error([1.0, 1.0, 0.999], [False, False, False]) == pytest.approx(0.999667, abs=ROUNDING)
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


# --- summaries over folds, corpora and speakers ------------------------------------------------------------


@pytest.fixture
def pooled(split, table) -> tuple[pd.DataFrame, dict]:
    """Two folds' predictions (the fixture's ten clips as fold2, two emovo clips as fold1) and their scores."""
    other = pd.DataFrame({
        "fold": "fold1", "file": ["emovo/f1_a.wav", "emovo/m2_b.wav"], "corpus": "emovo",
        "speaker": ["emovo/f1", "emovo/m2"], "actual": ["angry", "sad"], "predicted": ["angry", "angry"],
        "confidence": [0.9, 0.6], "served": ["angry", "sad"], **{f"p_{c}": 0.0 for c in CLASSES},
    })
    predictions = pd.concat([other, table], ignore_index=True)
    folds = {"fold1": {"n_test": 2, "accuracy": 0.5}, "fold2": fold_score(table, split, CLASSES)}
    return predictions, folds


def test_summarize_pools_every_test_clip(pooled):
    predictions, folds = pooled
    summary = summarize("speaker", predictions, folds, CLASSES)
    assert summary["protocol"] == "speaker"
    assert summary["n_test"] == 12
    # pooled over the clips, not averaged over the folds: (1 + 7) / 12, not (0.5 + 0.7) / 2
    assert summary["accuracy"] == pytest.approx(8 / 12, abs=ROUNDING)
    assert summary["serving_accuracy"] == pytest.approx(7 / 12, abs=ROUNDING)  # 2 of 2 and 5 of 10 served alone
    assert summary["macro_f1"] == score(predictions, CLASSES)["macro_f1"]
    assert summary["ece"] == score(predictions, CLASSES)["ece"]
    assert summary["min_recall"] == 0.0
    assert summary["recall"] == score(predictions, CLASSES)["recall"]
    assert summary["recall"]["sad"] == pytest.approx(1 / 3, abs=ROUNDING)  # 1 of 2 in ravdess, 0 of 1 in emovo
    assert summary["folds"] == folds and list(summary["folds"]) == ["fold1", "fold2"]


def test_summarize_scores_each_corpus(pooled):
    predictions, folds = pooled
    summary = summarize("corpus", predictions, folds, CLASSES)
    by_corpus = summary["by_corpus"]
    assert list(by_corpus) == ["emovo", "ravdess", "tess"]
    assert {c: s["n_test"] for c, s in by_corpus.items()} == {"emovo": 2, "ravdess": 5, "tess": 5}
    assert {c: s["accuracy"] for c, s in by_corpus.items()} == {"emovo": 0.5, "ravdess": 0.8, "tess": 0.6}
    assert by_corpus["tess"]["serving_accuracy"] == 0.4 and by_corpus["ravdess"]["serving_accuracy"] == 0.6
    # the mean over corpora weighs each corpus once, whatever its size
    assert summary["corpus_mean_accuracy"] == pytest.approx((0.5 + 0.8 + 0.6) / 3, abs=ROUNDING)
    # each corpus is scored on the classes it has
    assert set(by_corpus["emovo"]["recall"]) == {"angry", "sad"}
    assert by_corpus["emovo"]["macro_f1"] == pytest.approx(
        f1_score(["angry", "sad"], ["angry", "angry"], labels=["angry", "sad"], average="macro", zero_division=0),
        abs=ROUNDING,
    )
    assert set(by_corpus["tess"]["recall"]) == {"angry", "disgust", "fear", "happy"}
    assert by_corpus["tess"]["min_recall"] == 0.0  # its happy clip
    assert set(by_corpus["ravdess"]["recall"]) == {"neutral", "surprise", "sad", "fear"}
    assert by_corpus["ravdess"]["min_recall"] == 0.5
    for corpus, scores in by_corpus.items():
        assert scores == score(predictions[predictions["corpus"] == corpus], CLASSES), corpus


def test_summarize_scores_each_speaker(pooled):
    predictions, folds = pooled
    by_speaker = summarize("speaker", predictions, folds, CLASSES)["by_speaker"]
    assert list(by_speaker) == ["emovo/f1", "emovo/m2", "ravdess/07", "ravdess/12", "tess/YAF"]
    assert {s: v["n_test"] for s, v in by_speaker.items()} == {
        "emovo/f1": 1, "emovo/m2": 1, "ravdess/07": 2, "ravdess/12": 3, "tess/YAF": 5,
    }
    assert by_speaker["ravdess/12"]["accuracy"] == pytest.approx(2 / 3, abs=ROUNDING)
    assert by_speaker["ravdess/07"]["serving_accuracy"] == 0.5
    assert by_speaker["emovo/m2"] == {
        "n_test": 1, "accuracy": 0.0, "macro_f1": 0.0, "ece": 0.6, "min_recall": 0.0, "serving_accuracy": 1.0,
        "serving_min_recall": 1.0,
    }
    assert "recall" not in by_speaker["tess/YAF"]  # brief: no per-class scores per speaker


def test_summarize_one_fold_is_that_fold(split, table):
    fold = fold_score(table, split, CLASSES)
    summary = summarize("random", table, {"random": fold}, CLASSES)
    assert {k: summary[k] for k in ("n_test", "accuracy", "macro_f1", "ece", "min_recall", "serving_accuracy")} == {
        k: fold[k] for k in ("n_test", "accuracy", "macro_f1", "ece", "min_recall", "serving_accuracy")
    }
    assert summary["protocol"] == "random"


def test_summarize_rounds(split, table):
    thirds = table.iloc[:3].assign(actual=["angry"] * 3, predicted=["angry", "sad", "sad"], served=["sad"] * 3, corpus="tess")
    summary = summarize("speaker", thirds, {}, CLASSES)
    assert METRIC_DIGITS == 4  # few enough that another CPU's last-bit differences leave them unchanged
    assert summary["accuracy"] == 0.3333
    assert summary["corpus_mean_accuracy"] == 0.3333


# --- the most confident mistakes -------------------------------------------------------------------------------


def _predictions() -> pd.DataFrame:
    return pd.DataFrame({
        "fold": ["fold1"] * 4 + ["fold2"] * 4,
        "file": ["y1", "y2", "y3", "y4", "o1", "o2", "o3", "o4"],
        "actual": ["sad", "surprise", "fear", "angry", "sad", "happy", "surprise", "neutral"],
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



# --- texts whose words give the label away --------------------------------------------------------------------


def test_a_corpus_with_giveaway_texts_is_also_scored_without_them(table):
    """ASED's emotion-specific sentences: the clips of texts spoken in one emotion are marked, and the
    corpus gets ``shared_texts`` scores of the other clips only; a corpus without any gets none."""
    giveaway = np.zeros(len(table), dtype=bool)
    giveaway[:4] = True
    metrics = summarize("speaker", table, {}, CLASSES, giveaway)
    shared = table.iloc[4:][table.iloc[4:]["corpus"] == "tess"]
    expected = {
        "n_test": len(shared),
        "accuracy": round(float((shared["actual"] == shared["predicted"]).mean()), 4),
        "serving_accuracy": round(float((shared["actual"] == shared["served"]).mean()), 4),
    }
    assert metrics["by_corpus"]["tess"]["shared_texts"] == expected
    assert metrics["by_corpus"]["tess"]["accuracy"] == summarize("speaker", table, {}, CLASSES)["by_corpus"]["tess"]["accuracy"]
    assert "shared_texts" not in summarize("speaker", table, {}, CLASSES)["by_corpus"]["tess"]
    everything = summarize("speaker", table, {}, CLASSES, np.ones(len(table), dtype=bool))
    assert "shared_texts" not in everything["by_corpus"]["tess"]  # nothing left to score apart


def test_single_emotion_rows_marks_texts_spoken_in_one_emotion_per_corpus():
    from ser.split import single_emotion_rows

    index = pd.DataFrame({
        "corpus": ["ased", "ased", "ased", "ased", "tess"],
        "text": ["01", "01", "03-01", "03-01", "03-01"],
        "emotion": ["sad", "angry", "sad", "sad", "angry"],
    })
    assert single_emotion_rows(index).tolist() == [False, False, True, True, True]
