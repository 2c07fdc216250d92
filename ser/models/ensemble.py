"""The served graph: one ONNX model that averages its members' class probabilities and calibrates them.

Every model directory's ``model.onnx`` is built here, from one member or several
(``model.arch: ensemble``). Its inputs are named by the kind of input each member
reads (``frames``, ``pooled``, ``utterance``; see :mod:`ser.inputs`), shared by
members of the same kind, and its one output, ``probabilities``, is the mean of the
members' probabilities raised to ``1 / temperature`` and renormalized (temperature
scaling: the temperature is fitted on validation speakers, 1 leaves them as they are).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import compose, helper
from scipy.optimize import minimize_scalar

OUTPUT = "probabilities"
TINY = 1e-12
TEMPERATURE_RANGE = (0.05, 20.0)


def calibrated(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """``probabilities ** (1 / temperature)``, renormalized per row (what the graph computes)."""
    logits = np.log(np.asarray(probabilities, np.float64) + TINY) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    scaled = np.exp(logits)
    return scaled / scaled.sum(axis=1, keepdims=True)


def fit_temperature(probabilities: np.ndarray, codes: np.ndarray) -> float:
    """The temperature that minimizes the negative log-likelihood of the true classes ``codes``."""
    rows = np.arange(len(codes))

    def loss(temperature: float) -> float:
        return -float(np.mean(np.log(calibrated(probabilities, temperature)[rows, codes] + TINY)))

    found = minimize_scalar(loss, bounds=TEMPERATURE_RANGE, method="bounded", options={"xatol": 1e-4})
    return round(float(found.x), 4)


def combine(members: list[onnx.ModelProto], temperature: float = 1.0) -> onnx.ModelProto:
    """One graph computing the calibrated mean of the members' probabilities (each member: inputs
    named by kind, one probabilities output)."""
    nodes, initializers, inputs, outputs, opsets = [], [], {}, [], {}
    for number, member in enumerate(members):
        member = compose.add_prefix(member, prefix=f"m{number}_", rename_inputs=False)
        graph = member.graph
        nodes.extend(graph.node)
        initializers.extend(graph.initializer)
        inputs.update({value.name: value for value in graph.input})
        outputs.append(graph.output[0].name)
        for opset in member.opset_import:
            opsets[opset.domain] = max(opsets.get(opset.domain, 0), opset.version)
    nodes.append(helper.make_node("Mean", outputs, ["mean"]))
    nodes.append(helper.make_node("Constant", [], ["tiny"], value=helper.make_tensor("tiny", onnx.TensorProto.FLOAT, [], [TINY])))
    nodes.append(helper.make_node("Constant", [], ["temperature"], value=helper.make_tensor("temperature", onnx.TensorProto.FLOAT, [], [temperature])))
    nodes.append(helper.make_node("Add", ["mean", "tiny"], ["shifted"]))
    nodes.append(helper.make_node("Log", ["shifted"], ["log"]))
    nodes.append(helper.make_node("Div", ["log", "temperature"], ["scaled"]))
    nodes.append(helper.make_node("Softmax", ["scaled"], [OUTPUT], axis=-1))
    output = helper.make_tensor_value_info(OUTPUT, onnx.TensorProto.FLOAT, [None, None])
    graph = helper.make_graph(nodes, "ser", [inputs[name] for name in sorted(inputs)], [output], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in sorted(opsets.items())])
    model.ir_version = max(member.ir_version for member in members)
    onnx.checker.check_model(model)
    return model
