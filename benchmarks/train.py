"""Train: the default model on data/features, fold by fold (the evaluation folds of ``split``), with the stage's code.

Reports, for each network of the model (each member of an ensemble that trains
in epochs), seconds per epoch, epochs run and samples/s (fit samples x epochs /
fit time); for the whole fold (every member, the temperature, the saved model)
the wall time to the trained model and the test accuracy it reaches, beside
the fold's accuracy in the committed reports/metrics.json. (The deployable
model, trained on all the data, is not timed: it has no test part.)

    python -m benchmarks train    # needs data/features: `dvc pull` or `dvc repro featurize`
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from unittest import mock

from benchmarks.common import REPO, SMOKE, save, smoke_or


def main() -> dict:
    import keras

    from ser import training
    from ser.evaluation import evaluate_model
    from ser.features import load_augmented, load_features, load_functionals
    from ser.params import load_params
    from ser.split import fold_parts

    class EpochTimer(keras.callbacks.Callback):
        """Seconds of each epoch, by network (its model's name is its architecture)."""

        def __init__(self):
            super().__init__()
            self.seconds: dict[str, list[float]] = {}

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.setdefault(self.model.name, []).append(time.perf_counter() - self.start)

    params = load_params(REPO / "params.yaml")
    train = params.train.model_copy(update={"epochs": smoke_or(params.train.epochs, 1)})  # a smoke run: one epoch, one fold
    features, index, feature_params = load_features(REPO / "data" / "features")
    functionals = load_functionals(REPO / "data" / "features")
    clips = training.Clips(features, index, load_augmented(REPO / "data" / "features"), functionals)
    committed = json.loads((REPO / "reports" / "metrics.json").read_text())
    folds = {}
    total_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as workdir:
        for fold, parts in list((split := fold_parts(index, params.split)).items())[: smoke_or(None, 1)]:
            timer = EpochTimer()
            callbacks = training._callbacks  # the stage's own callbacks, and the timer besides
            timed = mock.patch.object(training, "_callbacks", lambda *args: [*callbacks(*args), timer])
            start = time.perf_counter()
            with timed:
                trained = training.train_fold(clips, parts, params.model, train, params.data.emotions)
            model_dir = Path(workdir) / fold
            meta = {
                **feature_params, **params.model_dump(include={"split", "model", "train"}),
                "classes": params.data.emotions, "fold": fold, "folds": list(split),
            }
            training.save_model(model_dir, trained.members, trained.temperature, index, parts, meta, trained.reference)
            seconds_to_model = time.perf_counter() - start
            _, scores, _ = evaluate_model(model_dir, features, index, functionals)
            networks = {}
            for arch, seconds in timer.seconds.items():
                fit_samples = trained.summary["members"][arch]["n_fit"]
                networks[arch] = {
                    "fit_samples": fit_samples,
                    "epochs": len(seconds),
                    "seconds_per_epoch": sum(seconds) / len(seconds),
                    "samples_per_s": fit_samples * len(seconds) / sum(seconds),
                }
            folds[fold] = {
                "networks": networks,
                "temperature": trained.temperature,
                "seconds_to_model": seconds_to_model,
                "accuracy": scores["accuracy"],
                "committed_accuracy": committed.get("folds", {}).get(fold, {}).get("accuracy"),
            }
    members = list(params.model.members) or [params.model.arch]
    result = {"smoke": SMOKE, "model": params.model.arch, "members": members, "total_s": time.perf_counter() - total_start, "folds": folds}
    for fold, figures in folds.items():
        epochs = "; ".join(
            f"{arch} {n['epochs']} epochs x {n['seconds_per_epoch']:.2f} s ({n['samples_per_s']:.0f} samples/s on "
            f"{n['fit_samples']} fit samples)" for arch, n in figures["networks"].items()
        )
        print(f"{fold}: {epochs or 'no networks'}; model in {figures['seconds_to_model']:.0f} s "
              f"(temperature {figures['temperature']}), accuracy {figures['accuracy']:.4f} "
              f"(committed {figures['committed_accuracy']})")
    print(f"all folds ({' + '.join(members)}): {result['total_s']:.0f} s")
    save("train", result)
    return result
