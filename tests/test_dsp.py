"""ser.dsp equals the librosa computations it stands in for, up to float32 rounding."""

from __future__ import annotations

import subprocess
import sys

import librosa
import numpy as np
import pytest

from ser import dsp


def _signal(seconds: float, sr: int, seed: int = 0) -> np.ndarray:
    """A tone with harmonics, a glide and noise: energy across the spectrum."""
    t = np.arange(int(seconds * sr)) / sr
    rng = np.random.default_rng(seed)
    tone = sum(np.sin(2 * np.pi * f * t * (1 + 0.1 * t)) / k for k, f in enumerate((180, 360, 1100, 2500), start=1))
    return (0.3 * tone + 0.05 * rng.standard_normal(len(t))).astype(np.float32)


@pytest.mark.parametrize("res_type", ["soxr_hq", "soxr_vhq", "soxr_lq", "polyphase"])
@pytest.mark.parametrize(("orig_sr", "target_sr"), [(24414, 16000), (48000, 16000), (8000, 16000), (44100, 22050), (22050, 22050)])
@pytest.mark.parametrize("seconds", [0.013, 1.0, 2.7])
def test_resample_equals_librosa(res_type, orig_sr, target_sr, seconds):
    samples = _signal(seconds, orig_sr)
    ours = dsp.resample(samples, orig_sr, target_sr, res_type)
    theirs = librosa.resample(samples, orig_sr=orig_sr, target_sr=target_sr, res_type=res_type)
    assert ours.dtype == theirs.dtype == np.float32
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("size", [0, 5, 100, 101])
def test_fix_length_equals_librosa(size):
    rows = np.arange(200, dtype=np.float32).reshape(2, 100)
    np.testing.assert_array_equal(dsp.fix_length(rows, size), librosa.util.fix_length(rows, size=size))


@pytest.mark.parametrize(("n_fft", "hop_length"), [(2048, 512), (1024, 512), (512, 128), (256, 256)])
@pytest.mark.parametrize("length", [1, 300, 16000, 16385])
@pytest.mark.filterwarnings("ignore:n_fft=.*is too large")
def test_stft_power_equals_librosa(n_fft, hop_length, length):
    rows = np.stack([_signal(length / 16000, 16000, seed) for seed in range(3)])[:, :length]
    ours = dsp.stft_power(list(rows), length, n_fft, hop_length)
    theirs = np.abs(librosa.stft(y=rows, n_fft=n_fft, hop_length=hop_length)) ** 2
    assert ours.shape == np.swapaxes(theirs, 1, 2).shape
    np.testing.assert_allclose(ours, np.swapaxes(theirs, 1, 2), rtol=1e-4, atol=1e-6 * theirs.max())


@pytest.mark.parametrize(("sr", "n_fft", "n_mels"), [(22050, 2048, 128), (16000, 1024, 128), (16000, 512, 40), (8000, 256, 20), (44100, 2048, 64)])
def test_mel_filters_equal_librosa_and_are_built_once(sr, n_fft, n_mels):
    dsp.mel_filters.cache_clear()
    first = dsp.mel_filters(sr, n_fft, n_mels)
    np.testing.assert_allclose(first, librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels), rtol=1e-6, atol=1e-9)
    assert dsp.mel_filters(sr, n_fft, n_mels) is first
    assert dsp.mel_filters.cache_info().hits == 1


@pytest.mark.parametrize("hz", [0.0, 440.0, 999.9, 1000.0, 1000.1, 4000.0, 11025.0])
def test_the_mel_scale_is_slaneys_and_invertible(hz):
    assert dsp.hz_to_mel(hz) == pytest.approx(librosa.hz_to_mel(hz), rel=1e-12, abs=1e-12)
    assert dsp.mel_to_hz(dsp.hz_to_mel(hz)) == pytest.approx(hz, rel=1e-12, abs=1e-9)


def test_power_to_db_equals_librosa():
    power = np.abs(np.random.default_rng(0).standard_normal((3, 40, 50)).astype(np.float32)) ** 3
    power[0, 0, :5] = 0.0
    np.testing.assert_allclose(dsp.power_to_db(power, amin=1e-10), librosa.power_to_db(power, amin=1e-10, top_db=None), rtol=1e-6)


@pytest.mark.parametrize("count", [13, 20, 40])
def test_dct_gives_librosas_mfccs_of_log_mel_values(count):
    decibels = np.random.default_rng(1).normal(-40, 20, (2, 30, 128)).astype(np.float32)  # (clips, frames, bands)
    ours = dsp.dct(decibels, count, axis=2)
    theirs = librosa.feature.mfcc(S=np.swapaxes(decibels, 1, 2), n_mfcc=count)
    np.testing.assert_allclose(ours, np.swapaxes(theirs, 1, 2), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("width", [3, 5, 9])
@pytest.mark.parametrize(("axis", "shape"), [(1, (2, 31, 4)), (0, (9, 3)), (-1, (3, 12)), (1, (1, 9, 2))])
def test_delta_equals_librosa(order, width, axis, shape):
    values = np.random.default_rng(2).normal(0, 10, shape).astype(np.float32)
    if width > values.shape[axis]:
        pytest.skip("wider than the frames")
    ours = dsp.delta(values, width=width, order=order, axis=axis)
    theirs = librosa.feature.delta(values, width=width, order=order, axis=axis)
    assert ours.dtype == np.float32 and ours.shape == values.shape
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("width", [2, 4, 1, 11])
def test_delta_refuses_an_even_narrow_or_too_wide_window(width):
    with pytest.raises(ValueError, match="delta width"):
        dsp.delta(np.zeros((2, 10, 3), np.float32), width=width, order=1, axis=1)


def test_the_feature_path_does_not_import_librosa():
    """What ``ser predict`` loads to compute features: librosa's import costs about a second."""
    code = (
        "import sys, numpy as np\n"
        "from ser.features import frame_features\nfrom ser.inputs import with_deltas\nfrom ser.params import load_params\n"
        "params = load_params('params.yaml')\n"
        "frames, _ = frame_features(np.ones(8000, np.float32), params.audio, params.features)\n"
        "with_deltas(frames[None], 2)\n"
        "assert 'librosa' not in sys.modules, 'librosa was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_stack_padded_cuts_and_pads_each_row():
    rows = [np.ones(3, np.float64), np.arange(7, dtype=np.float32), np.zeros(0, np.float32)]
    stacked = dsp.stack_padded(rows, 5)
    assert stacked.dtype == np.float32 and stacked.shape == (3, 5)
    np.testing.assert_array_equal(stacked, [[1, 1, 1, 0, 0], [0, 1, 2, 3, 4], [0, 0, 0, 0, 0]])
    np.testing.assert_array_equal(dsp.stack_padded(rows, 3, offset=1), [[0, 1, 1, 1, 0], [0, 0, 1, 2, 0], [0, 0, 0, 0, 0]])


def test_mel_power_sums_each_frame_s_bands():
    power = np.random.default_rng(4).random((3, 7, 513)).astype(np.float32)
    expected = np.einsum("cfb,mb->cfm", power, dsp.mel_filters(16000, 1024, 40))
    np.testing.assert_allclose(dsp.mel_power(power, 16000, 1024, 40), expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("order", [1, 2])
def test_delta_in_chunks_gives_every_value_unchanged(monkeypatch, order):
    """A corpus's frames in chunks of a few clips (bounded memory) give the same bits as all at once."""
    values = np.random.default_rng(5).normal(0, 20, (37, 50, 13)).astype(np.float32)
    whole = dsp.delta(values, width=9, order=order, axis=1)
    monkeypatch.setattr(dsp, "DELTA_CHUNK_BYTES", values[:1].size * 9 * 8 * 4)  # four clips a chunk
    chunked = dsp.delta(values, width=9, order=order, axis=1)
    np.testing.assert_array_equal(chunked, whole)
    assert chunked.dtype == np.float32
