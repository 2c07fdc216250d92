"""Robustness to the recording chain: test clips scored one at a time after fixed transforms of it.

Stage ``robustness`` draws ``robustness.clips_per_class`` clips of each corpus and class (seeded) and
featurizes each through every transform of ``robustness.transforms`` (:mod:`ser.chain`). Evaluate scores
each transformed clip alone, with the model of the fold that tests the clip, as ``ser predict`` scores a
clip, and compares it with the same clip untransformed (:func:`ser.evaluation.robustness_scores`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def draw_clips(manifest: pd.DataFrame, clips_per_class: int, seed: int) -> pd.DataFrame:
    """Up to ``clips_per_class`` clips of each corpus and class, drawn at random from ``seed``, in manifest order."""
    rng = np.random.default_rng(seed)
    groups = manifest.groupby(["corpus", "emotion"], sort=True).indices
    drawn = [np.sort(rng.permutation(groups[key])[:clips_per_class]) for key in sorted(groups)]
    return manifest.iloc[np.sort(np.concatenate(drawn))] if drawn else manifest.iloc[:0]
