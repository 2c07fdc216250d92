"""Serving: cold start of ``ser predict one.wav`` and per-clip latency, ONNX (what ships) vs Keras.

- cold start: wall time of a fresh process that loads the model and scores one
  clip, the median of several runs: ``ser predict`` (onnxruntime) beside the
  same steps with the Keras model (TensorFlow), and a bare ``import tensorflow``;
- latency: one clip at a time through a warm model (load, features, model),
  per clip p50/p95, for both runtimes on the same clips, and the throughput
  of scoring a whole folder in one ``ser predict`` call;
- accuracy as served on held-out speakers: each fold's model (``models/folds/``)
  on its test clips, with the reference statistics (the default) and with
  ``--adapt`` on groups of clips of one speaker. (The deployable model in
  ``models/`` learned from every clip: it has none held out.)

    python -m benchmarks serving   # needs models/ and data/features (`dvc pull` or `make run`)
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.common import CORPUS, REPO, save

RUNS = 5
CLIPS = 100
KERAS_ONE_CLIP = """
import sys
import keras
from ser import models
from ser.inference import Predictor, serving_inputs
predictor = Predictor(sys.argv[1])
model = keras.models.load_model(predictor.model_dir / "model.keras")
clip = predictor.clip_features(sys.argv[2])
inputs = serving_inputs(clip.values, clip.valid_frames, predictor.params, predictor.reference)
print(model.predict(inputs, verbose=0).mean(axis=0))
"""


def median_wall(command: list[str]) -> float:
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run(command, cwd=REPO, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def percentiles(seconds: list[float]) -> dict:
    ms = np.array(seconds) * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95))}


def clip_latency(clips: list[Path]) -> dict:
    """Per-clip seconds through a warm model, ONNX and Keras, on the same clips."""
    import keras

    from ser import models  # noqa: F401 - registers the custom layers
    from ser.inference import Predictor, serving_inputs

    predictor = Predictor(REPO / "models")
    model = keras.models.load_model(REPO / "models" / "model.keras")
    onnx, keras_times, gaps = [], [], []
    for clip in [clips[0], *clips]:  # the first run warms both up
        start = time.perf_counter()
        prediction = predictor.predict_file(clip)
        onnx.append(time.perf_counter() - start)
        start = time.perf_counter()
        features = predictor.clip_features(clip)
        inputs = serving_inputs(features.values, features.valid_frames, predictor.params, predictor.reference)
        probabilities = model.predict(inputs, verbose=0).mean(axis=0)
        keras_times.append(time.perf_counter() - start)
        gaps.append(float(np.abs(probabilities - prediction.probabilities).max()))
    return {"onnx": percentiles(onnx[1:]), "keras": percentiles(keras_times[1:]), "max_probability_gap": max(gaps)}


def normalization_accuracy(group_sizes: tuple[int, ...] = (1, 5, 20, 100)) -> dict:
    """Accuracy of the folds' models on their test clips (cached features), normalized with each
    model's reference statistics (the default), or ``--adapt``-style with the statistics of random
    groups of clips of one test speaker (1: each clip alone), as ``ser predict --adapt`` would; and
    with each test speaker's clips all together, as the evaluate stage does."""
    from ser.features import load_features
    from ser.inference import REFERENCE, Predictor
    from ser.inputs import model_inputs
    from ser.tables import read_clips

    features, index, _ = load_features(REPO / "data" / "features")
    folds = sorted(path.parent for path in (REPO / "models" / "folds").glob("*/split.csv"))
    if not folds:
        raise RuntimeError(f"no fold models in {REPO / 'models' / 'folds'}: run `dvc pull` or `dvc repro train` first")
    rng = np.random.default_rng(0)
    correct: dict[str, int] = {}
    tested = 0
    for fold_dir in folds:
        predictor = Predictor(fold_dir)
        test = (read_clips(fold_dir / "split.csv")["part"] == "test").to_numpy()
        values, valid = features[test], index["valid_frames"][test].to_numpy()
        speakers, actual = index["speaker"][test].to_numpy(dtype=str), index["emotion"][test].to_numpy()

        def hits(groups: np.ndarray, stats: dict | None) -> int:
            inputs = model_inputs(values, valid, groups, predictor.params, stats)
            probabilities = predictor.session.run(None, {predictor.input_name: inputs})[0]
            return int((np.asarray(predictor.classes)[probabilities.argmax(axis=1)] == actual).sum())

        def speaker_groups(size: int) -> np.ndarray:
            """Each speaker's test clips in random groups of ``size``."""
            groups = np.empty(len(values), dtype=object)
            for speaker in np.unique(speakers):
                rows = rng.permutation(np.flatnonzero(speakers == speaker))
                groups[rows] = [f"{speaker}#{k // size}" for k in range(len(rows))]
            return groups.astype(str)

        runs = {"reference": hits(np.full(len(values), REFERENCE), {REFERENCE: predictor.reference})}
        for size in group_sizes:
            runs[f"adapt_groups_of_{size}"] = hits(speaker_groups(size), None)
        runs["adapt_each_speaker"] = hits(speakers, None)
        for name, count in runs.items():
            correct[name] = correct.get(name, 0) + count
        tested += len(values)
    return {"folds": len(folds), "clips": tested, **{name: count / tested for name, count in correct.items()}}


def main() -> dict:
    ser = str(Path(sys.executable).with_name("ser"))
    clips = sorted(CORPUS.glob("*/*.*"))[:: max(1, len(list(CORPUS.glob("*/*.*"))) // CLIPS)][:CLIPS]
    one = str(clips[0])
    cold = {
        "ser_predict_s": median_wall([ser, "predict", one, "--model", "models"]),
        "keras_s": median_wall([sys.executable, "-c", KERAS_ONE_CLIP, "models", one]),
        "import_tensorflow_s": median_wall([sys.executable, "-c", "import tensorflow"]),
    }
    cold["speedup"] = cold["keras_s"] / cold["ser_predict_s"]
    start = time.perf_counter()
    subprocess.run([ser, "predict", *map(str, clips), "--format", "csv"], cwd=REPO, check=True, capture_output=True)
    folder_s = time.perf_counter() - start
    latency = clip_latency(clips)
    normalization = normalization_accuracy()
    result = {
        "normalization_accuracy": normalization,
        "clips": len(clips),
        "cold_start": cold,
        "latency": latency,
        "folder": {"seconds": folder_s, "clips_per_s": len(clips) / folder_s},
    }
    print(f"cold start, one clip: ser predict {cold['ser_predict_s']:.2f} s; Keras {cold['keras_s']:.2f} s "
          f"({cold['speedup']:.1f}x slower); `import tensorflow` alone {cold['import_tensorflow_s']:.2f} s")
    print(f"per clip, warm: ONNX p50 {latency['onnx']['p50_ms']:.1f} ms / p95 {latency['onnx']['p95_ms']:.1f} ms; "
          f"Keras p50 {latency['keras']['p50_ms']:.1f} ms / p95 {latency['keras']['p95_ms']:.1f} ms; "
          f"largest probability gap {latency['max_probability_gap']:.1e}")
    print(f"ser predict on {len(clips)} files: {folder_s:.1f} s ({len(clips) / folder_s:.0f} clips/s, start-up included)")
    print(f"accuracy on held-out speakers ({normalization['clips']} test clips of {normalization['folds']} folds): "
          + ", ".join(f"{k} {v:.1%}" for k, v in normalization.items() if k not in ("folds", "clips")))
    save("serving", result)
    return result
