"""Scores of trained models on their held-out test parts: per fold, and their mean."""

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

ECE_BINS = 15


def predictions_table(split: pd.DataFrame, probabilities: np.ndarray, classes: list[str], fold: str) -> pd.DataFrame:
    """One row per test clip: fold, file, actual and predicted class, confidence, every class's probability."""
    test = split[split["part"] == TEST].reset_index(drop=True)
    best = probabilities.argmax(axis=1)
    table = pd.DataFrame({
        "fold": fold,
        "file": test["file"],
        "actual": test["emotion"],
        "predicted": np.asarray(classes)[best],
        "confidence": probabilities[np.arange(len(best)), best].round(6),
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


def score(predictions: pd.DataFrame, split: pd.DataFrame, classes: list[str]) -> dict:
    """Accuracy, macro F1, expected calibration error and per-class precision/recall/F1 of one fold."""
    parts = split["part"].value_counts()
    actual, predicted = predictions["actual"], predictions["predicted"]
    precision, recall, f1, _ = precision_recall_fscore_support(actual, predicted, labels=classes, zero_division=0)
    return {
        "n_train": int(parts.get(TRAIN, 0)),
        "n_val": int(parts.get(VALIDATION, 0)),
        "n_test": int(parts.get(TEST, 0)),
        "accuracy": _rounded(accuracy_score(actual, predicted)),
        "macro_f1": _rounded(np.mean(f1)),
        "ece": _rounded(expected_calibration_error(predictions["confidence"], actual == predicted)),
        "min_recall": _rounded(np.min(recall)),
        "precision": {c: _rounded(v) for c, v in zip(classes, precision)},
        "recall": {c: _rounded(v) for c, v in zip(classes, recall)},
        "f1": {c: _rounded(v) for c, v in zip(classes, f1)},
    }


def summarize(protocol: str, folds: dict[str, dict]) -> dict:
    """The folds' mean accuracy, macro F1 and ECE (and serving accuracy, when scored), their lowest
    class recall, and each fold in full."""
    means = [key for key in ("accuracy", "macro_f1", "ece", "serving_accuracy") if all(key in f for f in folds.values())]
    return {
        "protocol": protocol,
        **{key: _rounded(np.mean([f[key] for f in folds.values()])) for key in means},
        "min_recall": min(f["min_recall"] for f in folds.values()),
        "folds": folds,
    }


def serving_accuracy(model, features: np.ndarray, test: pd.DataFrame, meta: dict) -> float:
    """Accuracy on the test clips normalized with the model's reference statistics, one clip at a
    time (as ``ser predict`` scores a clip of an unknown speaker), not with the test speaker's own."""
    inputs = serving_inputs(features, test["valid_frames"], ModelParams(**meta["model"]), saved_reference_stats(meta))
    predicted = np.asarray(meta["classes"])[model.predict(inputs, verbose=0).argmax(axis=1)]
    return _rounded(accuracy_score(test["emotion"], predicted))


def confident_mistakes(predictions: pd.DataFrame, top: int) -> pd.DataFrame:
    """The ``top`` wrong predictions with the highest confidence, most confident first."""
    wrong = predictions[predictions["actual"] != predictions["predicted"]]
    columns = ["fold", "file", "actual", "predicted", "confidence"]
    return wrong.sort_values(["confidence", "file"], ascending=[False, True], kind="stable")[columns].head(top)


def evaluate_model(model_dir: Path, features: np.ndarray, index: pd.DataFrame) -> tuple[pd.DataFrame, dict, dict]:
    """Predictions and scores of the model saved in ``model_dir`` on its test part, and its metadata."""
    import keras

    from ser import models  # noqa: F401 - registers the custom layers

    split = pd.read_csv(model_dir / "split.csv")
    if not split["file"].equals(index["file"]):
        raise RuntimeError(f"{model_dir / 'split.csv'} does not match the features: rerun the train stage")
    meta = json.loads((model_dir / "meta.json").read_text())
    model = keras.models.load_model(model_dir / "model.keras")
    inputs = model_inputs(features, index["valid_frames"], index["speaker"], ModelParams(**meta["model"]))
    test = (split["part"] == TEST).to_numpy()
    probabilities = model.predict(inputs[test], verbose=0)
    predictions = predictions_table(split, probabilities, meta["classes"], meta["fold"])
    scores = score(predictions, split, meta["classes"])
    if "reference_stats" in meta:
        scores["serving_accuracy"] = serving_accuracy(model, features[test], index[test], meta)
    return predictions, scores, meta
