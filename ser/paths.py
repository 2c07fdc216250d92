"""Where the pipeline's artifacts live, relative to the project root (the folder of ``dvc.yaml``).

The one place for these paths: the stage scripts, the ``ser`` command, the
benchmarks and the tests take them from here, and ``tests/test_paths.py`` checks
that every artifact path of ``dvc.yaml`` is one of them or lies under one.
"""

from pathlib import Path

DATA_DIR = Path("data")
"""Everything the pipeline derives from the corpora before training (DVC-tracked)."""
RAW_DIR = DATA_DIR / "raw"
"""Stage fetch@<corpus>: each corpus's clips and manifest in ``RAW_DIR / <corpus>``."""
MANIFEST = DATA_DIR / "manifest.csv"
"""Stage labels: every kept clip of every corpus on one label set."""
FEATURE_DIR = DATA_DIR / "features"
"""Stage featurize: frame features, functionals and augmented copies of every clip."""
ROBUSTNESS_DIR = DATA_DIR / "robustness"
"""Stage robustness: features of a stratified draw of the clips through each transform of the recording chain."""
MODEL_DIR = Path("models")
"""Stage train: the deployable model, trained on all the data (what ``ser predict`` and ``ser serve`` load)."""
FOLD_MODEL_DIR = MODEL_DIR / "folds"
"""Stage train: each evaluation fold's model, in ``FOLD_MODEL_DIR / <fold>``."""
REPORTS_DIR = Path("reports")
"""Reports committed with git (DVC outputs with ``cache: false``, benchmark and experiment results)."""
FETCH_REPORT_DIR = REPORTS_DIR / "fetch"
"""Stage labels: the files left aside (``rejected.csv``) and the counts kept (``summary.json``)."""
EDA_DIR = REPORTS_DIR / "eda"
"""Stage eda: counts, durations, waveforms and spectrograms."""
TRAIN_REPORT_DIR = REPORTS_DIR / "train"
"""Stage train: its reports (the four paths below)."""
TRAIN_LIVE_DIR = TRAIN_REPORT_DIR / "live"
"""Stage train: dvclive logs, per fold and network, and the folds' validation scores."""
TRAIN_CURVES_DIR = TRAIN_REPORT_DIR / "curves"
"""Stage train: training curves as PNGs."""
TRAIN_METRICS = TRAIN_REPORT_DIR / "metrics.json"
"""Stage train: validation scores (``val_loss``, the selection score) and the deployable model's epochs."""
TRAIN_FOLDS = TRAIN_REPORT_DIR / "folds.csv"
"""Stage train: per fold and corpus, the speakers and clips of each part and the corpus's share of the training loss."""
METRICS = REPORTS_DIR / "metrics.json"
"""Stage evaluate: test scores overall, per corpus, per speaker and per fold (``dvc metrics show``)."""
EVAL_DIR = REPORTS_DIR / "eval"
"""Stage evaluate: predictions, confusion matrices, the most confident mistakes."""
BENCHMARK_DIR = REPORTS_DIR / "benchmarks"
"""``python -m benchmarks NAME``: each benchmark's NAME.json."""
EXPERIMENTS = REPORTS_DIR / "experiments.json"
"""The DVC experiments behind the README's tables (``python -m benchmarks.results`` writes the README from it)."""
EXPERIMENTS_TABLE = REPORTS_DIR / "experiments.md"
"""``EXPERIMENTS`` as a markdown table, generated from it."""
WEBAPP_SCREENSHOT = REPORTS_DIR / "webapp.png"
"""``python -m benchmarks screenshot``: the web app, as the README shows it."""
