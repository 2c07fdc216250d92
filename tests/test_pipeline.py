"""What `dvc repro` reruns: stage code deps are the scripts' import closures, runtime settings rerun nothing.

The `dvc status` tests work on a copy of the project (its dvc.lock included) and
compare what DVC reports before and after an edit, so they hold whether or not
the pipeline's outputs are present.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from benchmarks.common import set_params
from conftest import REPO
from test_e2e import command_env
from ser.featurize import code_digest
from ser.imports import PACKAGES, closure, relative_closure
from ser.params import RuntimeParams
from benchmarks.readme import RERUNS, current_rerun_table, replace_block
from ser.pipeline import code_problems, stage_definitions, write_code_deps

DVC_YAML = yaml.safe_load((REPO / "dvc.yaml").read_text())
CORPORA = tuple(yaml.safe_load((REPO / "params.yaml").read_text())["data"]["sources"])
RUNTIME_CHANGES = {
    "runtime__featurize__workers": 1, "runtime__featurize__scheduler": "tcp://127.0.0.1:8786",
    "runtime__featurize__batch_size": 3, "runtime__featurize__cache": "", "runtime__featurize__cache_limit_gb": 1,
    "runtime__train__workers": 1, "serve__workers": 2, "serve__max_upload_mb": 1,
}
"""A new value for every setting that decides how the stages (or the web app) run, not what they compute."""
READERS = {
    "data.sources.tess.source": {"fetch@tess", "labels"},
    "data.emotions": {"labels", "train"},
    "data.maps.ravdess.calm": {"labels"},
    "data.max_rejected_fraction": {f"fetch@{corpus}" for corpus in CORPORA},
    "audio.sr": {"featurize", "robustness"},
    "features.n_mfcc": {"featurize", "robustness"},
    "robustness.clips_per_class": {"robustness"},
    "augment.seed": {"featurize"},
    "split.seed": {"train"},
    "model.dropout": {"train"},
    "train.epochs": {"train"},
}
"""One param of every section and data entry, and the stages whose code reads it."""


# --- import closures -------------------------------------------------------------------------------------

def write_package(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def test_the_closure_follows_every_kind_of_import(tmp_path):
    write_package(tmp_path, {
        "ser/__init__.py": "",
        "ser/a.py": "import os\nfrom ser import b\nfrom .sub import c\n\ndef late():\n    import ser.sub.d\n",
        "ser/b.py": "from ser.sub.c import thing\n",
        "ser/sub/__init__.py": "",
        "ser/sub/c.py": "from . import e\nthing = 1\n",
        "ser/sub/d.py": "from ..b import thing\n",
        "ser/sub/e.py": "",
        "ser/unused.py": "import ser.a\n",
    })
    assert relative_closure("ser.a", tmp_path) == [
        "ser/__init__.py", "ser/a.py", "ser/b.py", "ser/sub/__init__.py", "ser/sub/c.py", "ser/sub/d.py", "ser/sub/e.py",
    ]
    assert closure("ser.a", tmp_path)[0] == tmp_path / "ser/a.py"
    with pytest.raises(ModuleNotFoundError, match="ser.missing"):
        closure("ser.missing", tmp_path)


def test_every_stage_lists_exactly_its_import_closure():
    assert code_problems(DVC_YAML) == [], "run `make deps`"


def test_a_missing_extra_or_absent_code_dep_is_named_with_its_stage():
    dvc_yaml = copy.deepcopy(DVC_YAML)
    train = dvc_yaml["stages"]["train"]
    train["deps"] = [dep for dep in train["deps"] if dep != "ser/split.py"] + ["ser/webapp.py", "ser/gone.py"]
    assert code_problems(dvc_yaml) == [
        "stage train: dvc.yaml lacks ser/split.py (imported by its script, directly or not)",
        "stage train: dvc.yaml lists ser/gone.py, which does not exist",
        "stage train: dvc.yaml lists ser/webapp.py, which its script does not import",
    ]


def test_make_deps_rewrites_code_deps_and_keeps_the_rest(tmp_path):
    path = tmp_path / "dvc.yaml"
    dvc_yaml = copy.deepcopy(DVC_YAML)
    dvc_yaml["stages"]["eda"]["deps"] = ["data/manifest.csv", "ser/eda.py", "ser/nothing.py"]
    path.write_text(yaml.safe_dump(dvc_yaml, sort_keys=False))
    assert write_code_deps(path)
    rewritten = yaml.safe_load(path.read_text())
    assert rewritten["stages"]["eda"]["deps"] == ["data/manifest.csv", *relative_closure("stages.eda")]
    assert {k: v for k, v in rewritten["stages"].items() if k != "eda"} == {k: v for k, v in DVC_YAML["stages"].items() if k != "eda"}
    assert not write_code_deps(path)


def copy_package(root: Path) -> None:
    for package in PACKAGES:
        shutil.copytree(REPO / package, root / package, ignore=shutil.ignore_patterns("__pycache__"))


def test_the_feature_cache_key_covers_the_code_that_computes_features(tmp_path):
    copy_package(tmp_path)
    before = code_digest(tmp_path)
    assert before == code_digest(REPO)
    covered = relative_closure("ser.featurize", tmp_path)
    assert {"ser/params.py", "ser/audio.py", "ser/dsp.py", "ser/features.py", "ser/functionals.py", "ser/augment.py"} <= set(covered)
    for source in covered:
        text = (tmp_path / source).read_text()
        (tmp_path / source).write_text(text + "\n# edited\n")
        assert code_digest(tmp_path) != before, f"the feature cache key ignores {source}"
        (tmp_path / source).write_text(text)
    (tmp_path / "ser/webapp.py").write_text((tmp_path / "ser/webapp.py").read_text() + "\n# edited\n")
    assert code_digest(tmp_path) == before


# --- what `dvc status` says ----------------------------------------------------------------------------------

@pytest.fixture
def project(tmp_path) -> Path:
    """A copy of the project's files (not its outputs) in a git repository of its own."""
    root = tmp_path / "project"
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        if (REPO / name).is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, root / name)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    return root


def changed_deps(root: Path) -> dict[str, dict]:
    """Per stage, what ``dvc status`` reports of its deps and params."""
    done = subprocess.run(["dvc", "status", "--json"], cwd=root, env=command_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    report = {}
    for stage, changes in json.loads(done.stdout or "{}").items():
        deps = {k: v for change in changes if isinstance(change, dict) for k, v in change.get("changed deps", {}).items()}
        report[stage] = deps
    return report


def changed_params(root: Path) -> dict[str, set[str]]:
    """Per stage, the params that ``dvc status`` reports changed since dvc.lock."""
    return {stage: set(deps["params.yaml"]) for stage, deps in changed_deps(root).items() if deps.get("params.yaml")}


@pytest.fixture
def unchanged_params(project) -> None:
    """The copy's dvc.lock records its params.yaml's values (as a current lock does), before a test changes them."""
    before = changed_params(project)
    assert before == {}, f"dvc.lock does not record params.yaml's values (run `dvc repro`): {before}"


def expanded_stages() -> dict[str, str]:
    """Each stage as DVC names it (``fetch@tess``...) -> its module."""
    names = {}
    for name, definition in stage_definitions(DVC_YAML).items():
        module = definition["cmd"].split("-m ")[1].split()[0]
        for stage in [name.replace("<corpus>", corpus) for corpus in CORPORA] if "@" in name else [name]:
            names[stage] = module
    return names


def test_a_code_edit_shows_in_dvc_status_for_exactly_the_stages_that_import_it(project):
    for package in PACKAGES:
        for source in (project / package).rglob("*.py"):
            source.write_text(source.read_text() + "\n# edited\n")
    # every source file now differs from what dvc.lock recorded: each stage reports exactly the ones it tracks
    reported = {stage: {path for path, state in deps.items() if path.split("/")[0] in PACKAGES and state == "modified"}
                for stage, deps in changed_deps(project).items()}
    expected = {stage: set(relative_closure(module)) for stage, module in expanded_stages().items()}
    assert reported == expected


def test_runtime_settings_rerun_nothing(project, unchanged_params):
    every_setting = {f"runtime__{part}__{key}" for part, section in RuntimeParams().model_dump().items() for key in section}
    assert every_setting <= set(RUNTIME_CHANGES)
    set_params(project, **RUNTIME_CHANGES)
    assert changed_params(project) == {}


def test_a_real_param_reruns_exactly_the_stages_that_read_it(project, unchanged_params):
    emotions = yaml.safe_load((project / "params.yaml").read_text())["data"]["emotions"]
    set_params(project, data__sources__tess__source="../elsewhere/tess", data__emotions=[*emotions, "calm"],
               data__maps__ravdess__calm="calm", data__max_rejected_fraction=0.5, audio__sr=22050, features__n_mfcc=20,
               augment__seed=7, split__seed=7, model__dropout=0.5, train__epochs=3, robustness__clips_per_class=2)
    reported = changed_params(project)
    rerun = {key: {stage for stage, names in reported.items() if any(key == n or key.startswith(n + ".") for n in names)}
             for key in READERS}
    assert rerun == READERS


# --- the README ---------------------------------------------------------------------------------------------

def test_the_readme_rerun_table_is_current():
    readme = (REPO / "README.md").read_text()
    assert replace_block(readme, current_rerun_table(), *RERUNS) == readme, "the README's table of reruns is stale: run `make deps`"
    assert readme.index(RERUNS[0]) < readme.index(RERUNS[1])


def test_the_rerun_table_says_what_reruns():
    rows = {line.split(" | ")[0].strip("| "): line for line in current_rerun_table().splitlines()}
    assert rows["`data.maps`"] == "| `data.maps` | `labels` | `eda`, `featurize`, `robustness`, `train`, `evaluate` |"
    assert rows["`robustness`"] == "| `robustness` | `robustness` | `evaluate` |"
    assert rows["`runtime`"] == "| `runtime` | none |  |"
    assert rows["`train`"] == "| `train` | `train` | `evaluate` |"
    assert any(what.startswith("`ser/__init__.py`, `ser/params.py`") and "`fetch@<corpus>`, `labels`, `eda`" in line
               for what, line in rows.items())
