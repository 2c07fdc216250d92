"""Run the benchmarks and print their figures: ``python -m benchmarks [NAME ...]``.

NAME is any of featurize, scaling, incremental, train, e2e, serving, load
(default: all, in that order). featurize and scaling read the TESS clips of
data/manifest.csv and data/raw, train data/features; serving reads models/
(the deployable model and the folds' models) and data/features, load models/
(`dvc pull`); incremental copies the project with TESS alone as its source;
e2e clones the committed project and runs it on all its corpora.
Each writes reports/benchmarks/NAME.json. screenshot (also run by default)
renders the README's picture of the web app, reports/webapp.png.
"""

from __future__ import annotations

import argparse
import importlib

import opensmile  # noqa: F401 - before any benchmark imports TensorFlow: openSMILE, first loaded after it, crashes

NAMES = ("featurize", "scaling", "incremental", "train", "e2e", "serving", "load", "screenshot")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description="Run the benchmarks and print their figures.")
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"any of {', '.join(NAMES)} (default: all)")
    names = parser.parse_args().names or NAMES
    if unknown := sorted(set(names) - set(NAMES)):
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(NAMES)}")
    for name in names:
        print(f"== {name}", flush=True)
        importlib.import_module(f"benchmarks.{name}").main()


if __name__ == "__main__":
    main()
