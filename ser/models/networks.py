"""Model architectures, selected by ``model.arch``.

- ``seed_lstm``: the tutorial's network on the mean-MFCC "sequence" (the baseline).
- ``cnn1d``: 1-D convolutions over the frame sequence, then statistics pooling.
- ``bigru``: a bidirectional GRU over the frame sequence, then attentive statistics pooling.

Frame models read ``(frames, channels + 1)`` inputs whose last channel marks
real frames (see :mod:`ser.inputs`); they pool over real frames only and apply
SpecAugment-style masking and input noise in training only.
"""

from __future__ import annotations

from typing import Callable

from ser.determinism import pin_cpu_kernels

pin_cpu_kernels()  # before TensorFlow loads (see ser.determinism)

import keras  # noqa: E402
from keras import layers, ops

from ser.params import ModelParams, SpecAugmentParams


@keras.saving.register_keras_serializable(package="ser")
class SplitMask(layers.Layer):
    """Split ``(batch, frames, channels + 1)`` inputs into features and the real-frame mask."""

    def call(self, inputs):
        return inputs[..., :-1], inputs[..., -1]


@keras.saving.register_keras_serializable(package="ser")
class SpecAugment(layers.Layer):
    """Zero random runs of frames and of coefficients, in training only."""

    def __init__(self, time_masks: int, time_width: int, feature_masks: int, feature_width: int, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.time_masks, self.time_width = time_masks, time_width
        self.feature_masks, self.feature_width = feature_masks, feature_width
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _keep(self, batch, size: int, masks: int, width: int, axis: int):
        positions = ops.arange(size)
        positions = ops.reshape(positions, (1, size, 1) if axis == 1 else (1, 1, size))
        keep = ops.ones((batch, 1, 1))
        for _ in range(masks):
            widths = keras.random.randint((batch, 1, 1), 0, width + 1, seed=self.seed_generator)
            starts = keras.random.randint((batch, 1, 1), 0, size, seed=self.seed_generator)
            inside = ops.logical_and(positions >= starts, positions < starts + widths)
            keep = keep * (1.0 - ops.cast(inside, "float32"))
        return keep

    def call(self, inputs, training=None):
        if not training:
            return inputs
        batch, frames, channels = ops.shape(inputs)[0], inputs.shape[1], inputs.shape[2]
        keep = self._keep(batch, frames, self.time_masks, self.time_width, axis=1)
        keep = keep * self._keep(batch, channels, self.feature_masks, self.feature_width, axis=2)
        return inputs * keep

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "time_masks": self.time_masks, "time_width": self.time_width,
            "feature_masks": self.feature_masks, "feature_width": self.feature_width, "seed": self.seed,
        }


@keras.saving.register_keras_serializable(package="ser")
class MaskedStatsPooling(layers.Layer):
    """Mean and standard deviation over real frames, optionally weighted by learned attention."""

    def __init__(self, attention: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.attention = attention
        self.score = layers.Dense(1) if attention else None
        self.supports_masking = True  # consumes the frame mask it is given explicitly

    def build(self, input_shape) -> None:
        if self.score is not None:
            self.score.build(input_shape[0])

    def compute_mask(self, inputs, mask=None):
        return None

    def call(self, inputs):
        values, mask = inputs
        mask = ops.expand_dims(mask, -1)
        if self.attention:
            scores = self.score(values) + (mask - 1.0) * 1e9
            weights = ops.softmax(scores, axis=1) * mask
        else:
            weights = mask / ops.maximum(ops.sum(mask, axis=1, keepdims=True), 1.0)
        mean = ops.sum(values * weights, axis=1)
        var = ops.sum(weights * (values - ops.expand_dims(mean, 1)) ** 2, axis=1)
        return ops.concatenate([mean, ops.sqrt(var + 1e-6)], axis=-1)

    def get_config(self) -> dict:
        return {**super().get_config(), "attention": self.attention}


@keras.saving.register_keras_serializable(package="ser")
class PoolFrames(layers.Layer):
    """Shorten frame sequences: keep the first ``max_frames`` frames (0: all), then average
    each run of ``stride`` frames over its real frames; a pooled frame is real if any of its frames is."""

    def __init__(self, max_frames: int = 0, stride: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.max_frames, self.stride = max_frames, stride

    def call(self, inputs):
        features, mask = inputs
        if self.max_frames:
            features, mask = features[:, : self.max_frames], mask[:, : self.max_frames]
        if self.stride > 1:
            frames, channels = features.shape[1], features.shape[2]
            pad = -frames % self.stride
            if pad:
                features = ops.pad(features, [[0, 0], [0, pad], [0, 0]])
                mask = ops.pad(mask, [[0, 0], [0, pad]])
            steps = (frames + pad) // self.stride
            runs = ops.reshape(features * ops.expand_dims(mask, -1), (-1, steps, self.stride, channels))
            counts = ops.sum(ops.reshape(mask, (-1, steps, self.stride)), axis=2)
            features = ops.sum(runs, axis=2) / ops.expand_dims(ops.maximum(counts, 1.0), -1)
            mask = ops.cast(counts > 0, mask.dtype)
        return features, mask

    def get_config(self) -> dict:
        return {**super().get_config(), "max_frames": self.max_frames, "stride": self.stride}


def seed_lstm(input_shape: tuple[int, ...], n_classes: int, params: ModelParams, seed: int) -> keras.Model:
    """The tutorial's network: LSTM over the (n_mfcc, 1) mean-MFCC "sequence", then dense layers."""
    stack = [
        keras.Input(shape=input_shape),
        layers.LSTM(params.lstm_units, return_sequences=False),
        layers.Dropout(params.dropout),
    ]
    for units in params.dense_units:
        stack += [layers.Dense(units, activation="relu"), layers.Dropout(params.dropout)]
    stack.append(layers.Dense(n_classes, activation="softmax"))
    return keras.Sequential(stack, name="seed_lstm")


def _augmented_frames(inputs, params: ModelParams, seed: int):
    """Features and mask of frame inputs, with training-only masking and noise on the features."""
    features, mask = SplitMask()(inputs)
    spec: SpecAugmentParams = params.spec_augment
    if spec.time_masks or spec.feature_masks:
        features = SpecAugment(spec.time_masks, spec.time_width, spec.feature_masks, spec.feature_width, seed=seed)(features)
    if params.input_noise:
        features = layers.GaussianNoise(params.input_noise, seed=seed)(features)
    return features, mask


def _classifier(pooled, n_classes: int, params: ModelParams):
    hidden = layers.Dropout(params.dropout)(pooled)
    for units in params.dense_units:
        hidden = layers.Dropout(params.dropout)(layers.Dense(units, activation="relu")(hidden))
    return layers.Dense(n_classes, activation="softmax")(hidden)


def cnn1d(input_shape: tuple[int, ...], n_classes: int, params: ModelParams, seed: int) -> keras.Model:
    """Conv1D-BatchNorm-ReLU blocks over the frames, statistics pooling, dense classifier."""
    inputs = keras.Input(shape=input_shape)
    hidden, mask = _augmented_frames(inputs, params, seed)
    for _ in range(params.conv_layers):
        hidden = layers.Conv1D(params.filters, params.kernel_size, padding="same", use_bias=False)(hidden)
        hidden = layers.ReLU()(layers.BatchNormalization()(hidden))
        hidden = layers.SpatialDropout1D(params.dropout)(hidden)
    pooled = MaskedStatsPooling()([hidden, mask])
    return keras.Model(inputs, _classifier(pooled, n_classes, params), name="cnn1d")


def bigru(input_shape: tuple[int, ...], n_classes: int, params: ModelParams, seed: int) -> keras.Model:
    """Bidirectional GRU over the real frames, attentive statistics pooling, dense classifier."""
    inputs = keras.Input(shape=input_shape)
    hidden, mask = _augmented_frames(inputs, params, seed)
    if params.max_frames or params.time_stride > 1:
        hidden, mask = PoolFrames(params.max_frames, params.time_stride)([hidden, mask])
    hidden = layers.Bidirectional(layers.GRU(params.rnn_units, return_sequences=True))(hidden, mask=mask > 0.5)
    pooled = MaskedStatsPooling(attention=True)([hidden, mask])
    return keras.Model(inputs, _classifier(pooled, n_classes, params), name="bigru")


ARCHITECTURES: dict[str, Callable[[tuple[int, ...], int, ModelParams, int], keras.Model]] = {
    "seed_lstm": seed_lstm,
    "cnn1d": cnn1d,
    "bigru": bigru,
}


def build_model(input_shape: tuple[int, ...], n_classes: int, params: ModelParams, seed: int = 0) -> keras.Model:
    """Build the architecture named by ``params.arch``; ``seed`` drives its training-time randomness."""
    return ARCHITECTURES[params.arch](input_shape, n_classes, params, seed)
