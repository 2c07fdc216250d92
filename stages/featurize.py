"""Stage featurize: frame features of every clip, and augmented copies for training."""

from pathlib import Path

import pandas as pd

from ser.augment import augmented_features
from ser.features import featurize, save_features
from ser.params import load_params

RAW_DIR = Path("data/raw")
OUT_DIR = Path("data/features")


def main() -> None:
    params = load_params()
    manifest = pd.read_csv(RAW_DIR / "manifest.csv")
    values, index = featurize(manifest, RAW_DIR, params.audio, params.features)
    augmented = augmented_features(manifest, RAW_DIR, params.audio, params.features, params.augment)
    used = {"audio": params.audio.model_dump(), "features": params.features.model_dump()}
    save_features(OUT_DIR, values, index, used, augmented)
    print(f"featurized {len(index)} clips and {len(augmented[1])} augmented copies into {OUT_DIR}: {values.shape[1:]}")


if __name__ == "__main__":
    main()
