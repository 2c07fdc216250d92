"""The utterance classifier (``model.arch: logreg``): fitting, sample weights, and its ONNX export."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from ser.models.linear import export_onnx, fit_classifier
from ser.params import ModelParams, load_params

PARAMS_YAML = Path(__file__).resolve().parents[1] / "params.yaml"


def logreg_params(**changes) -> ModelParams:
    """params.yaml's model section as a lone logreg (params.yaml trains an ensemble)."""
    return load_params(PARAMS_YAML).model.model_copy(update={"arch": "logreg", "members": [], **changes})


def blobs(n_per_class: int = 30, n_classes: int = 3, n_features: int = 6, spread: float = 1.0, seed: int = 0):
    """Gaussian clusters, one per class, with centres along the first axes (``x``, ``codes``)."""
    rng = np.random.default_rng(seed)
    codes = np.repeat(np.arange(n_classes), n_per_class)
    centres = 4.0 * np.eye(n_classes, n_features)
    x = centres[codes] + spread * rng.standard_normal((len(codes), n_features))
    x[:, -1] = 100.0 + 50.0 * x[:, -1]  # a feature on another scale: the pipeline standardizes it
    order = rng.permutation(len(codes))
    return x[order], codes[order]


def session(model: onnx.ModelProto) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def test_logreg_params_are_valid():
    params = logreg_params()
    assert params.arch == "logreg" and params.members == []
    ModelParams.model_validate(params.model_dump())  # the copy is a valid model section


def test_fit_learns_separable_classes():
    x, codes = blobs()
    pipeline = fit_classifier(x, codes, 3, logreg_params(logreg_c=1.0))
    assert (pipeline.predict(x) == codes).mean() >= 0.95
    test_x, test_codes = blobs(seed=1)  # new clips of the same classes
    assert (pipeline.predict(test_x) == test_codes).mean() >= 0.9
    probabilities = pipeline.predict_proba(test_x)
    assert probabilities.shape == (len(test_x), 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-9)
    assert list(pipeline.classes_) == [0, 1, 2]


def test_fit_is_deterministic():
    x, codes = blobs()
    first = fit_classifier(x, codes, 3, logreg_params())
    second = fit_classifier(x, codes, 3, logreg_params())
    np.testing.assert_array_equal(first.predict_proba(x), second.predict_proba(x))


def test_logreg_c_is_the_inverse_regularization_strength():
    """A smaller C shrinks the weights: the probabilities are less confident."""
    x, codes = blobs()
    strong = fit_classifier(x, codes, 3, logreg_params(logreg_c=0.001))
    weak = fit_classifier(x, codes, 3, logreg_params(logreg_c=10.0))
    assert np.abs(strong[-1].coef_).sum() < np.abs(weak[-1].coef_).sum()
    assert strong.predict_proba(x).max(axis=1).mean() < weak.predict_proba(x).max(axis=1).mean()
    assert strong[-1].C == 0.001 and weak[-1].C == 10.0


@pytest.mark.parametrize("codes, missing", [([0, 0, 1, 1], "[2]"), ([1, 1, 1, 1], "[0, 2]"), ([0, 2, 2, 0], "[1]")])
def test_a_class_without_training_clips_raises(codes, missing):
    x = np.random.default_rng(0).standard_normal((4, 3))
    expected = f"logreg needs training clips of every class; none of class number(s) {missing}"
    with pytest.raises(ValueError, match=re.escape(expected)):
        fit_classifier(x, np.array(codes), 3, logreg_params())


def test_sample_weights_change_the_fit():
    """Two overlapping classes: weighting class 1's clips up moves the boundary toward class 0."""
    rng = np.random.default_rng(3)
    codes = np.repeat([0, 1], 40)
    x = (codes * 1.0 + 1.5 * rng.standard_normal(len(codes)))[:, np.newaxis]
    params = logreg_params(logreg_c=1.0)
    plain = fit_classifier(x, codes, 2, params)
    unit = fit_classifier(x, codes, 2, params, np.ones(len(codes)))
    heavier = fit_classifier(x, codes, 2, params, np.where(codes == 1, 5.0, 1.0))
    middle = np.array([[0.5]])
    np.testing.assert_allclose(unit.predict_proba(x), plain.predict_proba(x), atol=1e-6)  # weights of 1: no change
    assert heavier.predict_proba(middle)[0, 1] > plain.predict_proba(middle)[0, 1] + 0.1
    assert (heavier.predict(x) == 1).sum() > (plain.predict(x) == 1).sum()


# --- ONNX ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_classes", [2, 3, 5])
def test_onnx_export_gives_the_pipelines_probabilities(n_classes):
    x, codes = blobs(n_per_class=15, n_classes=n_classes, n_features=7, spread=2.0)
    pipeline = fit_classifier(x, codes, n_classes, logreg_params(logreg_c=0.5))
    model = export_onnx(pipeline, x.shape[1], "utterance")
    onnx.checker.check_model(model)
    assert [i.name for i in model.graph.input] == ["utterance"]
    assert [o.name for o in model.graph.output] == ["probabilities"]
    run = session(model)
    new_x, _ = blobs(n_per_class=4, n_classes=n_classes, n_features=7, spread=2.0, seed=9)
    for batch in (new_x[:1], new_x[:5], new_x, x):  # a dynamic batch size
        (out,) = run.run(None, {"utterance": batch.astype(np.float32)})
        assert out.shape == (len(batch), n_classes)
        np.testing.assert_allclose(out, pipeline.predict_proba(batch), atol=1e-4)


def test_onnx_export_reads_the_given_input_name_and_width():
    x, codes = blobs(n_features=4)
    pipeline = fit_classifier(x, codes, 3, logreg_params())
    model = export_onnx(pipeline, 4, "pooled")
    (graph_input,) = model.graph.input
    assert graph_input.name == "pooled"
    dims = graph_input.type.tensor_type.shape.dim
    assert len(dims) == 2 and not dims[0].HasField("dim_value") and dims[1].dim_value == 4
    (out,) = session(model).run(["probabilities"], {"pooled": x[:3].astype(np.float32)})
    np.testing.assert_allclose(out, pipeline.predict_proba(x[:3]), atol=1e-4)
    with pytest.raises(Exception):
        session(model).run(None, {"pooled": np.zeros((2, 5), np.float32)})  # the wrong width is refused
