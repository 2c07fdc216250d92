"""Stage featurize: MFCC features of every clip in the manifest."""

from pathlib import Path

import pandas as pd

from ser.features import featurize, save_features
from ser.params import load_params

RAW_DIR = Path("data/raw")
OUT_DIR = Path("data/features")


def main() -> None:
    params = load_params()
    manifest = pd.read_csv(RAW_DIR / "manifest.csv")
    features, index = featurize(manifest, RAW_DIR, params.audio, params.mfcc)
    save_features(OUT_DIR, features, index, params.audio, params.mfcc)
    print(f"featurized {len(index)} clips into {OUT_DIR}: {features.shape}")


if __name__ == "__main__":
    main()
