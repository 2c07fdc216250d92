"""Stage featurize: frame features of every clip, and augmented copies for training."""

from ser import paths
from ser.featurize import Settings, featurize_corpus
from ser.params import load_params
from ser.tables import read_clips

RAW_DIR, MANIFEST, OUT_DIR = paths.RAW_DIR, paths.MANIFEST, paths.FEATURE_DIR


def main() -> None:
    params = load_params()
    manifest = read_clips(MANIFEST)
    settings = Settings(params.audio, params.features, params.augment)
    print(featurize_corpus(manifest, RAW_DIR, OUT_DIR, settings, params.runtime.featurize))


if __name__ == "__main__":
    main()
