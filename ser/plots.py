"""Figures rendered as PNGs (``dvc plots show`` needs the internet; these do not)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import librosa
import librosa.display
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns


def _save(fig: plt.Figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_counts(manifest: pd.DataFrame, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(8, 4))
    sns.countplot(data=manifest.sort_values("emotion"), x="emotion", hue="corpus", ax=ax)
    ax.set_title("Clips per emotion and corpus")
    _save(fig, path)


def plot_durations(manifest: pd.DataFrame, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(8, 4))
    sns.histplot(data=manifest, x="duration", hue="corpus", bins=60, ax=ax)
    ax.set_xlabel("duration (s)")
    ax.set_title("Clip durations")
    _save(fig, path)


def plot_waveform(samples: np.ndarray, sr: int, title: str, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(10, 3))
    librosa.display.waveshow(samples, sr=sr, ax=ax)
    ax.set_title(title)
    _save(fig, path)


def plot_spectrogram(samples: np.ndarray, sr: int, title: str, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(10, 4))
    decibels = librosa.amplitude_to_db(np.abs(librosa.stft(samples)), ref=np.max)
    image = librosa.display.specshow(decibels, sr=sr, x_axis="time", y_axis="hz", ax=ax)
    fig.colorbar(image, ax=ax, format="%+2.0f dB")
    ax.set_title(title)
    _save(fig, path)


def plot_confusion(actual: pd.Series, predicted: pd.Series, classes: list[str], path: Path, title: str = "") -> None:
    """Row-normalized confusion matrix (each row: how one true class was predicted)."""
    counts = pd.crosstab(
        pd.Categorical(actual, categories=classes), pd.Categorical(predicted, categories=classes),
        dropna=False,
    )
    share = counts.div(counts.sum(axis=1).replace(0, 1), axis=0)
    fig, ax = plt.subplots(figsize=(7, 6))
    sns.heatmap(share, annot=counts, fmt="d", cmap="Blues", vmin=0, vmax=1, ax=ax)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title(f"{title}\ncolour: share of row, numbers: clips".strip())
    _save(fig, path)


def plot_fold_scores(folds: dict[str, dict], path: Path) -> None:
    """Each fold's validation loss and accuracy (the model-selection scores), a bar per fold."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    fig.suptitle("validation speakers of each fold")
    for ax, metric in zip(axes, ("val_loss", "val_accuracy")):
        ax.bar(list(folds), [scores[metric] for scores in folds.values()])
        ax.set_title(metric)
    _save(fig, path)


def plot_history(history: dict[str, list[float]], path: Path, title: str = "") -> None:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    fig.suptitle(title)
    for ax, metric in zip(axes, ("loss", "accuracy")):
        for prefix, label in (("", "train"), ("val_", "validation")):
            if prefix + metric in history:
                ax.plot(np.arange(1, len(history[prefix + metric]) + 1), history[prefix + metric], label=label)
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.legend()
    _save(fig, path)


def plot_robustness(scores: pd.DataFrame, path: Path, title: str) -> None:
    """Accuracy and share of unchanged top classes (``scores``: a row per transform, the first ``untransformed``)."""
    rows = scores.melt(id_vars="transform", var_name="score", value_name="value")
    fig, ax = plt.subplots(figsize=(10, 4))
    sns.barplot(data=rows, x="transform", y="value", hue="score", ax=ax)
    ax.set(ylim=(0, 1), xlabel="", ylabel="", title=title)
    ax.tick_params(axis="x", rotation=30)
    ax.legend(loc="lower left")
    _save(fig, path)
