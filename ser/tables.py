"""Reading the pipeline's tables of clips (manifests, indexes, splits, rejected lists).

Ids stay text: a speaker ``13``, a text ``01`` or ``NA``, a label ``None`` are
names, not numbers or missing values.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

TEXT_COLUMNS = ("file", "corpus", "speaker", "text", "label", "emotion", "sha256", "part", "recipe", "reason")


def read_clips(path: str | Path) -> pd.DataFrame:
    """A CSV table of clips, with its id and label columns read as text, never as numbers or NaN."""
    return pd.read_csv(path, dtype={column: str for column in TEXT_COLUMNS}, keep_default_na=False)
