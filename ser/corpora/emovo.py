"""EMOVO (Italian): ``<emotion>-<speaker>-<sentence>.<ext>``, e.g. ``gio-f1-b1.wav``.

Emotions: ``dis`` disgust, ``gio`` joy, ``neu`` neutral, ``pau`` fear,
``rab`` anger, ``sor`` surprise, ``tri`` sadness; speakers ``f1-f3``,
``m1-m3``; sentences ``b1-b3``, ``d1-d2``, ``l1-l4``, ``n1-n5``.
"""

from __future__ import annotations

import re
from pathlib import Path

from ser.corpora import FileNameRecipe, Label, known_emotion, match_name

EMOTIONS = {
    "dis": "disgust", "gio": "happy", "neu": "neutral", "pau": "fear",
    "rab": "angry", "sor": "surprise", "tri": "sad",
}
_NAME = re.compile(r"^(?P<emotion>[a-z]{3})-(?P<speaker>[fm]\d)-(?P<sentence>[a-z]\d+)$", re.IGNORECASE)


def parse(path: Path) -> Label:
    match = match_name(_NAME, path)
    return Label(match["speaker"].lower(), match["sentence"].lower(), known_emotion(match["emotion"].lower(), EMOTIONS))


RECIPE = FileNameRecipe("emovo", "<emotion>-<speaker>-<sentence>.<ext> (e.g. gio-f1-b1.wav)", EMOTIONS, parse)
