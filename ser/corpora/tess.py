"""Toronto Emotional Speech Set: ``<SPEAKER>_<word>_<emotion>.<ext>``, e.g. ``OAF_back_ps.wav``.

Labels come from the file name, never the folder: the public release spells
its folders inconsistently (``OAF_Pleasant_surprise``, ``YAF_pleasant_surprised``,
``OAF_Fear``...). One file names its speaker ``OA`` (``OA_bite_neutral``).
"""

from __future__ import annotations

import re
from pathlib import Path

from ser.corpora import FileNameRecipe, Label, known_emotion, match_name

EMOTIONS = {
    "angry": "angry", "disgust": "disgust", "fear": "fear", "happy": "happy",
    "neutral": "neutral", "ps": "surprise", "sad": "sad",
}
SPEAKER_ALIASES = {"OA": "OAF"}
EMOTION_ALIASES = {"pleasant_surprise": "ps", "pleasant_surprised": "ps"}
_NAME = re.compile(r"^(?P<speaker>[A-Za-z]+)_(?P<word>[^_]+)_(?P<emotion>[A-Za-z_]+)$")


def parse(path: Path) -> Label:
    match = match_name(_NAME, path)
    emotion = match["emotion"].lower()
    emotion = known_emotion(EMOTION_ALIASES.get(emotion, emotion), EMOTIONS)
    speaker = match["speaker"].upper()
    return Label(SPEAKER_ALIASES.get(speaker, speaker), match["word"].lower(), emotion)


RECIPE = FileNameRecipe("tess", "<SPEAKER>_<word>_<emotion>.<ext> (e.g. OAF_back_ps.wav)", EMOTIONS, parse)
