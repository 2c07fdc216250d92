"""Shared helpers of the benchmarks: timed commands, peak memory, project copies, results."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

if TYPE_CHECKING:
    import pandas as pd

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "reports" / "benchmarks"
RAW_DIR = REPO / "data" / "raw"
MANIFEST = REPO / "data" / "manifest.csv"
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

    Forked workers share pages with this process, which the sum counts once per
    process: the figure is an upper bound on the memory really in use.
    """

    def __init__(self, interval: float = 0.05):
        self.interval, self.peak_mib = interval, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        process = psutil.Process()
        while not self._stop.wait(self.interval):
            tree = [process, *process.children(recursive=True)]
            total = 0
            for member in tree:
                with contextlib.suppress(psutil.Error):
                    total += member.memory_info().rss
            self.peak_mib = max(self.peak_mib, total / 2**20)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()


def isolated_env(home: Path) -> dict[str, str]:
    """The environment for a measured command: a fresh HOME (so a fresh ``~/.cache``), no DVC analytics."""
    home.mkdir(parents=True, exist_ok=True)
    return {**os.environ, "HOME": str(home), "DVC_NO_ANALYTICS": "1", "PATH": f"{Path(DVC).parent}:{os.environ['PATH']}"}


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


def link_or_copy(source: Path, target: Path) -> None:
    """A hard link to ``source`` at ``target`` (a copy across file systems)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


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


def tess_only_sources(corpus: Path | str) -> dict:
    """``data.sources`` with TESS alone, read from ``corpus``: what the TESS benchmarks run on."""
    return {"tess": {"recipe": "tess", "source": str(corpus)}}


def save(name: str, result: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"-> {(RESULTS / f'{name}.json').relative_to(REPO)}")
