"""Stage featurize: frame features of every clip, and augmented copies for training."""

from pathlib import Path

from ser.featurize import Settings, featurize_corpus
from ser.params import load_params
from ser.tables import read_clips

RAW_DIR = Path("data/raw")
MANIFEST = Path("data/manifest.csv")
OUT_DIR = Path("data/features")


def main() -> None:
    params = load_params()
    manifest = read_clips(MANIFEST)
    settings = Settings(params.audio, params.features, params.augment)
    print(featurize_corpus(manifest, RAW_DIR, OUT_DIR, settings, params.featurize))


if __name__ == "__main__":
    main()
