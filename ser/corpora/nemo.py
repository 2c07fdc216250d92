"""nEMO (Polish): ``<SPEAKER>_<emotion>_<n>.<ext>``, e.g. ``EB0_anger_1.wav``, plus ``data.tsv``.

Nine actors (``EB0 IC0 KD0 KS0 MK0 MP0 SM0 TP0 WR0``); emotions ``anger``,
``fear``, ``happiness``, ``neutral``, ``sadness``, ``surprised`` (no disgust);
``n`` numbers the speaker's sentences in that emotion.

``data.tsv`` (tab-separated, UTF-8; columns ``file_id``, ``emotion``,
``raw_text``, ``normalized_text``, ``speaker_id``, ``gender``, ``age``) gives
each clip's transcript: its ``normalized_text`` becomes the clip's ``text``, so
the ``text`` split protocol holds out sentences. Two layouts are read, and any
mix of them: the official release (``data.tsv`` with ``samples/<file_id>``,
24 kHz WAV, the ``speaker_id`` column padded with spaces, which are stripped)
and the shared copy (``.opus`` files beside ``data.tsv``, ``file_id`` renamed
to ``.opus``). Rows are matched to audio files by the name without its suffix
(case-insensitive), wherever the file lies under the source.

- The speaker and the emotion come from the file name; when ``data.tsv`` lists
  the file, its ``speaker_id`` and ``emotion`` must agree with the name (else
  the file is rejected with a reason naming both), and its ``normalized_text``
  must not be empty.
- ``data.tsv`` is metadata, not a clip: it is never an entry (as the ``csv``
  recipe never lists its CSV). Any other file that is not audio is rejected as
  with the recipes that read file names. More than one ``data.tsv`` under the
  source, or one without the needed columns, is an error for the whole source.
- A ``data.tsv`` is present but does not list an audio file: the file is
  rejected (``not listed in data.tsv``, counting as rejected): labelling it with
  its sentence number instead would mix numbers with transcripts in one corpus's
  texts, the same sentence then counting as two.
- A ``data.tsv`` row whose file is absent is ignored (a subset of the audio
  with the full release's ``data.tsv`` is normal); a file listed twice is
  rejected, naming both lines.
- No ``data.tsv`` at all: every file is labelled from its name, the text being
  ``n`` (which, in the release, numbers the same sentence for every speaker and
  emotion, so the ``text`` protocol still holds out sentences).
- Two audio files of the same clip (same name, other suffix or folder): the
  first (in sorted order) is taken, the others are left aside as copies (not
  counting as rejected).

Gender and age are not kept: the manifest (:class:`ser.corpora.Label`) has the
speaker, the text and the emotion only, and adding columns would change the
pipeline's outputs for every corpus. Speakers stay distinct through their ids.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterator

from ser.audio import AUDIO_SUFFIXES
from ser.corpora import Entry, Label, LabelError, known_emotion, match_name
from ser.corpora.table import delimited_lines

EMOTIONS = {
    "anger": "angry", "fear": "fear", "happiness": "happy", "neutral": "neutral",
    "sadness": "sad", "surprised": "surprise",
}
METADATA = "data.tsv"
COLUMNS = ("file_id", "emotion", "normalized_text", "speaker_id")
"""The ``data.tsv`` columns read (``raw_text``, ``gender`` and ``age`` are not needed)."""
PATTERN = "<SPEAKER>_<emotion>_<n>.<ext> (e.g. EB0_anger_1.wav)"
_NAME = re.compile(r"^(?P<speaker>[A-Za-z0-9]+)_(?P<emotion>[A-Za-z]+)_(?P<n>\d+)$")


@dataclass(frozen=True)
class Row:
    """One ``data.tsv`` row, stripped."""

    line: int
    emotion: str
    text: str
    speaker: str


def parse(path: Path) -> Label:
    """The label read from the file name alone (the text is ``n``)."""
    match = match_name(_NAME, path)
    return Label(match["speaker"].upper(), match["n"].lstrip("0") or "0", known_emotion(match["emotion"].lower(), EMOTIONS))


def find_metadata(root: Path) -> Path | None:
    """The one ``data.tsv`` under ``root`` (any case), None if there is none; ``LabelError`` for several."""
    found = sorted(p for p in root.rglob("*") if p.is_file() and p.name.lower() == METADATA)
    if len(found) > 1:
        raise LabelError(f"{root}: recipe 'nemo' takes one {METADATA}, found {len(found)} ({', '.join(str(p.relative_to(root)) for p in found)})")
    return found[0] if found else None


def read_metadata(path: Path) -> dict[str, list[Row]]:
    """``data.tsv``'s rows by file stem (case-folded); ``LabelError`` naming the file if a column is missing."""
    columns: list[str] = []
    rows: dict[str, list[Row]] = {}
    for line, fields in delimited_lines(path, delimiter="\t"):
        if not columns:
            columns = [c.strip().lower() for c in fields]
            if missing := [c for c in COLUMNS if c not in columns]:
                raise LabelError(f"{path}: missing column(s) {', '.join(missing)} (needs {', '.join(COLUMNS)})")
            continue
        row = {name: value.strip() for name, value in zip(columns, fields)}
        if name := row.get("file_id", ""):
            stem = PurePosixPath(name.replace("\\", "/")).stem.casefold()
            rows.setdefault(stem, []).append(Row(line, row.get("emotion", ""), row.get("normalized_text", ""), row.get("speaker_id", "")))
    if not columns:
        raise LabelError(f"{path}: empty (needs the columns {', '.join(COLUMNS)})")
    return rows


def label_of(path: Path, rows: dict[str, list[Row]] | None) -> Label:
    """The file's label: from its name, checked against and completed by its ``data.tsv`` row if there is a ``data.tsv``."""
    try:
        named = parse(path)
    except LabelError as exc:
        raise LabelError(f"{exc}; expected {PATTERN}") from None
    if rows is None:
        return named
    listed = rows.get(path.stem.casefold(), [])
    if not listed:
        raise LabelError(f"not listed in {METADATA}")
    if len(listed) > 1:
        raise LabelError(f"listed {len(listed)} times in {METADATA} (lines {', '.join(str(r.line) for r in listed)})")
    row = listed[0]
    where = f"{METADATA} line {row.line}"
    if row.speaker.upper() != named.speaker:
        raise LabelError(f"speaker from the name ({named.speaker!r}) disagrees with {where}'s speaker_id ({row.speaker!r})")
    if row.emotion.lower() != named.emotion:
        raise LabelError(f"emotion from the name ({named.emotion!r}) disagrees with {where}'s emotion ({row.emotion!r})")
    if not row.text:
        raise LabelError(f"{where}: empty normalized_text")
    return Label(named.speaker, row.text, named.emotion)


@dataclass(frozen=True)
class NemoRecipe:
    name: str = "nemo"
    pattern: str = PATTERN
    emotions = EMOTIONS

    def entries(self, root: Path) -> Iterator[Entry]:
        """Every file under ``root`` but ``data.tsv``, labelled or with the reason it is not (sorted)."""
        if not root.is_dir():
            raise LabelError(f"{root}: recipe 'nemo' reads a directory, not a file")
        metadata = find_metadata(root)
        rows = read_metadata(metadata) if metadata is not None else None
        taken: dict[str, Path] = {}  # stem -> the file labelled for that clip
        for path in sorted(p for p in root.rglob("*") if p.is_file() and p != metadata):
            if path.suffix.lower() not in AUDIO_SUFFIXES:
                yield Entry(path, reason=f"not an audio file extension ({path.suffix or 'none'})")
                continue
            try:
                label = label_of(path, rows)
            except LabelError as exc:
                yield Entry(path, reason=str(exc))
                continue
            stem = path.stem.casefold()
            if stem in taken:
                first = taken[stem].relative_to(root).as_posix()
                yield Entry(path, reason=f"another file of the clip {first} (left aside)", counts_as_rejected=False)
                continue
            taken[stem] = path
            yield Entry(path, label)


RECIPE = NemoRecipe()
