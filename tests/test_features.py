"""Frame features (MFCC, log-mel) of one clip: shapes, padding, silence, librosa and tutorial parity.

Featurizing a whole manifest (``featurize_corpus``) is tested in test_featurize.py."""

from __future__ import annotations

import io
import warnings

import librosa
import numpy as np
import pytest
import soundfile as sf

from ser.audio import AudioError, load_window, normalize_level
from ser.features import (
    audible_length,
    batch_frame_features,
    clip_features,
    feature_shape,
    frame_count,
    frame_features,
)
from ser.inputs import model_inputs
from ser.params import AudioParams, FeatureParams, ModelParams


def _features(feature_params: FeatureParams, **changes) -> FeatureParams:
    return FeatureParams(**{**feature_params.model_dump(), **changes})


def _audio(audio_params: AudioParams, **changes) -> AudioParams:
    return AudioParams(**{**audio_params.model_dump(), **changes})


# The tutorial's settings (librosa defaults). params.yaml keeps them but for the rate and the STFT window
# (audio.sr, features.n_fft; see the README), and adds openSMILE functionals per clip (features.functionals,
# for utterance classifiers: the frame features are the same); the tutorial parity tests below use these.
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


def test_params_yaml_ships_the_tutorial_settings_but_the_rate_window_level_and_functionals(audio_params, feature_params):
    assert TUTORIAL_FEATURES.functionals == []  # the tutorial computes no functional set
    assert feature_params.functionals  # params.yaml computes some, for its utterance classifiers
    assert TUTORIAL_AUDIO.level_dbfs is None and audio_params.level_dbfs is not None  # the tutorial keeps the recorded level
    assert audio_params.model_copy(update={"sr": TUTORIAL_AUDIO.sr, "level_dbfs": None}) == TUTORIAL_AUDIO
    assert feature_params.model_copy(update={"n_fft": TUTORIAL_FEATURES.n_fft, "functionals": []}) == TUTORIAL_FEATURES


def _tutorial_mean_mfcc(path) -> np.ndarray:
    """The reference from the tutorial the project reproduces."""
    return np.mean(
        librosa.feature.mfcc(y=librosa.load(path, duration=3, offset=0.5)[0], sr=22050, n_mfcc=40).T, axis=0
    )


def test_feature_shape_mfcc(audio_params, feature_params):
    frames = 1 + round(audio_params.duration * audio_params.sr) // feature_params.hop_length
    assert feature_shape(audio_params, feature_params) == (frames, feature_params.n_mfcc)
    assert feature_shape(TUTORIAL_AUDIO, TUTORIAL_FEATURES) == (130, 40)  # 1 + 66150 // 512 frames


def test_feature_shape_logmel(audio_params, feature_params):
    frames = 1 + round(audio_params.duration * audio_params.sr) // feature_params.hop_length
    logmel = _features(feature_params, kind="logmel", n_mels=64)
    assert feature_shape(audio_params, logmel) == (frames, 64) == (frames, logmel.n_channels)
    # n_mfcc plays no part in log-mel features
    assert feature_shape(audio_params, _features(logmel, n_mfcc=13)) == (frames, 64)
    assert feature_shape(TUTORIAL_AUDIO, _features(TUTORIAL_FEATURES, kind="logmel", n_mels=64)) == (130, 64)


@pytest.mark.filterwarnings("ignore:n_fft=.*is too large:UserWarning")
@pytest.mark.parametrize("hop_length", [256, 512, 1000])
@pytest.mark.parametrize("n_samples", [1, 511, 512, 513, 66150])
def test_frame_count_matches_librosa(audio_params, feature_params, hop_length, n_samples):
    params = _features(feature_params, hop_length=hop_length)
    y = np.zeros(n_samples, dtype=np.float32)
    frames = librosa.feature.mfcc(y=y, sr=audio_params.sr, n_mfcc=params.n_mfcc, n_fft=params.n_fft, hop_length=hop_length)
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
    samples = normalize_level(load_window(short, audio_params), audio_params.sr, audio_params.level_dbfs)
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


# --- reading a clip from a file object -------------------------------------------------------------


def test_clip_features_from_a_file_object_equal_those_from_the_path(tmp_path, write_tone, audio_params, feature_params):
    path = write_tone(tmp_path / "OAF_bytes_angry.flac", sr=24414, seconds=2.0, format="FLAC")
    from_path = clip_features(path, audio_params, feature_params)
    from_bytes = clip_features(io.BytesIO(path.read_bytes()), audio_params, feature_params, name="OAF_bytes_angry.flac")
    np.testing.assert_array_equal(from_bytes[0], from_path[0])
    assert from_bytes[1] == from_path[1]


def test_clip_features_errors_use_the_name(tmp_path, write_tone, audio_params, feature_params):
    short = write_tone(tmp_path / "OAF_short_angry.wav", sr=24414, seconds=0.3)
    with pytest.raises(AudioError, match=r"^audio/OAF_short_angry\.wav: .*offset"):
        clip_features(io.BytesIO(short.read_bytes()), audio_params, feature_params, name="audio/OAF_short_angry.wav")
    with pytest.raises(AudioError, match=r"^garbage\.wav: cannot decode"):
        clip_features(io.BytesIO(b"not audio" * 100), audio_params, feature_params, name="garbage.wav")
    with pytest.raises(AudioError) as info:  # without a name, a path names itself
        clip_features(short, audio_params, feature_params)
    assert str(short) in str(info.value)


# --- the fast path equals librosa on the whole zero-padded window -------------------------------------


def _reference(samples: np.ndarray, audio: AudioParams, features: FeatureParams) -> tuple[np.ndarray, int]:
    """The former implementation: librosa on the full zero-padded window."""
    padded = librosa.util.fix_length(samples[: audio.n_samples], size=audio.n_samples)
    mel = librosa.feature.melspectrogram(
        y=padded, sr=audio.sr, n_fft=features.n_fft, hop_length=features.hop_length, n_mels=features.n_mels
    )
    frames = librosa.power_to_db(mel)
    if features.kind == "mfcc":
        frames = librosa.feature.mfcc(S=frames, n_mfcc=features.n_mfcc)
    valid = min(frame_count(len(samples), features), frames.shape[1])
    return frames.T.astype(np.float32), valid


def _assert_matches_reference(samples: np.ndarray, audio: AudioParams, features: FeatureParams) -> None:
    with warnings.catch_warnings():  # librosa warns that n_fft exceeds a very short clip; the values are right
        warnings.filterwarnings("ignore", message="n_fft=.*is too large", category=UserWarning)
        values, valid = frame_features(samples, audio, features)
    expected, expected_valid = _reference(samples, audio, features)
    assert values.shape == expected.shape == feature_shape(audio, features)
    assert values.dtype == np.float32
    # the STFT runs in float32 (librosa's in float64): dB values of the quietest bins move by up to ~1e-3
    np.testing.assert_allclose(values, expected, rtol=1e-5, atol=1e-3)
    assert valid == expected_valid


# (n_fft, hop_length, n_mels): the tutorial's, a finer one, one whose hop is the whole frame, and a 10 ms hop
SETTINGS = [(2048, 512, 128), (1024, 256, 64), (512, 512, 40), (400, 160, 40)]
SETTING_IDS = [f"fft{n_fft}-hop{hop}" for n_fft, hop, _ in SETTINGS]


def _settings(kind: str, n_fft: int, hop_length: int, n_mels: int) -> FeatureParams:
    return FeatureParams(kind=kind, n_mfcc=min(40, n_mels), n_mels=n_mels, n_fft=n_fft, hop_length=hop_length)


def _awkward_lengths(audio: AudioParams, n_fft: int, hop: int) -> list[int]:
    """Lengths at the edges: a sample, around one hop, around half a frame, around the window, beyond it."""
    window = audio.n_samples
    return sorted({
        1, 2, hop - 1, hop, hop + 1, n_fft // 2 - 1, n_fft // 2, n_fft // 2 + 1, n_fft, 3 * hop + 7,
        window // 2, window - hop - 1, window - hop, window - 1, window, window + 1, window + 3 * n_fft,
    })


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("n_fft", "hop_length", "n_mels"), SETTINGS, ids=SETTING_IDS)
def test_frame_features_equal_librosa_on_the_padded_window_at_awkward_lengths(
    audio_params, kind, n_fft, hop_length, n_mels
):
    features = _settings(kind, n_fft, hop_length, n_mels)
    rng = np.random.default_rng(n_fft + hop_length)
    for n in _awkward_lengths(audio_params, n_fft, hop_length):
        # a decaying tone plus noise: loud and quiet frames, so power_to_db's top_db floor matters
        t = np.arange(n) / audio_params.sr
        samples = 0.5 * np.sin(2 * np.pi * 220 * t) * np.exp(-3 * t) + 1e-3 * rng.standard_normal(n)
        samples = samples.astype(np.float32)
        _assert_matches_reference(samples, audio_params, features)


@pytest.mark.parametrize("kind", KINDS)
def test_frame_features_equal_librosa_on_the_padded_window_at_awkward_lengths_with_params_yaml(
    audio_params, feature_params, kind
):
    """As above, at params.yaml's own n_fft, hop_length and n_mels."""
    features = _features(feature_params, kind=kind)
    rng = np.random.default_rng(features.n_fft + features.hop_length)
    for n in _awkward_lengths(audio_params, features.n_fft, features.hop_length):
        t = np.arange(n) / audio_params.sr
        samples = 0.5 * np.sin(2 * np.pi * 220 * t) * np.exp(-3 * t) + 1e-3 * rng.standard_normal(n)
        _assert_matches_reference(samples.astype(np.float32), audio_params, features)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("n_fft", "hop_length", "n_mels"), SETTINGS[:2], ids=SETTING_IDS[:2])
@pytest.mark.parametrize("n", [1, 700, 30_000])
def test_frame_features_equal_librosa_on_silence_and_on_a_single_click(
    audio_params, kind, n_fft, hop_length, n_mels, n
):
    features = _settings(kind, n_fft, hop_length, n_mels)
    _assert_matches_reference(np.zeros(n, np.float32), audio_params, features)
    click = np.zeros(n, np.float32)
    click[-1] = 0.9  # the last real sample alone: the last frame that reaches audio must be computed
    _assert_matches_reference(click, audio_params, features)


@pytest.mark.parametrize(
    "relative",
    [
        "OAF_angry/OAF_back_angry.flac",
        "YAF_ps/YAF_back_ps.flac",
        "YAF_angry/YAF_germ_angry.wav",  # AIFF under a .wav name
        "OAF_fear/OAF_food_fear.flac",  # 96 kHz
        "OAF_neutral/OA_bite_neutral.flac",
    ],
)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("n_fft", "hop_length", "n_mels"), SETTINGS[:2], ids=SETTING_IDS[:2])
def test_frame_features_equal_librosa_on_real_tess(tess_dir, audio_params, kind, n_fft, hop_length, n_mels, relative):
    samples = normalize_level(load_window(tess_dir / relative, audio_params), audio_params.sr, audio_params.level_dbfs)
    assert len(samples) < audio_params.n_samples  # TESS clips are shorter than the window: padding is exercised
    features = _settings(kind, n_fft, hop_length, n_mels)
    _assert_matches_reference(samples, audio_params, features)
    values, valid = clip_features(tess_dir / relative, audio_params, features)
    np.testing.assert_array_equal(values, frame_features(samples, audio_params, features)[0])


def test_an_odd_n_fft_is_refused(feature_params):
    """Odd windows frame differently in librosa (1 + (L - 1) // hop frames): params refuse them."""
    with pytest.raises(ValueError, match="n_fft must be even"):
        FeatureParams(**{**feature_params.model_dump(), "n_fft": 1023, "hop_length": 256})


def test_padding_frames_are_the_silence_value(audio_params, feature_params):
    """Frames of pure padding hold the value of silence: all equal, and equal the reference's."""
    logmel = _features(feature_params, kind="logmel")
    samples = (0.2 * np.random.default_rng(5).standard_normal(10_000)).astype(np.float32)
    values, valid = frame_features(samples, audio_params, logmel)
    expected, _ = _reference(samples, audio_params, logmel)
    # frames whose window lies wholly after the audio: top_db below the loudest frame
    first_silent = -(-(len(samples) + logmel.n_fft // 2) // logmel.hop_length)
    silent = values[first_silent:]
    assert len(silent) > 50 and valid < first_silent
    assert np.all(silent == silent[0, 0])
    assert silent[0, 0] == pytest.approx(max(-100.0, float(expected.max()) - 80.0), abs=1e-4)
    np.testing.assert_allclose(silent, expected[first_silent:], atol=1e-4)


@pytest.mark.parametrize(("n_fft", "hop_length"), [(2048, 512), (1024, 256), (512, 512), (400, 160)])
def test_audible_length(audio_params, feature_params, n_fft, hop_length):
    """Transforming ``audible_length`` samples covers every frame whose window reaches real audio."""
    features = _features(feature_params, n_fft=n_fft, hop_length=hop_length)
    window = audio_params.n_samples
    total = feature_shape(audio_params, features)[0]
    for n in (1, 2, hop_length - 1, hop_length, hop_length + 1, 5000, window - hop_length, window - 1, window):
        length = audible_length(n, audio_params, features)
        assert length <= window
        computed = frame_count(max(n, length), features)  # frame_features transforms at least the clip itself
        assert computed <= total
        # every frame not computed starts at or after the last real sample
        assert computed == total or computed * hop_length - n_fft // 2 >= n


@pytest.mark.parametrize("kind", ["mfcc", "logmel"])
def test_a_batch_gives_each_clip_what_it_gets_alone(audio_params, feature_params, kind):
    """Clips of very different lengths computed together equal each computed alone, bit for bit."""
    features = _features(feature_params, kind=kind)
    rng = np.random.default_rng(11)
    lengths = [1, 700, 5_000, 30_000, audio_params.n_samples, audio_params.n_samples + 999]
    clips = [(0.1 * rng.standard_normal(n) * rng.uniform(0.01, 1)).astype(np.float32) for n in lengths]
    together = batch_frame_features(clips, audio_params, features)
    for clip, (values, valid) in zip(clips, together):
        alone, alone_valid = frame_features(clip, audio_params, features)
        assert valid == alone_valid
        np.testing.assert_array_equal(values, alone)
