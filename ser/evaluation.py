"""Scores of a trained model on its held-out test part."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, f1_score

from ser.split import TEST, TRAIN, VALIDATION


def predictions_table(split: pd.DataFrame, probabilities: np.ndarray, classes: list[str]) -> pd.DataFrame:
    """One row per test clip: file, actual and predicted class, and the predicted class's probability."""
    test = split[split["part"] == TEST].reset_index(drop=True)
    best = probabilities.argmax(axis=1)
    return pd.DataFrame({
        "file": test["file"],
        "actual": test["emotion"],
        "predicted": np.asarray(classes)[best],
        "confidence": probabilities[np.arange(len(best)), best].round(6),
    })


def score(predictions: pd.DataFrame, split: pd.DataFrame, classes: list[str], split_params: dict) -> dict:
    """Accuracy, macro F1 and per-class F1, with the protocol and the size of each part."""
    parts = split["part"].value_counts()
    per_class = f1_score(predictions["actual"], predictions["predicted"], labels=classes, average=None, zero_division=0)
    metrics = {
        "protocol": split_params["protocol"],
        "n_train": int(parts.get(TRAIN, 0)),
        "n_val": int(parts.get(VALIDATION, 0)),
        "n_test": int(parts.get(TEST, 0)),
        "accuracy": round(float(accuracy_score(predictions["actual"], predictions["predicted"])), 6),
        "macro_f1": round(float(np.mean(per_class)), 6),
        "f1": {label: round(float(value), 6) for label, value in zip(classes, per_class)},
    }
    if split_params["protocol"] == "speaker":
        metrics["test_speaker"] = split_params["test_speaker"]
    return metrics
