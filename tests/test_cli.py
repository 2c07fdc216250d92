"""The ``ser`` command (``ser.cli``): predict (paths, output formats, errors), info and serve.

Most tests call ``main([...])`` in process; a few run the installed console script and
``python -m ser`` to check that they exist, that exit codes propagate and that users never see
a traceback. The model is the small seeded ``served_model_dir`` (conftest)."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from conftest import REPO_CLASSES, SERVED_CORPORA, TESS_DIR
from ser.cli import main
from ser.inference import Predictor
from ser.paths import FOLD_MODEL_DIR, METRICS, MODEL_DIR

EMOTIONS = REPO_CLASSES

SER_SCRIPT = Path(sys.executable).with_name("ser")
P_COLUMNS = [f"p_{e}" for e in EMOTIONS]
TESS = TESS_DIR.resolve()
REAL_CLIPS = (
    [TESS / "YAF_sad" / "YAF_back_sad.flac", TESS / "OAF_angry" / "OAF_back_angry.flac",
     *sorted((TESS / "YAF_fear").glob("*.flac"))[:5]]
    if TESS.is_dir() else []
)
"""A few real TESS clips when the corpus is there (test_inference.py skips visibly when it is not)."""


# ---------------------------------------------------------------- fixtures and helpers


@pytest.fixture(scope="session")
def model(served_model_dir) -> str:
    return str(served_model_dir)


@pytest.fixture(scope="session")
def predictor(served_model_dir) -> Predictor:
    return Predictor(served_model_dir)


@pytest.fixture(scope="session")
def clips(tmp_path_factory, write_tone) -> list[Path]:
    """Five short synthetic clips (one window each), different voices."""
    folder = tmp_path_factory.mktemp("clips")
    return [
        write_tone(folder / f"voice{k}.wav", sr=22050, seconds=1.5 + 0.3 * k, seed=20 + k, f0=100.0 + 45 * k)
        for k in range(5)
    ]


@pytest.fixture(scope="session")
def long_clip(tmp_path_factory, write_tone) -> Path:
    """10 s: windows 0.50-3.50, 3.50-6.50, 6.50-9.50, 7.00-10.00."""
    return write_tone(tmp_path_factory.mktemp("long") / "long.wav", sr=22050, seconds=10.0, seed=9)


@pytest.fixture(scope="session")
def bad_files(tmp_path_factory, write_tone) -> dict[str, Path]:
    """One file for each way a clip can be unusable (and a path that does not exist)."""
    folder = tmp_path_factory.mktemp("bad")
    text = folder / "notes.wav"
    text.write_bytes(b"not audio at all\n" * 100)
    empty = folder / "empty.wav"
    sf.write(str(empty), np.zeros(0), 22050, subtype="PCM_16")
    silent = folder / "silent.wav"
    sf.write(str(silent), np.zeros(22050 * 2), 22050, subtype="PCM_16")
    short = write_tone(folder / "short.wav", sr=22050, seconds=0.3)
    return {"missing": folder / "missing.wav", "not audio": text, "empty": empty, "silent": silent, "short": short}


EXPECTED_REASON = {
    "missing": "no such file or directory",
    "not audio": "cannot decode audio",
    "empty": "empty",
    "silent": "silent",
    "short": "offset",
}


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_script(*argv: str, script: Path = SER_SCRIPT, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(script), *argv], capture_output=True, text=True, timeout=120, cwd=cwd)


def read_csv(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("ser: error:")]


def json_probabilities(out: str) -> dict[str, np.ndarray]:
    return {item["file"]: np.array([item["probabilities"][e] for e in EMOTIONS]) for item in json.loads(out)}


# ---------------------------------------------------------------- predict: what is scored


def test_predict_one_file_prints_a_table(capsys, model, predictor, clips):
    code, out, err = run(capsys, "predict", str(clips[0]), "--model", model)
    assert code == 0
    assert err == ""
    header, rule, row = out.splitlines()
    assert header.split() == ["file", "emotion", "confidence", *P_COLUMNS]
    assert set(rule) <= {"-", " "}
    prediction = predictor.predict_file(clips[0])
    cells = row.split()
    assert cells[:2] == [str(clips[0]), prediction.emotion]
    # to the 3 decimals shown
    assert float(cells[2]) == pytest.approx(prediction.confidence, abs=5e-4)
    assert [float(c) for c in cells[3:]] == pytest.approx(prediction.probabilities.tolist(), abs=5e-4)


def test_table_rounds_each_probability_to_the_digits_it_shows(capsys):
    from ser.cli import write_predictions
    from ser.inference import Prediction

    write_predictions([Prediction("clip.wav", 3.0, ("sad", "happy"), np.array([0.15451, 0.84549]))], "table", None, False)
    header, _, row = capsys.readouterr().out.splitlines()
    assert header.split() == ["file", "emotion", "confidence", "p_sad", "p_happy"]
    assert row.split() == ["clip.wav", "happy", "0.845", "0.155", "0.845"]


def test_predict_several_files_keeps_their_order(capsys, model, clips):
    order = [clips[3], clips[0], clips[2]]
    code, out, _ = run(capsys, "predict", *map(str, order), "--model", model, "--format", "csv")
    assert code == 0
    assert [row["file"] for row in read_csv(out)] == [str(p) for p in order]


def test_predict_directory_recursively(capsys, model, tmp_path, write_tone):
    root = tmp_path / "corpus"
    expected = [
        write_tone(root / "a.wav", seconds=1.2, seed=1),
        write_tone(root / "deep" / "er" / "b.FLAC", seconds=1.2, seed=2, format="FLAC"),
        write_tone(root / "deep" / "c.WAV", seconds=1.2, seed=3, format="WAV"),
        write_tone(root / "other" / "d.ogg", seconds=1.2, seed=4, subtype="VORBIS"),
    ]
    (root / "README").write_text("no audio here")
    (root / "deep" / "notes.txt").write_text("nor here")
    code, out, err = run(capsys, "predict", str(root), "--model", model, "--format", "csv")
    assert code == 0
    assert sorted(row["file"] for row in read_csv(out)) == sorted(str(p) for p in expected)
    assert error_lines(err) == []
    notes = [line for line in err.splitlines() if line.startswith("ser: note:")]
    assert len(notes) == 1
    assert str(root) in notes[0] and "2 files" in notes[0]
    assert ".txt" in notes[0] and "(no suffix)" in notes[0]


def test_predict_ogg_opus_clips(capsys, model, predictor, tmp_path):
    """Ogg Opus (nEMO's and ASED's shared copies, most voice calls): a file and a folder of them are
    scored as the library scores them, ``.opus`` and ``.oga`` alike."""
    from conftest import make_tone

    root = tmp_path / "opus"
    root.mkdir()
    paths = [root / "voice.opus", root / "other.oga"]
    for seed, path in enumerate(paths, start=30):
        sf.write(path, make_tone(16000, 4.0, seed=seed), 16000, format="OGG", subtype="OPUS")
        assert sf.info(str(path)).subtype == "OPUS"
    code, out, err = run(capsys, "predict", str(paths[0]), "--model", model, "--format", "json")
    assert (code, error_lines(err)) == (0, [])
    (row,) = json.loads(out)
    expected = predictor.predict_file(paths[0])
    assert row["file"] == str(paths[0])
    assert row["emotion"] == expected.emotion
    assert row["duration"] == pytest.approx(4.0, abs=1e-3)
    assert [row["probabilities"][e] for e in expected.classes] == pytest.approx(expected.probabilities.tolist(), abs=1e-6)
    code, out, err = run(capsys, "predict", str(root), "--model", model, "--format", "csv")
    assert (code, error_lines(err)) == (0, [])
    assert sorted(r["file"] for r in read_csv(out)) == sorted(str(p) for p in paths)


def test_directory_note_lists_only_the_suffixes_it_skipped(capsys, model, tmp_path, write_tone):
    """Audio files with an upper-case suffix are scored, so the note must not call them skipped."""
    root = tmp_path / "upper"
    write_tone(root / "a.WAV", seconds=1.2, format="WAV")
    (root / "notes.txt").write_text("text")
    code, out, err = run(capsys, "predict", str(root), "--model", model, "--format", "csv")
    assert code == 0
    assert [row["file"] for row in read_csv(out)] == [str(root / "a.WAV")]
    (note,) = [line for line in err.splitlines() if line.startswith("ser: note:")]
    assert "skipped 1 file" in note
    assert ".txt" in note
    assert ".WAV" not in note


def test_directories_pick_up_every_audio_suffix_and_only_those(tmp_path):
    """A directory gives the files whose suffix (any case) is one of ser.audio.AUDIO_SUFFIXES, the one
    list of what counts as audio; the others are counted in the note."""
    from ser.audio import AUDIO_SUFFIXES
    from ser.cli import expand_paths

    assert {".wav", ".flac", ".ogg", ".mp3", ".aiff"} <= AUDIO_SUFFIXES
    root = tmp_path / "all"
    root.mkdir()
    audio = [root / f"clip{k}{suffix.upper() if k % 2 else suffix}" for k, suffix in enumerate(sorted(AUDIO_SUFFIXES))]
    others = [root / "clip.txt", root / "clip.csv", root / "clip.wav.bak", root / "clip"]
    for path in audio + others:
        path.write_bytes(b"")  # expand_paths does not read them
    files, problems, notes = expand_paths([str(root)])
    assert sorted(files) == sorted(audio) and problems == []
    (note,) = notes
    assert f"skipped {len(others)} files" in note and ".bak" in note and "(no suffix)" in note


def test_directory_without_audio_is_an_error(capsys, model, tmp_path):
    root = tmp_path / "texts"
    root.mkdir()
    (root / "a.txt").write_text("text")
    code, out, err = run(capsys, "predict", str(root), "--model", model)
    assert code == 1
    assert error_lines(err) == [f"ser: error: {root}: no audio files in this directory"]
    assert out == ""


def test_predict_glob_pattern(capsys, model, tmp_path, write_tone):
    folder = tmp_path / "globbed"
    wavs = [write_tone(folder / f"x{k}.wav", seconds=1.2, seed=k) for k in range(3)]
    write_tone(folder / "y.flac", seconds=1.2)
    write_tone(folder / "sub" / "x9.wav", seconds=1.2)
    code, out, err = run(capsys, "predict", str(folder / "x*.wav"), "--model", model, "--format", "csv")
    assert code == 0, err
    assert [row["file"] for row in read_csv(out)] == [str(p) for p in wavs]
    code, out, _ = run(capsys, "predict", str(folder / "**" / "x*.wav"), "--model", model, "--format", "csv")
    assert code == 0
    assert sorted(row["file"] for row in read_csv(out)) == sorted(str(p) for p in [*wavs, folder / "sub" / "x9.wav"])


def test_glob_matching_nothing_is_an_error(capsys, model, tmp_path, clips):
    pattern = str(tmp_path / "nothing*.wav")
    code, out, err = run(capsys, "predict", pattern, str(clips[0]), "--model", model, "--format", "csv")
    assert code == 1
    assert error_lines(err) == [f"ser: error: {pattern}: no files match this pattern"]
    assert [row["file"] for row in read_csv(out)] == [str(clips[0])]


def test_duplicates_are_scored_once(capsys, model, tmp_path, write_tone):
    folder = tmp_path / "dups"
    a = write_tone(folder / "a.wav", seconds=1.2, seed=1)
    b = write_tone(folder / "b.wav", seconds=1.2, seed=2)
    code, out, _ = run(
        capsys, "predict", str(a), str(folder), str(a), str(folder / "*.wav"), str(folder) + "/", "--model", model,
        "--format", "csv",
    )
    assert code == 0
    assert [row["file"] for row in read_csv(out)] == [str(a), str(b)]


# ---------------------------------------------------------------- predict: output formats


def test_csv_has_every_class_probability(capsys, model, clips):
    code, out, _ = run(capsys, "predict", *map(str, clips), "--model", model, "--format", "csv")
    assert code == 0
    rows = read_csv(out)
    assert list(rows[0]) == ["file", "emotion", "confidence", *P_COLUMNS]
    assert len(rows) == len(clips)
    for row in rows:
        probabilities = [float(row[c]) for c in P_COLUMNS]
        assert sum(probabilities) == pytest.approx(1.0, abs=1e-3)
        assert float(row["confidence"]) == max(probabilities)
        assert float(row[f"p_{row['emotion']}"]) == max(probabilities)


def test_json_output(capsys, model, clips, predictor):
    code, out, _ = run(capsys, "predict", *map(str, clips[:2]), "--model", model, "--format", "json")
    assert code == 0
    items = json.loads(out)
    assert len(items) == 2
    for item, path in zip(items, clips[:2]):
        assert set(item) == {"file", "duration", "emotion", "confidence", "probabilities"}
        assert item["file"] == str(path)
        assert item["duration"] == pytest.approx(sf.info(str(path)).duration, abs=1e-3)
        assert list(item["probabilities"]) == sorted(item["probabilities"], key=lambda e: -item["probabilities"][e])
        assert sorted(item["probabilities"]) == sorted(EMOTIONS)
        assert sum(item["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        assert item["emotion"] == next(iter(item["probabilities"]))
        assert item["confidence"] == max(item["probabilities"].values())


def test_top_k_in_csv_and_json(capsys, model, clips):
    code, out, _ = run(capsys, "predict", *map(str, clips), "--model", model, "--format", "csv", "--top", "2")
    assert code == 0
    rows = read_csv(out)
    assert list(rows[0]) == ["file", "emotion", "confidence", "top1", "p1", "top2", "p2"]
    for row in rows:
        assert row["top1"] == row["emotion"] and row["p1"] == row["confidence"]
        assert float(row["p1"]) >= float(row["p2"])
        assert row["top2"] in EMOTIONS and row["top2"] != row["top1"]
    code, out, _ = run(capsys, "predict", *map(str, clips), "--model", model, "--format", "json", "--top", "2")
    for item in json.loads(out):
        assert len(item["probabilities"]) == 2
        first, second = item["probabilities"].values()
        assert first >= second
        assert next(iter(item["probabilities"])) == item["emotion"]


def test_top_larger_than_the_classes_shows_them_all(capsys, model, clips):
    code, out, _ = run(capsys, "predict", str(clips[0]), "--model", model, "--format", "json", "--top", "20")
    assert code == 0
    assert sorted(json.loads(out)[0]["probabilities"]) == sorted(EMOTIONS)


@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_top_must_be_a_positive_integer(capsys, model, clips, value):
    with pytest.raises(SystemExit) as caught:
        main(["predict", str(clips[0]), "--model", model, "--top", value])
    assert caught.value.code == 2
    assert "--top" in capsys.readouterr().err


def test_per_window_rows_for_a_long_clip(capsys, model, long_clip, predictor):
    code, out, _ = run(capsys, "predict", str(long_clip), "--model", model, "--format", "csv", "--per-window")
    assert code == 0
    rows = read_csv(out)
    assert list(rows[0]) == ["file", "window", "emotion", "confidence", *P_COLUMNS]
    assert [row["window"] for row in rows] == ["all", "0.50-3.50", "3.50-6.50", "6.50-9.50", "7.00-10.00"]
    prediction = predictor.predict_file(long_clip)
    for row, probabilities in zip(rows, [prediction.probabilities, *(w.probabilities for w in prediction.windows)]):
        assert [float(row[c]) for c in P_COLUMNS] == pytest.approx(probabilities.tolist(), abs=1e-4)

    code, out, _ = run(capsys, "predict", str(long_clip), "--model", model, "--format", "json", "--per-window")
    (item,) = json.loads(out)
    assert [(w["start"], w["end"]) for w in item["windows"]] == [(0.5, 3.5), (3.5, 6.5), (6.5, 9.5), (7.0, 10.0)]
    for window in item["windows"]:
        assert sum(window["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)

    code, out, _ = run(capsys, "predict", str(long_clip), "--model", model, "--per-window")
    assert "7.00-10.00" in out and "all" in out


def test_without_per_window_a_long_clip_is_one_row(capsys, model, long_clip):
    code, out, _ = run(capsys, "predict", str(long_clip), "--model", model, "--format", "csv")
    assert code == 0
    rows = read_csv(out)
    assert len(rows) == 1 and "window" not in rows[0]


# ---------------------------------------------------------------- predict: same results as the library


def test_cli_probabilities_equal_the_predictors(capsys, model, predictor, clips, long_clip):
    paths = [*clips, long_clip, *REAL_CLIPS[:2]]
    code, out, _ = run(capsys, "predict", *map(str, paths), "--model", model, "--format", "json")
    assert code == 0
    got = json_probabilities(out)
    for path in paths:
        np.testing.assert_allclose(got[str(path)], predictor.predict_file(path).probabilities, atol=1e-6, rtol=0)


def test_adapt_normalizes_with_the_files_own_statistics(capsys, model, predictor, clips):
    paths = [*clips, *REAL_CLIPS[2:]]
    code, out, _ = run(capsys, "predict", *map(str, paths), "--model", model, "--format", "json")
    assert code == 0
    default = json_probabilities(out)
    code, out, _ = run(capsys, "predict", *map(str, paths), "--model", model, "--format", "json", "--adapt")
    assert code == 0
    adapted = json_probabilities(out)
    expected = predictor.predict([predictor.clip_features(p) for p in paths], adapt=True)
    for path, prediction in zip(paths, expected):
        np.testing.assert_allclose(adapted[str(path)], prediction.probabilities, atol=1e-6, rtol=0)
    assert max(np.abs(adapted[str(p)] - default[str(p)]).max() for p in paths) > 1e-3


def test_adapt_folder_takes_each_folder_as_one_speaker(capsys, model, predictor, tmp_path, write_tone):
    """--adapt folder equals --adapt run on each folder alone, and differs from one speaker for all."""
    folders = {
        name: [write_tone(tmp_path / name / f"c{k}.wav", sr=16000, seconds=1.4 + 0.2 * k, seed=k + offset, f0=f0 + 15 * k)
               for k in range(3)]
        for name, offset, f0 in (("alice", 0, 210.0), ("bob", 10, 105.0))
    }
    code, out, _ = run(capsys, "predict", str(tmp_path), "--model", model, "--format", "json", "--adapt", "folder")
    assert code == 0
    by_folder = json_probabilities(out)
    assert len(by_folder) == 6
    for paths in folders.values():
        expected = predictor.predict([predictor.clip_features(p, str(p)) for p in paths], adapt=True)
        for path, prediction in zip(paths, expected):
            np.testing.assert_allclose(by_folder[str(path)], prediction.probabilities, atol=1e-6, rtol=0)
    code, out, _ = run(capsys, "predict", str(tmp_path), "--model", model, "--format", "json", "--adapt")
    together = json_probabilities(out)
    assert max(np.abs(together[p] - by_folder[p]).max() for p in by_folder) > 1e-3


def test_adapt_leaves_out_the_files_that_fail(capsys, model, predictor, clips, bad_files):
    paths = [*map(str, clips), str(bad_files["silent"]), str(bad_files["not audio"])]
    code, out, err = run(capsys, "predict", *paths, "--model", model, "--format", "json", "--adapt")
    assert code == 1
    assert len(error_lines(err)) == 2
    expected = predictor.predict([predictor.clip_features(p) for p in clips], adapt=True)
    got = json_probabilities(out)
    assert list(got) == [str(p) for p in clips]
    for path, prediction in zip(clips, expected):
        np.testing.assert_allclose(got[str(path)], prediction.probabilities, atol=1e-6, rtol=0)


# ---------------------------------------------------------------- predict: bad input


@pytest.mark.parametrize("kind", list(EXPECTED_REASON))
def test_each_bad_file_is_one_error_line_and_the_rest_is_scored(capsys, model, clips, bad_files, kind):
    bad = bad_files[kind]
    code, out, err = run(capsys, "predict", str(clips[0]), str(bad), str(clips[1]), "--model", model, "--format", "csv")
    assert code == 1
    (line,) = error_lines(err)
    assert line.startswith(f"ser: error: {bad}: ")
    assert EXPECTED_REASON[kind] in line
    assert err.count("\n") == 1
    assert "Traceback" not in err
    assert [row["file"] for row in read_csv(out)] == [str(clips[0]), str(clips[1])]


def test_all_bad_files_at_once(capsys, model, clips, bad_files):
    paths = [str(clips[0]), *map(str, bad_files.values()), str(clips[1])]
    code, out, err = run(capsys, "predict", *paths, "--model", model)
    assert code == 1
    lines = error_lines(err)
    assert len(lines) == len(bad_files) == len(err.splitlines())
    for kind, path in bad_files.items():
        (line,) = [line for line in lines if line.startswith(f"ser: error: {path}: ")]
        assert EXPECTED_REASON[kind] in line
    assert str(clips[0]) in out and str(clips[1]) in out
    assert not any(str(path) in out for path in bad_files.values())


def test_all_good_files_exit_zero(capsys, model, clips):
    code, _, err = run(capsys, "predict", *map(str, clips), "--model", model)
    assert code == 0
    assert err == ""


def test_only_missing_paths_print_nothing_and_exit_one(capsys, model, tmp_path):
    code, out, err = run(capsys, "predict", str(tmp_path / "a.wav"), str(tmp_path / "b.wav"), "--model", model)
    assert code == 1
    assert out == ""
    assert len(error_lines(err)) == 2


def test_a_header_rate_of_1_hz_is_one_error_line_not_minutes_of_windows(capsys, model, clips, tmp_path):
    """Its 1.5 s of samples became 9 hours at 1 Hz: 11 025 windows to score, many minutes of work (a hang)."""
    damaged = tmp_path / "slow.wav"
    data = bytearray(clips[0].read_bytes())
    data[24:28] = (1).to_bytes(4, "little")  # the fmt chunk's sample rate
    damaged.write_bytes(bytes(data))
    code, out, err = run(capsys, "predict", str(clips[1]), str(damaged), "--model", model, "--format", "csv")
    assert code == 1
    assert error_lines(err) == [f"ser: error: {damaged}: sample rate 1 Hz is below 4000 Hz (a damaged header?)"]
    assert [row["file"] for row in read_csv(out)] == [str(clips[1])]


def test_a_path_too_long_for_the_file_system_is_one_error_line(capsys, model, clips):
    """It raised OSError (File name too long) from the check for a directory: a traceback."""
    too_long = "x" * 300 + ".wav"
    code, out, err = run(capsys, "predict", too_long, str(clips[0]), "--model", model, "--format", "csv")
    assert code == 1
    assert error_lines(err) == [f"ser: error: {too_long}: File name too long"]
    assert [row["file"] for row in read_csv(out)] == [str(clips[0])]


def test_missing_model_dir_is_a_one_line_usage_error(capsys, tmp_path, clips):
    missing = tmp_path / "no_models"
    code, out, err = run(capsys, "predict", str(clips[0]), "--model", str(missing))
    assert code == 2
    assert out == ""
    (line,) = err.splitlines()
    assert line.startswith("ser: error: ") and str(missing) in line


def test_model_dir_without_onnx_is_a_one_line_usage_error(capsys, served_model_dir, tmp_path, clips):
    model_dir = tmp_path / MODEL_DIR
    shutil.copytree(served_model_dir, model_dir)
    (model_dir / "model.onnx").unlink()
    code, _, err = run(capsys, "predict", str(clips[0]), "--model", str(model_dir))
    assert code == 2
    (line,) = err.splitlines()
    assert "model.onnx" in line


class Terminal(io.StringIO):
    """A stderr that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_progress_bar_only_on_a_terminal(capsys, model, clips, monkeypatch):
    """The positive control for the subprocess test below: a terminal does get a bar."""
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["predict", *map(str, clips), "--model", model]) == 0
    assert "file/s" in terminal.getvalue() or "%|" in terminal.getvalue()

    quiet = Terminal()
    monkeypatch.setattr(sys, "stderr", quiet)
    assert main(["predict", *map(str, clips), "--model", model, "--no-progress"]) == 0
    assert "%|" not in quiet.getvalue()


def test_a_terminal_is_told_what_the_model_learned(capsys, model, clips, monkeypatch):
    """At a terminal, one line names the classes and the speakers and corpora the model learned from."""
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["predict", str(clips[0]), "--model", model, "--no-progress"]) == 0
    (line,) = terminal.getvalue().splitlines()
    speakers = sum(len(names) for names in SERVED_CORPORA.values())
    assert line.startswith("ser: model ensemble of logreg + logreg:compare + bigru, classes " + ", ".join(REPO_CLASSES))
    assert line.endswith(f"trained on {speakers} speakers of {', '.join(sorted(SERVED_CORPORA))}")


# ---------------------------------------------------------------- installed commands


def test_console_script_reports_bad_files_without_traceback_or_progress(model, clips, bad_files):
    assert SER_SCRIPT.is_file()
    paths = [str(clips[0]), *map(str, bad_files.values()), str(clips[1])]
    result = run_script("predict", *paths, "--model", model, "--format", "csv")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert len(error_lines(result.stderr)) == len(bad_files) == len(result.stderr.splitlines())
    for marker in ("%|", "it/s", "file/s"):
        assert marker not in result.stderr
    assert [row["file"] for row in read_csv(result.stdout)] == [str(clips[0]), str(clips[1])]


def test_python_dash_m_ser_predicts_and_exits_zero(model, clips):
    result = subprocess.run(
        [sys.executable, "-m", "ser", "predict", *map(str, clips[:3]), "--model", model, "--format", "json"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert [item["file"] for item in json.loads(result.stdout)] == [str(p) for p in clips[:3]]


def test_console_script_missing_model_exits_two_without_traceback(tmp_path, clips):
    result = run_script("predict", str(clips[0]), "--model", str(tmp_path / "nowhere"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("ser: error: ")


def test_console_script_usage_error_exits_two(tmp_path):
    result = run_script("predict", "x.wav", "--top", "0")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    result = run_script()
    assert result.returncode == 2


# ---------------------------------------------------------------- info


def _metrics() -> dict:
    """reports/metrics.json as the evaluate stage writes it."""
    return {
        "protocol": "speaker", "n_test": 81, "accuracy": 0.7, "macro_f1": 0.66, "ece": 0.12, "min_recall": 0.2,
        "serving_accuracy": 0.68, "corpus_mean_accuracy": 0.6, "recall": {e: 0.5 for e in EMOTIONS},
        "by_corpus": {"ravdess": {"n_test": 41, "accuracy": 0.5}, "tess": {"n_test": 40, "accuracy": 0.9}},
        "by_speaker": {"tess/YAF": {"n_test": 40, "accuracy": 0.9}},
        "folds": {
            "fold1": {"n_test": 40, "accuracy": 0.75, "macro_f1": 0.7, "ece": 0.12, "serving_accuracy": 0.72,
                      "recall": {e: 0.25 for e in EMOTIONS}},
            "fold2": {"n_test": 41, "accuracy": 0.5},
        },
    }


def _fold_dir(model_dir: Path, fold: str) -> Path:
    """Fold ``fold``'s model in the project whose deployable model is ``model_dir``."""
    return model_dir / FOLD_MODEL_DIR.relative_to(MODEL_DIR) / fold


@pytest.fixture
def project_model(served_model_dir, tmp_path) -> Path:
    """A copy of the served (deployable) model at ``<project>/models``, a fold model at
    ``<project>/models/folds/fold1``, and ``<project>/reports/metrics.json``."""
    project = tmp_path / "project"
    model_dir = project / MODEL_DIR
    shutil.copytree(served_model_dir, model_dir)
    fold_dir = _fold_dir(model_dir, "fold1")
    shutil.copytree(served_model_dir, fold_dir)
    meta = json.loads((fold_dir / "meta.json").read_text())
    (fold_dir / "meta.json").write_text(json.dumps({**meta, "fold": "fold1"}))
    (project / METRICS).parent.mkdir(parents=True)
    (project / METRICS).write_text(json.dumps(_metrics()))
    return model_dir


def _trained_on(model_dir: Path) -> dict:
    """What the model learned from, counted from its split.csv (training and validation clips)."""
    with (model_dir / "split.csv").open() as handle:
        learned = [row for row in csv.DictReader(handle) if row["part"] in ("train", "val")]
    corpora = sorted({row["corpus"] for row in learned})
    return {
        "corpora": {c: sum(row["corpus"] == c for row in learned) for c in corpora},
        "speakers": len({row["speaker"] for row in learned}), "clips": len(learned),
    }


def _check_info(summary: dict, model_dir: Path, served_model_dir: Path) -> None:
    meta = json.loads((served_model_dir / "meta.json").read_text())
    assert summary["model_dir"] == str(model_dir)
    assert summary["arch"] == "ensemble"
    assert summary["members"] == meta["model"]["members"] == ["logreg", "logreg:compare", "bigru"]
    assert summary["classes"] == list(EMOTIONS) == meta["classes"]
    assert summary["fold"] == "all"
    assert summary["trained_on"] == _trained_on(model_dir) == meta["trained_on"]
    assert summary["trained_on"] == {"corpora": {"emovo": 1, "ravdess": 2, "tess": 4}, "speakers": 4, "clips": 7}
    assert summary["params"]["model"] == meta["model"]
    assert summary["params"]["audio"] == meta["audio"]
    assert set(summary["params"]) == {"audio", "features", "split", "model", "train"}
    metrics = summary["metrics"]
    # the deployable model: the scores over every fold's test clips, and each corpus's accuracy
    assert metrics["fold"] == "all folds" and metrics["protocol"] == "speaker"
    assert metrics["accuracy"] == 0.7 and metrics["n_test"] == 81 and metrics["min_recall"] == 0.2
    assert metrics["serving_accuracy"] == 0.68
    assert metrics["recall"] == {e: 0.5 for e in EMOTIONS}
    assert metrics["corpus_accuracy"] == {"ravdess": 0.5, "tess": 0.9}


def test_info_yaml(capsys, project_model, served_model_dir):
    code, out, err = run(capsys, "info", "--model", str(project_model))
    assert code == 0 and err == ""
    _check_info(yaml.safe_load(out), project_model, served_model_dir)
    assert out.startswith("model_dir:")
    assert "trained_on:\n  corpora:\n    emovo: 1\n" in out  # readable as it stands


def test_info_json(capsys, project_model, served_model_dir):
    code, out, _ = run(capsys, "info", "--model", str(project_model), "--format", "json")
    assert code == 0
    _check_info(json.loads(out), project_model, served_model_dir)


def test_info_of_a_fold_model_shows_its_own_fold(capsys, project_model):
    code, out, _ = run(capsys, "info", "--model", str(_fold_dir(project_model, "fold1")), "--format", "json")
    assert code == 0
    summary = json.loads(out)
    assert summary["fold"] == "fold1"
    assert summary["metrics"]["fold"] == "fold1"
    assert summary["metrics"]["accuracy"] == 0.75 and summary["metrics"]["n_test"] == 40
    assert summary["metrics"]["recall"] == {e: 0.25 for e in EMOTIONS}
    assert "corpus_accuracy" not in summary["metrics"]
    assert summary["trained_on"] == _trained_on(_fold_dir(project_model, "fold1"))


def test_info_without_metrics(capsys, served_model_dir, tmp_path):
    model_dir = tmp_path / "bare" / MODEL_DIR
    shutil.copytree(served_model_dir, model_dir)
    code, out, _ = run(capsys, "info", "--model", str(model_dir), "--format", "json")
    assert code == 0
    assert json.loads(out)["metrics"] is None


def test_info_missing_model(capsys, tmp_path):
    code, out, err = run(capsys, "info", "--model", str(tmp_path / "none"))
    assert code == 2
    assert out == ""
    assert len(err.splitlines()) == 1 and err.startswith("ser: error: ")


# ---------------------------------------------------------------- serve


@pytest.fixture
def no_server(monkeypatch) -> list:
    """Record ``uvicorn.run`` calls instead of starting a server."""
    import uvicorn

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: calls.append((app, kwargs)))
    return calls


def test_serve_help(capsys):
    with pytest.raises(SystemExit) as caught:
        main(["serve", "--help"])
    assert caught.value.code == 0
    out = capsys.readouterr().out
    for option in ("--host", "--port", "--max-upload-mb", "--max-duration", "--max-uploads-in-flight", "--body-timeout",
                   "--params", "--model"):
        assert option in out


def test_serve_starts_the_app_with_the_limits(capsys, model, no_server, monkeypatch, tmp_path):
    import ser.webapp

    created = []
    real = ser.webapp.create_app
    monkeypatch.setattr(ser.webapp, "create_app", lambda predictor, limits: created.append(limits) or real(predictor, limits))
    params = tmp_path / "params.yaml"
    params.write_text("serve:\n  max_upload_mb: 7\n  max_duration_s: 60\n  max_uploads_in_flight: 3\n  body_timeout_s: 20\n")
    code, _, err = run(capsys, "serve", "--model", model, "--params", str(params), "--max-duration", "30", "--port", "8123",
                       "--body-timeout", "9.5")
    assert code == 0, err
    (limits,) = created
    assert limits.max_upload_mb == 7 and limits.max_duration_s == 30
    assert limits.max_uploads_in_flight == 3 and limits.body_timeout_s == 9.5
    ((_, kwargs),) = no_server
    assert kwargs["port"] == 8123 and kwargs["host"] == "127.0.0.1"


def test_serve_with_workers_starts_worker_processes_on_the_same_model_and_limits(capsys, model, no_server, monkeypatch, tmp_path):
    """--workers N hands uvicorn an app factory; the model directory and limits travel in the environment."""
    import ser.webapp
    from ser.params import ServeParams

    monkeypatch.delenv(ser.webapp.MODEL_DIR_VARIABLE, raising=False)
    monkeypatch.delenv(ser.webapp.LIMITS_VARIABLE, raising=False)
    code, _, err = run(capsys, "serve", "--model", model, "--params", str(tmp_path / "none.yaml"), "--workers", "3",
                       "--max-upload-mb", "4", "--max-uploads-in-flight", "2")
    assert code == 0, err
    ((app, kwargs),) = no_server
    assert app == "ser.webapp:app_from_environment" and kwargs["factory"] is True and kwargs["workers"] == 3
    assert os.environ[ser.webapp.MODEL_DIR_VARIABLE] == str(Path(model).resolve())
    limits = ServeParams.model_validate_json(os.environ[ser.webapp.LIMITS_VARIABLE])
    assert limits.workers == 3 and limits.max_upload_mb == 4 and limits.max_uploads_in_flight == 2


@pytest.mark.parametrize(
    "option, value, key",
    [("--max-upload-mb", "-1", "max_upload_mb"), ("--max-upload-mb", "0", "max_upload_mb"), ("--max-duration", "-5", "max_duration_s"),
     ("--workers", "0", "workers"), ("--max-uploads-in-flight", "0", "max_uploads_in_flight"),
     ("--body-timeout", "0", "body_timeout_s"), ("--body-timeout", "-1", "body_timeout_s")],
)
def test_serve_invalid_limit_is_a_one_line_error(capsys, model, no_server, tmp_path, option, value, key):
    code, out, err = run(capsys, "serve", "--model", model, "--params", str(tmp_path / "none.yaml"), option, value)
    assert code == 2
    assert no_server == []
    assert err.startswith("ser: error: ")
    assert len(err.splitlines()) == 1, err
    assert key in err


@pytest.mark.parametrize(
    "section",
    [
        "serve:\n  max_upload_mb: 0\n",
        "serve:\n  max_upload_mb: lots\n",
        "serve:\n  bogus: 1\n",
        "serve: 5\n",
        "- a list\n",
        "serve: {max_upload_mb: [unclosed\n",
    ],
    ids=["zero", "text", "unknown-key", "not-a-mapping", "not-a-mapping-file", "bad-yaml"],
)
def test_serve_invalid_params_file_is_a_one_line_error(capsys, model, no_server, tmp_path, section):
    params = tmp_path / "params.yaml"
    params.write_text(section)
    code, out, err = run(capsys, "serve", "--model", model, "--params", str(params))
    assert code == 2
    assert no_server == []
    assert err.startswith(f"ser: error: {params}")
    assert len(err.splitlines()) == 1, err


def test_serve_missing_model_is_a_one_line_error(capsys, no_server, tmp_path):
    code, _, err = run(capsys, "serve", "--model", str(tmp_path / "none"), "--params", str(tmp_path / "none.yaml"))
    assert code == 2
    assert no_server == []
    assert len(err.splitlines()) == 1 and err.startswith("ser: error: ")


def test_console_script_serve_invalid_limit_exits_two(model, tmp_path):
    result = run_script("serve", "--model", model, "--max-upload-mb", "-1", cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("ser: error: ")


def test_many_files_are_scored_in_chunks_with_the_same_results(capsys, model, clips, bad_files, monkeypatch):
    """Scoring CHUNK clips per model call (bad files in between) gives what one call for all gives."""
    import ser.cli

    paths = [str(clips[0]), str(bad_files["silent"]), *map(str, clips[1:])]
    _, whole, _ = run(capsys, "predict", *paths, "--model", model, "--format", "json")
    monkeypatch.setattr(ser.cli, "CHUNK", 2)
    code, chunked, err = run(capsys, "predict", *paths, "--model", model, "--format", "json")
    assert code == 1 and len(error_lines(err)) == 1
    assert [r["file"] for r in json.loads(chunked)] == [str(c) for c in clips]
    for a, b in zip(json.loads(whole), json.loads(chunked)):
        assert a["probabilities"] == pytest.approx(b["probabilities"], abs=1e-6)
