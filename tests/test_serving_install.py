"""The serving install: a fresh venv with requirements-serve.lock and the package alone scores clips, without
TensorFlow, Keras, DVC or librosa.

The venv gets the lock as the README's "Serving only" says (pip, ``--require-hashes --no-deps``: PyPI, or
pip's cache) and the package as a wheel built from this checkout (``--no-deps``, not editable). Then
``ser predict``, ``ser info`` and a real ``ser serve`` run there on the committed model (``models/``), or,
where this checkout has none (``models/`` is a DVC output), on the small seeded ``served_model_dir``; their
scores must equal the full environment's. About a minute, most of it pip downloading (marked
``serving_install``: ``pytest -m "not serving_install"`` skips it).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import REPO, make_tone
from ser.inference import ONNX_FILE, Predictor

pytestmark = pytest.mark.serving_install

SERVE_LOCK = REPO / "requirements-serve.lock"
PIPELINE_ONLY = ("tensorflow", "keras", "tf2onnx", "dvc", "dvclive", "librosa", "matplotlib", "sklearn", "pytest")
"""Packages of the other extras, which the serving install must not have."""
INSTALL_TIMEOUT_S = 900


def run(command: list, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run([str(c) for c in command], capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, f"{command} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def venv_environment(venv: Path) -> dict[str, str]:
    """The environment of a shell with ``venv`` activated, and nothing of this test's own environment's Python."""
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    return {**env, "VIRTUAL_ENV": str(venv), "PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"}


@pytest.fixture(scope="module")
def serving_venv(tmp_path_factory) -> Path:
    """A fresh venv holding requirements-serve.lock and the package's wheel, nothing else."""
    root = tmp_path_factory.mktemp("serving-install")
    source = root / "source"  # the package's files only: the build leaves nothing in the checkout
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(REPO / "ser", source / "ser", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    wheels = root / "wheels"
    # built with this environment's pinned setuptools (no download); installed below with --no-deps
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", wheels, source],
        timeout=300)
    (wheel,) = wheels.glob("ser-*.whl")
    venv = root / "venv"
    run([sys.executable, "-m", "venv", venv], timeout=300)
    pip = [venv / "bin" / "python", "-m", "pip", "install", "--quiet", "--no-deps"]
    run([*pip, "--require-hashes", "-r", SERVE_LOCK], env=venv_environment(venv), timeout=INSTALL_TIMEOUT_S)
    run([*pip, wheel], env=venv_environment(venv), timeout=300)
    return venv


@pytest.fixture(scope="module")
def model_dir(request) -> Path:
    """The committed model when this checkout has it (``dvc pull``), else the small seeded one."""
    committed = REPO / "models"
    if (committed / ONNX_FILE).is_file():
        return committed
    return request.getfixturevalue("served_model_dir")


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """A 5 s voice-like clip at 16 kHz: two windows."""
    path = tmp_path_factory.mktemp("serving-clip") / "voice.wav"
    sf.write(str(path), make_tone(16000, 5.0, seed=3, f0=150.0), 16000, subtype="PCM_16")
    return path


def in_venv(venv: Path, *arguments, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return run(list(arguments), env=venv_environment(venv), cwd=cwd, timeout=timeout)


def test_the_serving_install_has_no_tensorflow_dvc_or_librosa(serving_venv):
    python = serving_venv / "bin" / "python"
    code = "import importlib.util as u, sys; print(sorted(m for m in sys.argv[1:] if u.find_spec(m)))"
    assert in_venv(serving_venv, python, "-c", code, *PIPELINE_ONLY).stdout.strip() == "[]"
    for module in ("tensorflow", "dvc"):
        failed = subprocess.run([python, "-c", f"import {module}"], capture_output=True, text=True,
                                env=venv_environment(serving_venv), timeout=60)
        assert failed.returncode != 0 and "ModuleNotFoundError" in failed.stderr, failed.stderr
    # and the package is the wheel, not this checkout
    where = in_venv(serving_venv, python, "-c", "import ser; print(ser.__file__)", cwd=serving_venv).stdout.strip()
    assert Path(where).is_relative_to(serving_venv)


def test_ser_predict_and_info_in_the_serving_install(serving_venv, model_dir, clip, tmp_path):
    ser = serving_venv / "bin" / "ser"
    done = in_venv(serving_venv, ser, "predict", clip, "--model", model_dir, "--format", "json", "--per-window", cwd=tmp_path)
    (result,) = json.loads(done.stdout)
    expected = Predictor(model_dir).predict_file(clip, str(clip)).to_dict(per_window=True)  # the full environment's
    assert result["file"] == str(clip) and result["emotion"] == expected["emotion"]
    assert list(result["probabilities"]) == list(expected["probabilities"])
    assert sum(result["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    np.testing.assert_allclose(list(result["probabilities"].values()), list(expected["probabilities"].values()), atol=2e-6)
    assert [(w["start"], w["end"]) for w in result["windows"]] == [(w["start"], w["end"]) for w in expected["windows"]]
    assert len(result["windows"]) == 2

    table = in_venv(serving_venv, ser, "predict", clip, "--model", model_dir, "--top", "1", cwd=tmp_path).stdout
    assert expected["emotion"] in table and "voice.wav" in table

    info = json.loads(in_venv(serving_venv, ser, "info", "--model", model_dir, "--format", "json", cwd=tmp_path).stdout)
    assert info["classes"] == list(Predictor(model_dir).classes) and info["model_dir"] == str(model_dir)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def post_clip(url: str, clip: Path) -> dict:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{clip.name}\"\r\n"
            "Content-Type: audio/wav\r\n\r\n").encode() + clip.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)


def test_ser_serve_in_the_serving_install(serving_venv, model_dir, clip, tmp_path):
    """A real server: health, and an upload with the page's visuals (the mel spectrogram, without librosa)."""
    port = free_port()
    server = subprocess.Popen(
        [serving_venv / "bin" / "ser", "serve", "--model", model_dir, "--port", str(port), "--log-level", "warning"],
        cwd=tmp_path, env=venv_environment(serving_venv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, f"ser serve exited:\n{server.stdout.read()}"
            try:
                with urllib.request.urlopen(f"{base}/api/health", timeout=5) as response:
                    assert json.load(response)["status"] == "ok"
                break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, "ser serve did not start within 120 s"
                time.sleep(0.2)
        result = post_clip(f"{base}/api/predict?visuals=true", clip)
        expected = Predictor(model_dir).predict_file(clip, clip.name).to_dict(per_window=True)
        assert result["emotion"] == expected["emotion"]
        np.testing.assert_allclose(list(result["probabilities"].values()), list(expected["probabilities"].values()), atol=2e-6)
        spectrogram = np.array(result["visuals"]["spectrogram"]["db"])
        assert spectrogram.shape[0] == 64 and spectrogram.max() == pytest.approx(0.0, abs=0.05) and spectrogram.min() >= -80
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.filterwarnings("ignore:n_fft=")  # librosa's, on the shortest clip
@pytest.mark.parametrize(("sr", "seconds"), [(24414, 2.0), (16000, 1.0), (8000, 3.0), (16000, 10.0), (96000, 1.5), (8000, 0.01)])
def test_the_apps_mel_spectrogram_is_librosas(sr, seconds):
    """The web app's visuals use ser.dsp, not librosa (absent from the serving install): the same dB, up to
    the last rounding step."""
    import math

    import librosa

    from ser.webapp import SPECTROGRAM_FRAMES, SPECTROGRAM_MELS, mel_spectrogram

    samples = make_tone(sr, seconds).astype(np.float32)
    hop = max(256, len(samples) // SPECTROGRAM_FRAMES + 1)
    power = librosa.feature.melspectrogram(y=samples, sr=sr, n_fft=max(1024, 2 ** math.ceil(math.log2(hop))),
                                           hop_length=hop, n_mels=SPECTROGRAM_MELS)
    expected = np.round(librosa.power_to_db(power, ref=np.max, top_db=80.0), 1)
    np.testing.assert_allclose(np.array(mel_spectrogram(samples, sr)["db"]), expected, atol=0.1 + 1e-6)


def test_ser_serve_without_the_serve_extra_says_what_to_install(monkeypatch, capsys, served_model_dir):
    """Installed without the serve extra (`pip install .`: predict and info only), `ser serve` says which extra it needs."""
    from ser.cli import EXIT_USAGE, main

    monkeypatch.setitem(sys.modules, "uvicorn", None)  # import uvicorn raises ModuleNotFoundError
    assert main(["serve", "--model", str(served_model_dir)]) == EXIT_USAGE
    assert capsys.readouterr().err == (
        "ser: error: ser serve needs the serve extra (uvicorn is not installed): pip install '.[serve]'\n"
    )
