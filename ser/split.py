"""Train / validation / test splits under three protocols.

- ``random``: stratified by emotion; the same speaker and word appear on both sides.
- ``speaker``: test on ``test_speaker``, train on the other speaker(s).
- ``word``: hold out ``test_fraction`` of the words, for every speaker and emotion.

The test part is chosen first; validation is carved from what remains, so the
test part never reaches training or model selection. Under ``speaker`` and
``word`` validation holds out whole words of the training part, so model
selection is scored on words (and, for ``speaker``, only the speaker) it did
not train on; under ``random`` it is a stratified share of clips.

:func:`fold_parts` gives every evaluation fold: one per held-out speaker for
``speaker`` (the one named by ``test_speaker`` first), else just one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from ser.params import ParamsError, SplitParams

TRAIN, VALIDATION, TEST = "train", "val", "test"


def _test_mask(index: pd.DataFrame, split: SplitParams) -> np.ndarray:
    if split.protocol == "speaker":
        speakers = sorted(index["speaker"].unique())
        if split.test_speaker not in speakers:
            raise ParamsError(
                f"split.test_speaker: {split.test_speaker!r} is not in the data "
                f"(speakers: {', '.join(speakers)})"
            )
        if len(speakers) < 2:
            raise ParamsError("split.protocol: 'speaker' needs at least two speakers in the data")
        return (index["speaker"] == split.test_speaker).to_numpy()
    if split.protocol == "word":
        return _held_out_words(index, split.test_fraction, split.seed, "split.test_fraction")
    mask = np.zeros(len(index), dtype=bool)
    labels = index["emotion"].to_numpy()
    mask[_stratified_holdout(np.arange(len(index)), labels, split.test_fraction, split.seed, "split.test_fraction")] = True
    return mask


def _held_out_words(index: pd.DataFrame, fraction: float, seed: int, key: str) -> np.ndarray:
    """Mask of the rows whose word is among about ``fraction`` of the words (at least one)."""
    words = np.array(sorted(index["word"].unique()))
    n_held_out = max(1, int(round(fraction * len(words))))
    if n_held_out >= len(words):
        raise ParamsError(f"{key}: {fraction} of {len(words)} word(s) leaves none for training")
    held_out = np.random.default_rng(seed).permutation(words)[:n_held_out]
    return index["word"].isin(held_out).to_numpy()


def _stratified_holdout(rows: np.ndarray, labels: np.ndarray, fraction: float, seed: int, key: str) -> np.ndarray:
    """About ``fraction`` of ``rows``, stratified by label, and at least one row per label."""
    n_labels = len(np.unique(labels))
    size = max(n_labels, int(round(fraction * len(rows))))
    if len(rows) - size < n_labels:
        raise ParamsError(f"{key}: {len(rows)} clips are too few to hold out {fraction} of them stratified by emotion")
    return train_test_split(rows, test_size=size, stratify=labels, random_state=seed)[1]


def assign_parts(index: pd.DataFrame, split: SplitParams) -> np.ndarray:
    """One of ``train``/``val``/``test`` for every row of ``index``, deterministic under ``split.seed``."""
    parts = np.full(len(index), TRAIN, dtype=object)
    test = _test_mask(index, split)
    parts[test] = TEST
    rest = np.flatnonzero(~test)
    if split.protocol == "random":
        labels = index["emotion"].to_numpy()[rest]
        held_out = _stratified_holdout(rest, labels, split.validation_fraction, split.seed, "split.validation_fraction")
    else:
        remaining = index.iloc[rest]
        held_out = rest[_held_out_words(remaining, split.validation_fraction, split.seed, "split.validation_fraction")]
    parts[held_out] = VALIDATION
    return parts


def fold_parts(index: pd.DataFrame, split: SplitParams) -> dict[str, np.ndarray]:
    """Parts of every evaluation fold by name; the first is the one ``split`` names (the deployable model)."""
    first = assign_parts(index, split)
    if split.protocol != "speaker":
        return {split.protocol: first}
    others = sorted(set(index["speaker"]) - {split.test_speaker})
    folds = {f"test_{split.test_speaker}": first}
    for speaker in others:
        folds[f"test_{speaker}"] = assign_parts(index, split.model_copy(update={"test_speaker": speaker}))
    return folds
