"""Stage eda: counts, durations, waveforms and spectrograms of the fetched corpus."""

from pathlib import Path

from ser.eda import write_report
from ser.params import load_params
from ser.tables import read_clips

RAW_DIR = Path("data/raw")
MANIFEST = Path("data/manifest.csv")
OUT_DIR = Path("reports/eda")


def main() -> None:
    load_params()
    write_report(read_clips(MANIFEST), RAW_DIR, OUT_DIR)


if __name__ == "__main__":
    main()
