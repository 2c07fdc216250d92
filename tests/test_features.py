"""MFCC features: shapes, padding, silence, tutorial parity, featurize over a manifest."""

from __future__ import annotations

import librosa
import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from ser.audio import load_window
from ser.features import (
    INDEX_COLUMNS,
    FeaturizeError,
    clip_features,
    feature_shape,
    featurize,
    frame_count,
    load_features,
    mfcc_features,
    save_features,
)
from ser.params import AudioParams, MfccParams


def _mfcc(mfcc_params: MfccParams, **changes) -> MfccParams:
    return MfccParams(**{**mfcc_params.model_dump(), **changes})


def _audio(audio_params: AudioParams, **changes) -> AudioParams:
    return AudioParams(**{**audio_params.model_dump(), **changes})


# The tutorial's settings (librosa defaults): what params.yaml ships with.
TUTORIAL_AUDIO = AudioParams(sr=22050, offset=0.5, duration=3.0, res_type="soxr_hq")
TUTORIAL_MFCC = MfccParams(n_mfcc=40, n_fft=2048, hop_length=512, pooling="mean")


def test_params_yaml_ships_the_tutorial_settings(audio_params, mfcc_params):
    assert audio_params == TUTORIAL_AUDIO
    assert mfcc_params == TUTORIAL_MFCC


def _tutorial_mean_mfcc(path) -> np.ndarray:
    """The reference from the tutorial the project reproduces."""
    return np.mean(
        librosa.feature.mfcc(y=librosa.load(path, duration=3, offset=0.5)[0], sr=22050, n_mfcc=40).T, axis=0
    )


@pytest.fixture
def none_params(mfcc_params):
    return _mfcc(mfcc_params, pooling="none")


def test_feature_shape_mean(audio_params, mfcc_params):
    assert mfcc_params.pooling == "mean"
    assert feature_shape(audio_params, mfcc_params) == (mfcc_params.n_mfcc, 1) == (40, 1)


def test_feature_shape_none(audio_params, none_params):
    frames = 1 + round(audio_params.duration * audio_params.sr) // none_params.hop_length
    assert feature_shape(audio_params, none_params) == (frames, none_params.n_mfcc) == (130, 40)


@pytest.mark.filterwarnings("ignore:n_fft=.*is too large:UserWarning")
@pytest.mark.parametrize("hop_length", [256, 512, 1000])
@pytest.mark.parametrize("n_samples", [1, 511, 512, 513, 66150])
def test_frame_count_matches_librosa(mfcc_params, hop_length, n_samples):
    mfcc = _mfcc(mfcc_params, hop_length=hop_length)
    y = np.zeros(n_samples, dtype=np.float32)
    frames = librosa.feature.mfcc(y=y, sr=22050, n_mfcc=mfcc.n_mfcc, n_fft=mfcc.n_fft, hop_length=hop_length)
    assert frame_count(n_samples, mfcc) == frames.shape[1]


@pytest.mark.parametrize("seconds", [4.0, 3.5, 2.0, 0.8])
@pytest.mark.parametrize("pooling", ["mean", "none"])
def test_clip_features_shape(tmp_path, write_tone, audio_params, mfcc_params, seconds, pooling):
    mfcc = _mfcc(mfcc_params, pooling=pooling)
    path = write_tone(tmp_path / "OAF_shape_angry.wav", sr=24414, seconds=seconds)
    features, valid = clip_features(path, audio_params, mfcc)
    assert features.shape == feature_shape(audio_params, mfcc)
    assert np.all(np.isfinite(features))
    samples = load_window(path, audio_params)
    assert valid == min(1 + len(samples) // mfcc.hop_length, feature_shape(audio_params, _mfcc(mfcc, pooling="none"))[0])
    if seconds >= audio_params.offset + audio_params.duration:
        assert valid == feature_shape(audio_params, _mfcc(mfcc, pooling="none"))[0]
    else:
        assert valid < feature_shape(audio_params, _mfcc(mfcc, pooling="none"))[0]


def test_short_clip_is_zero_padded(tmp_path, write_tone, audio_params, none_params):
    short = write_tone(tmp_path / "OAF_short_angry.wav", sr=24414, seconds=1.5)
    long = write_tone(tmp_path / "OAF_long_angry.wav", sr=24414, seconds=4.0)
    short_features, short_valid = clip_features(short, audio_params, none_params)
    long_features, _ = clip_features(long, audio_params, none_params)
    assert short_features.shape == long_features.shape
    # The padding frames (well past the audio) are all the same: MFCCs of zeros.
    padding = short_features[short_valid + 4:]
    assert len(padding) > 50
    np.testing.assert_allclose(padding, np.broadcast_to(padding[-1], padding.shape), atol=1e-4)
    assert not np.allclose(short_features[: short_valid - 4], padding[-1], atol=1.0)
    # and equal the MFCCs of the same window zero-padded by hand
    samples = load_window(short, audio_params)
    by_hand = librosa.feature.mfcc(
        y=np.concatenate([samples, np.zeros(audio_params.n_samples - len(samples), np.float32)]),
        sr=audio_params.sr, n_mfcc=none_params.n_mfcc, n_fft=none_params.n_fft, hop_length=none_params.hop_length,
    ).T
    np.testing.assert_allclose(short_features, by_hand, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("pooling", ["mean", "none"])
@pytest.mark.parametrize("seconds", [4.0, 1.2])
def test_silence_gives_finite_features(tmp_path, audio_params, mfcc_params, pooling, seconds):
    path = tmp_path / "OAF_silence_neutral.wav"
    sf.write(str(path), np.zeros(int(24414 * seconds), dtype=np.int16), 24414, subtype="PCM_16")
    features, _ = clip_features(path, audio_params, _mfcc(mfcc_params, pooling=pooling))
    assert features.shape == feature_shape(audio_params, _mfcc(mfcc_params, pooling=pooling))
    assert np.all(np.isfinite(features))


def test_mean_pooling_ignores_padding(audio_params, mfcc_params, none_params):
    """Mean pooling averages only the frames that hold audio."""
    rng = np.random.default_rng(3)
    samples = (0.1 * rng.standard_normal(30_000)).astype(np.float32)
    pooled, valid = mfcc_features(samples, audio_params, mfcc_params)
    frames, valid_none = mfcc_features(samples, audio_params, none_params)
    assert valid == valid_none == 1 + 30_000 // mfcc_params.hop_length
    np.testing.assert_allclose(pooled[:, 0], frames[:valid].mean(axis=0), rtol=1e-6, atol=1e-5)
    assert not np.allclose(pooled[:, 0], frames.mean(axis=0), atol=1e-2)


@pytest.mark.parametrize(
    ("sr", "seconds", "channels"),
    [(24414, 2.0, 1), (24414, 4.0, 1), (44100, 1.3, 1), (96000, 1.5, 1), (22050, 3.5, 1), (16000, 2.5, 2)],
)
def test_mean_pooling_equals_tutorial_on_synthetic(tmp_path, write_tone, sr, seconds, channels):
    path = write_tone(tmp_path / "YAF_ref_happy.wav", sr=sr, seconds=seconds, channels=channels, seed=sr)
    features, _ = clip_features(path, TUTORIAL_AUDIO, TUTORIAL_MFCC)
    np.testing.assert_allclose(features[:, 0], _tutorial_mean_mfcc(path), rtol=0, atol=1e-4)


@pytest.mark.parametrize(
    "relative",
    [
        "OAF_angry/OAF_back_angry.flac",
        "YAF_ps/YAF_back_ps.flac",
        "YAF_angry/YAF_germ_angry.wav",
        "OAF_fear/OAF_food_fear.flac",
        "OAF_neutral/OA_bite_neutral.flac",
    ],
)
def test_mean_pooling_equals_tutorial_on_real_tess(tess_dir, relative):
    path = tess_dir / relative
    features, _ = clip_features(path, TUTORIAL_AUDIO, TUTORIAL_MFCC)
    np.testing.assert_allclose(features[:, 0], _tutorial_mean_mfcc(path), rtol=0, atol=1e-4)


def _manifest(tmp_path, write_tone, specs):
    """Write clips under raw/audio and return (raw_dir, manifest) for ``specs`` of (name, sr, seconds, f0)."""
    raw = tmp_path / "raw"
    rows = []
    for name, sr, seconds, f0 in specs:
        file = f"audio/{name}"
        write_tone(raw / file, sr=sr, seconds=seconds, f0=f0, seed=int(f0))
        speaker, word, emotion = name.split("/")[-1].rsplit(".", 1)[0].split("_")
        rows.append({"file": file, "source": name, "speaker": speaker, "word": word, "emotion": emotion})
    return raw, pd.DataFrame(rows)


SPECS = [
    ("YAF_sad/YAF_dog_sad.wav", 24414, 2.2, 140.0),
    ("OAF_angry/OAF_back_angry.wav", 24414, 1.8, 260.0),
    ("OAF_fear/OAF_food_fear.flac", 96000, 1.5, 200.0),
    ("YAF_ps/YAF_bar_ps.flac", 44100, 3.9, 320.0),
    ("OAF_happy/OAF_chalk_happy.wav", 16000, 2.6, 110.0),
]


@pytest.mark.parametrize("pooling", ["mean", "none"])
def test_featurize_rows_follow_the_manifest(tmp_path, write_tone, audio_params, mfcc_params, pooling):
    mfcc = _mfcc(mfcc_params, pooling=pooling)
    raw, manifest = _manifest(tmp_path, write_tone, SPECS)
    manifest = manifest.iloc[[3, 0, 4, 1, 2]].reset_index(drop=True)  # not in file order
    features, index = featurize(manifest, raw, audio_params, mfcc)
    assert features.dtype == np.float32
    assert features.shape == (len(manifest), *feature_shape(audio_params, mfcc))
    assert list(index.columns) == INDEX_COLUMNS
    assert index["file"].tolist() == manifest["file"].tolist()
    assert index[["speaker", "word", "emotion"]].equals(manifest[["speaker", "word", "emotion"]])
    for row, file in enumerate(manifest["file"]):
        expected, valid = clip_features(raw / file, audio_params, mfcc)
        np.testing.assert_allclose(features[row], expected, rtol=1e-6, atol=1e-5)
        assert index.loc[row, "valid_frames"] == valid
    # rows really differ (a mix-up would show)
    assert not np.allclose(features[0], features[1], atol=1e-2)


def test_featurize_empty_manifest(tmp_path, audio_params, mfcc_params):
    manifest = pd.DataFrame(columns=["file", "speaker", "word", "emotion"])
    features, index = featurize(manifest, tmp_path, audio_params, mfcc_params)
    assert features.shape == (0, *feature_shape(audio_params, mfcc_params))
    assert len(index) == 0


def test_featurize_bad_clip_names_the_file(tmp_path, write_tone, audio_params, mfcc_params):
    specs = SPECS[:3] + [("OAF_sad/OAF_tiny_sad.wav", 24414, 0.3, 150.0)]
    raw, manifest = _manifest(tmp_path, write_tone, specs)
    with pytest.raises(FeaturizeError) as info:
        featurize(manifest, raw, audio_params, mfcc_params)
    message = str(info.value)
    assert "1 clip(s)" in message
    assert "OAF_tiny_sad.wav" in message
    assert "offset" in message
    for name, *_ in SPECS[:3]:
        assert name not in message


def test_featurize_lists_every_bad_file(tmp_path, write_tone, audio_params, mfcc_params):
    bad = [
        ("OAF_sad/OAF_tiny_sad.wav", 24414, 0.3, 150.0),
        ("YAF_fear/YAF_tiny_fear.flac", 96000, 0.2, 170.0),
        ("YAF_sad/YAF_half_sad.wav", 24414, 0.5, 190.0),
    ]
    raw, manifest = _manifest(tmp_path, write_tone, [SPECS[0], bad[0], SPECS[1], bad[1], bad[2]])
    (raw / "audio" / "garbage").mkdir()
    (raw / "audio" / "garbage" / "YAF_text_sad.wav").write_text("not audio")
    manifest.loc[len(manifest)] = ["audio/garbage/YAF_text_sad.wav", "garbage/YAF_text_sad.wav", "YAF", "text", "sad"]
    with pytest.raises(FeaturizeError) as info:
        featurize(manifest, raw, audio_params, mfcc_params)
    message = str(info.value)
    assert "4 clip(s)" in message
    for name in [b[0] for b in bad] + ["garbage/YAF_text_sad.wav"]:
        assert name in message
    assert "cannot decode" in message
    for name in (SPECS[0][0], SPECS[1][0]):
        assert name not in message


def test_save_and_load_features_round_trip(tmp_path, write_tone, audio_params, mfcc_params):
    raw, manifest = _manifest(tmp_path, write_tone, SPECS[:2])
    features, index = featurize(manifest, raw, audio_params, mfcc_params)
    save_features(tmp_path / "features", features, index, audio_params, mfcc_params)
    loaded, loaded_index, params = load_features(tmp_path / "features")
    np.testing.assert_array_equal(loaded, features)
    pd.testing.assert_frame_equal(loaded_index, index, check_dtype=False)
    assert AudioParams(**params["audio"]) == audio_params
    assert MfccParams(**params["mfcc"]) == mfcc_params
