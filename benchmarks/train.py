"""Train: the default model on data/features, fold by fold (the evaluation folds of ``split``), with the stage's code.

Reports seconds per epoch, epochs run, samples/s (fit samples x epochs / fit
time), the wall time to the trained model, and the test accuracy it reaches,
beside the fold's accuracy in the committed reports/metrics.json. (The
deployable model, trained on all the data, is not timed: it has no test part.)

    python -m benchmarks train    # needs data/features: `dvc pull` or `dvc repro featurize`
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from benchmarks.common import REPO, save


def main() -> dict:
    import keras

    from ser import training
    from ser.evaluation import evaluate_model
    from ser.features import load_augmented, load_features
    from ser.params import load_params
    from ser.split import fold_parts

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self.start)

    params = load_params(REPO / "params.yaml")
    features, index, feature_params = load_features(REPO / "data" / "features")
    augmented = load_augmented(REPO / "data" / "features")
    committed = json.loads((REPO / "reports" / "metrics.json").read_text())
    folds = {}
    total_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as workdir:
        for fold, parts in fold_parts(index, params.split).items():
            start = time.perf_counter()
            data = training.fold_data(features, index, augmented, parts, params.model, params.data.emotions)
            timer = EpochTimer()
            timer.seconds = []
            model, history = training.train_model(data, params.model, params.train, callbacks=[timer])
            model_dir = Path(workdir) / fold
            meta = {
                **feature_params, **params.model_dump(include={"split", "model", "train"}),
                "classes": params.data.emotions, "fold": fold,
            }
            stats = training.reference_stats(features, index, parts, params.model)
            training.save_model(model_dir, model, index, parts, meta, stats)
            trained = time.perf_counter() - start
            _, scores, _ = evaluate_model(model_dir, features, index)
            epochs = len(timer.seconds)
            folds[fold] = {
                "fit_samples": len(data.fit_x),
                "epochs": epochs,
                "seconds_per_epoch": sum(timer.seconds) / epochs,
                "samples_per_s": len(data.fit_x) * epochs / sum(timer.seconds),
                "seconds_to_model": trained,
                "accuracy": scores["accuracy"],
                "committed_accuracy": committed.get("folds", {}).get(fold, {}).get("accuracy"),
            }
    result = {"model": params.model.arch, "total_s": time.perf_counter() - total_start, "folds": folds}
    for fold, figures in folds.items():
        print(f"{fold}: {figures['epochs']} epochs x {figures['seconds_per_epoch']:.2f} s "
              f"({figures['samples_per_s']:.0f} samples/s on {figures['fit_samples']} fit samples), "
              f"model in {figures['seconds_to_model']:.0f} s, accuracy {figures['accuracy']:.4f} "
              f"(committed {figures['committed_accuracy']})")
    print(f"all folds: {result['total_s']:.0f} s")
    save("train", result)
    return result
