"""Stage evaluate: score every fold's model on its held-out test part."""

import json
from pathlib import Path

import pandas as pd

from ser.evaluation import confident_mistakes, evaluate_model, summarize
from ser.features import load_features
from ser.params import load_params

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

    from ser.plots import plot_confusion

    folds, tables = {}, []
    for model_dir in model_dirs():
        predictions, scores, meta = evaluate_model(model_dir, features, index)
        fold = meta["fold"]
        folds[fold] = scores
        plot_confusion(predictions["actual"], predictions["predicted"], meta["classes"],
                       OUT_DIR / "confusion" / f"{fold}.png", title=f"{meta['model']['arch']}, {fold}")
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
