"""Stage evaluate: score every fold's model on its held-out test part; report per corpus and speaker."""

import json

import pandas as pd

from ser.evaluation import (
    confident_mistakes, evaluate_model, robustness_rows, robustness_scores, robustness_table, summarize, transformed_predictions,
)
from ser.features import load_features, load_functionals
from ser.inference import load_meta
from ser.params import RESERVED_CORPUS, load_params
from ser.paths import EVAL_DIR, FEATURE_DIR, FOLD_MODEL_DIR, METRICS, MODEL_DIR, ROBUSTNESS_DIR
from ser.split import single_emotion_rows

TOP_MISTAKES = 30


def main() -> None:
    load_params()
    features, index, _ = load_features(FEATURE_DIR)
    functionals = load_functionals(FEATURE_DIR)
    transformed = load_features(ROBUSTNESS_DIR)[:2], load_functionals(ROBUSTNESS_DIR)
    deployable = load_meta(MODEL_DIR)

    from ser.plots import plot_confusion, plot_robustness

    folds, tables, robust = {}, [], []
    for fold in deployable["folds"]:
        predictions, folds[fold], _ = evaluate_model(FOLD_MODEL_DIR / fold, features, index, functionals)
        tables.append(predictions)
        robust.append(transformed_predictions(FOLD_MODEL_DIR / fold, *transformed[0], transformed[1], predictions["file"]))
    predictions = pd.concat(tables, ignore_index=True)
    classes, arch = deployable["classes"], deployable["model"]["arch"]
    (EVAL_DIR / "by_corpus").mkdir(parents=True, exist_ok=True)
    for corpus, rows in [(RESERVED_CORPUS, predictions), *predictions.groupby("corpus", sort=True)]:
        plot_confusion(rows["actual"], rows["predicted"], classes, EVAL_DIR / "confusion" / f"{corpus}.png",
                       title=f"{arch}, {deployable['split']['protocol']} protocol, test clips of {corpus}")
        if corpus != RESERVED_CORPUS:
            rows[["actual", "predicted"]].to_csv(EVAL_DIR / "by_corpus" / f"{corpus}.csv", index=False)

    predictions.to_csv(EVAL_DIR / "predictions.csv", index=False)
    mistakes = confident_mistakes(predictions, TOP_MISTAKES)
    mistakes.to_csv(EVAL_DIR / "mistakes.csv", index=False)
    (EVAL_DIR / "mistakes.md").write_text(
        f"# The {len(mistakes)} most confident mistakes\n\n" + mistakes.to_markdown(index=False) + "\n"
    )
    giveaway = predictions["file"].isin(index.loc[single_emotion_rows(index), "file"])  # their words give the label away
    metrics = summarize(deployable["split"]["protocol"], predictions, folds, classes, giveaway)
    robustness = robustness_table(pd.concat(robust, ignore_index=True), predictions)
    robustness.to_csv(EVAL_DIR / "robustness_predictions.csv", index=False)
    metrics["robustness"] = robustness_scores(robustness, list(dict.fromkeys(transformed[0][1]["transform"])))
    rows = robustness_rows(metrics["robustness"])
    rows.to_csv(EVAL_DIR / "robustness.csv", index=False)
    if len(rows):
        plot_robustness(rows, EVAL_DIR / "robustness.png", f"{arch}: {metrics['robustness']['n_clips']} test clips, each scored alone")
    METRICS.write_text(json.dumps(metrics, indent=2) + "\n")
    print(json.dumps({k: v for k, v in metrics.items() if k not in ("by_speaker", "folds")}, indent=2))


if __name__ == "__main__":
    main()
