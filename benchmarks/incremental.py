"""Incremental reruns: add 10 clips to one corpus, change nothing, change a train-only param.

In a fresh copy of the project, on copies (hard links) of the corpora of
params.yaml's ``data.sources``: a full ``fetch@<corpus>`` per corpus +
``labels`` + ``featurize`` with an empty per-clip cache, then 10 new clips
(new words, new audio) in the TESS copy and the same stages again: the
featurize stage computes only the new clips (and their augmented copies) and
reads the rest from its per-clip cache. Then a no-op ``dvc repro featurize``
(featurize and every stage before it, nothing changed: the project copy has
no train stage outputs, so a bare ``dvc repro`` would train), and a
train-only param change: featurize must not run at all.

    python -m benchmarks incremental
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import soundfile as sf

from benchmarks.common import (
    DVC, REPO, SMOKE, isolated_env, link_tree, project_copy, save, set_params, smoke_or, timed,
)

NEW_CLIPS = smoke_or(10, 2)
PER_FOLDER = smoke_or(None, 2)  # files of each folder of a corpus linked (all, or a few in a smoke run)
GROWN = "tess"  # the corpus the new clips go to
SUMMARY = re.compile(r"in ([\d.]+) s: (\d+) computed, (\d+) from the cache")


def add_new_clips(corpus: Path, count: int) -> None:
    """``count`` new clips in a TESS copy: real clips at a lower level, under words TESS does not have."""
    clips = sorted(corpus.rglob("*.flac"))
    for number, source in enumerate(clips[:: len(clips) // count][:count]):
        speaker, _, emotion = source.stem.split("_")
        samples, sr = sf.read(source)
        sf.write(source.parent / f"{speaker}_newword{number}_{emotion}.flac", samples * 0.8, sr)


def repro(project: Path, env: dict, stage: str, single: bool = True) -> dict:
    """``dvc repro`` of ``stage`` (alone if ``single``): wall time, whether anything ran, the featurize summary."""
    seconds, output = timed([DVC, "repro", *(["--single-item"] if single else []), stage], project, env)
    figures = {"wall_s": seconds, "ran": "Running stage" in output}
    if match := SUMMARY.search(output):
        figures.update(stage_s=float(match[1]), computed=int(match[2]), cached=int(match[3]))
    return figures


def link_sources(project: Path, corpora: Path) -> list[str]:
    """Point the project's ``data.sources`` at hard-linked copies of the corpora in ``corpora``; their names."""
    from ser.params import load_params

    sources = load_params(REPO / "params.yaml").data.sources
    for name, source in sources.items():
        link_tree((REPO / source.source).resolve(), corpora / name, PER_FOLDER)
        set_params(project, **{f"data__sources__{name}__source": str(corpora / name)})
    return list(sources)


def main() -> dict:
    with tempfile.TemporaryDirectory() as workdir:
        workdir = Path(workdir)
        project = project_copy(workdir / "project")
        env = isolated_env(workdir / "home")
        corpora = link_sources(project, workdir / "corpora")
        set_params(project, featurize__cache=str(workdir / "feature-cache"))
        stages = [f"fetch@{name}" for name in corpora] + ["labels", "featurize"]
        full = {stage: repro(project, env, stage) for stage in stages}
        add_new_clips(workdir / "corpora" / GROWN, NEW_CLIPS)
        added = {stage: repro(project, env, stage) for stage in stages}
        no_op = repro(project, env, "featurize", single=False)
        set_params(project, train__epochs=7)
        _, status = timed([DVC, "status"], project, env)
        train_only = {"featurize": repro(project, env, "featurize"), "featurize_in_status": "featurize:" in status}
    before, after = full["featurize"], added["featurize"]
    result = {
        "smoke": SMOKE, "corpora": corpora, "new_clips": NEW_CLIPS, "grown_corpus": GROWN,
        "full": full, "after_adding": added,
        "featurize_time_ratio": after["wall_s"] / before["wall_s"],
        "stage_time_ratio": after["stage_s"] / before["stage_s"],
        "no_op_repro": no_op,
        "train_param_change": train_only,
    }
    print(f"full, {', '.join(corpora)}: featurize {before['wall_s']:.1f} s (`dvc repro`), {before['stage_s']:.1f} s in the stage, "
          f"{before['computed']} computed; " + ", ".join(f"{stage} {full[stage]['wall_s']:.1f} s" for stage in stages[:-1]))
    print(f"after adding {NEW_CLIPS} clips to {GROWN}: featurize {after['wall_s']:.1f} s ({result['featurize_time_ratio']:.1%} of full; "
          f"stage {after['stage_s']:.1f} s, {result['stage_time_ratio']:.1%}; target < 10%), {after['computed']} computed, "
          f"{after['cached']} from the cache; " + ", ".join(f"{stage} {added[stage]['wall_s']:.1f} s" for stage in stages[:-1]))
    print(f"no-op `dvc repro featurize`: {no_op['wall_s']:.1f} s (target <= 2 s), ran a stage: {no_op['ran']}")
    print(f"train-only param change: featurize ran: {train_only['featurize']['ran']}, "
          f"listed by dvc status: {train_only['featurize_in_status']} ({train_only['featurize']['wall_s']:.1f} s)")
    save("incremental", result)
    return result
