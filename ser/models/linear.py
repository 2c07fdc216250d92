"""Utterance classifiers (scikit-learn), exported to ONNX with ``skl2onnx``.

``logreg``: standardization, then multinomial logistic regression with an L2
penalty of strength ``1 / model.logreg_c``, on one vector per clip (see
:mod:`ser.inputs`).
"""

from __future__ import annotations

import numpy as np
import onnx
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from ser.inputs import chunks
from ser.params import ModelParams

MAX_ITER = 5000
OPSET = {"": 15, "ai.onnx.ml": 2}
"""The opsets of the Keras exports, so that the graphs can be joined."""


def fit_classifier(x: np.ndarray, codes: np.ndarray, n_classes: int, params: ModelParams, weights: np.ndarray | None = None) -> Pipeline:
    """Fit ``params.arch`` on inputs ``x`` and class codes ``0 .. n_classes - 1`` (every class needs a clip)."""
    if missing := sorted(set(range(n_classes)) - set(np.unique(codes).tolist())):
        raise ValueError(f"{params.arch} needs training clips of every class; none of class number(s) {missing}")
    scaler = StandardScaler()
    pieces = chunks(len(x), x[:1].nbytes * 2)  # sklearn's statistics of a whole array hold a float64 copy of it
    for rows in pieces:
        scaler.partial_fit(x[rows])
    scaled = np.empty_like(x)
    for rows in pieces:
        scaled[rows] = scaler.transform(x[rows])
    classifier = LogisticRegression(C=params.logreg_c, max_iter=MAX_ITER).fit(scaled, codes, sample_weight=weights)
    return make_pipeline(scaler, classifier)


def export_onnx(pipeline: Pipeline, n_features: int, input_name: str) -> onnx.ModelProto:
    """The fitted pipeline as an ONNX graph: ``input_name`` ``(batch, n_features)`` in, class probabilities out."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    classifier = pipeline.steps[-1][1]
    model = convert_sklearn(
        pipeline, initial_types=[(input_name, FloatTensorType([None, n_features]))],
        options={id(classifier): {"zipmap": False}}, target_opset=OPSET,
    )
    keep = [output for output in model.graph.output if output.name == "probabilities"]
    del model.graph.output[:]
    model.graph.output.extend(keep)
    return model
