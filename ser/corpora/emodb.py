"""Berlin EmoDB: ``<speaker><text><emotion><version>.<ext>``, e.g. ``03a01Fa.wav``.

Speakers ``03 08 09 10 11 12 13 14 15 16``; texts ``a01-a07``, ``b01-b10``;
emotions (German initials) ``W`` Ärger (anger), ``L`` Langeweile (boredom),
``E`` Ekel (disgust), ``A`` Angst (fear), ``F`` Freude (happiness),
``T`` Trauer (sadness), ``N`` neutral; a version letter.
"""

from __future__ import annotations

import re
from pathlib import Path

from ser.corpora import FileNameRecipe, Label, known_emotion, match_name

EMOTIONS = {"W": "angry", "L": None, "E": "disgust", "A": "fear", "F": "happy", "T": "sad", "N": "neutral"}
_NAME = re.compile(r"^(?P<speaker>\d{2})(?P<text>[ab]\d{2})(?P<emotion>[a-z])(?P<version>[a-z])$", re.IGNORECASE)


def parse(path: Path) -> Label:
    match = match_name(_NAME, path)
    return Label(match["speaker"], match["text"].lower(), known_emotion(match["emotion"].upper(), EMOTIONS))


RECIPE = FileNameRecipe("emodb", "<speaker><text><emotion><version>.<ext> (e.g. 03a01Fa.wav)", EMOTIONS, parse)
