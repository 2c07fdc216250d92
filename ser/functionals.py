"""openSMILE functionals of a clip's analysis window (``features.functionals``).

The field's standard utterance-level descriptors, computed by the ``opensmile``
package on the same window as the frame features (:func:`ser.audio.load_window`):

- ``egemaps``: eGeMAPSv02, 88 prosody, voice-quality and spectral functionals;
- ``compare``: ComParE_2016, 6373 functionals.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Sequence

import numpy as np

from ser.audio import AudioError

FEATURE_SETS = {"egemaps": "eGeMAPSv02", "compare": "ComParE_2016"}
SIZES = {"egemaps": 88, "compare": 6373, "none": 0}
MIN_SECONDS = 0.1
"""Shorter windows are zero-padded to this length (openSMILE yields nothing for a few frames)."""


class Extractor:
    """One openSMILE instance of a feature set and rate, reused clip after clip.

    ``opensmile.Smile.process_signal`` sets up a new instance (parsing the
    configuration) for every call, a quarter of the cost of a short clip; this
    runs the same configuration through the same instance, reset between clips,
    with the same results (``tests/test_functionals.py`` pins them).
    """

    def __init__(self, kind: str, sr: int):
        import opensmile
        from opensmile.core.config import config

        smile = opensmile.Smile(feature_set=getattr(opensmile.FeatureSet, FEATURE_SETS[kind]), feature_level=opensmile.FeatureLevel.Functionals)
        options = {**smile._options(), "source": os.path.join(smile.default_config_root, config.EXTERNAL_INPUT_CONFIG), "sampleRate": sr, "nBits": 16}
        self.instance = smile._smile(options=options)
        self.source, self.sink = config.EXTERNAL_SOURCE_COMPONENT, config.EXTERNAL_OUTPUT_COMPONENT
        # openSMILE's native instance (about 9 MB for ComParE) outlives its Python object unless freed: without
        # this, every thread that ends (the web app's worker threads come and go) would leak its extractors
        weakref.finalize(self, self.instance.free)

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        """The functionals of one signal, ``(1, size)``; empty when openSMILE yields none."""
        rows: list[np.ndarray] = []
        self.instance.external_sink_set_callback_ex(self.sink, lambda data, _: rows.append(data.copy()))
        # the binding keeps every callback it was given (one per clip, for the instance's life): keep the current one
        del self.instance._callbacks[:-1]
        pcm = np.clip(np.asarray(samples, dtype=np.float32) * 32768, -32768, 32767).astype(np.int16)  # openSMILE reads 16-bit PCM
        try:
            self.instance.external_audio_source_write_data(self.source, pcm.tobytes())
            self.instance.external_audio_source_set_eoi(self.source)
            self.instance.run()
        finally:
            self.instance.reset()  # ready for the next clip
        return np.vstack(rows) if rows else np.zeros((0, 0), np.float32)


_THREAD = threading.local()


def extractor(kind: str, sr: int) -> Extractor:
    """The :class:`Extractor` of ``kind`` at ``sr`` of this thread (built once: it parses its configuration).

    One per thread: an instance runs one clip at a time (the web app scores requests in parallel threads).
    """
    built = _THREAD.__dict__.setdefault("extractors", {})
    if (kind, sr) not in built:
        built[kind, sr] = Extractor(kind, sr)
    return built[kind, sr]


def functionals(samples: np.ndarray, sr: int, kind: str, name: str = "clip") -> np.ndarray:
    """The ``kind`` functionals of one window, as float32 (empty for ``none``)."""
    if kind == "none":
        return np.zeros(0, dtype=np.float32)
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim != 1:
        raise AudioError(f"{name}: openSMILE {FEATURE_SETS[kind]} needs one channel of samples, got shape {samples.shape}")
    minimum = int(MIN_SECONDS * sr)
    if len(samples) < minimum:
        samples = np.pad(samples, (0, minimum - len(samples)))
    values = extractor(kind, sr)(samples).astype(np.float32)
    if values.shape != (1, SIZES[kind]) or not np.all(np.isfinite(values)):
        raise AudioError(f"{name}: openSMILE {FEATURE_SETS[kind]} gave no usable functionals")
    return values[0]


def functional_sets(samples: np.ndarray, sr: int, kinds: Sequence[str], name: str = "clip") -> dict[str, np.ndarray]:
    """The functionals of each set in ``kinds``, by set."""
    return {kind: functionals(samples, sr, kind, name) for kind in kinds}
