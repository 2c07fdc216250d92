"""The locked environment: requirements.lock pins every top-level requirement as requirements.txt does.

`make lock-check` (CI) resolves requirements.txt again and compares the whole lock; this test is the
offline half of that check, and fails at once when a pin changes without `make lock`.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==([^\s;\\]+)")


def pins(path: Path) -> dict[str, str]:
    """``{normalised name: version}`` of the ``name==version`` lines of a requirements file."""
    found = (PIN.match(line) for line in path.read_text().splitlines())
    return {re.sub(r"[-_.]+", "-", m[1]).lower(): m[2] for m in found if m}


def test_every_requirement_is_pinned_to_the_same_version_in_the_lock() -> None:
    wanted, locked = pins(ROOT / "requirements.txt"), pins(ROOT / "requirements.lock")
    assert wanted, "requirements.txt pins nothing"
    assert {name: locked.get(name) for name in wanted} == wanted


def test_the_lock_has_hashes_for_every_package() -> None:
    entries = re.split(r"\n(?=[A-Za-z0-9])", (ROOT / "requirements.lock").read_text())
    packages = [entry for entry in entries if PIN.match(entry)]
    assert len(packages) > len(pins(ROOT / "requirements.txt"))  # dependencies of dependencies too
    assert all("--hash=sha256:" in entry for entry in packages)

