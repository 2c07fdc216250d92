"""The web app (``ser.webapp``): the JSON API, its limits and refusals, the page's files, uploads that
never touch the disk under the client's name, one model for all requests, and concurrent requests.

The browser driving the page is tested in test_browser.py."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import re
import socket
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient

from conftest import REPO_CLASSES, SERVED_MEMBERS, make_tone, served_project
from ser.inference import Prediction, Predictor
from ser.params import ServeParams
from ser.paths import METRICS, MODEL_DIR
from ser.webapp import MAX_CLIPS, STATIC_DIR, create_app, display_name, mode_accuracy

CLASSES = REPO_CLASSES
TRACEBACK = re.compile(r"Traceback|File \"|\.py\", line")
# The SVG namespace is an identifier that app.js passes to createElementNS, never fetched.
XML_NAMESPACES = {"http://www.w3.org/2000/svg"}


@pytest.fixture(scope="module")
def predictor(served_model_dir) -> Predictor:
    return Predictor(served_model_dir)


@pytest.fixture(scope="module")
def client(predictor) -> TestClient:
    return TestClient(create_app(predictor, ServeParams(max_upload_mb=5, max_duration_s=60)))


def small_client(predictor, max_upload_mb: float = 5, max_duration_s: float = 60) -> TestClient:
    app = create_app(predictor, ServeParams(max_upload_mb=max_upload_mb, max_duration_s=max_duration_s))
    return TestClient(app, raise_server_exceptions=False)


def encode(samples: np.ndarray, sr: int, format: str, subtype: str | None = None) -> bytes:  # noqa: A002
    buffer = io.BytesIO()
    sf.write(buffer, samples, sr, format=format, subtype=subtype)
    return buffer.getvalue()


def tone_wav(sr: int = 16000, seconds: float = 1.5, **kwargs) -> bytes:
    return encode(make_tone(sr, seconds, **kwargs), sr, "WAV")


def upload(client: TestClient, name: str, data: bytes, visuals: bool = False):
    url = "/api/predict?visuals=true" if visuals else "/api/predict"
    return client.post(url, files={"file": (name, data, "application/octet-stream")})


def upload_clips(client: TestClient, clips: list[tuple[str, bytes]], mode: str | None = None, visuals: bool = False):
    """POST /api/predict/clips: ``clips`` as (name, bytes), ``mode`` left to its default if None."""
    url = "/api/predict/clips?visuals=true" if visuals else "/api/predict/clips"
    files = [("files", (name, data, "application/octet-stream")) for name, data in clips]
    return client.post(url, files=files, data={} if mode is None else {"mode": mode})


def read(paths: list[Path]) -> list[tuple[str, bytes]]:
    return [(path.name, path.read_bytes()) for path in paths]


def assert_prediction(body: dict, name: str) -> None:
    assert body["file"] == name
    assert body["duration"] > 0
    assert set(body["probabilities"]) == set(CLASSES)
    assert sum(body["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert all(0.0 <= p <= 1.0 for p in body["probabilities"].values())
    assert body["emotion"] == max(body["probabilities"], key=body["probabilities"].get)
    assert body["confidence"] == pytest.approx(body["probabilities"][body["emotion"]], abs=1e-6)
    assert len(body["windows"]) >= 1
    for window in body["windows"]:
        assert 0.0 <= window["start"] < window["end"] <= body["duration"] + 1e-3
        assert set(window["probabilities"]) == set(CLASSES)
        assert sum(window["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)


def assert_same_as_library(body: dict, predictor: Predictor, path: Path) -> None:
    assert_same_prediction(body, predictor.predict_file(path))


def assert_same_prediction(body: dict, expected: Prediction) -> None:
    assert body["emotion"] == expected.emotion
    assert body["duration"] == pytest.approx(expected.duration, abs=1e-3)
    for label, p in zip(expected.classes, expected.probabilities):
        assert body["probabilities"][label] == pytest.approx(float(p), abs=1e-6), label
    assert len(body["windows"]) == len(expected.windows)
    for got, window in zip(body["windows"], expected.windows):
        assert got["start"] == pytest.approx(window.start, abs=1e-3)
        assert got["end"] == pytest.approx(window.end, abs=1e-3)
        for label, p in zip(expected.classes, window.probabilities):
            assert got["probabilities"][label] == pytest.approx(float(p), abs=1e-6)


def assert_refused(response, status: int, name: str, *words: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    detail = response.json()["detail"]
    assert isinstance(detail, str)
    assert name in detail
    for word in words:
        assert word in detail.lower(), detail
    assert not TRACEBACK.search(response.text)
    return detail


# --- good audio -----------------------------------------------------------------------------------


def test_a_real_tess_clip_scores_exactly_as_the_library_does(client, predictor, tess_dir):
    path = tess_dir / "YAF_sad" / "YAF_back_sad.flac"
    response = upload(client, path.name, path.read_bytes())
    assert response.status_code == 200, response.text
    body = response.json()
    assert_prediction(body, "YAF_back_sad.flac")
    assert body["duration"] == pytest.approx(sf.info(str(path)).duration, abs=1e-3)
    assert len(body["windows"]) == 1
    assert_same_as_library(body, predictor, path)


@pytest.mark.parametrize(
    ("name", "sr", "seconds", "channels", "subtype"),
    [
        ("tone.wav", 16000, 1.5, 1, "PCM_16"),
        ("tone.flac", 24414, 2.0, 1, "PCM_16"),
        ("tone.ogg", 22050, 1.8, 1, "VORBIS"),
        ("stereo.wav", 44100, 1.5, 2, "PCM_24"),
        ("odd-rate.wav", 11025, 1.2, 1, "PCM_16"),
        ("float.wav", 32000, 1.0, 1, "FLOAT"),
        ("surround.aiff", 48000, 1.0, 6, "PCM_16"),
    ],
)
def test_synthetic_uploads_of_any_format_rate_and_channels_match_the_library(
    client, predictor, write_tone, tmp_path, name, sr, seconds, channels, subtype
):
    path = write_tone(tmp_path / name, sr=sr, seconds=seconds, channels=channels, subtype=subtype, seed=3)
    response = upload(client, name, path.read_bytes())
    assert response.status_code == 200, response.text
    body = response.json()
    assert_prediction(body, name)
    assert body["duration"] == pytest.approx(seconds, abs=2e-3)
    assert_same_as_library(body, predictor, path)


@pytest.mark.parametrize(("name", "sr"), [("voice.opus", 16000), ("call.oga", 48000), ("nemo-like.opus", 24000)])
def test_an_ogg_opus_upload_matches_the_library(client, predictor, tmp_path, name, sr):
    """Ogg Opus (nEMO's and ASED's shared copies, most voice calls) is scored as the library scores it."""
    path = tmp_path / name
    sf.write(path, make_tone(sr, 2.5, seed=6), sr, format="OGG", subtype="OPUS")
    assert sf.info(str(path)).subtype == "OPUS"
    response = upload(client, name, path.read_bytes())
    assert response.status_code == 200, response.text
    body = response.json()
    assert_prediction(body, name)
    assert body["duration"] == pytest.approx(2.5, abs=2e-3)
    assert_same_as_library(body, predictor, path)


def test_the_pages_file_input_accepts_ogg_opus(client):
    accept = re.search(r'<input id="file" type="file" accept="([^"]*)"', client.get("/").text)[1].split(",")
    assert {".opus", ".oga", ".ogg", ".wav", ".flac", ".mp3"} <= set(accept)


def test_stereo_is_scored_as_the_mean_of_its_channels(client, tmp_path):
    stereo = make_tone(22050, 1.5, channels=2, seed=5)
    mono = stereo.mean(axis=1)
    by_stereo = upload(client, "s.wav", encode(stereo, 22050, "WAV", "FLOAT")).json()
    by_mono = upload(client, "m.wav", encode(mono, 22050, "WAV", "FLOAT")).json()
    for label in CLASSES:
        assert by_stereo["probabilities"][label] == pytest.approx(by_mono["probabilities"][label], abs=1e-5)


def test_a_long_clip_is_scored_in_several_windows_averaged(client, predictor, write_tone, tmp_path):
    path = write_tone(tmp_path / "long.wav", sr=16000, seconds=10.0, seed=4)
    body = upload(client, "long.wav", path.read_bytes()).json()
    assert_prediction(body, "long.wav")
    assert len(body["windows"]) == 4  # 0.5-3.5, 3.5-6.5, 6.5-9.5, 7-10
    assert body["windows"][0]["start"] == pytest.approx(0.5)
    assert body["windows"][-1]["end"] == pytest.approx(10.0)
    for label in CLASSES:
        mean = np.mean([w["probabilities"][label] for w in body["windows"]])
        assert body["probabilities"][label] == pytest.approx(mean, abs=2e-6)
    assert_same_as_library(body, predictor, path)


def test_visuals_are_only_sent_when_asked_for(client):
    data = tone_wav()
    assert "visuals" not in upload(client, "a.wav", data).json()
    assert "visuals" not in client.post("/api/predict?visuals=false", files={"file": ("a.wav", data)}).json()
    assert "visuals" in upload(client, "a.wav", data, visuals=True).json()


def assert_visuals(visuals: dict, sr: int, peak: float = 0.1) -> None:
    assert visuals["sr"] == sr
    wave = visuals["waveform"]
    assert len(wave["min"]) == len(wave["max"])
    assert 0 < len(wave["min"]) <= 800
    assert all(-1.0 <= lo <= hi <= 1.0 for lo, hi in zip(wave["min"], wave["max"]))
    assert max(wave["max"]) > peak and min(wave["min"]) < -peak  # the sound is there, not a flat line
    spectrogram = visuals["spectrogram"]
    db = np.array(spectrogram["db"])
    assert db.ndim == 2 and db.shape[0] == 64
    assert 1 < db.shape[1] <= 400
    assert db.max() == pytest.approx(0.0, abs=0.05)
    assert db.min() >= -80.0
    assert spectrogram["fmax"] == pytest.approx(sr / 2)
    assert spectrogram["hop_s"] > 0


@pytest.mark.parametrize(
    ("sr", "seconds", "channels"),
    [
        (24414, 2.0, 1),  # a TESS-like clip
        (16000, 1.0, 2),
        (8000, 3.0, 1),
        (16000, 10.0, 1),  # 160000 samples: a multiple of 400 frames' hops
        (96000, 1.5, 1),  # 144000 samples: likewise
        (22050, 30.0, 1),  # long: the waveform and spectrogram are decimated
    ],
)
def test_visuals_hold_a_bounded_waveform_and_a_64_band_mel_spectrogram(client, sr, seconds, channels):
    data = encode(make_tone(sr, seconds, channels=channels, seed=1), sr, "WAV")
    response = upload(client, "v.wav", data, visuals=True)
    assert response.status_code == 200, response.text
    body = response.json()
    assert_visuals(body["visuals"], sr)
    wave = body["visuals"]["waveform"]
    assert len(wave["min"]) == min(800, int(round(sr * seconds)))


def test_visuals_of_a_real_clip(client, tess_dir):
    path = tess_dir / "OAF_happy" / "OAF_back_happy.flac"
    body = upload(client, path.name, path.read_bytes(), visuals=True).json()
    samples, sr = sf.read(str(path))
    assert_visuals(body["visuals"], sr, peak=0.5 * np.abs(samples).max())
    wave = body["visuals"]["waveform"]
    assert max(wave["max"]) == pytest.approx(samples.max(), abs=1e-4)
    assert min(wave["min"]) == pytest.approx(samples.min(), abs=1e-4)
    assert_prediction(body, path.name)


# --- several clips: each alone, or as one speaker ---------------------------------------------------

UNKNOWN = {"value": None, "clips_per_speaker": None, "metric": None, "protocol": None}
REPORT = {
    "protocol": "speaker", "n_test": 30, "accuracy": 0.7, "serving_accuracy": 0.55, "adapted_accuracy": {"5": 0.6, "20": 0.65},
    "folds": {"fold1": {"n_test": 15, "accuracy": 0.72, "serving_accuracy": 0.5, "adapted_accuracy": {"5": 0.52, "20": 0.58}}},
}
"""An evaluation report with the accuracy of each mode: one clip alone, groups of 5 and 20 clips of a speaker."""


@pytest.fixture
def speaker_clips(tess_dir) -> list[Path]:
    """Five clips of one TESS speaker, in five emotions."""
    words = {"sad": "back", "angry": "back", "happy": "bar", "neutral": "base", "fear": "bath"}
    return [tess_dir / f"YAF_{emotion}" / f"YAF_{word}_{emotion}.flac" for emotion, word in words.items()]


@pytest.fixture(scope="module")
def reported_client(served_model_dir, tmp_path_factory) -> TestClient:
    """The app serving ``served_model_dir`` as the deployable model of a project evaluated as in ``REPORT``."""
    model_dir = served_project(served_model_dir, tmp_path_factory.mktemp("reported"), REPORT)
    return TestClient(create_app(Predictor(model_dir), ServeParams(max_upload_mb=5, max_duration_s=60)))


def test_clips_of_one_speaker_are_scored_as_the_library_adapts_them(client, predictor, speaker_clips, write_tone, tmp_path):
    """As `ser predict --adapt`: normalized together with their statistics, which changes their probabilities."""
    paths = [*speaker_clips, write_tone(tmp_path / "long.wav", sr=16000, seconds=10.0, seed=4)]
    response = upload_clips(client, read(paths), "speaker")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["mode"], body["clips"]) == ("speaker", 6)
    expected = predictor.predict([predictor.clip_features(path) for path in paths], adapt=True)
    assert [result["file"] for result in body["predictions"]] == [path.name for path in paths]
    for result, prediction in zip(body["predictions"], expected):
        assert (result["mode"], result["normalized_with"]) == ("speaker", 6)
        assert_prediction(result, Path(prediction.name).name)
        assert_same_prediction(result, prediction)
    assert len(body["predictions"][-1]["windows"]) == 4
    alone = [predictor.predict_file(path) for path in paths]
    assert max(np.abs(a.probabilities - b.probabilities).max() for a, b in zip(expected, alone)) > 1e-3


def test_clips_scored_each_alone_get_the_answers_of_single_uploads(client, predictor, speaker_clips):
    for mode in (None, "single"):  # single is the default
        body = upload_clips(client, read(speaker_clips), mode).json()
        assert (body["mode"], body["clips"]) == ("single", 5)
        for result, path in zip(body["predictions"], speaker_clips):
            assert (result["mode"], result["normalized_with"]) == ("single", 1)
            assert_prediction(result, path.name)
            assert_same_as_library(result, predictor, path)
    single = upload(client, speaker_clips[0].name, speaker_clips[0].read_bytes()).json()
    assert set(single) == set(body["predictions"][0]) | {"accuracy"}


def test_without_a_report_every_answer_says_its_accuracy_is_unknown(client):
    single = upload(client, "a.wav", tone_wav()).json()
    assert (single["mode"], single["normalized_with"], single["accuracy"]) == ("single", 1, UNKNOWN)
    for mode in ("single", "speaker"):
        body = upload_clips(client, [("a.wav", tone_wav(seed=1)), ("b.wav", tone_wav(seed=2))], mode).json()
        assert body["accuracy"] == UNKNOWN


@pytest.mark.parametrize(("mode", "clips", "measured"), [
    ("single", 1, 1), ("single", 6, 1), ("speaker", 1, 1), ("speaker", 4, 1), ("speaker", 5, 5), ("speaker", 6, 5),
])
def test_each_answer_gives_its_modes_accuracy_measured_with_the_most_clips_not_over_its_own(reported_client, mode, clips, measured):
    body = upload_clips(reported_client, [(f"t{k}.wav", tone_wav(seconds=0.8, seed=k)) for k in range(clips)], mode).json()
    assert body["predictions"][0]["normalized_with"] == (clips if mode == "speaker" else 1)
    if measured == 1:
        expected = {"value": 0.55, "clips_per_speaker": 1, "metric": "serving_accuracy", "protocol": "speaker"}
    else:
        expected = {"value": 0.6, "clips_per_speaker": 5, "metric": "adapted_accuracy.5", "protocol": "speaker"}
    assert body["accuracy"] == expected


def test_a_single_upload_and_the_model_give_the_reports_accuracies(reported_client):
    single = upload(reported_client, "a.wav", tone_wav()).json()
    assert single["accuracy"] == {"value": 0.55, "clips_per_speaker": 1, "metric": "serving_accuracy", "protocol": "speaker"}
    metrics = reported_client.get("/api/model").json()["metrics"]
    assert (metrics["serving_accuracy"], metrics["adapted_accuracy"]) == (0.55, {"5": 0.6, "20": 0.65})


def test_a_fold_models_accuracies_are_its_folds(served_model_dir, tmp_path):
    model_dir = served_project(served_model_dir, tmp_path, REPORT, fold="fold1")
    client = TestClient(create_app(Predictor(model_dir)))
    assert client.get("/api/model").json()["metrics"]["adapted_accuracy"] == {"5": 0.52, "20": 0.58}
    body = upload_clips(client, [(f"t{k}.wav", tone_wav(seconds=0.8, seed=k)) for k in range(5)], "speaker").json()
    assert (body["accuracy"]["value"], body["accuracy"]["clips_per_speaker"]) == (0.52, 5)


def test_mode_accuracy_is_the_figure_of_the_most_clips_not_over_the_count():
    figures = {1: 0.55, 5: 0.6, 20: 0.65}
    assert [mode_accuracy(figures, n, "speaker")["clips_per_speaker"] for n in (1, 4, 5, 19, 20, 100)] == [1, 1, 5, 5, 20, 20]
    assert mode_accuracy(figures, 20, "speaker") == {"value": 0.65, "clips_per_speaker": 20, "metric": "adapted_accuracy.20",
                                                     "protocol": "speaker"}
    assert mode_accuracy({5: 0.6}, 4, "speaker") == {**UNKNOWN, "protocol": "speaker"}  # a report without serving_accuracy
    assert mode_accuracy({}, 5, None) == UNKNOWN


def test_the_accuracies_are_the_committed_reports(speaker_clips):
    """The committed model and reports/metrics.json: what `ser serve` shows from a checkout."""
    root = Path(__file__).resolve().parents[1]
    if not (root / MODEL_DIR / "meta.json").is_file():
        pytest.skip("no committed model: run `dvc pull`")
    report = json.loads((root / METRICS).read_text())
    client = TestClient(create_app(Predictor(root / MODEL_DIR)))
    metrics = client.get("/api/model").json()["metrics"]
    assert (metrics["serving_accuracy"], metrics["adapted_accuracy"]) == (report["serving_accuracy"], report["adapted_accuracy"])
    assert set(report["adapted_accuracy"]) == {"5", "20"}
    body = upload_clips(client, read(speaker_clips), "speaker").json()
    assert body["accuracy"] == {"value": report["adapted_accuracy"]["5"], "clips_per_speaker": 5, "metric": "adapted_accuracy.5",
                                "protocol": report["protocol"]}
    single = upload(client, speaker_clips[0].name, speaker_clips[0].read_bytes()).json()
    assert single["accuracy"]["value"] == report["serving_accuracy"]


def test_clips_get_visuals_only_when_asked_for(client):
    clips = [("a.wav", tone_wav(seed=1)), ("b.wav", encode(make_tone(22050, 2.0, seed=2), 22050, "WAV"))]
    assert all("visuals" not in result for result in upload_clips(client, clips, "speaker").json()["predictions"])
    results = upload_clips(client, clips, "speaker", visuals=True).json()["predictions"]
    assert_visuals(results[0]["visuals"], 16000)
    assert_visuals(results[1]["visuals"], 22050)


def test_clips_that_cannot_be_scored_are_each_named_and_none_is_scored(client):
    clips = [("good.wav", tone_wav()), ("notes.txt", b"not a recording\n" * 50), ("quiet.wav", encode(np.zeros(24000), 16000, "WAV")),
             ("empty.wav", b""), ("short.wav", tone_wav(seconds=0.3))]
    for mode in ("single", "speaker"):
        detail = assert_refused(upload_clips(client, clips, mode), 415, "notes.txt", "cannot decode audio")  # the first one's status
        parts = detail.split("; ")
        assert [part.split(": ")[0] for part in parts] == ["notes.txt", "quiet.wav", "empty.wav", "short.wav"]
        assert "silent" in parts[1] and "empty" in parts[2] and "offset" in parts[3]
    assert_refused(upload_clips(client, clips[2:4], "speaker"), 422, "quiet.wav", "silent")


def test_clips_are_held_to_the_limits_of_single_uploads(predictor):
    client = small_client(predictor, max_upload_mb=0.5, max_duration_s=2)
    detail = assert_refused(upload_clips(client, [("ok.wav", tone_wav()), ("long.wav", tone_wav(seconds=2.5))], "speaker"),
                            422, "long.wav", "limit")
    assert "ok.wav" not in detail
    clip = tone_wav(sr=16000, seconds=1.9)  # 61 kB: the limit is on the whole upload, 7 pass it, 10 do not
    assert upload_clips(client, [(f"c{k}.wav", clip) for k in range(7)], "speaker").status_code == 200
    response = upload_clips(client, [(f"c{k}.wav", clip) for k in range(10)], "speaker")
    assert response.status_code == 413 and "larger than 0.5 MB" in response.json()["detail"]


def test_more_clips_than_the_limit_are_refused_before_any_is_read(client):
    response = upload_clips(client, [(f"c{k}.wav", b"not read") for k in range(MAX_CLIPS + 1)], "speaker")
    detail = assert_refused(response, 422, f"{MAX_CLIPS + 1} clips", "limit")
    assert f"limit of {MAX_CLIPS}" in detail


def test_a_request_without_clips_or_with_an_unknown_mode_is_refused_with_422(client):
    for response in (client.post("/api/predict/clips"), client.post("/api/predict/clips", files={"file": ("a.wav", tone_wav())}),
                     upload_clips(client, [("a.wav", tone_wav())], "both")):
        assert response.status_code == 422
        assert not TRACEBACK.search(response.text)
    assert "files" in json.dumps(client.post("/api/predict/clips").json()["detail"])
    assert "mode" in json.dumps(upload_clips(client, [("a.wav", tone_wav())], "both").json()["detail"])


# --- the other endpoints and the page ---------------------------------------------------------------


def test_health_says_ok_and_names_the_model(client):
    response = client.get("/api/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "model": "ensemble"}


def test_model_describes_classes_params_and_limits(predictor, repo_params):
    client = small_client(predictor, max_upload_mb=1.5, max_duration_s=12)
    body = client.get("/api/model").json()
    assert body["classes"] == list(CLASSES) == list(repo_params.data.emotions)
    assert body["arch"] == "ensemble"
    assert body["members"] == ["logreg", "logreg:compare", "bigru"]
    assert body["fold"] == "all"
    assert body["window_s"] == repo_params.audio.duration
    assert body["params"]["audio"] == repo_params.audio.model_dump()
    assert body["params"]["model"]["arch"] == "ensemble"
    assert body["params"]["model"]["members"] == list(SERVED_MEMBERS) == ["logreg", "logreg:compare", "bigru"]
    assert {"features", "split", "train"} <= set(body["params"])
    assert body["limits"] == {"max_upload_mb": 1.5, "max_duration_s": 12, "workers": 1, "max_uploads_in_flight": 8,
                              "body_timeout_s": 60}


def test_model_says_what_it_was_trained_on(client, served_model_dir):
    """The corpora (clips of each), speakers and clips the model learned from: those of its split.csv."""
    body = client.get("/api/model").json()
    split = [line.split(",") for line in (served_model_dir / "split.csv").read_text().splitlines()]
    header, rows = split[0], [dict(zip(split[0], row)) for row in split[1:]]
    assert header == ["file", "corpus", "speaker", "text", "emotion", "part"]
    learned = [row for row in rows if row["part"] in ("train", "val")]
    assert body["trained_on"] == {
        "corpora": {c: sum(row["corpus"] == c for row in learned) for c in sorted({row["corpus"] for row in learned})},
        "speakers": len({row["speaker"] for row in learned}), "clips": len(learned),
    }
    assert body["trained_on"] == {"corpora": {"emovo": 1, "ravdess": 2, "tess": 4}, "speakers": 4, "clips": 7}


def test_model_shows_the_scores_of_the_deployable_model_over_all_folds(served_model_dir, tmp_path):
    model_dir = served_project(served_model_dir, tmp_path / "project", {
        "protocol": "corpus", "n_test": 30, "accuracy": 0.6, "serving_accuracy": 0.55,
        "by_corpus": {"emovo": {"accuracy": 0.4}, "tess": {"accuracy": 0.8}},
        "folds": {"test_emovo": {"n_test": 10, "accuracy": 0.4}, "test_tess": {"n_test": 20, "accuracy": 0.8}},
    })
    body = TestClient(create_app(Predictor(model_dir))).get("/api/model").json()
    assert body["metrics"]["fold"] == "all folds" and body["metrics"]["protocol"] == "corpus"
    assert (body["metrics"]["accuracy"], body["metrics"]["serving_accuracy"], body["metrics"]["n_test"]) == (0.6, 0.55, 30)
    assert body["metrics"]["corpus_accuracy"] == {"emovo": 0.4, "tess": 0.8}
    assert "adapted_accuracy" not in body["metrics"]  # not in this report


def test_openapi_lists_the_api(client):
    spec = client.get("/openapi.json").json()
    assert {"/api/predict", "/api/health", "/api/model"} <= set(spec["paths"])
    assert "/" not in spec["paths"]
    predict = spec["paths"]["/api/predict"]["post"]
    assert {"408", "413", "415", "422", "503"} <= set(predict["responses"])
    assert [p["name"] for p in predict["parameters"]] == ["visuals"]
    assert "multipart/form-data" in predict["requestBody"]["content"]
    clips = spec["paths"]["/api/predict/clips"]["post"]
    assert {"408", "413", "415", "422", "503"} <= set(clips["responses"])
    assert [p["name"] for p in clips["parameters"]] == ["visuals"]
    form = clips["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"].split("/")[-1]
    fields = spec["components"]["schemas"][form]["properties"]
    assert set(fields) == {"files", "mode"} and fields["files"]["type"] == "array"
    assert fields["mode"]["enum"] == ["single", "speaker"] and fields["mode"]["default"] == "single"


class _References(HTMLParser):
    def __init__(self):
        super().__init__()
        self.scripts, self.styles, self.links = [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script" and attrs.get("src"):
            self.scripts.append(attrs["src"])
        elif tag == "link" and attrs.get("href"):
            (self.styles if attrs.get("rel") == "stylesheet" else self.links).append(attrs["href"])
        elif tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])


def test_the_page_is_served_with_every_script_and_stylesheet_it_references(client):
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    for element in ('id="file"', 'id="emotion"', 'id="confidence"', 'id="chart"', 'id="waveform"',
                    'id="spectrogram"', 'id="error"', 'id="model-info"', 'id="one-speaker"', 'id="mode"', 'id="clips"'):
        assert element in page
    references = _References()
    references.feed(page)
    assert references.scripts == ["/static/app.js"]
    assert references.styles == ["/static/style.css"]
    kinds = {"/static/app.js": "javascript", "/static/style.css": "text/css"}
    for url in references.scripts + references.styles:
        served = client.get(url)
        assert served.status_code == 200, url
        assert kinds[url] in served.headers["content-type"]
        assert served.content == (STATIC_DIR / url.removeprefix("/static/")).read_bytes()
    for url in references.links:
        if url.startswith("data:"):
            continue
        assert url.startswith("/"), url
        assert client.get(url).status_code == 200, url


NODE_HARNESS = r"""
const fs = require("fs"), vm = require("vm");
const [script, body] = process.argv.slice(-2);
const elements = {};
const element = (id) => elements[id] || (elements[id] = {
  id, textContent: "", hidden: true, addEventListener() {}, classList: { add() {}, remove() {} },
});
const fetch = async (url) => {
  if (url !== "/api/model") throw new Error(`unexpected fetch of ${url}`);
  return { ok: true, status: 200, json: async () => JSON.parse(body) };
};
const context = vm.createContext({ document: { getElementById: element }, fetch, console });
vm.runInContext(fs.readFileSync(script, "utf8"), context);
setTimeout(() => process.stdout.write(element("model-info").textContent), 100);
"""


def page_model_info(body: dict) -> str:
    """What app.js writes in #model-info when /api/model answers ``body`` (run in Node on a stub page)."""
    import shutil
    import subprocess

    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    result = subprocess.run([node, "-e", NODE_HARNESS, "--", str(STATIC_DIR / "app.js"), json.dumps(body)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _page_body(client, protocol: str | None) -> dict:
    body = client.get("/api/model").json()
    if protocol is not None:
        body["metrics"] = {"protocol": protocol, "fold": "all folds", "accuracy": 0.625, "serving_accuracy": 0.5,
                           "adapted_accuracy": {"5": 0.55, "20": 0.6}, "corpus_accuracy": {"tess": 0.9}}
    return body


def test_page_says_what_the_model_was_trained_on(client):
    text = page_model_info(_page_body(client, None))
    assert text.startswith("Model: ensemble, classes: " + ", ".join(CLASSES) + ".")
    assert "Trained on 4 speakers of emovo (1 clips), ravdess (2 clips), tess (4 clips)." in text
    assert "accurate" not in text  # no scores without a report


@pytest.mark.parametrize(("protocol", "held_out"), [
    ("speaker", "speakers it never heard"),
    ("corpus", "corpora it never heard"),
    ("text", "words and sentences it never heard, from speakers it did"),
    ("random", "clips it never heard, from speakers and sentences it did"),
])
def test_page_says_what_the_test_clips_held_out(client, protocol, held_out):
    """Only the speaker and corpus protocols test on voices that training never heard."""
    text = page_model_info(_page_body(client, protocol))
    assert (f"On {held_out} ({protocol} protocol, all folds): 62.5% accurate, 50.0% on clips scored one at a time, "
            "55.0% with 5 clips of a speaker scored together, 60.0% with 20 clips of a speaker scored together.") in text
    if protocol in ("text", "random"):
        assert "speakers it never heard" not in text


def test_the_page_and_its_files_refer_to_no_other_host():
    for name in ("index.html", "app.js", "style.css"):
        text = (STATIC_DIR / name).read_text()
        urls = set(re.findall(r"""(?:https?:)?//[^\s"'`)<>]+""", text)) - XML_NAMESPACES
        urls = {u for u in urls if not u.startswith("//") or "." in u.split("/")[2]}  # not JS comments
        assert not urls, f"{name} refers to {urls}"
        assert "@import" not in text


def test_static_files_cannot_escape_the_static_directory(client):
    for url in ("/static/../webapp.py", "/static/%2e%2e/webapp.py", "/static/..%2fwebapp.py"):
        response = client.get(url)
        assert response.status_code == 404, url
        assert "create_app" not in response.text


# --- limits -----------------------------------------------------------------------------------------


def test_an_upload_over_the_limit_is_refused_with_413(predictor):
    client = small_client(predictor, max_upload_mb=0.5)
    for size in (500_001, 600_000, 3_000_000):  # just over (the app), far over (the declared length)
        response = upload(client, "big.wav", tone_wav(sr=16000, seconds=1.0) + bytes(size - 32044))
        assert response.status_code == 413, size
        detail = response.json()["detail"]
        assert "larger than 0.5 MB" in detail
        assert not TRACEBACK.search(response.text)


def _multipart_head(name: str, boundary: str) -> bytes:
    return (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            "Content-Type: audio/wav\r\n\r\n").encode()


def test_a_streamed_upload_without_content_length_is_refused_with_413(predictor):
    client = small_client(predictor, max_upload_mb=0.5)
    boundary = "ser-test-boundary"
    pulled = 0

    def body():
        nonlocal pulled
        yield _multipart_head("stream.wav", boundary)
        for _ in range(48):  # 3 MB in 64 KiB chunks
            pulled += 1
            yield b"\x01" * 65536
        yield f"\r\n--{boundary}--\r\n".encode()

    response = client.post("/api/predict", content=body(),
                           headers={"content-type": f"multipart/form-data; boundary={boundary}"})
    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert response.status_code == 413
    assert "larger than 0.5 MB" in response.json()["detail"]


async def _asgi_request(app, receive, headers: list[tuple[bytes, bytes]] = (), method: str = "POST",
                        path: str = "/api/predict") -> list[dict]:
    """One request driven as a server drives the app; the messages it sent back."""
    sent = []
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(b"host", b"testserver"), *headers], "client": ("127.0.0.1", 50000), "server": ("testserver", 80),
    }

    async def send(message):
        sent.append(message)

    await app(scope, receive, send)
    return sent


def _asgi_post(app, headers: list[tuple[bytes, bytes]], receive) -> list[dict]:
    """One POST /api/predict driven as a server drives the app; the messages it sent back."""
    return asyncio.run(_asgi_request(app, receive, headers))


def _answer(sent: list[dict]) -> tuple[int, dict[bytes, bytes], dict]:
    """The status, headers and JSON body of the response made of the ASGI messages ``sent``."""
    assert sent[0]["type"] == "http.response.start"
    return sent[0]["status"], dict(sent[0]["headers"]), json.loads(b"".join(m.get("body", b"") for m in sent[1:]))


def test_a_declared_length_over_the_limit_is_refused_before_reading_the_body(predictor):
    app = create_app(predictor, ServeParams(max_upload_mb=0.5, max_duration_s=60))

    async def receive():
        raise AssertionError("the body was read")

    sent = _asgi_post(app, [(b"content-length", b"1000000000"),
                            (b"content-type", b"multipart/form-data; boundary=b")], receive)
    assert sent[0]["status"] == 413
    assert json.loads(b"".join(m.get("body", b"") for m in sent[1:])) == {"detail": "upload larger than 0.5 MB"}


def test_a_streamed_upload_is_cut_off_soon_after_the_limit(predictor):
    """Driven as a server does, one chunk at a time: the app stops reading shortly after the limit."""
    app = create_app(predictor, ServeParams(max_upload_mb=0.5, max_duration_s=60))
    boundary, chunk, offered = "b0undary", 65536, 400  # 26 MB on offer
    pulled = 0

    async def receive():
        nonlocal pulled
        pulled += 1
        if pulled == 1:
            return {"type": "http.request", "body": _multipart_head("s.wav", boundary), "more_body": True}
        if pulled <= offered:
            return {"type": "http.request", "body": b"\x02" * chunk, "more_body": True}
        if pulled == offered + 1:
            return {"type": "http.request", "body": f"\r\n--{boundary}--\r\n".encode(), "more_body": False}
        return {"type": "http.disconnect"}

    sent = _asgi_post(app, [(b"transfer-encoding", b"chunked"),
                            (b"content-type", f"multipart/form-data; boundary={boundary}".encode())], receive)
    assert sent[0]["type"] == "http.response.start"
    assert sent[0]["status"] == 413
    body = b"".join(m.get("body", b"") for m in sent[1:])
    assert "larger than 0.5 MB" in json.loads(body)["detail"]
    assert pulled * chunk < 500_000 + 64 * 1024 + 3 * chunk


@contextlib.contextmanager
def live_server(app):
    """The app served by uvicorn on a free local port, in a thread."""
    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_a_chunked_upload_over_a_real_socket_is_refused_with_413(predictor):
    import httpx

    boundary = "ser-live-boundary"

    def body():
        yield _multipart_head("live.wav", boundary)
        for _ in range(48):
            yield b"\x03" * 65536
        yield f"\r\n--{boundary}--\r\n".encode()

    with live_server(create_app(predictor, ServeParams(max_upload_mb=0.5, max_duration_s=60))) as url:
        response = httpx.post(f"{url}/api/predict", content=body(), timeout=30,
                              headers={"content-type": f"multipart/form-data; boundary={boundary}"})
        assert response.status_code == 413
        assert "larger than 0.5 MB" in response.json()["detail"]
        health = httpx.get(f"{url}/api/health", timeout=10)  # the server lives on
        assert health.json()["status"] == "ok"


def _upload_body(name: str, data: bytes, boundary: str = "b0undary") -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """A multipart body holding ``data`` as ``file``, and the request's content type header."""
    body = _multipart_head(name, boundary) + data + f"\r\n--{boundary}--\r\n".encode()
    return body, [(b"content-type", f"multipart/form-data; boundary={boundary}".encode())]


def test_uploads_beyond_the_limit_in_flight_get_503_before_their_body_is_read(predictor):
    app = create_app(predictor, ServeParams(max_uploads_in_flight=1))
    body, headers = _upload_body("first.wav", tone_wav())

    async def unread():
        raise AssertionError("the body of a refused upload was read")

    async def scenario():
        reading, go_on = asyncio.Event(), asyncio.Event()

        async def slow_client():  # the upload in flight: its body comes once the others are answered
            reading.set()
            await go_on.wait()
            return {"type": "http.request", "body": body, "more_body": False}

        first = asyncio.create_task(_asgi_request(app, slow_client, headers))
        await reading.wait()
        refused = [await _asgi_request(app, unread, headers) for _ in range(2)]
        health = await _asgi_request(app, unread, method="GET", path="/api/health")
        model = await _asgi_request(app, unread, method="GET", path="/api/model")
        go_on.set()
        return await first, refused, health, model

    first, refused, health, model = asyncio.run(scenario())
    for sent in refused:
        status, response_headers, answer = _answer(sent)
        assert status == 503
        assert response_headers[b"retry-after"] == b"1" and response_headers[b"connection"] == b"close"
        assert answer == {"detail": "server busy: at its limit of uploads in flight (1); retry in 1 s"}
    assert _answer(health)[0] == _answer(model)[0] == 200  # not limited
    status, _, answer = _answer(first)
    assert status == 200 and answer["file"] == "first.wav"


@pytest.mark.parametrize("trickle_s", [None, 0.02], ids=["stalls", "trickles"])
def test_a_body_not_received_in_time_gets_408_and_the_connection_closed(predictor, trickle_s):
    """A deadline for the whole body: a client sending a byte now and then is cut off as one that stopped."""
    app = create_app(predictor, ServeParams(body_timeout_s=0.3))
    body, headers = _upload_body("slow.wav", tone_wav())
    trickled = iter([body[k:k + 1] for k in range(1000, 1100)])  # 2 s of bytes: a deadline per chunk lets them by
    started = False

    async def slow_client():
        nonlocal started
        if not started:
            started = True
            return {"type": "http.request", "body": body[:1000], "more_body": True}
        chunk = next(trickled, b"") if trickle_s else b""
        await asyncio.sleep(trickle_s if chunk else 60)  # then nothing more
        return {"type": "http.request", "body": chunk, "more_body": True}

    start = time.monotonic()
    status, response_headers, answer = _answer(_asgi_post(app, headers, slow_client))
    assert 0.3 <= time.monotonic() - start < 1.5
    assert status == 408 and response_headers[b"connection"] == b"close"
    assert answer == {"detail": "request body not received within 0.3 s"}


def test_every_upload_frees_its_slot_whatever_its_answer(predictor, monkeypatch):
    """With one upload at a time, each answer (an error, a refusal, a client that left) leaves the slot free."""
    app = create_app(predictor, ServeParams(max_upload_mb=0.5, max_uploads_in_flight=1, body_timeout_s=0.3))
    client = TestClient(app, raise_server_exceptions=False)
    body, headers = _upload_body("gone.wav", tone_wav())

    def good() -> int:
        return upload(client, "good.wav", tone_wav()).status_code

    def stalls_then(last: dict | None):
        """A client that sends the first bytes of ``body``, then ``last`` (None: nothing)."""
        messages = iter([{"type": "http.request", "body": body[:1000], "more_body": True}, last])

        async def receive():
            message = next(messages)
            if message is None:
                await asyncio.sleep(60)
            return message

        return receive

    def streamed_over_the_limit():
        yield _multipart_head("stream.wav", "b0undary")
        yield bytes(700_000)

    assert upload(client, "notes.txt", b"not audio").status_code == 415 and good() == 200
    assert upload(client, "empty.wav", b"").status_code == 422 and good() == 200
    assert client.post("/api/predict", content=streamed_over_the_limit(), headers={
        "content-type": "multipart/form-data; boundary=b0undary"}).status_code == 413 and good() == 200
    assert _answer(_asgi_post(app, headers, stalls_then(None)))[0] == 408 and good() == 200
    _asgi_post(app, headers, stalls_then({"type": "http.disconnect"}))  # the client left mid-body
    assert good() == 200
    with monkeypatch.context() as patched:
        patched.setattr(predictor, "predict", lambda *args, **kwargs: 1 / 0)
        assert upload(client, "fails.wav", tone_wav()).status_code == 500
    assert good() == 200


def _wav_of_exactly(size: int, sr: int) -> bytes:
    """A 16-bit mono WAV of exactly ``size`` bytes (44 of them header)."""
    frames = (size - 44) // 2
    data = encode(make_tone(sr, frames / sr, seed=2)[:frames], sr, "WAV", "PCM_16")
    assert len(data) == size
    return data


@pytest.mark.parametrize("max_upload_mb", [0.25, 2.01])
def test_an_upload_of_exactly_the_size_limit_is_accepted(predictor, max_upload_mb):
    size = round(max_upload_mb * 1_000_000)
    client = small_client(predictor, max_upload_mb=max_upload_mb, max_duration_s=600)
    data = _wav_of_exactly(size, sr=96000)
    response = upload(client, "at-limit.wav", data)
    assert response.status_code == 200, response.text
    over = upload(client, "over.wav", data + b"\0\0")
    assert over.status_code == 413
    assert "over.wav" in over.json()["detail"]


def test_a_clip_over_the_duration_limit_is_refused_with_422(predictor):
    client = small_client(predictor, max_duration_s=2)
    response = upload(client, "long.wav", tone_wav(sr=16000, seconds=2.5))
    detail = assert_refused(response, 422, "long.wav", "limit")
    assert "2.5 s" in detail and "2 s" in detail


def test_a_clip_of_exactly_the_duration_limit_is_accepted(predictor):
    client = small_client(predictor, max_duration_s=2)
    exact = tone_wav(sr=16000, seconds=2.0)
    assert sf.info(io.BytesIO(exact)).frames == 32000
    assert upload(client, "exact.wav", exact).status_code == 200
    one_more = encode(make_tone(16000, 32001 / 16000), 16000, "WAV")
    assert upload(client, "one-more.wav", one_more).status_code == 422


# --- bad content ------------------------------------------------------------------------------------


def test_non_audio_is_refused_with_415(client):
    for name, data in [("notes.txt", b"these are my notes, not a recording\n" * 20),
                       ("image.png", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4),
                       ("fake.wav", b"RIFF" + b"\xff" * 300),
                       ("noise.bin", np.random.default_rng(0).bytes(5000))]:
        assert_refused(upload(client, name, data), 415, name, "cannot decode audio")


def test_an_empty_upload_is_refused_with_422(client):
    assert_refused(upload(client, "empty.wav", b""), 422, "empty.wav", "empty")


def test_a_wav_without_samples_is_refused_with_422(client):
    assert_refused(upload(client, "none.wav", encode(np.zeros(0), 16000, "WAV")), 422, "none.wav", "no audio samples")


def test_a_silent_clip_is_refused_with_422(client):
    assert_refused(upload(client, "quiet.wav", encode(np.zeros(24000), 16000, "WAV")), 422, "quiet.wav", "silent")
    very_quiet = encode(np.full(24000, 1e-5), 16000, "WAV", "FLOAT")  # -100 dBFS
    assert_refused(upload(client, "hush.wav", very_quiet), 422, "hush.wav", "silent")


def test_a_clip_shorter_than_the_offset_is_refused_with_422(client):
    for seconds in (0.3, 0.5):
        assert_refused(upload(client, "short.wav", tone_wav(seconds=seconds)), 422, "short.wav", "offset")
    assert upload(client, "enough.wav", tone_wav(seconds=0.55)).status_code == 200


def test_a_clip_with_nan_samples_is_refused_with_422(client):
    data = encode(np.where(np.arange(24000) % 100 == 0, np.nan, 0.3), 16000, "WAV", "FLOAT")
    assert_refused(upload(client, "nan.wav", data), 422, "nan.wav", "nan")


def test_truncated_audio_is_refused_not_a_server_error(predictor):
    client = small_client(predictor)
    flac = encode(make_tone(16000, 2.0), 16000, "FLAC")
    for name, data in [("cut.flac", flac[: len(flac) // 3]), ("head.flac", flac[:200]),
                       ("head.wav", tone_wav()[:44]), ("cut.wav", tone_wav()[:5000])]:
        response = upload(client, name, data)
        assert response.status_code in (415, 422), (name, response.status_code, response.text)
        assert_refused(response, response.status_code, name)


def test_damaged_samples_are_refused_with_422_not_a_server_error(client):
    """What fuzzing found: finite float samples of 1e30 gave NaN probabilities, and NaN before the offset
    reached the visuals; either one failed the JSON response (500)."""
    loud = encode(make_tone(16000, 1.5) * 1e30, 16000, "WAV", "FLOAT")
    assert_refused(upload(client, "loud.wav", loud), 422, "loud.wav", "far beyond full scale")
    samples = make_tone(16000, 1.5)
    samples[1600] = np.nan  # at 0.1 s, before the model's windows
    early_nan = encode(samples, 16000, "WAV", "FLOAT")
    assert upload(client, "early-nan.wav", early_nan).status_code == 200
    assert_refused(upload(client, "early-nan.wav", early_nan, visuals=True), 422, "early-nan.wav", "nan")


def test_a_request_without_the_file_field_is_refused_with_422(client):
    for response in (client.post("/api/predict", files={"upload": ("a.wav", tone_wav())}),
                     client.post("/api/predict", data={"file": "not a file"}),
                     client.post("/api/predict")):
        assert response.status_code == 422
        assert "file" in json.dumps(response.json()["detail"])
        assert not TRACEBACK.search(response.text)


# --- client file names ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "shown"),
    [
        ("../../etc/passwd", "passwd"),
        ("/tmp/x.wav", "x.wav"),
        ("..\\..\\evil.wav", "evil.wav"),
        ("C:\\Users\\me\\clip.wav", "clip.wav"),
        ("..", ".."),
        ("a<b>|c?.wav", "a_b__c_.wav"),
        ("x" * 300 + ".wav", "x" * 100),
    ],
)
def test_the_file_name_shown_is_a_sanitized_base_name(client, filename, shown):
    response = client.post("/api/predict", files={"file": (filename, tone_wav())})
    assert response.status_code == 200, response.text
    name = response.json()["file"]
    assert name == shown
    assert "/" not in name and "\\" not in name


def test_display_name_keeps_only_a_printable_base_name():
    assert display_name(None) == "upload"
    assert display_name("") == "upload"
    assert display_name("dir/") == "upload"
    assert display_name("a/b\\c.wav") == "c.wav"
    assert display_name("ünïcode clip (1).wav") == "ünïcode clip _1_.wav"
    assert display_name("new\nline\x00.wav") == "new_line_.wav"


def test_client_file_names_never_become_files(predictor, tmp_path, monkeypatch):
    temp = tmp_path / "tmp"
    work = tmp_path / "work" / "a" / "b"
    temp.mkdir()
    work.mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    monkeypatch.setenv("TMPDIR", str(temp))
    monkeypatch.chdir(work)
    rollovers = []
    real_temporary_file = tempfile.TemporaryFile

    def spying_temporary_file(*args, **kwargs):
        rollovers.append(tempfile.gettempdir())
        return real_temporary_file(*args, **kwargs)

    monkeypatch.setattr(tempfile, "TemporaryFile", spying_temporary_file)
    tag = uuid.uuid4().hex
    names = [
        f"../../escaped-{tag}.wav", f"../../../../../../tmp/escaped-{tag}.wav", str(tmp_path / f"absolute-{tag}.wav"),
        f"..\\..\\backslash-{tag}.wav", f"/tmp/slash-{tag}.wav", f"{temp}/in-temp-{tag}.wav", f"plain-{tag}.wav",
    ]
    client = small_client(predictor, max_upload_mb=3)
    small, large = tone_wav(seconds=1.0), tone_wav(sr=44100, seconds=14.0)  # 1.2 MB: spooled to disk
    assert len(large) > 1024 * 1024
    for name in names:
        for data in (small, large, b"not audio at all"):
            response = client.post("/api/predict", files={"file": (name, data)})
            assert response.status_code in (200, 415), response.text
            assert "/" not in response.json().get("file", "") and tag in response.text
    assert rollovers and all(Path(d) == temp for d in rollovers)  # the big uploads did go to temp files
    assert list(temp.iterdir()) == []
    created = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert created == []
    for root in (Path("/tmp"), tmp_path.parent, Path(tempfile.gettempdir()), Path.cwd(), Path.cwd().parent.parent):
        assert not list(root.glob(f"*{tag}*")), root


# --- one model, many requests -----------------------------------------------------------------------


def test_the_model_is_loaded_once_not_per_request(predictor, monkeypatch, tess_dir):
    import onnxruntime

    sessions, inits = [], []
    real_session, real_init = onnxruntime.InferenceSession, Predictor.__init__

    def counting_session(*args, **kwargs):
        sessions.append(args)
        return real_session(*args, **kwargs)

    def counting_init(self, *args, **kwargs):
        inits.append(args)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(onnxruntime, "InferenceSession", counting_session)
    monkeypatch.setattr(Predictor, "__init__", counting_init)
    client = small_client(predictor)
    clip = (tess_dir / "YAF_sad" / "YAF_back_sad.flac").read_bytes()
    for k in range(12):
        assert upload(client, f"c{k}.flac", clip, visuals=k % 2 == 0).status_code == 200
        assert client.get("/api/model").status_code == 200
        assert client.get("/api/health").status_code == 200
    assert upload(client, "bad.txt", b"text").status_code == 415
    assert sessions == [] and inits == []
    assert predictor.session.__class__ is real_session


def test_concurrent_requests_each_get_their_own_answer(predictor, tess_dir):
    clips = {
        "sad.flac": (tess_dir / "YAF_sad" / "YAF_back_sad.flac").read_bytes(),
        "angry.flac": (tess_dir / "OAF_angry" / "OAF_back_angry.flac").read_bytes(),
        "tone.wav": tone_wav(seconds=1.5, seed=7),
        "low.wav": tone_wav(sr=8000, seconds=2.0, f0=110.0, seed=8),
        "stereo.flac": encode(make_tone(44100, 1.2, channels=2, seed=9), 44100, "FLAC"),
        "long.ogg": encode(make_tone(22050, 8.0, seed=10), 22050, "OGG", "VORBIS"),
        "bad.txt": b"no audio here",
    }
    limits = ServeParams(max_upload_mb=5, max_duration_s=60, max_uploads_in_flight=16)  # one per client below
    with TestClient(create_app(predictor, limits)) as client:
        expected = {name: upload(client, name, data) for name, data in clips.items()}
        expected = {name: (r.status_code, r.json()) for name, r in expected.items()}
        assert len({json.dumps(body["probabilities"]) for status, body in expected.values() if status == 200}) == 6
        jobs = [name for _ in range(4) for name in clips]  # 28 requests, interleaved
        with ThreadPoolExecutor(max_workers=16) as pool:
            responses = list(pool.map(lambda name: (name, upload(client, name, clips[name])), jobs))
    assert len(responses) == 28
    for name, response in responses:
        status, body = expected[name]
        assert response.status_code == status, (name, response.text)
        got = response.json()
        if status != 200:
            assert got == body
            continue
        assert got["file"] == name and got["emotion"] == body["emotion"]
        assert got["duration"] == body["duration"]
        assert len(got["windows"]) == len(body["windows"])
        for label in CLASSES:
            assert got["probabilities"][label] == pytest.approx(body["probabilities"][label], abs=1e-6)


def test_the_app_serves_without_tensorflow(served_model_dir, tmp_path):
    """`ser serve` loads only the light runtime: building the app and scoring an upload imports no TensorFlow."""
    import subprocess
    import sys

    clip = tmp_path / "clip.wav"
    sf.write(str(clip), make_tone(22050, 1.5), 22050)
    code = f"""
import sys
from fastapi.testclient import TestClient
from ser.inference import Prediction, Predictor
from ser.webapp import create_app
client = TestClient(create_app(Predictor({str(served_model_dir)!r})))
response = client.post("/api/predict", files={{"file": ("clip.wav", open({str(clip)!r}, "rb").read())}})
assert response.status_code == 200, response.text
print(sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf2onnx")))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_worker_processes_build_the_app_from_the_environment(served_model_dir, monkeypatch):
    """What each `ser serve --workers N` process runs: the model and limits set by the parent."""
    from ser.webapp import LIMITS_VARIABLE, MODEL_DIR_VARIABLE, app_from_environment

    monkeypatch.setenv(MODEL_DIR_VARIABLE, str(served_model_dir))
    limits = ServeParams(max_upload_mb=3, max_duration_s=9, workers=2, max_uploads_in_flight=5, body_timeout_s=7)
    monkeypatch.setenv(LIMITS_VARIABLE, limits.model_dump_json())
    client = TestClient(app_from_environment())
    model = client.get("/api/model").json()
    assert model["model_dir"] == str(served_model_dir)
    assert model["limits"] == {"max_upload_mb": 3, "max_duration_s": 9, "workers": 2, "max_uploads_in_flight": 5,
                               "body_timeout_s": 7}
    long_clip = io.BytesIO()
    sf.write(long_clip, make_tone(8000, 10.0), 8000, format="WAV")
    response = client.post("/api/predict", files={"file": ("long.wav", long_clip.getvalue())})
    assert response.status_code == 422 and "9 s" in response.json()["detail"]


def test_the_app_warms_its_model_up_once_at_start(predictor, monkeypatch):
    """Lazy library imports are paid when the app is built, not by the first request."""
    calls = []
    monkeypatch.setattr(Predictor, "warm_up", lambda self: calls.append(self))
    client = TestClient(create_app(predictor))
    assert calls == [predictor]
    client.get("/api/health")
    assert calls == [predictor]


def test_warm_up_scores_through_the_whole_path(predictor, monkeypatch):
    seen = []
    real = Predictor.predict
    monkeypatch.setattr(Predictor, "predict", lambda self, clips, adapt=False: seen.extend(clips) or real(self, clips, adapt))
    predictor.warm_up()
    (clip,) = seen
    assert clip.name == "warm-up" and clip.values.shape[0] == 1


def test_an_upload_buffer_refuses_a_seek_before_its_start_without_raising():
    """libsndfile seeks where a damaged header points; raising there was printed to the log and ignored."""
    from ser.webapp import AudioBuffer

    buffer = AudioBuffer(b"0123456789")
    buffer.seek(4)
    assert buffer.seek(-3) == 4 and buffer.tell() == 4  # io.BytesIO raises ValueError: negative seek value
    assert buffer.seek(-1, io.SEEK_END) == 9 and buffer.read() == b"9"
