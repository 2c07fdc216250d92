"""The tutorial network, seeded training and its reproducibility, on tiny synthetic features."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

keras = pytest.importorskip("keras")

from ser.labels import EMOTIONS  # noqa: E402
from ser.models import build_model  # noqa: E402
from ser.params import ModelParams, TrainParams  # noqa: E402
from ser.split import TEST, TRAIN, VALIDATION  # noqa: E402
from ser.training import save_model, train_model  # noqa: E402

TUTORIAL = ModelParams(arch="seed_lstm", lstm_units=256, dense_units=[128, 64], dropout=0.2)


def toy_data(per_class: int = 6, n_mfcc: int = 40) -> tuple[np.ndarray, pd.DataFrame, np.ndarray]:
    """Mean-MFCC-like vectors whose level depends on the class, with train/val/test parts."""
    rng = np.random.default_rng(0)
    emotions = np.repeat(EMOTIONS, per_class)
    levels = np.array([EMOTIONS.index(e) for e in emotions], dtype=np.float32)
    features = (levels[:, None, None] + rng.normal(0, 0.3, (len(emotions), n_mfcc, 1))).astype(np.float32)
    index = pd.DataFrame({
        "file": [f"clip{i}.wav" for i in range(len(emotions))], "speaker": "OAF", "word": "back", "emotion": emotions,
    })
    parts = np.tile([TRAIN, TRAIN, TRAIN, TRAIN, VALIDATION, TEST], len(EMOTIONS))
    return features, index, parts


def test_seed_lstm_is_the_tutorial_network() -> None:
    model = build_model((40, 1), len(EMOTIONS), TUTORIAL)
    kinds = [(type(layer).__name__, getattr(layer, "units", getattr(layer, "rate", None))) for layer in model.layers]
    assert kinds == [
        ("LSTM", 256), ("Dropout", 0.2), ("Dense", 128), ("Dropout", 0.2),
        ("Dense", 64), ("Dropout", 0.2), ("Dense", 7),
    ]
    assert model.layers[-1].activation.__name__ == "softmax"
    assert model.output_shape == (None, 7)
    # LSTM 4*(256*(1+256)+256) + Dense 256*128+128 + 128*64+64 + 64*7+7
    assert model.count_params() == 264_192 + 32_896 + 8_256 + 455


def test_training_learns_and_is_reproducible_under_a_seed() -> None:
    features, index, parts = toy_data()
    small = ModelParams(arch="seed_lstm", lstm_units=16, dense_units=[8], dropout=0.1)
    train = TrainParams(epochs=3, batch_size=8, learning_rate=0.01, seed=7)
    first, history = train_model(features, index, parts, small, train)
    second, history_again = train_model(features, index, parts, small, train)
    assert len(history["loss"]) == 3 and "val_accuracy" in history
    assert history["loss"] == history_again["loss"]
    np.testing.assert_array_equal(first.predict(features, verbose=0), second.predict(features, verbose=0))
    other, _ = train_model(features, index, parts, small, train.model_copy(update={"seed": 8}))
    assert not np.array_equal(first.predict(features, verbose=0), other.predict(features, verbose=0))


def test_retrained_model_saves_to_identical_bytes_and_loads_back(tmp_path) -> None:
    features, index, parts = toy_data()
    small = ModelParams(arch="seed_lstm", lstm_units=8, dense_units=[], dropout=0.0)
    train = TrainParams(epochs=1, batch_size=8, learning_rate=0.01, seed=1)
    model, _ = train_model(features, index, parts, small, train)
    retrained, _ = train_model(features, index, parts, small, train)
    save_model(tmp_path / "a", model, index, parts, {})
    save_model(tmp_path / "b", retrained, index, parts, {})
    first, second = (tmp_path / d / "model.keras" for d in "ab")
    assert first.read_bytes() == second.read_bytes()
    restored = keras.models.load_model(first)
    np.testing.assert_allclose(restored.predict(features, verbose=0), model.predict(features, verbose=0), rtol=0, atol=1e-6)
