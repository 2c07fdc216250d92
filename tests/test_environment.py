"""The locked environment: the locks pin every requirement of pyproject.toml as it does.

pyproject.toml declares the dependencies once: the base ones (``ser predict``, ``ser info``) and the extras
serve, pipeline and dev. requirements.lock pins all of them and everything they pull in;
requirements-serve.lock the base and serve ones alone, at the same versions. `make lock-check` (CI) resolves
pyproject.toml again and compares both locks whole; this test is the offline half of that check, and fails at
once when a pin changes without `make lock`.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==([^\s;\\]+)")
NAME = re.compile(r"^([A-Za-z0-9_.-]+)")
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
EXTRAS = PROJECT["optional-dependencies"]
LOCK, SERVE_LOCK = ROOT / "requirements.lock", ROOT / "requirements-serve.lock"


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(lines: list[str]) -> dict[str, str]:
    """``{normalised name: version}`` of the ``name==version`` lines."""
    found = (PIN.match(line) for line in lines)
    return {normalized(m[1]): m[2] for m in found if m}


def locked(path: Path) -> dict[str, set[str]]:
    """``{normalised name: versions}`` of a lock (a package may have one version per Python version)."""
    versions: dict[str, set[str]] = {}
    for m in filter(None, (PIN.match(line) for line in path.read_text().splitlines())):
        versions.setdefault(normalized(m[1]), set()).add(m[2])
    return versions


def requirements(*extras: str) -> list[str]:
    return PROJECT["dependencies"] + [r for extra in extras for r in EXTRAS[extra]]


def test_the_extras_are_serve_pipeline_and_dev() -> None:
    assert set(EXTRAS) == {"serve", "pipeline", "dev"}
    names = [normalized(NAME.match(r)[1]) for r in requirements(*EXTRAS)]
    assert len(names) == len(set(names)), "a package is declared twice"


@pytest.mark.parametrize(("lock", "extras"), [(LOCK, tuple(EXTRAS)), (SERVE_LOCK, ("serve",))])
def test_every_requirement_is_pinned_to_the_same_version_in_the_lock(lock: Path, extras: tuple[str, ...]) -> None:
    wanted, found = pins(requirements(*extras)), locked(lock)
    assert wanted, "pyproject.toml pins nothing"
    assert {name: found.get(name) for name in wanted} == {name: {version} for name, version in wanted.items()}
    unpinned = {normalized(NAME.match(r)[1]) for r in requirements(*extras) if "==" not in r}  # e.g. scipy
    assert unpinned <= set(found)


def test_the_serve_lock_is_the_full_locks_versions_without_the_pipeline() -> None:
    full, serve = locked(LOCK), locked(SERVE_LOCK)
    assert {name: full.get(name) for name in serve} == serve
    for package in ("tensorflow-cpu", "keras", "dvc", "dvclive", "librosa", "matplotlib", "scikit-learn", "pytest"):
        assert package in full and package not in serve
    for package in ("onnxruntime", "opensmile", "fastapi", "uvicorn", "python-multipart"):
        assert package in serve


@pytest.mark.parametrize("lock", [LOCK, SERVE_LOCK])
def test_the_lock_has_hashes_for_every_package(lock: Path) -> None:
    entries = re.split(r"\n(?=[A-Za-z0-9])", lock.read_text())
    packages = [entry for entry in entries if PIN.match(entry)]
    assert len(packages) > len(pins(requirements(*EXTRAS) if lock == LOCK else requirements("serve")))  # dependencies too
    assert all("--hash=sha256:" in entry for entry in packages)


def test_requirements_txt_installs_the_full_lock() -> None:
    lines = [line.strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    assert [line for line in lines if line and not line.startswith("#")] == ["-r requirements.lock"]
