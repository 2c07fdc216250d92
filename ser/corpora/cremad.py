"""CREMA-D: ``<actor>_<sentence>_<emotion>_<level>.<ext>``, e.g. ``1001_DFA_ANG_XX.wav``.

Actors 1001-1091; twelve sentences (``DFA``, ``IEO``, ``ITS``...); emotions
``ANG DIS FEA HAP NEU SAD`` (no surprise); levels ``LO MD HI XX``.
"""

from __future__ import annotations

import re
from pathlib import Path

from ser.corpora import FileNameRecipe, Label, LabelError

EMOTIONS = {"ANG": "angry", "DIS": "disgust", "FEA": "fear", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}
_NAME = re.compile(r"^(?P<actor>\d{4})_(?P<sentence>[A-Z]{3})_(?P<emotion>[A-Z]{3})_(?P<level>LO|MD|HI|XX|X)$", re.IGNORECASE)


def parse(path: Path) -> Label:
    match = _NAME.match(path.stem)
    if match is None:
        raise LabelError("name does not match the pattern")
    emotion = match["emotion"].upper()
    if emotion not in EMOTIONS:
        raise LabelError(f"unknown emotion {match['emotion']!r}")
    return Label(match["actor"], match["sentence"].upper(), emotion)


RECIPE = FileNameRecipe("cremad", "<actor>_<sentence>_<emotion>_<level>.<ext> (e.g. 1001_DFA_ANG_XX.wav)", EMOTIONS, parse)
