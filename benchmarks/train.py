"""Train: the default model's folds (the evaluation folds of ``split``) one after another vs side by side.

- baseline: as the train stage did before folds ran side by side: one fold after
  another in this process, each on every core (TensorFlow's and BLAS's default threads);
- ours: as the train stage does now (``ser.folds.run_parallel``): the folds on
  ``runtime.train.workers`` processes (one per core), each computing on one thread.

Both train every member of each fold with the stage's code, save the model and
score it on the fold's test clips. Reports the wall time of all folds, and for
each fold its networks' seconds per epoch and epochs, the time to the saved
model and the test accuracy, beside the committed reports/metrics.json's (which
the side-by-side folds, trained exactly as the stage trains them, reproduce).
The deployable model (no test part) is not timed.

    python -m benchmarks train    # needs data/features: `dvc pull` or `dvc repro featurize`
"""

from __future__ import annotations

import functools
import json
import tempfile
import time
from pathlib import Path
from unittest import mock

from benchmarks.common import REPO, SMOKE, save, smoke_or
from ser import paths

FEATURE_DIR = REPO / paths.FEATURE_DIR


@functools.cache
def inputs() -> tuple:
    """The params (a smoke run: one epoch), the clips and each fold's parts, read once per process."""
    from ser import training
    from ser.features import load_augmented, load_features, load_functionals
    from ser.params import load_params
    from ser.split import fold_parts

    params = load_params(REPO / "params.yaml")
    params = params.model_copy(update={"train": params.train.model_copy(update={"epochs": smoke_or(params.train.epochs, 1)})})
    features, index, feature_params = load_features(FEATURE_DIR)
    clips = training.Clips(features, index, load_augmented(FEATURE_DIR), load_functionals(FEATURE_DIR))
    return params, clips, feature_params, fold_parts(index, params.split)


def fold_model(fold: str, model_dir: str) -> dict:
    """Train ``fold``'s model with the stage's code, save it in ``model_dir`` and score it: its figures."""
    import keras

    from ser import assembly, training
    from ser.evaluation import evaluate_model

    class EpochTimer(keras.callbacks.Callback):
        """Seconds of each epoch, by network (its model's name is its architecture)."""

        def __init__(self):
            super().__init__()
            self.seconds: dict[str, list[float]] = {}

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.setdefault(self.model.name, []).append(time.perf_counter() - self.start)

    params, clips, feature_params, folds = inputs()
    timer, callbacks = EpochTimer(), training._callbacks  # the stage's own callbacks, and the timer besides
    start = time.perf_counter()
    with mock.patch.object(training, "_callbacks", lambda *args: [*callbacks(*args), timer]):
        trained = training.train_fold(clips, folds[fold], params.model, params.train, params.data.emotions)
    meta = assembly.model_meta(feature_params, params, fold, folds)
    assembly.save_model(Path(model_dir), trained.members, trained.temperature, clips.index, folds[fold], meta, trained.reference)
    seconds_to_model = time.perf_counter() - start
    _, scores, _ = evaluate_model(Path(model_dir), clips.features, clips.index, clips.functionals)
    networks = {
        arch: {"epochs": len(seconds), "seconds_per_epoch": sum(seconds) / len(seconds)} for arch, seconds in timer.seconds.items()
    }
    return {"networks": networks, "seconds_to_model": seconds_to_model, "accuracy": scores["accuracy"]}


def all_folds(side: str, workdir: Path) -> dict:
    """Every fold's model, one after another here (``baseline``) or side by side (``ours``): figures and wall time."""
    from ser.folds import parallel_workers, run_parallel

    params, _, _, folds = inputs()
    names = list(folds)[: smoke_or(None, 2)]
    jobs = [(fold, str(workdir / side / fold)) for fold in names]
    workers = parallel_workers(params.runtime.train.workers, len(jobs)) if side == "ours" else 1
    start = time.perf_counter()
    figures = [fold_model(*job) for job in jobs] if side == "baseline" else run_parallel(fold_model, jobs, workers)
    return {"workers": workers, "seconds": time.perf_counter() - start, "folds": dict(zip(names, figures))}


def describe(name: str, side: dict, committed: dict) -> None:
    print(f"{name}: {side['seconds']:.0f} s on {side['workers']} process(es)")
    for fold, figures in side["folds"].items():
        epochs = "; ".join(f"{arch} {n['epochs']} epochs x {n['seconds_per_epoch']:.2f} s" for arch, n in figures["networks"].items())
        print(f"  {fold}: {epochs or 'no networks'}; model in {figures['seconds_to_model']:.0f} s, "
              f"accuracy {figures['accuracy']:.4f} (committed {committed.get(fold, {}).get('accuracy')})")


def main() -> dict:
    params, _, _, _ = inputs()
    committed = json.loads((REPO / paths.METRICS).read_text()).get("folds", {})
    with tempfile.TemporaryDirectory() as workdir:
        sides = {side: all_folds(side, Path(workdir)) for side in ("ours", "baseline")}
    for side, label in (("baseline", "one fold after another, every core"), ("ours", "folds side by side, one thread each")):
        describe(label, sides[side], committed)
        for fold, figures in sides[side]["folds"].items():
            figures["committed_accuracy"] = committed.get(fold, {}).get("accuracy")
    speedup = sides["baseline"]["seconds"] / sides["ours"]["seconds"]
    print(f"side by side: {speedup:.2f}x")
    members = list(params.model.members) or [params.model.arch]
    result = {"smoke": SMOKE, "model": params.model.arch, "members": members, **sides, "speedup": speedup}
    save("train", result)
    return result
