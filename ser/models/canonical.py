"""A canonical form of an ONNX graph: equal models give equal bytes.

Exporters name their nodes and values from process-wide counters (``__84``, ``frozen_905``) and
emit nodes in an order that varies from run to run, so the same weights exported twice give
different files (and a different ``dvc.lock``). :func:`canonical` names every value and node after
a hash of what computes it (the operator, its attributes and, recursively, its inputs: graph
inputs by name, initializers by content) and orders the nodes topologically, ties broken by that
hash; a computation repeated (same operator, attributes and inputs) is kept once. The graph's own
inputs and outputs keep their names; what the model computes is unchanged.
"""

from __future__ import annotations

import hashlib
import heapq
import re
from collections import ChainMap, defaultdict
from typing import Mapping

import onnx
import onnx.helper

HASH_CHARS = 16
"""Hex digits of a hash in a canonical name (64 bits: a collision is not a practical concern)."""
RANDOM_OPERATORS = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli"}
"""Operators whose repeats are not the same computation: kept, each of them."""
NUMBERED_DIMENSION = re.compile(r"unk__\d+")
"""tf2onnx's names for the unknown dimensions of a subgraph's values, numbered by a counter."""


def digest(*parts: str | bytes) -> str:
    """A hex digest of ``parts``, each length-prefixed so that no two sequences collide by concatenation."""
    hasher = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        hasher.update(len(data).to_bytes(8, "little") + data)
    return hasher.hexdigest()


def canonical(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` with canonical names and node order (see the module's docstring)."""
    result = onnx.ModelProto()
    result.CopyFrom(model)
    graph = result.graph
    keep = {value.name for value in [*graph.input, *graph.output]}
    _canonicalize(graph, outer={}, seed="", keep=keep)
    return result


def _forget_numbered_dimensions(graph: onnx.GraphProto) -> None:
    """Leave the dimensions an exporter named from a counter unnamed (unknown)."""
    for value in [*graph.input, *graph.output, *graph.value_info]:
        for dimension in value.type.tensor_type.shape.dim:
            if NUMBERED_DIMENSION.fullmatch(dimension.dim_param):
                dimension.ClearField("dim_param")


def _canonicalize(graph: onnx.GraphProto, outer: Mapping[str, str], seed: str, keep: set[str]) -> set[str]:
    """Rename and reorder ``graph`` in place (its subgraphs as their nodes come); ``outer``: the
    signatures of the enclosing scopes' values. Returns the names of enclosing values the graph reads
    (its implicit inputs)."""
    graph.ClearField("doc_string")  # exporters note the traced function there, numbered by a counter
    _forget_numbered_dimensions(graph)
    subgraph = bool(seed)
    if subgraph:
        _outputs_through_identities(graph)
    output_position = {value.name: str(index) for index, value in enumerate(graph.output)}
    signature: dict[str, str] = {}
    for index, value in enumerate(graph.input):
        signature[value.name] = digest("input", value.name) if value.name in keep else digest(seed, "input", str(index))
    for tensor in graph.initializer:
        signature[tensor.name] = digest(seed, "initializer", _tensor_bytes(tensor))
    read_from_outer: set[str] = set()
    node_signature: list[str] = []
    implicit_inputs: list[set[str]] = []
    seen: dict[str, int] = defaultdict(int)
    repeats: set[int] = set()
    visible = ChainMap(signature, outer)  # this graph's values so far, then the enclosing ones
    for position, node in enumerate(graph.node):
        if not node.domain:  # the default domain, written out by some exporters and left unset by others
            node.ClearField("domain")
        node.ClearField("doc_string")
        inputs = [visible[name] if name else "" for name in node.input]
        read_from_outer |= {name for name in node.input if name and name not in signature}
        attributes, implicit = _attributes(node, visible, digest(seed, *inputs), keep)
        read_from_outer |= {name for name in implicit if name not in signature}
        node_sig = digest(node.domain, node.op_type, *inputs, *attributes)
        if subgraph and node.op_type == "Identity" and node.output[0] in output_position:
            node_sig = digest(node_sig, "output", output_position[node.output[0]])
        seen[node_sig] += 1
        if seen[node_sig] > 1:  # a computation repeated: computed once (which copy came first varies)
            if node.op_type in RANDOM_OPERATORS or keep & set(node.output):
                node_sig = digest(node_sig, str(seen[node_sig]))
            else:
                repeats.add(position)
        for index, name in enumerate(node.output):
            if name:
                signature[name] = digest(node_sig, str(index))
        node_signature.append(node_sig)
        implicit_inputs.append(implicit)
    names = {name: name if name in keep else f"t{sig[:HASH_CHARS]}" for name, sig in signature.items()}
    _reorder(graph, node_signature, implicit_inputs, repeats)
    _rename(graph, names)
    return read_from_outer


def _outputs_through_identities(graph: onnx.GraphProto) -> None:
    """Have an Identity node produce each output of a subgraph that another node computes: exporters
    put the Identity before one output or another (a Loop's state and its scan output), at random."""
    producers = {name: node for node in graph.node for name in node.output}
    for output in graph.output:
        producer = producers.get(output.name)
        if producer is None or producer.op_type == "Identity":
            continue
        value = f"{output.name}/value"
        producer.output[:] = [value if name == output.name else name for name in producer.output]
        for node in graph.node:
            node.input[:] = [value if name == output.name else name for name in node.input]
            for attribute in node.attribute:
                for inner in _subgraphs(attribute):
                    _rename_outer(inner, {output.name: value})
        graph.node.append(onnx.helper.make_node("Identity", [value], [output.name]))


def _attributes(node: onnx.NodeProto, visible: Mapping[str, str], seed: str, keep: set[str]) -> tuple[list[str], set[str]]:
    """The node's attributes as signature parts, its subgraphs canonicalized first (seeded by the
    node's inputs, so that sibling subgraphs get distinct names); and the names its subgraphs read."""
    parts, implicit = [], set()
    for attribute in sorted(node.attribute, key=lambda a: a.name):
        read = set()
        for position, subgraph in enumerate(_subgraphs(attribute)):
            read |= _canonicalize(subgraph, visible, digest(seed, attribute.name, str(position)), keep)
            subgraph.name = attribute.name
        described = onnx.AttributeProto()
        described.CopyFrom(attribute)
        for subgraph in _subgraphs(described):  # the enclosing values it reads, by signature, not by name
            _rename_outer(subgraph, {name: visible[name] for name in read})
        parts.append(described.SerializeToString(deterministic=True))
        implicit |= read
    return parts, implicit


def _subgraphs(attribute: onnx.AttributeProto) -> list[onnx.GraphProto]:
    """The graphs an attribute holds (a Loop's or an If's bodies), if any."""
    return [attribute.g] if attribute.type == onnx.AttributeProto.GRAPH else list(attribute.graphs)


def _tensor_bytes(tensor: onnx.TensorProto) -> bytes:
    """A tensor's type, shape and values, without its name."""
    unnamed = onnx.TensorProto()
    unnamed.CopyFrom(tensor)
    unnamed.name = ""
    return unnamed.SerializeToString(deterministic=True)


def _reorder(graph: onnx.GraphProto, node_signature: list[str], implicit_inputs: list[set[str]], repeats: set[int]) -> None:
    """Order the nodes topologically (inputs, implicit ones included, before their readers), ties
    broken by signature, leaving out the ``repeats`` of an earlier node (their outputs are renamed to
    its outputs' names)."""
    producer = {name: index for index, node in enumerate(graph.node) for name in node.output if name}
    needs = [
        {producer[name] for name in [*node.input, *implicit] if name in producer}
        for node, implicit in zip(graph.node, implicit_inputs)
    ]
    readers: dict[int, list[int]] = defaultdict(list)
    for index, required in enumerate(needs):
        for other in required:
            readers[other].append(index)
    waiting = [len(required) for required in needs]
    ready = [(node_signature[i], i) for i, count in enumerate(waiting) if count == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        _, index = heapq.heappop(ready)
        order.append(index)
        for reader in readers[index]:
            waiting[reader] -= 1
            if waiting[reader] == 0:
                heapq.heappush(ready, (node_signature[reader], reader))
    assert len(order) == len(graph.node), "the graph has a cycle"
    order = [index for index in order if index not in repeats]
    nodes = [graph.node[i] for i in order]
    for node, index in zip(nodes, order):
        node.name = f"n{node_signature[index][:HASH_CHARS]}"
    graph.ClearField("node")
    graph.node.extend(nodes)


def _rename(graph: onnx.GraphProto, names: dict[str, str]) -> None:
    """Apply ``names`` to the graph's own values, keeping one of equal initializers (they share a
    name); the subgraphs' reads of these values are renamed too."""
    for value in [*graph.input, *graph.output, *graph.value_info]:
        value.name = names.get(value.name, value.name)
    for tensor in graph.initializer:
        tensor.name = names[tensor.name]
    for node in graph.node:
        node.input[:] = [names.get(name, name) for name in node.input]
        node.output[:] = [names.get(name, name) for name in node.output]
        for attribute in node.attribute:
            for subgraph in _subgraphs(attribute):
                _rename_outer(subgraph, names)
    initializers = sorted({tensor.name: tensor for tensor in graph.initializer}.values(), key=lambda tensor: tensor.name)
    graph.ClearField("initializer")
    graph.initializer.extend(initializers)
    value_info = sorted(graph.value_info, key=lambda value: value.name)
    graph.ClearField("value_info")
    graph.value_info.extend(value_info)


def _rename_outer(graph: onnx.GraphProto, names: dict[str, str]) -> None:
    """Rename the enclosing scope's values that ``graph`` (and its own subgraphs) read."""
    for node in graph.node:
        node.input[:] = [names.get(name, name) for name in node.input]
        for attribute in node.attribute:
            for subgraph in _subgraphs(attribute):
                _rename_outer(subgraph, names)
