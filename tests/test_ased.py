"""The ASED recipe: names, folders and their quirks, on written files (tones, Ogg Opus) and on a few real files."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from conftest import make_tone
from ser.corpora import Label, LabelError, recipes, standard_emotion
from ser.corpora import ased
from ser.fetch import fetch
from ser.params import SourceParams

CLASSES = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
ASED_DIR = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "ased"


def _fetch(source: Path, out: Path):
    return fetch("ased", SourceParams(recipe="ased", source=str(source)), out)


def _manifest(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "manifest.csv", dtype=str, keep_default_na=False).set_index("source")


def _rejected(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "rejected.csv", dtype=str, keep_default_na=False).set_index("file")


def _opus(path: Path, seconds: float = 0.3, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), make_tone(16000, seconds, seed=seed, f0=120.0 + 9 * seed), 16000, format="OGG", subtype="OPUS")
    return path


def test_registered_and_mapped_onto_the_standard_classes():
    recipe = recipes()["ased"]
    assert recipe is ased.RECIPE
    expected = {"neutral": "neutral", "fearful": "fear", "happy": "happy", "sad": "sad", "angry": "angry"}
    for label, standard in expected.items():
        assert standard_emotion(recipe, label, {}, CLASSES) == standard
    assert set(ased.FOLDERS.values()) == set(ased.PREFIXES.values()) == set(ased.EMOTIONS)


PARSED = [
    ("01Neutral/n1-01-01-01-01.opus", Label("01", "01", "neutral")),
    ("02Fearful/f2-03-01-02-17.wav", Label("17", "02-03", "fearful")),
    ("03Happy/h3-02-02-01-65.opus", Label("65", "02", "happy")),  # a common sentence: the same text in every folder
    ("04Sad/S4-04-02-01-29.opus", Label("29", "04-04", "sad")),  # upper-case prefix, as one released file
    ("05Angry/a5-07-01-02-33.OPUS", Label("33", "05-07", "angry")),
    ("05angry/A5-05-02-01-01.flac", Label("01", "05-05", "angry")),  # folder in any case
    ("ASED_V1/data/01Neutral/n1-06-01-01-09.wav", Label("09", "01-06", "neutral")),  # nested deeper
]


@pytest.mark.parametrize(("name", "expected"), PARSED, ids=[n for n, _ in PARSED])
def test_parse(name, expected):
    assert ased.parse(Path("corpus") / name) == expected


def test_a_speaker_with_both_gender_codes_is_one_speaker():
    woman = ased.parse(Path("04Sad/s4-01-01-01-09.opus"))
    man = ased.parse(Path("04Sad/s4-01-02-02-09.opus"))
    assert woman.speaker == man.speaker == "09"


def test_common_sentences_share_a_text_and_specific_ones_do_not():
    folders = {"01Neutral": "n1", "02Fearful": "f2", "03Happy": "h3", "04Sad": "s4", "05Angry": "a5"}
    texts = {s: {ased.parse(Path(f"{f}/{p}-{s}-01-01-01.opus")).text for f, p in folders.items()} for s in ("01", "02", "03", "07")}
    assert texts["01"] == {"01"} and texts["02"] == {"02"}
    assert texts["03"] == {"01-03", "02-03", "03-03", "04-03", "05-03"}  # five different sentences
    assert len(texts["07"]) == 5


UNPARSED = [
    ("01Neutral/f2-01-01-01-01.opus", "folder '01Neutral' (neutral) and name prefix 'f2' (fearful) disagree"),
    ("04Sad/a5-03-01-01-02.opus", "folder '04Sad' (sad) and name prefix 'a5' (angry) disagree"),
    ("03Happy/h1-01-01-01-01.opus", "unknown emotion prefix 'h1'"),
    ("06Disgust/d6-01-01-01-01.opus", "unknown folder '06Disgust'"),
    ("n1-01-01-01-01.opus", "unknown folder 'corpus'"),  # no emotion folder at all
    ("01Neutral/n1-08-01-01-01.opus", "does not match"),  # sentences are 01-07
    ("01Neutral/n1-01-01-03-01.opus", "does not match"),  # gender 01 or 02
    ("01Neutral/n1-01-01-01.opus", "does not match"),
    ("01Neutral/n1_01_01_01_01.opus", "does not match"),
    ("01Neutral/n1-01-01-01-01 (1).opus", "does not match"),
]


@pytest.mark.parametrize(("name", "reason"), UNPARSED, ids=[n for n, _ in UNPARSED])
def test_parse_rejects(name, reason):
    with pytest.raises(LabelError) as info:
        ased.parse(Path("corpus") / name)
    assert reason in str(info.value)


GOOD = {
    "01Neutral/n1-01-01-01-09.opus": Label("09", "01", "neutral"),
    "04Sad/s4-01-02-02-09.opus": Label("09", "01", "sad"),  # speaker 09 again, other gender code
    "04Sad/S4-04-02-01-29.opus": Label("29", "04-04", "sad"),
    "05Angry/a5-03-01-01-02.opus": Label("02", "05-03", "angry"),
    "02Fearful/f2-02-01-02-17.wav": Label("17", "02", "fearful"),
}
BAD = {
    "01Neutral/f2-01-01-01-01.opus": "folder '01Neutral' (neutral) and name prefix 'f2' (fearful) disagree",
    "Extra/n1-01-01-01-01.opus": "unknown folder 'Extra'",
    "03Happy/happy.opus": "does not match",
    "03Happy/notes.txt": "not an audio file extension (.txt)",
}


def _write_corpus(root: Path, write_tone) -> None:
    for seed, relative in enumerate([*GOOD, *BAD]):
        path = root / "ASED_V1" / relative  # nested one level, as an unpacked release
        if path.suffix == ".opus":
            _opus(path, seed=seed)
        elif path.suffix == ".wav":
            write_tone(path, sr=16000, seconds=0.3, seed=seed)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("not audio\n")


def test_fetch_a_written_corpus_with_ogg_opus(tmp_path, write_tone):
    root = tmp_path / "source"
    _write_corpus(root, write_tone)
    out = tmp_path / "raw" / "ased"
    result = _fetch(root, out)
    manifest = _manifest(out)
    assert len(result.manifest) == len(manifest) == len(GOOD)
    assert sorted(manifest.index) == sorted(f"ASED_V1/{r}" for r in GOOD)
    for relative, label in GOOD.items():
        row = manifest.loc[f"ASED_V1/{relative}"]
        assert row["speaker"] == f"ased/{label.speaker}"
        assert (row["corpus"], row["text"], row["label"]) == ("ased", label.text, label.emotion)
        assert int(row["sample_rate"]) == 16000 and int(row["channels"]) == 1
        assert float(row["duration"]) == pytest.approx(0.3, abs=0.01)
        assert row["format"] == ("OGG" if relative.endswith(".opus") else "WAV")
        assert (out / row["file"]).read_bytes() == (root / "ASED_V1" / relative).read_bytes()
    assert manifest.loc[[f"ASED_V1/{r}" for r in GOOD if r.endswith("-09.opus")], "speaker"].nunique() == 1
    rejected = _rejected(out)
    assert sorted(rejected.index) == sorted(f"ASED_V1/{r}" for r in BAD)
    for relative, reason in BAD.items():
        assert reason in rejected.loc[f"ASED_V1/{relative}", "reason"]
    # the Opus clips decode to the tone that was written (lossy, so only roughly)
    decoded, sr = sf.read(str(out / manifest.loc["ASED_V1/04Sad/S4-04-02-01-29.opus", "file"]))
    assert sr == 16000 and decoded.ndim == 1 and abs(len(decoded) - 4800) <= 960
    assert 0.1 < np.max(np.abs(decoded)) < 1.0


REAL = [
    "01Neutral/n1-01-01-01-09.opus", "04Sad/s4-01-02-02-09.opus",  # speaker 09 with both gender codes
    "04Sad/S4-04-02-01-29.opus",  # the upper-case prefix
    "02Fearful/f2-03-01-01-01.opus", "05Angry/a5-02-01-01-01.opus", "03Happy/h3-01-01-01-01.opus",
]


@pytest.mark.skipif(not ASED_DIR.is_dir(), reason="../shared/data/ased is not here")
def test_fetch_a_few_real_files(tmp_path):
    real = [r for r in REAL if (ASED_DIR / r).is_file()]
    if len(real) < len(REAL):
        pytest.skip(f"not in this copy of ASED: {sorted(set(REAL) - set(real))}")
    root = tmp_path / "ased"
    for relative in real:
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ASED_DIR / relative, root / relative)
    out = tmp_path / "raw"
    _fetch(root, out)
    manifest = _manifest(out)
    assert sorted(manifest.index) == sorted(real)
    assert not len(_rejected(out))
    assert set(manifest["sample_rate"]) == {"16000"} and set(manifest["channels"]) == {"1"}
    assert set(manifest["format"]) == {"OGG"}
    assert manifest.loc[["01Neutral/n1-01-01-01-09.opus", "04Sad/s4-01-02-02-09.opus"], "speaker"].tolist() == ["ased/09"] * 2
    assert manifest.loc["04Sad/S4-04-02-01-29.opus", ["label", "text"]].tolist() == ["sad", "04-04"]
    assert manifest.loc["05Angry/a5-02-01-01-01.opus", ["label", "text"]].tolist() == ["angry", "02"]
    assert all(2.0 <= float(d) <= 4.0 for d in manifest["duration"])
