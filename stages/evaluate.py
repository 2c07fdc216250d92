"""Stage evaluate: score every fold's model on its held-out test part; report per corpus and speaker."""

import json

import pandas as pd

from ser.evaluation import confident_mistakes, evaluate_model, summarize
from ser.features import load_features, load_functionals
from ser.inference import load_meta
from ser.params import RESERVED_CORPUS, load_params
from ser.paths import EVAL_DIR, FEATURE_DIR, FOLD_MODEL_DIR, METRICS, MODEL_DIR
from ser.split import single_emotion_rows

TOP_MISTAKES = 30


def main() -> None:
    load_params()
    features, index, _ = load_features(FEATURE_DIR)
    functionals = load_functionals(FEATURE_DIR)
    deployable = load_meta(MODEL_DIR)

    from ser.plots import plot_confusion

    folds, tables = {}, []
    for fold in deployable["folds"]:
        predictions, folds[fold], _ = evaluate_model(FOLD_MODEL_DIR / fold, features, index, functionals)
        tables.append(predictions)
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
    METRICS.write_text(json.dumps(metrics, indent=2) + "\n")
    print(json.dumps({k: v for k, v in metrics.items() if k not in ("by_speaker", "folds")}, indent=2))


if __name__ == "__main__":
    main()
