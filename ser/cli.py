"""The ``ser`` command: ``predict`` emotions of audio files, ``info`` on the model, ``serve`` the web app.

User errors (a missing path, a file that is not audio, a silent clip, no
model) are reported as one line each on stderr, never as a traceback; the
other files are still scored, and the exit status is 1 if any file failed.
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import os
import sys
from pathlib import Path
from typing import Iterable, Sequence

import yaml
from pydantic import ValidationError

from ser.params import ParamsError, ServeParams, describe_error
from ser.paths import MODEL_DIR

CHUNK = 256  # clips scored per model call
EXIT_FAILED_FILES, EXIT_USAGE = 1, 2


class UsageError(Exception):
    """A problem with the command as a whole (no model, bad option): reported, exit status 2."""


def error(message: str) -> None:
    print(f"ser: error: {message}", file=sys.stderr)


def expand_paths(arguments: Sequence[str]) -> tuple[list[Path], list[str], list[str]]:
    """Audio files named by ``arguments`` (files, directories searched recursively, glob patterns),
    in order, without repeats; the problems found; and notes on files skipped in directories.

    A directory gives its files with an audio suffix; a file named on the command line is always tried."""
    from ser.audio import AUDIO_SUFFIXES

    files: dict[Path, Path] = {}  # resolved path -> the path as the user spelled it
    problems, notes = [], []

    def add(paths: Iterable[Path]) -> None:
        for path in paths:
            files.setdefault(path.resolve(), path)

    for argument in arguments:
        path = Path(argument)
        try:
            is_dir = path.is_dir()
        except OSError as exc:  # e.g. a name too long for the file system
            problems.append(f"{argument}: {exc.strerror or exc}")
            continue
        if is_dir:
            found = sorted(p for p in path.rglob("*") if p.is_file())
            audio = [p for p in found if p.suffix.lower() in AUDIO_SUFFIXES]
            if skipped := [p for p in found if p.suffix.lower() not in AUDIO_SUFFIXES]:
                suffixes = ", ".join(sorted({p.suffix or "(no suffix)" for p in skipped}))
                notes.append(f"{argument}: skipped {len(skipped)} file{'s' * (len(skipped) > 1)} without an audio suffix ({suffixes})")
            if not audio:
                problems.append(f"{argument}: no audio files in this directory")
            add(audio)
        elif path.exists():
            add([path])
        elif glob.has_magic(argument):
            matches = sorted(Path(p) for p in glob.glob(argument, recursive=True))
            if not matches:
                problems.append(f"{argument}: no files match this pattern")
            add(p for p in matches if p.is_file())
        else:
            problems.append(f"{argument}: no such file or directory")
    return list(files.values()), problems, notes


def score_files(predictor, files: Sequence[Path], adapt: str | None, progress: bool) -> tuple[list, list[str]]:
    """Predictions of the files that could be scored, and one message per file that could not.

    ``adapt``: None scores each clip alone, ``all`` the files as one speaker, ``folder`` the
    files of each folder as one speaker. Without it the clips are scored ``CHUNK`` at a time, so
    memory does not grow with the number of files; with it, all clips' features are needed for
    their statistics."""
    from tqdm import tqdm

    from ser.audio import AudioError

    predictions, pending, problems = [], [], []
    for path in tqdm(files, unit="file", file=sys.stderr, disable=not progress, leave=False):
        try:
            pending.append(predictor.clip_features(path, str(path)))
        except AudioError as exc:
            problems.append(str(exc))
        except OSError as exc:
            problems.append(f"{path}: {exc.strerror or exc}")
        if not adapt and len(pending) == CHUNK:
            predictions += predictor.predict(pending)
            pending = []
    speakers = [str(Path(clip.name).parent) for clip in pending] if adapt == "folder" else None
    return predictions + predictor.predict(pending, adapt=adapt == "all", speakers=speakers), problems


def prediction_rows(predictions: Iterable, top: int | None, per_window: bool) -> list[dict]:
    """Flat rows for table and CSV output: one per clip, and one per window with ``per_window``."""
    from ser.inference import ranked

    rows = []
    for prediction in predictions:
        items = [("all", prediction.probabilities)]
        if per_window:
            items += [(f"{w.start:.2f}-{w.end:.2f}", w.probabilities) for w in prediction.windows]
        for window, probabilities in items:
            row = {"file": prediction.name}
            if per_window:
                row["window"] = window
            order = ranked(prediction.classes, probabilities)
            row["emotion"], row["confidence"] = order[0][0], round(order[0][1], 6)
            if top is None:
                row.update({f"p_{label}": round(float(p), 6) for label, p in zip(prediction.classes, probabilities)})
            else:
                for rank, (label, p) in enumerate(order[:top], start=1):
                    row[f"top{rank}"], row[f"p{rank}"] = label, round(p, 6)
            rows.append(row)
    return rows


def write_predictions(predictions: list, output_format: str, top: int | None, per_window: bool) -> None:
    if output_format == "json":
        json.dump([p.to_dict(top, per_window) for p in predictions], sys.stdout, indent=2)
        print()
        return
    rows = prediction_rows(predictions, top, per_window)
    if output_format == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]) if rows else ["file", "emotion", "confidence"])
        writer.writeheader()
        writer.writerows(rows)
    elif rows:
        from tabulate import tabulate

        print(tabulate(rows, headers="keys", floatfmt=".3f"))


def load_predictor(model_dir: str):
    from ser.inference import ModelError, Predictor

    try:
        return Predictor(model_dir)
    except ModelError as exc:
        raise UsageError(str(exc)) from None


def predict(args: argparse.Namespace) -> int:
    files, problems, notes = expand_paths(args.paths)
    for message in notes:
        print(f"ser: note: {message}", file=sys.stderr)
    for message in problems:
        error(message)
    predictions = []
    if files:
        predictor = load_predictor(args.model)
        if sys.stderr.isatty():  # for a person at a terminal, not for scripts reading stderr
            print(f"ser: model {predictor.summary()}", file=sys.stderr)
        progress = sys.stderr.isatty() and len(files) > 1 and not args.no_progress
        predictions, failed = score_files(predictor, files, args.adapt, progress)
        for message in failed:
            error(message)
        problems += failed
    write_predictions(predictions, args.format, args.top, args.per_window)
    return EXIT_FAILED_FILES if problems else 0


def info(args: argparse.Namespace) -> int:
    summary = load_predictor(args.model).info()
    if args.format == "json":
        print(json.dumps(summary, indent=2))
    else:
        print(yaml.safe_dump(summary, sort_keys=False, width=100), end="")
    return 0


def validated_limits(section: object, origin: str) -> ServeParams:
    try:
        return ServeParams.model_validate(section)
    except ValidationError as exc:
        raise UsageError(f"{origin}: " + "; ".join(describe_error(e) for e in exc.errors())) from None


def serve_limits(args: argparse.Namespace) -> ServeParams:
    """The ``serve`` section of the params file (if there is one), overridden by the options."""
    path = Path(args.params)
    section: object = {}
    if path.is_file():
        try:
            raw = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise UsageError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
        section = raw.get("serve") or {} if isinstance(raw, dict) else raw
    limits = validated_limits(section, f"{path}: invalid serve section").model_dump()
    options = {"max_upload_mb": args.max_upload_mb, "max_duration_s": args.max_duration, "workers": args.workers,
               "max_uploads_in_flight": args.max_uploads_in_flight, "body_timeout_s": args.body_timeout}
    limits.update({key: value for key, value in options.items() if value is not None})
    return validated_limits(limits, "invalid limit")


def serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from ser import webapp
    except ModuleNotFoundError as exc:  # installed without the serve extra
        raise UsageError(f"ser serve needs the serve extra ({exc.name} is not installed): pip install '.[serve]'") from None

    limits = serve_limits(args)
    predictor = load_predictor(args.model)  # a bad model fails here, before any server starts
    options = {"host": args.host, "port": args.port, "log_level": args.log_level}
    if limits.workers == 1:
        uvicorn.run(webapp.create_app(predictor, limits), **options)
    else:  # each worker process loads the model itself
        os.environ[webapp.MODEL_DIR_VARIABLE] = str(Path(args.model).resolve())
        os.environ[webapp.LIMITS_VARIABLE] = limits.model_dump_json()
        uvicorn.run("ser.webapp:app_from_environment", factory=True, workers=limits.workers, **options)
    return 0


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def parser() -> argparse.ArgumentParser:
    main_parser = argparse.ArgumentParser(prog="ser", description="Speech emotion recognition with the trained model.")
    commands = main_parser.add_subparsers(dest="command", required=True)
    model = argparse.ArgumentParser(add_help=False)
    model.add_argument("--model", default=str(MODEL_DIR), metavar="DIR", help="model directory (default: %(default)s)")

    p = commands.add_parser("predict", parents=[model], help="predict the emotion of audio files",
                            description="Predict the emotion of audio files, directories (recursive) or glob patterns.")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.add_argument("--top", type=positive, metavar="K", help="show only the K most probable classes")
    p.add_argument("--per-window", action="store_true", help="also show every window of clips longer than the model's window")
    p.add_argument("--adapt", nargs="?", const="all", choices=("all", "folder"),
                   help="use the speaker's own statistics: all files are one speaker (--adapt), or each folder's "
                        "files are (--adapt folder); the more clips, the more they count (from about 20 clips on)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar, even on a terminal")
    p.set_defaults(run=predict)

    p = commands.add_parser("info", parents=[model], help="show the model, its params, classes and metrics")
    p.add_argument("--format", choices=("yaml", "json"), default="yaml")
    p.set_defaults(run=info)

    p = commands.add_parser("serve", parents=[model], help="serve the web app and its JSON API")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    p.add_argument("--port", type=int, default=8000, help="(default: %(default)s)")
    p.add_argument("--params", default="params.yaml", help="file whose serve section sets the limits (default: %(default)s)")
    p.add_argument("--max-upload-mb", type=float, help="largest upload (default: serve.max_upload_mb)")
    p.add_argument("--max-duration", type=float, metavar="SECONDS", help="longest clip (default: serve.max_duration_s)")
    p.add_argument("--workers", type=int, help="server processes, each loading the model (default: serve.workers)")
    p.add_argument("--max-uploads-in-flight", type=int, metavar="N",
                   help="uploads each process handles at once; more get 503 (default: serve.max_uploads_in_flight)")
    p.add_argument("--body-timeout", type=float, metavar="SECONDS",
                   help="time a client has to send a request's body; then 408 (default: serve.body_timeout_s)")
    p.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))
    p.set_defaults(run=serve)
    return main_parser


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except (UsageError, ParamsError) as exc:
        error(str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
