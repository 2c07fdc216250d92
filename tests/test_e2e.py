"""End to end: the real DVC pipeline on small real subsets of TESS, RAVDESS and EMOVO, in a temporary repo.

One repo is shared by the whole module and its tests run in order, each on the state the previous
ones left: a first `dvc repro` of every stage, the CLI on its models, a no-op repro, a clip added
to one corpus, a queued experiment of the corpus protocol, and a corpus removed from the sources.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml

from benchmarks.common import project_copy, set_params
from ser.paths import (
    EDA_DIR, EVAL_DIR, FEATURE_DIR, FETCH_REPORT_DIR, FOLD_MODEL_DIR, MANIFEST, METRICS, MODEL_DIR, RAW_DIR, TRAIN_CURVES_DIR,
    TRAIN_LIVE_DIR, TRAIN_METRICS,
)

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
CORPORA = ("tess", "ravdess", "emovo", "ased")
"""The corpora of the first run; ``ADDED`` joins them in the last test."""
ADDED = "nemo"
EMOTIONS = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
TESS_PER_FOLDER = 2
TESS_QUIRKS = [  # two AIFF files under a .wav name, the 96 kHz file, the speaker named OA
    "YAF_angry/YAF_germ_angry.wav", "YAF_fear/YAF_neat_fear.wav",
    "OAF_fear/OAF_food_fear.flac", "OAF_neutral/OA_bite_neutral.flac",
]
RAVDESS_ACTORS = ("Actor_13", "Actor_14")
EMOVO_SPEAKERS = ("f1", "m1")
ASED_SPEAKERS = ("01", "03")
ASED_QUIRK = "04Sad/S4-04-02-01-29.opus"  # the one upper-case prefix (speaker 29)
NEMO_SPEAKERS = ("EB0", "IC0")
# what the subsets hold: TESS 14 folders x 2 + 4 quirks; RAVDESS, EMOVO, ASED and nEMO one clip per speaker
# and emotion (RAVDESS's 8 emotions with calm, left out: 7 kept; EMOVO's 7; ASED's 5, plus its quirk; nEMO's 6)
KEPT = {"tess": 14 * TESS_PER_FOLDER + len(TESS_QUIRKS), "ravdess": 2 * 7, "emovo": 2 * 7, "ased": 2 * 5 + 1}
ADDED_CLIPS = 2 * 6
CALM = len(RAVDESS_ACTORS)
SPEAKERS = {
    "tess": {"tess/OAF", "tess/YAF"},
    "ravdess": {"ravdess/13", "ravdess/14"},
    "emovo": {"emovo/f1", "emovo/m1"},
    "ased": {"ased/01", "ased/03", "ased/29"},
}
SPEAKER_COUNT = sum(len(speakers) for speakers in SPEAKERS.values())
NETWORK = "bigru"
"""The network of params.yaml's ensemble (model.members): the member that logs training curves."""
NEW_CLIP_FOLDER = "OAF_happy"  # the test adds a TESS clip of this folder, one the subset left out
PNG = b"\x89PNG\r\n\x1a\n"


def command_env() -> dict[str, str]:
    """The environment of the commands the tests run: this Python's tools first on PATH, no analytics, a git identity."""
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "DVC_NO_ANALYTICS": "1",
        "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.com",
    }


def run(args: list[str], cwd: Path) -> str:
    done = subprocess.run(args, cwd=cwd, env=command_env(), capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def run_queue(repo: Path, timeout: float = 300) -> None:
    """Start the experiment queue's worker (one experiment at a time) and wait until none is queued or running."""
    run(["dvc", "queue", "start", "-j", "1"], repo)
    deadline = time.monotonic() + timeout
    while re.search(r"\b(Queued|Running)\b", run(["dvc", "queue", "status"], repo)):
        assert time.monotonic() < deadline, f"queued experiments did not finish in {timeout:.0f} s"
        time.sleep(2)


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


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)


def make_subsets(base: Path) -> dict[str, Path]:
    """A few real clips per speaker and emotion of each corpus, with TESS's quirky files."""
    tess = SHARED / "tess"
    for folder in sorted(p for p in tess.iterdir() if p.is_dir()):
        for clip in sorted(folder.iterdir())[:TESS_PER_FOLDER]:
            copy(clip, base / "tess" / folder.name / clip.name)
    for quirk in TESS_QUIRKS:
        copy(tess / quirk, base / "tess" / quirk)
    for actor in RAVDESS_ACTORS:  # the first clip of each emotion code, calm (02) included
        clips = sorted((SHARED / "ravdess" / actor).iterdir())
        for code in range(1, 9):
            clip = next(c for c in clips if c.name.split("-")[2] == f"{code:02d}")
            copy(clip, base / "ravdess" / actor / clip.name)
    for speaker in EMOVO_SPEAKERS:  # the first clip of each emotion
        clips = sorted((SHARED / "emovo" / speaker).iterdir())
        for emotion in sorted({c.name.split("-")[0] for c in clips}):
            clip = next(c for c in clips if c.name.startswith(f"{emotion}-"))
            copy(clip, base / "emovo" / speaker / clip.name)
    for folder in sorted((SHARED / "ased").iterdir()):  # each speaker's first clip of each emotion
        for speaker in ASED_SPEAKERS:
            clip = next(c for c in sorted(folder.iterdir()) if c.stem.split("-")[-1] == speaker)
            copy(clip, base / "ased" / folder.name / clip.name)
    copy(SHARED / "ased" / ASED_QUIRK, base / "ased" / ASED_QUIRK)
    make_nemo_subset(base / ADDED)
    return {corpus: base / corpus for corpus in (*CORPORA, ADDED)}


def make_nemo_subset(target: Path) -> None:
    """nEMO's first clip of each emotion of ``NEMO_SPEAKERS``, and data.tsv's lines of those clips."""
    lines = (SHARED / "nemo" / "data.tsv").read_text(encoding="utf-8").splitlines()
    chosen: dict[tuple[str, str], str] = {}
    for line in lines[1:]:
        file_id, emotion, *_ = line.split("\t")
        if file_id.split("_")[0] in NEMO_SPEAKERS:
            chosen.setdefault((file_id.split("_")[0], emotion), line)
    target.mkdir(parents=True)
    (target / "data.tsv").write_text("\n".join([lines[0], *chosen.values()]) + "\n", encoding="utf-8")
    for line in chosen.values():
        name = line.split("\t")[0]
        copy(SHARED / "nemo" / name, target / name)


def sources(repo: Path, subsets: dict[str, Path], corpora: tuple[str, ...] = CORPORA) -> dict:
    """``data.sources`` on the subsets, named by relative paths as in the real layout."""
    return {corpus: {"recipe": corpus, "source": os.path.relpath(subsets[corpus], repo)} for corpus in corpora}


def maps(corpora: tuple[str, ...] = CORPORA) -> dict:
    """``data.maps``: RAVDESS's calm left out, as in params.yaml."""
    return {"ravdess": {"calm": None}} if "ravdess" in corpora else {}


@pytest.fixture(scope="module")
def subsets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if missing := [c for c in (*CORPORA, ADDED) if not (SHARED / c).is_dir()]:
        pytest.skip(f"real corpora not found in {SHARED}: {', '.join(missing)}")
    return make_subsets(tmp_path_factory.mktemp("corpora"))


@pytest.fixture(scope="module")
def repo(subsets: dict[str, Path]) -> Path:
    base = subsets["tess"].parent
    repo = project_copy(base / "repo")
    # the corpora beside the project, named by relative paths; two epochs, no augmented copies,
    # two speaker folds; one clip per corpus and class through the recording chain; a feature cache of the
    # test's own, never the user's ~/.cache
    set_params(
        repo, data__sources=sources(repo, subsets), data__maps=maps(), data__emotions=EMOTIONS, split__protocol="speaker",
        split__folds=2, split__train_corpora=[], train__epochs=2, augment__copies=0, robustness__clips_per_class=1,
        runtime__featurize__cache=str(base / "feature-cache"),
    )
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "init"], repo)
    return repo


@pytest.fixture(scope="module")
def first_run(repo: Path) -> str:
    return run(["dvc", "repro"], repo)


def test_full_pipeline_runs_every_stage_and_writes_outputs(repo: Path, first_run: str) -> None:
    assert stages_run(first_run) == {
        "fetch@tess", "fetch@ravdess", "fetch@emovo", "fetch@ased", "labels", "eda", "featurize", "robustness", "train", "evaluate",
    }
    for corpus in CORPORA:
        folder = repo / RAW_DIR / corpus
        fetched = read_csv(folder / "manifest.csv")
        assert len(fetched) == KEPT[corpus] + (CALM if corpus == "ravdess" else 0)
        assert all((folder / row["file"]).is_file() for row in fetched)
        assert read_csv(folder / "rejected.csv") == []  # the quirky TESS files are all read
    manifest = read_csv(repo / MANIFEST)
    assert Counter(row["corpus"] for row in manifest) == KEPT
    assert {row["speaker"] for row in manifest} == set().union(*SPEAKERS.values())
    assert {row["emotion"] for row in manifest} == set(EMOTIONS)
    quirks = {row["source"]: row for row in manifest if row["corpus"] == "tess" and row["source"] in TESS_QUIRKS}
    assert len(quirks) == len(TESS_QUIRKS)
    assert quirks["OAF_neutral/OA_bite_neutral.flac"]["speaker"] == "tess/OAF"
    assert quirks["OAF_fear/OAF_food_fear.flac"]["sample_rate"] == "96000"
    assert quirks["YAF_angry/YAF_germ_angry.wav"]["format"] == "AIFF"
    quirk = next(row for row in manifest if row["corpus"] == "ased" and row["source"] == ASED_QUIRK)
    assert (quirk["speaker"], quirk["emotion"], quirk["format"]) == ("ased/29", "sad", "OGG")  # Ogg Opus, read as it is
    clips = sum(KEPT.values())
    # a fresh cache of the test's own: everything computed, and cached there
    assert featurized(first_run) == (clips, 0, clips, 0)
    cache = Path(yaml.safe_load((repo / "params.yaml").read_text())["runtime"]["featurize"]["cache"])
    assert cache.is_relative_to(repo.parent) and any(cache.iterdir())
    train = read_json(repo / TRAIN_METRICS)
    assert list(train["folds"]) == ["fold1", "fold2"]
    for fold in ("fold1", "fold2"):
        assert (repo / FOLD_MODEL_DIR / fold / "model.onnx").stat().st_size > 0
        assert read_json(repo / FOLD_MODEL_DIR / fold / "meta.json")["fold"] == fold
        curve = (repo / TRAIN_LIVE_DIR / fold / NETWORK / "plots/metrics/train/accuracy.tsv").read_text().splitlines()
        assert len(curve) == 1 + 2  # header + one row per epoch
    fold_scores = (repo / TRAIN_LIVE_DIR / "folds/plots/metrics/val_accuracy.tsv").read_text().splitlines()
    assert len(fold_scores) == 1 + 2  # header + one row per fold
    deployable = read_json(repo / MODEL_DIR / "meta.json")
    assert deployable["fold"] == "all" and deployable["classes"] == EMOTIONS
    assert deployable["trained_on"] == {"corpora": KEPT, "speakers": SPEAKER_COUNT, "clips": clips}
    split = read_csv(repo / MODEL_DIR / "split.csv")
    assert len(split) == clips and {row["part"] for row in split} == {"train"}  # all the data, nothing held out
    check_functionals_and_inputs(repo, clips)
    for png in [
        EVAL_DIR / "confusion/all.png", *(EVAL_DIR / f"confusion/{c}.png" for c in CORPORA),
        TRAIN_CURVES_DIR / f"fold1-{NETWORK}.png", TRAIN_CURVES_DIR / f"all-{NETWORK}.png", TRAIN_CURVES_DIR / "folds.png",
        EDA_DIR / "spectrogram_surprise.png",
    ]:
        assert (repo / png).read_bytes()[:8] == PNG, png
    for corpus in CORPORA:
        by_corpus = read_csv(repo / EVAL_DIR / "by_corpus" / f"{corpus}.csv")
        assert len(by_corpus) == KEPT[corpus] and set(by_corpus[0]) == {"actual", "predicted"}
    assert str(METRICS) in run(["dvc", "metrics", "show", "--json"], repo)
    # one clip per corpus and class, each scored alone through every transform of the recording chain
    robustness = read_json(repo / METRICS)["robustness"]
    transforms = yaml.safe_load((repo / "params.yaml").read_text())["robustness"]["transforms"]
    classes = {(row["corpus"], row["emotion"]) for row in manifest}
    assert robustness["n_clips"] == len(classes) and list(robustness) == ["n_clips", "untransformed", *transforms]
    assert all(0 <= robustness[name]["unchanged"] <= 1 for name in transforms)
    assert len(read_csv(repo / EVAL_DIR / "robustness_predictions.csv")) == len(classes) * len(transforms)
    assert (repo / EVAL_DIR / "robustness.png").read_bytes()[:8] == PNG


def check_functionals_and_inputs(repo: Path, clips: int) -> None:
    """featurize wrote a file per functional set of params.yaml, a row per clip; every model's graph has
    an input per member, the classifiers' named after the set each reads (``logreg:compare``)."""
    import onnx

    from ser.functionals import SIZES
    from ser.inputs import input_name
    from ser.params import load_params

    params = load_params(repo / "params.yaml")
    computed = params.features.functionals
    assert computed and read_json(repo / FEATURE_DIR / "params.json")["features"]["functionals"] == computed
    assert sorted(p.name for p in (repo / FEATURE_DIR).glob("functionals_*.npy")) == sorted(f"functionals_{k}.npy" for k in computed)
    for kind in computed:
        described = np.load(repo / FEATURE_DIR / f"functionals_{kind}.npy")
        assert described.shape == (clips, SIZES[kind]) and np.isfinite(described).all()
    names = [input_name(member) for member in params.model.member_params()]
    assert any(name.startswith("utterance_") for name in names)
    for model_dir in (MODEL_DIR, FOLD_MODEL_DIR / "fold1", FOLD_MODEL_DIR / "fold2"):
        graph = onnx.load(repo / model_dir / "model.onnx").graph
        assert {i.name for i in graph.input} == set(names), model_dir
        meta = read_json(repo / model_dir / "meta.json")
        assert meta["model"]["members"] == params.model.members and set(meta["reference_stats"]) == set(names)


def test_calm_clips_are_left_out_and_counted(repo: Path, first_run: str) -> None:
    summary = read_json(repo / FETCH_REPORT_DIR / "summary.json")
    assert summary["clips"] == sum(KEPT.values()) and summary["speakers"] == SPEAKER_COUNT
    assert summary["left_out"] == {"ravdess": {"calm": CALM}}
    assert {corpus: sum(counts.values()) for corpus, counts in summary["kept"].items()} == KEPT
    assert "calm" not in summary["kept"]["ravdess"] and "surprise" in summary["kept"]["ravdess"]
    assert summary["rejected"] == {} and summary["repeated_audio"] == 0
    rejected = read_csv(repo / FETCH_REPORT_DIR / "rejected.csv")
    assert len(rejected) == CALM
    assert all(row["corpus"] == "ravdess" and "'calm'" in row["reason"] and row["counts_as_rejected"] == "False"
               for row in rejected)
    assert all(row["file"].split("-")[2] == "02" for row in rejected)


def test_every_speaker_is_tested_once_and_scored_by_corpus_and_speaker(repo: Path, first_run: str) -> None:
    metrics = read_json(repo / METRICS)
    assert metrics["protocol"] == "speaker" and list(metrics["folds"]) == ["fold1", "fold2"]
    assert set(metrics["by_corpus"]) == set(CORPORA)
    assert set(metrics["by_speaker"]) == set().union(*SPEAKERS.values())
    for corpus, scores in metrics["by_corpus"].items():
        assert scores["n_test"] == KEPT[corpus] and 0 <= scores["accuracy"] <= 1
    assert metrics["n_test"] == sum(KEPT.values())
    assert metrics["corpus_mean_accuracy"] == pytest.approx(
        sum(s["accuracy"] for s in metrics["by_corpus"].values()) / len(CORPORA), abs=1e-4  # each rounded to 4 places
    )
    for fold in metrics["folds"].values():
        assert 0 <= fold["accuracy"] <= 1 and 0 <= fold["macro_f1"] <= 1 and 0 <= fold["ece"] <= 1
        assert fold["n_val"] > 0 and fold["n_train"] > 0
        assert fold["n_train"] + fold["n_val"] + fold["n_test"] == sum(KEPT.values())
    predictions = read_csv(repo / EVAL_DIR / "predictions.csv")
    columns = ["fold", "file", "corpus", "speaker", "text", "actual", "predicted", "confidence", "served", "adapted_5",
               "adapted_20"]
    assert list(predictions[0]) == columns + [f"p_{e}" for e in EMOTIONS]
    files = Counter(row["file"] for row in predictions)
    assert len(files) == sum(KEPT.values()) and set(files.values()) == {1}  # every clip tested once
    folds_of = {}
    for row in predictions:
        folds_of.setdefault(row["speaker"], set()).add(row["fold"])
    assert set(folds_of) == set(metrics["by_speaker"]) and all(len(f) == 1 for f in folds_of.values())
    for corpus, speakers in SPEAKERS.items():  # folds balanced by corpus: a speaker of each in each fold
        assert {next(iter(folds_of[s])) for s in speakers} == {"fold1", "fold2"}, corpus
    for speaker, scores in metrics["by_speaker"].items():
        assert scores["n_test"] == sum(row["speaker"] == speaker for row in predictions)


def test_ser_predict_and_info(repo: Path, first_run: str) -> None:
    """The deployable model scores clips of every corpus and shows its corpora and classes; a fold's
    model reproduces evaluate's probabilities on its held-out TESS speaker through the ONNX export
    (normalized as one speaker, ``--adapt``, as evaluate does; TESS clips fit one window)."""
    ser = str(Path(sys.executable).with_name("ser"))
    clips = [sorted((repo / RAW_DIR / corpus / "audio").rglob("*.*"))[0] for corpus in CORPORA]
    predicted = json.loads(run([ser, "predict", "--format", "json", *map(str, clips)], repo))
    assert [p["file"] for p in predicted] == list(map(str, clips))
    for prediction in predicted:
        assert set(prediction["probabilities"]) == set(EMOTIONS) and prediction["emotion"] in EMOTIONS
        assert sum(prediction["probabilities"].values()) == pytest.approx(1, abs=1e-4)
    info = yaml.safe_load(run([ser, "info"], repo))
    assert info["fold"] == "all" and info["classes"] == EMOTIONS
    assert info["trained_on"]["corpora"] == KEPT
    metrics = read_json(repo / METRICS)
    assert info["metrics"]["fold"] == "all folds" and info["metrics"]["accuracy"] == metrics["accuracy"]
    assert info["metrics"]["corpus_accuracy"] == {c: s["accuracy"] for c, s in metrics["by_corpus"].items()}

    evaluated = [row for row in read_csv(repo / EVAL_DIR / "predictions.csv") if row["speaker"] == "tess/YAF"]
    fold = evaluated[0]["fold"]
    speaker_clips = sorted((repo / RAW_DIR / "tess/audio").glob("YAF_*/*"))
    assert len(speaker_clips) == len(evaluated)
    model = str(FOLD_MODEL_DIR / fold)
    command = [ser, "predict", "--model", model, "--adapt", "--format", "json", *map(str, speaker_clips)]
    predicted = json.loads(run(command, repo))
    rows = {row["file"]: row for row in evaluated}
    for result in predicted:
        row = rows[str(Path(result["file"]).relative_to(repo / RAW_DIR))]
        for label, probability in result["probabilities"].items():
            assert probability == pytest.approx(float(row[f"p_{label}"]), abs=1e-4), (result["file"], label)
    fold_info = yaml.safe_load(run([ser, "info", "--model", model], repo))
    assert fold_info["fold"] == fold and fold_info["metrics"]["accuracy"] == metrics["folds"][fold]["accuracy"]


def test_second_repro_is_a_no_op(repo: Path, first_run: str) -> None:
    assert stages_run(run(["dvc", "repro"], repo)) == set()
    assert "up to date" in run(["dvc", "status"], repo)


def test_a_forced_repro_gives_byte_identical_outputs(repo: Path, first_run: str) -> None:
    """Every stage run again (`dvc repro -f`): the same code, params and data give the same bytes,
    the models' ONNX graphs included, so dvc.lock is unchanged."""
    before = (repo / "dvc.lock").read_text()
    output = run(["dvc", "repro", "-f"], repo)
    assert "train" in stages_run(output)
    assert (repo / "dvc.lock").read_text() == before


def test_a_clip_added_to_one_corpus_reruns_only_its_fetch(repo: Path, first_run: str, subsets: dict[str, Path]) -> None:
    """The new clip: fetch@tess and what follows rerun, not the other corpora's fetch; featurize
    computes that clip alone and reads the others from its cache. The clip stays for the next tests
    (eda, train and evaluate, left to rerun, run in the queued experiment)."""
    new = sorted((SHARED / "tess" / NEW_CLIP_FOLDER).iterdir())[TESS_PER_FOLDER]  # the first file the subset left out
    target = subsets["tess"] / NEW_CLIP_FOLDER / new.name
    assert not target.exists()
    shutil.copyfile(new, target)
    status = run(["dvc", "status"], repo)
    assert "fetch@tess:" in status and "fetch@ravdess:" not in status and "fetch@emovo:" not in status
    output = run(["dvc", "repro", "featurize"], repo)
    assert stages_run(output) == {"fetch@tess", "labels", "featurize"}
    clips = sum(KEPT.values()) + 1
    assert featurized(output) == (clips, 0, 1, clips - 1)
    assert f"tess/audio/{NEW_CLIP_FOLDER}/{new.name}," in (repo / FEATURE_DIR / "index.csv").read_text()
    assert read_json(repo / FETCH_REPORT_DIR / "summary.json")["kept"]["tess"]["happy"] == 2 * TESS_PER_FOLDER + 1
    assert "up to date" in run(["dvc", "status", "featurize"], repo)


def test_queued_corpus_protocol_experiment_tests_each_corpus_once(repo: Path, first_run: str) -> None:
    """The README's recipe: queued with --allow-missing, run in a copy under .dvc/tmp/exps where the
    corpora's relative paths do not exist: the fetch stages are skipped (unchanged) and the
    experiment leaves one corpus out at a time."""
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "a new TESS clip"], repo)
    name = "corpus-protocol"
    # cnn1d alone: the quickest model to train (the default, params.yaml's ensemble, ran above)
    overrides = ["-S", "split.protocol=corpus", "-S", "model.arch=cnn1d", "-S", "model.members=[]"]
    run(["dvc", "exp", "run", "--queue", "--allow-missing", "-n", name, *overrides], repo)
    run_queue(repo)
    logs = run(["dvc", "queue", "logs", name], repo)
    assert "Success" in run(["dvc", "queue", "status"], repo), logs
    for corpus in CORPORA:
        assert f"Stage 'fetch@{corpus}' didn't change, skipping" in logs, logs
    assert stages_run(logs) == {"eda", "robustness", "train", "evaluate"}, logs  # eda, robustness: the clip added above
    run(["dvc", "exp", "apply", name], repo)
    metrics = read_json(repo / METRICS)
    assert metrics["protocol"] == "corpus"
    assert read_json(repo / MODEL_DIR / "meta.json")["model"]["arch"] == "cnn1d"
    assert list(metrics["folds"]) == [f"test_{c}" for c in sorted(CORPORA)]
    predictions = read_csv(repo / EVAL_DIR / "predictions.csv")
    assert len({row["file"] for row in predictions}) == len(predictions) == sum(KEPT.values()) + 1
    assert {row["corpus"]: row["fold"] for row in predictions} == {c: f"test_{c}" for c in CORPORA}
    assert Counter((row["corpus"], row["fold"]) for row in predictions) == {
        (c, f"test_{c}"): KEPT[c] + (c == "tess") for c in CORPORA
    }
    for corpus in CORPORA:  # each fold's model learned from the other corpora only
        trained_on = read_json(repo / FOLD_MODEL_DIR / f"test_{corpus}" / "meta.json")["trained_on"]["corpora"]
        assert set(trained_on) == set(CORPORA) - {corpus}
    assert read_json(repo / MODEL_DIR / "meta.json")["trained_on"]["corpora"].keys() == set(CORPORA)


def test_a_corpus_removed_from_the_sources_leaves_the_metrics(
    repo: Path, first_run: str, subsets: dict[str, Path]
) -> None:
    """labels and what follows rerun (no fetch: the other corpora did not change) and the corpus is gone
    from the manifest, the models and every report."""
    kept = ("tess", "ravdess")
    set_params(repo, data__sources=sources(repo, subsets, kept), data__maps=maps(kept), split__protocol="speaker")  # model: cnn1d, as applied
    status = run(["dvc", "status"], repo)
    assert "labels:" in status and "fetch@" not in status
    output = run(["dvc", "repro"], repo)
    assert stages_run(output) == {"labels", "eda", "featurize", "robustness", "train", "evaluate"}
    clips = KEPT["tess"] + 1 + KEPT["ravdess"]
    assert featurized(output) == (clips, 0, 0, clips)  # every clip from the cache
    manifest = read_csv(repo / MANIFEST)
    assert {row["corpus"] for row in manifest} == set(kept) and len(manifest) == clips
    assert set(read_json(repo / FETCH_REPORT_DIR / "summary.json")["kept"]) == set(kept)
    metrics = read_json(repo / METRICS)
    assert metrics["protocol"] == "speaker" and set(metrics["by_corpus"]) == set(kept)
    assert set(metrics["by_speaker"]) == SPEAKERS["tess"] | SPEAKERS["ravdess"]
    assert {row["corpus"] for row in read_csv(repo / EVAL_DIR / "predictions.csv")} == set(kept)
    assert not (repo / EVAL_DIR / "confusion/emovo.png").exists()
    assert not (repo / EVAL_DIR / "by_corpus/emovo.csv").exists()
    assert read_json(repo / MODEL_DIR / "meta.json")["trained_on"]["corpora"].keys() == set(kept)
    assert "up to date" in run(["dvc", "status"], repo)


def test_a_corpus_added_to_the_sources_is_fetched_and_featurized_alone(
    repo: Path, first_run: str, subsets: dict[str, Path]
) -> None:
    """A corpus never seen before (nEMO, Ogg Opus with its data.tsv): its fetch and what follows run, and
    featurize computes its clips only, the others' coming from the per-clip cache."""
    kept = ("tess", "ravdess", ADDED)
    set_params(repo, data__sources=sources(repo, subsets, kept), data__maps=maps(kept))
    status = run(["dvc", "status"], repo)
    assert f"fetch@{ADDED}:" in status and "fetch@tess:" not in status and "fetch@ravdess:" not in status
    output = run(["dvc", "repro"], repo)
    assert stages_run(output) == {f"fetch@{ADDED}", "labels", "eda", "featurize", "robustness", "train", "evaluate"}
    others = KEPT["tess"] + 1 + KEPT["ravdess"]
    assert featurized(output) == (others + ADDED_CLIPS, 0, ADDED_CLIPS, others)
    manifest = [row for row in read_csv(repo / MANIFEST) if row["corpus"] == ADDED]
    assert len(manifest) == ADDED_CLIPS and {row["speaker"] for row in manifest} == {f"{ADDED}/{s}" for s in NEMO_SPEAKERS}
    assert all(row["text"] and not row["text"].isdigit() for row in manifest)  # data.tsv's transcripts
    assert {row["emotion"] for row in manifest} == set(EMOTIONS) - {"disgust"}
    metrics = read_json(repo / METRICS)
    assert set(metrics["by_corpus"]) == set(kept) and "disgust" not in metrics["by_corpus"][ADDED]["recall"]
    assert "up to date" in run(["dvc", "status"], repo)
