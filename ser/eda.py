"""Exploratory report of the fetched corpus: counts, durations, one example per emotion."""

from __future__ import annotations

from pathlib import Path

import librosa
import pandas as pd

from ser import plots


def example_files(manifest: pd.DataFrame) -> pd.DataFrame:
    """The first clip (by file name) of each emotion."""
    return manifest.sort_values("file").groupby("emotion", sort=True).head(1).sort_values("emotion")


def summary_markdown(manifest: pd.DataFrame) -> str:
    counts = pd.crosstab(manifest["emotion"], manifest["speaker"], margins=True, margins_name="total")
    durations = manifest.groupby("speaker")["duration"].describe()[["mean", "min", "max"]].round(2)
    formats = manifest.groupby(["format", "sample_rate", "channels"]).size().rename("clips").reset_index()
    return "\n".join([
        "# Corpus summary",
        "",
        f"{len(manifest)} clips, {manifest['speaker'].nunique()} speakers, "
        f"{manifest['word'].nunique()} words, {manifest['emotion'].nunique()} emotions, "
        f"{manifest['duration'].sum() / 60:.1f} minutes of audio.",
        "",
        "## Clips per emotion and speaker",
        "",
        counts.to_markdown(),
        "",
        "## Duration (s) per speaker",
        "",
        durations.to_markdown(),
        "",
        "## Formats",
        "",
        formats.to_markdown(index=False),
        "",
        "Figures: `counts.png`, `durations.png`, and `waveform_<emotion>.png` /",
        "`spectrogram_<emotion>.png` for the first clip of each emotion.",
        "",
    ])


def write_report(manifest: pd.DataFrame, raw_dir: Path, out_dir: Path) -> None:
    """Write the EDA figures and ``summary.md`` into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    plots.plot_counts(manifest, out_dir / "counts.png")
    plots.plot_durations(manifest, out_dir / "durations.png")
    for example in example_files(manifest).itertuples():
        samples, sr = librosa.load(raw_dir / example.file, sr=None)
        title = f"{example.emotion}: {Path(example.file).name}"
        plots.plot_waveform(samples, sr, title, out_dir / f"waveform_{example.emotion}.png")
        plots.plot_spectrogram(samples, sr, title, out_dir / f"spectrogram_{example.emotion}.png")
    (out_dir / "summary.md").write_text(summary_markdown(manifest))
