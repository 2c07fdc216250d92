"""Outputs that appear whole or not at all: a killed stage leaves no partial folder behind."""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def partial_path(target: Path) -> Path:
    """Where :func:`replaced_directory` builds ``target``: a hidden sibling."""
    return target.with_name(f".{target.name}.partial")


@contextmanager
def replaced_directory(target: Path) -> Iterator[Path]:
    """A fresh folder to write ``target`` into; when the block ends without an error it replaces
    ``target`` (which is absent, never half-written, in between). On an error it is removed; a
    killed process leaves it behind, and the next run starts it anew."""
    partial = partial_path(target)
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        yield partial
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if target.exists():
        shutil.rmtree(target)
    os.replace(partial, target)
