"""The served graph (:mod:`ser.models.ensemble`): temperature scaling, fitting the temperature, and
joining members' ONNX graphs into one averaged, calibrated graph.

The members are tiny ONNX graphs built here with ``onnx.helper`` (no Keras), and a real logreg export.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from ser.evaluation import expected_calibration_error
from ser.models.ensemble import OUTPUT, TEMPERATURE_RANGE, calibrated, combine, fit_temperature
from ser.models.linear import export_onnx, fit_classifier
from ser.params import load_params

PARAMS_YAML = Path(__file__).resolve().parents[1] / "params.yaml"
IR_VERSION = 8
"""What the tiny members declare: onnxruntime refuses the newest IR versions ``onnx.helper`` would write."""


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def random_probabilities(n: int = 50, classes: int = 5, seed: int = 0, scale: float = 2.0) -> np.ndarray:
    return softmax(scale * np.random.default_rng(seed).standard_normal((n, classes)))


def session(model: onnx.ModelProto) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


# --- calibrated ----------------------------------------------------------------------------------------


def test_temperature_one_is_the_identity():
    p = random_probabilities()
    np.testing.assert_allclose(calibrated(p, 1.0), p, atol=1e-9)


@pytest.mark.parametrize("temperature", [0.1, 0.5, 1.0, 2.0, 7.5])
def test_calibrated_rows_are_distributions_with_the_same_argmax(temperature):
    p = random_probabilities(seed=1)
    out = calibrated(p, temperature)
    assert out.shape == p.shape
    assert np.all(out >= 0)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_array_equal(out.argmax(axis=1), p.argmax(axis=1))


@pytest.mark.parametrize("temperature", [0.25, 0.5, 2.0, 4.0])
def test_calibrated_is_the_power_of_one_over_the_temperature(temperature):
    p = random_probabilities(seed=2, scale=1.0)
    power = p ** (1.0 / temperature)
    np.testing.assert_allclose(calibrated(p, temperature), power / power.sum(axis=1, keepdims=True), rtol=1e-6, atol=1e-9)


def test_a_higher_temperature_flattens_and_a_lower_one_sharpens():
    p = random_probabilities(seed=3)
    top = p.max(axis=1)

    def entropy(q):
        return -(q * np.log(q + 1e-300)).sum(axis=1)

    flat, sharp = calibrated(p, 3.0), calibrated(p, 1 / 3)
    assert np.all(flat.max(axis=1) < top) and np.all(entropy(flat) > entropy(p))
    assert np.all(sharp.max(axis=1) > top) and np.all(entropy(sharp) < entropy(p))
    assert np.all(calibrated(p, 1000.0).max(axis=1) < 1 / p.shape[1] + 0.01)  # toward uniform
    tops = [calibrated(p, t).max(axis=1) for t in (4.0, 2.0, 1.0, 0.5, 0.1, 0.01)]
    assert all(np.all(lower <= higher + 1e-12) for lower, higher in zip(tops, tops[1:]))  # colder: more confident
    clear = np.sort(p, axis=1)[:, -2] < 0.5 * top  # rows with a clear winner become one-hot
    assert clear.sum() > 10 and np.all(calibrated(p, 0.01)[clear].max(axis=1) > 1 - 1e-6)


def test_calibrated_accepts_zeros_and_lists():
    out = calibrated([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]], 2.0)
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out[0], [1.0, 0.0, 0.0], atol=1e-5)
    np.testing.assert_allclose(out[1], [0.5, 0.5, 0.0], atol=1e-5)


def test_calibrated_does_not_modify_its_argument():
    p = random_probabilities(seed=4)
    before = p.copy()
    calibrated(p, 2.5)
    np.testing.assert_array_equal(p, before)


# --- fit_temperature -----------------------------------------------------------------------------------


def calibration_case(power: float, n: int = 3000, classes: int = 5, seed: int = 0):
    """True probabilities, labels drawn from them, and the probabilities a model with a miscalibrated
    confidence reports (``true ** power`` renormalized: over-confident for power > 1)."""
    rng = np.random.default_rng(seed)
    truth = softmax(1.5 * rng.standard_normal((n, classes)))
    codes = np.array([rng.choice(classes, p=row) for row in truth])
    reported = truth ** power
    return reported / reported.sum(axis=1, keepdims=True), codes


def ece(p: np.ndarray, codes: np.ndarray) -> float:
    return expected_calibration_error(p.max(axis=1), p.argmax(axis=1) == codes)


def nll(p: np.ndarray, codes: np.ndarray) -> float:
    return -float(np.mean(np.log(p[np.arange(len(codes)), codes])))


def test_an_over_confident_model_gets_a_temperature_above_one():
    p, codes = calibration_case(power=3.0)
    temperature = fit_temperature(p, codes)
    assert temperature > 1.0
    assert temperature == pytest.approx(3.0, rel=0.2)  # undoing the power recovers the true probabilities
    fixed = calibrated(p, temperature)
    assert ece(fixed, codes) < ece(p, codes)
    assert ece(fixed, codes) < 0.05
    assert nll(fixed, codes) < nll(p, codes)


def test_an_under_confident_model_gets_a_temperature_below_one():
    p, codes = calibration_case(power=1 / 3)
    temperature = fit_temperature(p, codes)
    assert temperature < 1.0
    assert temperature == pytest.approx(1 / 3, rel=0.2)
    fixed = calibrated(p, temperature)
    assert ece(fixed, codes) < ece(p, codes)
    assert nll(fixed, codes) < nll(p, codes)


def test_a_calibrated_model_keeps_a_temperature_near_one():
    p, codes = calibration_case(power=1.0)
    assert fit_temperature(p, codes) == pytest.approx(1.0, abs=0.15)


def test_fitted_temperature_minimizes_the_log_likelihood():
    p, codes = calibration_case(power=2.0, n=800, seed=5)
    best = fit_temperature(p, codes)
    assert TEMPERATURE_RANGE[0] <= best <= TEMPERATURE_RANGE[1]
    for other in (best * 0.8, best * 0.95, best * 1.05, best * 1.25):
        assert nll(calibrated(p, best), codes) <= nll(calibrated(p, other), codes) + 1e-9


def test_fit_temperature_is_deterministic_and_a_plain_float():
    p, codes = calibration_case(power=2.0, n=500, seed=6)
    first, second = fit_temperature(p, codes), fit_temperature(p.copy(), codes.copy())
    assert first == second and type(first) is float


def test_fit_temperature_stays_in_range_on_always_right_predictions():
    """Always right: sharper is always better, so the temperature goes to the bottom of its range."""
    p = random_probabilities(n=100, seed=7)
    temperature = fit_temperature(p, p.argmax(axis=1))
    assert TEMPERATURE_RANGE[0] <= temperature < 0.2


# --- combine -------------------------------------------------------------------------------------------


def tiny_member(input_name: str, n_features: int, n_classes: int, seed: int, frames: bool = False) -> tuple[onnx.ModelProto, np.ndarray]:
    """``softmax(x @ w)`` with fixed seeded weights, over ``x``: ``(batch, n_features)``, or for
    ``frames`` the mean over the time axis of ``(batch, time, n_features)``. Returns the graph and ``w``."""
    w = np.random.default_rng(seed).standard_normal((n_features, n_classes)).astype(np.float32)
    nodes, source = [], input_name
    if frames:
        nodes.append(helper.make_node("ReduceMean", [input_name], ["pooled_time"], axes=[1], keepdims=0))
        source = "pooled_time"
    nodes += [
        helper.make_node("MatMul", [source, "w"], ["logits"]),
        helper.make_node("Softmax", ["logits"], [OUTPUT], axis=-1),  # the members' output is called probabilities too
    ]
    shape = [None, None, n_features] if frames else [None, n_features]
    graph = helper.make_graph(
        nodes, f"tiny{seed}", [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, [None, n_classes])], [numpy_helper.from_array(w, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model, w


def tiny_probabilities(x: np.ndarray, w: np.ndarray, frames: bool = False) -> np.ndarray:
    x = x.astype(np.float64)
    return softmax((x.mean(axis=1) if frames else x) @ w.astype(np.float64))


@pytest.mark.parametrize("temperature", [1.0, 0.5, 2.5])
def test_combined_frames_and_utterance_members_average_and_calibrate(temperature):
    frames_member, w_frames = tiny_member("frames", 4, 3, seed=1, frames=True)
    utterance_member, w_utterance = tiny_member("utterance", 6, 3, seed=2)
    model = combine([frames_member, utterance_member], temperature)
    assert sorted(i.name for i in model.graph.input) == ["frames", "utterance"]
    assert [o.name for o in model.graph.output] == [OUTPUT]
    rng = np.random.default_rng(0)
    run = session(model)
    for batch in (1, 7):  # dynamic batch size
        frames = rng.standard_normal((batch, 5, 4)).astype(np.float32)
        utterance = rng.standard_normal((batch, 6)).astype(np.float32)
        (out,) = run.run(None, {"frames": frames, "utterance": utterance})
        mean = (tiny_probabilities(frames, w_frames, frames=True) + tiny_probabilities(utterance, w_utterance)) / 2
        assert out.shape == (batch, 3)
        np.testing.assert_allclose(out, calibrated(mean, temperature), atol=1e-5)


def test_members_reading_one_input_share_it():
    first, w_first = tiny_member("utterance", 5, 4, seed=3)
    second, w_second = tiny_member("utterance", 5, 4, seed=4)
    third, w_third = tiny_member("utterance", 5, 4, seed=5)
    model = combine([first, second, third], 1.5)
    assert [i.name for i in model.graph.input] == ["utterance"]
    x = np.random.default_rng(1).standard_normal((6, 5)).astype(np.float32)
    (out,) = session(model).run(None, {"utterance": x})
    mean = sum(tiny_probabilities(x, w) for w in (w_first, w_second, w_third)) / 3
    np.testing.assert_allclose(out, calibrated(mean, 1.5), atol=1e-5)


def test_classifiers_on_other_functional_sets_read_their_own_inputs():
    """``logreg`` and ``logreg:compare``: inputs named by set (``ser.inputs.input_name``), of other widths."""
    egemaps, w_egemaps = tiny_member("utterance_egemaps", 5, 4, seed=11)
    compare, w_compare = tiny_member("utterance_compare", 9, 4, seed=12)
    frames, w_frames = tiny_member("frames", 3, 4, seed=13, frames=True)
    model = combine([egemaps, compare, frames], 1.0)
    assert sorted(i.name for i in model.graph.input) == ["frames", "utterance_compare", "utterance_egemaps"]
    rng = np.random.default_rng(3)
    x_e, x_c = rng.standard_normal((6, 5)).astype(np.float32), rng.standard_normal((6, 9)).astype(np.float32)
    x_f = rng.standard_normal((6, 7, 3)).astype(np.float32)
    (out,) = session(model).run(None, {"utterance_egemaps": x_e, "utterance_compare": x_c, "frames": x_f})
    mean = (tiny_probabilities(x_e, w_egemaps) + tiny_probabilities(x_c, w_compare) + tiny_probabilities(x_f, w_frames, frames=True)) / 3
    np.testing.assert_allclose(out, mean, atol=1e-5)


def test_a_single_member_at_temperature_one_is_that_member():
    member, w = tiny_member("pooled", 3, 2, seed=6)
    model = combine([member])
    x = np.random.default_rng(2).standard_normal((9, 3)).astype(np.float32)
    (out,) = session(model).run(None, {"pooled": x})
    (alone,) = session(member).run(None, {"pooled": x})
    np.testing.assert_allclose(out, alone, atol=1e-6)
    np.testing.assert_allclose(out, tiny_probabilities(x, w), atol=1e-5)


def test_combine_leaves_its_members_unchanged():
    first, _ = tiny_member("utterance", 3, 2, seed=7)
    second, _ = tiny_member("frames", 3, 2, seed=8, frames=True)
    before = [first.SerializeToString(), second.SerializeToString()]
    combine([first, second], 2.0)
    combine([first, second], 2.0)  # and can be run twice on the same members
    assert [first.SerializeToString(), second.SerializeToString()] == before


def test_combined_graph_survives_saving(tmp_path):
    first, w_first = tiny_member("utterance", 3, 4, seed=9)
    second, w_second = tiny_member("frames", 3, 4, seed=10, frames=True)
    onnx.save(combine([first, second], 0.7), tmp_path / "model.onnx")
    loaded = onnx.load(tmp_path / "model.onnx")
    onnx.checker.check_model(loaded)
    rng = np.random.default_rng(3)
    utterance, frames = rng.standard_normal((4, 3)).astype(np.float32), rng.standard_normal((4, 8, 3)).astype(np.float32)
    (out,) = session(loaded).run([OUTPUT], {"utterance": utterance, "frames": frames})
    mean = (tiny_probabilities(utterance, w_first) + tiny_probabilities(frames, w_second, frames=True)) / 2
    np.testing.assert_allclose(out, calibrated(mean, 0.7), atol=1e-5)


def test_a_logreg_export_combines_with_another_member():
    rng = np.random.default_rng(11)
    n_classes, n_features = 3, 6
    codes = np.repeat(np.arange(n_classes), 20)
    x = rng.standard_normal((len(codes), n_features)) + 2.0 * np.eye(n_classes, n_features)[codes]
    params = load_params(PARAMS_YAML).model.model_copy(update={"arch": "logreg", "members": []})
    pipeline = fit_classifier(x, codes, n_classes, params)
    logreg = export_onnx(pipeline, n_features, "utterance")
    frames_member, w_frames = tiny_member("frames", 4, n_classes, seed=12, frames=True)
    temperature = 1.7
    model = combine([logreg, frames_member], temperature)
    assert sorted(i.name for i in model.graph.input) == ["frames", "utterance"]
    domains = {opset.domain for opset in model.opset_import}
    assert {"", "ai.onnx.ml"} <= domains  # the classifier's operators stay available
    frames = rng.standard_normal((len(x), 5, 4)).astype(np.float32)
    (out,) = session(model).run(None, {"utterance": x.astype(np.float32), "frames": frames})
    mean = (pipeline.predict_proba(x) + tiny_probabilities(frames, w_frames, frames=True)) / 2
    np.testing.assert_allclose(out, calibrated(mean, temperature), atol=1e-4)
    # with the logreg alone, the graph gives the (calibrated) classifier
    (alone,) = session(combine([logreg], temperature)).run(None, {"utterance": x.astype(np.float32)})
    np.testing.assert_allclose(alone, calibrated(pipeline.predict_proba(x), temperature), atol=1e-4)


def test_two_logreg_exports_reading_one_input_share_it():
    rng = np.random.default_rng(13)
    codes = np.repeat(np.arange(3), 15)
    x = rng.standard_normal((len(codes), 4)) + 2.0 * np.eye(3, 4)[codes]
    base = load_params(PARAMS_YAML).model.model_copy(update={"arch": "logreg", "members": []})
    pipelines = [fit_classifier(x, codes, 3, base.model_copy(update={"logreg_c": c})) for c in (0.05, 5.0)]
    model = combine([export_onnx(p, 4, "utterance") for p in pipelines], 1.0)
    assert [i.name for i in model.graph.input] == ["utterance"]
    (out,) = session(model).run(None, {"utterance": x.astype(np.float32)})
    mean = sum(p.predict_proba(x) for p in pipelines) / 2
    np.testing.assert_allclose(out, mean, atol=1e-4)
