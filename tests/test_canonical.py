"""The canonical ONNX form: equal models give equal bytes, whatever the exporter named and ordered;
what the model computes is unchanged."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from ser.models.canonical import canonical

FEATURES = 3


def loop_model(names: dict[str, str], shuffled: bool = False, weight: float = 2.0) -> onnx.ModelProto:
    """y = a Loop adding ``x * w`` (w: an outer-scope value the body reads) to a running total three
    times, then a softmax; ``names`` names the intermediate values, ``shuffled`` swaps two independent
    nodes, so that two builds compute the same thing under other names and another order."""
    body = helper.make_graph(
        [
            helper.make_node("Mul", ["x", names["scaled"]], [names["step"]]),
            helper.make_node("Add", [names["total_in"], names["step"]], [names["total_out"]]),
            helper.make_node("Identity", [names["cond_in"]], [names["cond_out"]]),
        ],
        names["body"],
        [
            helper.make_tensor_value_info(names["iteration"], TensorProto.INT64, []),
            helper.make_tensor_value_info(names["cond_in"], TensorProto.BOOL, []),
            helper.make_tensor_value_info(names["total_in"], TensorProto.FLOAT, None),
        ],
        [
            helper.make_tensor_value_info(names["cond_out"], TensorProto.BOOL, []),
            helper.make_tensor_value_info(names["total_out"], TensorProto.FLOAT, None),
        ],
    )
    independent = [
        helper.make_node("Mul", [names["w"], names["one"]], [names["scaled"]], name=names["node"]),
        helper.make_node("Sub", ["x", "x"], [names["zeros"]]),
    ]
    nodes = [
        *(independent[::-1] if shuffled else independent),
        helper.make_node("Loop", [names["trips"], "", names["zeros"]], [names["total"]], body=body),
        helper.make_node("Softmax", [names["total"]], ["y"]),
    ]
    initializers = [
        numpy_helper.from_array(np.full(FEATURES, weight, np.float32), names["w"]),
        numpy_helper.from_array(np.ones(FEATURES, np.float32), names["one"]),
        numpy_helper.from_array(np.array(3, np.int64), names["trips"]),
    ]
    graph = helper.make_graph(
        nodes, "exported", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, FEATURES])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, FEATURES])], initializers,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)


VALUES = ["scaled", "step", "total_in", "total_out", "cond_in", "cond_out", "iteration", "body", "w", "one",
          "zeros", "trips", "total", "node"]
FIRST = {name: f"{name}__1" for name in VALUES}
SECOND = {name: f"model_2/{name}__905" for name in VALUES}


def run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    return ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]


def test_other_names_and_node_order_give_the_same_bytes() -> None:
    first, second = loop_model(FIRST), loop_model(SECOND, shuffled=True)
    assert first.SerializeToString() != second.SerializeToString()
    assert canonical(first).SerializeToString() == canonical(second).SerializeToString()


def test_the_canonical_model_is_valid_and_computes_the_same() -> None:
    model = loop_model(FIRST)
    result = canonical(model)
    onnx.checker.check_model(result, full_check=True)
    x = np.random.default_rng(0).normal(size=(4, FEATURES)).astype(np.float32)
    np.testing.assert_array_equal(run(result, x), run(model, x))


def test_graph_inputs_and_outputs_keep_their_names_and_the_rest_is_renamed() -> None:
    result = canonical(loop_model(SECOND))
    assert [v.name for v in result.graph.input] == ["x"] and [v.name for v in result.graph.output] == ["y"]
    text = str(result)
    assert "__905" not in text and "model_2" not in text


def test_other_weights_give_other_bytes() -> None:
    assert canonical(loop_model(FIRST)).SerializeToString() != canonical(loop_model(FIRST, weight=3.0)).SerializeToString()


def test_the_input_model_is_left_unchanged() -> None:
    model = loop_model(FIRST)
    before = model.SerializeToString()
    canonical(model)
    assert model.SerializeToString() == before


def test_equal_initializers_are_kept_once() -> None:
    model = loop_model(FIRST)
    model.graph.initializer[1].CopyFrom(numpy_helper.from_array(np.full(FEATURES, 2.0, np.float32), FIRST["one"]))
    result = canonical(model)
    onnx.checker.check_model(result, full_check=True)
    assert len(result.graph.initializer) == 2
    x = np.ones((2, FEATURES), np.float32)
    np.testing.assert_array_equal(run(result, x), run(model, x))


@pytest.mark.filterwarnings("ignore")
def test_two_keras_exports_of_one_network_give_the_same_bytes() -> None:
    """tf2onnx names values from process-wide counters and orders nodes differently between exports
    of the same network (a bidirectional GRU: Loop subgraphs reading outer values)."""
    import keras

    from ser.training import export_onnx

    keras.utils.set_random_seed(0)
    frames = keras.Input((10, FEATURES))
    hidden = keras.layers.Bidirectional(keras.layers.GRU(4))(frames)
    network = keras.Model(frames, keras.layers.Dense(2, activation="softmax")(hidden))
    first, second = export_onnx(network, "frames"), export_onnx(network, "frames")
    assert canonical(first).SerializeToString() == canonical(second).SerializeToString()
    x = np.random.default_rng(1).normal(size=(3, 10, FEATURES)).astype(np.float32)
    session = ort.InferenceSession(canonical(first).SerializeToString())
    np.testing.assert_allclose(session.run(None, {"frames": x})[0], network.predict(x, verbose=0), atol=1e-5)
