"""Scoring audio with a trained model: the one path behind ``ser predict`` and the web app.

A :class:`Predictor` loads the ONNX export of a model directory (onnxruntime,
no TensorFlow) and computes features exactly as the featurize stage does
(:func:`ser.audio.load_window`, :func:`ser.features.batch_frame_features`,
:func:`ser.inputs.model_inputs`), so serving sees what training saw.

A clip no longer than the model's window (``audio.offset + audio.duration``)
is one window, as in training. A longer clip is cut into windows of
``audio.duration`` seconds from ``audio.offset`` on, the last one ending at the
end of the clip; the clip's probabilities are the mean of its windows'.

Models trained with ``normalize: speaker`` need a speaker's statistics. By
default each clip is its own speaker: its statistics, from one clip, are shrunk
almost all the way to the training speakers' pooled statistics saved with the
model (see :mod:`ser.inputs`). ``adapt=True`` treats the clips scored together as
one speaker, and ``speakers`` names each clip's speaker: the more clips a
speaker has, the more their own statistics count.
"""

from __future__ import annotations

import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import soundfile as sf
from pydantic import ValidationError

from ser.audio import AudioError, AudioSource, check_sample_rate, load_window, normalize_level, read_window
from ser.features import batch_frame_features
from ser.functionals import functional_sets
from ser.inputs import Stats, input_name, member_functionals, model_inputs
from ser.params import AudioParams, FeatureParams, ModelParams
from ser.paths import FOLD_MODEL_DIR, METRICS, MODEL_DIR

MODEL_FILE = "model.keras"
ONNX_FILE = "model.onnx"
META_FILE = "meta.json"
SPLIT_FILE = "split.csv"
SILENCE_DBFS = -80.0
"""A clip whose loudest sample is below this level is refused as silent."""
PROBE_S = 0.01
"""Seconds read where a long clip's header says its last window starts, before its windows are listed."""
DEPLOYABLE_FOLD = "all"
"""The fold name of the deployable model, trained on all the data (its scores are the folds')."""


class UndecodableAudio(AudioError):
    """Content that libsndfile cannot read as audio."""


class ModelError(RuntimeError):
    """A model directory that cannot be served; the message says what to do."""


@dataclass(frozen=True)
class ClipFeatures:
    """Frame features of one clip's windows, before normalization."""

    name: str
    duration: float
    starts: list[float]
    values: np.ndarray
    valid_frames: np.ndarray
    functionals: dict[str, np.ndarray]


@dataclass(frozen=True)
class Window:
    start: float
    end: float
    probabilities: np.ndarray


def ranked(classes: Sequence[str], probabilities: np.ndarray, k: int | None = None) -> list[tuple[str, float]]:
    """The ``k`` most probable classes (all by default) and their probabilities, most probable first."""
    order = np.argsort(-np.asarray(probabilities), kind="stable")[:k]
    return [(classes[i], float(probabilities[i])) for i in order]


@dataclass(frozen=True)
class Prediction:
    """A clip's class probabilities (the mean over its windows) and each window's."""

    name: str
    duration: float
    classes: tuple[str, ...]
    probabilities: np.ndarray
    windows: list[Window] = field(default_factory=list)

    @property
    def emotion(self) -> str:
        return self.classes[int(np.argmax(self.probabilities))]

    @property
    def confidence(self) -> float:
        return float(np.max(self.probabilities))

    def top(self, k: int | None = None) -> list[tuple[str, float]]:
        """The ``k`` most probable classes (all by default), most probable first."""
        return ranked(self.classes, self.probabilities, k)

    def to_dict(self, top: int | None = None, per_window: bool = False) -> dict:
        """JSON-ready: file, duration, emotion, confidence, probabilities (top ``top``), windows."""
        result = {
            "file": self.name,
            "duration": round(self.duration, 3),
            "emotion": self.emotion,
            "confidence": round(self.confidence, 6),
            "probabilities": {label: round(p, 6) for label, p in self.top(top)},
        }
        if per_window:
            result["windows"] = [
                {"start": round(w.start, 3), "end": round(w.end, 3),
                 "probabilities": {label: round(float(p), 6) for label, p in zip(self.classes, w.probabilities)}}
                for w in self.windows
            ]
        return result


def window_starts(duration: float, audio: AudioParams) -> list[float]:
    """Start times of the analysis windows of a clip lasting ``duration`` seconds."""
    if duration <= audio.offset + audio.duration:
        return [audio.offset]
    last = duration - audio.duration
    count = math.ceil(round((last - audio.offset) / audio.duration, 9)) + 1  # no extra window from rounding
    return [min(audio.offset + k * audio.duration, last) for k in range(count)]


def clip_duration(source: AudioSource, name: str) -> float:
    """Length of a clip in seconds, read from its header."""
    try:
        info = sf.info(source)
    except (sf.LibsndfileError, RuntimeError) as exc:
        reason = getattr(exc, "error_string", None) or str(exc).split(": ")[-1]
        raise UndecodableAudio(f"{name}: cannot decode audio ({reason})") from None
    finally:
        _rewind(source)
    if info.frames == 0:
        raise AudioError(f"{name}: no audio samples (an empty clip)")
    check_sample_rate(info.samplerate, name)
    return info.frames / info.samplerate


def _rewind(source: AudioSource) -> None:
    """Back to the start of a file object, for the next read (paths are reopened)."""
    if not isinstance(source, (str, Path)):
        source.seek(0)


def load_windows(source: AudioSource, audio: AudioParams, name: str) -> tuple[float, list[float], list[np.ndarray]]:
    """A clip's duration, window start times and windows' samples; silent clips are refused."""
    duration = clip_duration(source, name)
    if duration > audio.offset + audio.duration:  # a damaged header can claim years: is there audio at the last window?
        read_window(source, duration - audio.duration, PROBE_S, name)
        _rewind(source)
    starts = window_starts(duration, audio)
    windows = []
    for start in starts:
        windows.append(load_window(source, audio.model_copy(update={"offset": start}), name))
        _rewind(source)
    peak = max(float(np.max(np.abs(w))) for w in windows)
    if peak < 10 ** (SILENCE_DBFS / 20):
        level = "digital silence" if peak == 0 else f"peak {20 * math.log10(peak):.0f} dBFS"
        raise AudioError(f"{name}: clip is silent ({level})")
    return duration, starts, windows


def load_meta(model_dir: Path) -> dict:
    """A model directory's ``meta.json``."""
    path = Path(model_dir) / META_FILE
    if not path.is_file():
        raise ModelError(f"no model in {model_dir}: run `dvc pull` or `dvc repro` first (missing {path})")
    return json.loads(path.read_text())


def scored_metrics(model_dir: Path, fold: str | None) -> dict | None:
    """The evaluate stage's scores, if the project holding ``model_dir`` has them: a fold model's
    own, or, for the deployable model (no test part of its own), the folds' over all their test
    clips, with each corpus's accuracy."""
    near = list(Path(model_dir).resolve().parents)[: len(FOLD_MODEL_DIR.parts) + 1]  # models/ or models/folds/<fold>/
    path = next((d / METRICS for d in near if (d / METRICS).is_file()), None)
    if path is None:
        return None
    metrics = json.loads(path.read_text())
    scores = metrics if fold == DEPLOYABLE_FOLD else metrics.get("folds", {}).get(fold)
    if scores is None:
        return None
    keys = ("n_test", "accuracy", "macro_f1", "ece", "min_recall", "serving_accuracy", "serving_min_recall", "adapted_accuracy", "recall")
    found = {"file": os.path.relpath(path), "protocol": metrics.get("protocol"), "fold": "all folds" if scores is metrics else fold}
    found.update({k: scores[k] for k in keys if k in scores})
    if fold == DEPLOYABLE_FOLD and "by_corpus" in metrics:
        found["corpus_accuracy"] = {corpus: s["accuracy"] for corpus, s in metrics["by_corpus"].items()}
    return found


def saved_reference_stats(meta: dict) -> dict[str, Stats]:
    """The reference statistics of each input kind that the train stage saved in a model's ``meta.json``."""
    return {kind: (np.float32(s["mean"]), np.float32(s["std"])) for kind, s in meta.get("reference_stats", {}).items()}


def graph_inputs(
    values: np.ndarray, valid_frames: np.ndarray, functionals: dict[str, np.ndarray] | None, speakers: np.ndarray,
    params: ModelParams, reference: dict[str, Stats],
) -> dict[str, np.ndarray]:
    """The served graph's inputs, by name, for clips of the given ``speakers`` (each speaker's
    statistics come from their clips here, shrunk toward the ``reference``)."""
    inputs = {}
    for member in params.member_params():
        name = input_name(member)
        if name not in inputs:
            inputs[name] = model_inputs(values, valid_frames, speakers, member, functionals=member_functionals(member, functionals),
                                        reference=reference.get(name))
    return inputs


class Predictor:
    """A trained model loaded once, scoring clips from paths or in-memory files.

    ``threads`` is onnxruntime's per-call thread count (0: one per core). One is the default:
    the model is a small part of the work, and the web app scores requests in parallel threads.
    """

    def __init__(self, model_dir: str | Path = MODEL_DIR, threads: int = 1):
        import onnxruntime

        self.model_dir = Path(model_dir)
        self.meta = load_meta(self.model_dir)
        onnx_path = self.model_dir / ONNX_FILE
        if not onnx_path.is_file():
            raise ModelError(f"no {ONNX_FILE} in {model_dir}: rerun the train stage (`dvc repro train`)")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = onnxruntime.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        self.input_names = {node.name for node in self.session.get_inputs()}
        self.classes: tuple[str, ...] = tuple(self.meta["classes"])
        stale = ModelError(f"{self.model_dir / META_FILE} was saved by another version: rerun the train stage (`dvc repro train`)")
        try:
            self.audio = AudioParams(**self.meta["audio"])
            self.features = FeatureParams(**self.meta["features"])
            self.params = ModelParams(**self.meta["model"])
        except (ValidationError, KeyError, TypeError):
            raise stale from None
        self.reference = saved_reference_stats(self.meta)
        names = {input_name(member) for member in self.params.member_params()}
        if names != self.input_names or (self.params.normalize == "speaker" and set(self.reference) != names):
            raise stale
        self.functional_sets = sorted(self.params.functional_sets())

    def clip_features(self, source: AudioSource, name: str | None = None) -> ClipFeatures:
        """Features of every window of one clip (a path or a binary file object)."""
        name = name or str(source)
        duration, starts, windows = load_windows(source, self.audio, name)
        windows = [normalize_level(window, self.audio.sr, self.audio.level_dbfs) for window in windows]
        computed = batch_frame_features(windows, self.audio, self.features)
        values = np.stack([values for values, _ in computed])
        valid = np.array([valid for _, valid in computed])
        sets = [functional_sets(window, self.audio.sr, self.functional_sets, name) for window in windows]
        described = {kind: np.stack([found[kind] for found in sets]) for kind in sets[0]}
        return ClipFeatures(name, duration, starts, values, valid, described)

    def probabilities(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """The served graph's class probabilities for inputs by kind (:func:`graph_inputs`)."""
        return self.session.run(None, inputs)[0]

    def predict(self, clips: Sequence[ClipFeatures], adapt: bool = False, speakers: Sequence[str] | None = None) -> list[Prediction]:
        """Score clips: each clip alone, or with ``adapt`` as one speaker, or as the given ``speakers``."""
        if not clips:
            return []
        values = np.concatenate([clip.values for clip in clips])
        valid = np.concatenate([clip.valid_frames for clip in clips])
        described = {kind: np.concatenate([clip.functionals[kind] for clip in clips]) for kind in clips[0].functionals}
        if speakers is None:
            speakers = ["adapted"] * len(clips) if adapt else [str(number) for number in range(len(clips))]
        groups = np.repeat(np.asarray(speakers, dtype=str), [len(clip.starts) for clip in clips])
        probabilities = self.probabilities(graph_inputs(values, valid, described, groups, self.params, self.reference))
        predictions, row = [], 0
        for clip in clips:
            rows = probabilities[row : row + len(clip.starts)]
            row += len(clip.starts)
            windows = [
                Window(start, min(start + self.audio.duration, clip.duration), p)
                for start, p in zip(clip.starts, rows)
            ]
            predictions.append(Prediction(clip.name, clip.duration, self.classes, rows.mean(axis=0), windows))
        return predictions

    def predict_file(self, source: AudioSource, name: str | None = None) -> Prediction:
        """Score one clip with the reference statistics."""
        return self.predict([self.clip_features(source, name)])[0]

    def warm_up(self) -> None:
        """Score a second of synthetic noise at another rate, so that the lazily loaded parts of the
        audio and feature libraries load now rather than on the first real clip (about a second)."""
        buffer = io.BytesIO()
        sr = self.audio.sr // 2
        noise = np.random.default_rng(0).normal(0.0, 0.1, int(sr * (self.audio.offset + 1.0))).astype(np.float32)
        sf.write(buffer, noise, sr, format="WAV")
        buffer.seek(0)
        self.predict_file(buffer, "warm-up")

    def summary(self) -> str:
        """One line: the architecture, the classes, and the speakers and corpora it learned from."""
        members = f" of {' + '.join(self.params.members)}" if self.params.members else ""
        line = f"{self.params.arch}{members}, classes {', '.join(self.classes)}"
        if seen := self.meta.get("trained_on"):
            line += f"; trained on {seen['speakers']} speakers of {', '.join(seen['corpora'])}"
        return line

    def info(self) -> dict:
        """What is loaded: directory, architecture, classes, fold, params and test scores."""
        return {
            "model_dir": str(self.model_dir),
            "arch": self.params.arch,
            "members": list(self.params.members),
            "fold": self.meta.get("fold"),
            "classes": list(self.classes),
            "trained_on": self.meta.get("trained_on"),
            "window_s": self.audio.duration,
            "params": {key: self.meta[key] for key in ("audio", "features", "split", "model", "train") if key in self.meta},
            "metrics": scored_metrics(self.model_dir, self.meta.get("fold")),
        }
