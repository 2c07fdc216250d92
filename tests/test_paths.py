"""dvc.yaml and ``ser.paths`` name the same artifacts: every path a stage reads or writes (other than
the project's code and the corpora's sources) is one of ``ser.paths``' constants or lies under one,
and every output is one of them (a path changed in one place only fails here)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from ser import paths

ROOT = Path(__file__).resolve().parents[1]
CODE = ("ser", "stages")
"""Top-level folders of the project's code: dvc.yaml's code deps, not artifacts."""
CONSTANTS = {name: value for name, value in vars(paths).items() if isinstance(value, Path)}


def _path(entry: str | dict) -> str:
    """A deps/outs/metrics/plots entry's path (an entry with options is a one-key mapping)."""
    return entry if isinstance(entry, str) else next(iter(entry))


def _artifacts(dvc_yaml: dict) -> tuple[set[str], set[str]]:
    """dvc.yaml's artifact paths (deps, outs, metrics, plots) and its outputs (outs, metrics), templates
    such as ``data/raw/${key}`` with the template part cut off."""
    used, outputs = set(), set()
    for stage in dvc_yaml["stages"].values():
        stage = stage.get("do", stage)
        for kind in ("deps", "outs", "metrics", "plots"):
            for entry in stage.get(kind, []):
                path = _path(entry)
                if path.startswith("${item.") or path.split("/")[0] in CODE:
                    continue  # a corpus's source (from params.yaml) or the project's code
                path = re.sub(r"/?\$\{[^}]*\}.*", "", path)
                used.add(path)
                if kind != "deps":
                    outputs.add(path)
    for plot in dvc_yaml.get("plots", []):
        name = _path(plot)
        targets = [name] if not isinstance(plot, dict) or not isinstance(plot[name], dict) else list(plot[name].get("y", {}) or [name])
        used.update(target for target in targets if "/" in target)
    return used, outputs


def _is_under_a_constant(path: str) -> bool:
    return any(Path(path) == value or Path(path).is_relative_to(value) for value in CONSTANTS.values())


def test_every_artifact_of_dvc_yaml_is_a_constant_of_ser_paths_or_under_one():
    used, outputs = _artifacts(yaml.safe_load((ROOT / "dvc.yaml").read_text()))
    assert outputs and used >= outputs
    assert sorted(path for path in used if not _is_under_a_constant(path)) == []
    templated = {str(paths.RAW_DIR)}  # fetch's foreach: data/raw/${key}, one folder per corpus
    assert sorted(path for path in outputs - templated if Path(path) not in CONSTANTS.values()) == []


def test_every_stage_output_of_ser_paths_is_in_dvc_yaml():
    """The reverse: a constant for a stage's output that dvc.yaml lost (or renamed) fails."""
    _, outputs = _artifacts(yaml.safe_load((ROOT / "dvc.yaml").read_text()))
    stage_outputs = [paths.RAW_DIR, paths.MANIFEST, paths.FEATURE_DIR, paths.MODEL_DIR, paths.FETCH_REPORT_DIR,
                     paths.EDA_DIR, paths.TRAIN_LIVE_DIR, paths.TRAIN_CURVES_DIR, paths.TRAIN_METRICS, paths.METRICS,
                     paths.EVAL_DIR]
    assert sorted(str(path) for path in stage_outputs if str(path) not in outputs) == []


def test_the_checks_see_a_drifted_path():
    """A dvc.yaml whose evaluate stage writes its metrics elsewhere fails the check above."""
    dvc_yaml = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    dvc_yaml["stages"]["evaluate"]["metrics"] = [{"results/metrics.json": {"cache": False}}]
    used, outputs = _artifacts(dvc_yaml)
    assert "results/metrics.json" in outputs and not _is_under_a_constant("results/metrics.json")
    assert str(paths.METRICS) not in outputs


def test_the_constants_are_relative_paths_inside_the_project():
    for name, value in CONSTANTS.items():
        assert not value.is_absolute() and ".." not in value.parts, name
