"""Shared helpers of the benchmarks: timed commands, peak memory, clip samples, project copies, results.

``SER_BENCH_SMOKE=1`` in the environment (read here, and so by every benchmark
and the processes it starts) shrinks each benchmark's workload to a few clips
and runs, to check quickly that it works; its figures mean nothing, and its
results go to a temporary folder instead of reports/benchmarks.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, TypeVar

import psutil

from ser import paths

if TYPE_CHECKING:
    import pandas as pd

    from ser.featurize import FeaturizeSummary

T = TypeVar("T")
SMOKE = os.environ.get("SER_BENCH_SMOKE", "") not in ("", "0")
"""A smoke run: tiny workloads (``SER_BENCH_SMOKE=1``)."""
REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(tempfile.gettempdir()) / "ser-benchmarks-smoke" if SMOKE else REPO / paths.BENCHMARK_DIR
"""Where each benchmark writes NAME.json: a smoke run never overwrites the measured figures."""
RAW_DIR = REPO / paths.RAW_DIR
MANIFEST = REPO / paths.MANIFEST
"""The labels stage's manifest of all corpora: ``file`` (under ``RAW_DIR``), ``corpus``, ``speaker``, ``emotion``..."""
CORPUS = (REPO / ".." / "shared" / "data" / "tess").resolve()
"""The real TESS corpus, read by the benchmarks that write or send clips."""
DVC = str(Path(sys.executable).with_name("dvc"))  # the dvc of this environment
CHROMIUM = Path("/usr/bin/chromium")  # Debian's package; no browser is ever downloaded
CHROMIUM_ARGS = [  # headless as root, and no calls home (this machine's network is closed)
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
]
PROJECT_FILES = ["dvc.yaml", "params.yaml", ".dvcignore", ".gitignore", "stages", "ser"]


class PeakMemory:
    """Peak resident memory (RSS) of this process and of all its worker processes together, sampled.

    Pages several processes share (forked workers' pages, a file they all map, the
    same libraries) count once per process in the sum of RSS: it is an upper bound on
    the memory really in use. With ``pss`` the peak of the sum of PSS (proportional
    set size: a page shared by n processes counts 1/n in each) is sampled too
    (``peak_pss_mib``; slower to read, so sampled less often).
    """

    def __init__(self, interval: float = 0.05, pss: bool = False):
        self.interval, self.peak_mib, self.peak_pss_mib, self.pss = (0.25 if pss else interval), 0.0, 0.0, pss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _measure(self) -> None:
        process = psutil.Process()
        total = proportional = 0
        for member in [process, *process.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                if self.pss:
                    info = member.memory_full_info()
                    total, proportional = total + info.rss, proportional + info.pss
                else:
                    total += member.memory_info().rss
        self.peak_mib = max(self.peak_mib, total / 2**20)
        self.peak_pss_mib = max(self.peak_pss_mib, proportional / 2**20)

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._measure()

    def __enter__(self) -> PeakMemory:
        self._measure()
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()
        self._measure()


def smoke_or(full: T, smoke: T) -> T:
    """``smoke`` in a smoke run, ``full`` otherwise."""
    return smoke if SMOKE else full


def isolated_env(home: Path, bin_dir: Path = Path(DVC).parent) -> dict[str, str]:
    """The environment for a measured command: a fresh HOME (so a fresh ``~/.cache``), no DVC analytics,
    and ``bin_dir`` (a virtual environment's, this one's by default) first on PATH instead of this one's."""
    home.mkdir(parents=True, exist_ok=True)
    path = [str(bin_dir), *(entry for entry in os.environ["PATH"].split(os.pathsep) if entry != str(Path(DVC).parent))]
    return {**os.environ, "HOME": str(home), "DVC_NO_ANALYTICS": "1", "PATH": os.pathsep.join(path)}


def measure(run: Callable[[], T], warm: bool = False, repeats: int = 1) -> tuple[T, float, float]:
    """``run()``'s result, its wall seconds (the median of ``repeats`` runs) and peak RSS in MiB (this
    process and its workers, over all runs); ``warm``: run it once untimed first."""
    if warm:
        run()
    seconds = []
    with PeakMemory() as memory:
        for _ in range(repeats):
            start = time.perf_counter()
            result = run()
            seconds.append(time.perf_counter() - start)
    return result, statistics.median(seconds), memory.peak_mib


def throughput(clips: int, seconds: float, peak_rss_mib: float, **more: object) -> dict:
    """A measured side's figures, as the benchmarks' JSON holds them."""
    return {"clips": clips, "seconds": seconds, "clips_per_s": clips / seconds, "peak_rss_mib": peak_rss_mib, **more}


def timed(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[float, str]:
    """Run ``command``; its wall time and output. Fails loudly with the output if it fails."""
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed in {cwd}:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return seconds, done.stdout + done.stderr


def run_json(module: str, *args: str) -> dict:
    """Run ``python -m module args`` in a fresh process (its own peak memory); its last line of JSON."""
    done = subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{module} {' '.join(args)} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def read_manifest(corpora: tuple[str, ...] | None = None) -> pd.DataFrame:
    """The clips of data/manifest.csv (``dvc pull`` or ``dvc repro labels``), of ``corpora`` only if given."""
    from ser.tables import read_clips

    manifest = read_clips(MANIFEST)
    if corpora is not None:
        manifest = manifest[manifest["corpus"].isin(corpora)].reset_index(drop=True)
        if manifest.empty:
            raise RuntimeError(f"{MANIFEST} has no clip of {', '.join(corpora)}: put it in data.sources and rerun")
    return manifest


def sample_clips(manifest: pd.DataFrame, per_corpus: int | None, seed: int = 0) -> pd.DataFrame:
    """At most ``per_corpus`` clips of each corpus (all if None), drawn with ``seed``, in manifest order."""
    if per_corpus is None:
        return manifest
    drawn = manifest.sample(frac=1, random_state=seed).groupby("corpus", sort=False).head(per_corpus)
    return manifest.loc[sorted(drawn.index)].reset_index(drop=True)


def replicate(manifest: pd.DataFrame, factor: int, root: Path) -> pd.DataFrame:
    """A manifest of ``factor`` copies of ``manifest``'s clips of data/raw under new names (hard links) in ``root``."""
    import pandas as pd

    replicas = []
    for copy in range(factor):
        for file in manifest["file"]:
            link_or_copy(RAW_DIR / file, root / f"r{copy}" / file)
        replicas.append(manifest.assign(file=f"r{copy}/" + manifest["file"]))
    return pd.concat(replicas, ignore_index=True)


def featurize_stage(
    manifest: pd.DataFrame, raw_dir: Path, out_dir: Path, workers: int, cache: str = "",
    audio: dict | None = None, features: dict | None = None,
) -> FeaturizeSummary:
    """The featurize stage's code on ``manifest``: params.yaml's audio and features (with ``audio`` and
    ``features`` changed), no augmented copies, ``workers`` local workers (0: one per core), the
    per-clip cache in ``cache`` ('' = off)."""
    from ser.featurize import Settings, featurize_corpus
    from ser.params import load_params

    params = load_params(REPO / "params.yaml")
    settings = Settings(
        params.audio.model_copy(update=audio or {}),
        params.features.model_copy(update=features or {}),
        params.augment.model_copy(update={"copies": 0}),
    )
    run = params.runtime.featurize.model_copy(update={"workers": workers, "cache": cache, "scheduler": ""})
    return featurize_corpus(manifest, raw_dir, out_dir, settings, run)


def link_or_copy(source: Path, target: Path) -> None:
    """A hard link to ``source`` at ``target`` (a copy across file systems)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def link_tree(source: Path, target: Path, per_folder: int | None = None) -> None:
    """Hard links at ``target`` to the files under ``source`` (a directory), or to ``source`` itself (a file);
    ``per_folder``: only that many files of each folder."""
    if source.is_file():
        link_or_copy(source, target)
        return
    for folder in [source, *sorted(path for path in source.rglob("*") if path.is_dir())]:
        for path in sorted(path for path in folder.iterdir() if path.is_file())[:per_folder]:
            link_or_copy(path, target / path.relative_to(source))


def project_copy(target: Path) -> Path:
    """A fresh DVC project holding this working tree's pipeline code and params (no data, no cache)."""
    target.mkdir(parents=True)
    for name in PROJECT_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target / name)
    for command in (["git", "init", "-q"], [DVC, "init", "-q"], [DVC, "config", "core.analytics", "false"]):
        subprocess.run(command, cwd=target, check=True, capture_output=True)
    return target


def set_params(project: Path, **changes: object) -> None:
    """Set params of a project's params.yaml, named by their path with ``__`` between keys:
    ``train__epochs=2``, a whole mapping such as ``data__sources={"tess": {...}}``, or a key inside
    one, ``data__sources__tess__source="../tess"`` (the mappings on the way must exist)."""
    import yaml

    path = project / "params.yaml"
    params = yaml.safe_load(path.read_text())
    for key, value in changes.items():
        *parents, name = key.split("__")
        if not parents:
            raise ValueError(f"{key}: name a param as section__key")
        mapping = params
        for part in parents:
            if not isinstance(mapping.get(part), dict):
                raise KeyError(f"{key}: params.yaml has no mapping {part!r} on this path")
            mapping = mapping[part]
        mapping[name] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def save(name: str, result: dict) -> None:
    """Write ``result`` to NAME.json in ``RESULTS``."""
    path = RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"-> {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")
