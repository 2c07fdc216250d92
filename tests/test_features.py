"""Frame features (MFCC, log-mel): shapes, padding, silence, tutorial parity, featurize over a manifest."""

from __future__ import annotations

import json

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
    frame_features,
    load_augmented,
    load_features,
    save_features,
)
from ser.inputs import model_inputs
from ser.params import AudioParams, FeatureParams, ModelParams


def _features(feature_params: FeatureParams, **changes) -> FeatureParams:
    return FeatureParams(**{**feature_params.model_dump(), **changes})


def _audio(audio_params: AudioParams, **changes) -> AudioParams:
    return AudioParams(**{**audio_params.model_dump(), **changes})


# The tutorial's settings (librosa defaults): what params.yaml ships with.
TUTORIAL_AUDIO = AudioParams(sr=22050, offset=0.5, duration=3.0, res_type="soxr_hq")
TUTORIAL_FEATURES = FeatureParams(kind="mfcc", n_mfcc=40, n_mels=128, n_fft=2048, hop_length=512)
KINDS = ("mfcc", "logmel")


def _pooled(model_params: ModelParams) -> ModelParams:
    """The tutorial's inputs: seed_lstm, mean over real frames, no deltas, no normalization."""
    return model_params.model_copy(update={"arch": "seed_lstm", "normalize": "none", "deltas": 0})


def _mean_mfcc(features: np.ndarray, valid: int, model_params: ModelParams) -> np.ndarray:
    """The pooled model input of one clip's frames, as a flat vector."""
    inputs = model_inputs(features[np.newaxis], np.array([valid]), np.array(["YAF"]), _pooled(model_params))
    assert inputs.shape == (1, features.shape[1], 1)
    return inputs[0, :, 0]


def test_params_yaml_ships_the_tutorial_settings(audio_params, feature_params):
    assert audio_params == TUTORIAL_AUDIO
    assert feature_params == TUTORIAL_FEATURES


def _tutorial_mean_mfcc(path) -> np.ndarray:
    """The reference from the tutorial the project reproduces."""
    return np.mean(
        librosa.feature.mfcc(y=librosa.load(path, duration=3, offset=0.5)[0], sr=22050, n_mfcc=40).T, axis=0
    )


def test_feature_shape_mfcc(audio_params, feature_params):
    frames = 1 + round(audio_params.duration * audio_params.sr) // feature_params.hop_length
    assert feature_shape(audio_params, feature_params) == (frames, feature_params.n_mfcc) == (130, 40)


def test_feature_shape_logmel(audio_params, feature_params):
    logmel = _features(feature_params, kind="logmel", n_mels=64)
    assert feature_shape(audio_params, logmel) == (130, 64) == (130, logmel.n_channels)
    # n_mfcc plays no part in log-mel features
    assert feature_shape(audio_params, _features(logmel, n_mfcc=13)) == (130, 64)


@pytest.mark.filterwarnings("ignore:n_fft=.*is too large:UserWarning")
@pytest.mark.parametrize("hop_length", [256, 512, 1000])
@pytest.mark.parametrize("n_samples", [1, 511, 512, 513, 66150])
def test_frame_count_matches_librosa(feature_params, hop_length, n_samples):
    params = _features(feature_params, hop_length=hop_length)
    y = np.zeros(n_samples, dtype=np.float32)
    frames = librosa.feature.mfcc(y=y, sr=22050, n_mfcc=params.n_mfcc, n_fft=params.n_fft, hop_length=hop_length)
    assert frame_count(n_samples, params) == frames.shape[1]


@pytest.mark.parametrize("seconds", [4.0, 3.5, 2.0, 0.8])
@pytest.mark.parametrize("kind", KINDS)
def test_clip_features_shape(tmp_path, write_tone, audio_params, feature_params, seconds, kind):
    params = _features(feature_params, kind=kind)
    path = write_tone(tmp_path / "OAF_shape_angry.wav", sr=24414, seconds=seconds)
    features, valid = clip_features(path, audio_params, params)
    n_frames, n_channels = feature_shape(audio_params, params)
    assert features.shape == (n_frames, n_channels)
    assert features.dtype == np.float32
    assert np.all(np.isfinite(features))
    samples = load_window(path, audio_params)
    assert valid == min(1 + len(samples) // params.hop_length, n_frames)
    if seconds >= audio_params.offset + audio_params.duration:
        assert valid == n_frames
    else:
        assert valid < n_frames


def test_logmel_frames_are_the_log_mel_spectrogram(audio_params, feature_params):
    params = _features(feature_params, kind="logmel", n_mels=64, hop_length=256, n_fft=1024)
    samples = (0.1 * np.random.default_rng(1).standard_normal(audio_params.n_samples)).astype(np.float32)
    features, valid = frame_features(samples, audio_params, params)
    mel = librosa.feature.melspectrogram(y=samples, sr=audio_params.sr, n_fft=1024, hop_length=256, n_mels=64)
    np.testing.assert_allclose(features, librosa.power_to_db(mel).T, rtol=1e-5, atol=1e-3)
    assert valid == len(features)


def test_mfcc_frames_are_the_dct_of_the_logmel_frames(audio_params, feature_params):
    """The two kinds share the mel front end: MFCCs are the DCT of the log-mel frames."""
    samples = (0.1 * np.random.default_rng(2).standard_normal(40_000)).astype(np.float32)
    mfcc, valid = frame_features(samples, audio_params, _features(feature_params, kind="mfcc", n_mfcc=20, n_mels=64))
    logmel, valid_logmel = frame_features(samples, audio_params, _features(feature_params, kind="logmel", n_mels=64))
    assert mfcc.shape == (logmel.shape[0], 20) and logmel.shape[1] == 64
    assert valid == valid_logmel
    np.testing.assert_allclose(mfcc, librosa.feature.mfcc(S=logmel.T, n_mfcc=20).T, rtol=1e-5, atol=1e-3)


def test_longer_input_is_cut_to_the_window(audio_params, feature_params):
    rng = np.random.default_rng(4)
    window = (0.1 * rng.standard_normal(audio_params.n_samples)).astype(np.float32)
    longer = np.concatenate([window, rng.standard_normal(5000).astype(np.float32)])
    features, valid = frame_features(longer, audio_params, feature_params)
    expected, expected_valid = frame_features(window, audio_params, feature_params)
    np.testing.assert_array_equal(features, expected)
    assert valid == expected_valid == feature_shape(audio_params, feature_params)[0]


@pytest.mark.parametrize("kind", KINDS)
def test_short_clip_is_zero_padded(tmp_path, write_tone, audio_params, feature_params, kind):
    params = _features(feature_params, kind=kind)
    short = write_tone(tmp_path / "OAF_short_angry.wav", sr=24414, seconds=1.5)
    long = write_tone(tmp_path / "OAF_long_angry.wav", sr=24414, seconds=4.0)
    short_features, short_valid = clip_features(short, audio_params, params)
    long_features, _ = clip_features(long, audio_params, params)
    assert short_features.shape == long_features.shape
    # The padding frames (well past the audio) are all the same: features of zeros.
    padding = short_features[short_valid + 4:]
    assert len(padding) > 50
    np.testing.assert_allclose(padding, np.broadcast_to(padding[-1], padding.shape), atol=1e-4)
    assert not np.allclose(short_features[: short_valid - 4], padding[-1], atol=1.0)
    # and equal the features of the same window zero-padded by hand
    samples = load_window(short, audio_params)
    padded = np.concatenate([samples, np.zeros(audio_params.n_samples - len(samples), np.float32)])
    if kind == "mfcc":
        by_hand = librosa.feature.mfcc(
            y=padded, sr=audio_params.sr, n_mfcc=params.n_mfcc, n_fft=params.n_fft, hop_length=params.hop_length
        ).T
    else:
        by_hand = librosa.power_to_db(librosa.feature.melspectrogram(
            y=padded, sr=audio_params.sr, n_fft=params.n_fft, hop_length=params.hop_length, n_mels=params.n_mels
        )).T
    np.testing.assert_allclose(short_features, by_hand, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seconds", [4.0, 1.2])
def test_silence_gives_finite_features(tmp_path, audio_params, feature_params, kind, seconds):
    params = _features(feature_params, kind=kind)
    path = tmp_path / "OAF_silence_neutral.wav"
    sf.write(str(path), np.zeros(int(24414 * seconds), dtype=np.int16), 24414, subtype="PCM_16")
    features, _ = clip_features(path, audio_params, params)
    assert features.shape == feature_shape(audio_params, params)
    assert np.all(np.isfinite(features))


def test_mean_pooling_ignores_padding(audio_params, feature_params, model_params):
    """The seed_lstm input averages only the frames that hold audio."""
    rng = np.random.default_rng(3)
    samples = (0.1 * rng.standard_normal(30_000)).astype(np.float32)
    frames, valid = frame_features(samples, audio_params, feature_params)
    assert valid == 1 + 30_000 // feature_params.hop_length < len(frames)
    pooled = _mean_mfcc(frames, valid, model_params)
    np.testing.assert_allclose(pooled, frames[:valid].mean(axis=0), rtol=1e-6, atol=1e-5)
    assert not np.allclose(pooled, frames.mean(axis=0), atol=1e-2)


@pytest.mark.parametrize(
    ("sr", "seconds", "channels"),
    [(24414, 2.0, 1), (24414, 4.0, 1), (44100, 1.3, 1), (96000, 1.5, 1), (22050, 3.5, 1), (16000, 2.5, 2)],
)
def test_mean_pooling_equals_tutorial_on_synthetic(tmp_path, write_tone, model_params, sr, seconds, channels):
    path = write_tone(tmp_path / "YAF_ref_happy.wav", sr=sr, seconds=seconds, channels=channels, seed=sr)
    features, valid = clip_features(path, TUTORIAL_AUDIO, TUTORIAL_FEATURES)
    np.testing.assert_allclose(_mean_mfcc(features, valid, model_params), _tutorial_mean_mfcc(path), rtol=0, atol=1e-4)


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
def test_mean_pooling_equals_tutorial_on_real_tess(tess_dir, model_params, relative):
    path = tess_dir / relative
    features, valid = clip_features(path, TUTORIAL_AUDIO, TUTORIAL_FEATURES)
    np.testing.assert_allclose(_mean_mfcc(features, valid, model_params), _tutorial_mean_mfcc(path), rtol=0, atol=1e-4)


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


@pytest.mark.parametrize("kind", KINDS)
def test_featurize_rows_follow_the_manifest(tmp_path, write_tone, audio_params, feature_params, kind):
    params = _features(feature_params, kind=kind)
    raw, manifest = _manifest(tmp_path, write_tone, SPECS)
    manifest = manifest.iloc[[3, 0, 4, 1, 2]]  # not in file order, and a non-default index
    features, index = featurize(manifest, raw, audio_params, params)
    assert features.dtype == np.float32
    assert features.shape == (len(manifest), *feature_shape(audio_params, params))
    assert list(index.columns) == INDEX_COLUMNS
    assert index.index.tolist() == list(range(len(manifest)))
    assert index["file"].tolist() == manifest["file"].tolist()
    assert index[["speaker", "word", "emotion"]].values.tolist() == manifest[["speaker", "word", "emotion"]].values.tolist()
    for row, file in enumerate(manifest["file"]):
        expected, valid = clip_features(raw / file, audio_params, params)
        np.testing.assert_allclose(features[row], expected, rtol=1e-6, atol=1e-5)
        assert index.loc[row, "valid_frames"] == valid
    # rows really differ (a mix-up would show)
    assert not np.allclose(features[0], features[1], atol=1e-2)


def test_featurize_applies_the_transform_to_each_row(tmp_path, write_tone, audio_params, feature_params):
    raw, manifest = _manifest(tmp_path, write_tone, SPECS[:3])
    calls = []

    def transform(samples: np.ndarray, row: int) -> np.ndarray:
        calls.append((row, len(samples)))
        return samples[::-1][: len(samples) // (row + 1)].copy()  # reversed, and shorter for later rows

    features, index = featurize(manifest, raw, audio_params, feature_params, transform=transform)
    assert [row for row, _ in calls] == [0, 1, 2]
    plain, plain_index = featurize(manifest, raw, audio_params, feature_params)
    for row, file in enumerate(manifest["file"]):
        samples = load_window(raw / file, audio_params)
        assert calls[row][1] == len(samples)  # the transform sees the loaded window
        expected, valid = frame_features(samples[::-1][: len(samples) // (row + 1)], audio_params, feature_params)
        np.testing.assert_array_equal(features[row], expected)
        assert index.loc[row, "valid_frames"] == valid
        assert not np.allclose(features[row], plain[row], atol=1e-2)
    # a shorter transformed clip has fewer real frames
    assert index.loc[2, "valid_frames"] < plain_index.loc[2, "valid_frames"]


def test_featurize_empty_manifest(tmp_path, audio_params, feature_params):
    manifest = pd.DataFrame(columns=["file", "speaker", "word", "emotion"])
    features, index = featurize(manifest, tmp_path, audio_params, feature_params)
    assert features.shape == (0, *feature_shape(audio_params, feature_params))
    assert len(index) == 0
    assert list(index.columns) == INDEX_COLUMNS


def test_featurize_bad_clip_names_the_file(tmp_path, write_tone, audio_params, feature_params):
    specs = SPECS[:3] + [("OAF_sad/OAF_tiny_sad.wav", 24414, 0.3, 150.0)]
    raw, manifest = _manifest(tmp_path, write_tone, specs)
    with pytest.raises(FeaturizeError) as info:
        featurize(manifest, raw, audio_params, feature_params)
    message = str(info.value)
    assert "1 clip(s)" in message
    assert "OAF_tiny_sad.wav" in message
    assert "offset" in message
    for name, *_ in SPECS[:3]:
        assert name not in message


def test_featurize_lists_every_bad_file(tmp_path, write_tone, audio_params, feature_params):
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
        featurize(manifest, raw, audio_params, feature_params)
    message = str(info.value)
    assert "4 clip(s)" in message
    for name in [b[0] for b in bad] + ["garbage/YAF_text_sad.wav"]:
        assert name in message
    assert "cannot decode" in message
    for name in (SPECS[0][0], SPECS[1][0]):
        assert name not in message


def test_featurize_names_the_desc_in_its_progress_bar(tmp_path, write_tone, audio_params, feature_params, capsys):
    raw, manifest = _manifest(tmp_path, write_tone, SPECS[:1])
    featurize(manifest, raw, audio_params, feature_params, desc="augment 1/2")
    assert "augment 1/2" in capsys.readouterr().err


def test_save_and_load_features_round_trip(tmp_path, write_tone, audio_params, feature_params):
    raw, manifest = _manifest(tmp_path, write_tone, SPECS[:2])
    features, index = featurize(manifest, raw, audio_params, feature_params)
    copies = np.stack([features[1] + 1, features[0] - 1])
    aug_index = index.iloc[[1, 0]].reset_index(drop=True).assign(source=[1, 0], copy=[1, 1])
    used = {"audio": audio_params.model_dump(), "features": feature_params.model_dump()}
    save_features(tmp_path / "features", features, index, used, (copies, aug_index))
    loaded, loaded_index, params = load_features(tmp_path / "features")
    np.testing.assert_array_equal(loaded, features)
    assert loaded.dtype == np.float32
    pd.testing.assert_frame_equal(loaded_index, index, check_dtype=False)
    assert AudioParams(**params["audio"]) == audio_params
    assert FeatureParams(**params["features"]) == feature_params
    assert json.loads((tmp_path / "features" / "params.json").read_text()) == used
    aug_values, loaded_aug_index = load_augmented(tmp_path / "features")
    np.testing.assert_array_equal(aug_values, copies)
    pd.testing.assert_frame_equal(loaded_aug_index, aug_index, check_dtype=False)


def test_save_and_load_without_augmented_copies(tmp_path, audio_params, feature_params):
    shape = feature_shape(audio_params, feature_params)
    features = np.random.default_rng(0).standard_normal((2, *shape)).astype(np.float32)
    index = pd.DataFrame({"file": ["a.wav", "b.wav"], "speaker": "OAF", "word": ["x", "y"],
                          "emotion": ["sad", "ps"], "valid_frames": [shape[0], 3]})
    empty = pd.DataFrame(columns=[*INDEX_COLUMNS, "source", "copy"])
    save_features(tmp_path, features, index, {}, (np.zeros((0, *shape), np.float32), empty))
    aug_values, aug_index = load_augmented(tmp_path)
    assert aug_values.shape == (0, *shape)
    assert len(aug_index) == 0 and list(aug_index.columns) == [*INDEX_COLUMNS, "source", "copy"]
    np.testing.assert_array_equal(load_features(tmp_path)[0], features)
