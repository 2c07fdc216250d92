"""End to end: the whole run as a user does it, `make run` in a clean clone, on all of its corpora.

Clones HEAD into a temporary directory (beside a link to ``../shared``) and, as
``make run`` does, runs ``make setup`` (a virtual environment and ``pip
install``) and then the pipeline, timed apart: each stage in turn with the
clone's own ``dvc``, one ``fetch@<corpus>`` per corpus of the committed
``data.sources`` first (forced: outputs kept in git, such as the metrics, would
otherwise count as up to date), with an empty DVC cache (the clone's own) and
an empty per-clip feature cache (a fresh HOME). pip keeps this machine's own
cache (``PIP_CACHE_DIR``): the setup time is that of a machine that has
installed the requirements before; one without a pip cache downloads more.
The total (setup + pipeline) is set against 15 minutes, and each stage's peak
resident memory (``dvc`` and the stage's processes, workers included, sampled;
this process's own ~100 MiB too) against 4 GiB: the sum of RSS (the target's
measure, counting pages that processes share once per process) and of PSS
(each shared page once: the memory really in use). Then it times a no-op
``dvc repro`` and ``dvc status``, and checks that the clone's metrics equal
the committed ones.

In a smoke run it only clones the project and checks the command lines: the
setup's (``make -n setup``) and the stage names (``dvc stage list``); it
writes no e2e.json.

    python -m benchmarks e2e
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from benchmarks.common import CORPUS, DVC, REPO, SMOKE, PeakMemory, isolated_env, save, timed
from ser.paths import METRICS

TARGET_S = 15 * 60
MEMORY_TARGET_MIB = 4 * 1024
"""Each stage's peak RSS, its worker processes included, at most this."""


def stage_names(project: Path) -> list[str]:
    """The project's stages in ``dvc.yaml``'s order, with a fetch per corpus of its data.sources."""
    sources = yaml.safe_load((project / "params.yaml").read_text())["data"]["sources"]
    stages = yaml.safe_load((project / "dvc.yaml").read_text())["stages"]
    return [f"fetch@{corpus}" for corpus in sources] + [stage for stage in stages if stage != "fetch"]


def pip_cache_dir() -> str:
    """This machine's pip cache (pip's own answer, for this user)."""
    return subprocess.run([sys.executable, "-m", "pip", "cache", "dir"], capture_output=True, text=True, check=True).stdout.strip()


def clean_clone(workdir: Path) -> tuple[Path, dict[str, str]]:
    """A clone of HEAD beside a link to ``../shared``, and its environment: a fresh HOME, this machine's
    pip cache, the clone's own virtual environment first on PATH."""
    clone = workdir / "ser"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    (workdir / "shared").symlink_to(CORPUS.parents[1])
    return clone, {**isolated_env(workdir / "home", clone / ".venv" / "bin"), "PIP_CACHE_DIR": pip_cache_dir()}


def smoke(clone: Path, env: dict[str, str]) -> dict:
    """Check the command lines without running them: the setup's recipe and the stage names."""
    _, recipe = timed(["make", "-n", "setup"], clone, env)
    _, listed = timed([DVC, "stage", "list", "--name-only"], clone, env)
    missing = sorted(set(stage_names(clone)) - set(listed.split()))
    if missing:
        raise RuntimeError(f"dvc.yaml has no stage {', '.join(missing)}")
    print(f"make setup would run:\n{recipe}then `dvc repro --force --single-item` of {', '.join(stage_names(clone))}, "
          f"a no-op `dvc repro` and `dvc status`")
    return {"smoke": True, "setup_commands": recipe.splitlines(), "stages": stage_names(clone)}


def main() -> dict:
    with tempfile.TemporaryDirectory() as workdir:
        clone, env = clean_clone(Path(workdir))
        if SMOKE:  # nothing measured: no e2e.json
            return smoke(clone, env)
        setup_s, _ = timed(["make", "setup"], clone, env)
        dvc = str(clone / ".venv" / "bin" / "dvc")
        stages, memory, proportional = {}, {}, {}
        for stage in stage_names(clone):
            with PeakMemory(pss=True) as peak:
                stages[stage], _ = timed([dvc, "repro", "--force", "--single-item", stage], clone, env)
            memory[stage], proportional[stage] = peak.peak_mib, peak.peak_pss_mib
        no_op_repro, output = timed([dvc, "repro"], clone, env)
        status, status_output = timed([dvc, "status"], clone, env)
        metrics = json.loads((clone / METRICS).read_text())
    committed = json.loads((REPO / METRICS).read_text())
    pipeline_s = sum(stages.values())
    result = {
        "smoke": False,
        "setup_s": setup_s,
        "stages_s": stages,
        "stages_peak_rss_mib": memory,
        "stages_peak_pss_mib": proportional,
        "memory_target_mib": MEMORY_TARGET_MIB,
        "memory_within_target": max(memory.values()) <= MEMORY_TARGET_MIB,
        "pipeline_s": pipeline_s,
        "total_s": setup_s + pipeline_s,
        "target_s": TARGET_S,
        "no_op_repro_s": no_op_repro,
        "no_op_ran_nothing": "Running stage" not in output,
        "status_s": status,
        "status_clean": "up to date" in status_output,
        "metrics_equal_committed": metrics == committed,
        "accuracy": metrics.get("accuracy"),
    }
    print(f"make setup {setup_s:.0f} s; " + "  ".join(f"{stage} {seconds:.1f} s" for stage, seconds in stages.items())
          + f"; pipeline {pipeline_s:.0f} s; total {result['total_s']:.0f} s (target <= {TARGET_S} s)")
    print("peak RSS (MiB, with workers): " + "  ".join(f"{stage} {mib:.0f}" for stage, mib in memory.items())
          + f" (target <= {MEMORY_TARGET_MIB} each)")
    print("peak PSS (MiB, with workers; shared pages once): " + "  ".join(f"{stage} {mib:.0f}" for stage, mib in proportional.items()))
    print(f"no-op dvc repro {no_op_repro:.1f} s (target <= 2 s; ran nothing: {result['no_op_ran_nothing']}), "
          f"dvc status {status:.1f} s (clean: {result['status_clean']}); "
          f"metrics equal the committed ones: {result['metrics_equal_committed']}")
    save("e2e", result)
    return result
