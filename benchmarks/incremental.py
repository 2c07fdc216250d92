"""Incremental reruns: add 10 clips to the corpus, change a train-only param, change nothing.

In a fresh copy of the project whose ``data.sources`` is TESS alone, on a copy
of TESS (hard links): a full ``fetch@tess`` + ``labels`` + ``featurize`` with an
empty cache, then 10 new clips (new words, new audio) in the source and the
three stages again: the featurize stage computes only the new clips and reads
the rest from its per-clip cache. Then a train-only param changes: featurize
must not run at all.

    python -m benchmarks incremental
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import soundfile as sf

from benchmarks.common import (
    CORPUS, DVC, isolated_env, link_or_copy, project_copy, save, set_params, tess_only_sources, timed,
)

NEW_CLIPS = 10
SUMMARY = re.compile(r"in ([\d.]+) s: (\d+) computed, (\d+) from the cache")
STAGES = ("fetch@tess", "labels", "featurize")


def link_corpus(target: Path) -> None:
    for path in CORPUS.rglob("*"):
        if path.is_file():
            link_or_copy(path, target / path.relative_to(CORPUS))


def add_new_clips(corpus: Path, count: int) -> None:
    """``count`` new clips: real clips at a lower level, under words TESS does not have."""
    sources = sorted(corpus.rglob("*.flac"))[:: len(list(corpus.rglob("*.flac"))) // count][:count]
    for number, source in enumerate(sources):
        speaker, _, emotion = source.stem.split("_")
        samples, sr = sf.read(source)
        sf.write(source.parent / f"{speaker}_newword{number}_{emotion}.flac", samples * 0.8, sr)


def repro(project: Path, env: dict, stage: str) -> dict:
    seconds, output = timed([DVC, "repro", "--single-item", stage], project, env)
    figures = {"wall_s": seconds, "ran": f"Running stage '{stage}'" in output}
    if match := SUMMARY.search(output):
        figures.update(stage_s=float(match[1]), computed=int(match[2]), cached=int(match[3]))
    return figures


def main() -> dict:
    with tempfile.TemporaryDirectory() as workdir:
        workdir = Path(workdir)
        project, corpus = project_copy(workdir / "project"), workdir / "corpus"
        link_corpus(corpus)
        env = isolated_env(workdir / "home")
        set_params(project, data__sources=tess_only_sources(corpus), featurize__cache=str(workdir / "feature-cache"))
        full = {stage: repro(project, env, stage) for stage in STAGES}
        add_new_clips(corpus, NEW_CLIPS)
        added = {stage: repro(project, env, stage) for stage in STAGES}
        set_params(project, train__epochs=7)
        _, status = timed([DVC, "status"], project, env)
        train_only = {"featurize": repro(project, env, "featurize"), "featurize_in_status": "featurize:" in status}
    result = {
        "new_clips": NEW_CLIPS,
        "full": full,
        "after_adding": added,
        "featurize_time_ratio": added["featurize"]["wall_s"] / full["featurize"]["wall_s"],
        "stage_time_ratio": added["featurize"]["stage_s"] / full["featurize"]["stage_s"],
        "train_param_change": train_only,
    }
    print(f"full featurize: {full['featurize']['wall_s']:.1f} s (`dvc repro`), {full['featurize']['stage_s']:.1f} s in the stage, "
          f"{full['featurize']['computed']} computed; fetch {full['fetch@tess']['wall_s']:.1f} s, "
          f"labels {full['labels']['wall_s']:.1f} s")
    print(f"after adding {NEW_CLIPS} clips: featurize {added['featurize']['wall_s']:.1f} s "
          f"({result['featurize_time_ratio']:.1%} of full; stage {added['featurize']['stage_s']:.1f} s, "
          f"{result['stage_time_ratio']:.1%}), {added['featurize']['computed']} computed, "
          f"{added['featurize']['cached']} from the cache; fetch {added['fetch@tess']['wall_s']:.1f} s, "
          f"labels {added['labels']['wall_s']:.1f} s")
    print(f"train-only param change: featurize ran: {train_only['featurize']['ran']}, "
          f"listed by dvc status: {train_only['featurize_in_status']} ({train_only['featurize']['wall_s']:.1f} s)")
    save("incremental", result)
    return result
