"""Stage train: one model per evaluation fold; the first fold's is the deployable model.

Under the speaker protocol a model is trained for every held-out speaker; the
one that holds out ``split.test_speaker`` goes to ``models/``, the others to
``models/cross/<fold>/``.
"""

import json
from pathlib import Path

from ser.features import load_augmented, load_features
from ser.params import load_params
from ser.split import fold_parts

FEATURE_DIR = Path("data/features")
MODEL_DIR = Path("models")
REPORT_DIR = Path("reports/train")


def fold_model_dir(fold_number: int, fold: str) -> Path:
    return MODEL_DIR if fold_number == 0 else MODEL_DIR / "cross" / fold


def main() -> None:
    params = load_params()
    features, index, feature_params = load_features(FEATURE_DIR)
    augmented = load_augmented(FEATURE_DIR)
    folds = fold_parts(index, params.split)

    from ser import plots, training  # TensorFlow loads only once the inputs are known to be valid

    summary = {}
    meta = {**feature_params, **params.model_dump(include={"split", "model", "train"})}
    for number, (fold, parts) in enumerate(folds.items()):
        data = training.fold_data(features, index, augmented, parts, params.model)
        model, history = training.train_model(data, params.model, params.train, REPORT_DIR / "live" / fold)
        stats = training.reference_stats(features, index, parts, params.model)
        training.save_model(fold_model_dir(number, fold), model, index, parts, {**meta, "fold": fold}, stats)
        plots.plot_history(history, REPORT_DIR / "curves" / f"{fold}.png", title=fold)
        summary[fold] = training.history_summary(history, n_fit=len(data.fit_x))
    (REPORT_DIR / "metrics.json").write_text(json.dumps(training.mean_summary(summary), indent=2) + "\n")


if __name__ == "__main__":
    main()
