"""Reshaping operators: Flatten, Reshape, Squeeze, Unsqueeze, and the reductions that
make a Maxout (a Reshape to groups, then ReduceMax: what export writes) or a global pool.

fastcnn's models keep the batch axis; a Reshape, Squeeze or Unsqueeze that keeps it is
read as the identity, a Flatten (of the axes it merges), an Unflatten (of the axis it
splits), a Flatten then an Unflatten (anything else), or the groups of a Maxout; one
that moves the batch is refused. A Reshape's target may come from shape arithmetic
(``constants``), with None where the batch size goes.
"""

import math

import numpy as np

from ..nn import layers as L
from . import OnnxImportError
from . import constants as C
from .constants import op
from .importing import Grouped
from .ops import _short


def _reshaped(ctx, x, shape):
    """x (N, ...) as (N, *shape), as few layers as do it: itself, a Flatten of the axes
    it merges, an Unflatten of the axis it splits, else a Flatten to (N, -1) and an
    Unflatten."""
    shape, have = tuple(int(d) for d in shape), x.shape
    if math.prod(shape) != math.prod(have):
        raise OnnxImportError(f"{ctx.where}: cannot reshape (N, {', '.join(map(str, have))}) "
                              f"to (N, {', '.join(map(str, shape))})")
    if shape == have:
        return x
    for start in range(len(have)):
        for end in range(start + 1, len(have)):      # axes start..end merged
            if have[:start] + (math.prod(have[start:end + 1]),) + have[end + 1:] == shape:
                last = end + 1 if end + 1 < len(have) else -1
                return ctx.call(L.Flatten(start + 1, last), [x], shape)
        tail = len(shape) - len(have) + start + 1     # axis start split
        if tail > start and shape[:start] == have[:start] and shape[tail:] == have[start + 1:]:
            return ctx.call(L.Unflatten(start + 1, shape[start:tail]), [x], shape)
    flat = ctx.call(L.Flatten(), [x], (math.prod(have),))
    return ctx.call(L.Unflatten(1, shape), [flat], shape)


@op("Flatten")
def flatten(ctx, node, attrs):
    axis = attrs.take("axis", 1)
    value = ctx.input(0)
    if isinstance(value, np.ndarray):
        axis %= max(value.ndim, 1)
        return value.reshape(math.prod(value.shape[:axis]), -1)
    x = ctx.tensor(0)
    if axis % (len(x.shape) + 1) != 1:
        raise attrs.unsupported("axis", axis, "fastcnn flattens everything but the batch axis")
    return _reshaped(ctx, x, (math.prod(x.shape),))


@op("Reshape")
def reshape(ctx, node, attrs):
    allowzero = attrs.take("allowzero", 0)
    target = ctx.const(1, "shape", numeric=False)
    value = ctx.input(0)
    if isinstance(value, np.ndarray):
        return C.reshape(ctx, value, target, allowzero)
    x = ctx.tensor(0)
    dims = [None if d is None else int(d) for d in target.reshape(-1)]
    have = (None,) + x.shape
    dims = [have[i] if d == 0 and not allowzero and i < len(have) else d
            for i, d in enumerate(dims)]
    batch, rest = (dims[0], dims[1:]) if dims else (1, [])
    known = [d for d in rest if d != -1]
    if None in rest or rest.count(-1) > 1 or any(d < 0 for d in known):
        raise OnnxImportError(f"{ctx.where}: reshapes to {dims}, which fastcnn cannot read "
                              f"as a shape that keeps the batch axis")
    if -1 in rest and batch is not None and batch != -1 and batch != ctx.static_batch:
        raise OnnxImportError(f"{ctx.where}: reshapes to {dims}, which does not keep the batch "
                              f"axis")
    size = math.prod(x.shape)
    if -1 in rest:
        if 0 in known or size % math.prod(known):
            raise OnnxImportError(f"{ctx.where}: cannot reshape (N, {x.shape}) to {dims}")
        rest[rest.index(-1)] = size // math.prod(known)
    elif batch not in (None, -1, ctx.static_batch) or math.prod(rest) != size:
        raise OnnxImportError(f"{ctx.where}: reshapes (N, {', '.join(map(str, x.shape))}) to "
                              f"{dims}, which does not keep the batch axis")
    channels = x.shape[0]
    if len(rest) == len(x.shape) + 1 and rest[1] and rest[0] * rest[1] == channels and \
            tuple(rest[2:]) == x.shape[1:] and ctx.read_only_by(node.output[0], "ReduceMax"):
        return Grouped(x, rest[1])     # (N, C/k, k, ...) then a ReduceMax: a Maxout
    return _reshaped(ctx, x, rest)


@op("ReduceMax", "ReduceMean")
def reduce(ctx, node, attrs):
    """A ReduceMax over axis 2 of a Grouped tensor: a Maxout; a ReduceMax or ReduceMean
    over the height and width of images: a global pool (flattened with keepdims=0)."""
    keep = attrs.take("keepdims", 1)
    if ctx.opset < 18:
        axes = attrs.take("axes")
    else:
        axes = None if ctx.input(1) is None else list(ctx.const(1, "axes").reshape(-1))
    attrs.expect("noop_with_empty_axes", 0)
    value = ctx.input(0)
    if isinstance(value, Grouped) and node.op_type == "ReduceMax":
        x, k = value.node, value.detail
        if axes is None or [a % (len(x.shape) + 2) for a in axes] != [2] or keep:
            raise OnnxImportError(f"{ctx.where}: reduces axes {axes} (keepdims={keep}) of a "
                                  f"tensor grouped by {k}; a Maxout reduces axis 2 alone")
        return ctx.call(L.Maxout(k), [x], (x.shape[0] // k,) + x.shape[1:])
    x = ctx.tensor(0)
    rank = len(x.shape) + 1
    if rank != 4 or axes is None or sorted(a % rank for a in axes) != [2, 3]:
        raise OnnxImportError(f"{ctx.where}: reduces axes {axes} of (N, "
                              f"{', '.join(map(str, x.shape))}); fastcnn supports the height "
                              f"and width of images (a global pool)")
    c, h, w = x.shape
    layer = (L.MaxPool2d if node.op_type == "ReduceMax" else L.AvgPool2d)(_short((h, w)))
    pooled = ctx.call(layer, [x], (c, 1, 1))
    if keep:
        return pooled
    return ctx.call(L.Flatten(), [pooled], (c,))


def _axes_of(ctx, attrs, i):
    """The axes of Squeeze / Unsqueeze: an attribute before opset 13, an input after."""
    if ctx.opset < 13:
        return attrs.take("axes")
    return None if ctx.input(i) is None else [int(a) for a in ctx.const(i, "axes").reshape(-1)]


@op("Squeeze")
def squeeze(ctx, node, attrs):
    axes = _axes_of(ctx, attrs, 1)
    value = ctx.input(0)
    if isinstance(value, np.ndarray):
        return C.squeeze(ctx, value, axes)
    x = ctx.tensor(0)
    rank = len(x.shape) + 1
    axes = [i for i in range(1, rank) if x.shape[i - 1] == 1] if axes is None else \
        [a % rank for a in axes if -rank <= a < rank]
    if 0 in axes or any(x.shape[a - 1] != 1 for a in axes if a):
        raise OnnxImportError(f"{ctx.where}: squeezes axes {axes} of (N, {x.shape}): only "
                              f"axes of size 1 past the batch axis can go")
    return _reshaped(ctx, x, [d for i, d in enumerate(x.shape, 1) if i not in axes])


@op("Unsqueeze")
def unsqueeze(ctx, node, attrs):
    axes = _axes_of(ctx, attrs, 1)
    if axes is None:
        raise OnnxImportError(f"{ctx.where}: the axes are required")
    value = ctx.input(0)
    if isinstance(value, np.ndarray):
        return C.unsqueeze(ctx, value, axes)
    x = ctx.tensor(0)
    rank = len(x.shape) + 1 + len(axes)
    axes = sorted(a % rank for a in axes if -rank <= a < rank)
    if 0 in axes or len(set(axes)) != len(axes) or len(axes) + len(x.shape) + 1 != rank:
        raise OnnxImportError(f"{ctx.where}: adds axes {axes} to a tensor of shape (N, "
                              f"{', '.join(map(str, x.shape))}): fastcnn's models keep the "
                              f"batch axis first")
    rest = iter(x.shape)
    return _reshaped(ctx, x, [1 if a in axes else next(rest) for a in range(1, rank)])
