"""Featurize: the pipeline against the tutorial's loop, warm, on all of TESS and on all clips of the corpora.

The tutorial loads each clip with ``librosa.load(path, duration=3, offset=0.5)``,
computes ``librosa.feature.mfcc(..., n_mfcc=40)`` and takes the mean, one file
at a time. The pipeline side is the featurize stage's own code
(``featurize_corpus``, no cache, no augmented copies), on one worker and on one
per core, with the tutorial's audio and feature settings (librosa's defaults:
22 050 Hz, 2048-sample FFT; the pipeline's own params now read 16 kHz), so that
both sides compute the same features.

Two workloads: all TESS clips of data/manifest.csv, and all its clips (every
corpus of ``data.sources``). Each side runs in its own process, so that its
peak memory is its own, and warm: it runs once on the same files untimed, then
``REPEATS`` times timed, and its time is the median (each of the pipeline side's
``featurize_corpus`` calls starts a new worker pool). Its mean MFCCs are compared with the tutorial's: the largest
absolute difference, and that divided by the largest absolute value of the
tutorial's features.

    python -m benchmarks featurize    # needs data/raw and data/manifest.csv: `dvc pull` or `dvc repro labels`
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.common import (
    RAW_DIR, SMOKE, featurize_stage, measure, read_manifest, run_json, sample_clips, save, smoke_or, throughput,
)

SIDES = {"tutorial": None, "pipeline, 1 worker": 1, "pipeline, all cores": 0}
REPEATS = smoke_or(3, 1)  # timed runs of each side; the median counts (a 2-core machine's timings vary by 5-10%)
WORKLOADS = {"tess": ("tess",), "all corpora": None}  # corpora of data/manifest.csv (None: all of them)
TUTORIAL_AUDIO = {"sr": 22050, "offset": 0.5, "duration": 3.0, "res_type": "soxr_hq"}  # librosa.load's defaults
TUTORIAL_FEATURES = {  # librosa's mfcc; no openSMILE functionals (the tutorial has none)
    "kind": "mfcc", "n_mfcc": 40, "n_mels": 128, "n_fft": 2048, "hop_length": 512, "functionals": [],
}


def workload(name: str) -> pd.DataFrame:
    """The clips of a workload (a few per corpus in a smoke run)."""
    return sample_clips(read_manifest(WORKLOADS[name]), smoke_or(None, 8))


def tutorial_features(paths: list[Path]) -> np.ndarray:
    """The tutorial's loop: load, MFCC, mean, one file at a time."""
    import librosa

    rows = []
    for path in paths:
        samples, sr = librosa.load(path, duration=3, offset=0.5)
        rows.append(np.mean(librosa.feature.mfcc(y=samples, sr=sr, n_mfcc=40).T, axis=0))
    return np.array(rows, dtype=np.float32)


def pooled_features(out_dir: Path) -> np.ndarray:
    """The mean over each clip's real frames, as ``seed_lstm`` reads it: what the tutorial computes."""
    from ser.features import load_features
    from ser.inputs import model_inputs
    from ser.params import load_params

    values, index, _ = load_features(out_dir)
    tutorial = load_params().model.model_copy(update={"arch": "seed_lstm", "members": [], "deltas": 0, "normalize": "none"})
    return model_inputs(values, index["valid_frames"], index["speaker"], tutorial)[..., 0]


def run_side(side: str, name: str, out: Path) -> None:
    """Featurize a workload's clips with one side in this process, warm; save its features to ``out``
    and print its figures as JSON."""
    manifest = workload(name)
    features_dir = out.parent / "features"
    if SIDES[side] is None:
        paths = [RAW_DIR / file for file in manifest["file"]]
        values, seconds, peak = measure(lambda: tutorial_features(paths), warm=True, repeats=REPEATS)
    else:
        _, seconds, peak = measure(
            lambda: featurize_stage(manifest, RAW_DIR, features_dir, SIDES[side], audio=TUTORIAL_AUDIO, features=TUTORIAL_FEATURES),
            warm=True, repeats=REPEATS,
        )
        values = pooled_features(features_dir)
    np.save(out, values)
    print(json.dumps(throughput(len(manifest), seconds, peak)))


def compare(name: str, workdir: Path) -> dict:
    """Every side on one workload, each in its own process; their figures and features' differences."""
    results, values = {}, {}
    for number, side in enumerate(SIDES):
        out = workdir / str(number) / "values.npy"
        out.parent.mkdir(parents=True)
        results[side] = run_json("benchmarks.featurize", "--side", side, "--workload", name, "--out", str(out))
        values[side] = np.load(out)
    largest = float(np.abs(values["tutorial"]).max())
    tutorial = results["tutorial"]
    print(f"{name}: {tutorial['clips']} clips, warm; features up to {largest:.0f} in absolute value")
    for side, figures in results.items():
        difference = float(np.abs(values[side] - values["tutorial"]).max())
        figures.update(speedup=tutorial["seconds"] / figures["seconds"], max_abs_difference=difference,
                       max_relative_difference=difference / largest)
        print(f"  {side:20s} {figures['seconds']:6.1f} s  {figures['clips_per_s']:6.0f} clips/s  "
              f"{figures['speedup']:4.2f}x  peak RSS {figures['peak_rss_mib']:4.0f} MiB  "
              f"max |diff| {difference:.1e} ({figures['max_relative_difference']:.1e} of the largest value)")
    return {"clips": tutorial["clips"], "largest_abs_value": largest, "sides": results}


def main() -> dict:
    with tempfile.TemporaryDirectory() as workdir:
        workloads = {name: compare(name, Path(workdir) / str(number)) for number, name in enumerate(WORKLOADS)}
    result = {"warm": True, "smoke": SMOKE, "workloads": workloads}
    save("featurize", result)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--side", choices=list(SIDES), required=True)
    parser.add_argument("--workload", choices=list(WORKLOADS), required=True)
    parser.add_argument("--out", type=Path, required=True)
    arguments = parser.parse_args()
    run_side(arguments.side, arguments.workload, arguments.out)
