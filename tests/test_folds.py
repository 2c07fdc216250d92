"""Folds trained side by side (``ser.folds``): how many processes, results in job order from spawned
single-threaded workers, errors reaching the caller, and the same models however many train at once.

The functions run in the workers are module-level (spawn pickles them by reference and imports this
module there); each spawned worker pays a few seconds of imports (TensorFlow), so the runs are few
and shared by module-scoped fixtures.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import subprocess
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_info

from ser.folds import Task, log_fold_scores, parallel_workers, run_parallel, run_tasks

if TYPE_CHECKING:
    from ser.params import ModelParams, TrainParams
    from ser.training import Clips

CLASSES = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
SEED = 7


# --- how many processes --------------------------------------------------------------------------------------


@pytest.fixture
def eight_cores(monkeypatch) -> None:
    """This process may run on 8 CPU cores (``os.sched_getaffinity``), whatever the machine."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))


@pytest.mark.parametrize(("jobs", "workers"), [(3, 3), (8, 8), (20, 8), (1, 1)])
def test_zero_workers_is_one_per_core_at_most_one_per_job(eight_cores, jobs, workers):
    assert parallel_workers(0, jobs) == workers


def test_zero_workers_follows_the_cores_this_process_may_use():
    cores = len(os.sched_getaffinity(0))
    assert parallel_workers(0, 1000) == cores
    assert parallel_workers(0, cores + 1) == cores


@pytest.mark.parametrize(("asked", "jobs", "workers"), [(2, 5, 2), (4, 3, 3), (16, 16, 16), (32, 2, 2)])
def test_explicit_workers_are_capped_at_the_jobs(eight_cores, asked, jobs, workers):
    """An explicit count is taken as given (even above the cores), but never more processes than jobs."""
    assert parallel_workers(asked, jobs) == workers


@pytest.mark.parametrize("asked", [0, 1, 3])
@pytest.mark.parametrize("jobs", [0, 1])
def test_never_fewer_than_one_worker(eight_cores, asked, jobs):
    assert parallel_workers(asked, jobs) == 1


# --- run_parallel: order, processes, threads, errors ---------------------------------------------------------


_PARENT_STATE: dict[str, bool] = {"changed": False}
"""Changed in this process before the workers start: a forked worker would inherit the change, a spawned one
imports this module afresh."""


def _worker_report(number: int, label: str) -> dict[str, Any]:
    """Run in a worker: the job's arguments, the process (and whether it inherited this one's memory), and
    how many threads it computes on.

    Earlier jobs sleep longer, so that concurrent jobs finish out of order."""
    import tensorflow as tf

    time.sleep(0.05 * (5 - number))
    return {
        "job": (number, label),
        "pid": os.getpid(),
        "inherited": _PARENT_STATE["changed"],
        "blas_threads": [(info["internal_api"], info["num_threads"]) for info in threadpool_info()],
        "intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
    }


def _reciprocal(number: float) -> float:
    return 1 / number


REPORT_JOBS = [(number, f"job{number}") for number in range(5)]


@pytest.fixture(scope="module")
def parent_blas_threads() -> list[tuple[str, int]]:
    """This process's BLAS thread pools before any worker ran."""
    return [(info["internal_api"], info["num_threads"]) for info in threadpool_info()]


@pytest.fixture(scope="module")
def worker_reports(parent_blas_threads) -> list[dict[str, Any]]:
    """``_worker_report`` of five jobs on two workers."""
    _PARENT_STATE["changed"] = True
    return run_parallel(_worker_report, REPORT_JOBS, 2)


def test_results_come_back_in_job_order(worker_reports):
    assert [report["job"] for report in worker_reports] == REPORT_JOBS


def test_jobs_run_in_spawned_processes_at_most_as_many_as_asked(worker_reports):
    pids = {report["pid"] for report in worker_reports}
    assert os.getpid() not in pids
    assert not any(report["inherited"] for report in worker_reports)  # spawned, not forked
    assert 1 <= len(pids) <= 2
    assert multiprocessing.active_children() == []  # the workers are gone once the results are in


def test_each_worker_computes_on_one_thread(worker_reports, parent_blas_threads):
    for report in worker_reports:
        assert any(api in {"openblas", "mkl", "blis"} for api, _ in report["blas_threads"]), report["blas_threads"]
        assert {threads for _, threads in report["blas_threads"]} == {1}
        assert (report["intra_op"], report["inter_op"]) == (1, 1)
    # the workers' limits are theirs: this process computes on as many threads as before
    assert [(info["internal_api"], info["num_threads"]) for info in threadpool_info()] == parent_blas_threads


def test_no_jobs_start_no_process(monkeypatch):
    def start(self) -> None:
        raise AssertionError("a worker process was started")

    monkeypatch.setattr(multiprocessing.get_context("spawn").Process, "start", start)
    assert run_parallel(_reciprocal, [], 4) == []


def test_an_error_in_a_job_reaches_the_caller():
    with pytest.raises(ZeroDivisionError):
        run_parallel(_reciprocal, [(2.0,), (0.0,), (4.0,)], 1)


def test_each_job_keeps_all_its_arguments():
    """Jobs of different lengths, none of them empty-handed: no argument is lost or shifted."""
    assert run_parallel(range, [(5,), (2, 5), (1, 9, 3)], 1) == [range(5), range(2, 5), range(1, 9, 3)]


# --- run_tasks: tasks that wait for others -------------------------------------------------------------------


def _timed_job(name: str, seconds: float, *inputs: str) -> dict[str, Any]:
    """Sleep ``seconds``; when this ran (wall clock) and what it was given."""
    start = time.time()
    time.sleep(seconds)
    return {"name": name, "inputs": inputs, "start": start, "end": time.time()}


def _after_a_and_b(results: dict) -> tuple:
    return "c", 0.0, results["a"]["name"], results["b"]["name"]


@pytest.fixture(scope="module")
def scheduled() -> dict[str, dict[str, Any]]:
    """Four tasks on two workers: ``c`` waits for ``a`` and ``b`` and is listed first, ``d`` waits for none."""
    tasks = [
        Task("c", _after_a_and_b, after=("a", "b")),
        Task("a", ("a", 0.2)),
        Task("b", ("b", 1.5)),
        Task("d", ("d", 0.2)),
    ]
    return run_tasks(_timed_job, tasks, 2)


def test_a_task_waits_for_the_tasks_it_is_after_and_gets_their_results(scheduled):
    assert list(scheduled) == ["c", "a", "b", "d"]  # by key, in the order given
    assert scheduled["c"]["inputs"] == ("a", "b")
    assert scheduled["c"]["start"] >= max(scheduled["a"]["end"], scheduled["b"]["end"])


def test_a_free_worker_takes_the_first_ready_task(scheduled):
    """``c`` is first but not ready: ``a`` and ``b`` start, ``d`` takes ``a``'s worker while ``b`` still runs."""
    assert scheduled["d"]["start"] >= scheduled["a"]["end"]
    assert scheduled["d"]["end"] <= scheduled["b"]["end"]


def test_tasks_that_wait_for_unknown_or_each_other_are_refused():
    with pytest.raises(ValueError, match="not given"):
        run_tasks(_timed_job, [Task("a", ("a", 0.0), after=("z",))], 1)
    with pytest.raises(ValueError, match="wait for each other"):
        run_tasks(_timed_job, [Task("a", ("a", 0.0), after=("b",)), Task("b", ("b", 0.0), after=("a",))], 1)


# --- the same models however many train at once --------------------------------------------------------------


def _fold_clips() -> tuple[Clips, np.ndarray]:
    """Two corpora x two speakers x two texts x seven classes of tiny frame features whose level follows the
    class, one augmented copy of each, and the speaker fold ``fold1``'s parts: ``(clips, parts)``."""
    from ser.params import SplitParams
    from ser.split import fold_parts
    from ser.training import Clips

    rng = np.random.default_rng(3)
    speakers = {"tess": ("OAF", "YAF"), "ravdess": ("01", "02")}
    rows = [
        {"file": f"{c}/{s}_{t}_{e}.wav", "corpus": c, "speaker": f"{c}/{s}", "text": t, "emotion": e}
        for c, names in speakers.items() for s, t, e in itertools.product(names, ("back", "dog"), CLASSES)
    ]
    index = pd.DataFrame(rows)
    index["valid_frames"] = rng.integers(8, 17, len(index))
    levels = index["emotion"].map(CLASSES.index).to_numpy()
    features = (rng.normal(0, 1, (len(index), 16, 5)) + 0.3 * levels[:, None, None]).astype(np.float32)
    copy_values = features + rng.normal(0, 0.5, features.shape).astype(np.float32)
    copies = (copy_values, index.assign(source=np.arange(len(index)), copy=1))
    split = SplitParams(protocol="speaker", folds=2, train_corpora=[], test_fraction=0.2, validation_fraction=0.2, seed=42)
    return Clips(features, index, copies), fold_parts(index, split)["fold1"]


def _fold_params() -> tuple[ModelParams, TrainParams]:
    """A small ensemble as params.yaml's (a frame network and a logreg), with the random parts on: dropout,
    input noise, SpecAugment; corpus weights and calibration."""
    from ser.params import ModelParams, SpecAugmentParams, TrainParams

    model = ModelParams(
        arch="ensemble", members=["cnn1d", "logreg"], deltas=1, normalize="speaker", shrinkage=2.0, lstm_units=8,
        dense_units=[8], dropout=0.3, filters=8, kernel_size=3, conv_layers=2, rnn_units=4, input_noise=0.1, logreg_c=0.1,
        spec_augment=SpecAugmentParams(time_masks=1, time_width=4, feature_masks=1, feature_width=3),
    )
    train = TrainParams(epochs=2, batch_size=8, learning_rate=0.01, early_stopping=0, reduce_lr=0, seed=SEED,
                        balance="corpus", calibrate=True)
    return model, train


def _train_tiny_fold(seed: int) -> dict[str, Any]:
    """Run in this process or a worker: train ``_fold_params``' ensemble on ``_fold_clips`` (train seed
    ``seed``); each member's validation probabilities and ONNX graph (bytes), the temperature and summary."""
    from ser.training import train_fold

    clips, parts = _fold_clips()
    model, train = _fold_params()
    trained = train_fold(clips, parts, model, train.model_copy(update={"seed": seed}), CLASSES)
    return {
        "members": {m.params.arch: (m.val_probabilities, m.graph.SerializeToString()) for m in trained.members},
        "temperature": trained.temperature,
        "summary": trained.summary,
        "pid": os.getpid(),
    }


def _graph_outputs(fold: dict[str, Any]) -> dict[str, np.ndarray]:
    """Each member's ONNX graph run (here, on one thread) on the fold's validation inputs."""
    import onnxruntime as ort

    from ser.inputs import input_name
    from ser.training import fold_data

    clips, parts = _fold_clips()
    model, _ = _fold_params()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    outputs = {}
    for member in model.member_params():
        session = ort.InferenceSession(fold["members"][member.arch][1], options, providers=["CPUExecutionProvider"])
        val_x = fold_data(clips, parts, member, CLASSES).val_x
        outputs[member.arch] = session.run(None, {input_name(member): val_x})[0]
    return outputs


@pytest.fixture(scope="module")
def parallel_folds() -> list[dict[str, Any]]:
    """The fold trained on two single-threaded workers: seed ``SEED`` and another seed at once, then ``SEED``
    again in a worker that trained a model before."""
    return run_parallel(_train_tiny_fold, [(SEED,), (SEED + 1,), (SEED,)], 2)


def test_the_models_are_the_same_however_many_train_at_once(parallel_folds):
    """stages/train.py's promise: a fold's model does not depend on how many train beside it (each worker
    computes on one thread), nor on what its worker trained before."""
    first, other_seed, again = parallel_folds
    assert os.getpid() not in {fold["pid"] for fold in parallel_folds}
    assert again["temperature"] == first["temperature"] and again["summary"] == first["summary"]
    for arch, (probabilities, _) in first["members"].items():
        np.testing.assert_array_equal(again["members"][arch][0], probabilities, err_msg=arch)
    served, served_again = _graph_outputs(first), _graph_outputs(again)  # the saved graphs too
    for arch, outputs in served.items():
        np.testing.assert_array_equal(served_again[arch], outputs, err_msg=arch)
    # the comparison can tell models apart: another seed trains another network
    assert np.abs(other_seed["members"]["cnn1d"][0] - first["members"]["cnn1d"][0]).max() > 1e-3


def test_one_thread_or_several_train_the_same_model_up_to_rounding(parallel_folds):
    """Not bit for bit: TensorFlow's CPU kernels split sums by the size of their thread pool, so a network
    trained on one thread and on several differs in the last bits (the cnn1d's probabilities by a few
    1e-8 here after two epochs, on two cores); op determinism promises the same results on the same
    number of threads only. That is why every worker, however many there are, computes on one thread."""
    here = _train_tiny_fold(SEED)
    there = parallel_folds[0]
    assert here["pid"] != there["pid"]
    assert here["summary"].keys() == there["summary"].keys()
    for arch, (probabilities, _) in here["members"].items():
        np.testing.assert_allclose(probabilities, there["members"][arch][0], rtol=0, atol=1e-5, err_msg=arch)
    assert here["temperature"] == pytest.approx(there["temperature"], abs=1e-3)


def test_fold_scores_are_logged_a_step_per_fold(tmp_path, monkeypatch):
    """Every model gets a plot of its folds' validation scores, networks among its members or not."""
    monkeypatch.chdir(tmp_path)
    identity = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    for command in (["git", "init", "-q"], ["git", "commit", "-q", "--allow-empty", "-m", "init"]):  # dvclive reads the repository
        subprocess.run(command, check=True, env={**os.environ, **identity})
    folds = {"fold1": {"val_loss": 1.25, "val_accuracy": 0.5}, "fold2": {"val_loss": 0.75, "val_accuracy": 0.625}}
    log_fold_scores(folds, tmp_path / "live")
    metrics = tmp_path / "live" / "plots" / "metrics"
    assert (metrics / "val_loss.tsv").read_text().splitlines() == ["step\tval_loss", "0\t1.25", "1\t0.75"]
    assert (metrics / "val_accuracy.tsv").read_text().splitlines() == ["step\tval_accuracy", "0\t0.5", "1\t0.625"]
    assert not (tmp_path / "live" / "metrics.json").exists()
