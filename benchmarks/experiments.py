"""reports/experiments.json entries from DVC experiments, so that the README's rows come from real runs.

Reads ``dvc exp show --json -A`` (run here) and, for each experiment named, writes its entry in
reports/experiments.json (replacing an entry of the same name, appending otherwise): its settings
from its params.yaml, ``val_loss`` from reports/train/metrics.json and its test scores from
reports/metrics.json, as :mod:`benchmarks.results` reads them. Then refresh the README:

    make experiments                       # queue and run them (a while)
    python -m benchmarks.experiments default-corpus seed_lstm-speaker ...
    python -m benchmarks.readme
"""

from __future__ import annotations

import argparse
import json
import subprocess
from typing import Iterator

from benchmarks.common import DVC, REPO
from ser import paths

SCORES = ("accuracy", "macro_f1", "ece", "min_recall", "serving_accuracy", "corpus_mean_accuracy")
REALISTIC = ("reverb_prob", "telephone_prob", "codec_prob")
"""Augmentation params of the recording chain: any above 0 is ``realistic_augmentation``."""


def shown_experiments(show: list[dict]) -> Iterator[tuple[str, dict]]:
    """(name, data) of every experiment in ``dvc exp show --json`` output."""
    for commit in show:
        for experiment in commit.get("experiments") or []:
            for rev in experiment.get("revs") or []:
                if rev.get("name") and rev.get("data"):
                    yield rev["name"], rev["data"]


def file_data(data: dict, kind: str, path: str) -> dict:
    """The contents of a params or metrics file of an experiment ({} when it has none)."""
    return ((data.get(kind) or {}).get(path) or {}).get("data") or {}


def entry(name: str, data: dict) -> dict:
    """An experiment's entry of reports/experiments.json."""
    params = file_data(data, "params", "params.yaml")
    metrics = file_data(data, "metrics", str(paths.METRICS))
    train = file_data(data, "metrics", str(paths.TRAIN_METRICS))
    if not metrics:
        raise SystemExit(f"experiment {name!r} has no {paths.METRICS}: did it fail? (`dvc queue logs {name}`)")
    split, model, augment = params["split"], params["model"], params["augment"]
    by_corpus = metrics.get("by_corpus", {})
    return {
        "name": name,
        "corpora": list(params["data"]["sources"]),
        "protocol": split["protocol"],
        "train_corpora": split["train_corpora"],
        "arch": model["arch"],
        "members": model["members"],
        "logreg_c": model["logreg_c"],
        "functionals": params["features"]["functionals"],
        "realistic_augmentation": any(augment.get(key, 0) > 0 for key in REALISTIC) and augment["copies"] > 0,
        "balance": params["train"]["balance"],
        "val_loss": train.get("val_loss"),
        **{key: metrics.get(key) for key in SCORES},
        "adapted_accuracy": metrics.get("adapted_accuracy"),
        "recall": metrics.get("recall"),
        "corpus_accuracy": {corpus: scores["accuracy"] for corpus, scores in by_corpus.items()},
        "corpus_serving_accuracy": {corpus: scores["serving_accuracy"] for corpus, scores in by_corpus.items()},
    }


def update(names: list[str], show: list[dict]) -> dict:
    """reports/experiments.json with the entries of ``names`` (from ``show``) written in."""
    found: dict[str, dict] = {}
    for name, data in shown_experiments(show):  # a name run again on a later commit: its latest run
        if data.get("timestamp", "") >= found.get(name, {}).get("timestamp", ""):
            found[name] = data
    if missing := [name for name in names if name not in found]:
        raise SystemExit(f"no DVC experiment {', '.join(missing)} (experiments: {', '.join(found) or 'none'})")
    data = json.loads((REPO / paths.EXPERIMENTS).read_text())
    entries = {existing["name"]: existing for existing in data["experiments"]}
    for name in names:
        entries[name] = entry(name, found[name])
    data["experiments"] = list(entries.values())
    corpora = [c for e in data["experiments"] for c in e.get("corpora", data["corpora"])]
    data["corpora"] = list(dict.fromkeys([*data["corpora"], *corpora]))
    return data


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.experiments", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="+", help="experiments to write (their `dvc exp run -n` names)")
    names = parser.parse_args(argv).names
    shown = subprocess.run([DVC, "exp", "show", "--json", "-A"], cwd=REPO, capture_output=True, text=True, check=True)
    data = update(names, json.loads(shown.stdout))
    (REPO / paths.EXPERIMENTS).write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    print(f"{paths.EXPERIMENTS}: {', '.join(names)} written; now `python -m benchmarks.readme`")


if __name__ == "__main__":
    main()
