"""Scaling: featurize 1x, 4x and 16x TESS (replicas of its clips in data/raw under new names) with the stage's code.

Wall time should grow linearly with the corpus and peak memory stay flat: audio
is streamed and results are appended to disk as they arrive. Each size runs in
its own process, with no cache and no augmented copies (to keep the 16x run
short; copies go through the same streaming path).

    python -m benchmarks scaling    # needs data/raw and data/manifest.csv: `dvc pull` or `dvc repro labels`
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import pandas as pd

from benchmarks.common import RAW_DIR, PeakMemory, link_or_copy, read_manifest, run_json, save

FACTORS = (1, 4, 16)
CORPORA = ("tess",)


def replicate(factor: int, root: Path) -> pd.DataFrame:
    """A manifest of ``factor`` copies of the TESS clips of data/raw under new names (hard links) in ``root``."""
    manifest = read_manifest(CORPORA)
    replicas = []
    for copy in range(factor):
        for file in manifest["file"]:
            link_or_copy(RAW_DIR / file, root / f"r{copy}" / file)
        replicas.append(manifest.assign(file=f"r{copy}/" + manifest["file"]))
    return pd.concat(replicas, ignore_index=True)


def run_size(factor: int) -> None:
    """Featurize the ``factor``x corpus in this process; print its figures as JSON."""
    from ser.featurize import Settings, featurize_corpus
    from ser.params import load_params

    params = load_params()
    settings = Settings(params.audio, params.features, params.augment.model_copy(update={"copies": 0}))
    with tempfile.TemporaryDirectory() as workdir:
        manifest = replicate(factor, Path(workdir) / "raw")
        run = params.featurize.model_copy(update={"cache": ""})
        with PeakMemory() as memory:
            start = time.perf_counter()
            summary = featurize_corpus(manifest, Path(workdir) / "raw", Path(workdir) / "out", settings, run)
            seconds = time.perf_counter() - start
    print(json.dumps({"factor": factor, "clips": summary.clips, "seconds": seconds, "clips_per_s": summary.clips / seconds, "peak_rss_mib": memory.peak_mib}))


def main() -> dict:
    sizes = [run_json("benchmarks.scaling", "--factor", str(factor)) for factor in FACTORS]
    base = sizes[0]
    for size in sizes:
        size["time_ratio"] = size["seconds"] / base["seconds"]
        size["rss_ratio"] = size["peak_rss_mib"] / base["peak_rss_mib"]
        print(f"{size['factor']:3d}x {size['clips']:6d} clips {size['seconds']:7.1f} s ({size['time_ratio']:5.2f}x time)  "
              f"{size['clips_per_s']:5.0f} clips/s  peak RSS {size['peak_rss_mib']:4.0f} MiB ({size['rss_ratio']:4.2f}x)")
    result = {"sizes": sizes}
    save("scaling", result)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--factor", type=int, required=True)
    run_size(parser.parse_args().factor)
