"""fastcnn -> ONNX: a model as a graph of standard ONNX operators.

The model is walked the way its forward runs (a Sequential's children in order, a
graph's nodes, a Residual's body and shortcut, a Concat's branches), in eval mode, on
one example of zeros, so that every tensor's shape is known where a converter needs it
(Maxout's reshape). Each layer becomes one or a few ONNX nodes (``LAYER_CONVERTERS``);
its parameters and running statistics become initializers named by their state_dict
keys ("features.0.weight"), so an ONNX viewer shows PyTorch's names. The batch
dimension of every input and output is the symbol "N".
"""

import os
import secrets

import numpy as np
import onnx
from onnx import helper

from .. import backends
from ..functional._checks import _padding
from ..model.base import Model
from ..model.graph import Graph
from ..model.sequential import Sequential
from ..model.training import eval_mode
from ..nn import containers, layers as L, merge
from . import DEFAULT_OPSET, MIN_OPSET

BATCH = "N"


def export(model, path, input_shape=None, opset=DEFAULT_OPSET, *, input_names=None,
           output_names=None):
    """Write model (a fastcnn model, or one layer) to path as an ONNX file and return the
    ModelProto. input_shape: one example's shape without the batch axis, e.g. (1, 28, 28)
    (a list of them for a graph of several inputs); by default the graph's Input shapes
    or the shape of the last batch the model saw. opset: the ONNX opset written (13 to
    the newest the onnx package knows). input_names / output_names: the graph's names
    for them (default: a graph's Input and output node names; "input" and "output" for
    any other model). The batch dimension is dynamic ("N"); the model is exported as it
    predicts (eval mode: BatchNorm with its running statistics, Dropout the identity)."""
    proto = to_proto(model, input_shape, opset, input_names, output_names)
    _write(path, proto.SerializeToString())
    return proto


def to_proto(model, input_shape=None, opset=DEFAULT_OPSET, input_names=None,
             output_names=None):
    """The ModelProto that export writes."""
    newest = onnx.defs.onnx_opset_version()
    if type(opset) is not int or not MIN_OPSET <= opset <= newest:
        raise ValueError(f"export: opset must be an int from {MIN_OPSET} to {newest} (the "
                         f"newest this onnx package knows), got {opset!r}")
    if isinstance(model, L.Layer):
        model = Sequential(model)
    if not isinstance(model, Model):
        raise TypeError(f"export: expects a fastcnn model or layer, got {type(model).__name__}")
    graph_inputs = model.inputs if isinstance(model, Graph) else None
    shapes = _input_shapes(model, graph_inputs, input_shape)
    in_names = _names("input_names", input_names, [n.name for n in graph_inputs]
                      if graph_inputs else ["input"], len(shapes))
    n_out = len(model.outputs) if isinstance(model, Graph) else 1
    out_names = _names("output_names", output_names, [n.name for n in model.outputs]
                       if isinstance(model, Graph) else ["output"], n_out)
    if len(set(in_names + out_names)) < len(in_names + out_names):
        raise ValueError(f"export: the input and output names must all differ, got "
                         f"{in_names} and {out_names}")
    dtype = np.dtype(model._dtype() or np.float32)
    em = Emitter(opset, dtype, reserved=in_names + out_names)
    with eval_mode(model):
        model.forget()
        xs = [Value(name, model._zeros_example(s)) for name, s in zip(in_names, shapes)]
        ys = emit(em, model, "", xs)
        model.forget()
    ys = ys if isinstance(ys, list) else [ys]
    em.name_outputs([y.name for y in ys], out_names, in_names)
    elem = helper.np_dtype_to_tensor_dtype(dtype)
    inputs = [helper.make_tensor_value_info(n, elem, [BATCH] + list(s))
              for n, s in zip(in_names, shapes)]
    outputs = [helper.make_tensor_value_info(n, elem, [BATCH] + list(y.shape[1:]))
               for n, y in zip(out_names, ys)]
    graph = helper.make_graph(em.nodes, type(model).__name__, inputs, outputs, em.initializers)
    opsets = [helper.make_opsetid("", opset)]
    from .. import __version__
    proto = helper.make_model(graph, opset_imports=opsets, producer_name="fastcnn",
                              producer_version=__version__,
                              ir_version=helper.find_min_ir_version_for(opsets))
    return proto


def _input_shapes(model, graph_inputs, input_shape):
    if input_shape is not None:
        shapes = list(input_shape) if graph_inputs and len(graph_inputs) > 1 else [input_shape]
    elif graph_inputs:
        shapes = [n.shape for n in graph_inputs]
    else:
        shapes = [model.input_shape]
    count = len(graph_inputs) if graph_inputs else 1
    if len(shapes) != count or any(
            not isinstance(s, (tuple, list)) or not s or
            not all(isinstance(d, (int, np.integer)) and d > 0 for d in s) for s in shapes):
        raise ValueError(f"export: input_shape must be one example's shape without the batch "
                         f"axis (e.g. (1, 28, 28)){', one per input' if count > 1 else ''}; got "
                         f"{input_shape!r}" + ("" if input_shape is not None else
                                               " and the model has seen no batch"))
    return [tuple(int(d) for d in s) for s in shapes]


def _names(what, given, default, count):
    names = default if given is None else list(given)
    if len(names) != count or not all(isinstance(n, str) and n for n in names):
        raise ValueError(f"export: {what} must be {count} non-empty string(s), got {given!r}")
    return names


def _write(path, data):
    """data to path through a temporary file beside it, so a failure leaves no half file."""
    path = os.fspath(path)
    tmp = os.path.join(os.path.dirname(os.path.abspath(path)), f".tmp-{secrets.token_hex(8)}")
    try:
        with open(tmp, "xb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


class Value:
    """A tensor of the ONNX graph being written: its name and its value for the example."""

    __slots__ = ("name", "example")

    def __init__(self, name, example):
        self.name, self.example = name, example

    @property
    def shape(self):
        return tuple(self.example.shape)


class Emitter:
    """The nodes and initializers written so far, and unique names for them."""

    def __init__(self, opset, dtype, reserved=()):
        self.opset, self.dtype = opset, dtype
        self.nodes, self.initializers = [], []
        self._values, self._nodes = set(reserved), set()

    def _unique(self, taken, base):
        name, k = base or "node", 0
        while name in taken:
            k += 1
            name = f"{base}_{k}"
        taken.add(name)
        return name

    def tensor(self, name, array, dtype=None):
        """An initializer holding array (cast to dtype, default the model's): its name."""
        array = np.ascontiguousarray(backends.to_host(array), dtype or self.dtype)
        name = self._unique(self._values, name)
        self.initializers.append(onnx.numpy_helper.from_array(array, name))
        return name

    def ints(self, name, values):
        return self.tensor(name, np.asarray(values, np.int64), np.int64)

    def node(self, op, inputs, name, **attrs):
        """Append an op node reading inputs (names): the name of its one output."""
        out = self._unique(self._values, name)
        self.nodes.append(helper.make_node(op, list(inputs), [out],
                                           name=self._unique(self._nodes, name), **attrs))
        return out

    def name_outputs(self, values, names, inputs):
        """Give the graph's outputs their names: rename the value where it is made, or
        copy it through an Identity when it cannot be renamed (an input, an initializer,
        a value that is two outputs)."""
        renamed = {}
        fixed = set(inputs) | {t.name for t in self.initializers}
        for value, name in zip(values, names):
            if value in fixed or value in renamed:
                self.nodes.append(helper.make_node("Identity", [value], [name],
                                                   name=self._unique(self._nodes, name)))
            else:
                renamed[value] = name
        for node in self.nodes:
            node.input[:] = [renamed.get(v, v) for v in node.input]
            node.output[:] = [renamed.get(v, v) for v in node.output]


# ---------------------------------------------------------------- walking the model


def emit(em, block, path, xs):
    """Write block applied to the values xs; its output Value (a list for a graph of
    several outputs). path: the block's dotted name in the model ("" for the model)."""
    if isinstance(block, L.Layer):
        return _emit_layer(em, block, path, xs)
    prefix = f"{path}." if path else ""
    if isinstance(block, Graph):
        values = dict(zip(block.inputs, xs))
        for node in block.nodes:
            values[node] = emit(em, node.layer, prefix + node.name,
                                [values[i] for i in node.inputs])
        ys = [values[n] for n in block.outputs]
        return ys[0] if len(ys) == 1 else ys
    (x,) = xs
    if isinstance(block, Sequential):
        for name, child in block.children.items():
            x = emit(em, child, prefix + name, [x])
        return x
    if isinstance(block, containers.Residual):
        h = emit(em, block.body, prefix + "body", [x])
        s = x if block.shortcut is None else emit(em, block.shortcut, prefix + "shortcut", [x])
        return _merge(em, "Add", [h, s], path or "residual")
    if isinstance(block, containers.Branches):
        ys = [emit(em, child, prefix + name, [x]) for name, child in block.children.items()]
        return _merge(em, "Concat", ys, path or "concat")
    raise TypeError(f"export: no ONNX form for a {type(block).__name__} (the containers "
                    f"export knows: Sequential, Graph, Residual, Concat)")


def _emit_layer(em, layer, path, xs):
    convert = LAYER_CONVERTERS.get(type(layer))
    if convert is None:
        raise TypeError(f"export: no ONNX form for the layer {layer!r} (at {path!r}); the "
                        f"layers export knows: {', '.join(c.__name__ for c in LAYER_CONVERTERS)}")
    examples = [x.example for x in xs]
    y = layer.forward(examples) if getattr(layer, "fan_in", False) else layer.forward(*examples)
    name = convert(em, layer, path or type(layer).__name__.lower(), xs)
    return Value(name, y)


def _merge(em, op, xs, path):
    """The values xs added up (Residual) or side by side (Concat of branches): written as
    the merge layers Add and Concat are."""
    return _emit_layer(em, merge.Add() if op == "Add" else merge.Concat(), path, xs)


# ---------------------------------------------------------------- layers


def _param(em, layer, path, key):
    return em.tensor(f"{path}.{key}", layer.params[key]) if key in layer.params else None


def _linear(em, layer, path, xs):
    inputs = [xs[0].name, _param(em, layer, path, "weight")]
    if "bias" in layer.params:
        inputs.append(_param(em, layer, path, "bias"))
    return em.node("Gemm", inputs, path, transB=1)


def _window(layer, xs, kernel):
    """(strides, pads, dilations) of a conv or pool layer for its input: ONNX's pads are
    [top, left, bottom, right], a padding mode resolved for the input's size."""
    w = layer._window
    stride, dilation = w["stride"], w.get("dilation", (1, 1))
    top, bottom, left, right = _padding(w["padding"], xs[0].shape[2:], kernel, stride,
                                        dilation)
    return list(stride), [top, left, bottom, right], list(dilation)


def _conv(em, layer, path, xs):
    inputs = [xs[0].name, _param(em, layer, path, "weight")]
    if "bias" in layer.params:
        inputs.append(_param(em, layer, path, "bias"))
    kernel = tuple(layer.params["weight"].shape[2:])
    strides, pads, dilations = _window(layer, xs, kernel)
    return em.node("Conv", inputs, path, kernel_shape=list(kernel), strides=strides,
                   pads=pads, dilations=dilations, group=layer._window["groups"])


def _conv_transpose(em, layer, path, xs):
    """PyTorch's weight layout (in, out/groups, kh, kw) is ONNX's; padding crops."""
    inputs = [xs[0].name, _param(em, layer, path, "weight")]
    if "bias" in layer.params:
        inputs.append(_param(em, layer, path, "bias"))
    w = layer._window
    top, bottom, left, right = w["padding"]
    return em.node("ConvTranspose", inputs, path,
                   kernel_shape=list(layer.params["weight"].shape[2:]),
                   strides=list(w["stride"]), pads=[top, left, bottom, right],
                   dilations=list(w["dilation"]), output_padding=list(w["output_padding"]),
                   group=w["groups"])


def _batch_norm(em, layer, path, xs):
    stats = [em.tensor(f"{path}.{k}", layer._affine(k)) for k in ("weight", "bias")]
    stats += [em.tensor(f"{path}.{k}", layer.buffers[k])
              for k in ("running_mean", "running_var")]
    # ONNX's momentum weighs the old running value (PyTorch's weighs the new batch)
    return em.node("BatchNormalization", [xs[0].name] + stats, path, epsilon=float(layer.eps),
                   momentum=float(1 - layer.momentum))


def _pool(op):
    def convert(em, layer, path, xs):
        w = layer._window
        kernel = tuple(w["kernel_size"])
        strides, pads, dilations = _window(layer, xs, kernel)
        attrs = dict(kernel_shape=list(kernel), strides=strides, pads=pads,
                     ceil_mode=int(w["ceil_mode"]))
        if op == "MaxPool":
            attrs["dilations"] = dilations
        else:
            if w["divisor_override"] is not None:
                raise TypeError(f"export: no ONNX form for {layer!r} (at {path!r}): "
                                f"AveragePool has no divisor_override")
            attrs["count_include_pad"] = int(w["count_include_pad"])
        return em.node(op, [xs[0].name], path, **attrs)
    return convert


def _global_pool(op):
    def convert(em, layer, path, xs):
        if tuple(layer._window["output_size"]) not in ((1, 1), (1,)):
            raise TypeError(f"export: no ONNX form for {layer!r} (at {path!r}): only an "
                            f"output size of 1 (global pooling) is an ONNX operator")
        return em.node(op, [xs[0].name], path)
    return convert


def _upsample(em, layer, path, xs):
    w = layer._window
    if w["scale_factor"] is not None:
        sizes = [em.tensor(f"{path}.scales",
                           [1.0, 1.0] + [float(f) for f in w["scale_factor"]], np.float32)]
    else:   # the batch and channels as they come, then the size
        shape = em.node("Shape", [xs[0].name], f"{path}_shape")
        head = em.node("Slice", [shape, em.ints(f"{path}.start", [0]),
                                 em.ints(f"{path}.stop", [2])], f"{path}_head")
        sizes = ["", em.node("Concat", [head, em.ints(f"{path}.size", list(w["size"]))],
                             f"{path}_sizes", axis=0)]
    if layer.op == "upsample_nearest2d":
        # y[i] = x[floor(i * in / out)]: PyTorch's nearest
        return em.node("Resize", [xs[0].name, ""] + sizes, path, mode="nearest",
                       coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    transform = "align_corners" if w["align_corners"] else "pytorch_half_pixel"
    return em.node("Resize", [xs[0].name, ""] + sizes, path, mode="linear",
                   coordinate_transformation_mode=transform)


def _maxout(em, layer, path, xs):
    """(N, C, ...) -> (N, C/k, k, ...) -> the max over the k axis."""
    shape, k = xs[0].shape, layer.pool_size
    grouped = em.node("Reshape", [xs[0].name, em.ints(f"{path}.groups",
                                                      [0, shape[1] // k, k] + list(shape[2:]))],
                      f"{path}_groups")
    if em.opset >= 18:
        return em.node("ReduceMax", [grouped, em.ints(f"{path}.axes", [2])], path, keepdims=0)
    return em.node("ReduceMax", [grouped], path, axes=[2], keepdims=0)


def _reshape(em, layer, path, xs, shape):
    """A Reshape of xs[0] to shape (with its batch axis), the batch copied (a 0) so that it
    stays dynamic."""
    if shape[0] != xs[0].shape[0]:
        raise TypeError(f"export: no ONNX form for {layer!r} (at {path!r}): it reshapes the "
                        f"batch axis, which the ONNX file leaves dynamic")
    return em.node("Reshape", [xs[0].name, em.ints(f"{path}.shape", [0] + list(shape[1:]))],
                   path)


def _flatten(em, layer, path, xs):
    if (layer.start_dim, layer.end_dim) == (1, -1):
        return em.node("Flatten", [xs[0].name], path, axis=1)
    return _reshape(em, layer, path, xs, layer.forward(xs[0].example).shape)


def _unflatten(em, layer, path, xs):
    shape = xs[0].shape
    axis, sizes = layer.output_sizes(shape)
    return _reshape(em, layer, path, xs, shape[:axis] + sizes + shape[axis + 1:])


def _simple(op, **attrs):
    """A converter to one op of x alone; an attribute's value is given, or read from the
    layer's constructor arguments by a function."""
    def convert(em, layer, path, xs):
        return em.node(op, [xs[0].name], path,
                       **{k: v(layer) if callable(v) else v for k, v in attrs.items()})
    return convert


def _arg(name):
    return lambda layer: float(layer.config()[name])


def _dim(layer):
    return int(layer._config.get("dim", 1))


def _merger(op, **attrs):
    def convert(em, layer, path, xs):
        if op == "Concat":
            return em.node(op, [x.name for x in xs], path, **attrs)
        name = xs[0].name
        if len(xs) == 1:
            return em.node("Identity", [name], path)
        for x in xs[1:]:
            name = em.node(op, [name, x.name], path)
        return name
    return convert


LAYER_CONVERTERS = {
    L.Linear: _linear,
    L.Conv2d: _conv,
    L.ConvTranspose2d: _conv_transpose,
    L.BatchNorm1d: _batch_norm,
    L.BatchNorm2d: _batch_norm,
    L.MaxPool2d: _pool("MaxPool"),
    L.AvgPool2d: _pool("AveragePool"),
    L.AdaptiveAvgPool2d: _global_pool("GlobalAveragePool"),
    L.AdaptiveMaxPool2d: _global_pool("GlobalMaxPool"),
    L.Upsample: _upsample,
    L.Flatten: _flatten,
    L.Unflatten: _unflatten,
    L.ReLU: _simple("Relu"),
    L.LeakyReLU: _simple("LeakyRelu", alpha=_arg("negative_slope")),
    L.ELU: _simple("Elu", alpha=_arg("alpha")),
    L.Sigmoid: _simple("Sigmoid"),
    L.Tanh: _simple("Tanh"),
    L.Softmax: _simple("Softmax", axis=_dim),
    L.LogSoftmax: _simple("LogSoftmax", axis=_dim),
    L.Maxout: _maxout,
    L.Dropout: _simple("Identity"),          # eval mode: dropout is the identity
    merge.Add: _merger("Add"),
    merge.Multiply: _merger("Mul"),
    merge.Concat: _merger("Concat", axis=1),
}
