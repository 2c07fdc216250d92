"""Corpus recipes: each turns a corpus folder into labelled entries, one module per corpus.

A recipe reads the speaker, the text (word or sentence id) and the emotion *as
the corpus names it* (``ps``, ``fearful``, ``gio``...) from each file; the
``labels`` step later maps those names onto ``data.emotions`` with the
recipe's default mapping (:attr:`Recipe.emotions`), which the corpus's map in
``data.maps`` can change. A file a recipe cannot label becomes an entry with
the reason, never a silent omission.

Recipes: ``tess``, ``ravdess``, ``emovo``, ``cremad``, ``savee``, ``emodb``, ``ased``
(labels from file names), ``nemo`` (labels from file names, transcripts from
its ``data.tsv``) and ``csv`` (labels from a CSV, for any other corpus
and for your own recordings).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Mapping, Protocol

from ser.audio import AUDIO_SUFFIXES


class LabelError(ValueError):
    """A file that a recipe cannot label; the message says why."""


@dataclass(frozen=True)
class Label:
    """What a recipe reads about one clip; ``emotion`` is the corpus's own name for it."""

    speaker: str
    text: str
    emotion: str


def match_name(pattern: re.Pattern, path: Path) -> re.Match:
    """``pattern`` matched against the file's name without its suffix, or ``LabelError``."""
    match = pattern.match(path.stem)
    if match is None:
        raise LabelError("name does not match the pattern")
    return match


def known_emotion(name: str, emotions: Mapping[str, str | None]) -> str:
    """``name`` if the corpus has that emotion, else ``LabelError``."""
    if name not in emotions:
        raise LabelError(f"unknown emotion {name!r}")
    return name


@dataclass(frozen=True)
class Entry:
    """One file found in a corpus: its label, or the reason it has none.

    ``corpus`` is set only by recipes whose files name their corpus (``csv``).
    ``counts_as_rejected`` is False for files that are left aside on purpose
    (e.g. audio that a CSV does not list) rather than broken.
    """

    path: Path
    label: Label | None = None
    reason: str = ""
    corpus: str = ""
    counts_as_rejected: bool = True


@dataclass(frozen=True)
class FileNameRecipe:
    """A corpus whose labels are in its file names: ``parse`` reads one name."""

    name: str
    pattern: str
    """What a file name must look like, as the rejected list shows it."""
    emotions: Mapping[str, str | None]
    """The corpus's emotion names -> the standard names (``None``: no standard class)."""
    parse: Callable[[Path], Label]

    def entries(self, root: Path) -> Iterator[Entry]:
        """Every file under the directory ``root``, labelled or with the reason it is not (sorted)."""
        if not root.is_dir():
            raise LabelError(f"{root}: recipe {self.name!r} reads a directory, not a file")
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            if path.suffix.lower() not in AUDIO_SUFFIXES:
                yield Entry(path, reason=f"not an audio file extension ({path.suffix or 'none'})")
                continue
            try:
                yield Entry(path, self.parse(path))
            except LabelError as exc:
                yield Entry(path, reason=f"{exc}; expected {self.pattern}")


class Recipe(Protocol):
    name: str
    pattern: str
    emotions: Mapping[str, str | None]

    def entries(self, source: Path) -> Iterator[Entry]: ...


def recipes() -> dict[str, Recipe]:
    """Every recipe by name."""
    from ser.corpora import ased, cremad, emodb, emovo, nemo, ravdess, savee, table, tess

    return {module.RECIPE.name: module.RECIPE for module in (tess, ravdess, emovo, cremad, savee, emodb, ased, nemo, table)}


def standard_emotion(recipe: Recipe, label: str, overrides: Mapping[str, str | None], classes: tuple[str, ...]) -> str | None:
    """The class in ``classes`` that a corpus's ``label`` maps onto, or None (left out).

    ``overrides`` (the corpus's map in ``data.maps``) comes first, then the recipe's mapping; a
    label that is itself one of ``classes`` maps onto itself.
    """
    for mapping in (overrides, recipe.emotions):
        if label in mapping:
            target = mapping[label]
            return target if target in classes else None
    return label if label in classes else None
