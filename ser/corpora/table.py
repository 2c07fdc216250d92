"""Any corpus, your own recordings included: labels from a CSV.

Columns: ``file`` (a path relative to the CSV's folder), ``emotion`` and
``speaker``; ``text`` (word or sentence id) and ``corpus`` are optional. The
source is the CSV itself, or a folder (or zip) holding exactly one CSV at its
top. Rows that cannot be used (missing file, a path leaving the CSV's folder,
an empty cell, a file listed twice) are rejected with their line number, and
audio in the folder that the CSV does not list is reported too.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterator

from ser.audio import AUDIO_SUFFIXES
from ser.corpora import Entry, Label, LabelError

REQUIRED = ("file", "emotion", "speaker")
OPTIONAL = ("text", "corpus")
EMOTIONS = {
    "anger": "angry", "angry": "angry", "disgust": "disgust", "disgusted": "disgust",
    "fear": "fear", "fearful": "fear", "afraid": "fear", "happy": "happy", "happiness": "happy", "joy": "happy",
    "neutral": "neutral", "sad": "sad", "sadness": "sad", "surprise": "surprise", "surprised": "surprise",
}
"""Common English names for the standard classes."""


def find_csv(source: Path) -> Path:
    """The CSV named by ``source``: the file itself, or the only ``.csv`` at the top of a folder."""
    if source.is_file():
        return source
    found = sorted(p for p in source.glob("*") if p.is_file() and p.suffix.lower() == ".csv")
    if len(found) != 1:
        what = "no CSV" if not found else f"{len(found)} CSVs ({', '.join(p.name for p in found)})"
        raise LabelError(f"{source}: recipe 'csv' needs exactly one .csv at the top of the folder, found {what}")
    return found[0]


def read_rows(path: Path) -> list[dict[str, str]]:
    """The CSV's rows as dicts; ``LabelError`` naming the file if it cannot be read or lacks a column."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle, strict=True)
            rows = list(reader)
            columns = [c.strip() for c in reader.fieldnames or []]
    except (csv.Error, UnicodeDecodeError) as exc:
        raise LabelError(f"{path}: not a readable CSV ({exc})") from None
    if missing := [c for c in REQUIRED if c not in columns]:
        raise LabelError(f"{path}: missing column(s) {', '.join(missing)} (needs {', '.join(REQUIRED)}; optional {', '.join(OPTIONAL)})")
    if not rows:
        raise LabelError(f"{path}: no rows")
    return [{(k or "").strip(): (v or "").strip() for k, v in row.items() if k is not None} for row in rows]


@dataclass(frozen=True)
class CsvRecipe:
    name: str = "csv"
    pattern: str = "a CSV row with file, emotion and speaker"
    emotions = EMOTIONS

    def entries(self, source: Path) -> Iterator[Entry]:
        """One entry per row of the CSV, then one per audio file in its folder that no row names."""
        table = find_csv(source)
        root = table.parent.resolve()
        listed: dict[Path, str] = {}
        for line, row in enumerate(read_rows(table), start=2):
            entry = self._entry(root, row, f"{table.name} line {line}", listed)
            listed.setdefault(entry.path, row["emotion"])
            yield entry
        for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES):
            if path not in listed:
                yield Entry(path, reason=f"audio not listed in {table.name}", counts_as_rejected=False)

    def _entry(self, root: Path, row: dict[str, str], where: str, listed: dict[Path, str]) -> Entry:
        name = row["file"]
        path = (root / name).resolve()
        if not name:
            return Entry(root / f"<{where}>", reason=f"{where}: empty file cell")
        if PurePosixPath(name).is_absolute() or not path.is_relative_to(root):
            return Entry(root / name, reason=f"{where}: path {name!r} leaves the CSV's folder")
        if empty := [c for c in ("emotion", "speaker") if not row[c]]:
            return Entry(path, reason=f"{where}: empty {' and '.join(empty)}")
        if path in listed:
            same = listed[path] == row["emotion"]
            detail = "" if same else f" with another emotion ({row['emotion']!r}, first {listed[path]!r})"
            return Entry(path, reason=f"{where}: file listed again{detail}", counts_as_rejected=not same)
        if not path.is_file():
            return Entry(path, reason=f"{where}: no such file")
        label = Label(row["speaker"], row.get("text", "") or PurePosixPath(name).stem, row["emotion"])
        return Entry(path, label, corpus=row.get("corpus", ""))


RECIPE = CsvRecipe()
