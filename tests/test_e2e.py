"""End to end: the real DVC pipeline on a small real subset of TESS, in a temporary repo."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from benchmarks.common import project_copy, set_params

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
TESS = ROOT.parent / "shared" / "data" / "tess"
QUIRK_FILES = [
    "YAF_angry/YAF_germ_angry.wav", "YAF_fear/YAF_neat_fear.wav",
    "OAF_fear/OAF_food_fear.flac", "OAF_neutral/OA_bite_neutral.flac",
]
FILES_PER_FOLDER = 3
EMOTIONS = {"angry", "disgust", "fear", "happy", "neutral", "ps", "sad"}
PNG = b"\x89PNG\r\n\x1a\n"


def run(args: list[str], cwd: Path) -> str:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "DVC_NO_ANALYTICS": "1",
        "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.com",
    }
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def stages_run(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


SUMMARY = re.compile(
    r"featurized (\d+) clips and (\d+) augmented copies in \d+\.\d s: (\d+) computed, (\d+) from the cache"
)


def featurized(output: str) -> tuple[int, int, int, int]:
    """(clips, copies, computed, from the cache) from the featurize stage's summary line."""
    found = SUMMARY.findall(output)
    assert len(found) == 1, output
    return tuple(int(n) for n in found[0])  # type: ignore[return-value]


def featurize_params(repo: Path) -> dict:
    return yaml.safe_load((repo / "params.yaml").read_text())["featurize"]


def make_subset(target: Path) -> Path:
    """A few real clips per speaker x emotion, plus the corpus's quirky files."""
    for folder in sorted(p for p in TESS.iterdir() if p.is_dir()):
        for clip in sorted(folder.iterdir())[:FILES_PER_FOLDER]:
            (target / folder.name).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(clip, target / folder.name / clip.name)
    for quirk in QUIRK_FILES:
        shutil.copyfile(TESS / quirk, target / quirk)
    return target


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not TESS.is_dir():
        pytest.skip(f"real TESS corpus not found at {TESS}")
    base = tmp_path_factory.mktemp("e2e")
    subset = make_subset(base / "tess")
    repo = project_copy(base / "repo")
    run(["dvc", "remote", "add", "-d", "local", str(base / "remote")], repo)
    # two epochs, no augmented copies: a quick run (one check below turns copies on)
    # the corpus beside the project and named by a relative path, as in the real layout
    # a feature cache of the test's own, never the user's ~/.cache
    set_params(
        repo, data__source=os.path.relpath(subset, repo), train__epochs=2, augment__copies=0,
        featurize__cache=str(base / "feature-cache"),
    )
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "init"], repo)
    return repo


@pytest.fixture(scope="module")
def first_run(repo: Path) -> str:
    return run(["dvc", "repro"], repo)


def test_full_pipeline_runs_every_stage_and_writes_outputs(repo: Path, first_run: str) -> None:
    assert stages_run(first_run) == {"fetch", "eda", "featurize", "train", "evaluate"}
    manifest = (repo / "data/raw/manifest.csv").read_text().splitlines()
    clips = 14 * FILES_PER_FOLDER + len(QUIRK_FILES)
    assert len(manifest) - 1 == clips
    # a fresh cache of the test's own: everything computed, and cached there
    assert featurized(first_run) == (clips, 0, clips, 0)
    cache = Path(featurize_params(repo)["cache"])
    assert cache.is_relative_to(repo.parent) and any(cache.iterdir())
    metrics = json.loads((repo / "reports/metrics.json").read_text())
    assert metrics["protocol"] == "speaker"
    # one fold per held-out speaker, the configured test speaker first
    assert list(metrics["folds"]) == ["test_YAF", "test_OAF"]
    for fold in metrics["folds"].values():
        # each speaker's clips, the two quirky files of each included
        assert fold["n_test"] == 7 * FILES_PER_FOLDER + 2
        assert fold["n_train"] + fold["n_val"] == 7 * FILES_PER_FOLDER + 2
        assert fold["n_val"] > 0
        assert 0 <= fold["accuracy"] <= 1 and 0 <= fold["macro_f1"] <= 1 and 0 <= fold["ece"] <= 1
        assert set(fold["f1"]) == set(fold["recall"]) == set(fold["precision"]) == EMOTIONS
        assert fold["min_recall"] == min(fold["recall"].values())
    folds = metrics["folds"].values()
    assert metrics["accuracy"] == pytest.approx(sum(f["accuracy"] for f in folds) / 2, abs=1e-6)
    assert metrics["min_recall"] == min(f["min_recall"] for f in folds)
    for fold in ("test_YAF", "test_OAF"):
        curve = (repo / f"reports/train/live/{fold}/plots/metrics/train/accuracy.tsv").read_text().splitlines()
        assert len(curve) == 1 + 2  # header + one row per epoch
    train_metrics = json.loads((repo / "reports/train/metrics.json").read_text())
    assert list(train_metrics["folds"]) == ["test_YAF", "test_OAF"]
    assert all(f["n_fit"] == metrics["folds"][name]["n_train"] for name, f in train_metrics["folds"].items())
    for png in [
        "reports/eval/confusion/test_YAF.png", "reports/eval/confusion/test_OAF.png",
        "reports/train/curves/test_YAF.png", "reports/train/curves/test_OAF.png", "reports/eda/spectrogram_ps.png",
    ]:
        assert (repo / png).read_bytes()[:8] == PNG, png
    # the deployable model holds out test_speaker; the other fold's model is under models/cross
    for model_dir, fold in (("models", "test_YAF"), ("models/cross/test_OAF", "test_OAF")):
        assert (repo / model_dir / "model.keras").stat().st_size > 0
        assert json.loads((repo / model_dir / "meta.json").read_text())["fold"] == fold
        split = (repo / model_dir / "split.csv").read_text()
        assert split.count(",test\n") == 7 * FILES_PER_FOLDER + 2
    predictions = (repo / "reports/eval/predictions.csv").read_text().splitlines()
    assert predictions[0].startswith("fold,file,actual,predicted,confidence,p_angry")
    assert len(predictions) - 1 == 2 * (7 * FILES_PER_FOLDER + 2)  # every clip is tested once
    mistakes = (repo / "reports/eval/mistakes.csv").read_text().splitlines()
    assert mistakes[0] == "fold,file,actual,predicted,confidence"
    assert (repo / "reports/eval/mistakes.md").exists()
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], repo))
    assert "reports/metrics.json" in json.dumps(shown)


def test_second_repro_is_a_no_op(repo: Path, first_run: str) -> None:
    output = run(["dvc", "repro"], repo)
    assert stages_run(output) == set()
    assert "up to date" in run(["dvc", "status"], repo)


def test_ser_predict_gives_the_pipelines_probabilities(repo: Path, first_run: str) -> None:
    """The CLI on the held-out speaker's clips, normalized as one speaker (--adapt, as evaluate does),
    reproduces evaluate's probabilities through the ONNX export; `ser info` reports the fold's scores."""
    set_params(repo, split__protocol="speaker", model__arch="bigru", model__normalize="speaker")
    run(["dvc", "repro"], repo)
    ser = str(Path(sys.executable).with_name("ser"))
    clips = sorted((repo / "data/raw/audio").glob("YAF_*/*"))
    predicted = json.loads(run([ser, "predict", "--adapt", "--format", "json", *map(str, clips)], repo))
    evaluated = {
        row["file"]: row for row in csv.DictReader((repo / "reports/eval/predictions.csv").open())
        if row["fold"] == "test_YAF"
    }
    assert len(predicted) == len(clips) == len(evaluated)
    for result in predicted:
        row = evaluated[str(Path(result["file"]).relative_to(repo / "data/raw"))]
        for label, probability in result["probabilities"].items():
            assert probability == pytest.approx(float(row[f"p_{label}"]), abs=1e-4), (result["file"], label)
    info = yaml.safe_load(run([ser, "info"], repo))
    metrics = json.loads((repo / "reports/metrics.json").read_text())["folds"]["test_YAF"]
    assert info["fold"] == "test_YAF" and info["metrics"]["accuracy"] == metrics["accuracy"]
    assert 0 <= metrics["serving_accuracy"] <= 1


def test_train_param_reruns_only_train_and_evaluate(repo: Path, first_run: str) -> None:
    set_params(repo, train__epochs=1)
    assert stages_run(run(["dvc", "repro"], repo)) == {"train", "evaluate"}


def test_features_param_reruns_featurize_train_and_evaluate(repo: Path, first_run: str) -> None:
    set_params(repo, features__n_mfcc=20)
    output = run(["dvc", "repro"], repo)
    assert stages_run(output) == {"featurize", "train", "evaluate"}
    clips = 14 * FILES_PER_FOLDER + len(QUIRK_FILES)
    assert featurized(output) == (clips, 0, clips, 0)  # other features: nothing from the cache
    features = json.loads((repo / "data/features/params.json").read_text())
    assert features["features"]["n_mfcc"] == 20
    meta = json.loads((repo / "models/meta.json").read_text())
    assert meta["input_shape"][-1] == 2 * 20 + 1  # deltas 1, plus the frame mask


def test_model_param_reruns_only_train_and_evaluate(repo: Path, first_run: str) -> None:
    set_params(repo, model__arch="seed_lstm", model__normalize="utterance")
    assert stages_run(run(["dvc", "repro"], repo)) == {"train", "evaluate"}
    meta = json.loads((repo / "models/cross/test_OAF/meta.json").read_text())
    assert meta["model"]["arch"] == "seed_lstm"
    assert meta["input_shape"][-1] == 1  # pooled (channels, 1)


def test_experiment_with_another_protocol_shows_in_diffs(repo: Path, first_run: str) -> None:
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "baseline"], repo)
    output = run(["dvc", "exp", "run", "-S", "split.protocol=random"], repo)
    assert stages_run(output) == {"train", "evaluate"}
    metrics = json.loads((repo / "reports/metrics.json").read_text())
    assert metrics["protocol"] == "random" and list(metrics["folds"]) == ["random"]
    assert not (repo / "models/cross").exists()  # no stale models of the speaker folds
    assert "split.protocol" in run(["dvc", "params", "diff"], repo)
    assert "n_test" in run(["dvc", "metrics", "diff"], repo)


def test_augmented_copies_reach_training_only(repo: Path, first_run: str) -> None:
    run(["dvc", "repro"], repo)
    before = json.loads((repo / "reports/metrics.json").read_text())["folds"]
    assert (repo / "data/features/augmented.csv").read_text().count("\n") == 1  # header only: copies 0
    set_params(repo, augment__copies=1)
    output = run(["dvc", "repro"], repo)
    assert stages_run(output) == {"featurize", "train", "evaluate"}
    clips = 14 * FILES_PER_FOLDER + len(QUIRK_FILES)
    assert featurized(output) == (clips, clips, clips, clips)  # the copies computed, the clips from the cache
    augmented = (repo / "data/features/augmented.csv").read_text().splitlines()
    assert len(augmented) - 1 == 14 * FILES_PER_FOLDER + len(QUIRK_FILES)
    train = json.loads((repo / "reports/train/metrics.json").read_text())["folds"]
    metrics = json.loads((repo / "reports/metrics.json").read_text())["folds"]
    assert list(metrics) == list(before)
    for fold, summary in train.items():
        assert summary["n_fit"] == 2 * metrics[fold]["n_train"]  # each training clip and its copy
        for part in ("n_train", "n_val", "n_test"):  # the parts themselves do not change
            assert metrics[fold][part] == before[fold][part]


def test_push_then_pull_in_a_fresh_clone_restores_artifacts(repo: Path, first_run: str, tmp_path: Path) -> None:
    run(["dvc", "repro"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "results"], repo)
    run(["dvc", "push"], repo)
    clone = repo.parent / "clone"  # beside the corpus, so that the relative data.source resolves
    run(["git", "clone", "-q", str(repo), str(clone)], tmp_path)
    run(["dvc", "pull"], clone)
    assert (clone / "models/model.keras").read_bytes() == (repo / "models/model.keras").read_bytes()
    assert (clone / "data/features/features.npy").exists()
    assert "up to date" in run(["dvc", "status"], clone)


def test_queued_experiment_runs_in_a_temporary_copy(repo: Path, first_run: str) -> None:
    """The README's tuning recipe: queue with --allow-missing (the relative data.source is not in the copy)."""
    run(["dvc", "repro"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "--allow-empty", "-m", "before queue"], repo)
    run(["dvc", "exp", "run", "--queue", "--allow-missing", "-n", "queued-one-epoch", "-S", "train.epochs=1"], repo)
    run(["dvc", "queue", "start", "-j", "1"], repo)
    deadline = time.monotonic() + 600
    while re.search(r"\b(Queued|Running)\b", run(["dvc", "queue", "status"], repo)):
        assert time.monotonic() < deadline, "queued experiment did not finish in 10 minutes"
        time.sleep(2)
    assert "Success" in run(["dvc", "queue", "status"], repo), run(["dvc", "queue", "logs", "queued-one-epoch"], repo)
    row = next(line for line in run(["dvc", "exp", "show", "--csv"], repo).splitlines() if "queued-one-epoch" in line)
    assert re.search(r",0\.\d+,", row), row  # it has metrics


def test_a_new_clip_is_the_only_one_featurized(repo: Path, first_run: str) -> None:
    """A clip added to the corpus: featurize reruns and computes that clip (and its copies) alone."""
    run(["dvc", "repro", "featurize"], repo)  # the current params featurized, so every clip is in the cache
    subset = (repo / yaml.safe_load((repo / "params.yaml").read_text())["data"]["source"]).resolve()
    folder = "OAF_happy"
    new = sorted((TESS / folder).iterdir())[FILES_PER_FOLDER]  # the first file the subset left out
    target = subset / folder / new.name
    assert not target.exists()
    shutil.copyfile(new, target)
    try:
        output = run(["dvc", "repro", "featurize"], repo)
        assert stages_run(output) == {"fetch", "featurize"}
        copies = yaml.safe_load((repo / "params.yaml").read_text())["augment"]["copies"]
        clips = 14 * FILES_PER_FOLDER + len(QUIRK_FILES) + 1
        assert featurized(output) == (clips, clips * copies, 1 + copies, (clips - 1) * (1 + copies))
        index = (repo / "data/features/index.csv").read_text()
        assert f"audio/{folder}/{new.name}," in index
        assert "up to date" in run(["dvc", "status", "featurize"], repo)
    finally:
        target.unlink()
