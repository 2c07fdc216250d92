"""CREMA-D: ``<actor>_<sentence>_<emotion>_<level>.<ext>``, e.g. ``1001_DFA_ANG_XX.wav``.

Actors 1001-1091; twelve sentences (``DFA``, ``IEO``, ``ITS``...); emotions
``ANG DIS FEA HAP NEU SAD`` (no surprise); levels ``LO MD HI XX``.
"""

from __future__ import annotations

import re
from pathlib import Path

from ser.corpora import FileNameRecipe, Label, known_emotion, match_name

EMOTIONS = {"ANG": "angry", "DIS": "disgust", "FEA": "fear", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}
_NAME = re.compile(r"^(?P<actor>\d{4})_(?P<sentence>[A-Z]{3})_(?P<emotion>[A-Z]{3})_(?P<level>LO|MD|HI|XX|X)$", re.IGNORECASE)


def parse(path: Path) -> Label:
    match = match_name(_NAME, path)
    return Label(match["actor"], match["sentence"].upper(), known_emotion(match["emotion"].upper(), EMOTIONS))


RECIPE = FileNameRecipe("cremad", "<actor>_<sentence>_<emotion>_<level>.<ext> (e.g. 1001_DFA_ANG_XX.wav)", EMOTIONS, parse)
