"""openSMILE functionals of a clip's analysis window (``features.functionals``).

The field's standard utterance-level descriptors, computed by the ``opensmile``
package on the same window as the frame features (:func:`ser.audio.load_window`):

- ``egemaps``: eGeMAPSv02, 88 prosody, voice-quality and spectral functionals;
- ``compare``: ComParE_2016, 6373 functionals.
"""

from __future__ import annotations

import functools
from typing import Sequence

import numpy as np

from ser.audio import AudioError

FEATURE_SETS = {"egemaps": "eGeMAPSv02", "compare": "ComParE_2016"}
SIZES = {"egemaps": 88, "compare": 6373, "none": 0}
MIN_SECONDS = 0.1
"""Shorter windows are zero-padded to this length (openSMILE yields nothing for a few frames)."""


@functools.lru_cache(maxsize=4)
def extractor(kind: str):
    """An ``opensmile.Smile`` for ``kind`` (built once per process: it parses its configuration)."""
    import opensmile

    return opensmile.Smile(
        feature_set=getattr(opensmile.FeatureSet, FEATURE_SETS[kind]),
        feature_level=opensmile.FeatureLevel.Functionals,
    )


def functionals(samples: np.ndarray, sr: int, kind: str, name: str = "clip") -> np.ndarray:
    """The ``kind`` functionals of one window, as float32 (empty for ``none``)."""
    if kind == "none":
        return np.zeros(0, dtype=np.float32)
    samples = np.asarray(samples, dtype=np.float32)
    minimum = int(MIN_SECONDS * sr)
    if len(samples) < minimum:
        samples = np.pad(samples, (0, minimum - len(samples)))
    values = extractor(kind).process_signal(samples, sr).to_numpy(dtype=np.float32)
    if values.shape != (1, SIZES[kind]) or not np.all(np.isfinite(values)):
        raise AudioError(f"{name}: openSMILE {FEATURE_SETS[kind]} gave no usable functionals")
    return values[0]


def functional_sets(samples: np.ndarray, sr: int, kinds: Sequence[str], name: str = "clip") -> dict[str, np.ndarray]:
    """The functionals of each set in ``kinds``, by set."""
    return {kind: functionals(samples, sr, kind, name) for kind in kinds}
