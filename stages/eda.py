"""Stage eda: counts, durations, waveforms and spectrograms of the fetched corpus."""

from ser.eda import write_report
from ser.params import load_params
from ser.paths import EDA_DIR, MANIFEST, RAW_DIR
from ser.tables import read_clips


def main() -> None:
    load_params()
    write_report(read_clips(MANIFEST), RAW_DIR, EDA_DIR)


if __name__ == "__main__":
    main()
