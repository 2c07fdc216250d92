"""Rewrite the README's generated tables from the committed reports: ``python -m benchmarks.readme``.

The one command that makes README.md current: the benchmark table (below), then the results
tables and reports/experiments.md (:mod:`benchmarks.results`) and the table of what a change
reruns (from dvc.yaml: :func:`ser.pipeline.rerun_rows`); ``--benchmarks-only`` skips all but the first.

Replaces the lines between ``<!-- benchmarks:begin -->`` and
``<!-- benchmarks:end -->`` of README.md with a table of one or more rows for
each benchmark whose reports/benchmarks/NAME.json is there (in the order the
benchmarks run), each figure formatted from its JSON, and the target, met or
not, where the benchmark has one. Fails if README.md lacks the two lines, or if
a JSON is not in its benchmark's current format (rerun that benchmark).

    python -m benchmarks.readme [--readme README.md] [--results reports/benchmarks] [--benchmarks-only]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable

import yaml

from benchmarks import results
from benchmarks.common import REPO, RESULTS
from ser.pipeline import rerun_rows

BEGIN, END = "<!-- benchmarks:begin -->", "<!-- benchmarks:end -->"
HEADER = ("benchmark", "baseline (same run)", "ours", "ratio / target")
RERUNS = ("<!-- reruns:begin -->", "<!-- reruns:end -->")
RERUNS_HEADER = ("a change to", "reruns", "then reruns, if their outputs change")
Row = tuple[str, str, str, str]


def met(ok: bool) -> str:
    return "met" if ok else "**not met**"


def yes(flag: bool) -> str:
    return "yes" if flag else "no"


def percent(share: float | None) -> str:
    return "n/a" if share is None else f"{share:.1%}"


def run(figures: dict) -> str:
    """A measured side: seconds, clips/s, peak memory."""
    return f"{figures['seconds']:.1f} s, {figures['clips_per_s']:.0f} clips/s, peak RSS {figures['peak_rss_mib']:.0f} MiB"


def latency(figures: dict) -> str:
    return f"p50 {figures['p50_ms']:.1f} ms, p95 {figures['p95_ms']:.1f} ms"


def featurize_rows(result: dict) -> list[Row]:
    rows = []
    for name, workload in result["workloads"].items():
        sides = workload["sides"]
        tutorial, one, cores = sides["tutorial"], sides["pipeline, 1 worker"], sides["pipeline, all cores"]
        difference = max(one["max_abs_difference"], cores["max_abs_difference"])
        relative = max(one["max_relative_difference"], cores["max_relative_difference"])
        rows.append((
            f"**featurize** {name}: {workload['clips']} clips, warm (`featurize.py`)",
            f"tutorial loop (`librosa.load` -> `mfcc(n_mfcc=40)` -> mean, file by file): {run(tutorial)}",
            f"featurize stage code, all cores: {run(cores)}; 1 worker: {run(one)}",
            f"**{cores['speedup']:.2f}x** all cores (1 worker {one['speedup']:.2f}x); target >= 3x: {met(cores['speedup'] >= 3)}; "
            f"features equal within {difference:.1e} on values up to {workload['largest_abs_value']:.0f} "
            f"({relative:.1e} relative; target 1e-4: {met(relative <= 1e-4)})",
        ))
    return rows


def functionals_rows(result: dict) -> list[Row]:
    speed, sizes, cache = result["speed"], result["memory"]["sizes"], result["cache"]
    base, *larger = sizes
    factors = " / ".join(f"{size['factor']}x" for size in sizes)
    ratios = " / ".join(f"{size['rss_ratio']:.2f}x" for size in larger)
    flat = all(abs(size["rss_ratio"] - 1) <= 0.2 for size in sizes)
    return [
        (
            f"**functionals** {' + '.join(result['sets'])}: {speed['stage']['clips']} clips "
            f"({result['per_corpus']} per corpus), warm (`functionals.py`)",
            f"openSMILE's loop (`Smile.process_file`, one file at a time): {run(speed['opensmile'])}",
            f"featurize stage code (frame features too), {result['workers']} workers: {run(speed['stage'])}",
            f"**{speed['speedup']:.2f}x**; target >= 1.8x: {met(speed['speedup'] >= 1.8)}",
        ),
        (
            f"**memory**: the stage on {factors} a sample ({result['memory']['per_corpus']} clips per corpus, "
            "replicas under new names)",
            f"1x: {base['clips']} clips, {run(base)}",
            "; ".join(f"{size['factor']}x: {size['clips']} clips, {run(size)}" for size in larger),
            f"peak memory {ratios} of 1x; target within 20%: {met(flat)}",
        ),
        (
            f"**per-clip cache**: the stage twice on the {speed['stage']['clips']} clips, a fresh cache",
            f"first run: {cache['first']['seconds']:.1f} s, {cache['first']['computed']} computed",
            f"rerun: {cache['rerun']['seconds']:.1f} s, {cache['rerun']['computed']} computed, "
            f"{cache['rerun']['cached']} from the cache",
            f"all from the cache: {met(cache['rerun_all_cached'])}",
        ),
    ]


def incremental_rows(result: dict) -> list[Row]:
    full, added, no_op = result["full"]["featurize"], result["after_adding"]["featurize"], result["no_op_repro"]
    train_only = result["train_param_change"]
    return [
        (
            f"**incremental**: {result['new_clips']} new clips in {result['grown_corpus']} "
            f"({', '.join(result['corpora'])}), then `dvc repro` (`incremental.py`)",
            f"full featurize, empty cache: {full['stage_s']:.1f} s in the stage ({full['wall_s']:.1f} s as `dvc repro`), "
            f"{full['computed']} clips and copies computed",
            f"{added['computed']} computed, {added['cached']} from the cache: {added['stage_s']:.1f} s in the stage "
            f"({added['wall_s']:.1f} s as `dvc repro`)",
            f"**{result['stage_time_ratio']:.1%}** of the full stage ({result['featurize_time_ratio']:.1%} as `dvc repro`); "
            f"target < 10%: {met(result['stage_time_ratio'] < 0.1)}",
        ),
        (
            "**incremental**: nothing changes, then a train-only param",
            "",
            f"no-op `dvc repro featurize` {no_op['wall_s']:.1f} s (ran a stage: {yes(no_op['ran'])}); after a train-only change "
            f"`dvc status` lists featurize: {yes(train_only['featurize_in_status'])}, "
            f"featurize ran: {yes(train_only['featurize']['ran'])}",
            f"no-op target <= 2 s: {met(no_op['wall_s'] <= 2 and not no_op['ran'])}",
        ),
    ]


def train_rows(result: dict) -> list[Row]:
    def side(figures: dict) -> str:
        folds = "; ".join(
            f"{fold} {n['seconds_to_model']:.0f} s ({percent(n['accuracy'])})" for fold, n in figures["folds"].items()
        )
        return f"**{figures['seconds']:.0f} s** on {figures['workers']} process(es): {folds}"

    ours = result["ours"]["folds"].values()
    same = all(figures["accuracy"] == figures["committed_accuracy"] for figures in ours)
    return [(
        f"**train** the default model's {len(result['ours']['folds'])} folds ({' + '.join(result['members'])}; `train.py`)",
        f"one fold after another, every core: {side(result['baseline'])}",
        f"side by side, one thread each: {side(result['ours'])}",
        f"**{result['speedup']:.2f}x**; fold accuracies equal to the committed run's: {yes(same)}",
    )]


def e2e_rows(result: dict) -> list[Row]:
    stages = ", ".join(f"{stage} {seconds:.1f} s" for stage, seconds in result["stages_s"].items())
    return [
        (
            "**end to end**: `make setup` + the pipeline in a clean clone, empty DVC and feature caches (`e2e.py`)",
            "",
            f"`make setup` {result['setup_s']:.0f} s; {stages}; pipeline {result['pipeline_s']:.0f} s; "
            f"**total {result['total_s'] / 60:.1f} min**; metrics equal the committed ones: {yes(result['metrics_equal_committed'])}",
            f"target <= {result['target_s'] / 60:.0f} min including setup: {met(result['total_s'] <= result['target_s'])}",
        ),
        (
            "**no-op** `dvc repro` in the clone, then `dvc status`",
            "",
            f"{result['no_op_repro_s']:.1f} s (ran nothing: {yes(result['no_op_ran_nothing'])}); `dvc status` "
            f"{result['status_s']:.1f} s (clean: {yes(result['status_clean'])})",
            f"target <= 2 s: {met(result['no_op_repro_s'] <= 2 and result['no_op_ran_nothing'])}",
        ),
        (
            "**peak memory** of each stage in that run (`dvc` and the stage's worker processes together: sum of RSS; "
            "in brackets the sum of PSS, pages the processes share counted once)",
            "",
            ", ".join(f"{stage} {mib / 1024:.2f} GiB" + (f" ({pss[stage] / 1024:.2f})" if (pss := result.get("stages_peak_pss_mib")) else "")
                      for stage, mib in result["stages_peak_rss_mib"].items()),
            f"target <= {result['memory_target_mib'] / 1024:.0f} GiB each: {met(result['memory_within_target'])}",
        ),
    ]


def serving_rows(result: dict) -> list[Row]:
    cold, latencies, folder = result["cold_start"], result["latency"], result["folder"]
    gap = latencies["max_probability_gap"]
    return [
        (
            f"**cold start**: `ser predict one.flac` in a fresh process, median of {result['runs']} (`serving.py`)",
            f"a bare `python -c \"import tensorflow\"`: {cold['import_tensorflow_s']:.2f} s "
            f"(the same steps with the Keras networks: {cold['keras_s']:.2f} s)",
            f"ONNX through onnxruntime: **{cold['ser_predict_s']:.2f} s**",
            f"**{cold['ratio_to_import_tensorflow']:.2f}x** `import tensorflow`; target <= 0.5x: "
            f"{met(cold['ratio_to_import_tensorflow'] <= 0.5)}",
        ),
        (
            f"**per-clip latency**, warm model, one clip at a time, {result['clips']} clips",
            f"Keras ({', '.join(latencies['keras_networks'])}): {latency(latencies['keras'])}",
            f"ONNX: {latency(latencies['onnx'])}; `ser predict` on {result['clips']} files: {folder['seconds']:.1f} s, start-up included",
            f"{latencies['keras']['p50_ms'] / latencies['onnx']['p50_ms']:.1f}x at p50; "
            + (f"probabilities equal within {gap:.1e}" if gap is not None else "probabilities not compared (a member has no Keras form)"),
        ),
    ]


def load_rows(result: dict) -> list[Row]:
    one, two = result["one_process"], result["two_processes"]
    baseline = one["1_clients"]
    clients = next(key for key in one if key.endswith("_clients") and key != "1_clients")
    many, many_two = one[clients], two[clients]

    def served(figures: dict) -> str:
        return f"{figures['requests_per_s']:.1f} requests/s, p50 {figures['p50_ms']:.0f} ms, p95 {figures['p95_ms']:.0f} ms"

    failed = baseline["failed"] + many["failed"] + many_two["failed"]
    return [(
        f"**load**: `ser serve` on 127.0.0.1, {baseline['requests']} uploads of real clips (`load.py`)",
        f"1 process, 1 client: {served(baseline)}",
        f"{many['clients']} concurrent clients: {served(many)} (1 process, {one['server_rss_mib']:.0f} MiB); "
        f"`--workers 2`: {served(many_two)} ({two['server_rss_mib']:.0f} MiB); {failed} failed",
        f"{many['requests_per_s'] / baseline['requests_per_s']:.2f}x / {many_two['requests_per_s'] / baseline['requests_per_s']:.2f}x "
        f"the single client's throughput; 0 failed: {met(failed == 0)}",
    )]


def pressure_rows(result: dict) -> list[Row]:
    unlimited, limited, soak = result["unlimited"], result["limited"], result["soak"]
    answered = all(set(burst["statuses"]) <= {"200", "503"} for burst in (unlimited, limited))
    timeout = result["body_timeout_s"]
    cut_offs = (result["stalled"], result["trickling"])

    def burst(figures: dict) -> str:
        statuses = ", ".join(f"{count} x {status}" for status, count in figures["statuses"].items())
        return f"{statuses}; peak RSS {figures['peak_rss_mib']:.0f} MiB, +{figures['growth_mib']:.0f} MiB over idle"

    def cut(figures: dict) -> str:
        return f"{figures['seconds']:.2f} s ({figures['status'] or 'connection closed'})"

    return [
        (
            f"**pressure**: {result['uploads']} clients post a {result['upload_mb']:.0f} MB WAV at once "
            f"(limit {result['max_upload_mb']:g} MB; `pressure.py`)",
            f"no limit on uploads in flight: {burst(unlimited)}",
            f"{result['limit']} in flight: {burst(limited)}",
            f"**{limited['growth_mib'] / unlimited['growth_mib']:.2f}x** the memory growth; every client answered "
            f"200 or 503: {met(answered)}",
        ),
        (
            f"**slow clients**: headers and part of a body, then nothing / a byte every {result['trickle_s']:g} s",
            "",
            f"cut off after {cut(result['stalled'])} / {cut(result['trickling'])}; body timeout {timeout:g} s",
            f"within 1 s of the timeout: {met(all(timeout - 0.05 <= c['seconds'] <= timeout + 1 for c in cut_offs))}",
        ),
        (
            f"**soak**: {soak['requests']} requests from {soak['clients']} clients (the limit), uploads of real clips "
            "and health checks",
            "",
            f"{soak['requests_per_s']:.1f} requests/s, p50 {soak['p50_ms']:.0f} ms, p95 {soak['p95_ms']:.0f} ms, "
            f"p99 {soak['p99_ms']:.0f} ms; server RSS {soak['rss_before_mib']:.0f} -> {soak['rss_after_mib']:.0f} MiB; "
            f"{soak['failed']} failed",
            f"0 failed: {met(soak['failed'] == 0)}",
        ),
    ]


FORMATS: dict[str, Callable[[dict], list[Row]]] = {  # in the order the benchmarks run
    "featurize": featurize_rows, "functionals": functionals_rows, "incremental": incremental_rows, "train": train_rows,
    "e2e": e2e_rows, "serving": serving_rows, "load": load_rows, "pressure": pressure_rows,
}


def rows(results: Path) -> list[Row]:
    """The table's rows from every NAME.json of ``results`` that a benchmark writes."""
    table = []
    for name, format_rows in FORMATS.items():
        path = results / f"{name}.json"
        if not path.exists():
            continue
        result = json.loads(path.read_text())
        try:
            found = format_rows(result)
        except (KeyError, TypeError, StopIteration) as exc:
            raise SystemExit(f"{path}: not what benchmarks/{name}.py writes now ({exc!r}): rerun `python -m benchmarks {name}`") from exc
        table.extend([(f"{row[0]} *(smoke run)*", *row[1:]) for row in found] if result.get("smoke") else found)
    if not table:
        raise SystemExit(f"{results}: no benchmark results ({', '.join(f'{name}.json' for name in FORMATS)})")
    return table


def markdown(table: list[Row]) -> str:
    """The benchmark table."""
    return results.markdown(HEADER, table)


def rerun_table(dvc_yaml: dict, params: dict) -> str:
    """The table of what a change reruns (:func:`ser.pipeline.rerun_rows`)."""
    def names(stages: list[str]) -> str:
        return ", ".join(f"`{stage}`" for stage in stages) or "none"

    rows = [(what, names(stages), names(after) if stages else "") for what, stages, after in rerun_rows(dvc_yaml, params)]
    return results.markdown(RERUNS_HEADER, rows, empty="  ")


def current_rerun_table(root: Path = REPO) -> str:
    """The table of reruns that ``root``'s dvc.yaml and params.yaml give."""
    return rerun_table(*(yaml.safe_load((root / name).read_text()) for name in ("dvc.yaml", "params.yaml")))


def marker_lines(lines: list[str], readme: Path | str = "the README", begin: str = BEGIN, end: str = END) -> tuple[int, int]:
    """The numbers of the ``begin`` and ``end`` lines of ``readme`` (the benchmark table's by default);
    fails unless there is one of each, in that order."""
    found = {mark: [number for number, line in enumerate(lines) if line.strip() == mark] for mark in (begin, end)}
    if len(found[begin]) != 1 or len(found[end]) != 1 or found[begin][0] > found[end][0]:
        raise SystemExit(f"{readme} needs one line {begin} and, after it, one line {end} around a generated table "
                         f"(found {len(found[begin])} and {len(found[end])})")
    return found[begin][0], found[end][0]


def replace_block(text: str, block: str, begin: str = BEGIN, end: str = END) -> str:
    """``text`` with the lines between the ``begin`` and ``end`` lines (the benchmark table's by default)
    replaced by ``block``."""
    lines = text.splitlines(keepends=True)
    first, last = marker_lines(lines, begin=begin, end=end)
    return "".join(lines[: first + 1]) + block + "".join(lines[last:])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.readme", description=__doc__.splitlines()[0])
    parser.add_argument("--readme", type=Path, default=REPO / "README.md")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where the benchmarks' NAME.json are")
    parser.add_argument("--benchmarks-only", action="store_true",
                        help="leave the results tables and reports/experiments.md alone")
    arguments = parser.parse_args(argv)
    text = arguments.readme.read_text()
    marker_lines(text.splitlines(), arguments.readme)  # before reading any result: a README without the lines fails first
    for path in sorted(arguments.results.glob("*.json")):
        if path.stem not in FORMATS:
            print(f"{path}: no benchmark writes it now; left out", file=sys.stderr)
    table = rows(arguments.results)
    arguments.readme.write_text(replace_block(text, markdown(table)))
    print(f"{arguments.readme}: {len(table)} rows from {arguments.results}")
    if not arguments.benchmarks_only:
        print(results.write(arguments.readme))
        arguments.readme.write_text(replace_block(arguments.readme.read_text(), current_rerun_table(), *RERUNS))
        print(f"{arguments.readme}: the table of reruns from dvc.yaml and params.yaml")


if __name__ == "__main__":
    main()
