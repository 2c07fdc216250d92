"""Stage train: a model per evaluation fold (``models/folds/<fold>``), then the deployable model.

The deployable model (``models/``) learns from all the data, as users want it:
with no clips left to validate on, its networks train for the folds' median best
epoch (or for ``train.epochs`` when early stopping is off, as the folds did), and
it is calibrated with the folds' median temperature.

The folds train side by side, on ``runtime.train.workers`` processes computing on one
thread each; the models are the same however many run at once.
"""

import functools
import json

import numpy as np

from ser.features import load_augmented, load_features, load_functionals
from ser.folds import (
    deployable_epochs, deployable_temperature, log_fold_scores, mean_summary, parallel_workers, run_parallel,
)
from ser.inference import DEPLOYABLE_FOLD
from ser.params import load_params
from ser.paths import FEATURE_DIR, FOLD_MODEL_DIR, MODEL_DIR, TRAIN_CURVES_DIR, TRAIN_LIVE_DIR, TRAIN_METRICS, TRAIN_REPORT_DIR
from ser.split import TRAIN, fold_parts, single_emotion_note


@functools.cache
def inputs() -> tuple:
    """The params, the features and each fold's parts (read once per process)."""
    params = load_params()
    features, index, feature_params = load_features(FEATURE_DIR)
    return params, features, index, feature_params, fold_parts(index, params.split)


@functools.cache
def clips():
    """Every clip's features, augmented copies and functionals (read once per training process)."""
    from ser import training  # TensorFlow loads only once the inputs are known to be valid

    _, features, index, _, _ = inputs()
    return training.Clips(features, index, load_augmented(FEATURE_DIR), load_functionals(FEATURE_DIR))


def fit(name: str, epochs: dict | None = None, temperature: float | None = None) -> dict:
    """Train fold ``name``'s model (or the deployable one, on every clip) and save it; its summary."""
    from ser import plots, training

    params, _, index, feature_params, folds = inputs()
    deployable = name == DEPLOYABLE_FOLD
    parts = np.full(len(index), TRAIN, dtype=object) if deployable else folds[name]
    trained = training.train_fold(clips(), parts, params.model, params.train, params.data.emotions, TRAIN_LIVE_DIR / name,
                                  epochs, temperature)
    training.save_model(MODEL_DIR if deployable else FOLD_MODEL_DIR / name, trained.members, trained.temperature, index,
                        parts, training.model_meta(feature_params, params, name, folds), trained.reference)
    for member in trained.members:
        if member.history is not None:
            plots.plot_history(member.history, TRAIN_CURVES_DIR / f"{name}-{member.params.arch}.png", title=f"{name}, {member.params.arch}")
    return trained.summary


def main() -> None:
    params, _, index, _, folds = inputs()
    if params.split.protocol == "text" and (note := single_emotion_note(index)):
        print(note)
    workers = parallel_workers(params.runtime.train.workers, len(folds))
    summary = dict(zip(folds, run_parallel(fit, [(fold,) for fold in folds], workers)))
    epochs = deployable_epochs(summary, params.train)
    temperature = deployable_temperature(summary)
    run_parallel(fit, [(DEPLOYABLE_FOLD, epochs, temperature)], 1)
    metrics = {**mean_summary(summary), "deployable_epochs": epochs, "deployable_temperature": temperature}
    TRAIN_REPORT_DIR.mkdir(parents=True, exist_ok=True)
    TRAIN_METRICS.write_text(json.dumps(metrics, indent=2) + "\n")
    report_fold_scores(summary)


def report_fold_scores(summary: dict[str, dict]) -> None:
    """The folds' validation scores as a dvclive log and a PNG (networks also log their epochs there)."""
    from ser import plots

    log_fold_scores(summary, TRAIN_LIVE_DIR / "folds")
    plots.plot_fold_scores(summary, TRAIN_CURVES_DIR / "folds.png")


if __name__ == "__main__":
    main()
