"""Combining the fetched corpora onto one label set: mapped, left out (and counted), repeated audio kept once."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pandas as pd
import pytest

from ser.fetch import MANIFEST_COLUMNS, REJECTED_COLUMNS, fetch
from ser.labels import LabelsError, combine
from ser.params import DataParams, SourceParams

CLASSES = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]

# (corpus, recipe) -> {file in the source: (corpus's label, standard emotion with the recipe's own mapping)}
FILES = {
    ("tess", "tess"): {
        "OAF_back_angry.wav": ("angry", "angry"),
        "OAF_back_ps.wav": ("ps", "surprise"),
        "YAF_dog_sad.wav": ("sad", "sad"),
    },
    ("ravdess", "ravdess"): {
        "Actor_01/03-01-02-01-01-01-01.wav": ("calm", None),
        "Actor_02/03-01-02-02-01-01-02.wav": ("calm", None),
        "Actor_01/03-01-08-01-01-01-01.wav": ("surprised", "surprise"),
        "Actor_01/03-01-06-01-01-01-01.wav": ("fearful", "fear"),
        "Actor_02/03-01-01-01-01-01-02.wav": ("neutral", "neutral"),
    },
    ("emovo", "emovo"): {
        "gio-f1-b1.wav": ("gio", "happy"),
        "dis-m1-b2.wav": ("dis", "disgust"),
    },
}
COPY_IN_EMOVO = "rab-m1-b1.wav"
"""The same bytes as tess's OAF_back_angry.wav: one clip in two corpora."""
CALM_COPY_IN_EMOVO = "neu-m2-b1.wav"
"""The same bytes as a RAVDESS calm clip (left out there): kept from EMOVO."""


@pytest.fixture(scope="module")
def raw(tmp_path_factory, write_tone) -> Path:
    """data/raw with tess, ravdess and emovo fetched (plus a non-audio file in tess, rejected by fetch)."""
    base = tmp_path_factory.mktemp("labels")
    sources = base / "sources"
    seed = 0
    for (corpus, _), files in FILES.items():
        for name in files:
            seed += 1
            write_tone(sources / corpus / name, sr=8000, seconds=0.2, seed=seed, f0=100.0 + 10 * seed)
    (sources / "tess" / "notes.txt").write_text("not audio")
    shutil.copyfile(sources / "tess" / "OAF_back_angry.wav", sources / "emovo" / COPY_IN_EMOVO)
    shutil.copyfile(sources / "ravdess" / "Actor_01/03-01-02-01-01-01-01.wav", sources / "emovo" / CALM_COPY_IN_EMOVO)
    raw_dir = base / "raw"
    for corpus, recipe in FILES:
        fetch(corpus, SourceParams(recipe=recipe, source=str(sources / corpus)), raw_dir / corpus)
    return raw_dir


def _data(order=("tess", "ravdess", "emovo"), emotions=CLASSES, maps=None) -> DataParams:
    maps = maps or {}
    return DataParams(
        sources={name: SourceParams(recipe=name, source=f"unused/{name}") for name in order},
        emotions=list(emotions), maps=maps, max_rejected_fraction=0.01,
    )


def _emotions(combined) -> dict[str, str]:
    return dict(zip(combined.manifest["file"], combined.manifest["emotion"]))


def _file(corpus: str, name: str) -> str:
    return f"{corpus}/audio/{name}"


def test_combine_maps_every_corpus_onto_the_classes(raw):
    combined = combine(raw, _data())
    manifest = combined.manifest
    assert list(manifest.columns) == [*MANIFEST_COLUMNS, "emotion"]
    expected = {
        _file(corpus, name): emotion
        for (corpus, _), files in FILES.items() for name, (_, emotion) in files.items() if emotion
    }
    expected[_file("emovo", CALM_COPY_IN_EMOVO)] = "neutral"
    assert _emotions(combined) == expected
    # every file is relative to data/raw and exists there
    for file in manifest["file"]:
        assert (raw / file).is_file(), file
    assert set(manifest["emotion"]) <= set(CLASSES)
    # the corpus's own name stays in `label`
    by_file = manifest.set_index("file")
    assert by_file.loc[_file("tess", "OAF_back_ps.wav"), "label"] == "ps"
    assert by_file.loc[_file("ravdess", "Actor_01/03-01-06-01-01-01-01.wav"), "label"] == "fearful"
    assert by_file.loc[_file("emovo", "gio-f1-b1.wav"), "label"] == "gio"
    # speakers are qualified by their corpus; texts come from the recipe
    assert by_file.loc[_file("ravdess", "Actor_02/03-01-01-01-01-01-02.wav"), "speaker"] == "ravdess/02"
    assert by_file.loc[_file("emovo", "gio-f1-b1.wav"), ["speaker", "text"]].tolist() == ["emovo/f1", "b1"]
    # corpora in data.sources order
    assert manifest["corpus"].drop_duplicates().tolist() == ["tess", "ravdess", "emovo"]


def test_summary_counts(raw):
    summary = combine(raw, _data()).summary
    assert summary["clips"] == 3 + 3 + 3
    assert summary["speakers"] == len({"tess/OAF", "tess/YAF", "ravdess/01", "ravdess/02", "emovo/f1", "emovo/m1", "emovo/m2"})
    assert summary["kept"] == {
        "tess": {"angry": 1, "surprise": 1, "sad": 1},
        "ravdess": {"surprise": 1, "fear": 1, "neutral": 1},
        "emovo": {"happy": 1, "disgust": 1, "neutral": 1},
    }
    assert summary["left_out"] == {"ravdess": {"calm": 2}}
    assert summary["repeated_audio"] == 1
    assert summary["rejected"] == {"tess": 1}  # notes.txt; left-out and repeated clips do not count
    import json

    json.dumps(summary)  # the labels stage writes it as JSON


def test_left_out_and_repeated_clips_are_listed(raw):
    rejected = combine(raw, _data()).rejected
    assert list(rejected.columns) == REJECTED_COLUMNS
    rows = {(r["corpus"], r["file"]): r for r in rejected.to_dict("records")}
    assert set(rows) == {
        ("tess", "notes.txt"),
        ("ravdess", "Actor_01/03-01-02-01-01-01-01.wav"),
        ("ravdess", "Actor_02/03-01-02-02-01-01-02.wav"),
        ("emovo", COPY_IN_EMOVO),
    }
    notes = rows[("tess", "notes.txt")]
    assert (notes["recipe"], bool(notes["counts_as_rejected"])) == ("tess", True)
    assert notes["reason"] == "not an audio file extension (.txt)"
    for name in ("Actor_01/03-01-02-01-01-01-01.wav", "Actor_02/03-01-02-02-01-01-02.wav"):
        row = rows[("ravdess", name)]
        assert row["reason"] == "emotion 'calm' has no class in data.emotions (left out)"
        assert (row["recipe"], bool(row["counts_as_rejected"])) == ("ravdess", False)
    copy = rows[("emovo", COPY_IN_EMOVO)]
    assert copy["reason"] == f"identical copy of {_file('tess', 'OAF_back_angry.wav')}"
    assert (copy["recipe"], bool(copy["counts_as_rejected"])) == ("emovo", False)


def test_nothing_is_dropped_silently(raw):
    combined = combine(raw, _data(maps={"ravdess": {"fearful": None}}, emotions=["angry", "sad", "neutral", "happy"]))
    fetched = sum(len(pd.read_csv(raw / c / "manifest.csv")) for c, _ in FILES)
    from_combine = combined.rejected[~combined.rejected["reason"].str.startswith("not an audio")]
    assert len(combined.manifest) + len(from_combine) == fetched
    assert sum(n for labels in combined.summary["left_out"].values() for n in labels.values()) + 1 == len(from_combine)


def test_source_map_overrides_the_recipe(raw):
    combined = combine(raw, _data(maps={"ravdess": {"calm": "neutral", "surprised": None}}))
    emotions = _emotions(combined)
    assert emotions[_file("ravdess", "Actor_01/03-01-02-01-01-01-01.wav")] == "neutral"
    assert emotions[_file("ravdess", "Actor_02/03-01-02-02-01-01-02.wav")] == "neutral"
    assert _file("ravdess", "Actor_01/03-01-08-01-01-01-01.wav") not in emotions
    assert emotions[_file("tess", "OAF_back_ps.wav")] == "surprise"  # another corpus's map is its own
    assert combined.summary["left_out"] == {"ravdess": {"surprised": 1}}
    assert combined.summary["kept"]["ravdess"] == {"neutral": 3, "fear": 1}
    # calm is now kept in RAVDESS, listed first: EMOVO's copy of it is the repeat
    assert _file("emovo", CALM_COPY_IN_EMOVO) not in emotions
    assert combined.summary["repeated_audio"] == 2
    row = combined.rejected.set_index("file").loc["Actor_01/03-01-08-01-01-01-01.wav"]
    assert row["reason"] == "emotion 'surprised' has no class in data.emotions (left out)"
    assert not row["counts_as_rejected"]


def test_map_onto_another_class_and_unused_keys(raw):
    combined = combine(raw, _data(maps={"tess": {"angry": "disgust", "bored": "neutral"}, "emovo": {"gio": "surprise"}}))
    emotions = _emotions(combined)
    assert emotions[_file("tess", "OAF_back_angry.wav")] == "disgust"
    assert emotions[_file("emovo", "gio-f1-b1.wav")] == "surprise"
    assert emotions[_file("tess", "YAF_dog_sad.wav")] == "sad"


def test_a_smaller_label_set_leaves_more_out(raw):
    combined = combine(raw, _data(emotions=["neutral", "sad", "angry", "happy"]))
    assert set(combined.manifest["emotion"]) == {"neutral", "sad", "angry", "happy"}
    assert combined.summary["left_out"] == {
        "tess": {"ps": 1},
        "ravdess": {"calm": 2, "fearful": 1, "surprised": 1},
        "emovo": {"dis": 1},
    }
    left = combined.rejected[~combined.rejected["counts_as_rejected"].astype(bool)]
    assert set(left["corpus"]) == {"tess", "ravdess", "emovo"}


def test_same_audio_kept_once_from_the_first_listed_corpus(raw):
    tess_first = _emotions(combine(raw, _data(order=("tess", "ravdess", "emovo"))))
    assert _file("tess", "OAF_back_angry.wav") in tess_first
    assert _file("emovo", COPY_IN_EMOVO) not in tess_first
    combined = combine(raw, _data(order=("emovo", "ravdess", "tess")))
    emovo_first = _emotions(combined)
    assert emovo_first[_file("emovo", COPY_IN_EMOVO)] == "angry"
    assert _file("tess", "OAF_back_angry.wav") not in emovo_first
    row = combined.rejected.set_index(["corpus", "file"]).loc[("tess", "OAF_back_angry.wav")]
    assert row["reason"] == f"identical copy of {_file('emovo', COPY_IN_EMOVO)}"
    assert not row["counts_as_rejected"]
    assert combined.manifest["corpus"].drop_duplicates().tolist() == ["emovo", "ravdess", "tess"]
    assert len(combined.manifest) == len(tess_first)
    assert combined.manifest["sha256"].is_unique


def test_only_the_listed_corpora(raw):
    combined = combine(raw, _data(order=("emovo",)))
    assert set(combined.manifest["corpus"]) == {"emovo"}
    assert _file("emovo", COPY_IN_EMOVO) in _emotions(combined)  # no tess: nothing to repeat
    assert combined.summary["repeated_audio"] == 0


def test_corpus_not_fetched(raw):
    data = DataParams(
        sources={"tess": SourceParams(recipe="tess", source="x"), "savee": SourceParams(recipe="savee", source="y")},
        emotions=CLASSES, max_rejected_fraction=0,
    )
    with pytest.raises(LabelsError) as info:
        combine(raw, data)
    assert "'savee' has not been fetched" in str(info.value)
    assert str(raw / "savee" / "manifest.csv") in str(info.value)


def test_no_clip_in_the_label_set(raw):
    with pytest.raises(LabelsError, match="no clip has an emotion in data.emotions"):
        combine(raw, _data(emotions=["bored", "calm_ish"]))


def test_labels_that_look_like_missing_values(tmp_path, write_tone):
    """A corpus's own names "NA", "None" or "null" are names: left out and counted, never lost."""
    source = tmp_path / "src"
    rows = [("a.wav", "None", "NA", "nan"), ("b.wav", "sad", "s", "null"), ("c.wav", "NA", "s", "x")]
    for seed, (name, *_) in enumerate(rows):
        write_tone(source / name, sr=8000, seconds=0.2, seed=seed)
    with (source / "labels.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows([("file", "emotion", "speaker", "text"), *rows])
    fetch("own", SourceParams(recipe="csv", source=str(source)), tmp_path / "raw" / "own")
    data = DataParams(sources={"own": SourceParams(recipe="csv", source=str(source))}, emotions=["sad", "angry"], max_rejected_fraction=0)
    combined = combine(tmp_path / "raw", data)
    assert combined.manifest[["source", "speaker", "text", "emotion"]].values.tolist() == [["b.wav", "own/s", "null", "sad"]]
    assert combined.summary["left_out"] == {"own": {"NA": 1, "None": 1}}
    assert sorted(combined.rejected["file"]) == ["a.wav", "c.wav"]
