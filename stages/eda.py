"""Stage eda: counts, durations, waveforms and spectrograms of the fetched corpus."""

from ser import paths
from ser.eda import write_report
from ser.params import load_params
from ser.tables import read_clips

RAW_DIR, MANIFEST, OUT_DIR = paths.RAW_DIR, paths.MANIFEST, paths.EDA_DIR


def main() -> None:
    load_params()
    write_report(read_clips(MANIFEST), RAW_DIR, OUT_DIR)


if __name__ == "__main__":
    main()
