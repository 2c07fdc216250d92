"""Evaluation folds over all corpora: which clips each fold trains, validates and tests on.

Protocols (``split.protocol``):

- ``speaker``: the speakers of every corpus are dealt into ``split.folds`` folds
  of whole speakers, balanced by corpus; each fold tests on its speakers and
  trains on everyone else, so every speaker is tested exactly once.
- ``corpus``: a fold per held-out corpus. With ``split.train_corpora`` empty,
  each corpus is tested on a model trained on all the others; otherwise the
  models train on the named corpora only and each other corpus is tested.
- ``text``: about ``split.test_fraction`` of each corpus's texts (words or
  sentences) are held out, for every speaker. A text that its corpus speaks
  in a single emotion (ASED's emotion-specific sentences) gives its label
  away to anything that hears the words: it is never held out (test or
  validation) and stays in training (:func:`single_emotion_texts` counts them).
- ``random``: a share of clips, stratified by corpus and emotion (the same
  speakers and texts on both sides: no measure of new voices).

The test part is chosen first; validation (early stopping, learning-rate
schedule) is carved from the training part only: about
``split.validation_fraction`` of the training speakers of each corpus, or of
the texts when a fold trains on a single speaker, or of the clips for
``random``. Clips a fold does not use (other corpora, under ``corpus`` with
``train_corpora``) are ``unused``. Everything is deterministic under ``split.seed``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from ser.params import ParamsError, SplitParams

TRAIN, VALIDATION, TEST, UNUSED = "train", "val", "test", "unused"


def _share(fraction: float, count: int) -> int:
    """``fraction`` of ``count``, rounded half up."""
    return math.floor(fraction * count + 0.5)


def speaker_folds(index: pd.DataFrame, folds: int, seed: int) -> list[list[str]]:
    """The speakers of each fold: each corpus's speakers shuffled, then dealt in turn across folds."""
    speakers = index[["corpus", "speaker"]].drop_duplicates().sort_values(["corpus", "speaker"])
    if folds > len(speakers):
        raise ParamsError(f"split.folds: {folds} folds need at least {folds} speakers, the data has {len(speakers)}")
    rng = np.random.default_rng(seed)
    dealt: list[list[str]] = [[] for _ in range(folds)]
    turn = 0
    for _, group in speakers.groupby("corpus", sort=True):
        for speaker in rng.permutation(group["speaker"].to_numpy()):
            dealt[turn % folds].append(str(speaker))
            turn += 1
    return [sorted(fold) for fold in dealt]


def single_emotion_rows(index: pd.DataFrame) -> np.ndarray:
    """Mask of the rows whose text their corpus speaks in a single emotion (its words give the label away)."""
    emotions = index.groupby(["corpus", "text"], sort=False)["emotion"].transform("nunique")
    return (emotions == 1).to_numpy()


def single_emotion_texts(index: pd.DataFrame) -> pd.DataFrame:
    """The texts that their corpus speaks in a single emotion, per corpus: columns ``corpus``,
    ``texts`` (how many) and ``clips`` (theirs); only corpora that have some, sorted by corpus."""
    single = index[single_emotion_rows(index)]
    summary = single.groupby("corpus", sort=True).agg(texts=("text", "nunique"), clips=("text", "size"))
    return summary.reset_index().astype({"texts": int, "clips": int})


def single_emotion_note(index: pd.DataFrame) -> str:
    """What the text protocol keeps in training because its words give the emotion away ("" if nothing)."""
    kept = single_emotion_texts(index)
    if kept.empty:
        return ""
    counts = "; ".join(f"{row.corpus}: {row.texts} texts, {row.clips} clips" for row in kept.itertuples())
    return f"split: texts spoken in a single emotion stay in training, never held out ({counts})"


def held_out_texts(index: pd.DataFrame, fraction: float, seed: int, key: str) -> np.ndarray:
    """Mask of the rows whose text is among about ``fraction`` of its corpus's texts (at least one
    for a corpus with two texts or more, none for a corpus with a single text).

    Only texts that the corpus speaks in several emotions can be held out: one spoken in a single
    emotion gives its label away to anything that hears the words, so it stays unmasked (see
    :func:`single_emotion_texts`); ``fraction`` is a share of the others."""
    mask = np.zeros(len(index), dtype=bool)
    rng = np.random.default_rng(seed)
    shared = index[~single_emotion_rows(index)]
    for corpus, rows in index.groupby("corpus", sort=True):
        texts = np.array(sorted(shared.loc[shared["corpus"] == corpus, "text"].unique()))
        count = max(1, _share(fraction, len(texts))) if len(texts) > 1 else 0
        if count >= len(texts) > 1:
            raise ParamsError(f"{key}: {fraction} of {corpus}'s {len(texts)} texts leaves none for training")
        held_out = rng.permutation(texts)[:count]
        mask[rows.index[rows["text"].isin(held_out)].to_numpy()] = True
    if not mask.any():
        raise ParamsError(f"{key}: no corpus has two texts or more, each spoken in several emotions, to hold some out")
    return mask


def _stratified_holdout(rows: np.ndarray, labels: np.ndarray, fraction: float, seed: int, key: str) -> np.ndarray:
    """About ``fraction`` of ``rows``, stratified by label, and at least one row per label."""
    n_labels = len(np.unique(labels))
    size = max(n_labels, _share(fraction, len(rows)))
    if len(rows) - size < n_labels:
        raise ParamsError(f"{key}: {len(rows)} clips are too few to hold out {fraction} of them stratified by corpus and emotion")
    return train_test_split(rows, test_size=size, stratify=labels, random_state=seed)[1]


def _strata(index: pd.DataFrame) -> np.ndarray:
    return (index["corpus"] + "|" + index["emotion"]).to_numpy()


def validation_speakers(index: pd.DataFrame, fraction: float, seed: int) -> list[str]:
    """About ``fraction`` of each corpus's speakers in ``index`` (at least one in all), leaving each
    corpus at least one speaker to train on."""
    rng = np.random.default_rng(seed)
    chosen, largest = [], []
    for _, group in index[["corpus", "speaker"]].drop_duplicates().groupby("corpus", sort=True):
        shuffled = list(rng.permutation(np.sort(group["speaker"].to_numpy())))
        chosen.extend(shuffled[: min(_share(fraction, len(shuffled)), len(shuffled) - 1)])
        largest = max(largest, shuffled, key=len)
    return [str(s) for s in chosen or largest[:1]]


def _validation_mask(pool: pd.DataFrame, split: SplitParams) -> np.ndarray:
    """Which rows of the training ``pool`` validate (see the module docstring)."""
    key = "split.validation_fraction"
    if split.protocol == "random":
        mask = np.zeros(len(pool), dtype=bool)
        mask[_stratified_holdout(np.arange(len(pool)), _strata(pool), split.validation_fraction, split.seed, key)] = True
        return mask
    if split.protocol == "text" or pool["speaker"].nunique() < 2:
        return held_out_texts(pool.reset_index(drop=True), split.validation_fraction, split.seed, key)
    return pool["speaker"].isin(validation_speakers(pool, split.validation_fraction, split.seed)).to_numpy()


def assign_parts(index: pd.DataFrame, test: np.ndarray, pool: np.ndarray, split: SplitParams) -> np.ndarray:
    """``train``/``val``/``test``/``unused`` for every row: ``test`` rows test, the ``pool`` rows
    (never test rows) train or validate."""
    pool = np.asarray(pool) & ~np.asarray(test)
    if not pool.any():
        raise ParamsError(f"split.protocol: {split.protocol!r} leaves no clips to train on")
    parts = np.full(len(index), UNUSED, dtype=object)
    parts[test] = TEST
    rows = np.flatnonzero(pool)
    validation = _validation_mask(index.iloc[rows], split)
    if validation.all():
        raise ParamsError(f"split.validation_fraction: {split.validation_fraction} leaves no clips to train on")
    parts[rows] = np.where(validation, VALIDATION, TRAIN)
    return parts


def _corpus_tests(index: pd.DataFrame, split: SplitParams) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    corpora = sorted(index["corpus"].unique())
    if unknown := sorted(set(split.train_corpora) - set(corpora)):
        raise ParamsError(f"split.train_corpora: {', '.join(unknown)} not in the data (corpora: {', '.join(corpora)})")
    training = set(split.train_corpora)
    tested = [c for c in corpora if c not in training]
    if len(corpora) < 2 or not tested:
        raise ParamsError(f"split.protocol: 'corpus' needs a corpus to test and another to train on (corpora: {', '.join(corpora)})")
    in_training = index["corpus"].isin(training).to_numpy() if training else np.ones(len(index), dtype=bool)
    return {f"test_{c}": ((test := (index["corpus"] == c).to_numpy()), in_training & ~test) for c in tested}


def fold_tests(index: pd.DataFrame, split: SplitParams) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every fold's test rows and the rows its model may train or validate on, by fold name."""
    everyone = np.ones(len(index), dtype=bool)
    if split.protocol == "speaker":
        if index["speaker"].nunique() < 2:
            raise ParamsError("split.protocol: 'speaker' needs at least two speakers in the data")
        folds = speaker_folds(index, split.folds, split.seed)
        return {f"fold{k}": (index["speaker"].isin(speakers).to_numpy(), everyone) for k, speakers in enumerate(folds, 1)}
    if split.protocol == "corpus":
        return _corpus_tests(index, split)
    if split.protocol == "text":
        return {"text": (held_out_texts(index, split.test_fraction, split.seed, "split.test_fraction"), everyone)}
    test = np.zeros(len(index), dtype=bool)
    test[_stratified_holdout(np.arange(len(index)), _strata(index), split.test_fraction, split.seed, "split.test_fraction")] = True
    return {"random": (test, everyone)}


def fold_parts(index: pd.DataFrame, split: SplitParams) -> dict[str, np.ndarray]:
    """The parts of every evaluation fold, by fold name, in order."""
    index = index.reset_index(drop=True)
    return {fold: assign_parts(index, test, pool, split) for fold, (test, pool) in fold_tests(index, split).items()}
