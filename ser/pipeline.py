"""What each stage of ``dvc.yaml`` depends on, and so what reruns when something changes.

A stage's code dependencies are the import closure of its script
(:func:`ser.imports.relative_closure`): :func:`code_problems` names every stage
whose ``deps`` miss a file of it, list a file outside it, or list a file that
does not exist; :func:`write_code_deps` rewrites them (``make deps``).
:func:`rerun_rows` tells, for each param section and each source file, which
stages rerun (the README's table: ``python -m benchmarks.readme``).

    python -m ser.pipeline check | write
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import yaml

from ser.imports import PACKAGES, ROOT, relative_closure

DVC_YAML = ROOT / "dvc.yaml"
STAGE_COMMAND = re.compile(r"\bpython -m (stages\.\w+)")


def is_code(dep: str) -> bool:
    """Whether a ``dvc.yaml`` dependency is the project's source (``ser/...``, ``stages/...``)."""
    return dep.split("/")[0] in PACKAGES


def stage_definitions(dvc_yaml: dict) -> dict[str, dict]:
    """Each stage's definition by name; a ``foreach`` stage (over ``data.sources``) under ``name@<corpus>``."""
    return {f"{name}@<corpus>" if "foreach" in stage else name: stage.get("do", stage)
            for name, stage in dvc_yaml["stages"].items()}


def stage_module(definition: dict) -> str:
    """The module a stage runs (``python -m stages.<name>`` in its ``cmd``)."""
    match = STAGE_COMMAND.search(definition["cmd"])
    if match is None:
        raise ValueError(f"cmd {definition['cmd']!r} does not run `python -m stages.<name>`")
    return match.group(1)


def code_problems(dvc_yaml: dict, root: Path = ROOT) -> list[str]:
    """Every way a stage's code ``deps`` differ from its script's import closure, one line each."""
    problems = []
    for name, definition in stage_definitions(dvc_yaml).items():
        listed = [dep for dep in definition.get("deps", []) if is_code(dep)]
        needed = relative_closure(stage_module(definition), root)
        problems += [f"stage {name}: dvc.yaml lacks {path} (imported by its script, directly or not)"
                     for path in needed if path not in listed]
        problems += [f"stage {name}: dvc.yaml lists {path}, which does not exist" for path in listed if not (root / path).exists()]
        problems += [f"stage {name}: dvc.yaml lists {path}, which its script does not import"
                     for path in listed if (root / path).exists() and path not in needed]
    return problems


def write_code_deps(path: Path = DVC_YAML, root: Path = ROOT) -> bool:
    """Rewrite each stage's code ``deps`` as its import closure (data deps first, as they were); whether it changed."""
    from ruamel.yaml import YAML  # DVC's own YAML library: keeps the file's layout and comments

    handler = YAML()
    handler.indent(mapping=2, sequence=4, offset=2)
    handler.width = 4096
    document = handler.load(path.read_text())
    for stage in document["stages"].values():
        definition = stage.get("do", stage)
        data = [dep for dep in definition.get("deps", []) if not is_code(str(dep))]
        definition["deps"] = data + relative_closure(stage_module(definition), root)
    before = path.read_text()
    with path.open("w") as handle:
        handler.dump(document, handle)
    return path.read_text() != before


def _section_keys(params: dict) -> list[str]:
    """The param names the table has rows for: each section, ``data``'s entries apart."""
    keys = []
    for section, value in params.items():
        keys += [f"data.{key}" + (".<corpus>" if key == "sources" else "") for key in value] if section == "data" else [section]
    return keys


def _reads(listed: str, key: str) -> bool:
    """Whether a stage that lists param ``listed`` reruns when ``key`` (a section or deeper) changes."""
    listed = listed.replace("${key}", "<corpus>")
    return key == listed or key.startswith(listed + ".") or listed.startswith(key + ".")


def _downstream(dvc_yaml: dict, stages: list[str]) -> list[str]:
    """Stages that read (directly or not) an output of ``stages``."""
    definitions = stage_definitions(dvc_yaml)
    outs = {name: [next(iter(out)) if isinstance(out, dict) else out for out in d.get("outs", []) + d.get("metrics", [])]
            for name, d in definitions.items()}
    reached, frontier = [], list(stages)
    while frontier:
        produced = [out.replace("${key}", "") for name in frontier for out in outs[name]]
        frontier = [name for name, d in definitions.items() if name not in reached and name not in stages
                    and any(dep == out or dep.startswith(out.rstrip("/") + "/") or out.startswith(dep.rstrip("/") + "/")
                            for dep in d.get("deps", []) for out in produced)]
        reached += frontier
    return [name for name in definitions if name in reached]


def rerun_rows(dvc_yaml: dict, params: dict, root: Path = ROOT) -> list[tuple[str, list[str], list[str]]]:
    """(what changes, stages that rerun, stages that rerun if those stages' outputs change) per param and code group."""
    definitions = stage_definitions(dvc_yaml)
    rows = []
    for key in _section_keys(params):
        stages = [name for name, d in definitions.items() if any(_reads(str(p), key) for p in d.get("params", []))]
        rows.append((f"`{key}`", stages, _downstream(dvc_yaml, stages)))
    by_stages: dict[tuple[str, ...], list[str]] = {}
    sources = sorted(p.relative_to(root).as_posix() for package in PACKAGES for p in (root / package).rglob("*.py"))
    for source in sources:
        readers = tuple(name for name, d in definitions.items() if source in d.get("deps", []))
        by_stages.setdefault(readers, []).append(source)
    for readers, files in sorted(by_stages.items(), key=lambda item: (-len(item[0]), item[0])):
        rows.append((", ".join(f"`{f}`" for f in files), list(readers), _downstream(dvc_yaml, list(readers))))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ser.pipeline", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["check", "write"],
                        help="check: list stale code deps (exit 1 if any); write: rewrite them")
    if parser.parse_args(argv).action == "write":
        write_code_deps()
    elif problems := code_problems(yaml.safe_load(DVC_YAML.read_text())):
        print("\n".join(problems + ["run `make deps`"]), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
