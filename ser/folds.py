"""Training fold by fold: the folds' models side by side, and what the deployable model takes from them.

Light on imports (no TensorFlow): the train stage's main process only hands out
folds and reads their summaries.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from threadpoolctl import threadpool_limits

from ser.determinism import pinned_environment
from ser.evaluation import rounded
from ser.params import TrainParams


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


def parallel_workers(workers: int, jobs: int) -> int:
    """Processes for ``jobs`` models: ``runtime.train.workers`` (0: one per CPU core), at most one per job."""
    return max(1, min(workers or len(os.sched_getaffinity(0)), jobs))


def run_parallel(function: Callable[..., Any], jobs: Sequence[tuple], workers: int) -> list:
    """``function(*job)`` for each job, in order, on ``workers`` fresh processes computing on one thread each.

    ``function`` must be importable (a module-level function): it runs in spawned processes,
    which load numpy (and OpenBLAS) before their initializer runs: they inherit the kernel pins
    of :func:`ser.determinism.pinned_environment` instead.
    """
    if not jobs:
        return []
    context = multiprocessing.get_context("spawn")  # TensorFlow's threads do not survive a fork
    with pinned_environment(), ProcessPoolExecutor(workers, mp_context=context, initializer=single_threaded) as pool:
        futures = [pool.submit(function, *job) for job in jobs]  # workers start here, inheriting the pins
        return [future.result() for future in futures]


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
