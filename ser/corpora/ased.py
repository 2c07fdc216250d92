"""ASED v1 (Amharic): ``<NN><Emotion>/<xN>-<SS>-<RR>-<GG>-<PP>.<ext>``, e.g. ``02Fearful/f2-03-01-02-17.wav``.

Folders ``01Neutral 02Fearful 03Happy 04Sad 05Angry``; in the name ``xN`` is
the emotion letter and folder number (``n1``, ``f2``, ``h3``, ``s4``, ``a5``;
one released file is upper case, ``S4-...``), ``SS`` the sentence (01-07),
``RR`` the repetition, ``GG`` the gender (01 woman, 02 man) and ``PP`` the
speaker (01-65). The emotion is read from both the folder and the prefix,
which must agree. Five speakers carry both gender codes, a typo rather than
two people, so the speaker is ``PP`` alone.

Texts: sentences 01 and 02 are common, read in every emotion: their text is
``01``/``02`` whatever the folder. Sentences 03-07 are emotion-specific, a
different sentence in each folder (25 in all): their text is the folder
number and the sentence (``05-03``: sentence 03 of ``05Angry``), so the
text protocol sees each as the one sentence it is, spoken in one emotion
(such texts are never held out, see :func:`ser.split.held_out_texts`).
"""

from __future__ import annotations

import re
from pathlib import Path

from ser.corpora import FileNameRecipe, Label, LabelError, match_name

EMOTIONS = {"neutral": "neutral", "fearful": "fear", "happy": "happy", "sad": "sad", "angry": "angry"}
FOLDERS = {"01neutral": "neutral", "02fearful": "fearful", "03happy": "happy", "04sad": "sad", "05angry": "angry"}
"""Folder name (lower case) -> the corpus's emotion."""
PREFIXES = {"n1": "neutral", "f2": "fearful", "h3": "happy", "s4": "sad", "a5": "angry"}
"""Name prefix ``xN`` (lower case) -> the corpus's emotion."""
COMMON_SENTENCES = frozenset({"01", "02"})
"""Sentences read in every emotion; the others (03-07) differ from folder to folder."""
_NAME = re.compile(r"^(?P<prefix>[A-Za-z]\d)-(?P<sentence>0[1-7])-(?P<repetition>\d\d)-(?P<gender>0[12])-(?P<speaker>\d\d)$")


def parse(path: Path) -> Label:
    match = match_name(_NAME, path)
    folder = path.parent.name
    if folder.lower() not in FOLDERS:
        raise LabelError(f"unknown folder {folder!r} (ASED's are {', '.join(sorted(f.title() for f in FOLDERS))})")
    emotion = FOLDERS[folder.lower()]
    prefix = match["prefix"]
    if prefix.lower() not in PREFIXES:
        raise LabelError(f"unknown emotion prefix {prefix!r}")
    if PREFIXES[prefix.lower()] != emotion:
        raise LabelError(
            f"folder {folder!r} ({emotion}) and name prefix {prefix!r} ({PREFIXES[prefix.lower()]}) disagree"
        )
    sentence = match["sentence"]
    text = sentence if sentence in COMMON_SENTENCES else f"{folder[:2]}-{sentence}"
    return Label(match["speaker"], text, emotion)


RECIPE = FileNameRecipe(
    "ased", "<NN><Emotion>/<xN>-<SS>-<RR>-<GG>-<PP>.<ext> (e.g. 02Fearful/f2-03-01-02-17.wav)", EMOTIONS, parse
)
