"""Featurize a whole corpus: parallel, streamed to disk, and cached per clip.

- **Parallel.** Clips go to workers in batches of ``runtime.featurize.batch_size``:
  local processes (``runtime.featurize.workers``, BLAS pinned to one thread each), or
  the workers of a Dask cluster (``runtime.featurize.scheduler``). Local workers read
  the files themselves; cluster workers receive the audio's bytes, so they need
  no shared file system. Each clip is read and resampled once for all its
  features (frames, functionals, augmented copies).
- **Streamed.** At most a few batches are in flight, and results are appended
  to ``features.npy`` / ``augmented.npy`` in manifest order as they arrive, so
  memory does not grow with the corpus.
- **Cached.** Each clip's features, and each augmented copy, are stored under a
  key made of the audio's sha256, the params that shape them, and a digest of
  the code and libraries that compute them. A rerun computes only what is new.
- **Crash-safe.** Cache entries are committed clip by clip and carry a SHA-256
  checksum: a truncated or altered entry is detected, dropped and recomputed,
  never used. The output folder is written under a temporary name and renamed
  once complete (:func:`ser.files.replaced_directory`), so a killed run leaves
  no partial output, and the next run reuses what the cache already holds.

The results are the same whichever way they are computed.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import json
import multiprocessing
import os
import pickle
import sys
import time
from collections import deque
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ContextManager, Iterable, Iterator, Sequence

import diskcache
import librosa
import numpy as np
import pandas as pd
import soundfile as sf
import soxr
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from ser import chain
from ser.audio import AudioError, load_window, normalize_level
from ser.augment import augment_clip, copy_rng
from ser.features import (
    AUGMENTED_FILE, AUGMENTED_INDEX_FILE, FEATURES_FILE, FUNCTIONALS_FILE, INDEX_COLUMNS, INDEX_FILE, PARAMS_FILE,
    batch_frame_features, feature_shape,
)
from ser.files import replaced_directory
from ser.functionals import SIZES, functional_sets
from ser.imports import ROOT, closure
from ser.params import AudioParams, AugmentParams, FeatureParams, FeaturizeRuntime

BATCHES_PER_WORKER = 4  # batches in flight per worker: enough to keep workers busy, few enough to bound memory
Features = tuple[np.ndarray, int, dict[str, np.ndarray]]
"""(frames, channels) values, the count of real frames, and the clip's functionals by set (none for copies)."""
CHECKSUM_BYTES = hashlib.sha256().digest_size
"""The SHA-256 that starts each cache entry (:func:`seal`)."""


class FeaturizeError(RuntimeError):
    """One or more clips could not be featurized; the message lists each file and reason."""


@dataclass(frozen=True)
class Settings:
    """Everything that shapes a clip's features and its augmented copies."""

    audio: AudioParams
    features: FeatureParams
    augment: AugmentParams


Variant = int | str
"""What is computed of a clip: 0 the clip itself, k > 0 its augmented copy k, a name the clip through that
transform of the recording chain (:mod:`ser.chain`)."""


def has_functionals(variant: Variant) -> bool:
    """Whether a variant gets functionals: the clip and its chain transforms do, augmented copies not."""
    return isinstance(variant, str) or variant == 0


@dataclass(frozen=True)
class ClipTask:
    """Work for one clip: its audio and the variants to compute."""

    name: str  # the file's path
    sha256: str
    variants: tuple[Variant, ...]
    data: bytes | None = None  # the file's bytes, for workers without the file system; None: read ``name``
    error: str = ""  # the file could not even be read


@dataclass
class ClipResult:
    features: dict[Variant, Features] = field(default_factory=dict)
    error: str = ""


def _variants(task: ClipTask, settings: Settings) -> list[np.ndarray]:
    """The clip's window and the variants of it that ``task`` asks for (``AudioError`` if unusable)."""
    if task.error:
        raise AudioError(task.error)
    samples = load_window(io.BytesIO(task.data if task.data is not None else read_audio(Path(task.name))), settings.audio, name=task.name)
    windows = [variant_window(samples, variant, task.sha256, settings) for variant in task.variants]
    return [normalize_level(window, settings.audio.sr, settings.audio.level_dbfs) for window in windows]


def variant_window(samples: np.ndarray, variant: Variant, sha256: str, settings: Settings) -> np.ndarray:
    """One variant of a clip's window (see :data:`Variant`); ``sha256``: the clip's audio's, which seeds it."""
    if isinstance(variant, str):
        return chain.apply(variant, samples, settings.audio.sr, chain.clip_seed(sha256))
    if variant:
        return augment_clip(samples, settings.audio.sr, settings.augment, copy_rng(settings.augment.seed, sha256, variant))
    return samples


def read_audio(path: Path) -> bytes:
    """The bytes of an audio file (``AudioError`` naming it if it cannot be read)."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise AudioError(f"{path}: cannot read the file ({exc.strerror})") from None


def compute_batch(tasks: list[ClipTask], settings: Settings) -> list[ClipResult]:
    """A worker's unit of work: several clips, their features computed together."""
    results, clips, slots = [], [], []
    kinds, sr = settings.features.functionals, settings.audio.sr
    for task in tasks:
        result = ClipResult()
        try:
            variants = _variants(task, settings)
            described = [functional_sets(clip, sr, kinds if has_functionals(copy) else [], task.name) for copy, clip in zip(task.variants, variants)]
        except AudioError as exc:
            result.error = str(exc)
            variants, described = [], []
        clips.extend(variants)
        slots.extend((result, copy, utterance) for copy, utterance in zip(task.variants, described))
        results.append(result)
    values = batch_frame_features(clips, settings.audio, settings.features) if clips else []
    for (result, copy, utterance), (frames, valid) in zip(slots, values):
        result.features[copy] = (frames, valid, utterance)
    return results


def pin_blas_threads() -> None:
    """BLAS on one thread in this worker process: the workers are the parallelism."""
    threadpool_limits(limits=1)


def code_digest(root: Path = ROOT) -> str:
    """Digest of the code and library versions that compute features: a change invalidates the cache.

    The code is this module's import closure under ``root`` (:func:`ser.imports.closure`): every project file it runs.
    """
    digest = hashlib.sha256()
    for source in closure(__name__, root):
        digest.update(source.relative_to(root).as_posix().encode() + b"\0" + source.read_bytes())
    versions = [np.__version__, librosa.__version__, soxr.__version__, sf.__libsndfile_version__, importlib.metadata.version("opensmile")]
    digest.update(" ".join(versions).encode())
    return digest.hexdigest()


class CorruptEntry(ValueError):
    """A cache entry that fails its checksum or does not unpickle; the message says which."""


def seal(value: Features) -> bytes:
    """``value`` pickled, after the SHA-256 of the pickle: a truncated or altered entry is detected."""
    payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return hashlib.sha256(payload).digest() + payload


def unseal(entry: bytes) -> Features:
    """The value :func:`seal` stored, or :class:`CorruptEntry`."""
    if not isinstance(entry, bytes):
        raise CorruptEntry("not a sealed entry (an older format)")
    if len(entry) <= CHECKSUM_BYTES:
        raise CorruptEntry("truncated (shorter than its checksum)")
    checksum, payload = entry[:CHECKSUM_BYTES], entry[CHECKSUM_BYTES:]
    if hashlib.sha256(payload).digest() != checksum:
        raise CorruptEntry("corrupt (checksum mismatch)")
    return pickle.loads(payload)


class FeatureCache:
    """Per-clip features on disk (``diskcache``), keyed by audio sha256, params, code and copy number."""

    def __init__(self, directory: str, limit_gb: float, settings: Settings):
        self.store = diskcache.Cache(os.path.expanduser(directory), size_limit=int(limit_gb * 1e9)) if directory else None
        self.corrupt = 0
        shared = {"audio": settings.audio.model_dump(), "code": code_digest()}
        frames = settings.features.model_dump(exclude={"functionals"})  # copies have no functionals
        self.clip_prefix = _digest({**shared, "features": settings.features.model_dump()})
        self.copy_prefix = _digest({**shared, "features": frames, "augment": settings.augment.model_dump(exclude={"copies"})})

    def key(self, sha256: str, copy: Variant) -> str:
        return f"{self.clip_prefix if has_functionals(copy) else self.copy_prefix}/{sha256}/{copy}"

    def get(self, sha256: str, copy: Variant) -> Features | None:
        """The entry, or None if there is none or it is corrupt (then it is dropped, to be recomputed)."""
        if self.store is None:
            return None
        key = self.key(sha256, copy)
        if (entry := self.store.get(key)) is None:
            return None
        try:
            return unseal(entry)
        except CorruptEntry as exc:
            self.corrupt += 1
            self.store.delete(key)
            print(f"feature cache: the entry of clip {sha256} (copy {copy}) is {exc}; recomputing it", file=sys.stderr)
            return None

    def put(self, sha256: str, copy: Variant, value: Features) -> None:
        if self.store is not None:
            self.store.set(self.key(sha256, copy), seal(value))

    def transaction(self) -> ContextManager:
        """Group writes (one disk sync for many entries)."""
        return self.store.transact() if self.store is not None else nullcontext()

    def close(self) -> None:
        if self.store is not None:
            self.store.close()


def _digest(value: dict) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:32]


class InlineExecutor(Executor):
    """Runs each call at once in this process (one worker: no process start-up or transfer)."""

    def submit(self, fn: Callable, /, *args, **kwargs) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # handed to whoever reads the future, as a pool would
            future.set_exception(exc)
        return future


def worker_count(params: FeaturizeRuntime) -> int:
    """Local workers: ``runtime.featurize.workers``, or one per CPU core this process may use."""
    return params.workers or len(os.sched_getaffinity(0))


class LazyProcessPool(Executor):
    """Local worker processes, started on the first batch to compute: a rerun from the cache starts none."""

    def __init__(self, workers: int):
        self.workers, self.pool = workers, None

    def submit(self, fn: Callable, /, *args, **kwargs) -> Future:
        if self.pool is None:
            context = multiprocessing.get_context("fork")
            self.pool = ProcessPoolExecutor(self.workers, mp_context=context, initializer=pin_blas_threads)
        return self.pool.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait, cancel_futures=cancel_futures)


@contextmanager
def worker_pool(params: FeaturizeRuntime) -> Iterator[tuple[Executor, int]]:
    """Where batches run, and how many run at once: a Dask cluster, local processes, or this process.

    BLAS runs on one thread wherever batches run: the workers are the parallelism.
    """
    if params.scheduler:
        from dask.distributed import Client

        with Client(params.scheduler) as client:
            client.run(pin_blas_threads)
            yield client.get_executor(pure=False), max(1, sum(client.nthreads().values()))
    elif worker_count(params) == 1:
        with threadpool_limits(limits=1):
            yield InlineExecutor(), 1
    else:
        with LazyProcessPool(worker_count(params)) as pool:
            yield pool, pool.workers


@dataclass
class Batch:
    """Consecutive clips of the manifest: what the cache holds of each, and tasks for what it lacks."""

    cached: list[dict[Variant, Features]]
    tasks: list[ClipTask]


def ordered_results(pool: Executor, batches: Iterable[Batch], settings: Settings, window: int) -> Iterator[tuple[Batch, list[ClipResult]]]:
    """Each batch with its computed results, in order, with at most ``window`` batches in flight."""
    inline = InlineExecutor()
    pending: deque[tuple[Batch, Future]] = deque()
    for batch in batches:
        pending.append((batch, (pool if batch.tasks else inline).submit(compute_batch, batch.tasks, settings)))
        if len(pending) >= window:
            done, future = pending.popleft()
            yield done, future.result()
    while pending:
        done, future = pending.popleft()
        yield done, future.result()


class NpyWriter:
    """Writes a ``.npy`` array of known shape row by row, without holding it in memory."""

    def __init__(self, path: Path, shape: tuple[int, ...], dtype: type = np.float32):
        self.path, self.shape, self.dtype, self.rows = path, shape, np.dtype(dtype), 0
        self.handle = path.open("wb")
        header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": shape}
        np.lib.format.write_array_header_2_0(self.handle, header)

    def append(self, row: np.ndarray) -> None:
        self.handle.write(np.ascontiguousarray(row, dtype=self.dtype).tobytes())
        self.rows += 1

    def close(self) -> None:
        self.handle.close()
        if self.rows != self.shape[0]:
            raise FeaturizeError(f"{self.path}: wrote {self.rows} of {self.shape[0]} rows")

    def __enter__(self) -> NpyWriter:
        return self

    def __exit__(self, exc_type, *exc_info) -> None:
        if exc_type is None:
            self.close()
        else:  # an error is already on its way: report that one, not the missing rows
            self.handle.close()


@dataclass
class FeaturizeSummary:
    clips: int
    copies: int
    computed: int
    cached: int
    seconds: float
    corrupt: int = 0

    def __str__(self) -> str:
        corrupt = f" ({self.corrupt} corrupt cache entries recomputed)" if self.corrupt else ""
        return (
            f"featurized {self.clips} clips and {self.copies} augmented copies in {self.seconds:.1f} s: "
            f"{self.computed} computed, {self.cached} from the cache{corrupt}"
        )


def _batches(manifest: pd.DataFrame, raw_dir: Path, cache: FeatureCache, variants: tuple[Variant, ...], size: int, ship: bool) -> Iterator[Batch]:
    """The manifest's clips in batches; ``ship``: tasks carry the audio's bytes (else workers read the files)."""
    clips = list(zip(manifest["file"].tolist(), manifest["sha256"].tolist()))
    for start in range(0, len(clips), size):
        batch = Batch([], [])
        for file, sha256 in clips[start : start + size]:
            found = {copy: value for copy in variants if (value := cache.get(sha256, copy)) is not None}
            missing = tuple(copy for copy in variants if copy not in found)
            batch.cached.append(found)
            if missing:
                batch.tasks.append(_task(raw_dir / file, sha256, missing, ship))
        yield batch


def _task(path: Path, sha256: str, variants: tuple[Variant, ...], ship: bool) -> ClipTask:
    try:
        return ClipTask(str(path), sha256, variants, read_audio(path) if ship else None)
    except AudioError as exc:
        return ClipTask(str(path), sha256, variants, error=str(exc))


def _complete(batch: Batch, results: list[ClipResult], cache: FeatureCache, variants: int, errors: list[str]) -> list[dict[Variant, Features]]:
    """Every clip's variants, from the cache or just computed (and then cached); errors are collected."""
    computed = iter(zip(batch.tasks, results))
    completed = []
    with cache.transaction():
        for found in batch.cached:
            if len(found) < variants:
                task, result = next(computed)
                errors.extend([result.error] if result.error else [])
                for copy, value in result.features.items():
                    cache.put(task.sha256, copy, value)
                found = {**found, **result.features}
            completed.append(found)
    return completed


def featurize_corpus(
    manifest: pd.DataFrame, raw_dir: Path, out_dir: Path, settings: Settings, params: FeaturizeRuntime
) -> FeaturizeSummary:
    """Features of every clip of ``manifest`` and of its augmented copies, written to ``out_dir``.

    ``features.npy`` has one row per clip in manifest order; ``augmented.npy``
    has ``augment.copies`` rows per clip, clip by clip, and ``augmented.csv``
    names each row's ``source`` (the clip's row) and ``copy``.
    """
    with replaced_directory(out_dir) as building:
        return _featurize_into(manifest, raw_dir, building, settings, params)


@dataclass
class Tally:
    """What a featurizing run did: variants computed (the rest came from the cache), clips that failed."""

    computed: int = 0
    errors: list[str] = field(default_factory=list)
    corrupt: int = 0

    def check(self) -> None:
        if self.errors:
            raise FeaturizeError(f"{len(self.errors)} clip(s) could not be featurized:\n  " + "\n  ".join(self.errors))


def each_clip(
    manifest: pd.DataFrame, raw_dir: Path, settings: Settings, params: FeaturizeRuntime, variants: tuple[Variant, ...],
    stack: ExitStack, tally: Tally, desc: str,
) -> Iterator[dict[Variant, Features]]:
    """Every clip's ``variants`` by variant, in manifest order: from the cache, or computed by the
    workers (and cached); a clip that fails is counted in ``tally`` and lacks its variants."""
    cache = FeatureCache(params.cache, params.cache_limit_gb, settings)
    stack.callback(cache.close)
    stack.callback(lambda: setattr(tally, "corrupt", cache.corrupt))
    pool, slots = stack.enter_context(worker_pool(params))
    progress = stack.enter_context(tqdm(total=len(manifest), desc=desc, unit="clip"))
    batches = _batches(manifest, raw_dir, cache, variants, params.batch_size, ship=bool(params.scheduler))
    for batch, results in ordered_results(pool, batches, settings, BATCHES_PER_WORKER * slots):
        tally.computed += sum(len(result.features) for result in results)
        yield from _complete(batch, results, cache, len(variants), tally.errors)
        progress.update(len(batch.cached))


def blank_features(settings: Settings) -> Features:
    """A failed clip's rows (the run fails once every clip was tried)."""
    kinds = settings.features.functionals
    return np.zeros(feature_shape(settings.audio, settings.features), np.float32), 0, {k: np.zeros(SIZES[k], np.float32) for k in kinds}


def _featurize_into(
    manifest: pd.DataFrame, raw_dir: Path, out_dir: Path, settings: Settings, params: FeaturizeRuntime
) -> FeaturizeSummary:
    start = time.perf_counter()
    copies = settings.augment.copies
    variants = tuple(range(copies + 1))
    shape = feature_shape(settings.audio, settings.features)
    kinds = settings.features.functionals
    blank = blank_features(settings)
    valid = np.zeros((len(manifest), len(variants)), dtype=np.int64)
    tally = Tally()
    with ExitStack() as stack:
        writers = [
            stack.enter_context(NpyWriter(out_dir / FEATURES_FILE, (len(manifest), *shape))),
            stack.enter_context(NpyWriter(out_dir / AUGMENTED_FILE, (len(manifest) * copies, *shape))),
        ]
        described = {k: stack.enter_context(NpyWriter(out_dir / FUNCTIONALS_FILE.format(k), (len(manifest), SIZES[k]))) for k in kinds}
        for row, found in enumerate(each_clip(manifest, raw_dir, settings, params, variants, stack, tally, "featurize")):
            for copy in variants:
                values, valid[row, copy], utterance = found.get(copy, blank)
                writers[min(copy, 1)].append(values)
                for kind in kinds if copy == 0 else []:
                    described[kind].append(utterance[kind])
    tally.check()
    _write_indexes(manifest, out_dir, valid, settings)
    total = len(manifest) * len(variants)
    return FeaturizeSummary(
        len(manifest), len(manifest) * copies, tally.computed, total - tally.computed, time.perf_counter() - start, tally.corrupt
    )


def featurize_transforms(
    manifest: pd.DataFrame, raw_dir: Path, out_dir: Path, settings: Settings, params: FeaturizeRuntime, transforms: Sequence[str]
) -> Tally:
    """Features of every clip of ``manifest`` through each transform of the recording chain, written to
    ``out_dir`` like featurize's clips (``features.npy``, ``functionals_<set>.npy``): one row per clip
    and transform, clip by clip; ``index.csv`` names each row's clip and ``transform``."""
    shape = feature_shape(settings.audio, settings.features)
    kinds = settings.features.functionals
    variants, blank, tally = tuple(transforms), blank_features(settings), Tally()
    rows = len(manifest) * len(variants)
    valid = np.zeros(rows, dtype=np.int64)
    with replaced_directory(out_dir) as building, ExitStack() as stack:
        values_out = stack.enter_context(NpyWriter(building / FEATURES_FILE, (rows, *shape)))
        described = {k: stack.enter_context(NpyWriter(building / FUNCTIONALS_FILE.format(k), (rows, SIZES[k]))) for k in kinds}
        row = 0
        for found in each_clip(manifest, raw_dir, settings, params, variants, stack, tally, "transforms"):
            for variant in variants:
                values, valid[row], utterance = found.get(variant, blank)
                values_out.append(values)
                for kind in kinds:
                    described[kind].append(utterance[kind])
                row += 1
        tally.check()
        clips = manifest[INDEX_COLUMNS[:-1]].reset_index(drop=True)
        index = clips.iloc[np.repeat(np.arange(len(clips)), len(variants))].reset_index(drop=True)
        index.assign(valid_frames=valid, transform=np.tile(variants, len(clips))).to_csv(building / INDEX_FILE, index=False)
        write_params(building, settings)
    return tally


def _write_indexes(manifest: pd.DataFrame, out_dir: Path, valid: np.ndarray, settings: Settings) -> None:
    """``index.csv`` (one row per clip), ``augmented.csv`` (one per copy) and ``params.json``."""
    clips = manifest[INDEX_COLUMNS[:-1]].reset_index(drop=True)
    clips.assign(valid_frames=valid[:, 0]).to_csv(out_dir / INDEX_FILE, index=False)
    copies = settings.augment.copies
    rows = np.repeat(np.arange(len(clips)), copies)
    augmented = clips.iloc[rows].reset_index(drop=True).assign(
        valid_frames=valid[:, 1:].reshape(-1), source=rows, copy=np.tile(np.arange(1, copies + 1), len(clips))
    )
    augmented.to_csv(out_dir / AUGMENTED_INDEX_FILE, index=False)
    write_params(out_dir, settings)


def write_params(out_dir: Path, settings: Settings) -> None:
    """``params.json``: the params that shaped the features."""
    used = {"audio": settings.audio.model_dump(), "features": settings.features.model_dump()}
    (out_dir / PARAMS_FILE).write_text(json.dumps(used, indent=2) + "\n")
