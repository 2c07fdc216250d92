"""The ``nemo`` recipe (nEMO, Polish): labels from file names, transcripts from ``data.tsv``, in the
official layout (``samples/*.wav`` at 24 kHz, speaker column padded with spaces) and the shared copy's
(top-level Ogg Opus beside ``data.tsv``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
import soundfile as sf

from conftest import REPO, make_tone
from ser.corpora import Entry, Label, LabelError, recipes, standard_emotion
from ser.corpora import nemo
from ser.fetch import FetchError, check_rejected, fetch
from ser.params import RECIPES, SourceParams

CLASSES = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
HEADER = ["file_id", "emotion", "raw_text", "normalized_text", "speaker_id", "gender", "age"]
SHARED_NEMO = REPO.parent / "shared" / "data" / "nemo"


def write_tsv(path: Path, rows: list[list[str]], header: list[str] = HEADER, newline: str = "\r\n") -> Path:
    """A data.tsv as the release writes it (tab-separated, CRLF)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(newline.join("\t".join(r) for r in [header, *rows]) + newline, encoding="utf-8", newline="")
    return path


def row(file_id: str, text: str, speaker: str | None = None, emotion: str | None = None, gender: str = "female", age: str = "27") -> list[str]:
    name_speaker, name_emotion, _ = Path(file_id).stem.split("_")
    raw = text.capitalize() + "."
    return [file_id, emotion or name_emotion, raw, text, speaker if speaker is not None else name_speaker, gender, age]


def write_opus(path: Path, seed: int = 0, sr: int = 16000, seconds: float = 0.5) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, make_tone(sr, seconds, seed=seed, f0=110.0 + 7 * seed), sr, format="OGG", subtype="OPUS")
    return path


def write_wav(path: Path, seed: int = 0, sr: int = 24000, seconds: float = 0.5) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, make_tone(sr, seconds, seed=seed, f0=110.0 + 7 * seed), sr, subtype="PCM_16")
    return path


def entries(root: Path) -> dict[str, Entry]:
    found = list(recipes()["nemo"].entries(root))
    assert [e.path for e in found] == sorted(e.path for e in found)
    return {e.path.relative_to(root).as_posix(): e for e in found}


def _fetch(source: Path, out: Path):
    return fetch("nemo", SourceParams(recipe="nemo", source=str(source)), out)


# --- registry and names ------------------------------------------------------------------------------


def test_nemo_is_registered_and_maps_onto_the_standard_classes():
    assert "nemo" in RECIPES
    recipe = recipes()["nemo"]
    assert recipe is nemo.RECIPE and recipe.name == "nemo" and recipe.pattern
    assert set(recipe.emotions.values()) == set(CLASSES) - {"disgust"}
    expected = {"anger": "angry", "fear": "fear", "happiness": "happy", "neutral": "neutral", "sadness": "sad", "surprised": "surprise"}
    for label, standard in expected.items():
        assert standard_emotion(recipe, label, {}, CLASSES) == standard


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("EB0_anger_1.wav", Label("EB0", "1", "anger")),
        ("samples/MP0_surprised_87.opus", Label("MP0", "87", "surprised")),
        ("wr0_Happiness_012.WAV", Label("WR0", "12", "happiness")),
    ],
)
def test_parse(name, expected):
    assert nemo.parse(Path(name)) == expected


@pytest.mark.parametrize(
    ("name", "reason"),
    [("EB0_anger.wav", "does not match"), ("EB0-anger-1.wav", "does not match"), ("EB0_disgust_1.wav", "unknown emotion 'disgust'")],
)
def test_parse_rejects(name, reason):
    with pytest.raises(LabelError, match=reason):
        nemo.parse(Path(name))


# --- the two layouts ---------------------------------------------------------------------------------


def test_shared_layout_top_level_opus_with_data_tsv(tmp_path):
    root = tmp_path / "nemo"
    for seed, name in enumerate(["EB0_anger_1", "EB0_fear_1", "IC0_sadness_2"]):
        write_opus(root / f"{name}.opus", seed)
    (root / "notes.txt").write_text("not audio\n")
    write_tsv(root / "data.tsv", [
        row("EB0_anger_1.opus", "lubię czytać przed snem"),
        row("EB0_fear_1.opus", "lubię czytać przed snem"),
        row("IC0_sadness_2.opus", "nie waśńmy się ze sobą"),
    ])
    found = entries(root)
    assert "data.tsv" not in found  # metadata, never an entry (as the csv recipe never lists its CSV)
    assert found["EB0_anger_1.opus"].label == Label("EB0", "lubię czytać przed snem", "anger")
    assert found["EB0_fear_1.opus"].label == Label("EB0", "lubię czytać przed snem", "fear")
    assert found["IC0_sadness_2.opus"].label == Label("IC0", "nie waśńmy się ze sobą", "sadness")
    assert found["notes.txt"].label is None and "not an audio file extension (.txt)" in found["notes.txt"].reason
    assert found["notes.txt"].counts_as_rejected


def test_official_layout_samples_wav_and_a_padded_speaker_column(tmp_path):
    root = tmp_path / "nEMO"
    write_wav(root / "samples" / "EB0_anger_1.wav", 1)
    write_wav(root / "samples" / "KS0_neutral_3.wav", 2)
    write_tsv(root / "data.tsv", [
        row("EB0_anger_1.wav", "lubię czytać przed snem", speaker="EB0  "),
        row("KS0_neutral_3.wav", "chodźmy w tango", speaker="  KS0 ", gender="male", age="23"),
        row("WR0_fear_9.wav", "dzieci muszą dużo jeść"),  # a row whose file is absent: ignored
    ])
    found = entries(root)
    assert set(found) == {"samples/EB0_anger_1.wav", "samples/KS0_neutral_3.wav"}
    assert found["samples/EB0_anger_1.wav"].label == Label("EB0", "lubię czytać przed snem", "anger")
    assert found["samples/KS0_neutral_3.wav"].label == Label("KS0", "chodźmy w tango", "neutral")

    out = tmp_path / "raw" / "nemo"
    result = _fetch(root, out)
    manifest = pd.read_csv(out / "manifest.csv", dtype=str, keep_default_na=False).set_index("source")
    assert sorted(manifest.index) == ["samples/EB0_anger_1.wav", "samples/KS0_neutral_3.wav"]
    first = manifest.loc["samples/EB0_anger_1.wav"]
    assert (first["file"], first["corpus"], first["speaker"]) == ("audio/samples/EB0_anger_1.wav", "nemo", "nemo/EB0")
    assert (first["text"], first["label"], first["sample_rate"], first["format"]) == ("lubię czytać przed snem", "anger", "24000", "WAV")
    assert "gender" not in manifest.columns and "age" not in manifest.columns
    assert result.rejected.empty
    check_rejected(result, 0.0, "nemo")


def test_fetch_of_the_shared_layout_keeps_the_opus_files(tmp_path):
    root = tmp_path / "nemo"
    write_opus(root / "SM0_happiness_4.opus", 3)
    write_opus(root / "TP0_surprised_5.opus", 4)
    write_tsv(root / "data.tsv", [row("SM0_happiness_4.opus", "mój teść zawsze służy radą"), row("TP0_surprised_5.opus", "przestań go judzić")])
    out = tmp_path / "raw" / "nemo"
    _fetch(root, out)
    manifest = pd.read_csv(out / "manifest.csv", dtype=str, keep_default_na=False).set_index("source")
    clip = manifest.loc["SM0_happiness_4.opus"]
    assert (clip["format"], clip["subtype"], clip["sample_rate"]) == ("OGG", "OPUS", "16000")
    assert (clip["speaker"], clip["text"], clip["label"]) == ("nemo/SM0", "mój teść zawsze służy radą", "happiness")
    assert float(clip["duration"]) == pytest.approx(0.5, abs=1e-3)
    assert (out / "audio" / "SM0_happiness_4.opus").read_bytes() == (root / "SM0_happiness_4.opus").read_bytes()
    rejected = pd.read_csv(out / "rejected.csv", dtype=str, keep_default_na=False)
    assert rejected.empty  # data.tsv is not reported as a rejected non-audio file


def test_a_zip_of_the_official_layout(tmp_path):
    root = tmp_path / "nEMO"
    write_wav(root / "samples" / "EB0_anger_1.wav", 1)
    write_tsv(root / "data.tsv", [row("EB0_anger_1.wav", "lubię czytać przed snem", speaker=" EB0 ")])
    archive = shutil.make_archive(str(tmp_path / "nemo"), "zip", tmp_path, "nEMO")
    result = _fetch(Path(archive), tmp_path / "raw" / "nemo")
    assert result.manifest[["source", "speaker", "text"]].values.tolist() == [["nEMO/samples/EB0_anger_1.wav", "nemo/EB0", "lubię czytać przed snem"]]


# --- disagreements and gaps --------------------------------------------------------------------------


def test_disagreements_with_data_tsv_are_rejected_naming_both(tmp_path):
    root = tmp_path / "nemo"
    names = ["EB0_anger_1", "IC0_fear_2", "KD0_neutral_3", "KS0_sadness_4", "MK0_anger_5"]
    for seed, name in enumerate(names):
        write_opus(root / f"{name}.opus", seed)
    write_tsv(root / "data.tsv", [
        row("EB0_anger_1.opus", "lubię czytać przed snem", speaker="IC0"),  # another speaker
        row("IC0_fear_2.opus", "chodźmy w tango", emotion="sadness"),  # another emotion
        row("KD0_neutral_3.opus", ""),  # no transcript
        row("KS0_sadness_4.opus", "przestań go judzić"),
        row("KS0_sadness_4.opus", "przestań go judzić"),  # listed twice
        # MK0_anger_5 is not listed
    ])
    found = entries(root)
    reasons = {name: found[f"{name}.opus"].reason for name in names}
    assert all(found[f"{name}.opus"].label is None and found[f"{name}.opus"].counts_as_rejected for name in names)
    assert "speaker from the name ('EB0') disagrees with data.tsv line 2's speaker_id ('IC0')" in reasons["EB0_anger_1"]
    assert "emotion from the name ('fear') disagrees with data.tsv line 3's emotion ('sadness')" in reasons["IC0_fear_2"]
    assert "data.tsv line 4: empty normalized_text" in reasons["KD0_neutral_3"]
    assert "listed 2 times in data.tsv (lines 5, 6)" in reasons["KS0_sadness_4"]
    assert reasons["MK0_anger_5"] == "not listed in data.tsv"


def test_a_file_missing_from_data_tsv_is_rejected_and_counts(tmp_path):
    root = tmp_path / "nemo"
    write_opus(root / "EB0_anger_1.opus", 1)
    write_opus(root / "EB0_anger_2.opus", 2)
    write_tsv(root / "data.tsv", [row("EB0_anger_1.opus", "lubię czytać przed snem")])
    out = tmp_path / "raw" / "nemo"
    result = _fetch(root, out)
    assert result.manifest["source"].tolist() == ["EB0_anger_1.opus"]
    rejected = pd.read_csv(out / "rejected.csv", keep_default_na=False).set_index("file")
    assert rejected.loc["EB0_anger_2.opus", "reason"] == "not listed in data.tsv"
    assert bool(rejected.loc["EB0_anger_2.opus", "counts_as_rejected"])
    with pytest.raises(FetchError, match="1 of 2 files rejected"):
        check_rejected(result, 0.1, "nemo")


def test_without_data_tsv_labels_come_from_the_names_and_the_text_is_n(tmp_path):
    root = tmp_path / "nemo"
    write_opus(root / "EB0_anger_1.opus", 1)
    write_wav(root / "samples" / "SM0_sadness_07.wav", 2)
    write_opus(root / "SM0_bored_1.opus", 3)
    found = entries(root)
    assert found["EB0_anger_1.opus"].label == Label("EB0", "1", "anger")
    assert found["samples/SM0_sadness_07.wav"].label == Label("SM0", "7", "sadness")
    assert found["SM0_bored_1.opus"].label is None
    assert "unknown emotion 'bored'" in found["SM0_bored_1.opus"].reason
    assert found["SM0_bored_1.opus"].reason.endswith(f"; expected {nemo.RECIPE.pattern}")


def test_the_same_clip_in_two_files_is_taken_once(tmp_path):
    root = tmp_path / "nemo"
    write_opus(root / "EB0_anger_1.opus", 1)
    write_wav(root / "samples" / "EB0_anger_1.wav", 1)
    write_tsv(root / "data.tsv", [row("EB0_anger_1.wav", "lubię czytać przed snem")])
    found = entries(root)
    assert found["EB0_anger_1.opus"].label == Label("EB0", "lubię czytać przed snem", "anger")
    copy = found["samples/EB0_anger_1.wav"]
    assert copy.label is None and not copy.counts_as_rejected
    assert "another file of the clip EB0_anger_1.opus" in copy.reason


def test_a_data_tsv_the_recipe_cannot_use_fails_the_whole_source(tmp_path, write_tone):
    root = tmp_path / "nemo"
    write_opus(root / "EB0_anger_1.opus")
    write_tsv(root / "data.tsv", [["EB0_anger_1.opus", "anger", "lubię"]], header=["file_id", "emotion", "raw_text"])
    with pytest.raises(LabelError, match="missing column.*normalized_text, speaker_id"):
        entries(root)
    with pytest.raises(FetchError, match="missing column"):
        _fetch(root, tmp_path / "raw" / "nemo")
    (root / "data.tsv").unlink()
    write_tsv(root / "a" / "data.tsv", [row("EB0_anger_1.opus", "lubię czytać przed snem")])
    write_tsv(root / "b" / "DATA.TSV", [row("EB0_anger_1.opus", "lubię czytać przed snem")])
    with pytest.raises(LabelError, match="takes one data.tsv, found 2"):
        entries(root)
    with pytest.raises(LabelError, match="reads a directory"):
        entries(root / "EB0_anger_1.opus")


def test_data_tsv_with_a_byte_order_mark_and_lf_lines(tmp_path):
    root = tmp_path / "nemo"
    write_opus(root / "EB0_anger_1.opus")
    path = write_tsv(root / "data.tsv", [row("EB0_anger_1.opus", "lubię czytać przed snem")], newline="\n")
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert entries(root)["EB0_anger_1.opus"].label == Label("EB0", "lubię czytać przed snem", "anger")


# --- the shared copy ---------------------------------------------------------------------------------


@pytest.mark.skipif(not (SHARED_NEMO / "data.tsv").is_file(), reason=f"no nEMO copy at {SHARED_NEMO}")
def test_a_real_subset_of_the_shared_copy(tmp_path):
    lines = (SHARED_NEMO / "data.tsv").read_text(encoding="utf-8").splitlines()
    header, rows = lines[0], lines[1:]
    wanted = [("EB0", "anger"), ("IC0", "fear"), ("MP0", "surprised"), ("WR0", "happiness"), ("KS0", "neutral"), ("SM0", "sadness")]
    picked = [next(r for r in rows if r.split("\t")[0].startswith(f"{speaker}_{emotion}_")) for speaker, emotion in wanted]
    root = tmp_path / "nemo"
    root.mkdir()
    for line in picked:
        shutil.copyfile(SHARED_NEMO / line.split("\t")[0], root / line.split("\t")[0])
    (root / "data.tsv").write_text("\r\n".join([header, *picked]) + "\r\n", encoding="utf-8", newline="")
    out = tmp_path / "raw" / "nemo"
    result = _fetch(root, out)
    assert result.rejected.empty
    manifest = result.manifest.set_index("source")
    assert sorted(manifest.index) == sorted(line.split("\t")[0] for line in picked)
    for line in picked:
        file_id, emotion, _, text, speaker, *_ = line.split("\t")
        clip = manifest.loc[file_id]
        assert (clip["speaker"], clip["text"], clip["label"]) == (f"nemo/{speaker.strip()}", text, emotion)
        assert (clip["format"], clip["subtype"], clip["sample_rate"]) == ("OGG", "OPUS", 16000)
        assert 0.5 < clip["duration"] < 10
