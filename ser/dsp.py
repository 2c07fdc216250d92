"""librosa's feature computations, without importing librosa.

Loading librosa's core (scipy.signal, numba) takes about a second, most of a
cold ``ser predict``. The few pieces the features need are small: each
function here equals its librosa counterpart up to float32 rounding, which the
tests pin (``tests/test_dsp.py``). Other resamplers than soxr, and the
augmentations, still use librosa.
"""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np
import scipy.fft
import scipy.sparse
import soxr

STFT_BLOCK_BYTES = 2**20
"""Windowed frames transformed at once (float32): small enough to stay in the CPU's cache."""


def fix_length(samples: np.ndarray, size: int) -> np.ndarray:
    """``samples`` cut or zero-padded to ``size`` along the last axis (``librosa.util.fix_length``)."""
    length = samples.shape[-1]
    if length >= size:
        return samples[..., :size]
    return np.pad(samples, [(0, 0)] * (samples.ndim - 1) + [(0, size - length)])


def stack_padded(rows: list[np.ndarray], size: int, offset: int = 0) -> np.ndarray:
    """1-D ``rows`` stacked as float32 ``(len(rows), size + 2 * offset)``: each cut or zero-padded to
    ``size``, with ``offset`` zeros on both sides."""
    stacked = np.zeros((len(rows), size + 2 * offset), dtype=np.float32)
    for target, row in zip(stacked, rows):
        part = row[:size]
        target[offset : offset + len(part)] = part
    return stacked


def resample(samples: np.ndarray, orig_sr: int, target_sr: int, res_type: str) -> np.ndarray:
    """``librosa.resample(samples, orig_sr=..., target_sr=..., res_type=...)`` of a mono signal."""
    if not res_type.startswith("soxr"):
        import librosa  # the other resamplers are librosa's (scipy's)

        return librosa.resample(samples, orig_sr=orig_sr, target_sr=target_sr, res_type=res_type)
    size = int(np.ceil(samples.shape[-1] * float(target_sr) / orig_sr))
    resampled = soxr.resample(samples, orig_sr, target_sr, quality=res_type)
    return np.asarray(fix_length(resampled, size), dtype=samples.dtype)


@functools.lru_cache(maxsize=8)
def hann(n_fft: int) -> np.ndarray:
    """The periodic Hann window librosa's STFT uses (``scipy.signal.get_window("hann", n_fft)``), as float32."""
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)


def stft_power(rows: list[np.ndarray], size: int, n_fft: int, hop_length: int) -> np.ndarray:
    """Power spectrogram ``|STFT|**2`` of each 1-D row, cut or zero-padded to ``size`` samples, as
    ``(rows, frames, n_fft // 2 + 1)``.

    Centred frames on zero padding, a periodic Hann window: ``np.abs(librosa.stft(row)) ** 2``, transposed.
    The transform runs in single precision on blocks of frames that fit in the
    CPU's cache (librosa's runs in double, then rounds): a tenth faster, and
    the same up to about 1e-7 of a frame's largest power.
    """
    padded = stack_padded(rows, size, offset=n_fft // 2)
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft, axis=1)[:, ::hop_length]
    power = np.empty((*frames.shape[:2], n_fft // 2 + 1), dtype=np.float32)
    block = max(1, STFT_BLOCK_BYTES // (4 * n_fft))
    window = hann(n_fft)
    for row, start in itertools.product(range(len(frames)), range(0, frames.shape[1], block)):
        spectrum = scipy.fft.rfft(frames[row, start : start + block] * window, axis=-1, overwrite_x=True)
        np.add(spectrum.real**2, spectrum.imag**2, out=power[row, start : start + block])
    return power


def hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (``librosa.hz_to_mel``): linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    mels = hz * 3 / 200
    log_region = hz >= 1000
    return np.where(log_region, 15 + np.log(np.maximum(hz, 1000) / 1000) * 27 / np.log(6.4), mels)


def mel_to_hz(mels: np.ndarray) -> np.ndarray:
    """The inverse of :func:`hz_to_mel` (``librosa.mel_to_hz``)."""
    mels = np.asarray(mels, dtype=np.float64)
    return np.where(mels >= 15, 1000 * np.exp(np.log(6.4) / 27 * (mels - 15)), mels * 200 / 3)


@functools.lru_cache(maxsize=16)
def mel_filters(sr: int, n_fft: int, n_mels: int) -> np.ndarray:
    """``librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels)``: Slaney's, area-normalized, ``(n_mels, bins)``."""
    bins = np.fft.rfftfreq(n_fft, d=1.0 / sr)
    edges = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(sr / 2), n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, np.newaxis] - bins[np.newaxis]
    rising = -ramps[:-2] / widths[:-1, np.newaxis]
    falling = ramps[2:] / widths[1:, np.newaxis]
    weights = np.maximum(0, np.minimum(rising, falling)) * (2.0 / (edges[2:] - edges[:-2]))[:, np.newaxis]
    weights = weights.astype(np.float32)
    weights.flags.writeable = False  # shared by every caller
    return weights


@functools.lru_cache(maxsize=16)
def _sparse_mel_filters(sr: int, n_fft: int, n_mels: int) -> scipy.sparse.csr_array:
    """:func:`mel_filters` as a sparse matrix: each filter covers a narrow band."""
    return scipy.sparse.csr_array(mel_filters(sr, n_fft, n_mels))


def mel_power(power: np.ndarray, sr: int, n_fft: int, n_mels: int) -> np.ndarray:
    """Mel band power of power spectrograms ``(rows, frames, bins)``: ``(rows, frames, n_mels)``, each frame on its own."""
    filters = _sparse_mel_filters(sr, n_fft, n_mels)
    mel = np.empty((*power.shape[:2], n_mels), dtype=np.float32)
    for row, spectrogram in enumerate(power):  # row by row: the transposed copy stays in the CPU's cache
        mel[row] = (filters @ np.ascontiguousarray(spectrogram.T)).T
    return mel


def power_to_db(power: np.ndarray, amin: float) -> np.ndarray:
    """``10 log10(max(power, amin))``: ``librosa.power_to_db(power, amin=amin, top_db=None)``."""
    return 10.0 * np.log10(np.maximum(power, amin))


def dct(values: np.ndarray, count: int, axis: int) -> np.ndarray:
    """The first ``count`` orthonormal DCT-II coefficients along ``axis`` (librosa's MFCCs of log-mel values)."""
    return np.take(scipy.fft.dct(values, type=2, norm="ortho", axis=axis), np.arange(count), axis=axis)


DELTA_CHUNK_BYTES = 32 * 2**20
"""Delta windows are weighed in double precision, a chunk of the leading axis at a time: the whole
array at once would take nine times its size in doubles (gigabytes for a corpus), and is slower."""


def delta(values: np.ndarray, width: int, order: int, axis: int) -> np.ndarray:
    """``librosa.feature.delta(values, width=width, order=order, axis=axis)`` (Savitzky-Golay, ``mode="interp"``).

    The local polynomial has degree ``order``, so its ``order``-th derivative is
    constant over a window: the first and last ``width // 2`` positions take the
    value of the first and last whole window. Computed in chunks of the leading axis
    when ``axis`` is another (:data:`DELTA_CHUNK_BYTES`): every value is the same either way.
    """
    if width < 3 or width % 2 == 0 or width > values.shape[axis]:
        raise ValueError(f"delta width must be odd, at least 3 and at most {values.shape[axis]} (the frames), got {width}")
    axis = axis % values.ndim
    rows = max(1, DELTA_CHUNK_BYTES // max(1, values[:1].size * width * 8))
    if axis == 0 or len(values) <= rows:
        return _delta(values, width, order, axis)
    return np.concatenate([_delta(values[start : start + rows], width, order, axis) for start in range(0, len(values), rows)])


def _delta(values: np.ndarray, width: int, order: int, axis: int) -> np.ndarray:
    half = width // 2
    positions = np.arange(-half, half + 1, dtype=np.float64)
    weights = math.factorial(order) * np.linalg.pinv(np.vander(positions, order + 1, increasing=True))[order]
    windows = np.lib.stride_tricks.sliding_window_view(np.moveaxis(values, axis, -1), width, axis=-1)
    inner = windows @ weights
    edges = (np.repeat(inner[..., :1], half, axis=-1), inner, np.repeat(inner[..., -1:], half, axis=-1))
    return np.moveaxis(np.concatenate(edges, axis=-1), -1, axis).astype(values.dtype)
