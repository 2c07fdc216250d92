"""Stage robustness: features of a stratified draw of the clips through fixed transforms of the recording chain."""

from ser.featurize import Settings, featurize_transforms
from ser.params import load_params
from ser.paths import MANIFEST, RAW_DIR, ROBUSTNESS_DIR
from ser.robustness import draw_clips
from ser.tables import read_clips


def main() -> None:
    params = load_params()
    clips = draw_clips(read_clips(MANIFEST), params.robustness.clips_per_class, params.robustness.seed)
    settings = Settings(params.audio, params.features, params.augment)
    tally = featurize_transforms(clips, RAW_DIR, ROBUSTNESS_DIR, settings, params.runtime.featurize, params.robustness.transforms)
    print(f"{len(clips)} clips through {len(params.robustness.transforms)} transforms: {tally.computed} computed")


if __name__ == "__main__":
    main()
