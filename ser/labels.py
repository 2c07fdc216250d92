"""Labels from TESS file names: ``<SPEAKER>_<word>_<emotion>.<ext>``.

Labels always come from the file name, never from the folder: the public
release spells its folders inconsistently (``OAF_Pleasant_surprise``,
``YAF_pleasant_surprised``, ``OAF_Fear``...).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePath

EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "neutral", "ps", "sad")
"""Class labels in a fixed order; ``ps`` is pleasant surprise."""

SPEAKER_ALIASES = {"OA": "OAF"}
"""The release names speaker OAF ``OA`` in one file (``OA_bite_neutral``)."""

EMOTION_ALIASES = {"pleasant_surprise": "ps", "pleasant_surprised": "ps"}

AUDIO_EXTENSIONS = frozenset({".wav", ".flac", ".aif", ".aiff", ".ogg"})

_NAME = re.compile(r"^(?P<speaker>[A-Za-z]+)_(?P<word>[^_]+)_(?P<emotion>[A-Za-z_]+)$")


class LabelError(ValueError):
    """A file name that does not carry a TESS label."""


@dataclass(frozen=True)
class Label:
    speaker: str
    word: str
    emotion: str


def parse_label(path: str | PurePath) -> Label:
    """Parse speaker, word and emotion from a TESS file name.

    Raises ``LabelError`` naming the file when the name does not follow the
    ``<SPEAKER>_<word>_<emotion>`` pattern or the emotion is unknown.
    """
    stem = PurePath(path).stem
    match = _NAME.match(stem)
    if match is None:
        raise LabelError(f"{path}: name does not match <SPEAKER>_<word>_<emotion>")
    speaker = match["speaker"].upper()
    emotion = match["emotion"].lower()
    emotion = EMOTION_ALIASES.get(emotion, emotion)
    if emotion not in EMOTIONS:
        raise LabelError(
            f"{path}: unknown emotion {match['emotion']!r} (expected one of {', '.join(EMOTIONS)})"
        )
    return Label(SPEAKER_ALIASES.get(speaker, speaker), match["word"].lower(), emotion)
