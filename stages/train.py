"""Stage train: split by protocol, train the model named by ``model.arch``, save it."""

from pathlib import Path

from ser.features import load_features
from ser.params import load_params
from ser.split import assign_parts

FEATURE_DIR = Path("data/features")
MODEL_DIR = Path("models")
LIVE_DIR = Path("reports/train")


def main() -> None:
    params = load_params()
    features, index, feature_params = load_features(FEATURE_DIR)
    parts = assign_parts(index, params.split)

    from ser import plots, training  # TensorFlow loads only once the inputs are known to be valid

    model, history = training.train_model(features, index, parts, params.model, params.train, LIVE_DIR)
    meta = {
        **feature_params,
        "split": params.split.model_dump(),
        "model": params.model.model_dump(),
        "train": params.train.model_dump(),
    }
    training.save_model(MODEL_DIR, model, index, parts, meta)
    plots.plot_history(history, LIVE_DIR / "curves.png")


if __name__ == "__main__":
    main()
