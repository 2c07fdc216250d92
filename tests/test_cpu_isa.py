"""The same model bytes whatever the CPU's instruction sets (``ser.determinism``): a small bigru fold trained
in fresh processes that emulate other CPUs (oneDNN's ``ONEDNN_MAX_CPU_ISA`` cap: a CPU without AVX-512;
``TF_ENABLE_ONEDNN_OPTS=0``: TensorFlow's default on a CPU without AVX512_VNNI/AVX_VNNI/AMX) saves the
same ``model.onnx`` and ``.keras`` bytes; without the pins, the same emulations change them."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ser import determinism

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
AVX512 = "avx512f" in determinism._cpu_flags()
PIN_OFF = {determinism.DISABLE: "0"}
NATIVE: dict[str, str] = {}
AVX2_NO_VNNI = {"ONEDNN_MAX_CPU_ISA": "AVX2", "TF_ENABLE_ONEDNN_OPTS": "0"}
"""An AVX2 CPU without VNNI (Haswell, Zen 2): oneDNN's kernels for AVX2, and TensorFlow's oneDNN rewrites off."""


def train_small(model_dir: str) -> None:
    """Train a small bigru fold as a train-stage worker does (pinned, one thread) and save it in ``model_dir``."""
    from ser.folds import single_threaded

    single_threaded()
    import numpy as np

    from ser import assembly, training
    from ser.params import ModelParams, TrainParams
    from test_training import BASE, CLASSES, no_copies, toy_data

    features, index, parts = toy_data()
    params = ModelParams(arch="bigru", lstm_units=8, dense_units=[8], dropout=0.1, **{**BASE, "rnn_units": 8})
    train = TrainParams(epochs=3, batch_size=8, learning_rate=0.01, early_stopping=0, reduce_lr=0, seed=1)
    clips = training.Clips(features, index, no_copies(features))
    trained = training.train_fold(clips, parts, params, train, CLASSES)
    assembly.save_model(Path(model_dir), trained.members, trained.temperature, index, parts, {}, trained.reference)
    assert np.isfinite(trained.members[0].val_probabilities).all()


def _digests(model_dir: Path) -> dict[str, str]:
    return {name: hashlib.sha256((model_dir / name).read_bytes()).hexdigest() for name in ("model.onnx", "bigru.keras")}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """``trained(*settings)``: the digests of the model saved in a fresh process under each environment
    (added to this one's, without the pin variables the caller does not set), trained two at a time."""
    root = tmp_path_factory.mktemp("isa")
    cache: dict[tuple, dict[str, str]] = {}

    def run(settings: dict[str, str]) -> dict[str, str]:
        model_dir = root / ("-".join(f"{k}={v}" for k, v in sorted(settings.items())) or "native")
        model_dir.mkdir()
        env = {k: v for k, v in os.environ.items() if k not in ("ONEDNN_MAX_CPU_ISA", "TF_ENABLE_ONEDNN_OPTS", determinism.DISABLE)}
        env.update(settings, PYTHONPATH=os.pathsep.join([str(REPO), str(TESTS)]), TF_CPP_MIN_LOG_LEVEL="3")
        code = f"from test_cpu_isa import train_small; train_small({str(model_dir)!r})"
        done = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        return _digests(model_dir)

    def digests(*settings: dict[str, str]) -> list[dict[str, str]]:
        missing = [s for s in dict.fromkeys(tuple(sorted(s.items())) for s in settings) if s not in cache]
        with ThreadPoolExecutor(2) as pool:
            cache.update(zip(missing, pool.map(lambda s: run(dict(s)), missing)))
        return [cache[tuple(sorted(s.items()))] for s in settings]

    return digests


def test_other_instruction_sets_train_identical_bytes(trained) -> None:
    native, emulated = trained(NATIVE, AVX2_NO_VNNI)
    assert native == emulated


@pytest.mark.skipif(not AVX512, reason="the CPU has no AVX-512: capping oneDNN at AVX2 changes nothing to compare")
def test_without_the_pin_capping_onednn_changes_the_bytes(trained) -> None:
    """Evidence that the test above can fail: unpinned, a CPU without AVX-512 trains other weights."""
    native, avx2 = trained({**PIN_OFF, "TF_ENABLE_ONEDNN_OPTS": "1"}, {**PIN_OFF, "TF_ENABLE_ONEDNN_OPTS": "1", "ONEDNN_MAX_CPU_ISA": "AVX2"})
    assert native["model.onnx"] != avx2["model.onnx"] and native["bigru.keras"] != avx2["bigru.keras"]


def test_without_the_pin_tensorflow_default_rewrites_change_the_bytes(trained) -> None:
    """Unpinned, TensorFlow's default on CPUs without VNNI/AMX (oneDNN rewrites off) trains other weights."""
    on, off = trained({**PIN_OFF, "TF_ENABLE_ONEDNN_OPTS": "1"}, {**PIN_OFF, "TF_ENABLE_ONEDNN_OPTS": "0"})
    assert on["model.onnx"] != off["model.onnx"]


def _worker_environment() -> dict:
    from threadpoolctl import threadpool_info

    from numpy._core._multiarray_umath import __cpu_features__

    names = ("ONEDNN_MAX_CPU_ISA", "TF_ENABLE_ONEDNN_OPTS", "OPENBLAS_CORETYPE")
    return {"env": {name: os.environ.get(name) for name in names}, "numpy_avx512": __cpu_features__.get("X86_V4", False),
            "openblas": sorted({info.get("architecture") for info in threadpool_info() if info["internal_api"] == "openblas"})}


def test_training_workers_start_pinned_and_the_caller_stays_as_it_was(monkeypatch) -> None:
    """The train stage's workers load OpenBLAS with the pinned core type (numpy loads before their initializer
    runs), oneDNN capped and TensorFlow's rewrites on; the process that started them keeps its environment."""
    from ser.folds import run_parallel

    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE")
    monkeypatch.delenv("OPENBLAS_CORETYPE", raising=False)
    monkeypatch.delenv("NPY_DISABLE_CPU_FEATURES", raising=False)
    [seen] = run_parallel(_worker_environment, [()], 1)
    assert seen["env"]["ONEDNN_MAX_CPU_ISA"] == determinism.ONEDNN_ISA
    assert seen["env"]["TF_ENABLE_ONEDNN_OPTS"] == "1"
    if {"avx2", "fma"} <= determinism._cpu_flags():
        assert seen["env"]["OPENBLAS_CORETYPE"] == determinism.OPENBLAS_CORE
        assert seen["openblas"] == [determinism.OPENBLAS_CORE]
        assert seen["numpy_avx512"] is False
    assert os.environ["ONEDNN_MAX_CPU_ISA"] == "AVX512_CORE" and "OPENBLAS_CORETYPE" not in os.environ
    assert "NPY_DISABLE_CPU_FEATURES" not in os.environ


def test_a_cap_below_the_pin_is_kept(monkeypatch) -> None:
    """A CPU without AVX2 cannot run AVX2 kernels: an emulated one (a lower cap) stays as it is."""
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "SSE41")
    assert determinism.kernel_environment()["ONEDNN_MAX_CPU_ISA"] == "SSE41"
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "avx512_core_amx")
    assert determinism.kernel_environment()["ONEDNN_MAX_CPU_ISA"] == determinism.ONEDNN_ISA
    monkeypatch.setenv(determinism.DISABLE, "0")
    assert determinism.kernel_environment() == {}
