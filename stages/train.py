"""Stage train: a model per evaluation fold (``models/folds/<fold>``), then the deployable model.

The deployable model (``models/``) learns from all the data, as users want it:
with no clips left to validate on, its networks train for the folds' median best
epoch (or for ``train.epochs`` when early stopping is off, as the folds did), and
it is calibrated with the folds' median temperature.

Each member of each model trains as a task of its own, side by side on
``runtime.train.workers`` processes computing on one thread each: networks first
(the deployable network waits for the folds' ones), classifiers in the gaps.
The models are the same however many run at once and in whatever order.
"""

import dataclasses
import functools
import json

import numpy as np

from ser.assembly import Member, assemble, encode_labels, model_meta, network_summaries, save_model
from ser.features import load_augmented, load_features, load_functionals
from ser.folds import (
    Task, deployable_epochs, deployable_temperature, fold_composition, log_fold_scores, mean_summary, parallel_workers,
    release_memory, run_tasks,
)
from ser.inference import DEPLOYABLE_FOLD
from ser.inputs import UTTERANCE, input_kind
from ser.params import load_params
from ser.paths import (
    FEATURE_DIR, FOLD_MODEL_DIR, MODEL_DIR, TRAIN_CURVES_DIR, TRAIN_FOLDS, TRAIN_LIVE_DIR, TRAIN_METRICS, TRAIN_REPORT_DIR,
)
from ser.split import TRAIN, VALIDATION, fold_parts, single_emotion_note


@functools.cache
def inputs() -> tuple:
    """The params, the features and each fold's parts (read once per process)."""
    params = load_params()
    features, index, feature_params = load_features(FEATURE_DIR)
    return params, features, index, feature_params, fold_parts(index, params.split)


@functools.cache
def clips():
    """Every clip's features, augmented copies and functionals (read once per training process)."""
    from ser import training  # TensorFlow loads only once the inputs are known to be valid

    _, features, index, _, _ = inputs()
    return training.Clips(features, index, load_augmented(FEATURE_DIR), load_functionals(FEATURE_DIR))


def parts_of(name: str):
    """Fold ``name``'s parts; the deployable model trains on every clip."""
    _, _, index, _, folds = inputs()
    return np.full(len(index), TRAIN, dtype=object) if name == DEPLOYABLE_FOLD else folds[name]


def model_dir(name: str):
    return MODEL_DIR if name == DEPLOYABLE_FOLD else FOLD_MODEL_DIR / name


def fit_member(name: str, number: int, epochs: int | None = None) -> Member:
    """Train member ``number`` of fold ``name``'s model (or of the deployable one), save its network and
    curves; the member, its network saved (what the stage's process joins into the model)."""
    from ser import plots, training
    from ser.assembly import save_network

    params = inputs()[0]
    member = params.model.member_params()[number]
    live = training.member_live_dir(TRAIN_LIVE_DIR / name, params.model, member)
    trained = training.train_fold_member(clips(), parts_of(name), member, params.train, params.data.emotions, live, epochs)
    save_network(model_dir(name), trained)
    if trained.history is not None:
        plots.plot_history(trained.history, TRAIN_CURVES_DIR / f"{name}-{member.arch}.png", title=f"{name}, {member.arch}")
    saved = dataclasses.replace(trained, network=None)
    del trained
    release_memory()
    return saved


def member_tasks(folds: list[str]) -> list[Task]:
    """Every member of every fold's model and of the deployable model, networks first: the deployable
    networks wait for the folds' (their epochs come from them)."""
    params = inputs()[0]
    members = list(enumerate(params.model.member_params()))
    networks = [number for number, member in members if input_kind(member.arch) != UTTERANCE]
    classifiers = [number for number, member in members if number not in networks]

    def deployable_network(number: int) -> Task:
        def args(results: dict) -> tuple:
            summaries = {fold: {"members": network_summaries([results[fold, n] for n in networks])} for fold in folds}
            return DEPLOYABLE_FOLD, number, deployable_epochs(summaries, params.train)[members[number][1].arch]

        return Task((DEPLOYABLE_FOLD, number), args, after=tuple((fold, number) for fold in folds))

    return [
        *(Task((fold, number), (fold, number)) for number in networks for fold in folds),
        *(deployable_network(number) for number in networks),
        *(Task((fold, number), (fold, number)) for fold in [*folds, DEPLOYABLE_FOLD] for number in classifiers),
    ]


def save(name: str, members: list[Member], temperature: float | None = None) -> dict:
    """Join fold ``name``'s trained members into its model, save it; its summary."""
    params, _, index, feature_params, folds = inputs()
    parts = parts_of(name)
    targets = encode_labels(index["emotion"][parts == VALIDATION], params.data.emotions)
    trained = assemble(members, targets, params.train.calibrate, temperature)
    save_model(model_dir(name), trained.members, trained.temperature, index, parts,
               model_meta(feature_params, params, name, folds), trained.reference)
    return trained.summary


def main() -> None:
    params, _, index, _, folds = inputs()
    if params.split.protocol == "text" and (note := single_emotion_note(index)):
        print(note)
    TRAIN_REPORT_DIR.mkdir(parents=True, exist_ok=True)
    fold_composition(index, folds, params.train.balance).to_csv(TRAIN_FOLDS, index=False)
    names = list(folds)
    tasks = member_tasks(names)
    results = run_tasks(fit_member, tasks, parallel_workers(params.runtime.train.workers, len(tasks)))
    count = len(params.model.member_params())
    summary = {fold: save(fold, [results[fold, number] for number in range(count)]) for fold in names}
    temperature = deployable_temperature(summary)
    save(DEPLOYABLE_FOLD, [results[DEPLOYABLE_FOLD, number] for number in range(count)], temperature)
    epochs = deployable_epochs(summary, params.train)
    metrics = {**mean_summary(summary), "deployable_epochs": epochs, "deployable_temperature": temperature}
    TRAIN_METRICS.write_text(json.dumps(metrics, indent=2) + "\n")
    report_fold_scores(summary)


def report_fold_scores(summary: dict[str, dict]) -> None:
    """The folds' validation scores as a dvclive log and a PNG (networks also log their epochs there)."""
    from ser import plots

    log_fold_scores(summary, TRAIN_LIVE_DIR / "folds")
    plots.plot_fold_scores(summary, TRAIN_CURVES_DIR / "folds.png")


if __name__ == "__main__":
    main()
