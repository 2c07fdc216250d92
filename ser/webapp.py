"""The web app: a JSON API and an offline page, on the same :class:`~ser.inference.Predictor` as the CLI.

- ``POST /api/predict``: a multipart upload (field ``file``) -> the clip's class
  probabilities, its windows', and with ``?visuals=true`` its waveform and
  mel spectrogram for display;
- ``POST /api/predict/clips``: several clips in one upload (fields ``files``),
  scored each alone (``mode=single``) or as one speaker (``mode=speaker``:
  normalized together with the statistics of all of them, as ``ser predict --adapt``);
- ``GET /api/health``, ``GET /api/model``; the OpenAPI spec at ``/openapi.json``
  and its pages at ``/docs``;
- ``GET /``: the page (its scripts and styles are served from ``/static``).

Each answer says how its clips were scored and that mode's accuracy on the
evaluation's held-out test clips (``reports/metrics.json``): ``serving_accuracy``
for a clip alone, ``adapted_accuracy`` for groups of a speaker's clips.

Uploads are read into memory (never written under a name the client chose)
and refused when too large (413), too long (422), not audio (415) or
unusable (422: empty, silent, shorter than the model's offset); a request of
several clips is refused as a whole, naming each clip refused and why. Each server
process takes at most ``serve.max_uploads_in_flight`` uploads at a time: the
others get 503 (with Retry-After) before their body is read; a body not
received within ``serve.body_timeout_s`` gets 408 and its connection closed.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Literal

import anyio
import numpy as np
from fastapi import FastAPI, File, Form, HTTPException, Query, UploadFile
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from ser.audio import AudioError, read_window
from ser.inference import DEPLOYABLE_FOLD, ClipFeatures, Predictor, UndecodableAudio, clip_duration
from ser.params import ServeParams
from ser.paths import MODEL_DIR

STATIC_DIR = Path(__file__).parent / "static"
AMIN, TOP_DB = 1e-10, 80.0
"""The spectrogram's floor (power) and range below its peak (dB), as ``librosa.power_to_db``'s defaults."""
MB = 1_000_000
MULTIPART_SLACK = 64 * 1024  # room for the multipart envelope around the file
WAVEFORM_POINTS = 800
SPECTROGRAM_FRAMES = 400
SPECTROGRAM_MELS = 64
MAX_CLIPS = 100
"""Clips in one request to ``/api/predict/clips`` (their bytes together within ``serve.max_upload_mb``)."""
SINGLE, SPEAKER = "single", "speaker"
Mode = Literal["single", "speaker"]
RETRY_AFTER_S = 1  # what a refused upload is told to wait: most clips are scored in well under a second
CLOSE = {"Connection": "close"}


class AudioBuffer(io.BytesIO):
    """An upload's bytes, for libsndfile: a seek before the start (a damaged header can ask for one)
    leaves the position where it was, as a failed seek on a file does, instead of raising inside
    libsndfile's callback (where the exception is printed to the server's log, then ignored)."""

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        try:
            return super().seek(offset, whence)
        except ValueError:  # a negative position
            return self.tell()


class BodyLimit:
    """ASGI middleware: refuse request bodies over ``limit`` bytes with 413 as soon as they pass it,
    whether or not the client declared their length."""

    def __init__(self, app, limit: int, message: str):
        self.app, self.limit, self.message = app, limit, message

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            return await JSONResponse({"detail": self.message}, status_code=413)(scope, receive, send)
        received = 0

        async def counted_receive():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise HTTPException(413, self.message)
            return message

        await self.app(scope, counted_receive, send)


class UploadSlots:
    """ASGI middleware: at most ``limit`` uploads (POST requests) in flight, each counted from its start
    until its response is sent, or it fails, or its client leaves; the ones beyond are refused at once
    with 503 and Retry-After, before their body is read."""

    def __init__(self, app, limit: int):
        self.app, self.limit, self.in_flight = app, limit, 0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        if self.in_flight >= self.limit:
            busy = f"server busy: at its limit of uploads in flight ({self.limit}); retry in {RETRY_AFTER_S} s"
            headers = {"Retry-After": str(RETRY_AFTER_S), **CLOSE}
            return await JSONResponse({"detail": busy}, status_code=503, headers=headers)(scope, receive, send)
        self.in_flight += 1
        held = True

        def release() -> None:
            nonlocal held
            if held:
                held, self.in_flight = False, self.in_flight - 1

        async def send_then_release(message):
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                release()  # before the client can send its next request

        try:
            await self.app(scope, receive, send_then_release)
        finally:
            release()


class BodyTimeout:
    """ASGI middleware: a request's whole body must arrive within ``seconds`` of its headers (a deadline
    for the body, not for each chunk, so a client trickling bytes is cut off too); a client still
    sending then gets 408 and its connection is closed."""

    def __init__(self, app, seconds: float):
        self.app, self.seconds = app, seconds

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        deadline = anyio.current_time() + self.seconds
        body_done = False

        async def timed_receive():
            nonlocal body_done
            if body_done:  # later calls wait for a disconnect: no deadline
                return await receive()
            try:
                with anyio.fail_after(deadline - anyio.current_time()):
                    message = await receive()
            except TimeoutError:
                raise HTTPException(408, f"request body not received within {self.seconds:g} s", headers=CLOSE) from None
            body_done = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        await self.app(scope, timed_receive, send)


class WindowScores(BaseModel):
    start: float = Field(description="seconds from the start of the clip")
    end: float
    probabilities: dict[str, float]


class Waveform(BaseModel):
    min: list[float] = Field(description="the lowest sample of each of up to 800 equal runs")
    max: list[float]


class Spectrogram(BaseModel):
    db: list[list[float]] = Field(description="mel bands (low first) x frames, dB below the loudest")
    hop_s: float = Field(description="seconds between frames")
    fmax: float = Field(description="highest frequency shown (Hz)")


class Visuals(BaseModel):
    sr: int = Field(description="the clip's own sample rate")
    waveform: Waveform
    spectrogram: Spectrogram


class ClipResult(BaseModel):
    file: str = Field(description="the uploaded file's name, for display")
    duration: float = Field(description="seconds")
    emotion: str = Field(description="the most probable class")
    confidence: float = Field(description="its probability")
    probabilities: dict[str, float] = Field(description="every class, most probable first")
    windows: list[WindowScores] = Field(description="the analysis windows; the clip's probabilities are their mean")
    mode: Mode = Field(description="single: scored alone; speaker: normalized together with the request's other clips")
    normalized_with: int = Field(description="clips whose statistics normalized this one (1: the clip alone)")
    visuals: Visuals | None = Field(None, description="with ?visuals=true: what the page draws")


class ModeAccuracy(BaseModel):
    value: float | None = Field(description="accuracy of this mode on the evaluation's test clips; null when unknown (no report)")
    clips_per_speaker: int | None = Field(description="clips of a speaker normalized together when it was measured (1: each alone)")
    metric: str | None = Field(description="its key in reports/metrics.json: serving_accuracy or adapted_accuracy.<clips>")
    protocol: str | None = Field(description="the evaluation protocol: speaker means on speakers the model never heard")


class PredictionResponse(ClipResult):
    accuracy: ModeAccuracy = Field(description="what scoring a clip alone is worth")


class ClipsResponse(BaseModel):
    mode: Mode
    clips: int = Field(description="clips scored")
    accuracy: ModeAccuracy = Field(description="what this mode is worth with this many clips")
    predictions: list[ClipResult] = Field(description="one per clip, in upload order")


def display_name(filename: str | None) -> str:
    """The client's file name, for display only: its last component, printable, at most 100 characters."""
    name = re.split(r"[\\/]", filename or "")[-1]
    return re.sub(r"[^\w.\- ]", "_", name)[:100] or "upload"


def waveform(samples: np.ndarray, points: int = WAVEFORM_POINTS) -> dict:
    """Min and max of the samples in ``points`` equal runs (or fewer, for short clips)."""
    runs = np.array_split(samples, min(points, len(samples)))
    return {"min": [round(float(r.min()), 4) for r in runs], "max": [round(float(r.max()), 4) for r in runs]}


def mel_spectrogram(samples: np.ndarray, sr: int) -> dict:
    """Log-mel power (dB below the peak) with at most ``SPECTROGRAM_FRAMES`` frames: librosa's
    ``power_to_db(melspectrogram(...), ref=np.max, top_db=80)``, through :mod:`ser.dsp` (the serving
    install has no librosa)."""
    from ser.dsp import mel_filters, power_to_db, stft_power

    hop = max(256, len(samples) // SPECTROGRAM_FRAMES + 1)
    n_fft = max(1024, 2 ** math.ceil(math.log2(hop)))
    power = mel_filters(sr, n_fft, SPECTROGRAM_MELS) @ stft_power([samples], len(samples), n_fft, hop)[0].T
    decibels = power_to_db(power, AMIN) - power_to_db(power.max(), AMIN)
    decibels = np.maximum(decibels, decibels.max() - TOP_DB)
    return {"db": np.round(decibels, 1).tolist(), "hop_s": hop / sr, "fmax": sr / 2}


def clip_visuals(source: io.BytesIO, duration: float, name: str) -> dict:
    """What the page draws: the whole clip's waveform and mel spectrogram."""
    samples, sr = read_window(source, 0.0, duration + 1.0, name)
    source.seek(0)
    return {"sr": sr, "waveform": waveform(samples), "spectrogram": mel_spectrogram(samples, sr)}


def adapted_accuracy(metrics: dict | None, fold: str | None) -> dict[str, float]:
    """``adapted_accuracy`` (by clips per group) of the evaluation report that ``metrics``, a model's
    scores from :meth:`~ser.inference.Predictor.info`, were read from; empty if it has none."""
    if metrics is None:
        return {}
    report = json.loads(Path(metrics["file"]).read_text())
    scores = report if fold == DEPLOYABLE_FOLD else report["folds"][fold]
    return scores.get("adapted_accuracy", {})


def accuracy_by_clips(metrics: dict | None) -> dict[int, float]:
    """A model's accuracy by the clips of a speaker normalized together: 1 (each clip alone,
    ``serving_accuracy``) and the groups of ``adapted_accuracy``."""
    found = {int(clips): accuracy for clips, accuracy in (metrics or {}).get("adapted_accuracy", {}).items()}
    if metrics and "serving_accuracy" in metrics:
        found[1] = metrics["serving_accuracy"]
    return dict(sorted(found.items()))


def mode_accuracy(figures: dict[int, float], clips: int, protocol: str | None) -> dict:
    """The accuracy measured with the most clips per speaker not over ``clips`` (unknown if none)."""
    measured = max((n for n in figures if n <= clips), default=None)
    metric = None if measured is None else "serving_accuracy" if measured == 1 else f"adapted_accuracy.{measured}"
    return {"value": figures.get(measured), "clips_per_speaker": measured, "metric": metric, "protocol": protocol}


@contextmanager
def refused_audio() -> Iterator[None]:
    """Audio errors as the API's refusals: 415 for content that is not audio, 422 for the rest."""
    try:
        yield
    except UndecodableAudio as exc:
        raise HTTPException(415, str(exc)) from None
    except AudioError as exc:
        raise HTTPException(422, str(exc)) from None


def create_app(predictor: Predictor, limits: ServeParams = ServeParams()) -> FastAPI:
    """The app, serving ``predictor`` (a model loaded once, warmed up) within ``limits``."""
    app = FastAPI(
        title="Speech emotion recognition",
        description="Predict the emotion of a speech clip with the model trained by the ser pipeline.",
        version="1",
    )
    max_bytes = round(limits.max_upload_mb * MB)
    too_large = f"upload larger than {limits.max_upload_mb:g} MB"
    app.add_middleware(BodyTimeout, seconds=limits.body_timeout_s)
    app.add_middleware(UploadSlots, limit=limits.max_uploads_in_flight)
    # outermost: a declared length over the limit gets 413 at once, busy or not
    app.add_middleware(BodyLimit, limit=max_bytes + MULTIPART_SLACK, message=too_large)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    model_info = predictor.info()
    if adapted := adapted_accuracy(model_info["metrics"], predictor.meta.get("fold")):
        model_info["metrics"]["adapted_accuracy"] = adapted
    figures = accuracy_by_clips(model_info["metrics"])
    protocol = (model_info["metrics"] or {}).get("protocol")
    predictor.warm_up()  # the first request is then as fast as the others

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    @app.get("/api/health")
    def health() -> dict:
        """The service is up and its model is loaded."""
        return {"status": "ok", "model": model_info["arch"]}

    @app.get("/api/model")
    def model() -> dict:
        """The loaded model: classes, params, test scores, and this service's limits."""
        return {**model_info, "limits": limits.model_dump()}

    def clip_features(file: UploadFile) -> tuple[ClipFeatures, AudioBuffer]:
        """An upload's features and bytes; refused (HTTPException, naming the file) when it cannot be scored."""
        name = display_name(file.filename)
        data = file.file.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise HTTPException(413, f"{name}: {too_large}")
        if not data:
            raise HTTPException(422, f"{name}: the upload is empty")
        source = AudioBuffer(data)
        with refused_audio():
            duration = clip_duration(source, name)
            if duration > limits.max_duration_s:
                raise HTTPException(422, f"{name}: clip is {duration:.1f} s long, over the limit of {limits.max_duration_s:g} s")
            return predictor.clip_features(source, name), source

    def scored(files: list[UploadFile], mode: Mode, visuals: bool) -> list[dict]:
        """Each upload's result, in ``mode``. If any cannot be scored, none is: the refusal has the first
        one's status and names each one and why."""
        loaded, refusals = [], []
        for file in files:
            try:
                loaded.append(clip_features(file))
            except HTTPException as exc:
                refusals.append(exc)
        if refusals:
            raise HTTPException(refusals[0].status_code, "; ".join(refusal.detail for refusal in refusals))
        clips = [clip for clip, _ in loaded]
        normalized_with = len(clips) if mode == SPEAKER else 1
        results = []
        for prediction, (clip, source) in zip(predictor.predict(clips, adapt=mode == SPEAKER), loaded):
            result = {**prediction.to_dict(per_window=True), "mode": mode, "normalized_with": normalized_with}
            if visuals:
                with refused_audio():
                    result["visuals"] = clip_visuals(source, clip.duration, clip.name)
            results.append(result)
        return results

    errors = {408: {"description": "body not received in time"}, 413: {"description": "upload too large"},
              415: {"description": "not audio"},
              422: {"description": "audio that cannot be scored: empty, silent, too short or too long"},
              503: {"description": "as many uploads in flight as the server takes: retry after Retry-After seconds"}}
    visuals_query = Query(False, description="also return the waveform and mel spectrogram for display")
    formats = "WAV, FLAC, OGG (Vorbis or Opus), AIFF or MP3, any rate, mono or stereo"

    @app.post(
        "/api/predict",
        response_class=JSONResponse,  # documented by PredictionResponse, not validated per request: the code builds it
        responses={200: {"model": PredictionResponse}, **errors},
    )
    def predict(file: UploadFile = File(description=f"a clip: {formats}"), visuals: bool = visuals_query) -> JSONResponse:
        """The emotion of the uploaded clip, every class's probability, and its windows'."""
        (result,) = scored([file], SINGLE, visuals)
        return JSONResponse({**result, "accuracy": mode_accuracy(figures, 1, protocol)})

    @app.post(
        "/api/predict/clips",
        response_class=JSONResponse,
        responses={200: {"model": ClipsResponse},
                   **errors, 422: {"description": f"{errors[422]['description']}; more than {MAX_CLIPS} clips"}},
    )
    def predict_clips(
        files: list[UploadFile] = File(description=f"1 to {MAX_CLIPS} clips: {formats}"),
        mode: Mode = Form(SINGLE, description="single: each clip alone; speaker: the clips are one speaker's, normalized together"),
        visuals: bool = visuals_query,
    ) -> JSONResponse:
        """Several clips: each one's emotion, probabilities and windows, scored alone or as one speaker."""
        if len(files) > MAX_CLIPS:
            raise HTTPException(422, f"{len(files)} clips, over the limit of {MAX_CLIPS} in one request")
        results = scored(files, mode, visuals)
        accuracy = mode_accuracy(figures, results[0]["normalized_with"], protocol)
        return JSONResponse({"mode": mode, "clips": len(results), "accuracy": accuracy, "predictions": results})

    return app


MODEL_DIR_VARIABLE, LIMITS_VARIABLE = "SER_MODEL_DIR", "SER_SERVE_LIMITS"


def app_from_environment() -> FastAPI:
    """The app for ``uvicorn --factory`` worker processes: the model directory and limits (JSON)
    come from ``SER_MODEL_DIR`` and ``SER_SERVE_LIMITS``, which ``ser serve --workers`` sets."""
    limits = ServeParams.model_validate_json(os.environ.get(LIMITS_VARIABLE, "{}"))
    return create_app(Predictor(os.environ.get(MODEL_DIR_VARIABLE, MODEL_DIR)), limits)
