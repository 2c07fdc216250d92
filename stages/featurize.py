"""Stage featurize: frame features of every clip, and augmented copies for training."""

from ser.featurize import Settings, featurize_corpus
from ser.params import load_params
from ser.paths import FEATURE_DIR, MANIFEST, RAW_DIR
from ser.tables import read_clips


def main() -> None:
    params = load_params()
    manifest = read_clips(MANIFEST)
    settings = Settings(params.audio, params.features, params.augment)
    print(featurize_corpus(manifest, RAW_DIR, FEATURE_DIR, settings, params.runtime.featurize))


if __name__ == "__main__":
    main()
