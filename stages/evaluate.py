"""Stage evaluate: score the trained model on its held-out test part."""

import json
from pathlib import Path

import pandas as pd

from ser.evaluation import predictions_table, score
from ser.features import load_features
from ser.params import load_params
from ser.split import TEST

FEATURE_DIR = Path("data/features")
MODEL_DIR = Path("models")
METRICS = Path("reports/metrics.json")
OUT_DIR = Path("reports/eval")


def main() -> None:
    load_params()
    features, index, _ = load_features(FEATURE_DIR)
    split = pd.read_csv(MODEL_DIR / "split.csv")
    if not split["file"].equals(index["file"]):
        raise RuntimeError(f"{MODEL_DIR / 'split.csv'} does not match {FEATURE_DIR}: rerun the train stage")
    meta = json.loads((MODEL_DIR / "meta.json").read_text())

    import keras

    from ser.plots import plot_confusion

    model = keras.models.load_model(MODEL_DIR / "model.keras")
    probabilities = model.predict(features[(split["part"] == TEST).to_numpy()], verbose=0)
    predictions = predictions_table(split, probabilities, meta["classes"])
    metrics = score(predictions, split, meta["classes"], meta["split"])

    OUT_DIR.mkdir(parents=True, exist_ok=True)
    predictions.to_csv(OUT_DIR / "predictions.csv", index=False)
    plot_confusion(predictions["actual"], predictions["predicted"], meta["classes"], OUT_DIR / "confusion_matrix.png")
    METRICS.write_text(json.dumps(metrics, indent=2) + "\n")
    print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    main()
