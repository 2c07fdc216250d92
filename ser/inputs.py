"""From cached frame features to model inputs: deltas, normalization, pooling.

One function, :func:`model_inputs`, turns ``(clips, frames, channels)``
features into what ``model.arch`` reads, for training, evaluation and serving
alike:

- ``seed_lstm`` (the tutorial): the mean over a clip's real frames, shaped
  ``(channels, 1)``;
- frame models: the whole sequence, shaped ``(frames, channels + 1)``; padded
  frames are zero and the last channel is 1 on real frames, 0 on padding, so
  that a model pools over real audio only.

Normalization (``model.normalize``), per channel over real frames:
``utterance`` standardizes each clip on its own; ``speaker`` standardizes each
speaker's clips with that speaker's statistics (no labels are used, so it is
allowed on a test speaker too: it needs a set of clips from that speaker).
"""

from __future__ import annotations

from typing import Mapping

import librosa
import numpy as np

from ser.params import ModelParams

POOLED_ARCHS = ("seed_lstm",)
Stats = tuple[np.ndarray, np.ndarray]
EPSILON = 1e-5


def frame_mask(valid_frames: np.ndarray, n_frames: int) -> np.ndarray:
    """``(clips, frames)`` float mask: 1 on real frames, 0 on padding."""
    return (np.arange(n_frames)[np.newaxis] < np.asarray(valid_frames)[:, np.newaxis]).astype(np.float32)


def with_deltas(values: np.ndarray, order: int) -> np.ndarray:
    """Append delta coefficients up to ``order`` along the channel axis."""
    if order == 0:
        return values
    if len(values) == 0:
        return np.zeros((*values.shape[:2], values.shape[2] * (order + 1)), dtype=np.float32)
    width = min(9, values.shape[1] - (1 - values.shape[1] % 2))
    if width < 3:
        raise ValueError(f"deltas need at least 3 frames per clip, got {values.shape[1]}")
    extra = [librosa.feature.delta(values, width=width, order=k, axis=1) for k in range(1, order + 1)]
    return np.concatenate([values, *extra], axis=2).astype(np.float32)


def masked_moments(values: np.ndarray, mask: np.ndarray, axis: tuple[int, ...]) -> Stats:
    """Mean and standard deviation per channel over the real frames, reduced over ``axis``."""
    weights = mask[..., np.newaxis]
    count = np.maximum(weights.sum(axis=axis, keepdims=True), 1.0)
    mean = (values * weights).sum(axis=axis, keepdims=True) / count
    var = (((values - mean) ** 2) * weights).sum(axis=axis, keepdims=True) / count
    return mean, np.sqrt(var) + EPSILON


def speaker_stats(values: np.ndarray, valid_frames: np.ndarray, speakers: np.ndarray, deltas: int) -> dict[str, Stats]:
    """Per-speaker channel statistics (after deltas) over all of each speaker's real frames."""
    values = with_deltas(values, deltas)
    mask = frame_mask(valid_frames, values.shape[1])
    return {
        speaker: tuple(m[0] for m in masked_moments(values[rows], mask[rows], axis=(0, 1)))
        for speaker in np.unique(speakers)
        for rows in [np.asarray(speakers) == speaker]
    }


def model_inputs(
    values: np.ndarray,
    valid_frames: np.ndarray,
    speakers: np.ndarray,
    params: ModelParams,
    stats: Mapping[str, Stats] | None = None,
) -> np.ndarray:
    """Model inputs for ``params.arch`` (see the module docstring).

    ``stats`` gives the speaker statistics for ``normalize: speaker``; by
    default each speaker's are computed from the clips given.
    """
    speakers = np.asarray(speakers, dtype=str)
    values = with_deltas(np.array(values, dtype=np.float32), params.deltas)  # a copy: normalized below
    mask = frame_mask(valid_frames, values.shape[1])
    if params.normalize == "utterance":
        mean, std = masked_moments(values, mask, axis=(1,))
        values = (values - mean) / std
    elif params.normalize == "speaker":
        stats = stats if stats is not None else speaker_stats(values, valid_frames, speakers, deltas=0)
        missing = sorted(set(speakers) - set(stats))
        if missing:
            raise ValueError(f"no speaker statistics for {', '.join(missing)}")
        for speaker in np.unique(speakers):
            rows = speakers == speaker
            values[rows] = (values[rows] - stats[speaker][0]) / stats[speaker][1]
    values = values * mask[..., np.newaxis]
    if params.arch in POOLED_ARCHS:
        pooled = values.sum(axis=1) / np.maximum(mask.sum(axis=1, keepdims=True), 1.0)
        return pooled[..., np.newaxis].astype(np.float32)
    return np.concatenate([values, mask[..., np.newaxis]], axis=2).astype(np.float32)
