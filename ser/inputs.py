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

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ser.dsp import delta
from ser.params import CLASSIFIERS, ModelParams

Stats = tuple[np.ndarray, np.ndarray]
EPSILON = 1e-5
CHUNK_BYTES = 32 * 2**20
"""About how much of the inputs :func:`model_inputs` computes at once."""
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


def speaker_stats(
    values: np.ndarray, valid_frames: np.ndarray, speakers: np.ndarray, deltas: int,
    kind: str = FRAMES, functionals: np.ndarray | None = None, reference: Stats | None = None, shrinkage: float = 0.0,
    rows: np.ndarray | None = None,
) -> dict[str, Stats]:
    """Per-speaker channel statistics of the ``kind`` inputs (of the clips at ``rows``, default all),
    shrunk toward ``reference`` by ``shrinkage``."""
    speakers = np.asarray(speakers, dtype=str)
    rows = np.arange(len(values)) if rows is None else np.asarray(rows)
    stats = {}
    for speaker in np.unique(speakers[rows]):
        own = rows[speakers[rows] == speaker]
        stats[speaker] = shrink(pooled_stats(values, valid_frames, deltas, kind, functionals, own), len(own), reference, shrinkage)
    return stats


def pooled_stats(
    values: np.ndarray, valid_frames: np.ndarray, deltas: int, kind: str = FRAMES, functionals: np.ndarray | None = None,
    rows: np.ndarray | None = None,
) -> Stats:
    """Mean and standard deviation per channel of the ``kind`` inputs over the real steps of the clips at
    ``rows`` (default all), summed in double precision a chunk of clips at a time."""
    valid_frames = np.asarray(valid_frames)
    rows = np.arange(len(values)) if rows is None else np.asarray(rows)
    total = squares = count = 0.0
    row_bytes = values[:1].nbytes * (deltas + 2) * 4 + (0 if functionals is None else functionals[:1].nbytes)
    for piece in chunks(len(rows), row_bytes):
        taken = rows[piece]
        raw, mask = raw_inputs(kind, values[taken], valid_frames[taken], deltas, None if functionals is None else functionals[taken])
        raw, mask = raw.astype(np.float64), mask[..., np.newaxis]
        total = total + (raw * mask).sum(axis=(0, 1))
        squares = squares + (raw**2 * mask).sum(axis=(0, 1))
        count += float(mask.sum())
    count = max(count, 1.0)
    mean = np.asarray(total / count)
    std = np.sqrt(np.maximum(squares / count - mean**2, 0.0)) + EPSILON
    return mean.astype(np.float32), std.astype(np.float32)


def chunks(n_rows: int, row_bytes: int, chunk_bytes: int = CHUNK_BYTES) -> list[slice]:
    """Consecutive slices of ``n_rows`` rows, each about ``chunk_bytes`` of ``row_bytes``-byte rows."""
    step = max(1, chunk_bytes // max(row_bytes, 1))
    return [slice(start, min(start + step, n_rows)) for start in range(0, n_rows, step)]


def model_inputs(
    values: np.ndarray,
    valid_frames: np.ndarray,
    speakers: np.ndarray,
    params: ModelParams,
    stats: Mapping[str, Stats] | None = None,
    functionals: np.ndarray | None = None,
    reference: Stats | None = None,
    rows: np.ndarray | None = None,
) -> np.ndarray:
    """Model inputs for ``params.arch`` (see the module docstring) of the clips at ``rows`` (default all),
    computed a chunk of clips at a time: a clip's inputs depend on its own frames and its speaker's
    statistics only.

    ``stats`` gives the speaker statistics for ``normalize: speaker``; by
    default each speaker's are computed from the clips given and shrunk toward
    ``reference`` by ``params.shrinkage``.
    """
    kind = input_kind(params.arch)
    speakers, valid_frames = np.asarray(speakers, dtype=str), np.asarray(valid_frames)
    rows = np.arange(len(values)) if rows is None else np.asarray(rows, dtype=int)
    if params.normalize == "speaker":
        if stats is None:
            stats = speaker_stats(values, valid_frames, speakers, params.deltas, kind, functionals, reference, params.shrinkage, rows)
        missing = sorted(set(speakers[rows]) - set(stats))
        if missing:
            raise ValueError(f"no speaker statistics for {', '.join(missing)}")
    row_bytes = values[:1].nbytes * (params.deltas + 2) * 4 + (0 if functionals is None else functionals[:1].nbytes)
    out = None
    for piece in chunks(len(rows), row_bytes) or [slice(0, 0)]:
        taken = rows[piece]
        part = clip_inputs(kind, values[taken], valid_frames[taken], speakers[taken], params, stats,
                           None if functionals is None else functionals[taken])
        if out is None:
            out = np.empty((len(rows), *part.shape[1:]), dtype=np.float32)
        out[piece] = part
    return out


def clip_inputs(
    kind: str, values: np.ndarray, valid_frames: np.ndarray, speakers: np.ndarray, params: ModelParams,
    stats: Mapping[str, Stats] | None, functionals: np.ndarray | None,
) -> np.ndarray:
    """:func:`model_inputs` of a few clips, with the speaker statistics already known."""
    values, mask = raw_inputs(kind, values, valid_frames, params.deltas, functionals)
    if params.normalize == "utterance" and kind != UTTERANCE:
        mean, std = masked_moments(values, mask, axis=(1,))
        values = (values - mean) / std
    elif params.normalize == "speaker":
        for speaker in np.unique(speakers):
            rows = speakers == speaker
            values[rows] = (values[rows] - stats[speaker][0]) / stats[speaker][1]
    values *= mask[..., np.newaxis]
    if kind == UTTERANCE:
        return values[:, 0]
    if kind == POOLED:
        pooled = values.sum(axis=1, dtype=np.float64) / np.maximum(mask.sum(axis=1, keepdims=True), 1.0)
        return pooled[..., np.newaxis].astype(np.float32)
    return np.concatenate([values, mask[..., np.newaxis]], axis=2)


@dataclass(frozen=True)
class RowInputs:
    """The frame-model inputs of chosen rows of one or more feature arrays (memory-mapped ones too),
    computed when taken: a training set and its augmented copies are never held in memory whole.
    Taking rows gives exactly what :func:`model_inputs` gives for them."""

    params: ModelParams
    stats: Mapping[str, Stats] | None
    arrays: tuple[np.ndarray, ...]
    """The ``(clips, frames, channels)`` feature arrays the rows come from."""
    source: np.ndarray
    """Per row: its array's position in ``arrays``."""
    row: np.ndarray
    """Per row: its row in that array."""
    valid_frames: np.ndarray
    speakers: np.ndarray

    @classmethod
    def of(cls, params: ModelParams, stats: Mapping[str, Stats] | None,
           parts: Sequence[tuple[np.ndarray, pd.DataFrame, np.ndarray]]) -> RowInputs:
        """The rows ``rows`` of each ``(array, its index, rows)`` in ``parts``, in that order."""
        return cls(
            params, stats, tuple(array for array, _, _ in parts),
            np.concatenate([np.full(len(rows), number) for number, (_, _, rows) in enumerate(parts)]).astype(int),
            np.concatenate([rows for _, _, rows in parts]).astype(int),
            np.concatenate([index["valid_frames"].to_numpy()[rows] for _, index, rows in parts]),
            np.concatenate([index["speaker"].to_numpy(dtype=str)[rows] for _, index, rows in parts]),
        )

    def __len__(self) -> int:
        return len(self.row)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self), *self.take(np.arange(min(1, len(self)))).shape[1:])

    def take(self, positions: np.ndarray) -> np.ndarray:
        """The inputs of the rows at ``positions``."""
        positions = np.asarray(positions, dtype=int)
        frames = np.empty((len(positions), *self.arrays[0].shape[1:]), dtype=np.float32)
        for number, array in enumerate(self.arrays):
            mine = self.source[positions] == number
            frames[mine] = array[self.row[positions[mine]]]
        return model_inputs(frames, self.valid_frames[positions], self.speakers[positions], self.params, self.stats)

    def __getitem__(self, key) -> np.ndarray:
        return self.take(np.arange(len(self))[key])

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        inputs = self.take(np.arange(len(self)))
        return inputs if dtype is None else inputs.astype(dtype)
