"""The ONNX operators fastcnn converts, one converter each: ``convert(ctx, node, attrs)``
returns the value(s) of the node's outputs (a graph Node made by calling a fastcnn
layer on the input Nodes, a constant, or an input passed through). A converter takes
every attribute it understands from attrs and refuses values it cannot honour, naming
them; an attribute it does not take is refused by the caller. The constants' operators
(Shape, Gather, ...) are in ``constants``.
"""

import numpy as np

from .. import backends
from ..nn import layers as L, merge
from . import OnnxImportError
from . import constants as C
from .constants import op
from .importing import Padded

CONVERTERS = C.CONVERTERS

NO_PADS = (0, 0, 0, 0)


def _image(ctx, x):
    """(C, H, W) of a Node holding (N, C, H, W) images."""
    if len(x.shape) != 3:
        raise OnnxImportError(f"{ctx.where}: expects (N, C, H, W) images, got a tensor of "
                              f"shape (N, {', '.join(map(str, x.shape))})")
    return x.shape


def _pair(attrs, name, default, low=1):
    value = attrs.take(name, default)
    if value is None:
        raise OnnxImportError(f"{attrs.where}: attribute {name!r} is required")
    if len(value) != 2 or any(v < low for v in value):
        raise attrs.unsupported(name, value, "fastcnn takes two values, one per image axis, "
                                f"each at least {low}")
    return tuple(value)


def _window(ctx, attrs, image, kernel, extra=NO_PADS):
    """(strides, pads, dilations, own pads) of a 2-D sliding window from ONNX's
    attributes; pads (top, left, bottom, right) are its own plus the zeros of a Pad in
    front (extra), auto_pad resolved for the image's size."""
    strides, dilations = _pair(attrs, "strides", [1, 1]), _pair(attrs, "dilations", [1, 1])
    pads = attrs.take("pads", [0, 0, 0, 0])
    auto = attrs.take("auto_pad", "NOTSET")
    if auto not in ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"):
        raise attrs.unsupported("auto_pad", auto, "not an ONNX padding mode")
    if len(pads) != 4 or min(pads) < 0:
        raise attrs.unsupported("pads", pads, "fastcnn takes 4 non-negative pads")
    if auto == "VALID":
        pads = [0, 0, 0, 0]
    elif auto != "NOTSET":
        pads = [0] * 4
        for axis in range(2):
            size, extent = image[1 + axis], dilations[axis] * (kernel[axis] - 1) + 1
            total = max((-(-size // strides[axis]) - 1) * strides[axis] + extent - size, 0)
            early = total // 2 if auto == "SAME_UPPER" else total - total // 2
            pads[axis], pads[axis + 2] = early, total - early
    return strides, [p + q for p, q in zip(pads, extra)], dilations, list(pads)


def _short(pair):
    """(k, k) as k, so that the layers' configs read as one would write them."""
    pair = tuple(int(v) for v in pair)
    return pair[0] if pair[0] == pair[1] else pair


def _padding(pads):
    """ONNX's pads (top, left, bottom, right) as fastcnn's padding: k or (h, w) where both
    sides of each axis are padded alike, else (top, bottom, left, right)."""
    top, left, bottom, right = (int(p) for p in pads)
    return _short((top, left)) if (top, left) == (bottom, right) else (top, bottom, left, right)


def _sizes(image, kernel, strides, pads, dilations=(1, 1), ceil_mode=False):
    """(H, W) out of a sliding window over an image (C, H, W), pads ONNX's. With
    ceil_mode ONNX Runtime rounds up as PyTorch does, leaving out a last window that
    would start in the right padding (checked against ONNX Runtime 1.32 for kernels up
    to 4, strides up to 3, every pads and dilation 2, divisors included); the ONNX
    spec's shape inference keeps that window, so a file may declare one more."""
    return tuple(backends.output_size(image[1 + a], kernel[a], strides[a],
                                      (pads[a], pads[a + 2]), dilations[a], ceil_mode)
                 for a in range(2))


def _padded_input(ctx):
    """Input 0 and the zeros a Pad in front of it adds (top, left, bottom, right)."""
    value = ctx.input(0)
    return (value.node, value.detail) if isinstance(value, Padded) else (ctx.tensor(0), NO_PADS)


def _const_or_none(ctx, i, what):
    return None if ctx.input(i) is None else ctx.const(i, what)


# ---------------------------------------------------------------- layers with weights


def _conv_weights(ctx, what):
    """(weight, bias or None) of a Conv or ConvTranspose node, whose weight must be 4-D."""
    w, b = ctx.const(1, "weight"), _const_or_none(ctx, 2, "bias")
    if w.ndim != 4:
        raise OnnxImportError(f"{ctx.where}: only 2-D {what} are supported (a 4-D weight), "
                              f"got a weight of shape {w.shape}")
    return w, b


@op("Conv")
def conv(ctx, node, attrs):
    x, extra = _padded_input(ctx)
    image = _image(ctx, x)
    w, b = _conv_weights(ctx, "convolutions")
    groups = attrs.take("group", 1)
    kernel = attrs.take("kernel_shape", list(w.shape[2:]))
    if list(kernel) != list(w.shape[2:]):
        raise attrs.unsupported("kernel_shape", kernel, f"the weight is {w.shape}")
    strides, pads, dilations, _ = _window(ctx, attrs, image, w.shape[2:], extra)
    out, cin = w.shape[0], w.shape[1] * groups
    if not isinstance(groups, int) or groups < 1 or out % groups:
        raise attrs.unsupported("group", groups, f"the weight {w.shape} has {out} output "
                                f"channels, not a multiple of the groups")
    layer = L.Conv2d(cin, out, _short(w.shape[2:]), _short(strides), _padding(pads),
                     _short(dilations), groups=groups, bias=b is not None, dtype=ctx.dtype)
    layer.params["weight"] = ctx.weight(w)
    if b is not None:
        layer.params["bias"] = ctx.weight(b, (out,))
    return ctx.call(layer, [x], (out,) + _sizes(image, w.shape[2:], strides, pads, dilations))


@op("ConvTranspose")
def conv_transpose(ctx, node, attrs):
    """PyTorch's ConvTranspose2d: the weight (in, out/groups, kh, kw) is laid out alike;
    pads crop the output, output_padding extends it at the bottom and right."""
    x = ctx.tensor(0)
    image = _image(ctx, x)
    w, b = _conv_weights(ctx, "transposed convolutions")
    groups = attrs.take("group", 1)
    if not isinstance(groups, int) or groups < 1 or w.shape[0] % groups:
        raise attrs.unsupported("group", groups, f"the weight {w.shape} has {w.shape[0]} "
                                f"input channels, not a multiple of the groups")
    kernel = attrs.take("kernel_shape", list(w.shape[2:]))
    if list(kernel) != list(w.shape[2:]):
        raise attrs.unsupported("kernel_shape", kernel, f"the weight is {w.shape}")
    strides, dilations = _pair(attrs, "strides", [1, 1]), _pair(attrs, "dilations", [1, 1])
    extra = _pair(attrs, "output_padding", [0, 0], low=0)
    if any(extra[a] >= max(strides[a], dilations[a]) for a in range(2)):
        raise attrs.unsupported("output_padding", list(extra), "fastcnn's ConvTranspose2d, as "
                                "PyTorch's, takes it below the stride or dilation")
    pads = _transposed_pads(attrs, image, w.shape[2:], strides, dilations, extra)
    out = w.shape[1] * groups
    layer = L.ConvTranspose2d(w.shape[0], out, _short(w.shape[2:]), _short(strides),
                              _padding(pads), _short(extra), groups, b is not None,
                              _short(dilations), dtype=ctx.dtype)
    layer.params["weight"] = ctx.weight(w)
    if b is not None:
        layer.params["bias"] = ctx.weight(b, (out,))
    hw = tuple(backends.transposed_output_size(image[1 + a], w.shape[2 + a], strides[a],
                                               (pads[a], pads[a + 2]), dilations[a], extra[a])
               for a in range(2))
    if min(hw) < 1:
        raise OnnxImportError(f"{ctx.where}: the pads {pads} crop the whole output")
    return ctx.call(layer, [x], (out,) + hw)


def _transposed_pads(attrs, image, kernel, strides, dilations, extra):
    """A ConvTranspose's pads (top, left, bottom, right): given, or what output_shape (or
    auto_pad SAME_*: the input's size times the stride) asks for, split as the ONNX spec
    and ONNX Runtime 1.32 split it: the odd one at the end with SAME_UPPER, else at the
    start."""
    pads = attrs.take("pads", [0, 0, 0, 0])
    auto = attrs.take("auto_pad", "NOTSET")
    shape = attrs.take("output_shape")
    if auto not in ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"):
        raise attrs.unsupported("auto_pad", auto, "not an ONNX padding mode")
    if len(pads) != 4 or min(pads) < 0:
        raise attrs.unsupported("pads", pads, "fastcnn takes 4 non-negative pads")
    if auto == "VALID":
        return [0, 0, 0, 0]
    if shape is None and auto == "NOTSET":
        return list(pads)
    name, value = ("output_shape", shape) if shape is not None else ("auto_pad", auto)
    if shape is not None and len(shape) not in (2, 4):
        raise attrs.unsupported(name, value, "fastcnn takes the output's height and width")
    wanted = shape[-2:] if shape is not None else [image[1 + a] * strides[a] for a in range(2)]
    pads = [0] * 4
    for a in range(2):
        total = (image[1 + a] - 1) * strides[a] + extra[a] + dilations[a] * (
            kernel[a] - 1) + 1 - wanted[a]
        if total < 0:
            raise attrs.unsupported(name, value, f"axis {a + 2} would need {-total} more "
                                    f"output rows than the transposed convolution makes")
        early = total // 2 if auto == "SAME_UPPER" else total - total // 2
        pads[a], pads[a + 2] = early, total - early
    return pads


def _linear(ctx, x, weight, bias):
    """A Linear layer of weight (out, in) and bias (or None) applied to x (N, in)."""
    if len(x.shape) != 1:
        raise OnnxImportError(f"{ctx.where}: expects (N, features), got a tensor of shape "
                              f"(N, {', '.join(map(str, x.shape))})")
    out, features = weight.shape
    layer = L.Linear(features, out, bias=bias is not None, dtype=ctx.dtype)
    layer.params["weight"] = ctx.weight(weight)
    if bias is not None:
        layer.params["bias"] = ctx.weight(bias)
    return ctx.call(layer, [x], (out,))


@op("Gemm")
def gemm(ctx, node, attrs):
    x, b = ctx.tensor(0), ctx.const(1, "B")
    alpha, beta = attrs.take("alpha", 1.0), attrs.take("beta", 1.0)
    attrs.expect("transA", 0, reason="fastcnn's Linear takes the batch as the rows of A")
    trans_b = attrs.expect("transB", 0, 0, 1)
    if b.ndim != 2:
        raise OnnxImportError(f"{ctx.where}: B must be a matrix, got shape {b.shape}")
    weight = alpha * (b if trans_b else b.T).astype(np.float64)
    c = _const_or_none(ctx, 2, "C")
    if c is not None:
        if c.size not in (1, weight.shape[0]) or c.ndim > 2 or (c.ndim == 2 and c.shape[0] != 1):
            raise OnnxImportError(f"{ctx.where}: C of shape {c.shape} is not a bias of "
                                  f"{weight.shape[0]} features")
        c = beta * np.broadcast_to(c.reshape(-1).astype(np.float64), weight.shape[:1])
    return _linear(ctx, x, weight, c)


@op("MatMul")
def matmul(ctx, node, attrs):
    a, b = ctx.input(0), ctx.input(1)
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        a, b = ctx.const(0, "A"), ctx.const(1, "B")
        if a.ndim != 2 or b.ndim != 2:
            raise OnnxImportError(f"{ctx.where}: multiplies constants of shapes {a.shape} and "
                                  f"{b.shape}; fastcnn computes products of matrices only")
        C.bounded(ctx, (a.shape[0], b.shape[1]), [a, b])
        return a @ b
    x, b = ctx.tensor(0), ctx.const(1, "B")
    if b.ndim != 2:
        raise OnnxImportError(f"{ctx.where}: B must be a matrix, got shape {b.shape}")
    return _linear(ctx, x, b.T, None)


def _fold_bias(ctx, x, c):
    """x + c, c a constant, as the bias of the Linear or Conv2d that made x (the way
    MatMul + Add writes a linear layer)."""
    layer = x.layer
    linear, conv = isinstance(layer, L.Linear), isinstance(layer, L.Conv2d)
    features = layer.out_features if linear else layer.out_channels if conv else None
    feature_axis = c.ndim - (1 if linear else 3)    # where c meets the features
    per_feature = features is not None and c.ndim <= len(x.shape) + 1 and (
        c.size == 1 or (feature_axis >= 0 and c.shape[feature_axis] == features == c.size))
    if not (per_feature and ctx.used_once(x)):
        raise OnnxImportError(f"{ctx.where}: adds a constant of shape {c.shape} to a tensor: "
                              f"fastcnn supports that only as the bias of the Linear or Conv "
                              f"that makes the tensor")
    bias = np.broadcast_to(c.reshape(-1), (features,)).astype(np.float64)
    if "bias" in layer.params:
        layer.params["bias"] = ctx.weight(layer.params["bias"] + bias)
        return x
    config = dict(layer.config(), bias=True)
    with_bias = type(layer)(**config, dtype=ctx.dtype)
    with_bias.params.update(weight=layer.params["weight"], bias=ctx.weight(bias))
    x.layer = with_bias
    return x


@op("BatchNormalization")
def batch_norm(ctx, node, attrs):
    x = ctx.tensor(0)
    scale, bias, mean, var = (ctx.const(i, what) for i, what in enumerate(
        ("scale", "B", "input_mean", "input_var"), 1))
    eps, momentum = attrs.take("epsilon", 1e-5), attrs.take("momentum", 0.9)
    attrs.expect("spatial", 1, reason="fastcnn normalises per channel")
    attrs.expect("training_mode", 0, reason="fastcnn imports the inference form (it trains "
                                            "its BatchNorm in training mode anyway)")
    rank = len(x.shape) + 1
    if rank not in (2, 3, 4):
        raise OnnxImportError(f"{ctx.where}: normalises a tensor of rank {rank}; fastcnn's "
                              f"BatchNorm takes (N, C), (N, C, L) or (N, C, H, W)")
    channels = x.shape[0]
    kind = L.BatchNorm2d if rank == 4 else L.BatchNorm1d
    layer = kind(channels, eps, 1 - momentum, dtype=ctx.dtype)
    layer.params.update(weight=ctx.weight(scale, (channels,)),
                        bias=ctx.weight(bias, (channels,)))
    layer.buffers.update(running_mean=ctx.weight(mean, (channels,)),
                         running_var=ctx.weight(var, (channels,)))
    return ctx.call(layer, [x], x.shape)


# ---------------------------------------------------------------- pooling


def _pool_window(ctx, attrs, image, kernel, extra=NO_PADS):
    """A pool's (strides, pads, dilations, own pads, ceil_mode); fastcnn's pools (as
    PyTorch's) pad each side by at most half the kernel."""
    ceil = bool(attrs.expect("ceil_mode", 0, 0, 1))
    strides, pads, dilations, own = _window(ctx, attrs, image, kernel, extra)
    if any(pads[a] > kernel[a % 2] // 2 for a in range(4)):
        raise attrs.unsupported("pads", own, f"padding {pads} (top, left, bottom, right) "
                                f"past half the kernel {list(kernel)}: fastcnn's pools, as "
                                f"PyTorch's, would have windows of padding alone")
    padded = (image[0], image[1] + extra[0] + extra[2], image[2] + extra[1] + extra[3])
    if ceil and _sizes(padded, kernel, strides, own, dilations, ceil) != _sizes(
            image, kernel, strides, pads, dilations, ceil):
        raise attrs.unsupported("ceil_mode", 1, "a last window starts in the zeros of the Pad "
                                "in front, which fastcnn's pools (as PyTorch's) leave out "
                                "where they are padding")
    return strides, pads, dilations, own, ceil


def _stride(kernel, strides):
    return _short(strides) if strides != kernel else None


@op("MaxPool")
def max_pool(ctx, node, attrs):
    x = ctx.tensor(0)        # a Pad in front: its zeros are not MaxPool's -inf padding
    image = _image(ctx, x)
    kernel = _pair(attrs, "kernel_shape", None)
    attrs.expect("storage_order", 0, reason="fastcnn gives no indices")
    strides, pads, dilations, _, ceil = _pool_window(ctx, attrs, image, kernel)
    layer = L.MaxPool2d(_short(kernel), _stride(kernel, strides), _padding(pads),
                        _short(dilations), ceil_mode=ceil)
    return ctx.call(layer, [x], image[:1] + _sizes(image, kernel, strides, pads, dilations,
                                                   ceil))


@op("AveragePool")
def avg_pool(ctx, node, attrs):
    """Own pads count in the divisor with count_include_pad=1 only; the zeros of a Pad in
    front are values, which always count: fastcnn's AvgPool2d counts all its padding or
    none, so own pads left out of the count do not go with a Pad in front."""
    x, extra = _padded_input(ctx)
    image = _image(ctx, x)
    kernel = _pair(attrs, "kernel_shape", None)
    include = attrs.expect("count_include_pad", 0, 0, 1)
    strides, pads, dilations, own, ceil = _pool_window(ctx, attrs, image, kernel, extra)
    if any(own) and any(extra) and not include:
        raise attrs.unsupported("count_include_pad", include, "the zeros of the Pad in front "
                                "count in the divisor and the node's own pads do not: "
                                "fastcnn's AvgPool2d counts all its padding or none")
    if dilations != (1, 1):
        raise attrs.unsupported("dilations", list(dilations), "fastcnn's AvgPool2d does not "
                                "dilate (as PyTorch's)")
    exclude = any(own) and not include        # no padding: the flag changes nothing
    layer = L.AvgPool2d(_short(kernel), _stride(kernel, strides), _padding(pads), ceil,
                        count_include_pad=not exclude)
    return ctx.call(layer, [x], image[:1] + _sizes(image, kernel, strides, pads, ceil_mode=ceil))


@op("GlobalAveragePool", "GlobalMaxPool")
def global_pool(ctx, node, attrs):
    x = ctx.tensor(0)
    c, h, w = _image(ctx, x)
    layer = (L.AvgPool2d if node.op_type == "GlobalAveragePool" else L.MaxPool2d)(_short((h, w)))
    return ctx.call(layer, [x], (c, 1, 1))


# ---------------------------------------------------------------- merging


@op("Add", "Sum", "Mul")
def add_or_mul(ctx, node, attrs):
    values = [ctx.input(i) for i in range(len(node.input))]
    if values and all(isinstance(v, np.ndarray) for v in values):
        return C.arith(ctx, node.op_type, values)
    tensors = [i for i, v in enumerate(values) if not isinstance(v, np.ndarray)]
    xs = [ctx.tensor(i) for i in tensors]
    if len(xs) == len(values):
        layer = merge.Multiply() if node.op_type == "Mul" else merge.Add()
        return ctx.call(layer, xs, xs[0].shape) if len(xs) > 1 else xs[0]
    if node.op_type != "Mul" and len(values) == 2:
        return _fold_bias(ctx, xs[0], ctx.const(1 - tensors[0], "the constant"))
    raise OnnxImportError(f"{ctx.where}: multiplies a tensor by a constant; fastcnn has no "
                          f"layer for that")


@op("Concat")
def concat(ctx, node, attrs):
    axis = attrs.take("axis")
    if axis is None:
        raise OnnxImportError(f"{ctx.where}: attribute 'axis' is required")
    values = [ctx.input(i) for i in range(len(node.input))]
    if values and all(isinstance(v, np.ndarray) for v in values):
        C.bounded(ctx, (sum(v.size for v in values),), values)
        return C.concat(ctx, values, axis)
    xs = [ctx.tensor(i) for i in range(len(values))]
    rank = len(xs[0].shape) + 1
    if not -rank <= axis < rank or axis % rank != 1:
        raise attrs.unsupported("axis", axis, "fastcnn's Concat joins along the channels, "
                                "axis 1")
    shape = (sum(x.shape[0] for x in xs),) + xs[0].shape[1:]
    return ctx.call(merge.Concat(), xs, shape) if len(xs) > 1 else xs[0]


# ---------------------------------------------------------------- activations


def _activation(cls, **params):
    """A converter to cls, its arguments the attributes params names (with defaults)."""
    def convert(ctx, node, attrs):
        x = ctx.tensor(0)
        kwargs = {arg: float(attrs.take(name, default)) for arg, (name, default)
                  in params.items()}
        return ctx.call(cls(**kwargs), [x], x.shape)
    return convert


for _name, _convert in {"Relu": _activation(L.ReLU), "Sigmoid": _activation(L.Sigmoid),
                        "Tanh": _activation(L.Tanh),
                        "LeakyRelu": _activation(L.LeakyReLU, negative_slope=("alpha", 0.01)),
                        "Elu": _activation(L.ELU, alpha=("alpha", 1.0))}.items():
    op(_name)(_convert)


@op("Softmax", "LogSoftmax")
def softmax(ctx, node, attrs):
    x = ctx.tensor(0)
    axis = attrs.take("axis", -1 if ctx.opset >= 13 else 1)
    if len(x.shape) != 1 or axis not in (1, -1):
        raise attrs.unsupported("axis", axis, f"fastcnn's {node.op_type} is over the classes "
                                f"of (N, C) scores; the input is (N, "
                                f"{', '.join(map(str, x.shape))})")
    layer = L.Softmax() if node.op_type == "Softmax" else L.LogSoftmax()
    return ctx.call(layer, [x], x.shape)


@op("Dropout")
def dropout(ctx, node, attrs):
    attrs.take("seed")
    if ctx.opset < 12:
        ratio = attrs.take("ratio", 0.5)
    else:
        ratio = float(ctx.const(1, "ratio", np.array(0.5)))
        training = ctx.const(2, "training_mode", np.array(False))
        if training.any():
            raise OnnxImportError(f"{ctx.where}: training_mode is true; fastcnn imports the "
                                  f"inference form (its Dropout trains in training mode)")
    if isinstance(ctx.input(0), np.ndarray):
        return ctx.input(0)
    x = ctx.tensor(0)
    if not 0 <= ratio < 1:
        raise OnnxImportError(f"{ctx.where}: ratio {ratio} is not in [0, 1)")
    return ctx.call(L.Dropout(ratio), [x], x.shape) if ratio else x


@op("Identity")
def identity(ctx, node, attrs):
    value = ctx.input(0)
    if value is None:
        raise OnnxImportError(f"{ctx.where}: input 0 is missing")
    return value


@op("Pad")
def pad(ctx, node, attrs):
    attrs.expect("mode", "constant", reason="fastcnn pads with zeros")
    if ctx.opset < 11:
        pads, value, axes = attrs.take("pads"), attrs.take("value", 0.0), None
    else:
        pads = ctx.const(1, "pads")
        value = ctx.const(2, "constant_value", np.zeros(()))
        axes = None if ctx.input(3) is None else ctx.const(3, "axes")
    x = ctx.tensor(0)
    rank = len(x.shape) + 1
    axes = list(range(rank)) if axes is None else [int(a) % rank for a in axes.reshape(-1)]
    pads = [int(p) for p in np.asarray(pads).reshape(-1)] if pads is not None else []
    if len(pads) != 2 * len(axes) or np.any(np.asarray(value) != 0):
        raise OnnxImportError(f"{ctx.where}: pads {pads} with {np.asarray(value).tolist()}: "
                              f"fastcnn supports 2 pads per axis, with 0")
    full = [0] * (2 * rank)
    for k, axis in enumerate(axes):
        full[axis], full[axis + rank] = pads[k], pads[k + len(axes)]
    if rank != 4 or any(full[a] or full[a + rank] for a in (0, 1)) or min(full) < 0:
        raise OnnxImportError(f"{ctx.where}: pads {full}: fastcnn supports padding the height "
                              f"and width of (N, C, H, W) images, in front of a Conv or "
                              f"AveragePool")
    if not any(full):
        return x
    return Padded(x, [full[2], full[3], full[6], full[7]])


from . import reshape, resize  # noqa: E402,F401  (their operators register themselves)
