"""Any corpus, your own recordings included: labels from a CSV.

Columns: ``file`` (a path relative to the CSV's folder), ``emotion`` and
``speaker``; ``text`` (word or sentence id) and ``corpus`` are optional. The
source is the CSV itself, or a folder (or zip) holding exactly one CSV at its
top. Rows that cannot be used (missing file, a path leaving the CSV's folder,
an empty cell, a file listed twice) are rejected with their line number, and
audio in the folder that the CSV does not list is reported too.
"""

from __future__ import annotations

import codecs
import csv
import io
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


def decoded(path: Path) -> str:
    """The CSV's text (UTF-8, with or without a byte order mark); ``LabelError`` naming the line of a byte that is not."""
    data = path.read_bytes().removeprefix(codecs.BOM_UTF8)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = len((data[: exc.start] + b"x").splitlines())
        byte = data[exc.start]
        raise LabelError(f"{path} line {line}: not a readable CSV (byte 0x{byte:02x} is not UTF-8; save it as UTF-8)") from None


def delimited_lines(path: Path, delimiter: str = ",") -> Iterator[tuple[int, list[str]]]:
    """Each line of a CSV (or, with ``delimiter="\\t"``, a TSV) but blank ones, as (the line where it
    starts, its fields); ``LabelError`` naming the file and the line if it cannot be read."""
    kind = "TSV" if delimiter == "\t" else "CSV"
    reader = csv.reader(io.StringIO(decoded(path), newline=""), delimiter=delimiter, strict=True)
    while True:
        line = reader.line_num + 1
        try:
            fields = next(reader, None)
        except csv.Error as exc:
            raise LabelError(f"{path} line {line}: not a readable {kind} ({exc})") from None
        if fields is None:
            return
        if fields:
            yield line, fields


def read_rows(path: Path) -> list[tuple[int, dict[str, str]]]:
    """The CSV's rows as (line where the row starts, dict), blank lines skipped; ``LabelError`` naming
    the file (and the line) if it cannot be read or lacks a column."""
    rows: list[tuple[int, dict[str, str]]] = []
    columns: list[str] = []
    for line, fields in delimited_lines(path):
        if not columns:
            columns = [c.strip() for c in fields]
            continue
        rows.append((line, {name: value.strip() for name, value in zip(columns, fields)}))
    if missing := [c for c in REQUIRED if c not in columns]:
        raise LabelError(f"{path}: missing column(s) {', '.join(missing)} (needs {', '.join(REQUIRED)}; optional {', '.join(OPTIONAL)})")
    if not rows:
        raise LabelError(f"{path}: no rows")
    return rows


@dataclass(frozen=True)
class CsvRecipe:
    name: str = "csv"
    pattern: str = "a CSV row with file, emotion and speaker"
    emotions = EMOTIONS

    def entries(self, source: Path) -> Iterator[Entry]:
        """One entry per row of the CSV, then one per audio file in its folder that no row names."""
        table = find_csv(source)
        root = table.parent.resolve()
        named: set[Path] = set()
        labelled: dict[Path, str] = {}  # file -> the emotion of the row that labelled it
        for line, row in read_rows(table):
            entry = self._entry(root, row, f"{table.name} line {line}", labelled)
            named.add(entry.path)
            if entry.label is not None:
                labelled[entry.path] = entry.label.emotion
            yield entry
        for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES):
            if path not in named:
                yield Entry(path, reason=f"audio not listed in {table.name}", counts_as_rejected=False)

    def _entry(self, root: Path, row: dict[str, str], where: str, labelled: dict[Path, str]) -> Entry:
        name, emotion = row.get("file", ""), row.get("emotion", "")
        if not name:
            return Entry(root / f"<{where}>", reason=f"{where}: empty file cell")
        if "\0" in name:
            return Entry(root / f"<{where}>", reason=f"{where}: path {name!r} holds a NUL character")
        path = (root / name).resolve()
        if PurePosixPath(name).is_absolute() or not path.is_relative_to(root):
            return Entry(root / name, reason=f"{where}: path {name!r} leaves the CSV's folder")
        if empty := [c for c in ("emotion", "speaker") if not row.get(c)]:
            return Entry(path, reason=f"{where}: empty {' and '.join(empty)}")
        if path in labelled:
            same = labelled[path] == emotion
            detail = "" if same else f" with another emotion ({emotion!r}, first {labelled[path]!r})"
            return Entry(path, reason=f"{where}: file listed again{detail}", counts_as_rejected=not same)
        try:
            found = path.is_file()
        except OSError as exc:  # e.g. a name too long for the file system
            return Entry(path, reason=f"{where}: unusable path ({exc.strerror})")
        if not found:
            return Entry(path, reason=f"{where}: no such file")
        label = Label(row["speaker"], row.get("text", "") or PurePosixPath(name).stem, emotion)
        return Entry(path, label, corpus=row.get("corpus", ""))


RECIPE = CsvRecipe()
