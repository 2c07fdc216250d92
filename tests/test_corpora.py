"""Corpus recipes: labels from each corpus's file names (or a CSV), every file either labelled or given a reason."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest

from ser.corpora import Entry, FileNameRecipe, Label, LabelError, recipes, standard_emotion
from ser.corpora import cremad, emodb, emovo, ravdess, savee, table, tess
from ser.fetch import MANIFEST_COLUMNS, REJECTED_COLUMNS, FetchError, check_rejected, fetch
from ser.labels import combine
from ser.params import RECIPES, DataParams, SourceParams

CLASSES = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
FILE_NAME_MODULES = {"tess": tess, "ravdess": ravdess, "emovo": emovo, "cremad": cremad, "savee": savee, "emodb": emodb}


def _clip(write_tone, path: Path, sr: int = 8000, seconds: float = 0.2, channels: int = 1, seed: int = 0, fmt=None) -> Path:
    return write_tone(path, sr=sr, seconds=seconds, channels=channels, format=fmt, seed=seed, f0=110.0 + 7 * seed)


def _fetch(corpus: str, recipe: str, source: Path | str, out: Path, **extra):
    return fetch(corpus, SourceParams(recipe=recipe, source=str(source), **extra), out)


def _manifest(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "manifest.csv", dtype=str, keep_default_na=False).set_index("source")


def _rejected(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "rejected.csv", dtype={"file": str, "reason": str}, keep_default_na=False).set_index("file")


# ---------------------------------------------------------------------------------------------------------------
# The registry


def test_recipe_names_match_params():
    assert set(recipes()) == set(RECIPES)
    assert len(RECIPES) == len(set(RECIPES))
    for name, recipe in recipes().items():
        assert recipe.name == name


@pytest.mark.parametrize("name", sorted(FILE_NAME_MODULES))
def test_file_name_recipes_map_onto_standard_classes(name):
    module = FILE_NAME_MODULES[name]
    recipe = recipes()[name]
    assert recipe is module.RECIPE
    assert isinstance(recipe, FileNameRecipe)
    assert set(recipe.emotions.values()) <= set(CLASSES) | {None}
    assert recipe.pattern  # shown in the rejected list


def test_csv_recipe_maps_onto_standard_classes():
    assert set(table.EMOTIONS.values()) == set(CLASSES)
    assert recipes()["csv"].emotions["fearful"] == "fear"


@pytest.mark.parametrize(
    ("name", "mapping"),
    [
        ("tess", {"ps": "surprise", "angry": "angry", "fear": "fear"}),
        ("ravdess", {"calm": None, "fearful": "fear", "surprised": "surprise", "disgust": "disgust"}),
        ("emovo", {"gio": "happy", "pau": "fear", "rab": "angry", "sor": "surprise", "tri": "sad", "dis": "disgust", "neu": "neutral"}),
        ("cremad", {"ANG": "angry", "DIS": "disgust", "FEA": "fear", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}),
        ("savee", {"a": "angry", "d": "disgust", "f": "fear", "h": "happy", "n": "neutral", "sa": "sad", "su": "surprise"}),
        ("emodb", {"W": "angry", "L": None, "E": "disgust", "A": "fear", "F": "happy", "T": "sad", "N": "neutral"}),
    ],
)
def test_recipe_default_mappings(name, mapping):
    recipe = recipes()[name]
    for label, expected in mapping.items():
        assert standard_emotion(recipe, label, {}, CLASSES) == expected, label


# ---------------------------------------------------------------------------------------------------------------
# standard_emotion: the source's map, then the recipe's, then the name itself


def test_standard_emotion_precedence():
    rav = ravdess.RECIPE
    assert standard_emotion(rav, "calm", {}, CLASSES) is None  # recipe: calm has no class
    assert standard_emotion(rav, "calm", {"calm": "neutral"}, CLASSES) == "neutral"  # the source's map first
    assert standard_emotion(rav, "surprised", {}, CLASSES) == "surprise"
    assert standard_emotion(rav, "surprised", {"surprised": None}, CLASSES) is None  # null leaves it out
    assert standard_emotion(rav, "fearful", {"calm": "neutral"}, CLASSES) == "fear"  # other labels: recipe map
    # identity only for names that neither map knows
    assert standard_emotion(rav, "sad", {}, CLASSES) == "sad"
    assert standard_emotion(rav, "bored", {}, CLASSES) is None
    assert standard_emotion(rav, "bored", {}, (*CLASSES, "bored")) == "bored"
    # the recipe's map beats identity: "ps" -> surprise even if "ps" were a class
    assert standard_emotion(tess.RECIPE, "ps", {}, ("ps", "surprise")) == "surprise"
    # a mapping onto a class the label set lacks leaves the clip out
    assert standard_emotion(tess.RECIPE, "ps", {}, ("angry", "sad")) is None
    assert standard_emotion(rav, "calm", {"calm": "calm"}, CLASSES) is None
    assert standard_emotion(rav, "calm", {"calm": "calm"}, (*CLASSES, "calm")) == "calm"
    # an override also beats identity
    assert standard_emotion(table.RECIPE, "sad", {"sad": "neutral"}, CLASSES) == "neutral"
    assert standard_emotion(table.RECIPE, "sad", {"sad": None}, CLASSES) is None


# ---------------------------------------------------------------------------------------------------------------
# Each recipe on names (parse) and on written files (entries, fetch)

PARSED = [
    # TESS
    ("tess", "OAF_back_ps.wav", Label("OAF", "back", "ps")),
    ("tess", "OAF_Pleasant_surprise/OAF_back_angry.wav", Label("OAF", "back", "angry")),  # never from the folder
    ("tess", "OA_bite_neutral.wav", Label("OAF", "bite", "neutral")),  # speaker alias
    ("tess", "oa_bite_neutral.wav", Label("OAF", "bite", "neutral")),
    ("tess", "YAF_x_pleasant_surprise.wav", Label("YAF", "x", "ps")),
    ("tess", "YAF_food_pleasant_surprised.wav", Label("YAF", "food", "ps")),
    ("tess", "YAF_back_Pleasant_Surprised.flac", Label("YAF", "back", "ps")),
    ("tess", "OAF_BACK_ANGRY.WAV", Label("OAF", "back", "angry")),
    ("tess", "Yaf_Germ_Fear.Flac", Label("YAF", "germ", "fear")),
    ("tess", "YAF_back_PS.aiff", Label("YAF", "back", "ps")),
    # RAVDESS
    ("ravdess", "03-01-06-01-02-01-13.wav", Label("13", "speech-02", "fearful")),
    ("ravdess", "03-01-02-02-01-02-01.wav", Label("01", "speech-01", "calm")),
    ("ravdess", "03-01-08-02-02-02-24.WAV", Label("24", "speech-02", "surprised")),
    ("ravdess", "03-01-07-01-01-01-07.wav", Label("07", "speech-01", "disgust")),
    ("ravdess", "03-02-01-01-01-02-05.wav", Label("05", "song-01", "neutral")),
    ("ravdess", "03-02-06-02-02-01-06.flac", Label("06", "song-02", "fearful")),
    ("ravdess", "01-01-05-01-01-01-03.wav", Label("03", "speech-01", "angry")),  # audio-video modality
    # EMOVO
    ("emovo", "gio-f1-b1.wav", Label("f1", "b1", "gio")),
    ("emovo", "GIO-M3-N5.WAV", Label("m3", "n5", "gio")),
    ("emovo", "f1/pau-f1-l4.wav", Label("f1", "l4", "pau")),
    ("emovo", "Sor-m2-d2.flac", Label("m2", "d2", "sor")),
    # CREMA-D
    ("cremad", "1001_DFA_ANG_XX.wav", Label("1001", "DFA", "ANG")),
    ("cremad", "1091_ieo_hap_hi.wav", Label("1091", "IEO", "HAP")),
    ("cremad", "1050_ITS_NEU_X.wav", Label("1050", "ITS", "NEU")),
    ("cremad", "1002_TAI_sad_lo.WAV", Label("1002", "TAI", "SAD")),
    # SAVEE
    ("savee", "DC_a01.wav", Label("DC", "a01", "a")),
    ("savee", "JE_sa03.wav", Label("JE", "sa03", "sa")),
    ("savee", "KL_su15.wav", Label("KL", "su15", "su")),
    ("savee", "jk_SU02.WAV", Label("JK", "su02", "su")),
    ("savee", "DC/a01.wav", Label("DC", "a01", "a")),  # speaker from the folder
    ("savee", "AudioData/je/sa10.wav", Label("JE", "sa10", "sa")),
    ("savee", "DC/KL_n05.wav", Label("KL", "n05", "n")),  # the name wins over the folder
    # EmoDB
    ("emodb", "03a01Fa.wav", Label("03", "a01", "F")),
    ("emodb", "03a01fa.wav", Label("03", "a01", "F")),  # lower case
    ("emodb", "16B10WB.WAV", Label("16", "b10", "W")),
    ("emodb", "08a02Lc.wav", Label("08", "a02", "L")),  # boredom: a label with no standard class
]


@pytest.mark.parametrize(("recipe", "name", "expected"), PARSED, ids=[f"{r}:{n}" for r, n, _ in PARSED])
def test_parse(recipe, name, expected):
    assert FILE_NAME_MODULES[recipe].parse(Path("corpus") / name) == expected


UNPARSED = [
    ("tess", "hello.wav", "does not match"),
    ("tess", "OAF_angry.wav", "does not match"),
    ("tess", "OAF_back_angry (1).wav", "does not match"),
    ("tess", "123_back_angry.wav", "does not match"),
    ("tess", "OAF_back_bored.wav", "unknown emotion 'bored'"),
    ("tess", "OAF_back_surprise.wav", "unknown emotion 'surprise'"),  # TESS says ps
    ("ravdess", "03-01-06-01-02-01.wav", "does not match"),
    ("ravdess", "04-01-06-01-02-01-13.wav", "does not match"),
    ("ravdess", "03-03-06-01-02-01-13.wav", "does not match"),
    ("ravdess", "03-01-09-01-02-01-13.wav", "unknown emotion code '09'"),
    ("ravdess", "03-02-07-01-01-01-01.wav", "'disgust' does not exist in RAVDESS song"),
    ("ravdess", "03-02-08-01-01-01-01.wav", "'surprised' does not exist in RAVDESS song"),
    ("emovo", "gio_f1_b1.wav", "does not match"),
    ("emovo", "gio-x1-b1.wav", "does not match"),
    ("emovo", "abc-f1-b1.wav", "unknown emotion 'abc'"),
    ("cremad", "1001_DFA_ANG_ZZ.wav", "does not match"),
    ("cremad", "101_DFA_ANG_XX.wav", "does not match"),
    ("cremad", "1001_DFA_SUR_XX.wav", "unknown emotion 'SUR'"),
    ("savee", "DC_x01.wav", "does not match"),
    ("savee", "DC_a1.wav", "does not match"),
    ("savee", "DC_s01.wav", "does not match"),
    ("savee", "savee/a01.wav", "no speaker"),
    ("emodb", "3a01Fa.wav", "does not match"),
    ("emodb", "03c01Fa.wav", "does not match"),
    ("emodb", "03a01Xa.wav", "unknown emotion 'X'"),
]


@pytest.mark.parametrize(("recipe", "name", "reason"), UNPARSED, ids=[f"{r}:{n}" for r, n, _ in UNPARSED])
def test_parse_rejects(recipe, name, reason):
    with pytest.raises(LabelError) as info:
        FILE_NAME_MODULES[recipe].parse(Path(name))
    assert reason in str(info.value)


def test_label_error_is_a_value_error():
    assert issubclass(LabelError, ValueError)


# One corpus per recipe: (path in the source, sr, channels, soundfile format) -> expected label, and files that are not
# labelled -> reason. Rates from 8 to 96 kHz, stereo, odd suffixes and case, nested folders.
CORPORA = {
    "tess": (
        {
            "OAF_Pleasant_surprise/OAF_back_ps.wav": (24414, 1, None, Label("OAF", "back", "ps")),
            "OAF_neutral/OA_bite_neutral.WAV": (8000, 1, "WAV", Label("OAF", "bite", "neutral")),
            "YAF_pleasant_surprised/YAF_x_pleasant_surprise.FLAC": (96000, 1, "FLAC", Label("YAF", "x", "ps")),
            "deep/er/YAF_dog_SAD.aiff": (44100, 2, None, Label("YAF", "dog", "sad")),
        },
        {"OAF_angry/notes.txt": "not an audio file extension (.txt)", "OAF_angry/OAF_back_angry (1).wav": "does not match"},
    ),
    "ravdess": (
        {
            "Actor_13/03-01-06-01-02-01-13.wav": (48000, 1, None, Label("13", "speech-02", "fearful")),
            "Actor_13/03-01-02-01-01-01-13.wav": (16000, 2, None, Label("13", "speech-01", "calm")),
            "song/Actor_05/03-02-01-01-01-02-05.WAV": (8000, 1, "WAV", Label("05", "song-01", "neutral")),
        },
        {
            "song/Actor_05/03-02-07-01-01-01-05.wav": "'disgust' does not exist in RAVDESS song",
            "song/Actor_05/03-02-08-01-01-01-05.wav": "'surprised' does not exist in RAVDESS song",
            "Actor_13/readme.md": "not an audio file extension (.md)",
        },
    ),
    "emovo": (
        {
            "f1/gio-f1-b1.wav": (48000, 2, None, Label("f1", "b1", "gio")),
            "M3/NEU-M3-N5.WAV": (8000, 1, "WAV", Label("m3", "n5", "neu")),
        },
        {"f1/gio-f1.wav": "does not match", "documents/LICENSE": "not an audio file extension (none)"},
    ),
    "cremad": (
        {
            "AudioWAV/1001_DFA_ANG_XX.wav": (16000, 1, None, Label("1001", "DFA", "ANG")),
            "AudioWAV/1091_ieo_hap_hi.flac": (44100, 1, None, Label("1091", "IEO", "HAP")),
        },
        {"AudioWAV/1001_DFA_SUR_XX.wav": "unknown emotion 'SUR'"},
    ),
    "savee": (
        {
            "AudioData/DC/a01.wav": (44100, 1, None, Label("DC", "a01", "a")),
            "AudioData/JE/sa03.wav": (44100, 2, None, Label("JE", "sa03", "sa")),
            "KL_su15.wav": (96000, 1, None, Label("KL", "su15", "su")),
            "flat/DC_a01.aiff": (8000, 1, None, Label("DC", "a01", "a")),
        },
        {"AudioData/a01.wav": "no speaker", "flat/DC_q01.wav": "does not match"},
    ),
    "emodb": (
        {
            "wav/03a01Fa.wav": (16000, 1, None, Label("03", "a01", "F")),
            "wav/16b10wb.wav": (16000, 2, None, Label("16", "b10", "W")),
            "wav/08a02Lc.flac": (8000, 1, None, Label("08", "a02", "L")),
        },
        {"wav/03a01Xa.wav": "unknown emotion 'X'", "wav/.DS_Store": "not an audio file extension (none)"},
    ),
}


def _write_corpus(root: Path, recipe: str, write_tone) -> None:
    good, bad = CORPORA[recipe]
    for seed, (relative, (sr, channels, fmt, _)) in enumerate(good.items()):
        _clip(write_tone, root / relative, sr=sr, channels=channels, seed=seed, fmt=fmt)
    for seed, relative in enumerate(bad, start=100):
        path = root / relative
        if path.suffix.lower() in (".wav", ".flac"):
            _clip(write_tone, path, seed=seed)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("not audio\n")


@pytest.mark.parametrize("recipe", sorted(CORPORA))
def test_entries_label_every_file_or_say_why(recipe, tmp_path, write_tone):
    root = tmp_path / recipe
    _write_corpus(root, recipe, write_tone)
    good, bad = CORPORA[recipe]
    entries = list(recipes()[recipe].entries(root))
    assert all(isinstance(e, Entry) for e in entries)
    assert [e.path for e in entries] == sorted(e.path for e in entries)  # deterministic order
    by_name = {e.path.relative_to(root).as_posix(): e for e in entries}
    assert set(by_name) == set(good) | set(bad)  # every file, none dropped
    for relative, (*_, label) in good.items():
        entry = by_name[relative]
        assert (entry.label, entry.reason, entry.counts_as_rejected, entry.corpus) == (label, "", True, "")
    pattern = recipes()[recipe].pattern
    for relative, reason in bad.items():
        entry = by_name[relative]
        assert entry.label is None
        assert reason in entry.reason, entry.reason
        assert entry.counts_as_rejected
        if "extension" not in reason:
            assert entry.reason.endswith(f"; expected {pattern}")  # the rejected list says what a name should be


@pytest.mark.parametrize("recipe", sorted(CORPORA))
def test_fetch_each_recipe_end_to_end(recipe, tmp_path, write_tone):
    root = tmp_path / "source"
    _write_corpus(root, recipe, write_tone)
    good, bad = CORPORA[recipe]
    out = tmp_path / "raw" / recipe
    result = _fetch(recipe, recipe, root, out)
    manifest = _manifest(out)
    assert list(manifest.reset_index().columns) == ["source", *[c for c in MANIFEST_COLUMNS if c != "source"]]
    assert len(result.manifest) == len(manifest) == len(good)
    assert sorted(manifest.index) == sorted(good)
    for relative, (sr, channels, fmt, label) in good.items():
        row = manifest.loc[relative]
        assert row["file"] == f"audio/{relative}"
        assert row["corpus"] == recipe
        assert row["speaker"] == f"{recipe}/{label.speaker}"
        assert (row["text"], row["label"]) == (label.text, label.emotion)
        assert (int(row["sample_rate"]), int(row["channels"])) == (sr, channels)
        assert int(row["frames"]) == round(sr * 0.2)
        assert float(row["duration"]) == pytest.approx(0.2, abs=1e-4)
        if fmt:
            assert row["format"] == fmt
        assert (out / row["file"]).read_bytes() == (root / relative).read_bytes()
    rejected = _rejected(out)
    assert list(rejected.reset_index().columns) == REJECTED_COLUMNS
    assert sorted(rejected.index) == sorted(bad)
    for relative, reason in bad.items():
        row = rejected.loc[relative]
        assert reason in row["reason"]
        assert (row["corpus"], row["recipe"], bool(row["counts_as_rejected"])) == (recipe, recipe, True)
        assert not (out / "audio" / relative).exists()
    with pytest.raises(FetchError, match=f"{recipe}: {len(bad)} of {len(good) + len(bad)} files rejected"):
        check_rejected(result, 0.0, recipe)
    check_rejected(result, len(bad) / (len(good) + len(bad)), recipe)


def test_file_name_recipe_needs_a_directory(tmp_path, write_tone):
    clip = _clip(write_tone, tmp_path / "OAF_back_angry.wav")
    with pytest.raises(LabelError, match="reads a directory"):
        list(tess.RECIPE.entries(clip))
    labels = tmp_path / "labels.csv"
    labels.write_text("file,emotion,speaker\nOAF_back_angry.wav,angry,OAF\n")
    with pytest.raises(FetchError, match="recipe 'tess' reads a directory"):
        _fetch("tess", "tess", labels, tmp_path / "raw")


@pytest.mark.parametrize("suffix", [".wav", ".WAV", ".Flac", ".aiff", ".AIF", ".ogg"])
def test_audio_suffixes_in_any_case(suffix, tmp_path, write_tone):
    fmt = {".wav": "WAV", ".flac": "FLAC", ".aiff": "AIFF", ".aif": "AIFF", ".ogg": "OGG"}[suffix.lower()]
    path = tmp_path / "c" / f"OAF_back_angry{suffix}"
    write_tone(path, sr=16000, seconds=0.2, format=fmt, subtype="VORBIS" if fmt == "OGG" else "PCM_16")
    out = tmp_path / "raw"
    result = _fetch("tess", "tess", tmp_path / "c", out)
    assert result.rejected.empty
    assert result.manifest["label"].tolist() == ["angry"]
    assert result.manifest["format"].tolist() == [fmt]


@pytest.mark.parametrize("name", ["OAF_back_angry.mp4", "OAF_back_angry.txt", "OAF_back_angry", "OAF_back_angry.wav.bak"])
def test_non_audio_suffix_rejected_even_with_a_good_name(name, tmp_path, write_tone):
    _clip(write_tone, tmp_path / "c" / "OAF_back_sad.wav")
    (tmp_path / "c" / name).write_bytes(b"whatever")
    result = _fetch("tess", "tess", tmp_path / "c", tmp_path / "raw")
    assert result.manifest["source"].tolist() == ["OAF_back_sad.wav"]
    [row] = result.rejected.to_dict("records")
    assert row["file"] == name
    assert row["reason"].startswith("not an audio file extension (")
    assert row["counts_as_rejected"]


# ---------------------------------------------------------------------------------------------------------------
# The csv recipe


def _write_csv(path: Path, rows: list[dict] | list[list], header: list[str] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        if header is not None:
            writer.writerow(header)
        for row in rows:
            writer.writerow(row)
    return path


@pytest.fixture
def csv_corpus(tmp_path, write_tone) -> Path:
    """A folder with audio in sub-folders and a labels.csv (the source may be the CSV or the folder)."""
    root = tmp_path / "mine"
    _clip(write_tone, root / "a" / "one.wav", sr=8000, seed=1)
    _clip(write_tone, root / "a" / "two.flac", sr=44100, channels=2, seed=2)
    _clip(write_tone, root / "b" / "three.WAV", sr=96000, seed=3, fmt="WAV")
    _clip(write_tone, root / "four.aiff", sr=16000, seed=4)
    _write_csv(
        root / "labels.csv",
        [
            ["a/one.wav", "angry", "s1", "hello", ""],
            ["a/two.flac", "fearful", "s2", "", "other"],
            ["b/three.WAV", "calm", "s1", "t3", ""],
            ["four.aiff", "joy", "s3", "t4", "third"],
        ],
        header=["file", "emotion", "speaker", "text", "corpus"],
    )
    return root


@pytest.mark.parametrize("as_file", [True, False], ids=["csv-file", "folder"])
def test_csv_recipe_end_to_end(csv_corpus, tmp_path, as_file):
    source = csv_corpus / "labels.csv" if as_file else csv_corpus
    out = tmp_path / "raw" / "mine"
    result = _fetch("mine", "csv", source, out)
    assert result.rejected.empty
    manifest = _manifest(out)
    assert manifest.index.tolist() == ["a/one.wav", "a/two.flac", "b/three.WAV", "four.aiff"]  # in CSV order
    expected = {
        "a/one.wav": ("mine", "mine/s1", "hello", "angry", 8000, 1),
        "a/two.flac": ("other", "other/s2", "two", "fearful", 44100, 2),  # empty text: the file's stem
        "b/three.WAV": ("mine", "mine/s1", "t3", "calm", 96000, 1),
        "four.aiff": ("third", "third/s3", "t4", "joy", 16000, 1),
    }
    for relative, (corpus, speaker, text, label, sr, channels) in expected.items():
        row = manifest.loc[relative]
        assert (row["corpus"], row["speaker"], row["text"], row["label"]) == (corpus, speaker, text, label)
        assert (int(row["sample_rate"]), int(row["channels"])) == (sr, channels)
        assert row["file"] == f"audio/{relative}"
        assert (out / row["file"]).read_bytes() == (csv_corpus / relative).read_bytes()
    assert not (out / "audio" / "labels.csv").exists()


def test_csv_with_only_the_required_columns(tmp_path, write_tone):
    root = tmp_path / "src"
    _clip(write_tone, root / "x" / "clip.wav")
    # a BOM, spaces around names and values, columns in another order
    (root / "t.csv").write_text("\ufeffspeaker , emotion,file\n spk , sad , x/clip.wav \n", encoding="utf-8")
    result = _fetch("own", "csv", root, tmp_path / "raw")
    assert result.rejected.empty
    [row] = result.manifest.to_dict("records")
    assert (row["corpus"], row["speaker"], row["text"], row["label"], row["source"]) == ("own", "own/spk", "clip", "sad", "x/clip.wav")


@pytest.mark.parametrize(
    ("header", "missing"),
    [
        (["file", "label", "speaker"], "emotion"),
        (["path", "emotion", "speaker"], "file"),
        (["file", "emotion"], "speaker"),
        (["File", "Emotion", "Speaker"], "file, emotion, speaker"),  # names are case sensitive
        (["name"], "file, emotion, speaker"),
    ],
)
def test_csv_missing_columns(tmp_path, write_tone, header, missing):
    _clip(write_tone, tmp_path / "src" / "a.wav")
    labels = _write_csv(tmp_path / "src" / "labels.csv", [["a.wav"] + ["x"] * (len(header) - 1)], header=header)
    with pytest.raises(FetchError) as info:
        _fetch("own", "csv", labels, tmp_path / "raw")
    message = str(info.value)
    assert str(labels) in message
    assert f"missing column(s) {missing}" in message
    assert not (tmp_path / "raw" / "manifest.csv").exists()


@pytest.mark.parametrize("content", ["file,emotion,speaker\n", "file,emotion,speaker,text,corpus\r\n", ""], ids=["header", "crlf", "empty"])
def test_csv_without_rows(tmp_path, write_tone, content):
    _clip(write_tone, tmp_path / "src" / "a.wav")
    (tmp_path / "src" / "labels.csv").write_text(content)
    with pytest.raises(FetchError) as info:
        _fetch("own", "csv", tmp_path / "src", tmp_path / "raw")
    assert str(tmp_path / "src" / "labels.csv") in str(info.value)
    assert ("no rows" if content else "missing column(s) file, emotion, speaker") in str(info.value)


def test_csv_that_is_not_text(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "labels.csv").write_bytes(b"file,emotion,speaker\n\xff\xfe\x00bad,\x81,\x82\n")
    with pytest.raises(FetchError, match="not a readable CSV"):
        _fetch("own", "csv", tmp_path / "src", tmp_path / "raw")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"file,emotion,speaker\na.wav,happy,s1\n\nb.wav,sad,\xe9\n", "line 4: not a readable CSV (byte 0xe9 is not UTF-8"),
        (b'file,emotion,speaker\na.wav,happy,s1\n"b.wav,sad,s1\nc.wav,sad,s1\n', "line 3: not a readable CSV (unexpected end of data)"),
    ],
    ids=["not-utf8", "open-quote"],
)
def test_csv_that_cannot_be_read_is_named_with_its_line(tmp_path, content, message):
    (tmp_path / "src").mkdir()
    table = tmp_path / "src" / "labels.csv"
    table.write_bytes(content)
    with pytest.raises(FetchError) as info:
        _fetch("own", "csv", tmp_path / "src", tmp_path / "raw")
    assert str(info.value).startswith(f"{table} {message}")


def test_csv_rows_are_named_by_the_line_they_start_on(tmp_path, write_tone):
    """Blank lines and a cell over two lines shifted the line numbers (rows were counted, not lines)."""
    root = tmp_path / "src"
    _clip(write_tone, root / "ok.wav")
    (root / "labels.csv").write_text('file,emotion,speaker\n\nmissing.wav,sad,s1\n"two\nlines.wav",sad,s1\n\nok.wav,,s1\n')
    result = _fetch("own", "csv", root, tmp_path / "raw")
    assert result.rejected["reason"].tolist() == [
        "labels.csv line 3: no such file", "labels.csv line 4: no such file", "labels.csv line 7: empty emotion",
    ]


def test_csv_row_with_an_impossible_path_is_rejected(tmp_path, write_tone):
    """A NUL character (ValueError) or a name too long for the file system (OSError) in a file cell stopped fetch."""
    root = tmp_path / "src"
    _clip(write_tone, root / "ok.wav")
    long_name = "x" * 300 + ".wav"
    (root / "labels.csv").write_text(f"file,emotion,speaker\nok.wav,sad,s1\na\0b.wav,sad,s1\n{long_name},sad,s1\n")
    result = _fetch("own", "csv", root, tmp_path / "raw")
    assert result.manifest["source"].tolist() == ["ok.wav"]
    assert result.rejected["reason"].tolist() == [
        "labels.csv line 3: path 'a\\x00b.wav' holds a NUL character", "labels.csv line 4: unusable path (File name too long)",
    ]
    assert result.rejected["file"].tolist() == ["<labels.csv line 3>", long_name]


def test_csv_file_whose_first_row_is_rejected_takes_its_next_row(tmp_path, write_tone):
    """A row rejected for an empty cell made the next, valid row of its file 'listed again': the clip was lost."""
    root = tmp_path / "src"
    _clip(write_tone, root / "a.wav")
    _write_csv(root / "labels.csv", [["a.wav", "", "s1"], ["a.wav", "happy", "s1"], ["a.wav", "sad", "s1"]], header=["file", "emotion", "speaker"])
    result = _fetch("own", "csv", root, tmp_path / "raw")
    assert result.manifest[["source", "label"]].values.tolist() == [["a.wav", "happy"]]
    assert result.rejected["reason"].tolist() == [
        "labels.csv line 2: empty emotion", "labels.csv line 4: file listed again with another emotion ('sad', first 'happy')",
    ]


def test_folder_with_no_or_two_csvs(tmp_path, write_tone):
    root = tmp_path / "src"
    _clip(write_tone, root / "a.wav")
    (root / "nested").mkdir()
    _write_csv(root / "nested" / "deep.csv", [["../a.wav", "sad", "s"]], header=["file", "emotion", "speaker"])
    with pytest.raises(FetchError, match="exactly one .csv at the top of the folder, found no CSV"):
        _fetch("own", "csv", root, tmp_path / "raw")
    _write_csv(root / "one.CSV", [["a.wav", "sad", "s"]], header=["file", "emotion", "speaker"])
    assert _fetch("own", "csv", root, tmp_path / "raw").manifest["source"].tolist() == ["a.wav"]
    _write_csv(root / "two.csv", [["a.wav", "happy", "s"]], header=["file", "emotion", "speaker"])
    with pytest.raises(FetchError) as info:
        _fetch("own", "csv", root, tmp_path / "raw")
    assert "found 2 CSVs (one.CSV, two.csv)" in str(info.value)
    # naming one of them picks it
    assert _fetch("own", "csv", root / "two.csv", tmp_path / "raw").manifest["label"].tolist() == ["happy"]


def test_csv_rows_that_cannot_be_used(tmp_path, write_tone):
    root = tmp_path / "src"
    outside = _clip(write_tone, tmp_path / "outside.wav", seed=9)
    for seed, name in enumerate(["ok.wav", "dup_same.wav", "dup_other.wav", "no_emotion.wav", "no_speaker.wav", "unlisted.flac"]):
        _clip(write_tone, root / name, seed=seed)
    _clip(write_tone, root / "sub" / "also_unlisted.wav", seed=20)
    (root / "notes.txt").write_text("not audio, not listed: ignored\n")
    rows = [
        ["ok.wav", "happy", "s1"],              # line 2
        ["missing.wav", "sad", "s1"],           # line 3
        ["../outside.wav", "sad", "s1"],        # line 4
        [str(outside), "sad", "s1"],            # line 5
        ["dup_same.wav", "sad", "s1"],          # line 6
        ["./dup_same.wav", "sad", "s2"],        # line 7: the same file, same emotion
        ["dup_other.wav", "sad", "s1"],         # line 8
        ["dup_other.wav", "angry", "s1"],       # line 9: the same file, another emotion
        ["no_emotion.wav", "", "s1"],           # line 10
        ["no_speaker.wav", "sad", " "],         # line 11
        ["", "sad", "s1"],                      # line 12
        ["sub/../ok.wav", "happy", "s1"],       # line 13: ok.wav again, by another path
    ]
    _write_csv(root / "labels.csv", rows, header=["file", "emotion", "speaker"])
    out = tmp_path / "raw"
    result = _fetch("own", "csv", root, out)
    assert sorted(result.manifest["source"]) == ["dup_other.wav", "dup_same.wav", "ok.wav"]
    # the first row of a file listed twice wins
    assert result.manifest.set_index("source").loc["dup_other.wav", "label"] == "sad"
    assert result.manifest.set_index("source").loc["dup_same.wav", "speaker"] == "own/s1"
    rejected = result.rejected
    reasons = dict(zip(rejected["reason"].str.split(":").str[0], zip(rejected["reason"], rejected["counts_as_rejected"])))
    expected = {
        "labels.csv line 3": ("no such file", True),
        "labels.csv line 4": ("path '../outside.wav' leaves the CSV's folder", True),
        "labels.csv line 5": (f"path {str(outside)!r} leaves the CSV's folder", True),
        "labels.csv line 7": ("file listed again", False),
        "labels.csv line 9": ("file listed again with another emotion ('angry', first 'sad')", True),
        "labels.csv line 10": ("empty emotion", True),
        "labels.csv line 11": ("empty speaker", True),
        "labels.csv line 12": ("empty file cell", True),
        "labels.csv line 13": ("file listed again", False),
    }
    for where, (reason, counts) in expected.items():
        assert where in reasons, (where, rejected.to_dict("records"))
        assert reasons[where][0] == f"{where}: {reason}"
        assert bool(reasons[where][1]) is counts, where
    unlisted = rejected[rejected["reason"] == "audio not listed in labels.csv"]
    assert sorted(unlisted["file"]) == ["sub/also_unlisted.wav", "unlisted.flac"]
    assert not unlisted["counts_as_rejected"].any()
    assert len(rejected) == len(expected) + 2  # notes.txt is not audio and not listed: not reported
    assert all(rejected["corpus"] == "own") and all(rejected["recipe"] == "csv")
    # nothing from outside the folder was copied
    copied = sorted(p.relative_to(out / "audio").as_posix() for p in (out / "audio").rglob("*") if p.is_file())
    assert copied == ["dup_other.wav", "dup_same.wav", "ok.wav"]
    # counted: 7 of 10 (3 kept + 7 counted rejections); duplicates with the same label and unlisted audio are not
    check_rejected(result, 0.7, "own")
    with pytest.raises(FetchError, match="7 of 10 files rejected"):
        check_rejected(result, 0.69, "own")


def test_csv_row_naming_a_file_that_is_not_audio(tmp_path, write_tone):
    root = tmp_path / "src"
    _clip(write_tone, root / "a.wav")
    (root / "b.wav").write_text("plain text")
    (root / "c.txt").write_text("plain text")
    _write_csv(root / "l.csv", [["a.wav", "sad", "s"], ["b.wav", "sad", "s"], ["c.txt", "sad", "s"]], header=["file", "emotion", "speaker"])
    result = _fetch("own", "csv", root, tmp_path / "raw")
    assert result.manifest["source"].tolist() == ["a.wav"]
    rejected = result.rejected.set_index("file")
    assert "cannot decode" in rejected.loc["b.wav", "reason"]
    assert "cannot decode" in rejected.loc["c.txt", "reason"]
    assert rejected["counts_as_rejected"].all()


def test_csv_source_with_sha256_is_an_error(csv_corpus, tmp_path):
    with pytest.raises(FetchError, match="sha256 applies to a zip or URL"):
        _fetch("mine", "csv", csv_corpus / "labels.csv", tmp_path / "raw", sha256="0" * 64)


def test_csv_unknown_labels_are_left_out_by_combine(tmp_path, write_tone):
    root = tmp_path / "src"
    for seed, name in enumerate(["a.wav", "b.wav", "c.wav", "d.wav", "e.wav"]):
        _clip(write_tone, root / name, seed=seed)
    labels = ["anger", "bored", "Sad", "bored", "surprised"]  # names are case sensitive: "Sad" has no class
    _write_csv(root / "l.csv", [[f"{n}.wav", e, "s"] for n, e in zip("abcde", labels)], header=["file", "emotion", "speaker"])
    raw = tmp_path / "raw"
    result = _fetch("own", "csv", root, raw / "own")
    assert result.manifest["label"].tolist() == labels  # fetch keeps the corpus's own names
    data = DataParams(sources={"own": SourceParams(recipe="csv", source=str(root))}, emotions=list(CLASSES), max_rejected_fraction=0)
    combined = combine(raw, data)
    assert combined.manifest.set_index("source")["emotion"].to_dict() == {"a.wav": "angry", "e.wav": "surprise"}
    assert combined.summary["left_out"] == {"own": {"Sad": 1, "bored": 2}}
    left = combined.rejected.set_index("file")
    assert sorted(left.index) == ["b.wav", "c.wav", "d.wav"]
    assert not left["counts_as_rejected"].any()
    assert left.loc["b.wav", "reason"] == "emotion 'bored' has no class in data.emotions (left out)"
    # a map gives them a class
    data = DataParams(
        sources={"own": SourceParams(recipe="csv", source=str(root))},
        maps={"own": {"bored": "neutral", "Sad": "sad", "anger": None}}, emotions=list(CLASSES), max_rejected_fraction=0,
    )
    combined = combine(raw, data)
    assert combined.manifest.set_index("source")["emotion"].to_dict() == {
        "b.wav": "neutral", "c.wav": "sad", "d.wav": "neutral", "e.wav": "surprise",
    }
    assert combined.summary["left_out"] == {"own": {"anger": 1}}


def test_csv_in_a_zip(csv_corpus, tmp_path):
    import hashlib
    import zipfile

    archive = tmp_path / "mine.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for path in csv_corpus.rglob("*"):
            handle.write(path, path.relative_to(csv_corpus).as_posix())
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    result = _fetch("mine", "csv", archive, tmp_path / "raw", sha256=digest)
    assert result.rejected.empty
    assert result.manifest["source"].tolist() == ["a/one.wav", "a/two.flac", "b/three.WAV", "four.aiff"]
