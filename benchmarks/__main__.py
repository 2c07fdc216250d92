"""Run the benchmarks and print their figures: ``python -m benchmarks [NAME ...]``.

NAME is any of featurize, functionals, incremental, train, e2e, serving, load,
pressure, screenshot (default: all, in that order). featurize reads the clips of
data/manifest.csv and data/raw (all of TESS, and all clips of the corpora),
functionals a sample of clips of each corpus there, train data/features;
serving reads models/ (the deployable model and the folds' models) and
data/features, load and pressure models/ (`dvc pull`); incremental copies the
project with copies of the corpora of its data.sources; e2e clones the
committed project and runs `make setup` and the pipeline on all its corpora.
Each writes reports/benchmarks/NAME.json; `python -m benchmarks.readme` then
rewrites the README's table from them. screenshot renders the README's
picture of the web app, reports/webapp.png.

``SER_BENCH_SMOKE=1 python -m benchmarks [NAME ...]``: a smoke run, to check
that the benchmarks work: a few clips per corpus and few repetitions, so that
each finishes well within a minute (e2e only clones the project and checks
its command lines: `make -n setup` and the stage names); its figures mean
nothing, and the JSON goes to $TMPDIR/ser-benchmarks-smoke/, not reports/.
"""

from __future__ import annotations

import argparse
import importlib

import opensmile  # noqa: F401 - before any benchmark imports TensorFlow: openSMILE, first loaded after it, crashes

NAMES = ("featurize", "functionals", "incremental", "train", "e2e", "serving", "load", "pressure", "screenshot")


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
