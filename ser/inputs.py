"""From cached features to model inputs: deltas, normalization, pooling.

One function, :func:`model_inputs`, turns a set of clips' features into what a
model reads, for training, evaluation and serving alike. Each architecture
reads one kind of input (:func:`input_kind`):

- ``pooled`` (``seed_lstm``, the tutorial): the mean over a clip's real frames,
  shaped ``(channels, 1)``;
- ``frames`` (frame models): the whole sequence, shaped ``(frames, channels + 1)``;
  padded frames are zero and the last channel is 1 on real frames, 0 on
  padding, so that a model pools over real audio only;
- ``utterance`` (utterance classifiers): one vector per clip, the openSMILE
  functionals of ``model.functionals`` (a set that featurize computed, see
  ``features.functionals``) followed by the mean and standard deviation of
  each frame channel over the clip's real frames.

Normalization (``model.normalize``), per channel: ``utterance`` standardizes
each clip's frames on its own; ``speaker`` standardizes each speaker's clips
with that speaker's statistics (no labels are used, so it is allowed on a test
speaker too). A speaker's statistics are shrunk toward the training
population's (the *reference*) by the number ``n`` of clips they come from:
``n / (n + model.shrinkage)`` of the speaker's own, the rest the reference's,
for the mean and the variance alike. Many clips of a speaker give their own
statistics; a single clip, served alone, gives mostly the reference.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ser.dsp import delta
from ser.params import CLASSIFIERS, ModelParams

Stats = tuple[np.ndarray, np.ndarray]
EPSILON = 1e-5
POOLED, FRAMES, UTTERANCE = "pooled", "frames", "utterance"


def input_kind(arch: str) -> str:
    """The kind of input ``arch`` reads: pooled, frames or utterance."""
    if arch == "seed_lstm":
        return POOLED
    return UTTERANCE if arch in CLASSIFIERS else FRAMES


def input_name(params: ModelParams) -> str:
    """The name of the served graph's input that ``params``' model reads: its kind, and for an
    utterance classifier the functional set it reads (``utterance_egemaps``)."""
    kind = input_kind(params.arch)
    return f"{kind}_{params.functionals}" if kind == UTTERANCE and params.functionals != "none" else kind


def member_functionals(params: ModelParams, functionals: Mapping[str, np.ndarray] | None) -> np.ndarray | None:
    """The functionals ``params``' model reads, from the sets computed (``None`` if it reads none)."""
    if input_kind(params.arch) != UTTERANCE or params.functionals == "none":
        return None
    if functionals is None or params.functionals not in functionals:
        raise ValueError(f"{params.arch} reads {params.functionals} functionals, which were not computed (features.functionals)")
    return functionals[params.functionals]


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
    extra = [delta(values, width=width, order=k, axis=1) for k in range(1, order + 1)]
    return np.concatenate([values, *extra], axis=2).astype(np.float32)


def masked_moments(values: np.ndarray, mask: np.ndarray, axis: tuple[int, ...]) -> Stats:
    """Mean and standard deviation per channel over the real frames, reduced over ``axis``.

    Sums accumulate in double precision (a float32 running sum over a strided axis
    loses digits); the results are float32.
    """
    weights = mask[..., np.newaxis]
    count = np.maximum(weights.sum(axis=axis, keepdims=True, dtype=np.float64), 1.0)
    mean = ((values * weights).sum(axis=axis, keepdims=True, dtype=np.float64) / count).astype(np.float32)
    var = (((values - mean) ** 2) * weights).sum(axis=axis, keepdims=True, dtype=np.float64) / count
    return mean, (np.sqrt(var) + EPSILON).astype(np.float32)


def raw_inputs(kind: str, values: np.ndarray, valid_frames: np.ndarray, deltas: int, functionals: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Un-normalized inputs of ``kind`` as ``(clips, steps, channels)`` with their ``(clips, steps)``
    mask: the frames (with deltas) for pooled and frame inputs, one step per clip for utterance inputs."""
    values = with_deltas(np.array(values, dtype=np.float32), deltas)  # a copy: normalized in place later
    mask = frame_mask(valid_frames, values.shape[1])
    if kind != UTTERANCE:
        return values, mask
    mean, std = masked_moments(values, mask, axis=(1,))
    functionals = np.zeros((len(values), 0), np.float32) if functionals is None else np.asarray(functionals, np.float32)
    vector = np.concatenate([functionals, mean[:, 0], std[:, 0]], axis=1)
    return vector[:, np.newaxis], np.ones((len(values), 1), np.float32)


def shrink(own: Stats, clips: int, reference: Stats | None, shrinkage: float) -> Stats:
    """A speaker's statistics from ``clips`` clips, shrunk toward the ``reference`` (see the module docstring)."""
    if reference is None or shrinkage == 0:
        return own
    weight = clips / (clips + shrinkage)
    mean = weight * own[0] + (1 - weight) * reference[0]
    var = weight * own[1] ** 2 + (1 - weight) * reference[1] ** 2
    return mean.astype(np.float32), np.sqrt(var).astype(np.float32)


def group_stats(values: np.ndarray, mask: np.ndarray, groups: np.ndarray, reference: Stats | None = None, shrinkage: float = 0.0) -> dict[str, Stats]:
    """Channel statistics of each group of clips (a speaker) over its real steps, shrunk toward ``reference``."""
    groups = np.asarray(groups, dtype=str)
    stats = {}
    for group in np.unique(groups):
        rows = groups == group
        own = tuple(m[0, 0] for m in masked_moments(values[rows], mask[rows], axis=(0, 1)))
        stats[group] = shrink(own, int(rows.sum()), reference, shrinkage)
    return stats


def speaker_stats(
    values: np.ndarray, valid_frames: np.ndarray, speakers: np.ndarray, deltas: int,
    kind: str = FRAMES, functionals: np.ndarray | None = None, reference: Stats | None = None, shrinkage: float = 0.0,
) -> dict[str, Stats]:
    """Per-speaker channel statistics of the ``kind`` inputs, shrunk toward ``reference`` by ``shrinkage``."""
    raw, mask = raw_inputs(kind, values, valid_frames, deltas, functionals)
    return group_stats(raw, mask, speakers, reference, shrinkage)


def model_inputs(
    values: np.ndarray,
    valid_frames: np.ndarray,
    speakers: np.ndarray,
    params: ModelParams,
    stats: Mapping[str, Stats] | None = None,
    functionals: np.ndarray | None = None,
    reference: Stats | None = None,
) -> np.ndarray:
    """Model inputs for ``params.arch`` (see the module docstring).

    ``stats`` gives the speaker statistics for ``normalize: speaker``; by
    default each speaker's are computed from the clips given and shrunk toward
    ``reference`` by ``params.shrinkage``.
    """
    kind = input_kind(params.arch)
    speakers = np.asarray(speakers, dtype=str)
    values, mask = raw_inputs(kind, values, valid_frames, params.deltas, functionals)
    if params.normalize == "utterance" and kind != UTTERANCE:
        mean, std = masked_moments(values, mask, axis=(1,))
        values = (values - mean) / std
    elif params.normalize == "speaker":
        stats = stats if stats is not None else group_stats(values, mask, speakers, reference, params.shrinkage)
        missing = sorted(set(speakers) - set(stats))
        if missing:
            raise ValueError(f"no speaker statistics for {', '.join(missing)}")
        for speaker in np.unique(speakers):
            rows = speakers == speaker
            values[rows] = (values[rows] - stats[speaker][0]) / stats[speaker][1]
    values = values * mask[..., np.newaxis]
    if kind == UTTERANCE:
        return values[:, 0].astype(np.float32)
    if kind == POOLED:
        pooled = values.sum(axis=1, dtype=np.float64) / np.maximum(mask.sum(axis=1, keepdims=True), 1.0)
        return pooled[..., np.newaxis].astype(np.float32)
    return np.concatenate([values, mask[..., np.newaxis]], axis=2).astype(np.float32)
