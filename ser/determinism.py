"""The same trained bits on any x86-64 CPU: pin the kernels that training's libraries choose by CPU.

Training's float sums are fixed by seeds, one thread and deterministic ops, but
three libraries pick their kernels (and so the order of their sums, hence the
last bits, hence after a few epochs other weights) from the CPU they run on:

- TensorFlow turns its oneDNN graph rewrites on by default only on CPUs with
  AVX512_VNNI, AVX512_BF16, AVX_VNNI or AMX (an AVX-512 Skylake has none of them):
  elsewhere the same model trains through other ops. ``TF_ENABLE_ONEDNN_OPTS=1``
  makes every CPU use the rewrites. (With them off, Eigen's contractions still call
  oneDNN's sgemm, on blocks sized from the CPU's L1 cache: no switch to pin.)
- oneDNN (TensorFlow's sgemm, inner products, matmuls, softmax) JIT-compiles
  kernels for the widest instruction set present: ``ONEDNN_MAX_CPU_ISA`` caps it,
  at :data:`ONEDNN_ISA` (every x86-64 CPU since 2013 has AVX2).
- OpenBLAS (numpy and scipy, so the logistic regressions) picks a core type:
  ``OPENBLAS_CORETYPE`` pins it, at :data:`OPENBLAS_CORE`, where the CPU has
  AVX2 and FMA (forcing it elsewhere would crash); numpy's own AVX-512 loops
  (float64 ``exp`` and ``log``: the temperature fit) are turned off with
  ``NPY_DISABLE_CPU_FEATURES``.

Each is read once, when its library loads or first computes: TensorFlow's and
oneDNN's before TensorFlow is imported, OpenBLAS's before numpy is. So
:func:`pin_cpu_kernels` runs before ``ser.training`` imports TensorFlow, and
:func:`pinned_environment` around starting training processes (numpy loads in
them before any of our code runs). Serving never imports these: onnxruntime's
MLAS kernels, which pick by CPU too, have no switch, and it pays nothing.

``SER_PIN_CPU_KERNELS=0`` leaves every library to choose (to measure the difference).
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from pathlib import Path
from typing import Iterator

ONEDNN_ISA = "AVX2"
"""oneDNN's instruction-set cap while training: no measurable cost in bigru train time vs AVX-512 (README)."""
OPENBLAS_CORE = "Haswell"
"""OpenBLAS's core type in training processes: its AVX2 and FMA kernels."""
NUMPY_ABOVE_AVX2 = ("X86_V4", "AVX512_ICL", "AVX512_SPR")
"""numpy's dispatch targets past AVX2 (numpy 2.4's names; numpy only warns of names it lacks)."""
_BELOW_PIN = ("SSE41", "AVX")
"""Caps already below :data:`ONEDNN_ISA` (as a CPU without AVX2 computes): kept."""
DISABLE = "SER_PIN_CPU_KERNELS"


def enabled() -> bool:
    """Whether the pins apply (``SER_PIN_CPU_KERNELS`` is not ``0``)."""
    return os.environ.get(DISABLE, "1") != "0"


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    line = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return set(line.partition(":")[2].split())


def kernel_environment() -> dict[str, str]:
    """The variables that pin training's kernels on this machine (none when disabled)."""
    if not enabled():
        return {}
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper()
    pinned = {"TF_ENABLE_ONEDNN_OPTS": "1", "ONEDNN_MAX_CPU_ISA": cap if cap in _BELOW_PIN else ONEDNN_ISA}
    if {"avx2", "fma"} <= _cpu_flags():
        pinned["OPENBLAS_CORETYPE"] = OPENBLAS_CORE
        disabled = set(os.environ.get("NPY_DISABLE_CPU_FEATURES", "").replace(",", " ").split())
        pinned["NPY_DISABLE_CPU_FEATURES"] = " ".join(sorted(disabled | set(NUMPY_ABOVE_AVX2)))
    return pinned


def pin_cpu_kernels() -> None:
    """Pin TensorFlow's and oneDNN's kernels in this process (and those it starts): call before TensorFlow loads.

    Called later, oneDNN's cap still holds if nothing has computed yet (oneDNN reads it on
    first use), but TensorFlow's rewrites are fixed at import: if they are off, this warns.
    """
    pinned = kernel_environment()
    for name in ("OPENBLAS_CORETYPE", "NPY_DISABLE_CPU_FEATURES"):  # numpy is loaded here already: see pinned_environment
        pinned.pop(name, None)
    os.environ.update(pinned)
    if pinned and "tensorflow" in sys.modules:
        from tensorflow.python.util import _pywrap_util_port

        if not _pywrap_util_port.IsMklEnabled():
            warnings.warn("TensorFlow was imported before ser.determinism.pin_cpu_kernels, with its oneDNN rewrites "
                          "off: this process trains otherwise than the train stage", RuntimeWarning, stacklevel=2)


@contextlib.contextmanager
def pinned_environment() -> Iterator[None]:
    """Every pin (OpenBLAS's too) in the environment that processes started inside inherit; restored after."""
    pinned = kernel_environment()
    saved = {name: os.environ.get(name) for name in pinned}
    os.environ.update(pinned)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
