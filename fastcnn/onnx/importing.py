"""ONNX -> fastcnn: an ONNX graph as a fastcnn model that predicts what it predicts and
trains (its initializers become the layers' parameters).

The graph's inputs become ``Input`` nodes of the functional API and every operator
node is converted in turn (``ops``): into a layer called on the nodes of its inputs,
into a constant computed here (shape arithmetic such as PyTorch's
``x.view(x.size(0), -1)``: Shape, Gather, Unsqueeze, Concat feeding a Reshape; values
that depend on the batch size are None), or into nothing (Identity, a Pad that the
next Conv or AveragePool takes as its padding). The result is a ``Sequential`` when
the layers form a chain, else a ``Graph``.

Memory stays bounded: tensors are checked against their bytes (``reading``), constants
computed here never grow past their inputs, and the activations of one example, which
the layers keep, may not exceed ``MAX_ACTIVATIONS`` elements in all.
"""

import math
import re

import numpy as np
import onnx

from ..model.base import Model
from ..model.graph import Input, Node
from ..model.sequential import Sequential
from . import OnnxImportError
from .reading import FLOAT_TYPES, Attributes, describe, ordered_nodes, read_model, to_array

MIN_OPSET = 7
MAX_ACTIVATIONS = 2 ** 27     # elements of one example's activations, summed over layers


def load(source, input_shape=None):
    """The ONNX model in the file at source (a path, or the file's bytes) as a fastcnn
    model: a Sequential when its layers form a chain, else a Graph (inputs and outputs
    as in the file). input_shape: one example's shape without the batch axis (a list of
    them for several inputs), for a file whose inputs do not give it. Raises
    OnnxImportError, naming the node, operator and attribute, for anything it cannot
    convert (``fastcnn.onnx.supported_operators()`` lists what it can) or any file that
    is not a well-formed ONNX model."""
    from .ops import CONVERTERS
    model, folder = read_model(source)
    graph = model.graph
    ctx = Context(_opset(model), folder, graph)
    inputs = ctx.add_inputs(graph, input_shape)
    for node in ordered_nodes(graph, set(ctx.values)):
        ctx.convert(node, CONVERTERS)
    outputs = []
    for out in graph.output:
        value = ctx.values.get(out.name)
        if not isinstance(value, Node):
            raise OnnxImportError(f"the graph's output {out.name!r} is "
                                  f"{'a constant' if value is not None else 'never computed'}"
                                  f": fastcnn's models compute their outputs from inputs")
        outputs.append(value)
    if not outputs:
        raise OnnxImportError("the graph has no outputs")
    try:
        built = Model(inputs, outputs)
    except (ValueError, TypeError) as e:
        raise OnnxImportError(f"the ONNX graph does not make a fastcnn model: {e}") from e
    return _as_chain(built)


def _opset(model):
    versions = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    newest = onnx.defs.onnx_opset_version()
    if not versions:
        raise OnnxImportError("the model imports no version of the default ONNX opset")
    if not MIN_OPSET <= versions[0] <= newest:
        raise OnnxImportError(f"opset {versions[0]} is not supported (fastcnn reads opsets "
                              f"{MIN_OPSET} to {newest})")
    return versions[0]


def _as_chain(graph):
    """A Sequential of the graph's layers when each takes the one before it, else graph."""
    nodes = graph.nodes
    chain = (len(graph.inputs) == 1 and graph.outputs == (nodes[-1:] or graph.inputs)
             and all(n.inputs == ((nodes[i - 1],) if i else tuple(graph.inputs))
                     for i, n in enumerate(nodes)))
    return Sequential(*[n.layer for n in nodes]) if chain else graph


class Pending:
    """A tensor that a node has changed in a way no layer computes alone, waiting for the
    node that, with it, makes one layer: node, the tensor before, and what was done."""

    only = ""

    def __init__(self, node, detail):
        self.node, self.detail = node, detail


class Padded(Pending):
    """Padded with zeros by a Pad (detail: top, left, bottom, right): the next Conv or
    AveragePool takes them as its padding."""

    only = "a Pad (constant 0) only in front of a Conv or AveragePool"


class Grouped(Pending):
    """Reshaped from (N, C, ...) to (N, C/k, k, ...) (detail: k): a ReduceMax over the
    axis of k makes it a Maxout (what export writes for one)."""

    only = ("a Reshape from (N, C, ...) to (N, C/k, k, ...) only in front of a ReduceMax "
            "over axis 2 (a Maxout)")


class Context:
    """What the converters share: the values made so far (name -> Node, NumPy constant or
    Pending), the opset, the models' dtype, and the activation budget."""

    def __init__(self, opset, folder, graph):
        self.opset, self.folder = opset, folder
        self.values = {}
        self.dtype = np.dtype(np.float32)
        self.activations = 0
        self.static_batch = None
        self.node = self.where = None
        self.uses, self.readers = {}, {}    # value name -> how often, by which operators
        for node in graph.node:
            for name in node.input:
                self.uses[name] = self.uses.get(name, 0) + 1
                self.readers.setdefault(name, set()).add(node.op_type)
        for out in graph.output:
            self.uses[out.name] = self.uses.get(out.name, 0) + 1
            self.readers.setdefault(out.name, set()).add(None)     # the graph's output
        self._names = set()
        for t in graph.initializer:
            if t.name in self.values:
                raise OnnxImportError(f"two initializers are named {t.name!r}")
            self.values[t.name] = to_array(t, folder, f"initializer {t.name!r}")
        if len(graph.sparse_initializer):
            raise OnnxImportError("sparse initializers are not supported")

    # ---- the graph's inputs

    def add_inputs(self, graph, input_shape):
        given = [v for v in graph.input if v.name not in self.values]
        if not given:
            raise OnnxImportError("the graph has no inputs (besides its initializers)")
        shapes = [None] * len(given) if input_shape is None else \
            [input_shape] if len(given) == 1 else list(input_shape)
        if len(shapes) != len(given):
            raise OnnxImportError(f"input_shape gives {len(shapes)} shapes for "
                                  f"{len(given)} inputs")
        nodes = []
        for i, (value, shape) in enumerate(zip(given, shapes)):
            tensor = value.type.tensor_type
            if not value.type.HasField("tensor_type") or tensor.elem_type not in FLOAT_TYPES:
                raise OnnxImportError(f"input {value.name!r} is not a float or double tensor "
                                      f"(fastcnn's models take floating point arrays)")
            if i == 0:
                self.dtype = np.dtype(FLOAT_TYPES[tensor.elem_type])
                first = tensor.shape.dim[:1]
                if first and first[0].HasField("dim_value"):
                    self.static_batch = first[0].dim_value    # a batch size fixed on export
            shape = self._input_shape(value, shape)
            self.budget(math.prod(shape), f"input {value.name!r}")
            node = Input(shape, self.unique(value.name, "input"), self.dtype)
            self.values[value.name] = node
            nodes.append(node)
        return nodes

    def _input_shape(self, value, shape):
        if shape is not None:
            if not isinstance(shape, (tuple, list)) or not all(
                    isinstance(d, (int, np.integer)) and d > 0 for d in shape):
                raise OnnxImportError(f"input_shape must be one example's shape without the "
                                      f"batch axis, e.g. (3, 32, 32); got {shape!r}")
            return tuple(int(d) for d in shape)
        dims = value.type.tensor_type.shape.dim
        known = [d.dim_value if d.HasField("dim_value") else None for d in dims[1:]]
        if not dims or not all(d and d > 0 for d in known):
            raise OnnxImportError(f"input {value.name!r} has shape "
                                  f"{[d.dim_param or d.dim_value for d in dims]}: fastcnn "
                                  f"needs every size but the batch's; pass input_shape=")
        return tuple(known)

    # ---- converting a node

    def convert(self, node, converters):
        self.node, self.where = node, describe(node)
        if node.domain not in ("", "ai.onnx"):
            raise OnnxImportError(f"{self.where}: operators of the domain {node.domain!r} are "
                                  f"not supported")
        convert = converters.get(node.op_type)
        if convert is None:
            raise OnnxImportError(f"{self.where}: the operator {node.op_type} is not "
                                  f"supported (fastcnn.onnx.load converts "
                                  f"{', '.join(sorted(converters))})")
        attrs = Attributes(node, self.where, self.folder)
        try:
            with np.errstate(all="ignore"):     # a file's weights may hold any numbers
                results = convert(self, node, attrs)
            attrs.leftover()
        except OnnxImportError:
            raise
        except (ValueError, TypeError, IndexError, ZeroDivisionError, OverflowError) as e:
            raise OnnxImportError(f"{self.where}: {e}") from e
        results = [r if isinstance(r, (Node, Pending)) else np.asarray(r)   # not scalars
                   for r in (results if isinstance(results, list) else [results])]
        for k, name in enumerate(node.output):
            if k < len(results):
                if name:
                    self.values[name] = results[k]
            elif name and self.uses.get(name):
                raise OnnxImportError(f"{self.where}: its output {k} ({name!r}) is used, but "
                                      f"fastcnn computes only its first "
                                      f"{len(results)} output(s)")

    def input(self, i):
        """The node's input i: a Node, a constant, a Pending, or None if not given."""
        names = self.node.input
        return self.values[names[i]] if i < len(names) and names[i] else None

    def tensor(self, i=0):
        """Input i, which must be a tensor computed from the model's inputs."""
        value = self.input(i)
        if isinstance(value, Node):
            return value
        if isinstance(value, Pending):
            raise OnnxImportError(f"{self.where}: fastcnn has no layer for this operator on the "
                                  f"output of the node before; it supports {value.only}")
        raise OnnxImportError(f"{self.where}: input {i} is "
                              f"{'missing' if value is None else 'a constant'}; fastcnn "
                              f"supports it only computed from the model's inputs")

    def const(self, i, what, default=None, numeric=True):
        """Input i, which must be a constant (an initializer, a Constant, shape arithmetic)."""
        value = self.input(i)
        if value is None:
            if default is None:
                raise OnnxImportError(f"{self.where}: input {i} ({what}) is missing")
            return default
        if not isinstance(value, np.ndarray):
            raise OnnxImportError(f"{self.where}: input {i} ({what}) must be a constant "
                                  f"(an initializer), not a tensor computed by the model")
        if numeric and value.dtype == object:
            raise OnnxImportError(f"{self.where}: input {i} ({what}) depends on the batch "
                                  f"size, which fastcnn models leave free")
        return value

    def weight(self, array, shape=None):
        """A constant as a parameter of the models' dtype (and shape)."""
        array = np.asarray(array)
        if array.dtype.kind not in "fiu":
            raise OnnxImportError(f"{self.where}: a weight holds {array.dtype}, not numbers")
        return np.ascontiguousarray(array if shape is None else array.reshape(shape),
                                    self.dtype)

    def unique(self, name, fallback):
        """A name for a node of the fastcnn graph, from ONNX's: no dots, not taken."""
        base = re.sub(r"[.]+", "_", (name or "").strip("/").replace("/", "_")) or fallback
        name, k = base, 0
        while name in self._names:
            k += 1
            name = f"{base}_{k}"
        self._names.add(name)
        return name

    def budget(self, elements, what):
        self.activations += elements
        if self.activations > MAX_ACTIVATIONS:
            raise OnnxImportError(f"{what}: the activations of one example would exceed "
                                  f"{MAX_ACTIVATIONS:,} elements (importing.MAX_ACTIVATIONS)")

    def call(self, layer, inputs, shape):
        """layer applied to the Nodes inputs, named after the ONNX node; shape: its output
        shape for one example, reserved from the budget before anything is computed."""
        self.budget(math.prod(shape), self.where)
        name = self.unique(self.node.name, self.node.op_type.lower())
        return layer(inputs if getattr(layer, "fan_in", False) else inputs[0], name=name)

    def used_once(self, value):
        """Whether the value named by the node's inputs is read only by this node."""
        names = [n for n in self.node.input if self.values.get(n) is value]
        return len(names) == 1 and self.uses.get(names[0]) == 1

    def read_only_by(self, name, op_type):
        """Whether the value called name is read by nodes of op_type alone (not an output)."""
        return self.readers.get(name) == {op_type}

    def opset_at_least(self, version):
        return self.opset >= version
