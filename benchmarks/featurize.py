"""Featurize: the pipeline against the tutorial's loop, on all TESS clips of data/manifest.csv, in the same run.

The tutorial loads each clip with ``librosa.load(path, duration=3, offset=0.5)``,
computes ``librosa.feature.mfcc(..., n_mfcc=40)`` and takes the mean, one file
at a time. The pipeline side is the featurize stage's own code
(``featurize_corpus``, no cache, no augmented copies), on one worker and on the
configured workers, with the tutorial's audio and feature settings (librosa's
defaults: 22 050 Hz, 2048-sample FFT; the pipeline's own params now read 16 kHz),
so that both sides compute the same features. Each side runs in its own
process, so that its peak memory is its own; its features are compared with the tutorial's.

    python -m benchmarks featurize    # needs data/raw and data/manifest.csv: `dvc pull` or `dvc repro labels`
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.common import RAW_DIR, PeakMemory, read_manifest, run_json, save

SIDES = {"tutorial": None, "pipeline, 1 worker": 1, "pipeline, all cores": 0}
CORPORA = ("tess",)  # the tutorial's corpus
TUTORIAL_AUDIO = {"sr": 22050, "offset": 0.5, "duration": 3.0, "res_type": "soxr_hq"}  # librosa.load's defaults
TUTORIAL_FEATURES = {  # librosa's mfcc; no openSMILE functionals (the tutorial has none)
    "kind": "mfcc", "n_mfcc": 40, "n_mels": 128, "n_fft": 2048, "hop_length": 512, "functionals": [],
}


def tutorial_features(paths: list[Path]) -> np.ndarray:
    """The tutorial's loop: load, MFCC, mean, one file at a time."""
    import librosa

    rows = []
    for path in paths:
        samples, sr = librosa.load(path, duration=3, offset=0.5)
        rows.append(np.mean(librosa.feature.mfcc(y=samples, sr=sr, n_mfcc=40).T, axis=0))
    return np.array(rows, dtype=np.float32)


def pipeline_features(manifest: pd.DataFrame, workers: int, out_dir: Path) -> None:
    """The featurize stage's computation (no cache, no augmented copies), written to ``out_dir``."""
    from ser.featurize import Settings, featurize_corpus
    from ser.params import load_params

    params = load_params()
    settings = Settings(
        params.audio.model_copy(update=TUTORIAL_AUDIO),
        params.features.model_copy(update=TUTORIAL_FEATURES),
        params.augment.model_copy(update={"copies": 0}),
    )
    featurize_corpus(manifest, RAW_DIR, out_dir, settings, params.featurize.model_copy(update={"workers": workers, "cache": ""}))


def pooled_features(out_dir: Path) -> np.ndarray:
    """The mean over each clip's real frames, as ``seed_lstm`` reads it: what the tutorial computes."""
    from ser.features import load_features
    from ser.inputs import model_inputs
    from ser.params import load_params

    values, index, _ = load_features(out_dir)
    tutorial = load_params().model.model_copy(update={"arch": "seed_lstm", "members": [], "deltas": 0, "normalize": "none"})
    return model_inputs(values, index["valid_frames"], index["speaker"], tutorial)[..., 0]


def run_side(side: str, out: Path) -> None:
    """Featurize all clips with one side, in this process; print its figures as JSON."""
    manifest = read_manifest(CORPORA)
    with PeakMemory() as memory:
        start = time.perf_counter()
        if SIDES[side] is None:
            values = tutorial_features([RAW_DIR / file for file in manifest["file"]])
        else:
            pipeline_features(manifest, SIDES[side], out.parent / "features")
        seconds = time.perf_counter() - start
    np.save(out, values if SIDES[side] is None else pooled_features(out.parent / "features"))
    print(json.dumps({"clips": len(manifest), "seconds": seconds, "clips_per_s": len(manifest) / seconds, "peak_rss_mib": memory.peak_mib}))


def main() -> dict:
    results, values = {}, {}
    with tempfile.TemporaryDirectory() as workdir:
        for number, side in enumerate(SIDES):
            out = Path(workdir) / str(number) / "values.npy"
            out.parent.mkdir()
            results[side] = run_json("benchmarks.featurize", "--side", side, "--out", str(out))
            values[side] = np.load(out)
    tutorial = results["tutorial"]
    for side, figures in results.items():
        figures["speedup"] = tutorial["seconds"] / figures["seconds"]
        figures["max_abs_difference"] = float(np.abs(values[side] - values["tutorial"]).max())
        print(f"{side:20s} {figures['seconds']:6.1f} s  {figures['clips_per_s']:6.0f} clips/s  "
              f"{figures['speedup']:4.2f}x  peak RSS {figures['peak_rss_mib']:4.0f} MiB  "
              f"max |diff| {figures['max_abs_difference']:.1e}")
    result = {"clips": tutorial["clips"], "largest_abs_value": float(np.abs(values["tutorial"]).max()), "sides": results}
    save("featurize", result)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--side", choices=list(SIDES), required=True)
    parser.add_argument("--out", type=Path, required=True)
    arguments = parser.parse_args()
    run_side(arguments.side, arguments.out)
