"""One label set over all corpora: the fetched corpora's manifests, combined.

Each corpus's emotion names are mapped onto ``data.emotions`` (its map in
``data.maps``, then its recipe's mapping, then the name itself if it is a class).
Clips whose emotion has no class are left out and listed, with counts by corpus
and label; audio found in two corpora (same sha256) is kept once, from the
corpus listed first in ``data.sources``, and listed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ser.corpora import recipes, standard_emotion
from ser.fetch import MANIFEST_FILE, REJECTED_COLUMNS, REJECTED_FILE
from ser.params import DataParams
from ser.tables import read_clips


class LabelsError(RuntimeError):
    """The fetched corpora cannot be combined (a corpus not fetched, no clip left)."""


@dataclass
class Combined:
    manifest: pd.DataFrame
    """Every clip kept: the corpora's manifest columns (``file`` relative to ``data/raw``) and ``emotion``."""
    rejected: pd.DataFrame
    """Every file not kept, from fetch (unreadable, unlabeled) and from here (left out, repeated)."""
    summary: dict


def _corpus_tables(raw_dir: Path, name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    folder = raw_dir / name
    if not (folder / MANIFEST_FILE).is_file():
        raise LabelsError(f"{folder / MANIFEST_FILE}: corpus {name!r} has not been fetched (run `dvc repro`)")
    # keep_default_na=False: a corpus's own names ("NA", "None", "null") are names, not missing values
    manifest, rejected = read_clips(folder / MANIFEST_FILE), read_clips(folder / REJECTED_FILE)
    return manifest.assign(file=name + "/" + manifest["file"]), rejected


def _left_out(rows: pd.DataFrame, recipe: str, reason: str) -> pd.DataFrame:
    return pd.DataFrame({
        "file": rows["source"], "corpus": rows["corpus"], "recipe": recipe, "reason": reason, "counts_as_rejected": False,
    }, columns=REJECTED_COLUMNS)


def combine(raw_dir: Path, data: DataParams) -> Combined:
    """All corpora of ``data.sources`` as one manifest on one label set, and everything left aside."""
    classes = tuple(data.emotions)
    kept, rejected, left_out = [], [], {}
    first_source: dict[str, str] = {}
    by_name = recipes()
    for name, source in data.sources.items():
        manifest, fetch_rejected = _corpus_tables(raw_dir, name)
        rejected.append(fetch_rejected)
        recipe = by_name[source.recipe]
        emotion = manifest["label"].map(lambda label: standard_emotion(recipe, label, data.map_of(name), classes))
        unmapped = manifest[emotion.isna()]
        for label, rows in unmapped.groupby("label", sort=True):
            left_out.setdefault(name, {})[label] = len(rows)
            rejected.append(_left_out(rows, source.recipe, f"emotion {label!r} has no class in data.emotions (left out)"))
        manifest = manifest.assign(emotion=emotion)[emotion.notna()]
        repeated = manifest["sha256"].isin(first_source)
        copies = manifest[repeated]
        rejected.append(_left_out(copies, source.recipe, "identical copy of " + copies["sha256"].map(first_source)))
        manifest = manifest[~repeated]
        first_source.update(zip(manifest["sha256"], manifest["file"]))
        kept.append(manifest)
    manifest = pd.concat(kept, ignore_index=True)
    if manifest.empty:
        raise LabelsError(f"no clip has an emotion in data.emotions ({', '.join(classes)})")
    rejected_table = pd.concat([r for r in rejected if not r.empty] or [pd.DataFrame(columns=REJECTED_COLUMNS)], ignore_index=True)
    return Combined(manifest, rejected_table, _summary(manifest, rejected_table, left_out))


def _summary(manifest: pd.DataFrame, rejected: pd.DataFrame, left_out: dict) -> dict:
    """Counts: clips kept per corpus and emotion, left out per corpus and label, files rejected per corpus."""
    kept = pd.crosstab(manifest["corpus"], manifest["emotion"])
    return {
        "clips": int(len(manifest)),
        "speakers": int(manifest["speaker"].nunique()),
        "kept": {corpus: {e: int(n) for e, n in row.items() if n} for corpus, row in kept.iterrows()},
        "left_out": left_out,
        "repeated_audio": int(rejected["reason"].str.startswith("identical copy of").sum()),
        "rejected": {c: int(n) for c, n in rejected[rejected["counts_as_rejected"].astype(bool)].groupby("corpus").size().items()},
    }
