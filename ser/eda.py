"""Exploratory report of the fetched corpora: counts by corpus, speaker and emotion, durations, rates, examples."""

from __future__ import annotations

from pathlib import Path

import librosa
import pandas as pd

from ser import plots


def example_files(manifest: pd.DataFrame) -> pd.DataFrame:
    """The first clip (by file name) of each emotion."""
    return manifest.sort_values("file").groupby("emotion", sort=True).head(1).sort_values("emotion")


def summary_markdown(manifest: pd.DataFrame) -> str:
    per_speaker = pd.crosstab(manifest["speaker"], manifest["emotion"], margins=True, margins_name="total")
    per_corpus = pd.crosstab(manifest["corpus"], manifest["emotion"], margins=True, margins_name="total")
    corpora = manifest.groupby("corpus").agg(
        speakers=("speaker", "nunique"), texts=("text", "nunique"), clips=("file", "size"),
        minutes=("duration", lambda d: round(d.sum() / 60, 1)),
    )
    durations = manifest.groupby("corpus")["duration"].describe()[["mean", "min", "50%", "max"]].round(2)
    formats = manifest.groupby(["corpus", "format", "sample_rate", "channels"]).size().rename("clips").reset_index()
    return "\n".join([
        "# Corpus summary",
        "",
        f"{len(manifest)} clips from {manifest['corpus'].nunique()} corpora, {manifest['speaker'].nunique()} speakers, "
        f"{manifest['emotion'].nunique()} emotions, {manifest['duration'].sum() / 60:.1f} minutes of audio.",
        "",
        corpora.to_markdown(),
        "",
        "## Clips per corpus and emotion",
        "",
        per_corpus.to_markdown(),
        "",
        "## Clips per speaker and emotion",
        "",
        per_speaker.to_markdown(),
        "",
        "## Duration (s) per corpus",
        "",
        durations.to_markdown(),
        "",
        "## Formats and sample rates per corpus",
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
