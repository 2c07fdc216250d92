"""The README's results tables and reports/experiments.md, generated from the committed reports.

Sources (all committed):

- ``reports/metrics.json`` (the evaluate stage of the committed default run): the default model's
  rows, and the table of the default run per corpus and class;
- ``reports/train/folds.csv`` (the train stage of the same run): the folds per corpus;
- ``reports/experiments.json``: the DVC experiments behind the other rows (``make experiments``,
  ``make tuning``), one entry per experiment with its settings and scores, written by
  ``python -m benchmarks.experiments NAME...`` from ``dvc exp show``.

Each table goes between the lines ``<!-- results:NAME:begin -->`` and ``<!-- results:NAME:end -->``
of README.md (NAME: one of ``TABLES``). Figures are the reports' values rounded half up (the
reports hold 4 decimals; a README figure is never more precise than its report). A row whose
experiment is missing from experiments.json fails loudly, naming it.

Refresh the README (these tables, experiments.md and the benchmark table) in one command:

    python -m benchmarks.readme

After ``dvc repro`` (or ``dvc pull``) of the default run nothing else is needed. After new
experiments: ``python -m benchmarks.experiments NAME...`` first, then point the README's rows
(``SPEAKER_ROWS``, ``CORPUS_ROWS``, ``KNOWN_VOICES_ROWS`` below) at the experiments' names if
these changed, and run ``python -m benchmarks.readme``.

    python -m benchmarks.results [--readme README.md]   # the results tables and experiments.md only
"""

from __future__ import annotations

import argparse
import csv
import json
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from benchmarks.common import REPO
from ser import paths

CORPORA = ("tess", "ravdess", "emovo", "ased", "nemo")
"""The corpora of the tables' columns, in the README's order (any other in a report comes after them)."""
NAMES = {"tess": "TESS", "ravdess": "RAVDESS", "emovo": "EMOVO", "ased": "ASED", "nemo": "nEMO"}
"""How the tables name each corpus."""
TARGETS = ("80%", "0.80", "0.05", "0.60", "", "70%", "TESS speakers 85% each", "", "", "", "")
"""The targets, in the speaker table's columns after the first (typed: they are no measurement)."""


# ------------------------------------------------------------------ figures

def rounded(value: float, places: int, scale: int = 0) -> Decimal:
    """``value`` as written in its report (JSON's shortest repr), times ``10**scale``, rounded half up
    to ``places`` decimals (in decimal arithmetic: 0.5335 is 53.4%, not the float 53.349999...)."""
    return Decimal(repr(value)).scaleb(scale).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def pct(value: float | None) -> str:
    """A share as a percentage with one decimal; '' when there is none."""
    return "" if value is None else f"{rounded(value, 1, scale=2)}%"


def dec(value: float | None, places: int = 3) -> str:
    """A score with ``places`` decimals; '' when there is none."""
    return "" if value is None else str(rounded(value, places))


def bold(text: str) -> str:
    return f"**{text}**" if text else text


def markdown(header: tuple[str, ...], rows: list[tuple[str, ...]], empty: str = " ") -> str:
    """A markdown table (``|`` in a cell escaped); an empty cell is written ``|<empty>|``."""
    def line(cells: tuple[str, ...]) -> str:
        return "|" + "|".join(f" {cell.replace('|', chr(92) + '|')} " if cell else empty for cell in cells) + "|\n"

    return line(header) + "|" + "|".join("---" for _ in header) + "|\n" + "".join(line(row) for row in rows)


# ------------------------------------------------------------------ sources

def load(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise SystemExit(f"{path}: not found (the README's results tables are generated from it)") from None


def read_rows(path: Path) -> list[dict]:
    try:
        with path.open(newline="") as handle:
            return list(csv.DictReader(handle))
    except FileNotFoundError:
        raise SystemExit(f"{path}: not found (the README's results tables are generated from it)") from None


class Experiments:
    """reports/experiments.json: each experiment by name."""

    def __init__(self, data: dict, path: Path | str = paths.EXPERIMENTS):
        self.data, self.path = data, path
        self.by_name = {entry["name"]: entry for entry in data["experiments"]}

    def __getitem__(self, name: str) -> dict:
        if name not in self.by_name:
            raise SystemExit(f"{self.path}: no experiment {name!r}, which the README's tables show "
                             f"(experiments: {', '.join(self.by_name)})")
        return self.by_name[name]


def corpus_accuracy(scores: dict, key: str = "accuracy") -> dict[str, float]:
    """An experiment's (``corpus_<key>``), or reports/metrics.json's (``by_corpus``), score ``key`` per corpus."""
    if f"corpus_{key}" in scores:
        return scores[f"corpus_{key}"]
    return {corpus: figures[key] for corpus, figures in scores.get("by_corpus", {}).items()}


def corpora_of(metrics: dict) -> list[str]:
    found = list(metrics.get("by_corpus", {}))
    return [c for c in CORPORA if c in found] + sorted(c for c in found if c not in CORPORA)


def lowest_recall(metrics: dict) -> str:
    """The lowest class recall, with its class where the report has the recalls."""
    recall = metrics.get("recall")
    if not recall:
        return dec(metrics.get("min_recall"), 2)
    worst = min(recall, key=recall.get)
    return f"{dec(recall[worst], 2)} ({worst})"


# ------------------------------------------------------------------ the README's tables

SPEAKER_HEADER = ("model", "accuracy", "macro F1", "ECE", "lowest class recall", "adapted (5 / 20 clips)",
                  "serving accuracy", *(NAMES[c] for c in CORPORA))
SPEAKER_ROWS = (
    ("`seed_lstm` (tutorial baseline)", "seed_lstm-speaker"),
    ("`ensemble` (default) on the three corpora of before (20 speakers)", "default-speaker@3corpora"),
)
DEFAULT_SPEAKER_LABEL = "**`ensemble`** (default): `logreg` on eGeMAPS + `logreg` on ComParE + `bigru`"


def speaker_scores(label: str, scores: dict, default: bool = False) -> tuple[str, ...]:
    adapted = scores.get("adapted_accuracy") or {}
    five, twenty = adapted.get("5"), adapted.get("20")
    by_corpus = corpus_accuracy(scores)
    emphasis = bold if default else str
    return (
        label, emphasis(pct(scores["accuracy"])), emphasis(dec(scores["macro_f1"])), dec(scores["ece"]), lowest_recall(scores),
        f"{pct(five)} / {pct(twenty)}" if five is not None and twenty is not None else "",
        emphasis(pct(scores["serving_accuracy"])), *(pct(by_corpus.get(corpus)) for corpus in CORPORA),
    )


def speaker_table(metrics: dict, experiments: Experiments) -> str:
    rows = [speaker_scores(label, experiments[name]) for label, name in SPEAKER_ROWS]
    rows.append(speaker_scores(DEFAULT_SPEAKER_LABEL, metrics, default=True))
    rows.append(("target", *TARGETS))
    return markdown(SPEAKER_HEADER, rows)


CORPUS_HEADER = ("model", "trained on", *(f"tested on {NAMES[c]}" if not k else NAMES[c] for k, c in enumerate(CORPORA)), "mean")
OTHERS, TESS_ALONE = "the four other corpora", "**TESS alone**"
CORPUS_ROWS = (  # (label, trained on, experiment)
    ("**`ensemble`** (default)", OTHERS, "default-corpus"),
    ("`ensemble` (default)", "the two others of the three corpora of before", "balanced-corpus-protocol@3corpora"),
    ("`seed_lstm`", "the two others of the three corpora of before", "seed_lstm-corpus@3corpora"),
    ("`ensemble` (default)", TESS_ALONE, "ensemble-tess-only"),
    ("`seed_lstm`", f"{TESS_ALONE} (three corpora of before)", "seed_lstm-tess-only@3corpora"),
)
DEFAULT_CORPUS_EXPERIMENT = "default-corpus"


def corpus_table(experiments: Experiments) -> str:
    """Leave one corpus out; the default also with each clip scored alone (``ser predict``'s way)."""
    rows = []
    for label, trained_on, name in CORPUS_ROWS:
        scores = experiments[name]
        by_corpus = corpus_accuracy(scores)
        mean = pct(scores["corpus_mean_accuracy"])
        rows.append((label, trained_on, *(pct(by_corpus.get(corpus)) for corpus in CORPORA),
                     bold(mean) if name == DEFAULT_CORPUS_EXPERIMENT else mean))
        if name == DEFAULT_CORPUS_EXPERIMENT:
            alone = corpus_accuracy(scores, "serving_accuracy")
            mean_alone = sum(alone.values()) / len(alone)
            rows.append((f"{label}, one clip at a time", trained_on, *(pct(alone.get(corpus)) for corpus in CORPORA),
                         bold(pct(round(mean_alone, 4)))))
    return markdown(CORPUS_HEADER, rows)


KNOWN_VOICES_HEADER = ("setting", "accuracy", *(NAMES[c] for c in CORPORA))
KNOWN_VOICES_ROWS = (  # bigru, the default before the ensemble, on the three corpora of before
    ("`text`: 20% of each corpus's words or sentences held out, every speaker in training", "bigru-text@3corpora"),
    ("`random`: 20% of the clips held out", "bigru-random@3corpora"),
    ("TESS alone, speaker protocol (2 folds, one TESS speaker each; lowest class recall {min_recall})", "bigru-tess-speaker@3corpora"),
)


def known_voices_table(experiments: Experiments) -> str:
    rows = []
    for label, name in KNOWN_VOICES_ROWS:
        scores = experiments[name]
        by_corpus = corpus_accuracy(scores)
        label = label.format(min_recall=dec(scores["min_recall"], 2))
        rows.append((label, pct(scores["accuracy"]), *(pct(by_corpus.get(corpus)) for corpus in CORPORA)))
    return markdown(KNOWN_VOICES_HEADER, rows)


def per_corpus_table(metrics: dict) -> str:
    """The default run per corpus and class (recall), from reports/metrics.json alone."""
    classes = list(metrics["recall"])
    header = ("test clips", "clips", "accuracy", "macro F1", "ECE", "serving accuracy",
              "texts spoken in several emotions: accuracy / serving", *classes)
    speakers: dict[str, int] = {}
    for speaker in metrics.get("by_speaker", {}):
        corpus = speaker.split("/", 1)[0]
        speakers[corpus] = speakers.get(corpus, 0) + 1

    def row(label: str, scores: dict) -> tuple[str, ...]:
        shared = scores.get("shared_texts")
        apart = f"{pct(shared['accuracy'])} / {pct(shared['serving_accuracy'])} ({shared['n_test']} clips)" if shared else ""
        return (label, str(scores["n_test"]), pct(scores["accuracy"]), dec(scores["macro_f1"]), dec(scores["ece"]),
                pct(scores["serving_accuracy"]), apart, *(dec(scores["recall"].get(c), 2) for c in classes))

    rows = []
    for corpus in corpora_of(metrics):
        count = speakers.get(corpus)
        name = NAMES.get(corpus, corpus.upper())
        label = f"{name} ({count} speaker{'s' if count != 1 else ''})" if count else name
        rows.append(row(label, metrics["by_corpus"][corpus]))
    rows.append(row("all", metrics))
    return markdown(header, rows)


def one_clip_table(metrics: dict) -> str:
    """The default run's test clips scored one at a time (as ``ser predict`` and the web app do), per
    corpus: serving accuracy and recall per class, from reports/metrics.json alone."""
    classes = list(metrics["serving_recall"])
    header = ("test clips, one at a time", "serving accuracy", "lowest class recall", *classes)

    def row(label: str, scores: dict) -> tuple[str, ...]:
        return (label, pct(scores["serving_accuracy"]), dec(scores["serving_min_recall"], 2),
                *(dec(scores["serving_recall"].get(c), 2) for c in classes))

    rows = [row(NAMES.get(corpus, corpus.upper()), metrics["by_corpus"][corpus]) for corpus in corpora_of(metrics)]
    return markdown(header, [*rows, row("all", metrics)])


ROBUSTNESS_TARGETS = {"gain": (0.95, 0.03), "other": (0.85, 0.08)}
"""Per kind of transform: the share of clips whose top class must stay unchanged, and the largest accuracy loss."""


def robustness_table(metrics: dict) -> str:
    """The default run's test clips scored one at a time through each transform of the recording chain
    (``robustness`` in reports/metrics.json), against the targets."""
    scores = metrics["robustness"]
    header = ("passed through", "accuracy", "change (points)", "top class unchanged", "target: unchanged / largest loss")
    rows = [("nothing", pct(scores["untransformed"]["accuracy"]), "", "", "")]
    for name, value in scores.items():
        if not isinstance(value, dict) or name == "untransformed":
            continue
        unchanged, loss = ROBUSTNESS_TARGETS["gain" if name.startswith("gain") else "other"]
        change = f"{100 * value['accuracy_change']:+.1f}"
        rows.append((f"`{name}`", pct(value["accuracy"]), change, pct(value["unchanged"]), f"{pct(unchanged)} / {100 * loss:.0f}"))
    return markdown(header, rows)


MORE_SPEAKERS = (  # (label, source): an experiment's name, or None for reports/metrics.json (the default run)
    ("three corpora, 20 speakers (the previous default run)", "default-speaker@3corpora"),
    ("five corpora, 94 speakers, the same settings (two augmented copies)", "default-speaker-two-copies"),
    ("five corpora, 94 speakers, the default (one augmented copy)", None),
)
OLD_CORPORA = ("tess", "ravdess", "emovo")


def more_speakers_table(metrics: dict, experiments: Experiments) -> str:
    """The three corpora of before under the speaker protocol, as the training set grew: accuracy (each
    test speaker normalized with all their clips) and serving accuracy (one clip alone), per corpus."""
    header = ("trained on", *(f"{NAMES[c]}: accuracy / one clip" for c in OLD_CORPORA), "mean over the three")
    rows = []
    for label, name in MORE_SPEAKERS:
        scores = metrics if name is None else experiments[name]
        accuracy, serving = corpus_accuracy(scores), corpus_accuracy(scores, "serving_accuracy")
        mean = sum(accuracy[c] for c in OLD_CORPORA) / len(OLD_CORPORA)
        mean_serving = sum(serving[c] for c in OLD_CORPORA) / len(OLD_CORPORA)
        rows.append((label, *(f"{pct(accuracy[c])} / {pct(serving[c])}" for c in OLD_CORPORA),
                     f"{pct(round(mean, 4))} / {pct(round(mean_serving, 4))}"))
    return markdown(header, rows)


def counts(entries: list[dict], key: str) -> list[int]:
    """Column ``key`` of rows of reports/train/folds.csv, as integers."""
    return [int(entry[key]) for entry in entries]


def spread(values) -> str:
    """``low-high`` of integers, or the one value."""
    low, high = min(values), max(values)
    return str(low) if low == high else f"{low}-{high}"


def folds_table(folds: list[dict]) -> str:
    """The default run's folds per corpus (reports/train/folds.csv): what each fold tests, validates and
    trains on, and the corpus's share of the training loss (``train.balance``)."""
    header = ("corpus", "speakers", "test speakers per fold", "validation speakers per fold",
              "training speakers per fold", "training clips per fold", "share of the training loss")
    rows = []
    by_corpus: dict[str, list[dict]] = {}
    for row in folds:
        by_corpus.setdefault(row["corpus"], []).append(row)
    for corpus in [c for c in CORPORA if c in by_corpus] + sorted(c for c in by_corpus if c not in CORPORA):
        entries = by_corpus[corpus]
        speakers = counts(entries, "test_speakers")
        shares = [float(entry["loss_share"]) for entry in entries]
        rows.append((
            NAMES.get(corpus, corpus), str(sum(speakers)), spread(speakers), spread(counts(entries, "val_speakers")),
            spread(counts(entries, "train_speakers")), spread(counts(entries, "train_clips")),
            pct(min(shares)) if min(shares) == max(shares) else f"{pct(min(shares))}-{pct(max(shares))}",
        ))
    return markdown(header, rows)


TABLES = ("speaker", "corpus", "known-voices", "per-corpus", "one-clip", "robustness", "folds", "more-speakers")
"""The README's generated results tables, by marker name."""


def tables(metrics: dict, experiments: Experiments, folds: list[dict]) -> dict[str, str]:
    """Each of ``TABLES``' markdown, from reports/metrics.json, reports/experiments.json and reports/train/folds.csv."""
    return {
        "speaker": speaker_table(metrics, experiments),
        "corpus": corpus_table(experiments),
        "known-voices": known_voices_table(experiments),
        "per-corpus": per_corpus_table(metrics),
        "one-clip": one_clip_table(metrics),
        "robustness": robustness_table(metrics),
        "folds": folds_table(folds),
        "more-speakers": more_speakers_table(metrics, experiments),
    }


def markers(name: str) -> tuple[str, str]:
    return f"<!-- results:{name}:begin -->", f"<!-- results:{name}:end -->"


# ------------------------------------------------------------------ reports/experiments.md

FORMATS = {  # experiments.md's columns after the settings: how each score is shown
    "val_loss": "{:.4g}", "accuracy": "{:.4f}", "macro_f1": "{:.4f}", "ece": "{:.4f}", "min_recall": "{:.3f}",
    "serving_accuracy": "{:.4f}", "corpus_mean_accuracy": "{:.4f}",
}
GENERATED = "Generated from `reports/experiments.json` by `python -m benchmarks.readme` (`benchmarks/results.py`): edit that file, not this one."
SETTINGS = ("corpora", "protocol", "train_corpora", "arch", "members", "logreg_c", "functionals", "realistic aug.", "balance")


def setting(entry: dict, column: str) -> str:
    if column == "realistic aug.":
        return "yes" if entry["realistic_augmentation"] else "no"
    value = entry[column]
    if column == "corpora":
        return str(len(value))
    if column in ("members", "train_corpora"):
        return " + ".join(value) if value else "-"
    return str(value)


def experiments_markdown(data: dict) -> str:
    """reports/experiments.md: reports/experiments.json as one table."""
    corpora = data["corpora"]
    header = ("experiment", *SETTINGS, *FORMATS, *corpora)
    rows = []
    for entry in data["experiments"]:
        scores = [fmt.format(entry[key]) for key, fmt in FORMATS.items()]
        by_corpus = entry["corpus_accuracy"]
        rows.append((entry["name"], *(setting(entry, c) for c in SETTINGS), *scores,
                     *(f"{by_corpus[c]:.4f}" if c in by_corpus else "" for c in corpora)))
    return f"# {data['title']}\n\n{data['description']}\n{GENERATED}\n\n{markdown(header, rows, empty='  ')}"


# ------------------------------------------------------------------ the README

def replace_blocks(text: str, blocks: dict[str, str]) -> str:
    """``text`` with each table of ``blocks`` between its marker lines."""
    from benchmarks.readme import replace_block

    for name, block in blocks.items():
        text = replace_block(text, block, *markers(name))
    return text


def current(root: Path = REPO) -> tuple[dict[str, str], str]:
    """The results tables and experiments.md as the committed reports under ``root`` give them."""
    data = load(root / paths.EXPERIMENTS)
    folds = read_rows(root / paths.TRAIN_FOLDS)
    return tables(load(root / paths.METRICS), Experiments(data, paths.EXPERIMENTS), folds), experiments_markdown(data)


def write(readme: Path, root: Path = REPO) -> str:
    """Rewrite ``readme``'s results tables and ``root``'s experiments.md; a line saying what was done."""
    blocks, experiments = current(root)
    readme.write_text(replace_blocks(readme.read_text(), blocks))
    (root / paths.EXPERIMENTS_TABLE).write_text(experiments)
    return (f"{readme}: {len(blocks)} results tables from {paths.METRICS} and {paths.EXPERIMENTS}; "
            f"{paths.EXPERIMENTS_TABLE} rewritten")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.results", description=__doc__.splitlines()[0])
    parser.add_argument("--readme", type=Path, default=REPO / "README.md")
    print(write(parser.parse_args(argv).readme))


if __name__ == "__main__":
    main()
