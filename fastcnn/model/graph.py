"""Graph: a model whose layers form any directed acyclic graph, built as in Keras:

    x = Input((1, 28, 28))
    h = ReLU()(BatchNorm2d(8)(Conv2d(1, 8, 3, padding=1)(x)))
    r = BatchNorm2d(8)(Conv2d(8, 8, 3, padding=1)(h))
    y = ReLU()(Add()([r, h]))                        # h is used twice: a skip connection
    model = Model(x, Linear(8 * 28 * 28, 10)(Flatten()(y)))          # a Graph

Calling a layer (or a model) on a symbolic tensor computes nothing: it records a
``Node`` (the layer, the nodes it takes, a name) and returns it, after a forward pass
of one zero example that finds the node's shape and reports a mismatch where the
layer is called. ``Model(inputs, outputs)`` collects the nodes that lead from the
inputs to the outputs. The graph is a plain structure: ``model.inputs``,
``model.nodes`` (in the order forward runs them; each has ``layer``, ``inputs``,
``name``, ``shape``) and ``model.outputs``.

Forward runs the nodes in that order; backward runs them in reverse, and where a
tensor feeds several layers, the gradients they send back are summed (``_accumulate``).
A node's name names its layer's weights ("conv1.weight"): give it with
``layer(x, name="conv1")``, or one is made up from the layer's type ("conv2d",
"conv2d_1", ...).
"""

import re
from collections import OrderedDict

import numpy as np

from .. import backends
from .. import functional as F
from ..nn.layers import Layer
from . import blocks
from .base import Model
from .training import eval_mode


class Node:
    """A tensor of a graph: a model input (``layer`` None) or the output of ``layer``
    applied to ``inputs`` (Nodes). ``shape``: one example's shape, without the batch axis
    (None when not known); ``name``: given, or made up when a model is built."""

    __slots__ = ("layer", "inputs", "name", "shape", "dtype")

    def __init__(self, layer, inputs=(), name=None, shape=None, dtype=None):
        self.layer, self.inputs, self.name = layer, tuple(inputs), name
        self.shape, self.dtype = shape, dtype

    @property
    def label(self):
        """How messages name the node: its name, else its layer (or "an Input")."""
        if self.name is not None:
            return repr(self.name)
        return "an Input" if self.layer is None else blocks.brief(self.layer)

    def __repr__(self):
        what = "Input" if self.layer is None else blocks.brief(self.layer)
        inputs = f", inputs={[i.name or '?' for i in self.inputs]}" if self.inputs else ""
        return f"Node({self.name!r}, {what}{inputs}, shape={self.shape})"


def Input(shape=None, name=None, dtype=None):
    """A model input of the functional API: one example's shape, without the batch axis
    (e.g. (1, 28, 28); None if unknown: shapes are then found at the first forward).
    dtype: what the input will hold; by default the model's (its weights' dtype)."""
    if shape is not None:
        if not isinstance(shape, (tuple, list)) or not all(
                isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0
                for s in shape):
            raise ValueError(f"Input: shape must be a tuple of positive ints (one example's "
                             f"shape, without the batch axis), got {shape!r}")
        shape = tuple(int(s) for s in shape)
    return Node(None, (), _checked_name("Input", name), shape,
                None if dtype is None else np.dtype(dtype))


def _checked_name(where, name):
    if name is not None and (not isinstance(name, str) or not name or "." in name):
        raise ValueError(f"{where}: name must be a non-empty string without dots, "
                         f"got {name!r}")
    return name


# ---------------------------------------------------------------- calling a block on nodes


def is_symbolic(args):
    """Whether a call's arguments are Nodes (or lists of them) rather than arrays."""
    flat = [a for arg in args for a in (arg if isinstance(arg, (list, tuple)) else (arg,))]
    nodes = [isinstance(a, Node) for a in flat]
    if any(nodes) and not all(nodes):
        raise TypeError("a layer was called on symbolic tensors (Input(...) and what layers "
                        "make of them) mixed with arrays")
    return bool(flat) and all(nodes)


def _fan_in(block):
    return getattr(block, "fan_in", False)


def call(block, args, name=None):
    """The Node of block applied to the nodes args: what layer(node), Add()([a, b]) and
    model(node) return."""
    where = blocks.brief(block)
    if _fan_in(block):
        nodes = [n for arg in args for n in (arg if isinstance(arg, (list, tuple)) else (arg,))]
    elif any(isinstance(arg, (list, tuple)) for arg in args):
        raise TypeError(f"{where} takes one input, not a list (Add, Multiply and Concat "
                        f"merge several)")
    else:
        nodes = list(args)
    wanted = len(block.inputs) if isinstance(block, Graph) else None if _fan_in(block) else 1
    if isinstance(block, Graph) and len(block.outputs) != 1:
        raise TypeError(f"{where} has {len(block.outputs)} outputs; only a model with one "
                        f"output can be called on a node")
    if wanted is not None and len(nodes) != wanted:
        raise TypeError(f"{where} takes {wanted} input(s), got {len(nodes)}")
    return _node(block, nodes, _checked_name(where, name))


def _node(block, nodes, name):
    node = Node(block, nodes, name)
    if all(n.shape is not None for n in nodes):
        node.shape, node.dtype = _infer(block, nodes)
    return node


def _infer(block, nodes):
    """(shape, dtype) of block's output for inputs of the nodes' shapes: a forward pass of
    one zero example in eval mode (the running statistics and dropout's steps unchanged),
    in the block's dtype, where its parameters live."""
    params = [p for layer in blocks.leaves(block) for p in layer.params.values()]
    where = backends.get("cuda" if params and backends.on_gpu(params[0]) else "cpu")
    known = [n.dtype for n in nodes if n.dtype is not None]
    dtype = params[0].dtype if params else max(known, key=lambda d: d.itemsize) if known \
        else np.float32     # an Input's dtype is the model's: known once a layer has weights
    examples = [where.zeros((1,) + n.shape, dtype) for n in nodes]
    modes = [(layer, layer.training) for layer in blocks.leaves(block)]
    try:
        for layer, _ in modes:
            layer.train(False)
        y = _apply(block, examples)
    except (ValueError, TypeError) as e:
        kind = ValueError if isinstance(e, ValueError) else TypeError
        shown = ", ".join(f"{n.label} of shape {n.shape}" for n in nodes)
        raise kind(f"{blocks.brief(block)} called on {shown}: {e}") from None
    finally:
        for layer, mode in modes:
            layer.train(mode)
        block.forget()
    return tuple(y.shape[1:]), y.dtype


def _apply(block, arrays):
    """block's forward on the arrays of its input nodes."""
    return block.forward(list(arrays)) if _fan_in(block) else block.forward(*arrays)


def _input_grads(block, dx, count):
    """The gradients block's backward returned, one per input node."""
    return list(dx) if _fan_in(block) or count > 1 else [dx]


def _accumulate(grads, node, dx):
    """Add dx to the gradient of node's tensor. A tensor used by several layers gets the
    sum of what each sends back (micrograd's +=): the chain rule over every path."""
    if node in grads:
        grads[node] = F.add(grads[node], dx)
    else:
        grads[node] = dx


# ---------------------------------------------------------------- the model


class Graph(Model):
    """Layers connected as a directed acyclic graph, with one or more inputs and outputs:
    built by Model(inputs, outputs) from the nodes of the functional API."""

    FORMAT = "fastcnn.Graph"

    def __init__(self, inputs, outputs):
        inputs, outputs = _node_list(inputs, "inputs"), _node_list(outputs, "outputs")
        order = _topological(outputs)
        _check_inputs(inputs, outputs, order)
        own = {}      # the user's nodes -> this model's copies, named
        for n in inputs + [n for n in order if n.layer is not None]:
            own[n] = Node(n.layer, [own[i] for i in n.inputs], n.name, n.shape, n.dtype)
        self.inputs = [own[n] for n in inputs]
        self.nodes = [own[n] for n in order if n.layer is not None]
        self.outputs = [own[n] for n in outputs]
        _name(self.inputs + self.nodes)
        super().__init__(OrderedDict((n.name, n.layer) for n in self.nodes))

    def __getitem__(self, name):
        """A node's layer by its name (Keras's get_layer)."""
        if name not in self.children:
            raise KeyError(f"the graph has no node {name!r} (its nodes: "
                           f"{', '.join(self.children)})")
        return self.children[name]

    def __repr__(self):
        nodes = "".join(f"\n  {n.name} = {blocks.brief(n.layer)}"
                        f"({', '.join(i.name for i in n.inputs)})" for n in self.nodes)
        return (f"Graph(inputs={[n.name for n in self.inputs]}, "
                f"outputs={[n.name for n in self.outputs]}){nodes}")

    # ---- forward and backward

    def forward(self, *xs):
        if len(xs) == 1 and isinstance(xs[0], (list, tuple)):
            xs = tuple(xs[0])
        if len(xs) != len(self.inputs):
            raise TypeError(f"Graph: takes {len(self.inputs)} input(s) "
                            f"({', '.join(n.name for n in self.inputs)}), got {len(xs)}")
        for layer in self.layers:   # release the arrays saved last time, so buffers recycle
            layer.forget()
        self.input_shape = tuple(xs[0].shape[1:])
        values = self._run(xs)
        ys = [values[n] for n in self.outputs]
        return ys[0] if len(ys) == 1 else tuple(ys)

    def _run(self, xs, each=None):
        """Every node's array for the inputs xs, the nodes in topological order (each(node,
        array) is called on each)."""
        values = dict(zip(self.inputs, xs))
        for node in self.nodes:
            args = [values[i] for i in node.inputs]
            try:
                values[node] = _apply(node.layer, args)
            except (ValueError, TypeError) as e:
                raise _from_node(e, node, args) from e
            if each is not None:
                each(node, values[node])
        return values

    def backward(self, dy, need_dx=True):
        """Backpropagate dy (d loss / d output; a tuple, one per output, for several) through
        the nodes in reverse order, writing the grads of the layers that train. Returns dx
        of the input (a tuple for several), or None with need_dx=False, which skips every
        node that nothing trains at or below."""
        dys = [dy] if len(self.outputs) == 1 else list(dy)
        wants = self._wants(need_dx)
        grads = {}       # node -> d loss / d its tensor, summed over the tensor's uses
        for node, d in zip(self.outputs, dys):
            _accumulate(grads, node, d)
        for node in reversed(self.nodes):
            d = grads.pop(node, None)
            if d is None or not wants[node]:
                continue
            needed = [wants[i] for i in node.inputs]
            dx = node.layer.backward(d, any(needed))
            if not any(needed):
                continue
            for inp, g, want in zip(node.inputs, _input_grads(node.layer, dx, len(needed)),
                                    needed):
                if want:
                    _accumulate(grads, inp, g)
        if not need_dx:
            return None
        dxs = [grads.get(n) for n in self.inputs]
        return dxs[0] if len(dxs) == 1 else tuple(dxs)

    def _wants(self, need_dx):
        """Per node: whether backward needs the gradient of its tensor: its layer trains,
        or something it is computed from does (an input does when need_dx)."""
        wants = {n: need_dx for n in self.inputs}
        for node in self.nodes:
            wants[node] = blocks.trains(node.layer) or any(wants[i] for i in node.inputs)
        return wants

    # ---- what files and summaries need

    def describe(self, position):
        return {"inputs": [{"name": n.name, "shape": None if n.shape is None else list(n.shape)}
                           for n in self.inputs],
                "nodes": [{"name": n.name, "inputs": [i.name for i in n.inputs],
                           "block": blocks.describe(n.layer, position)} for n in self.nodes],
                "outputs": [n.name for n in self.outputs]}

    @classmethod
    def rebuild(cls, spec, layers):
        named = {}
        for entry in _entries(spec, "inputs"):
            shape = entry.get("shape")
            named[entry.get("name")] = Input(None if shape is None else tuple(shape),
                                             entry.get("name"))
        for entry in _entries(spec, "nodes"):
            takes = entry.get("inputs")
            if not isinstance(takes, list) or not all(t in named for t in takes):
                raise ValueError(f"node {blocks._short(entry.get('name'))} takes "
                                 f"{blocks._short(takes)}: not nodes defined before it")
            name = _checked_name("a node", entry.get("name"))
            named[name] = _node(blocks.rebuild(entry.get("block"), layers),
                                [named[t] for t in takes], name)
        outputs = spec.get("outputs")
        if not isinstance(outputs, list) or not all(o in named for o in outputs):
            raise ValueError(f"the outputs {blocks._short(outputs)} are not nodes of the graph")
        return cls([named[e["name"]] for e in spec["inputs"]], [named[o] for o in outputs])

    def summary_rows(self, input_shape):
        shapes = self._shapes(input_shape)
        rows = [(n.name, "Input", "", shapes[n], 0) for n in self.inputs]
        return rows + [(n.name, blocks.brief(n.layer), ", ".join(i.name for i in n.inputs),
                        shapes[n], n.layer.num_params()) for n in self.nodes]

    def _shapes(self, input_shape):
        """Each node's output shape, from a forward pass of one zero example per input in
        eval mode (or as found when the graph was built, without input shapes)."""
        given = [input_shape] if input_shape and len(self.inputs) == 1 else \
            [n.shape for n in self.inputs]
        if any(s is None for s in given):
            return {n: n.shape for n in self.inputs + self.nodes}
        shapes = dict(zip(self.inputs, given))
        with eval_mode(self):
            self.forget()
            self._run([self._zeros_example(s) for s in given],
                      lambda node, y: shapes.__setitem__(node, tuple(y.shape[1:])))
            self.forget()
        return shapes


# ---------------------------------------------------------------- building a graph


def _node_list(value, what):
    nodes = list(value) if isinstance(value, (list, tuple)) else [value]
    if not nodes or not all(isinstance(n, Node) for n in nodes):
        raise TypeError(f"Model: {what} must be a node or a list of nodes (Input(...) and "
                        f"what layers called on it return), got {blocks._short(value)}")
    return nodes


def _topological(outputs):
    """Every node the outputs are computed from, each after its inputs: a depth-first
    walk from the outputs, taking each node's inputs in order. A cycle is a ValueError."""
    order, done, open_ = [], set(), {}
    for root in outputs:
        if root in done:
            continue
        stack, open_[root] = [(root, iter(root.inputs))], True
        while stack:
            node, pending = stack[-1]
            child = next(pending, None)
            if child is None:
                stack.pop()
                del open_[node]
                done.add(node)
                order.append(node)
            elif child in open_:
                loop = [n for n, _ in stack][[n for n, _ in stack].index(child):] + [child]
                raise ValueError("Model: the graph has a cycle: "
                                 + " -> ".join(n.label for n in reversed(loop)))
            elif child not in done:
                if not isinstance(child, Node):
                    raise TypeError(f"Model: {node.label} takes {blocks._short(child)}, "
                                    f"not a node")
                open_[child] = True
                stack.append((child, iter(child.inputs)))
    return order


def _check_inputs(inputs, outputs, order):
    for n in inputs:
        if n.layer is not None:
            raise TypeError(f"Model: the inputs must be Input(...) nodes; {n.label} is the "
                            f"output of a layer")
    if len(set(inputs)) != len(inputs):
        raise ValueError("Model: an Input appears twice among the inputs")
    given, used = set(inputs), {n for n in order if n.layer is None}
    for n in order:
        if n.layer is None and n not in given:
            raise ValueError(f"Model: the outputs are computed from the Input {n.label} "
                             f"(shape {n.shape}), which is not among the model's inputs: "
                             f"an output not reachable from the inputs")
    for n in inputs:
        if n not in used:
            raise ValueError(f"Model: the input {n.label} is not used by any output (an "
                             f"input never fed to the layers)")


def _snake(name):
    """Conv2d -> conv2d, BatchNorm2d -> batch_norm2d, LeakyReLU -> leaky_relu."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z][a-z])", "_", name).lower()


def _name(nodes):
    """Give every unnamed node a name made from its layer's type ("conv2d", "conv2d_1",
    ...), after checking that the given names are unique."""
    taken = set()
    for n in nodes:
        if n.name is not None:
            if n.name in taken:
                raise ValueError(f"Model: two nodes are named {n.name!r}")
            taken.add(n.name)
    for n in nodes:
        if n.name is None:
            base = "input" if n.layer is None else _snake(type(n.layer).__name__)
            name, k = base, 0
            while name in taken:
                k += 1
                name = f"{base}_{k}"
            n.name = name
            taken.add(name)


def _from_node(error, node, args):
    """A layer's error in a forward pass, saying which node and, for several inputs,
    which inputs (with their shapes) it came from."""
    message = str(error)
    if isinstance(node.layer, Layer) and not message.startswith(node.layer.name):
        message = f"{node.layer.name}: {message}"
    if len(node.inputs) > 1:
        message += " (inputs: " + ", ".join(
            f"{i.name!r} {tuple(getattr(a, 'shape', ()))}" for i, a in zip(node.inputs, args)) + ")"
    return (ValueError if isinstance(error, ValueError) else TypeError)(message)


def _entries(spec, key):
    entries = spec.get(key)
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ValueError(f"a graph's {key} are not a list of descriptions")
    return entries
