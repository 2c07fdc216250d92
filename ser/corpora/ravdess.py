"""RAVDESS: seven two-digit fields, ``MM-VV-EE-II-SS-RR-AA.<ext>``, e.g. ``03-01-06-01-02-01-13.wav``.

Modality (01 audio-video, 02 video, 03 audio), vocal channel (01 speech,
02 song), emotion, intensity (01 normal, 02 strong), statement (01, 02),
repetition (01, 02), actor (01-24). The song recordings have no disgust or
surprise. The text of a clip is its channel and statement (``speech-01``).
"""

from __future__ import annotations

import re
from pathlib import Path

from ser.corpora import FileNameRecipe, Label, LabelError, match_name

CODES = {
    "01": "neutral", "02": "calm", "03": "happy", "04": "sad",
    "05": "angry", "06": "fearful", "07": "disgust", "08": "surprised",
}
EMOTIONS = {
    "neutral": "neutral", "calm": None, "happy": "happy", "sad": "sad",
    "angry": "angry", "fearful": "fear", "disgust": "disgust", "surprised": "surprise",
}
CHANNELS = {"01": "speech", "02": "song"}
SONG_EMOTIONS = frozenset({"neutral", "calm", "happy", "sad", "angry", "fearful"})
_NAME = re.compile(r"^(0[123])-(0[12])-(\d\d)-(0[12])-(0[12])-(0[12])-(\d\d)$")


def parse(path: Path) -> Label:
    _, channel, code, _, statement, _, actor = match_name(_NAME, path).groups()
    if code not in CODES:
        raise LabelError(f"unknown emotion code {code!r}")
    emotion = CODES[code]
    if CHANNELS[channel] == "song" and emotion not in SONG_EMOTIONS:
        raise LabelError(f"emotion {emotion!r} does not exist in RAVDESS song")
    return Label(actor, f"{CHANNELS[channel]}-{statement}", emotion)


RECIPE = FileNameRecipe(
    "ravdess", "MM-VV-EE-II-SS-RR-AA.<ext>, seven two-digit fields (e.g. 03-01-06-01-02-01-13.wav)", EMOTIONS, parse
)
