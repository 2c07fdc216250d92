"""Serving: cold start of ``ser predict one.wav`` and per-clip latency, ONNX (what ships) vs Keras.

- cold start: wall time of a fresh process that loads the model and scores one
  clip, the median of several runs: ``ser predict`` (onnxruntime) against a
  bare ``python -c "import tensorflow"`` (the target: at most half of it), and
  beside the same steps with the model's Keras networks (TensorFlow);
- latency: one clip at a time through a warm model (load, features, model),
  per clip p50/p95, for both runtimes on the same clips, and the throughput
  of scoring a whole folder in one ``ser predict`` call. The Keras side runs the
  model's networks (``<arch>.keras``); an ensemble's utterance classifier has no
  Keras form (it is saved in the ONNX graph only), so the largest probability
  gap between the two sides is measured only for a model made of networks alone;
- accuracy as served on held-out speakers: each fold's model (``models/folds/``)
  on its test clips, each clip alone (the default: its own statistics shrunk
  toward the model's reference statistics) and with ``--adapt`` on groups of
  clips of one speaker. (The deployable model in ``models/`` learned from every
  clip: it has none held out.)

    python -m benchmarks serving   # needs models/ and data/features (`dvc pull` or `make run`)
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.common import CORPUS, REPO, SMOKE, save, smoke_or
from ser.paths import FEATURE_DIR, FOLD_MODEL_DIR, MODEL_DIR

RUNS = smoke_or(5, 1)
CLIPS = smoke_or(100, 5)
KERAS_ONE_CLIP = """
import sys
from benchmarks.serving import keras_networks, keras_probabilities
from ser.inference import Predictor
predictor = Predictor(sys.argv[1])
networks = keras_networks(predictor)
clip = predictor.clip_features(sys.argv[2])
print(keras_probabilities(predictor, networks, clip).mean(axis=0))
"""


def keras_networks(predictor) -> dict:
    """The model's networks as Keras models, by architecture (an ensemble's classifiers have none)."""
    import opensmile  # noqa: F401 - before TensorFlow: openSMILE, first loaded after it, crashes (the clips' functionals)

    import keras

    import ser.models.networks  # noqa: F401 - registers the custom layers
    from ser.inputs import UTTERANCE, input_kind

    return {  # the files ser.assembly.keras_file names (not imported: it would add its own imports to the timing)
        member.arch: keras.models.load_model(predictor.model_dir / f"{member.arch}.keras")
        for member in predictor.params.member_params() if input_kind(member.arch) != UTTERANCE
    }


def covers_the_model(predictor, networks: dict) -> bool:
    """Whether the Keras networks are the whole model (no member without a Keras form)."""
    return len(networks) == len(predictor.params.member_params())


def keras_probabilities(predictor, networks: dict, clip) -> np.ndarray:
    """The networks' mean probabilities for every window of ``clip`` (its own speaker, as ``ser predict``
    scores it), calibrated with the model's temperature as its ONNX graph is."""
    from ser.inference import graph_inputs
    from ser.inputs import input_kind
    from ser.models.ensemble import calibrated

    speakers = np.full(len(clip.starts), "clip")
    inputs = graph_inputs(clip.values, clip.valid_frames, clip.functionals, speakers, predictor.params, predictor.reference)
    outputs = [network.predict(inputs[input_kind(arch)], verbose=0) for arch, network in networks.items()]
    return calibrated(np.mean(outputs, axis=0), predictor.meta.get("temperature", 1.0))


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
    from ser.inference import Predictor

    predictor = Predictor(REPO / MODEL_DIR)
    networks = keras_networks(predictor)
    onnx, keras_times, gaps = [], [], []
    for clip in [clips[0], *clips]:  # the first run warms both up
        start = time.perf_counter()
        prediction = predictor.predict_file(clip)
        onnx.append(time.perf_counter() - start)
        start = time.perf_counter()
        features = predictor.clip_features(clip)
        probabilities = keras_probabilities(predictor, networks, features).mean(axis=0)
        keras_times.append(time.perf_counter() - start)
        gaps.append(float(np.abs(probabilities - prediction.probabilities).max()))
    gap = max(gaps) if covers_the_model(predictor, networks) else None
    return {"onnx": percentiles(onnx[1:]), "keras": percentiles(keras_times[1:]), "keras_networks": list(networks),
            "max_probability_gap": gap}


def normalization_accuracy(group_sizes: tuple[int, ...] = (5, 20, 100), folds: int | None = smoke_or(None, 1)) -> dict:
    """Accuracy of the folds' models on their test clips (cached features and functionals), each clip
    alone (the default: its own statistics shrunk toward the model's reference), or ``--adapt``-style
    with the statistics of random groups of clips of one test speaker, as ``ser predict --adapt``
    would; and with each test speaker's clips all together, as the evaluate stage does. ``folds``:
    the first that many folds only (all if None)."""
    from ser.evaluation import adaptation_groups
    from ser.features import load_features, load_functionals
    from ser.inference import Predictor, graph_inputs
    from ser.tables import read_clips

    features, index, _ = load_features(REPO / FEATURE_DIR)
    functionals = load_functionals(REPO / FEATURE_DIR)
    folds = sorted(path.parent for path in (REPO / FOLD_MODEL_DIR).glob("*/split.csv"))[:folds]
    if not folds:
        raise RuntimeError(f"no fold models in {REPO / FOLD_MODEL_DIR}: run `dvc pull` or `dvc repro train` first")
    correct: dict[str, int] = {}
    tested = 0
    for fold_dir in folds:
        predictor = Predictor(fold_dir, threads=0)
        test = (read_clips(fold_dir / "split.csv")["part"] == "test").to_numpy()
        values, valid, described = features[test], index["valid_frames"][test].to_numpy(), {kind: found[test] for kind, found in functionals.items()}
        speakers, actual = index["speaker"][test].to_numpy(dtype=str), index["emotion"][test].to_numpy()

        def hits(groups: np.ndarray) -> int:
            inputs = graph_inputs(values, valid, described, groups, predictor.params, predictor.reference)
            probabilities = predictor.probabilities(inputs)
            return int((np.asarray(predictor.classes)[probabilities.argmax(axis=1)] == actual).sum())

        runs = {"alone": hits(np.arange(len(values)).astype(str))}
        for size in group_sizes:
            runs[f"adapt_groups_of_{size}"] = hits(adaptation_groups(speakers, size))
        runs["adapt_each_speaker"] = hits(speakers)
        for name, count in runs.items():
            correct[name] = correct.get(name, 0) + count
        tested += len(values)
    return {"folds": len(folds), "clips": tested, **{name: count / tested for name, count in correct.items()}}


def main() -> dict:
    ser = str(Path(sys.executable).with_name("ser"))
    clips = sorted(CORPUS.glob("*/*.*"))[:: max(1, len(list(CORPUS.glob("*/*.*"))) // CLIPS)][:CLIPS]
    one = str(clips[0])
    cold = {
        "ser_predict_s": median_wall([ser, "predict", one, "--model", str(MODEL_DIR)]),
        "keras_s": median_wall([sys.executable, "-c", KERAS_ONE_CLIP, str(MODEL_DIR), one]),
        "import_tensorflow_s": median_wall([sys.executable, "-c", "import tensorflow"]),
    }
    cold["speedup"] = cold["keras_s"] / cold["ser_predict_s"]
    cold["ratio_to_import_tensorflow"] = cold["ser_predict_s"] / cold["import_tensorflow_s"]
    start = time.perf_counter()
    subprocess.run([ser, "predict", *map(str, clips), "--format", "csv"], cwd=REPO, check=True, capture_output=True)
    folder_s = time.perf_counter() - start
    latency = clip_latency(clips)
    normalization = normalization_accuracy()
    result = {
        "smoke": SMOKE,
        "runs": RUNS,
        "normalization_accuracy": normalization,
        "clips": len(clips),
        "cold_start": cold,
        "latency": latency,
        "folder": {"seconds": folder_s, "clips_per_s": len(clips) / folder_s},
    }
    print(f"cold start, one clip, median of {RUNS}: ser predict {cold['ser_predict_s']:.2f} s, "
          f"{cold['ratio_to_import_tensorflow']:.2f}x a bare `import tensorflow` ({cold['import_tensorflow_s']:.2f} s; "
          f"target <= 0.5x); Keras {cold['keras_s']:.2f} s ({cold['speedup']:.1f}x slower than ser predict)")
    gap = latency["max_probability_gap"]
    print(f"per clip, warm: ONNX p50 {latency['onnx']['p50_ms']:.1f} ms / p95 {latency['onnx']['p95_ms']:.1f} ms; "
          f"Keras ({', '.join(latency['keras_networks'])}) p50 {latency['keras']['p50_ms']:.1f} ms / "
          f"p95 {latency['keras']['p95_ms']:.1f} ms; largest probability gap "
          + (f"{gap:.1e}" if gap is not None else "not measured (a member has no Keras form)"))
    print(f"ser predict on {len(clips)} files: {folder_s:.1f} s ({len(clips) / folder_s:.0f} clips/s, start-up included)")
    print(f"accuracy on held-out speakers ({normalization['clips']} test clips of {normalization['folds']} folds): "
          + ", ".join(f"{k} {v:.1%}" for k, v in normalization.items() if k not in ("folds", "clips")))
    save("serving", result)
    return result
