"""Audio loading: any container, subtype, rate and channel count; librosa.load parity."""

from __future__ import annotations

import io
import re

import librosa
import numpy as np
import pytest
import soundfile as sf

from conftest import REPO_SR, make_tone
from ser.audio import MIN_SAMPLE_RATE, AudioError, load_window, read_window
from ser.params import AudioParams

# (format, extension, subtype, native sr, channels, seconds)
CASES = [
    # every sample rate, 16-bit mono WAV; clips longer than offset + duration
    *[("WAV", ".wav", "PCM_16", sr, 1, 4.0) for sr in sorted({8000, 16000, 22050, 24414, 44100, 96000} - {REPO_SR})],
    ("WAV", ".wav", "PCM_16", REPO_SR, 1, 4.0),  # params.yaml's audio.sr: no resampling
    # every subtype; clips shorter than offset + duration (the TESS case)
    ("WAV", ".wav", "PCM_U8", 24414, 1, 2.1),
    ("WAV", ".wav", "PCM_16", 24414, 1, 2.1),
    ("WAV", ".wav", "PCM_24", 24414, 1, 2.1),
    ("WAV", ".wav", "FLOAT", 24414, 1, 2.1),
    ("FLAC", ".flac", "PCM_16", 24414, 1, 1.25),
    ("FLAC", ".flac", "PCM_24", 96000, 1, 1.5),
    ("AIFF", ".aiff", "PCM_16", 24414, 1, 2.99),
    ("AIFF", ".aiff", "PCM_24", 44100, 1, 2.0),
    ("AIFF", ".wav", "PCM_16", 24414, 1, 2.2),  # AIFF data under a .wav name
    # stereo in every container
    ("WAV", ".wav", "PCM_16", 44100, 2, 3.0),
    ("WAV", ".wav", "FLOAT", 16000, 2, 4.0),
    ("FLAC", ".flac", "PCM_16", 24414, 2, 2.0),
    ("AIFF", ".aiff", "PCM_16", 8000, 2, 3.7),
]


def _case_id(case):
    fmt, ext, subtype, sr, channels, seconds = case
    return f"{fmt}{ext}-{subtype}-{sr}Hz-{channels}ch-{seconds}s"


def _expected_length(clip_seconds: float, audio: AudioParams) -> int:
    return round(min(clip_seconds - audio.offset, audio.duration) * audio.sr)


@pytest.fixture(params=CASES, ids=[_case_id(c) for c in CASES])
def clip(request, tmp_path, write_tone):
    fmt, ext, subtype, sr, channels, seconds = request.param
    path = write_tone(
        tmp_path / f"OAF_tone_angry{ext}", sr=sr, seconds=seconds, channels=channels,
        subtype=subtype, format=fmt, seed=sr + channels,
    )
    info = sf.info(str(path))
    assert (info.format, info.subtype, info.samplerate, info.channels) == (fmt, subtype, sr, channels)
    return path, sr, channels, seconds


def test_load_window_shape_dtype_length(clip, audio_params):
    path, _, _, seconds = clip
    samples = load_window(path, audio_params)
    assert samples.dtype == np.float32
    assert samples.ndim == 1
    assert abs(len(samples) - _expected_length(seconds, audio_params)) <= 2
    assert np.all(np.isfinite(samples))
    assert 0.05 < np.max(np.abs(samples)) < 1.0  # real signal, not silence or garbage


def test_load_window_matches_librosa_load(clip, audio_params):
    path = clip[0]
    samples = load_window(path, audio_params)
    reference, sr = librosa.load(
        path, sr=audio_params.sr, offset=audio_params.offset,
        duration=audio_params.duration, res_type=audio_params.res_type,
    )
    assert sr == audio_params.sr
    assert samples.shape == reference.shape
    np.testing.assert_allclose(samples, reference, rtol=0, atol=1e-6)


def test_read_window_native_rate_mono_mix(clip, audio_params):
    path, sr, channels, seconds = clip
    samples, native_sr = read_window(path, audio_params.offset, audio_params.duration)
    assert native_sr == sr
    assert samples.dtype == np.float32 and samples.ndim == 1
    data, _ = sf.read(str(path), dtype="float32", always_2d=True)
    start = round(audio_params.offset * sr)
    expected = data[start:start + round(audio_params.duration * sr)]
    assert expected.shape[1] == channels
    assert len(samples) == len(expected)
    assert abs(len(samples) - round(min(seconds - audio_params.offset, audio_params.duration) * sr)) <= 1
    # Stereo becomes the mean of its channels (not the first channel, not the sum).
    np.testing.assert_allclose(samples, expected.mean(axis=1), rtol=0, atol=1e-7)
    if channels > 1:
        assert not np.allclose(samples, expected[:, 0], atol=1e-3)


def test_stereo_load_window_is_mean_of_channels(tmp_path, write_tone, audio_params):
    """At the target rate (no resampling) the window is exactly the channel mean."""
    path = write_tone(tmp_path / "YAF_st_fear.wav", sr=audio_params.sr, seconds=4.0, channels=2, subtype="FLOAT")
    data, _ = sf.read(str(path), dtype="float32", always_2d=True)
    start = round(audio_params.offset * audio_params.sr)
    window = data[start:start + audio_params.n_samples]
    np.testing.assert_allclose(load_window(path, audio_params), window.mean(axis=1), rtol=0, atol=1e-7)


def test_window_starts_at_offset(tmp_path, audio_params):
    """A click placed exactly at ``offset`` is the first sample of the window."""
    sr = audio_params.sr
    data = np.zeros(4 * sr, dtype=np.float32)
    start = round(audio_params.offset * sr)
    data[start] = 0.5
    data[start - 1] = -0.25
    path = tmp_path / "OAF_click_sad.wav"
    sf.write(str(path), data, sr, subtype="FLOAT")
    samples = load_window(path, audio_params)
    assert samples[0] == pytest.approx(0.5)
    assert len(samples) == audio_params.n_samples
    assert np.count_nonzero(samples) == 1


@pytest.mark.parametrize(
    ("offset", "duration"), [(0.0, 1.0), (0.5, 0.5), (1.0, 2.0), (0.5, 10.0), (1.5, 0.5)]
)
def test_other_windows_match_librosa(tmp_path, write_tone, audio_params, offset, duration):
    path = write_tone(tmp_path / "YAF_win_happy.flac", sr=24414, seconds=2.5)
    audio = AudioParams(**{**audio_params.model_dump(), "offset": offset, "duration": duration})
    samples = load_window(path, audio)
    reference, _ = librosa.load(path, sr=audio.sr, offset=offset, duration=duration, res_type=audio.res_type)
    assert abs(len(samples) - round(min(2.5 - offset, duration) * audio.sr)) <= 2
    assert samples.shape == reference.shape
    np.testing.assert_allclose(samples, reference, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    ("offset", "duration"),
    [(0.7, 1.0), (0.25, 1.0), (1.5, 0.25)],  # x 24414 Hz: 17089.8, 6103.5 and 6103.5 samples
)
def test_fractional_sample_window_matches_librosa(tmp_path, write_tone, audio_params, offset, duration):
    path = write_tone(tmp_path / "YAF_frac_happy.flac", sr=24414, seconds=2.5)
    audio = AudioParams(**{**audio_params.model_dump(), "offset": offset, "duration": duration})
    samples = load_window(path, audio)
    reference, _ = librosa.load(path, sr=audio.sr, offset=offset, duration=duration, res_type=audio.res_type)
    assert samples.shape == reference.shape
    np.testing.assert_allclose(samples, reference, rtol=0, atol=1e-6)


@pytest.mark.parametrize("res_type", ["soxr_hq", "soxr_vhq", "polyphase"])
def test_res_type_is_used(tmp_path, write_tone, audio_params, res_type):
    path = write_tone(tmp_path / "OAF_rt_angry.wav", sr=44100, seconds=2.0)
    audio = AudioParams(**{**audio_params.model_dump(), "res_type": res_type})
    reference, _ = librosa.load(path, sr=audio.sr, offset=audio.offset, duration=audio.duration, res_type=res_type)
    np.testing.assert_allclose(load_window(path, audio), reference, rtol=0, atol=1e-6)


@pytest.mark.parametrize("seconds", [0.3, 0.5])
def test_clip_not_longer_than_offset_raises_naming_file(tmp_path, write_tone, audio_params, seconds):
    path = write_tone(tmp_path / "OAF_short_angry.wav", sr=24414, seconds=seconds)
    for call in (lambda: load_window(path, audio_params),
                 lambda: read_window(path, audio_params.offset, audio_params.duration)):
        with pytest.raises(AudioError) as info:
            call()
        assert str(path) in str(info.value)
        assert "offset" in str(info.value)


def test_clip_just_longer_than_offset_loads(tmp_path, write_tone, audio_params):
    """0.1 s past the offset: 0.1 s at the native rate, and 0.1 s at ``audio.sr`` once resampled."""
    path = write_tone(tmp_path / "OAF_tiny_angry.wav", sr=22050, seconds=audio_params.offset + 0.1)
    native, native_sr = read_window(path, audio_params.offset, audio_params.duration)
    assert native_sr == 22050 and len(native) == round(0.1 * 22050)
    samples = load_window(path, audio_params)
    assert len(samples) == round(0.1 * audio_params.sr)


def test_non_audio_file_raises_naming_file(tmp_path, audio_params):
    path = tmp_path / "OAF_text_angry.wav"
    path.write_text("this is not audio, just text that ends in .wav\n" * 20)
    with pytest.raises(AudioError) as info:
        load_window(path, audio_params)
    assert str(path) in str(info.value)
    assert "cannot decode" in str(info.value)


def test_empty_file_raises_naming_file(tmp_path, audio_params):
    path = tmp_path / "OAF_empty_angry.wav"
    path.write_bytes(b"")
    with pytest.raises(AudioError) as info:
        load_window(path, audio_params)
    assert str(path) in str(info.value)


def test_missing_file_raises_audio_error(tmp_path, audio_params):
    path = tmp_path / "OAF_gone_angry.wav"
    with pytest.raises(AudioError) as info:
        load_window(path, audio_params)
    assert str(path) in str(info.value)


def test_nan_samples_raise(tmp_path, audio_params):
    data = np.full(3 * 22050, 0.1, dtype=np.float32)
    data[30000] = np.nan
    path = tmp_path / "OAF_nan_angry.wav"
    sf.write(str(path), data, 22050, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN") as info:
        load_window(path, audio_params)
    assert str(path) in str(info.value)


def test_aiff_under_wav_name_loads(tmp_path, write_tone, audio_params):
    path = write_tone(tmp_path / "YAF_germ_angry.wav", sr=24414, seconds=2.2, format="AIFF")
    assert path.read_bytes()[:4] == b"FORM"
    samples = load_window(path, audio_params)
    assert len(samples) == pytest.approx(_expected_length(2.2, audio_params), abs=2)
    reference, _ = librosa.load(path, sr=audio_params.sr, offset=audio_params.offset,
                                duration=audio_params.duration, res_type=audio_params.res_type)
    np.testing.assert_allclose(samples, reference, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    ("relative", "native_sr", "container"),
    [
        ("YAF_angry/YAF_germ_angry.wav", 24414, "AIFF"),
        ("OAF_fear/OAF_food_fear.flac", 96000, "FLAC"),
        ("OAF_neutral/OA_bite_neutral.flac", 24414, "FLAC"),
    ],
)
def test_real_tess_quirk_files(tess_dir, audio_params, relative, native_sr, container):
    path = tess_dir / relative
    info = sf.info(str(path))
    assert (info.samplerate, info.format) == (native_sr, container)
    samples = load_window(path, audio_params)
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert abs(len(samples) - _expected_length(info.frames / native_sr, audio_params)) <= 2
    reference, _ = librosa.load(path, sr=audio_params.sr, offset=audio_params.offset,
                                duration=audio_params.duration, res_type=audio_params.res_type)
    assert samples.shape == reference.shape
    np.testing.assert_allclose(samples, reference, rtol=0, atol=1e-6)


# --- a file object instead of a path (how featurize workers receive audio) -----------------------------


@pytest.mark.parametrize(
    ("fmt", "ext", "sr", "channels", "seconds"),
    [
        ("WAV", ".wav", 24414, 1, 2.1), ("FLAC", ".flac", 96000, 1, 1.5),
        ("AIFF", ".wav", 44100, 2, 3.7), ("WAV", ".wav", REPO_SR, 1, 4.0),  # the last: no resampling
    ],
)
def test_load_window_from_a_file_object_equals_from_the_path(
    tmp_path, write_tone, audio_params, fmt, ext, sr, channels, seconds
):
    path = write_tone(
        tmp_path / f"OAF_bytes_angry{ext}", sr=sr, seconds=seconds, channels=channels, format=fmt, seed=sr
    )
    expected = load_window(path, audio_params)
    np.testing.assert_array_equal(load_window(io.BytesIO(path.read_bytes()), audio_params, name="x"), expected)
    with path.open("rb") as handle:
        np.testing.assert_array_equal(load_window(handle, audio_params), expected)
    samples, native_sr = read_window(io.BytesIO(path.read_bytes()), audio_params.offset, audio_params.duration)
    assert native_sr == sr
    np.testing.assert_array_equal(samples, read_window(path, audio_params.offset, audio_params.duration)[0])


def test_errors_from_a_file_object_use_its_name(tmp_path, write_tone, audio_params):
    short = write_tone(tmp_path / "OAF_short_angry.wav", sr=24414, seconds=0.3).read_bytes()
    cases = [
        (short, "offset"),
        (b"not audio" * 50, "cannot decode"),
        (b"", "cannot decode"),
        (short[:20], "cannot decode"),  # a truncated header
    ]
    name = "audio/OAF_x_angry.wav"
    for data, reason in cases:
        for call in (lambda: load_window(io.BytesIO(data), audio_params, name=name),
                     lambda: read_window(io.BytesIO(data), audio_params.offset, audio_params.duration, name)):
            with pytest.raises(AudioError) as info:
                call()
            assert str(info.value).startswith("audio/OAF_x_angry.wav: "), info.value
            assert reason in str(info.value)


def test_nan_in_a_file_object_names_it(audio_params):
    data = np.full(3 * 22050, 0.1, dtype=np.float32)
    data[30000] = np.nan
    buffer = io.BytesIO()
    sf.write(buffer, data, 22050, subtype="FLOAT", format="WAV")
    buffer.seek(0)
    with pytest.raises(AudioError, match=r"^clips/OAF_nan_angry\.wav: .*NaN"):
        load_window(buffer, audio_params, name="clips/OAF_nan_angry.wav")


def test_name_overrides_the_path_in_messages(tmp_path, audio_params):
    path = tmp_path / "OAF_text_angry.wav"
    path.write_text("not audio\n" * 50)
    with pytest.raises(AudioError) as info:
        load_window(path, audio_params, name="shown/OAF_text_angry.wav")
    assert str(info.value).startswith("shown/OAF_text_angry.wav: cannot decode")


def _float_wav(samples: np.ndarray, sr: int = 16000) -> io.BytesIO:
    buffer = io.BytesIO()
    sf.write(buffer, samples, sr, subtype="FLOAT", format="WAV")
    buffer.seek(0)
    return buffer


def test_a_damaged_header_rate_below_the_minimum_is_refused(tmp_path, write_tone, audio_params):
    """A header saying 1 Hz made 1.2 s of samples 5 hours long: 6400 windows, minutes of ``ser predict``."""
    path = write_tone(tmp_path / "OAF_slow_angry.wav", sr=16000, seconds=1.2)
    data = bytearray(path.read_bytes())
    data[24:28] = (1).to_bytes(4, "little")  # the fmt chunk's sample rate
    path.write_bytes(bytes(data))
    for call in (lambda: load_window(path, audio_params), lambda: read_window(path, audio_params.offset, audio_params.duration)):
        with pytest.raises(AudioError, match=rf"^{re.escape(str(path))}: sample rate 1 Hz is below {MIN_SAMPLE_RATE} Hz"):
            call()
    lowest = write_tone(tmp_path / "OAF_low_angry.wav", sr=MIN_SAMPLE_RATE, seconds=1.0)
    assert len(load_window(lowest, audio_params)) == round(0.5 * audio_params.sr)


def test_samples_far_beyond_full_scale_are_refused(audio_params):
    """Finite float samples of 1e30 overflowed the features to NaN probabilities (a 500 from the web app)."""
    tone = make_tone(16000, 1.5)
    with pytest.raises(AudioError, match=r"^loud\.wav: samples reach \d\.\d+e\+29, far beyond full scale"):
        load_window(_float_wav(tone * 1e30), audio_params, name="loud.wav")
    # float audio written at 16-bit integer scale is loud, not damaged
    assert np.max(np.abs(load_window(_float_wav(tone * 32767), audio_params, name="int-scale.wav"))) > 1000


def test_read_window_checks_every_sample_it_reads(audio_params):
    """NaN before the model's offset reached the web app's visuals, which read the whole clip (a 500)."""
    samples = make_tone(16000, 1.5)
    samples[1600] = np.nan  # at 0.1 s
    assert np.all(np.isfinite(load_window(_float_wav(samples), audio_params, name="early-nan.wav")))
    with pytest.raises(AudioError, match=r"^early-nan\.wav: .*NaN"):
        read_window(_float_wav(samples), 0.0, 1.5, "early-nan.wav")
