"""Functionals: openSMILE functionals in the featurize stage against openSMILE's own loop; memory; the per-clip cache.

On a seeded sample of clips of each corpus of data/manifest.csv:

- speed: openSMILE's one-file-at-a-time loop (for each file, for each set of
  ``features.functionals``, ``opensmile.Smile(..., sampling_rate=audio.sr,
  resample=True).process_file(path, start=offset, end=offset + duration)``,
  the Smile objects built before timing) against the stage's code
  (``featurize_corpus`` with params.yaml's audio and features: the frame
  features and the functionals, no augmented copies, no cache) on 2 workers.
  Both warm: each runs once on the same files untimed, then three times timed
  (the median counts);
- memory: the stage (2 workers, no cache) on a smaller sample replicated 1x,
  4x and 16x (replicas under new file names, hard links): peak memory should
  stay flat, as audio is streamed and results are appended to disk;
- cache: the stage twice on the sample with a fresh per-clip cache: the second
  run should compute nothing.

Each measured run is a process of its own, so that its peak memory is its own.

    python -m benchmarks functionals    # needs data/raw and data/manifest.csv: `dvc pull` or `dvc repro labels`
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from benchmarks.common import (
    RAW_DIR, SMOKE, featurize_stage, measure, read_manifest, replicate, run_json, sample_clips, save, smoke_or, throughput,
)

SAMPLE = smoke_or(100, 3)  # clips per corpus, speed and cache
BASE = smoke_or(50, 1)  # clips per corpus replicated for memory
FACTORS = (1, 4, 16)
REPEATS = smoke_or(3, 1)  # timed runs of each speed side; the median counts
WORKERS = 2
SEED = 0


def opensmile_loop(per_corpus: int) -> None:
    """openSMILE's own loop over the sample, for every set of ``features.functionals`` (the baseline),
    in this process, warm; print its figures as JSON."""
    import opensmile

    from ser.functionals import FEATURE_SETS
    from ser.params import load_params

    params = load_params()
    audio = params.audio
    paths = [RAW_DIR / file for file in sample_clips(read_manifest(), per_corpus, SEED)["file"]]
    extractors = [
        opensmile.Smile(
            feature_set=getattr(opensmile.FeatureSet, FEATURE_SETS[kind]), feature_level=opensmile.FeatureLevel.Functionals,
            sampling_rate=audio.sr, resample=True,
        )
        for kind in params.features.functionals
    ]

    def run() -> None:
        for path in paths:
            for smile in extractors:
                smile.process_file(str(path), start=audio.offset, end=audio.offset + audio.duration)

    _, seconds, peak = measure(run, warm=True, repeats=REPEATS)
    print(json.dumps(throughput(len(paths), seconds, peak, sets=list(params.features.functionals))))


def stage(per_corpus: int, factor: int, cache: str, warm: bool) -> None:
    """The stage's code on ``factor`` replicas of the sample in this process (``warm``: run once
    untimed first); print its figures as JSON."""
    with tempfile.TemporaryDirectory() as workdir:
        manifest = replicate(sample_clips(read_manifest(), per_corpus, SEED), factor, Path(workdir) / "raw")
        summary, seconds, peak = measure(
            lambda: featurize_stage(manifest, Path(workdir) / "raw", Path(workdir) / "out", WORKERS, cache=cache), warm=warm,
            repeats=REPEATS if warm else 1,
        )
    print(json.dumps(throughput(len(manifest), seconds, peak, factor=factor, computed=summary.computed, cached=summary.cached)))


def stage_json(per_corpus: int, factor: int = 1, cache: str = "", warm: bool = False) -> dict:
    """:func:`stage` in a fresh process."""
    flags = ["--warm"] if warm else []
    return run_json("benchmarks.functionals", "--per-corpus", str(per_corpus), "--factor", str(factor), "--cache", cache, *flags)


def main() -> dict:
    baseline = run_json("benchmarks.functionals", "--opensmile", "--per-corpus", str(SAMPLE))
    ours = stage_json(SAMPLE, warm=True)
    speedup = baseline["seconds"] / ours["seconds"]
    print(f"{ours['clips']} clips ({SAMPLE} per corpus), {' and '.join(baseline['sets'])}, warm:")
    for name, run in (("openSMILE's loop", baseline), (f"the stage, {WORKERS} workers", ours)):
        print(f"  {name:20s} {run['seconds']:6.1f} s  {run['clips_per_s']:5.1f} clips/s  peak RSS {run['peak_rss_mib']:4.0f} MiB")
    print(f"  speedup {speedup:.2f}x (target >= 1.8x)")
    sizes = [stage_json(BASE, factor) for factor in FACTORS]
    for size in sizes:
        size.update(time_ratio=size["seconds"] / sizes[0]["seconds"], rss_ratio=size["peak_rss_mib"] / sizes[0]["peak_rss_mib"])
        print(f"{size['factor']:3d}x {size['clips']:5d} clips {size['seconds']:6.1f} s ({size['time_ratio']:5.2f}x time)  "
              f"{size['clips_per_s']:5.1f} clips/s  peak RSS {size['peak_rss_mib']:4.0f} MiB ({size['rss_ratio']:4.2f}x; target within 1.2x)")
    with tempfile.TemporaryDirectory() as cache:
        first, rerun = stage_json(SAMPLE, cache=cache), stage_json(SAMPLE, cache=cache)
    print(f"fresh cache: {first['seconds']:.1f} s, {first['computed']} computed; rerun: {rerun['seconds']:.1f} s, "
          f"{rerun['computed']} computed, {rerun['cached']} from the cache (target: all)")
    result = {
        "smoke": SMOKE, "workers": WORKERS, "per_corpus": SAMPLE, "sets": baseline["sets"],
        "speed": {"opensmile": baseline, "stage": ours, "speedup": speedup},
        "memory": {"per_corpus": BASE, "sizes": sizes},
        "cache": {"first": first, "rerun": rerun, "rerun_all_cached": rerun["computed"] == 0 and rerun["cached"] == rerun["clips"]},
    }
    save("functionals", result)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--opensmile", action="store_true", help="run openSMILE's own loop (the baseline)")
    parser.add_argument("--per-corpus", type=int, default=SAMPLE)
    parser.add_argument("--factor", type=int, default=1)
    parser.add_argument("--cache", default="")
    parser.add_argument("--warm", action="store_true")
    arguments = parser.parse_args()
    if arguments.opensmile:
        opensmile_loop(arguments.per_corpus)
    else:
        stage(arguments.per_corpus, arguments.factor, arguments.cache, arguments.warm)
