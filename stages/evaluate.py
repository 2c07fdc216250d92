"""Stage evaluate: score every fold's model on its held-out test part."""

import json
from pathlib import Path

import pandas as pd

from ser.evaluation import confident_mistakes, predictions_table, score, summarize
from ser.features import load_features
from ser.inputs import model_inputs
from ser.params import ModelParams, load_params
from ser.split import TEST

FEATURE_DIR = Path("data/features")
MODEL_DIR = Path("models")
METRICS = Path("reports/metrics.json")
OUT_DIR = Path("reports/eval")
TOP_MISTAKES = 30


def model_dirs() -> list[Path]:
    """The deployable model's directory, then the other folds' (speaker protocol)."""
    return [MODEL_DIR, *sorted(path.parent for path in MODEL_DIR.glob("cross/*/meta.json"))]


def main() -> None:
    load_params()
    features, index, _ = load_features(FEATURE_DIR)

    import keras

    from ser import models  # noqa: F401 - registers the custom layers
    from ser.plots import plot_confusion

    folds, tables = {}, []
    for model_dir in model_dirs():
        split = pd.read_csv(model_dir / "split.csv")
        if not split["file"].equals(index["file"]):
            raise RuntimeError(f"{model_dir / 'split.csv'} does not match {FEATURE_DIR}: rerun the train stage")
        meta = json.loads((model_dir / "meta.json").read_text())
        model = keras.models.load_model(model_dir / "model.keras")
        test = (split["part"] == TEST).to_numpy()
        inputs = model_inputs(features, index["valid_frames"], index["speaker"], ModelParams(**meta["model"]))
        probabilities = model.predict(inputs[test], verbose=0)
        predictions = predictions_table(split, probabilities, meta["classes"], meta["fold"])
        folds[meta["fold"]] = score(predictions, split, meta["classes"])
        plot_confusion(predictions["actual"], predictions["predicted"], meta["classes"],
                       OUT_DIR / "confusion" / f"{meta['fold']}.png", title=f"{meta['model']['arch']}, {meta['fold']}")
        tables.append(predictions)

    OUT_DIR.mkdir(parents=True, exist_ok=True)
    predictions = pd.concat(tables, ignore_index=True)
    predictions.to_csv(OUT_DIR / "predictions.csv", index=False)
    mistakes = confident_mistakes(predictions, TOP_MISTAKES)
    mistakes.to_csv(OUT_DIR / "mistakes.csv", index=False)
    (OUT_DIR / "mistakes.md").write_text(
        f"# The {len(mistakes)} most confident mistakes\n\n" + mistakes.to_markdown(index=False) + "\n"
    )
    metrics = summarize(meta["split"]["protocol"], folds)
    METRICS.write_text(json.dumps(metrics, indent=2) + "\n")
    print(json.dumps({k: v for k, v in metrics.items() if k != "folds"}, indent=2))


if __name__ == "__main__":
    main()
