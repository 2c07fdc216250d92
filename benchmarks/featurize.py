"""Benchmark: the featurize stage against the tutorial's featurization loop, on the same clips.

The tutorial loads each clip with ``librosa.load(path, duration=3, offset=0.5)``,
computes ``librosa.feature.mfcc(..., n_mfcc=40)`` and takes the mean, one file
at a time. Each side runs in its own process, so that its peak memory (RSS) is
its own. Prints the figures and writes them to ``reports/benchmarks/featurize.json``.

    python -m benchmarks.featurize            # all clips in data/raw (run `dvc repro fetch` first)
    python -m benchmarks.featurize --limit 200
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

RAW_DIR = Path("data/raw")
OUT = Path("reports/benchmarks/featurize.json")


def tutorial_features(paths: list[Path]) -> np.ndarray:
    """The tutorial's loop: load, MFCC, mean, one file at a time."""
    import librosa

    rows = []
    for path in paths:
        samples, sr = librosa.load(path, duration=3, offset=0.5)
        rows.append(np.mean(librosa.feature.mfcc(y=samples, sr=sr, n_mfcc=40).T, axis=0))
    return np.array(rows, dtype=np.float32)


def pipeline_features(manifest: pd.DataFrame) -> np.ndarray:
    """The featurize stage's computation (no augmented copies), pooled the way ``seed_lstm`` reads it."""
    from ser.features import featurize
    from ser.inputs import model_inputs
    from ser.params import load_params

    params = load_params()
    values, index = featurize(manifest, RAW_DIR, params.audio, params.features)
    tutorial_model = params.model.model_copy(update={"arch": "seed_lstm", "deltas": 0, "normalize": "none"})
    return model_inputs(values, index["valid_frames"], index["speaker"], tutorial_model)[..., 0]


def run_side(side: str, limit: int | None, out: Path) -> None:
    """Featurize with one side, in this process, and save its features and timings."""
    manifest = pd.read_csv(RAW_DIR / "manifest.csv").head(limit)
    start = time.perf_counter()
    if side == "tutorial":
        values = tutorial_features([RAW_DIR / file for file in manifest["file"]])
    else:
        values = pipeline_features(manifest)
    seconds = time.perf_counter() - start
    np.save(out, values)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"side": side, "clips": len(manifest), "seconds": seconds, "peak_rss_mib": peak_mib}))


def measure(side: str, limit: int | None, workdir: Path) -> tuple[dict, np.ndarray]:
    out = workdir / f"{side}.npy"
    command = [sys.executable, "-m", "benchmarks.featurize", "--side", side, "--out", str(out)]
    if limit:
        command += ["--limit", str(limit)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1]), np.load(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, help="only the first N clips of the manifest")
    parser.add_argument("--side", choices=["tutorial", "pipeline"], help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        run_side(args.side, args.limit, args.out)
        return

    import tempfile

    with tempfile.TemporaryDirectory() as workdir:
        tutorial, tutorial_values = measure("tutorial", args.limit, Path(workdir))
        pipeline, pipeline_values = measure("pipeline", args.limit, Path(workdir))
    parity = float(np.abs(tutorial_values - pipeline_values).max())
    result = {
        "clips": tutorial["clips"],
        "tutorial": {**tutorial, "clips_per_s": tutorial["clips"] / tutorial["seconds"]},
        "pipeline": {**pipeline, "clips_per_s": pipeline["clips"] / pipeline["seconds"]},
        "speedup": tutorial["seconds"] / pipeline["seconds"],
        "max_abs_difference": parity,
        "largest_abs_value": float(np.abs(tutorial_values).max()),
    }
    for side in ("tutorial", "pipeline"):
        figures = result[side]
        print(f"{side:9s} {figures['seconds']:7.1f} s  {figures['clips_per_s']:6.1f} clips/s  "
              f"peak RSS {figures['peak_rss_mib']:6.0f} MiB")
    print(f"speedup {result['speedup']:.2f}x; largest difference between their features: {parity:.2e} "
          f"(largest value {result['largest_abs_value']:.0f})")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
