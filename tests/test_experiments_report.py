"""reports/experiments.json entries from `dvc exp show --json` (``benchmarks/experiments.py``)."""

from __future__ import annotations

import pytest

from benchmarks import experiments

PARAMS = {
    "data": {"sources": {"tess": {}, "ased": {}}},
    "features": {"functionals": ["egemaps", "compare"]},
    "augment": {"copies": 1, "reverb_prob": 0.3, "telephone_prob": 0.0, "codec_prob": 0.0},
    "split": {"protocol": "corpus", "train_corpora": []},
    "model": {"arch": "ensemble", "members": ["logreg", "bigru"], "logreg_c": 0.01},
    "train": {"balance": "corpus"},
}
METRICS = {
    "accuracy": 0.5, "macro_f1": 0.4, "ece": 0.1, "min_recall": 0.2, "serving_accuracy": 0.45,
    "corpus_mean_accuracy": 0.48, "adapted_accuracy": {"5": 0.46, "20": 0.49}, "recall": {"sad": 0.2, "angry": 0.8},
    "by_corpus": {"tess": {"accuracy": 0.6, "serving_accuracy": 0.55}, "ased": {"accuracy": 0.36, "serving_accuracy": 0.3}},
}


def shown(name: str, params: dict = PARAMS, metrics: dict = METRICS) -> list[dict]:
    """`dvc exp show --json` of a workspace and one experiment of its baseline commit."""
    data = {
        "params": {"params.yaml": {"data": params}},
        "metrics": {"reports/metrics.json": {"data": metrics}, "reports/train/metrics.json": {"data": {"val_loss": 0.97}}},
    }
    return [
        {"rev": "workspace", "data": {"params": None, "metrics": None}},
        {"rev": "abc123", "name": "main", "data": {}, "experiments": [{"revs": [{"rev": "def456", "name": name, "data": data}]}]},
    ]


def test_an_experiments_entry_takes_its_settings_and_scores():
    [(name, data)] = list(experiments.shown_experiments(shown("default-corpus")))
    entry = experiments.entry(name, data)
    assert entry["name"] == "default-corpus" and entry["corpora"] == ["tess", "ased"]
    assert (entry["protocol"], entry["arch"], entry["members"], entry["balance"]) == ("corpus", "ensemble", ["logreg", "bigru"], "corpus")
    assert entry["realistic_augmentation"] is True and entry["val_loss"] == 0.97
    assert (entry["accuracy"], entry["serving_accuracy"], entry["corpus_mean_accuracy"]) == (0.5, 0.45, 0.48)
    assert entry["corpus_accuracy"] == {"tess": 0.6, "ased": 0.36}
    assert entry["adapted_accuracy"] == {"5": 0.46, "20": 0.49} and entry["recall"]["sad"] == 0.2


def test_no_copies_is_no_realistic_augmentation():
    params = {**PARAMS, "augment": {**PARAMS["augment"], "copies": 0}}
    [(name, data)] = list(experiments.shown_experiments(shown("x", params)))
    assert experiments.entry(name, data)["realistic_augmentation"] is False


def test_a_failed_experiment_or_an_unknown_name_is_refused():
    [(name, data)] = list(experiments.shown_experiments(shown("broken", metrics={})))
    with pytest.raises(SystemExit, match="broken"):
        experiments.entry(name, data)
    with pytest.raises(SystemExit, match="no DVC experiment nothing-here"):
        experiments.update(["nothing-here"], shown("default-corpus"))
