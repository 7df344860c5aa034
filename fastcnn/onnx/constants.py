"""Constants computed while importing: the shape arithmetic that exporters write in front
of a Reshape (PyTorch's ``x.view(x.size(0), -1)`` becomes Shape, Gather, Unsqueeze,
Concat, Reshape), and any operator whose inputs are all constants.

A constant is a NumPy array. One computed from a tensor's shape holds None where the
batch size goes (an array of dtype object): fastcnn's models leave the batch free, so
a Reshape may keep it there, and arithmetic on it is an error. No constant computed
here is larger than its inputs together (``bounded``), so a file cannot make the
importer build a huge array from small ones.
"""

import math

import numpy as np

from . import OnnxImportError
from .reading import TENSOR_TYPES

CONVERTERS = {}
MAX_FILLED = 1024   # elements of a ConstantOfShape: shape arithmetic needs a few


def op(*names):
    """Register a converter of the operators names (what ops.CONVERTERS starts from)."""
    def register(convert):
        for name in names:
            CONVERTERS[name] = convert
        return convert
    return register


def bounded(ctx, shape, inputs):
    """A shape for a constant, checked to hold no more elements than inputs together."""
    count = math.prod(shape)
    if count > sum(np.size(a) for a in inputs) + 1:
        raise OnnxImportError(f"{ctx.where}: the constant it computes ({tuple(shape)}) would "
                              f"be larger than its inputs; fastcnn computes only constants "
                              f"that do not grow")
    return shape


def _plain(a):
    """An array of Python ints/None as int64 when it holds no None."""
    if a.dtype == object and all(v is not None for v in a.flat):
        return a.astype(np.int64)
    return a


def _axes(ctx, axes, rank, what="axes"):
    axes = [int(a) for a in np.asarray(axes).reshape(-1)]
    if any(not -rank <= a < rank for a in axes):
        raise OnnxImportError(f"{ctx.where}: {what} {axes} out of range for rank {rank}")
    return sorted(a % rank for a in axes)


@op("Constant")
def constant(ctx, node, attrs):
    for name, dtype in (("value_float", np.float32), ("value_floats", np.float32),
                        ("value_int", np.int64), ("value_ints", np.int64)):
        value = attrs.take(name)
        if value is not None:
            return np.array(value, dtype)
    value = attrs.take("value")
    if value is None:
        raise OnnxImportError(f"{ctx.where}: only tensor, float and int constants are "
                              f"supported (value, value_float(s), value_int(s))")
    return value


@op("ConstantOfShape")
def constant_of_shape(ctx, node, attrs):
    """A constant of a given shape filled with one value (PyTorch's exporter writes one in
    front of a Pad's pads). It grows from a shape, so it is bounded on its own."""
    shape = ctx.const(0, "input")
    value = attrs.take("value")
    value = np.zeros(1, np.float32) if value is None else np.asarray(value)
    if shape.ndim != 1 or shape.dtype.kind not in "iu" or np.any(shape < 0) or value.size != 1:
        raise OnnxImportError(f"{ctx.where}: fills a shape {shape.tolist()} with "
                              f"{value.size} values; ONNX asks for a 1-D shape and one value")
    dims = tuple(int(d) for d in shape)
    if math.prod(dims) > MAX_FILLED:
        raise OnnxImportError(f"{ctx.where}: the constant of shape {dims} would be larger "
                              f"than the {MAX_FILLED} elements shape arithmetic needs "
                              f"(constants.MAX_FILLED)")
    return np.full(dims, value.reshape(()), value.dtype)


@op("Transpose")
def transpose(ctx, node, attrs):
    """Of a constant (PyTorch's exporter transposes a Pad's pads): fastcnn's layers keep
    their tensors' layout."""
    data = ctx.const(0, "data", numeric=False)
    perm = attrs.take("perm")
    perm = list(reversed(range(data.ndim))) if perm is None else list(perm)
    if sorted(perm) != list(range(data.ndim)):
        raise attrs.unsupported("perm", perm, f"not a permutation of the {data.ndim} axes")
    return np.transpose(data, perm)


@op("Shape")
def shape(ctx, node, attrs):
    value = ctx.input(0)
    if isinstance(value, np.ndarray):
        dims = list(value.shape)
    else:
        dims = [None] + list(ctx.tensor(0).shape)
    dims = dims[attrs.take("start", 0):attrs.take("end", None)]
    return _plain(np.array(dims, dtype=object))


@op("Gather")
def gather(ctx, node, attrs):
    data = ctx.const(0, "data", numeric=False)
    indices = ctx.const(1, "indices")
    axis = attrs.take("axis", 0)
    if indices.dtype.kind not in "iu" or data.ndim == 0:
        raise OnnxImportError(f"{ctx.where}: gathers {data.dtype} data of rank {data.ndim} "
                              f"with {indices.dtype} indices")
    (axis,) = _axes(ctx, [axis], data.ndim, "axis")
    shape = data.shape[:axis] + indices.shape + data.shape[axis + 1:]
    bounded(ctx, shape, [data, indices])
    return np.take(data, indices, axis=axis)


@op("Slice")
def slice_(ctx, node, attrs):
    data = ctx.const(0, "data", numeric=False)
    if ctx.opset < 10:
        starts, ends = attrs.take("starts", []), attrs.take("ends", [])
        axes, steps = attrs.take("axes"), None
    else:
        starts, ends = ctx.const(1, "starts"), ctx.const(2, "ends")
        axes = ctx.const(3, "axes") if ctx.input(3) is not None else None
        steps = ctx.const(4, "steps") if ctx.input(4) is not None else None
    starts, ends = np.asarray(starts).reshape(-1), np.asarray(ends).reshape(-1)
    axes = list(range(len(starts))) if axes is None else _axes(ctx, axes, data.ndim)
    steps = np.ones(len(starts), np.int64) if steps is None else np.asarray(steps).reshape(-1)
    if not len(starts) == len(ends) == len(axes) == len(steps) or 0 in steps:
        raise OnnxImportError(f"{ctx.where}: starts, ends, axes and steps do not agree")
    index = [slice(None)] * data.ndim
    for axis, start, end, step in zip(axes, starts, ends, steps):
        index[axis] = slice(int(start), int(end), int(step))   # NumPy clamps as ONNX does
    return data[tuple(index)]


@op("Cast")
def cast(ctx, node, attrs):
    to = attrs.take("to")
    value = ctx.input(0)
    if to not in TENSOR_TYPES:
        raise attrs.unsupported("to", to, "fastcnn casts to float and integer types only")
    dtype = np.dtype(TENSOR_TYPES[to][0])
    if not isinstance(value, np.ndarray):
        x = ctx.tensor(0)
        if dtype.kind != "f":
            raise attrs.unsupported("to", to, "a tensor of the model stays floating point")
        return x        # float to float: the model computes in its own dtype
    if value.dtype == object:
        if dtype.kind not in "iu":
            raise OnnxImportError(f"{ctx.where}: casts a value that depends on the batch size "
                                  f"to {dtype}")
        return value
    return value.astype(dtype)


def arith(ctx, op_type, values):
    """Add, Sub, Mul, Div, Sum, Mod or Fmod (Mod with fmod=1) of constants, as ONNX
    computes them (integer Div truncates toward zero; Mod takes the divisor's sign, Fmod
    the dividend's)."""
    shape = np.broadcast_shapes(*[np.shape(v) for v in values])
    bounded(ctx, shape, values)
    if any(v.dtype == object and any(e is None for e in v.flat) for v in values):
        raise OnnxImportError(f"{ctx.where}: computes with a value that depends on the batch "
                              f"size, which fastcnn models leave free")
    values = [_plain(v) for v in values]
    integers = all(v.dtype.kind in "iu" for v in values)
    if op_type in ("Div", "Mod", "Fmod") and integers and np.any(values[1] == 0):
        raise OnnxImportError(f"{ctx.where}: integer division by zero")
    if op_type == "Div" and integers:
        a, b = values
        return (np.sign(a) * np.sign(b) * (np.abs(a) // np.abs(b))).astype(np.result_type(a, b))
    fn = {"Add": np.add, "Sum": np.add, "Sub": np.subtract, "Mul": np.multiply,
          "Div": np.divide, "Mod": np.mod, "Fmod": np.fmod}[op_type]
    result = values[0]
    for v in values[1:]:
        result = fn(result, v)
    return np.asarray(result)


@op("Sub", "Div")
def sub_div(ctx, node, attrs):
    return arith(ctx, node.op_type, [ctx.const(i, "operand", numeric=False) for i in (0, 1)])


@op("Mod")
def mod(ctx, node, attrs):
    fmod = attrs.expect("fmod", 0, 0, 1)
    return arith(ctx, "Fmod" if fmod else "Mod",
                 [ctx.const(i, "operand", numeric=False) for i in (0, 1)])


def concat(ctx, values, axis):
    rank = values[0].ndim
    (axis,) = _axes(ctx, [axis], max(rank, 1), "axis")
    return _plain(np.concatenate([v.astype(object) if any(u.dtype == object for u in values)
                                  else v for v in values], axis=axis))


def reshape(ctx, data, target, allowzero):
    if target.dtype == object and any(v is None for v in target.flat):
        raise OnnxImportError(f"{ctx.where}: reshapes a constant to a shape that depends on "
                              f"the batch size")
    dims = [int(d) for d in np.asarray(target).reshape(-1)]
    if not allowzero:
        dims = [data.shape[i] if d == 0 and i < data.ndim else d for i, d in enumerate(dims)]
    return data.reshape(dims)


def squeeze(ctx, data, axes):
    axes = [i for i, d in enumerate(data.shape) if d == 1] if axes is None else \
        _axes(ctx, axes, data.ndim)
    return np.squeeze(data, axis=tuple(axes))


def unsqueeze(ctx, data, axes):
    axes = _axes(ctx, axes, data.ndim + len(np.asarray(axes).reshape(-1)))
    for axis in axes:
        data = np.expand_dims(data, axis)
    return data
