"""SAVEE: ``<speaker>_<emotion><number>.<ext>``, e.g. ``DC_a01.wav``, ``JE_sa03.wav``.

Speakers ``DC JE JK KL``; emotions ``a`` anger, ``d`` disgust, ``f`` fear,
``h`` happiness, ``n`` neutral, ``sa`` sadness, ``su`` surprise (the two-letter
codes are read before the one-letter ones). Sentences differ by emotion, so a
clip's text is its emotion code and number (``sa03``). Some releases put each
speaker in a folder and drop the prefix (``DC/a01.wav``): the folder then
names the speaker.
"""

from __future__ import annotations

import re
from pathlib import Path

from ser.corpora import FileNameRecipe, Label, LabelError, match_name

EMOTIONS = {
    "a": "angry", "d": "disgust", "f": "fear", "h": "happy",
    "n": "neutral", "sa": "sad", "su": "surprise",
}
_NAME = re.compile(r"^(?:(?P<speaker>[A-Za-z]{2})_)?(?P<emotion>sa|su|[adfhn])(?P<number>\d{2})$", re.IGNORECASE)


def parse(path: Path) -> Label:
    match = match_name(_NAME, path)
    speaker = match["speaker"] or path.parent.name
    if not re.fullmatch(r"[A-Za-z]{2}", speaker):
        raise LabelError("no speaker: neither the file name nor its folder names one")
    emotion = match["emotion"].lower()
    return Label(speaker.upper(), f"{emotion}{match['number']}", emotion)


RECIPE = FileNameRecipe("savee", "<speaker>_<emotion><nn>.<ext> (e.g. DC_a01.wav, JE_sa03.wav)", EMOTIONS, parse)
