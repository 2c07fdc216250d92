"""Train / validation / test splits under three protocols.

- ``random``: stratified by emotion; the same speaker and word appear on both sides.
- ``speaker``: test on ``test_speaker``, train on the other speaker(s).
- ``word``: hold out ``test_fraction`` of the words, for every speaker and emotion.

The test part is chosen first; validation is carved from what remains, so the
test part never reaches training or model selection.
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
        words = np.array(sorted(index["word"].unique()))
        n_test = max(1, int(round(split.test_fraction * len(words))))
        if n_test >= len(words):
            raise ParamsError(f"split.test_fraction: {split.test_fraction} leaves no training words")
        held_out = np.random.default_rng(split.seed).permutation(words)[:n_test]
        return index["word"].isin(held_out).to_numpy()
    _, test_rows = train_test_split(
        np.arange(len(index)), test_size=split.test_fraction,
        stratify=index["emotion"], random_state=split.seed,
    )
    mask = np.zeros(len(index), dtype=bool)
    mask[test_rows] = True
    return mask


def assign_parts(index: pd.DataFrame, split: SplitParams) -> np.ndarray:
    """One of ``train``/``val``/``test`` for every row of ``index``, deterministic under ``split.seed``."""
    parts = np.full(len(index), TRAIN, dtype=object)
    test = _test_mask(index, split)
    parts[test] = TEST
    rest = np.flatnonzero(~test)
    _, val_rows = train_test_split(
        rest, test_size=split.validation_fraction,
        stratify=index["emotion"].to_numpy()[rest], random_state=split.seed,
    )
    parts[val_rows] = VALIDATION
    return parts
