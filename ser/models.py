"""Model architectures, selected by ``model.arch``."""

from __future__ import annotations

from typing import Callable

import keras

from ser.params import ModelParams


def seed_lstm(input_shape: tuple[int, ...], n_classes: int, params: ModelParams) -> keras.Model:
    """The tutorial's network: LSTM over the (n_mfcc, 1) mean-MFCC "sequence", then dense layers."""
    layers = [
        keras.Input(shape=input_shape),
        keras.layers.LSTM(params.lstm_units, return_sequences=False),
        keras.layers.Dropout(params.dropout),
    ]
    for units in params.dense_units:
        layers += [keras.layers.Dense(units, activation="relu"), keras.layers.Dropout(params.dropout)]
    layers.append(keras.layers.Dense(n_classes, activation="softmax"))
    return keras.Sequential(layers, name="seed_lstm")


ARCHITECTURES: dict[str, Callable[[tuple[int, ...], int, ModelParams], keras.Model]] = {
    "seed_lstm": seed_lstm,
}


def build_model(input_shape: tuple[int, ...], n_classes: int, params: ModelParams) -> keras.Model:
    """Build the architecture named by ``params.arch``."""
    return ARCHITECTURES[params.arch](input_shape, n_classes, params)
