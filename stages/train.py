"""Stage train: a model per evaluation fold (``models/folds/<fold>``), then the deployable model.

The deployable model (``models/``) learns from all the data, as users want it:
with no clips left to validate on, its networks train for the folds' median best
epoch (or for ``train.epochs`` when early stopping is off, as the folds did), and
it is calibrated with the folds' median temperature.
"""

import json
from pathlib import Path

import numpy as np

from ser.features import load_augmented, load_features, load_functionals
from ser.inference import DEPLOYABLE_FOLD
from ser.params import load_params
from ser.split import TRAIN, fold_parts

FEATURE_DIR = Path("data/features")
MODEL_DIR = Path("models")
REPORT_DIR = Path("reports/train")


def main() -> None:
    params = load_params()
    features, index, feature_params = load_features(FEATURE_DIR)
    folds = fold_parts(index, params.split)

    from ser import plots, training  # TensorFlow loads only once the inputs are known to be valid

    clips = training.Clips(features, index, load_augmented(FEATURE_DIR), load_functionals(FEATURE_DIR))
    classes = params.data.emotions
    meta = {**feature_params, **params.model_dump(include={"split", "model", "train"}), "classes": classes}

    def fit(name: str, parts: np.ndarray, model_dir: Path, **deployable) -> dict:
        trained = training.train_fold(clips, parts, params.model, params.train, classes, REPORT_DIR / "live" / name, **deployable)
        training.save_model(model_dir, trained.members, trained.temperature, index, parts,
                            {**meta, "fold": name, "folds": list(folds)}, trained.reference)
        for member in trained.members:
            if member.history is not None:
                plots.plot_history(member.history, REPORT_DIR / "curves" / f"{name}-{member.params.arch}.png", title=f"{name}, {member.params.arch}")
        return trained.summary

    summary = {fold: fit(fold, parts, MODEL_DIR / "folds" / fold) for fold, parts in folds.items()}
    epochs = training.deployable_epochs(summary, params.train)
    temperature = training.deployable_temperature(summary)
    fit(DEPLOYABLE_FOLD, np.full(len(index), TRAIN, dtype=object), MODEL_DIR, epochs=epochs, temperature=temperature)
    metrics = {**training.mean_summary(summary), "deployable_epochs": epochs, "deployable_temperature": temperature}
    REPORT_DIR.mkdir(parents=True, exist_ok=True)  # a model without networks writes no curves there
    (REPORT_DIR / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")


if __name__ == "__main__":
    main()
