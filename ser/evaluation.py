"""Scores of the folds' models on their held-out test parts: overall, per corpus, per speaker, per fold.

Every test clip is scored twice: as the fold's test part (``predicted``, with
its speaker's own statistics under ``normalize: speaker``) and alone, the way
``ser predict`` scores a clip of an unknown speaker (``served``, with the
statistics saved with the model). ``serving_accuracy`` is the accuracy of the latter.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, precision_recall_fscore_support

from ser.inference import saved_reference_stats, serving_inputs
from ser.inputs import model_inputs
from ser.params import ModelParams
from ser.split import TEST, TRAIN, VALIDATION
from ser.tables import read_clips

ECE_BINS = 15


def predictions_table(
    split: pd.DataFrame, probabilities: np.ndarray, served: np.ndarray, classes: list[str], fold: str
) -> pd.DataFrame:
    """One row per test clip: fold, file, corpus, speaker, actual and predicted class, confidence,
    the class predicted when the clip is served alone, and every class's probability."""
    test = split[split["part"] == TEST].reset_index(drop=True)
    best = probabilities.argmax(axis=1)
    table = pd.DataFrame({
        "fold": fold,
        "file": test["file"],
        "corpus": test["corpus"],
        "speaker": test["speaker"],
        "actual": test["emotion"],
        "predicted": np.asarray(classes)[best],
        "confidence": probabilities[np.arange(len(best)), best].round(6),
        "served": np.asarray(classes)[served.argmax(axis=1)],
    })
    return pd.concat([table, pd.DataFrame(probabilities.round(6), columns=[f"p_{c}" for c in classes])], axis=1)


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> float:
    """Mean gap between confidence and accuracy over equal-width confidence bins, weighted by bin size."""
    confidence, correct = np.asarray(confidence, float), np.asarray(correct, float)
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    gap = 0.0
    for b in np.unique(which):
        rows = which == b
        gap += rows.sum() * abs(confidence[rows].mean() - correct[rows].mean())
    return gap / max(len(confidence), 1)


def _rounded(values) -> float:
    return round(float(values), 6)


def score(predictions: pd.DataFrame, classes: list[str], detail: bool = True) -> dict:
    """Accuracy, macro F1, ECE, lowest class recall and serving accuracy of a set of test clips, with
    per-class precision, recall and F1 if ``detail``. Classes with no test clip are left out of
    macro F1 and the lowest recall (a corpus without surprise is not scored on it)."""
    actual, predicted = predictions["actual"], predictions["predicted"]
    present = [c for c in classes if (actual == c).any()]
    precision, recall, f1, _ = precision_recall_fscore_support(actual, predicted, labels=present, zero_division=0)
    scores = {
        "n_test": int(len(predictions)),
        "accuracy": _rounded(accuracy_score(actual, predicted)),
        "macro_f1": _rounded(np.mean(f1)),
        "ece": _rounded(expected_calibration_error(predictions["confidence"], actual == predicted)),
        "min_recall": _rounded(np.min(recall)),
        "serving_accuracy": _rounded(accuracy_score(actual, predictions["served"])),
    }
    if detail:
        scores.update({
            "precision": {c: _rounded(v) for c, v in zip(present, precision)},
            "recall": {c: _rounded(v) for c, v in zip(present, recall)},
            "f1": {c: _rounded(v) for c, v in zip(present, f1)},
        })
    return scores


def fold_score(predictions: pd.DataFrame, split: pd.DataFrame, classes: list[str]) -> dict:
    """A fold's scores, with the sizes of its training and validation parts."""
    parts = split["part"].value_counts()
    return {"n_train": int(parts.get(TRAIN, 0)), "n_val": int(parts.get(VALIDATION, 0)), **score(predictions, classes)}


def summarize(protocol: str, predictions: pd.DataFrame, folds: dict[str, dict], classes: list[str]) -> dict:
    """Scores over all test clips of all folds, the mean accuracy over corpora, and the scores per
    corpus, per speaker and per fold."""
    by_corpus = {corpus: score(rows, classes) for corpus, rows in predictions.groupby("corpus", sort=True)}
    overall = score(predictions, classes)
    return {
        "protocol": protocol,
        **{key: value for key, value in overall.items() if key not in ("precision", "recall", "f1")},
        "corpus_mean_accuracy": _rounded(np.mean([s["accuracy"] for s in by_corpus.values()])),
        "recall": overall["recall"],
        "by_corpus": by_corpus,
        "by_speaker": {s: score(rows, classes, detail=False) for s, rows in predictions.groupby("speaker", sort=True)},
        "folds": folds,
    }


def confident_mistakes(predictions: pd.DataFrame, top: int) -> pd.DataFrame:
    """The ``top`` wrong predictions with the highest confidence, most confident first."""
    wrong = predictions[predictions["actual"] != predictions["predicted"]]
    columns = ["fold", "file", "actual", "predicted", "confidence"]
    return wrong.sort_values(["confidence", "file"], ascending=[False, True], kind="stable")[columns].head(top)


def evaluate_model(model_dir: Path, features: np.ndarray, index: pd.DataFrame) -> tuple[pd.DataFrame, dict, dict]:
    """Predictions and scores of the model saved in ``model_dir`` on its test part, and its metadata."""
    import keras

    from ser import models  # noqa: F401 - registers the custom layers

    split = read_clips(model_dir / "split.csv")
    if not split["file"].equals(index["file"]):
        raise RuntimeError(f"{model_dir / 'split.csv'} does not match the features: rerun the train stage")
    meta = json.loads((model_dir / "meta.json").read_text())
    params = ModelParams(**meta["model"])
    model = keras.models.load_model(model_dir / "model.keras")
    test = (split["part"] == TEST).to_numpy()
    inputs = model_inputs(features, index["valid_frames"], index["speaker"], params)
    probabilities = model.predict(inputs[test], verbose=0)
    alone = serving_inputs(features[test], index["valid_frames"][test], params, saved_reference_stats(meta))
    served = model.predict(alone, verbose=0)
    predictions = predictions_table(split, probabilities, served, meta["classes"], meta["fold"])
    return predictions, fold_score(predictions, split, meta["classes"]), meta
