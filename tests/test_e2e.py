"""End to end: the real DVC pipeline on a small real subset of TESS, in a temporary repo."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
TESS = ROOT.parent / "shared" / "data" / "tess"
PROJECT_FILES = ["dvc.yaml", "params.yaml", ".dvcignore", ".gitignore", "stages", "ser"]
QUIRK_FILES = [
    "YAF_angry/YAF_germ_angry.wav", "YAF_fear/YAF_neat_fear.wav",
    "OAF_fear/OAF_food_fear.flac", "OAF_neutral/OA_bite_neutral.flac",
]
FILES_PER_FOLDER = 3


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


def set_params(repo: Path, **changes: object) -> None:
    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text())
    for key, value in changes.items():
        section, name = key.split("__")
        params[section][name] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))


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
    repo = base / "repo"
    repo.mkdir()
    for name in PROJECT_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copyfile(source, repo / name)
    run(["git", "init", "-q"], repo)
    run(["dvc", "init", "-q"], repo)
    run(["dvc", "config", "core.analytics", "false"], repo)
    run(["dvc", "remote", "add", "-d", "local", str(base / "remote")], repo)
    set_params(repo, data__source=str(subset), train__epochs=2)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "init"], repo)
    return repo


@pytest.fixture(scope="module")
def first_run(repo: Path) -> str:
    return run(["dvc", "repro"], repo)


def test_full_pipeline_runs_every_stage_and_writes_outputs(repo: Path, first_run: str) -> None:
    assert stages_run(first_run) == {"fetch", "eda", "featurize", "train", "evaluate"}
    manifest = (repo / "data/raw/manifest.csv").read_text().splitlines()
    assert len(manifest) - 1 == 14 * FILES_PER_FOLDER + len(QUIRK_FILES)
    metrics = json.loads((repo / "reports/metrics.json").read_text())
    assert metrics["protocol"] == "speaker" and metrics["test_speaker"] == "YAF"
    assert metrics["n_test"] == 7 * FILES_PER_FOLDER + 2  # YAF clips, the two AIFF quirks included
    assert 0 <= metrics["accuracy"] <= 1 and 0 <= metrics["macro_f1"] <= 1
    assert set(metrics["f1"]) == {"angry", "disgust", "fear", "happy", "neutral", "ps", "sad"}
    curve = (repo / "reports/train/plots/metrics/train/accuracy.tsv").read_text().splitlines()
    assert len(curve) == 1 + 2  # header + one row per epoch
    for png in ["reports/eval/confusion_matrix.png", "reports/train/curves.png", "reports/eda/spectrogram_ps.png"]:
        assert (repo / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (repo / "models/model.keras").stat().st_size > 0
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], repo))
    assert "reports/metrics.json" in json.dumps(shown)


def test_second_repro_is_a_no_op(repo: Path, first_run: str) -> None:
    output = run(["dvc", "repro"], repo)
    assert stages_run(output) == set()
    assert "up to date" in run(["dvc", "status"], repo)


def test_train_param_reruns_only_train_and_evaluate(repo: Path, first_run: str) -> None:
    set_params(repo, train__epochs=1)
    assert stages_run(run(["dvc", "repro"], repo)) == {"train", "evaluate"}


def test_mfcc_param_reruns_featurize_train_and_evaluate(repo: Path, first_run: str) -> None:
    set_params(repo, mfcc__n_mfcc=20)
    assert stages_run(run(["dvc", "repro"], repo)) == {"featurize", "train", "evaluate"}
    features = json.loads((repo / "data/features/params.json").read_text())
    assert features["mfcc"]["n_mfcc"] == 20


def test_experiment_with_another_protocol_shows_in_diffs(repo: Path, first_run: str) -> None:
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "baseline"], repo)
    output = run(["dvc", "exp", "run", "-S", "split.protocol=random"], repo)
    assert stages_run(output) == {"train", "evaluate"}
    assert json.loads((repo / "reports/metrics.json").read_text())["protocol"] == "random"
    assert "split.protocol" in run(["dvc", "params", "diff"], repo)
    assert "n_test" in run(["dvc", "metrics", "diff"], repo)


def test_push_then_pull_in_a_fresh_clone_restores_artifacts(repo: Path, first_run: str, tmp_path: Path) -> None:
    run(["dvc", "repro"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "results"], repo)
    run(["dvc", "push"], repo)
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(repo), str(clone)], tmp_path)
    run(["dvc", "pull"], clone)
    assert (clone / "models/model.keras").read_bytes() == (repo / "models/model.keras").read_bytes()
    assert (clone / "data/features/features.npy").exists()
    assert "up to date" in run(["dvc", "status"], clone)
