"""Training fold by fold: the folds' models side by side, and what the deployable model takes from them.

Light on imports (no TensorFlow): the train stage's main process only hands out
folds and reads their summaries.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import multiprocessing
import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Hashable, Sequence

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from ser.determinism import pinned_environment
from ser.evaluation import rounded
from ser.params import TrainParams
from ser.split import TEST, TRAIN, VALIDATION


def single_threaded() -> None:
    """Compute on one thread in this process (TensorFlow and BLAS): parallel models are the parallelism.

    TensorFlow's deterministic ops give the same model on the same number of
    threads, but their sums split by thread count (the last bits differ): one
    thread per model makes every model the same on every machine, whatever its cores.
    The kernels are pinned too (:mod:`ser.determinism`), whatever the CPU's instruction sets.
    """
    from ser.determinism import pin_cpu_kernels

    pin_cpu_kernels()  # before TensorFlow loads
    import opensmile  # noqa: F401 - before TensorFlow: imported after it, openSMILE crashes the process
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    threadpool_limits(limits=1)


def release_memory() -> None:
    """Collect garbage and hand freed memory back to the system: glibc keeps large freed blocks in
    the process otherwise, and a worker would hold its biggest task's peak for the rest of its life."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def parallel_workers(workers: int, jobs: int) -> int:
    """Processes for ``jobs`` models: ``runtime.train.workers`` (0: one per CPU core), at most one per job."""
    return max(1, min(workers or len(os.sched_getaffinity(0)), jobs))


@dataclass(frozen=True)
class Task:
    """A job for :func:`run_tasks`: ``key`` names its result; it starts once the tasks named in ``after``
    are done, with ``args`` (or ``args(results)``, computed from the results so far)."""

    key: Hashable
    args: tuple | Callable[[dict], tuple] = ()
    after: tuple[Hashable, ...] = ()


def run_tasks(function: Callable[..., Any], tasks: Sequence[Task], workers: int) -> dict[Hashable, Any]:
    """``function(*task.args)`` of each task, by key, on ``workers`` fresh processes computing on one thread each.

    A free worker takes the first task, in the order given, whose ``after`` tasks are all done: list the
    tasks that others wait for first. ``function`` must be importable (a module-level function): it runs
    in spawned processes, which load numpy (and OpenBLAS) before their initializer runs: they inherit
    the kernel pins of :func:`ser.determinism.pinned_environment` instead.
    """
    keys = [task.key for task in tasks]
    if unknown := {key for task in tasks for key in task.after} - set(keys):
        raise ValueError(f"tasks wait for tasks that are not given: {sorted(map(str, unknown))}")
    results: dict[Hashable, Any] = {}
    if not tasks:
        return results
    waiting, running = list(tasks), {}
    context = multiprocessing.get_context("spawn")  # TensorFlow's threads do not survive a fork
    with pinned_environment(), ProcessPoolExecutor(workers, mp_context=context, initializer=single_threaded) as pool:
        while waiting or running:
            ready = [task for task in waiting if all(key in results for key in task.after)]
            if not ready and not running:
                raise ValueError(f"tasks wait for each other: {[str(task.key) for task in waiting]}")
            for task in ready[: workers - len(running)]:
                waiting.remove(task)
                args = task.args(results) if callable(task.args) else task.args
                running[pool.submit(function, *args)] = task.key  # workers start here, inheriting the pins
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                results[running.pop(future)] = future.result()
    return {key: results[key] for key in keys}


def run_parallel(function: Callable[..., Any], jobs: Sequence[tuple], workers: int) -> list:
    """``function(*job)`` for each job, in order, on ``workers`` fresh processes (see :func:`run_tasks`)."""
    results = run_tasks(function, [Task(number, job) for number, job in enumerate(jobs)], workers)
    return [results[number] for number in range(len(jobs))]


def sample_weights(index: pd.DataFrame, balance: str) -> np.ndarray | None:
    """Per-clip training weights under ``train.balance``: ``corpus`` gives each corpus, ``speaker``
    each speaker, the same total weight; the weights average 1. ``none``: no weights."""
    if balance == "none":
        return None
    counts = index.groupby(balance)[balance].transform("size").to_numpy(dtype=float)
    weights = 1.0 / counts
    return (weights * len(weights) / weights.sum()).astype(np.float32)


def fold_composition(index: pd.DataFrame, folds: dict[str, np.ndarray], balance: str) -> pd.DataFrame:
    """Per fold and corpus: speakers and clips that train, validate and test, and the corpus's share of
    the training loss under ``train.balance`` (augmented copies change no share: every clip has as many)."""
    rows = []
    for fold, parts in folds.items():
        training = parts == TRAIN
        weights = sample_weights(index[training], balance)
        weights = np.ones(int(training.sum())) if weights is None else weights
        loss = pd.Series(weights, index=index.index[training]).groupby(index["corpus"][training]).sum() / weights.sum()
        for corpus, clips in index.groupby("corpus", sort=True):
            row = {"fold": fold, "corpus": corpus}
            for part, name in ((TRAIN, "train"), (VALIDATION, "val"), (TEST, "test")):
                chosen = clips[parts[clips.index] == part]
                row[f"{name}_speakers"], row[f"{name}_clips"] = chosen["speaker"].nunique(), len(chosen)
            row["loss_share"] = round(float(loss.get(corpus, 0.0)), 4)
            rows.append(row)
    return pd.DataFrame(rows)


def mean_summary(folds: dict[str, dict]) -> dict:
    """Validation scores averaged over folds (the model-selection score), and each fold's."""
    return {
        "val_loss": rounded(np.mean([f["val_loss"] for f in folds.values()])),
        "val_accuracy": rounded(np.mean([f["val_accuracy"] for f in folds.values()])),
        "folds": folds,
    }


def deployable_epochs(folds: dict[str, dict], params: TrainParams) -> dict[str, int]:
    """Epochs of each network for the model trained on all the data (no clips left to validate on): as
    many as the folds' networks ran with, i.e. their median best epoch under early stopping, else
    ``train.epochs``."""
    archs = sorted({arch for fold in folds.values() for arch in fold["members"]})
    if not params.early_stopping:
        return {arch: params.epochs for arch in archs}
    return {arch: max(1, int(np.median([f["members"][arch]["best_epoch"] for f in folds.values()]))) for arch in archs}


def deployable_temperature(folds: dict[str, dict]) -> float:
    """The temperature of the model trained on all the data: the folds' median."""
    return round(float(np.median([fold["temperature"] for fold in folds.values()])), 4)


def log_fold_scores(folds: dict[str, dict], live_dir: Path) -> None:
    """Each fold's validation loss and accuracy with dvclive, a step per fold: a plot every model
    has, networks among its members or not."""
    from dvclive import Live

    live = Live(str(live_dir), dvcyaml=False, save_dvc_exp=False)
    for scores in folds.values():
        live.log_metric("val_loss", scores["val_loss"])
        live.log_metric("val_accuracy", scores["val_accuracy"])
        live.next_step()
    (live_dir / "metrics.json").unlink(missing_ok=True)  # the train stage writes the summary
