"""Scores of the folds' models on their held-out test parts: overall, per corpus, per speaker, per fold.

Every test clip is scored twice, by the model's served (ONNX) graph: as the
fold's test part (``predicted``, with its speaker's statistics from all their
clips under ``normalize: speaker``) and alone, the way ``ser predict`` scores a
clip of an unknown speaker (``served``, its statistics from itself alone, shrunk
toward the training speakers'). ``serving_accuracy`` is the accuracy of the latter.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, precision_recall_fscore_support

from ser.inference import Predictor, graph_inputs
from ser.split import TEST, TRAIN, VALIDATION
from ser.tables import read_clips

ECE_BINS = 15
METRIC_DIGITS = 4
"""Decimals of a reported score: another CPU's last-bit differences leave them unchanged."""
ADAPTATION_CLIPS = (5, 20)
"""Clips per group in the adaptation scores: a test speaker's statistics from this many of their clips."""


def predictions_table(
    split: pd.DataFrame, probabilities: np.ndarray, served: np.ndarray, classes: list[str], fold: str,
    adapted: dict[int, np.ndarray] | None = None,
) -> pd.DataFrame:
    """One row per test clip: fold, file, corpus, speaker, actual and predicted class, confidence,
    the class predicted when the clip is served alone (``served``) and when its speaker's statistics
    come from ``n`` of their clips (``adapted_<n>``), and every class's probability."""
    test = split[split["part"] == TEST].reset_index(drop=True)
    best = probabilities.argmax(axis=1)
    table = pd.DataFrame({
        "fold": fold,
        "file": test["file"],
        "corpus": test["corpus"],
        "speaker": test["speaker"],
        "text": test["text"],
        "actual": test["emotion"],
        "predicted": np.asarray(classes)[best],
        "confidence": probabilities[np.arange(len(best)), best].round(6),
        "served": np.asarray(classes)[served.argmax(axis=1)],
        **{f"adapted_{n}": np.asarray(classes)[p.argmax(axis=1)] for n, p in (adapted or {}).items()},
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


def rounded(value: float) -> float:
    """A score as reported, to :data:`METRIC_DIGITS` decimals."""
    return round(float(value), METRIC_DIGITS)


def score(predictions: pd.DataFrame, classes: list[str], detail: bool = True) -> dict:
    """Accuracy, macro F1, ECE, lowest class recall and serving accuracy of a set of test clips, with
    per-class precision, recall and F1 if ``detail``. Classes with no test clip are left out of
    macro F1 and the lowest recall (a corpus without surprise is not scored on it)."""
    actual, predicted = predictions["actual"], predictions["predicted"]
    present = [c for c in classes if (actual == c).any()]
    precision, recall, f1, _ = precision_recall_fscore_support(actual, predicted, labels=present, zero_division=0)
    scores = {
        "n_test": int(len(predictions)),
        "accuracy": rounded(accuracy_score(actual, predicted)),
        "macro_f1": rounded(np.mean(f1)),
        "ece": rounded(expected_calibration_error(predictions["confidence"], actual == predicted)),
        "min_recall": rounded(np.min(recall)),
        "serving_accuracy": rounded(accuracy_score(actual, predictions["served"])),
    }
    serving_recall = precision_recall_fscore_support(actual, predictions["served"], labels=present, zero_division=0)[1]
    scores["serving_min_recall"] = rounded(np.min(serving_recall))
    if adapted := [column for column in predictions if column.startswith("adapted_")]:
        scores["adapted_accuracy"] = {
            column.removeprefix("adapted_"): rounded(accuracy_score(actual, predictions[column])) for column in adapted
        }
    if detail:
        scores.update({
            "precision": {c: rounded(v) for c, v in zip(present, precision)},
            "recall": {c: rounded(v) for c, v in zip(present, recall)},
            "f1": {c: rounded(v) for c, v in zip(present, f1)},
            "serving_recall": {c: rounded(v) for c, v in zip(present, serving_recall)},
        })
    return scores


def fold_score(predictions: pd.DataFrame, split: pd.DataFrame, classes: list[str]) -> dict:
    """A fold's scores, with the sizes of its training and validation parts."""
    parts = split["part"].value_counts()
    return {"n_train": int(parts.get(TRAIN, 0)), "n_val": int(parts.get(VALIDATION, 0)), **score(predictions, classes)}


def corpus_scores(rows: pd.DataFrame, classes: list[str], giveaway: np.ndarray) -> dict:
    """A corpus's scores; where some of its test clips speak a text its corpus speaks in a single emotion
    (``giveaway``: the words give the label away), also the scores of the others (``shared_texts``)."""
    scores = score(rows, classes)
    if giveaway.any() and not giveaway.all():
        shared = score(rows[~giveaway], classes, detail=False)
        scores["shared_texts"] = {key: shared[key] for key in ("n_test", "accuracy", "serving_accuracy")}
    return scores


def summarize(
    protocol: str, predictions: pd.DataFrame, folds: dict[str, dict], classes: list[str], giveaway: np.ndarray | None = None
) -> dict:
    """Scores over all test clips of all folds, the mean accuracy over corpora, and the scores per
    corpus (see :func:`corpus_scores`; ``giveaway`` marks the predictions of texts spoken in a single
    emotion), per speaker and per fold."""
    giveaway = np.zeros(len(predictions), dtype=bool) if giveaway is None else np.asarray(giveaway)
    by_corpus = {
        corpus: corpus_scores(rows, classes, giveaway[rows.index.to_numpy()])
        for corpus, rows in predictions.reset_index(drop=True).groupby("corpus", sort=True)
    }
    overall = score(predictions, classes)
    return {
        "protocol": protocol,
        **{key: value for key, value in overall.items() if key not in ("precision", "recall", "f1", "serving_recall")},
        "corpus_mean_accuracy": rounded(np.mean([s["accuracy"] for s in by_corpus.values()])),
        "corpus_mean_serving_accuracy": rounded(np.mean([s["serving_accuracy"] for s in by_corpus.values()])),
        "recall": overall["recall"],
        "serving_recall": overall["serving_recall"],
        "by_corpus": by_corpus,
        "by_speaker": {s: score(rows, classes, detail=False) for s, rows in predictions.groupby("speaker", sort=True)},
        "folds": folds,
    }


def confident_mistakes(predictions: pd.DataFrame, top: int) -> pd.DataFrame:
    """The ``top`` wrong predictions with the highest confidence, most confident first."""
    wrong = predictions[predictions["actual"] != predictions["predicted"]]
    columns = ["fold", "file", "actual", "predicted", "confidence"]
    return wrong.sort_values(["confidence", "file"], ascending=[False, True], kind="stable")[columns].head(top)


def adaptation_groups(speakers: np.ndarray, clips: int, seed: int = 0) -> np.ndarray:
    """Each clip's group when every speaker's clips are dealt, in a seeded random order, into groups of
    ``clips`` (the last may be smaller): what ``ser predict --adapt`` sees given that many clips."""
    order = np.random.default_rng(seed).permutation(len(speakers))
    groups = np.empty(len(speakers), dtype=object)
    for speaker in np.unique(speakers):
        rows = order[speakers[order] == speaker]
        groups[rows] = [f"{speaker}#{k // clips}" for k in range(len(rows))]
    return groups.astype(str)


def scored_probabilities(
    predictor: Predictor, features: np.ndarray, index: pd.DataFrame, functionals: dict[str, np.ndarray], groups: np.ndarray,
    rows: np.ndarray,
) -> np.ndarray:
    """Class probabilities of the clips at ``rows`` (a mask), each speaker's statistics from the clips of its group."""
    described = {kind: values[rows] for kind, values in functionals.items()}
    inputs = graph_inputs(features[rows], index["valid_frames"][rows].to_numpy(), described, groups, predictor.params, predictor.reference)
    return predictor.probabilities(inputs)


def transformed_predictions(
    model_dir: Path, features: np.ndarray, index: pd.DataFrame, functionals: dict[str, np.ndarray], files: pd.Series,
) -> pd.DataFrame:
    """The class the model saved in ``model_dir`` predicts for each transformed clip of ``files`` (its
    test clips), each scored alone: ``file``, ``transform`` and ``predicted``."""
    predictor = Predictor(model_dir, threads=0)
    rows = index["file"].isin(files).to_numpy()
    alone = np.arange(int(rows.sum())).astype(str)
    probabilities = scored_probabilities(predictor, features, index, functionals, alone, rows)
    found = index.loc[rows, ["file", "transform"]].reset_index(drop=True)
    return found.assign(predicted=np.asarray(predictor.classes)[probabilities.argmax(axis=1)])


def evaluate_model(
    model_dir: Path, features: np.ndarray, index: pd.DataFrame, functionals: dict[str, np.ndarray]
) -> tuple[pd.DataFrame, dict, dict]:
    """Predictions and scores of the model saved in ``model_dir`` on its test part, and its metadata.

    The model is run as it is served (its ONNX graph, through :class:`ser.inference.Predictor`).
    """
    split = read_clips(model_dir / "split.csv")
    if not split["file"].equals(index["file"]):
        raise RuntimeError(f"{model_dir / 'split.csv'} does not match the features: rerun the train stage")
    predictor = Predictor(model_dir, threads=0)
    test = (split["part"] == TEST).to_numpy()
    speakers = index["speaker"].to_numpy(dtype=str)

    def scored(groups: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return scored_probabilities(predictor, features, index, functionals, groups, rows)

    # a test speaker's statistics come from all their clips, as in training (under text and random,
    # their training clips too); then from groups of their test clips, and from each test clip alone
    own = np.isin(speakers, speakers[test])
    probabilities = scored(speakers[own], own)[test[own]]
    served = scored(np.arange(int(test.sum())).astype(str), test)  # each clip alone, as `ser predict` scores it
    adapted = {n: scored(adaptation_groups(speakers[test], n), test) for n in ADAPTATION_CLIPS}
    classes = list(predictor.classes)
    predictions = predictions_table(split, probabilities, served, classes, predictor.meta["fold"], adapted)
    return predictions, fold_score(predictions, split, classes), predictor.meta


def robustness_table(transformed: pd.DataFrame, predictions: pd.DataFrame) -> pd.DataFrame:
    """One row per transformed clip (``file``, ``transform``, ``predicted``) that is a test clip, joined to
    the clip's own single-clip prediction (``served``) and label (``actual``) from the evaluation's
    ``predictions`` (under the text and random protocols some drawn clips are no fold's test clip)."""
    return transformed.merge(predictions[["file", "corpus", "actual", "served"]], on="file", validate="many_to_one")


def robustness_scores(table: pd.DataFrame, transforms: list[str]) -> dict:
    """Per transform: accuracy, its change from the untransformed clips' (``accuracy_change``), and
    the share of clips whose top class is unchanged (``unchanged``); ``untransformed``: the same clips
    scored as they are."""
    clips = table.drop_duplicates("file")
    scores: dict = {"n_clips": int(len(clips))}
    if clips.empty:
        return scores
    scores["untransformed"] = {"accuracy": rounded((clips["served"] == clips["actual"]).mean())}
    for transform in transforms:
        rows = table[table["transform"] == transform]
        accuracy = (rows["predicted"] == rows["actual"]).mean()
        scores[transform] = {
            "accuracy": rounded(accuracy),
            "accuracy_change": rounded(accuracy - scores["untransformed"]["accuracy"]),
            "unchanged": rounded((rows["predicted"] == rows["served"]).mean()),
        }
    return scores


def robustness_rows(scores: dict) -> pd.DataFrame:
    """The scores as a table, one row per transform (the ``dvc plots`` data)."""
    return pd.DataFrame([
        {"transform": name, "accuracy": value["accuracy"], "unchanged": value.get("unchanged", 1.0)}
        for name, value in scores.items() if isinstance(value, dict)
    ])
