"""Stage train: a model per evaluation fold (``models/folds/<fold>``), then the deployable model.

The deployable model (``models/``) learns from all the data, as users want it:
with no clips left to validate on, it trains for the folds' median best epoch (or for
``train.epochs`` when early stopping is off, as the folds did).
"""

import json
from pathlib import Path

import numpy as np

from ser.features import load_augmented, load_features
from ser.inference import DEPLOYABLE_FOLD
from ser.params import load_params
from ser.split import TRAIN, fold_parts

FEATURE_DIR = Path("data/features")
MODEL_DIR = Path("models")
REPORT_DIR = Path("reports/train")


def main() -> None:
    params = load_params()
    features, index, feature_params = load_features(FEATURE_DIR)
    augmented = load_augmented(FEATURE_DIR)
    folds = fold_parts(index, params.split)

    from ser import plots, training  # TensorFlow loads only once the inputs are known to be valid

    classes = params.data.emotions
    meta = {**feature_params, **params.model_dump(include={"split", "model", "train"}), "classes": classes}

    def fit(name: str, parts: np.ndarray, model_dir: Path, epochs: int | None = None) -> tuple[dict, int]:
        data = training.fold_data(features, index, augmented, parts, params.model, classes)
        model, history = training.train_model(data, params.model, params.train, REPORT_DIR / "live" / name, epochs=epochs)
        stats = training.reference_stats(features, index, parts, params.model)
        training.save_model(model_dir, model, index, parts, {**meta, "fold": name, "folds": list(folds)}, stats)
        plots.plot_history(history, REPORT_DIR / "curves" / f"{name}.png", title=name)
        return history, len(data.fit_x)

    summary = {}
    for fold, parts in folds.items():
        summary[fold] = training.history_summary(*fit(fold, parts, MODEL_DIR / "folds" / fold))
    epochs = training.deployable_epochs(summary, params.train)
    fit(DEPLOYABLE_FOLD, np.full(len(index), TRAIN, dtype=object), MODEL_DIR, epochs)
    metrics = {**training.mean_summary(summary), "deployable_epochs": epochs}
    (REPORT_DIR / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")


if __name__ == "__main__":
    main()
