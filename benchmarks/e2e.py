"""End to end: `dvc repro` in a clean clone of the committed project, on all of its corpora.

Clones HEAD into a temporary directory (beside a link to ``../shared``), runs
each stage in turn, one ``fetch@<corpus>`` per corpus of the committed
``data.sources`` first (forced: outputs kept in git, such as the metrics, would
otherwise count as up to date) with an empty feature cache and times it, then times a
no-op ``dvc repro`` and ``dvc status``, and checks that the clone's metrics
equal the committed ones.

    python -m benchmarks e2e
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

import yaml

from benchmarks.common import DVC, CORPUS, REPO, isolated_env, save, timed

STAGES = ("labels", "eda", "featurize", "train", "evaluate")  # after a fetch@<corpus> per corpus


def stage_names(project: Path) -> list[str]:
    """The project's stages in order: a fetch per corpus of its data.sources, then the others."""
    sources = yaml.safe_load((project / "params.yaml").read_text())["data"]["sources"]
    return [f"fetch@{corpus}" for corpus in sources] + list(STAGES)


def main() -> dict:
    with tempfile.TemporaryDirectory() as workdir:
        workdir = Path(workdir)
        clone = workdir / "ser"
        subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
        (workdir / "shared").symlink_to(CORPUS.parents[1])
        env = isolated_env(workdir / "home")
        stages = {stage: timed([DVC, "repro", "--force", "--single-item", stage], clone, env)[0]
                  for stage in stage_names(clone)}
        no_op_repro, output = timed([DVC, "repro"], clone, env)
        status, status_output = timed([DVC, "status"], clone, env)
        metrics = json.loads((clone / "reports" / "metrics.json").read_text())
    committed = json.loads((REPO / "reports" / "metrics.json").read_text())
    result = {
        "stages_s": stages,
        "total_s": sum(stages.values()),
        "no_op_repro_s": no_op_repro,
        "no_op_ran_nothing": "Running stage" not in output,
        "status_s": status,
        "status_clean": "up to date" in status_output,
        "metrics_equal_committed": metrics == committed,
        "accuracy": metrics.get("accuracy"),
    }
    print("  ".join(f"{stage} {seconds:.1f} s" for stage, seconds in stages.items()) + f"  total {result['total_s']:.0f} s")
    print(f"no-op dvc repro {no_op_repro:.1f} s (ran nothing: {result['no_op_ran_nothing']}), "
          f"dvc status {status:.1f} s (clean: {result['status_clean']}); "
          f"metrics equal the committed ones: {result['metrics_equal_committed']}")
    save("e2e", result)
    return result
