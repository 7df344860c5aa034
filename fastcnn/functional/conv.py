"""The conv family: im2col / col2im, conv2d (groups, depthwise), conv1d and
conv_transpose2d, forward and backward."""

from .. import _args
from .. import backends
from .._args import arg as _arg
from .._args import integer as _int
from ._checks import (
    _backend, _conv_out, _floats, _ndim, _nonempty_batch, _out, _outs, _padding, _shape4)


# ---------------------------------------------------------------- im2col / col2im


def im2col(x, kernel_size, stride=1, padding=0, dilation=1, *, backend=None, out=None):
    """Unfold sliding windows: (N, C, H, W) -> cols (N, C*kh*kw, OH*OW)."""
    op = "im2col"
    be = _backend(op, backend, {"x": x})
    (x,) = _floats(op, be, x=x)
    _ndim(op, "x", x, 4, "(N, C, H, W)")
    _nonempty_batch(op, "x", x)
    k = _arg(op, "kernel_size", kernel_size)
    s, p, d = _args.conv_window(op, stride, padding, dilation)
    p = _padding(p, x.shape[2:], k, s, d)
    oh, ow = _conv_out(op, x.shape[2:], k, s, p, d, f"x.shape={tuple(x.shape)}")
    n, c = x.shape[:2]
    out = _out(op, be, out, (n, c * k[0] * k[1], oh * ow), x.dtype, reads={"x": x})
    return be.im2col(x, k, s, p, d, out=out)


def col2im(cols, input_shape, kernel_size, stride=1, padding=0, dilation=1, *,
           backend=None, out=None):
    """Fold cols (N, C*kh*kw, OH*OW) back to input_shape, summing where windows overlap."""
    op = "col2im"
    be = _backend(op, backend, {"cols": cols})
    (cols,) = _floats(op, be, cols=cols)
    _ndim(op, "cols", cols, 3, "(N, C*kh*kw, OH*OW)")
    n, c, h, w = _shape4(op, "input_shape", input_shape)
    k = _arg(op, "kernel_size", kernel_size)
    s, p, d = _args.conv_window(op, stride, padding, dilation)
    p = _padding(p, (h, w), k, s, d)
    oh, ow = _conv_out(op, (h, w), k, s, p, d, f"input_shape={(n, c, h, w)}")
    expected = (n, c * k[0] * k[1], oh * ow)
    if tuple(cols.shape) != expected:
        raise ValueError(f"{op}: cols must have shape {expected} for input_shape="
                         f"{(n, c, h, w)} and kernel_size={k}, got {tuple(cols.shape)}")
    out = _out(op, be, out, (n, c, h, w), cols.dtype, reads={"cols": cols})
    return be.col2im(cols, (n, c, h, w), k, s, p, d, out=out)


# ---------------------------------------------------------------- convolution


def _groups(op, x, weight, groups, transposed=False):
    """groups as an int that divides both channel counts; weight is (out, in/groups, ...)
    for a convolution, (in, out/groups, ...) for a transposed one."""
    groups = _int(op, "groups", groups, 1)
    shapes = f"(x.shape={tuple(x.shape)}, weight.shape={tuple(weight.shape)}, groups={groups})"
    inputs, outputs = ((weight.shape[0], weight.shape[1] * groups) if transposed
                       else (weight.shape[1] * groups, weight.shape[0]))
    if x.shape[1] % groups:
        raise ValueError(f"{op}: groups={groups} does not divide x's {x.shape[1]} input "
                         f"channels {shapes}")
    if outputs % groups:
        raise ValueError(f"{op}: groups={groups} does not divide weight's {outputs} output "
                         f"channels {shapes}")
    if x.shape[1] != inputs:
        raise ValueError(f"{op}: weight expects {inputs} input channels but x has "
                         f"{x.shape[1]} {shapes}")
    if outputs == 0:
        raise ValueError(f"{op}: weight has no output channels {shapes}")
    if 0 in weight.shape[2:]:
        raise ValueError(f"{op}: weight's kernel is empty (weight.shape={tuple(weight.shape)})")
    return groups


def _conv_args(op, x, weight, stride, padding, dilation, groups):
    _ndim(op, "x", x, 4, "(N, C, H, W)")
    _ndim(op, "weight", weight, 4, "(out_channels, in_channels/groups, kh, kw)")
    _nonempty_batch(op, "x", x)
    groups = _groups(op, x, weight, groups)
    s, p, d = _args.conv_window(op, stride, padding, dilation)
    p = _padding(p, x.shape[2:], weight.shape[2:], s, d)
    oh, ow = _conv_out(op, x.shape[2:], weight.shape[2:], s, p, d,
                       f"x.shape={tuple(x.shape)}, weight.shape={tuple(weight.shape)}")
    columns = x.shape[1] * weight.shape[2] * weight.shape[3]   # im2col's rows, one image
    _args.fits(op, "one image's column matrix", (columns, oh * ow), x.dtype)
    return s, p, d, groups, (x.shape[0], weight.shape[0], oh, ow)


def _bias(op, bias, channels, weight):
    if bias is not None and tuple(bias.shape) != (channels,):
        raise ValueError(f"{op}: bias must have shape ({channels},) for weight.shape="
                         f"{tuple(weight.shape)}, got {tuple(bias.shape)}")


def _dy(op, dy, shape, x, weight):
    if tuple(dy.shape) != tuple(shape):
        raise ValueError(f"{op}: dy must have the output's shape {tuple(shape)} "
                         f"(x.shape={tuple(x.shape)}, weight.shape={tuple(weight.shape)}), "
                         f"got {tuple(dy.shape)}")


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, backend=None,
           out=None):
    """2-D convolution (cross-correlation, as PyTorch): (N, C, H, W) -> (N, K, OH, OW), weight
    (K, C/groups, kh, kw). With groups, output channels [g*K/G, (g+1)*K/G) see input
    channels [g*C/G, (g+1)*C/G) only; groups == C is a depthwise convolution."""
    op = "conv2d"
    be = _backend(op, backend, {"x": x, "weight": weight, "bias": bias})
    x, weight, bias = _floats(op, be, ("bias",), x=x, weight=weight, bias=bias)
    s, p, d, g, y_shape = _conv_args(op, x, weight, stride, padding, dilation, groups)
    _bias(op, bias, weight.shape[0], weight)
    out = _out(op, be, out, y_shape, x.dtype, reads={"x": x, "weight": weight, "bias": bias})
    return be.conv2d(x, weight, bias, s, p, d, g, out=out)


def conv2d_backward(dy, x, weight, stride=1, padding=0, dilation=1, need_dx=True, groups=1, *,
                    need_dweight=True, backend=None, out=None):
    """Gradients of conv2d: (dx or None, dweight, dbias). (groups comes after need_dx, which
    callers pass by position.) need_dweight=False leaves out dweight and dbias (None: a
    frozen layer's), which are then not computed."""
    op = "conv2d_backward"
    be = _backend(op, backend, {"dy": dy, "x": x, "weight": weight})
    dy, x, weight = _floats(op, be, dy=dy, x=x, weight=weight)
    s, p, d, g, y_shape = _conv_args(op, x, weight, stride, padding, dilation, groups)
    _dy(op, dy, y_shape, x, weight)
    need_dx = _args.flag(op, "need_dx", need_dx)
    wanted = _args.flag(op, "need_dweight", need_dweight)
    out = _outs(op, be, out, [(x.shape, x.dtype) if need_dx else None,
                              (weight.shape, x.dtype) if wanted else None,
                              ((weight.shape[0],), x.dtype) if wanted else None],
                reads={"dy": dy, "x": x, "weight": weight})
    if not (need_dx or wanted):
        return out
    return be.conv2d_backward(dy, x, weight, s, p, d, g, need_dx, out=out)


def _transposed_args(op, x, weight, stride, padding, output_padding, groups, dilation):
    """Checked arguments of a transposed convolution and its output's shape."""
    _ndim(op, "x", x, 4, "(N, C, H, W)")
    _ndim(op, "weight", weight, 4, "(in_channels, out_channels/groups, kh, kw)")
    _nonempty_batch(op, "x", x)
    groups = _groups(op, x, weight, groups, transposed=True)
    s, p, op_, d = _args.transposed_window(op, stride, padding, output_padding, dilation)
    hw = tuple(backends.transposed_output_size(x.shape[2 + a], weight.shape[2 + a], s[a],
                                               p[2 * a: 2 * a + 2], d[a], op_[a])
               for a in range(2))
    if min(hw) < 1:
        raise ValueError(f"{op}: the output would be {hw[0]}x{hw[1]}: padding {p} (top, "
                         f"bottom, left, right) crops more than the transposed convolution "
                         f"makes (x.shape={tuple(x.shape)}, weight.shape="
                         f"{tuple(weight.shape)}, stride={s}, dilation={d})")
    full = [(x.shape[2 + a] - 1) * s[a] + d[a] * (weight.shape[2 + a] - 1) + 1 + op_[a]
            for a in range(2)]   # before padding crops it
    if max(full) > _args.INT_MAX:
        raise ValueError(f"{op}: the uncropped output would be {full[0]:,}x{full[1]:,}: more "
                         f"than the kernels' C int ({_args.INT_MAX:,}) along an axis (x.shape="
                         f"{tuple(x.shape)}, weight.shape={tuple(weight.shape)}, stride={s}, "
                         f"dilation={d})")
    return s, p, d, groups, (x.shape[0], weight.shape[1] * groups) + hw


def conv_transpose2d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1, *, backend=None, out=None):
    """Transposed convolution (PyTorch's ConvTranspose2d, ONNX's ConvTranspose): the adjoint
    of conv2d in x. (N, C, H, W) -> (N, K, OH, OW), weight (C, K/groups, kh, kw) (input
    channels first), OH = (H-1)*stride - top - bottom + dilation*(kh-1) + output_padding + 1.
    padding crops the output; output_padding extends it at the bottom and right."""
    op = "conv_transpose2d"
    be = _backend(op, backend, {"x": x, "weight": weight, "bias": bias})
    x, weight, bias = _floats(op, be, ("bias",), x=x, weight=weight, bias=bias)
    s, p, d, g, y_shape = _transposed_args(op, x, weight, stride, padding, output_padding,
                                           groups, dilation)
    _bias(op, bias, y_shape[1], weight)
    out = _out(op, be, out, y_shape, x.dtype, reads={"x": x, "weight": weight, "bias": bias})
    return be.conv_transpose2d(x, weight, bias, s, p, g, d, out=out)


def conv_transpose2d_backward(dy, x, weight, stride=1, padding=0, output_padding=0, groups=1,
                              dilation=1, need_dx=True, *, backend=None, out=None):
    """Gradients of conv_transpose2d: (dx or None, dweight, dbias)."""
    op = "conv_transpose2d_backward"
    be = _backend(op, backend, {"dy": dy, "x": x, "weight": weight})
    dy, x, weight = _floats(op, be, dy=dy, x=x, weight=weight)
    s, p, d, g, y_shape = _transposed_args(op, x, weight, stride, padding, output_padding,
                                           groups, dilation)
    _dy(op, dy, y_shape, x, weight)
    need_dx = _args.flag(op, "need_dx", need_dx)
    out = _outs(op, be, out, [(x.shape, x.dtype) if need_dx else None,
                              (weight.shape, x.dtype), ((y_shape[1],), x.dtype)],
                reads={"dy": dy, "x": x, "weight": weight})
    return be.conv_transpose2d_backward(dy, x, weight, s, p, g, d, need_dx, out=out)


def _conv1d_args(op, x, weight, stride, padding, dilation, groups):
    """conv1d's arguments checked in 1-D terms, then as the 2-D convolution that computes
    it: (N, C, L) viewed as (N, C, 1, L). Returns the 2-D stride, padding, dilation, groups
    and the 1-D output shape."""
    _ndim(op, "x", x, 3, "(N, C, L)")
    _ndim(op, "weight", weight, 3, "(out_channels, in_channels/groups, k)")
    _nonempty_batch(op, "x", x)
    groups = _groups(op, x, weight, groups)
    s, d = _args.single(op, "stride", stride, 1), _args.single(op, "dilation", dilation, 1)
    k, length = weight.shape[2], x.shape[2]
    pads = _args.line_padding(op, padding)
    if isinstance(pads, str):
        pads = _padding(_args.padding(op, pads, (1, s)), (1, length), (1, k), (1, s),
                        (1, d))[2:]
    extent = d * (k - 1) + 1
    if max(extent, length + sum(pads)) > _args.INT_MAX:
        raise ValueError(f"{op}: the padded input ({length + sum(pads):,}) or the dilated "
                         f"kernel ({extent:,}) exceeds {_args.INT_MAX:,}, the kernels' C int "
                         f"(x.shape={tuple(x.shape)}, weight.shape={tuple(weight.shape)})")
    if extent > length + sum(pads):
        raise ValueError(f"{op}: the kernel (size {k}, extent {extent}) is larger than the "
                         f"padded input (length {length} padded by {pads}); x.shape="
                         f"{tuple(x.shape)}, weight.shape={tuple(weight.shape)}")
    ol = backends.output_size(length, k, s, pads, d)
    return (1, s), (0, 0) + pads, (1, d), groups, (x.shape[0], weight.shape[0], ol)


def _as_2d(be, a):
    """(N, C, L) as the view (N, C, 1, L), where be computes (None stays None; out= arrays
    of other libraries become the backend's views of them)."""
    if a is None:
        return None
    a = be.asarray(a)
    return a.reshape(tuple(a.shape[:2]) + (1,) + tuple(a.shape[2:]))


def conv1d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, backend=None,
           out=None):
    """1-D convolution: (N, C, L) -> (N, K, OL), weight (K, C/groups, k); padding an int, a
    (left, right) pair or a mode as for conv2d. The 2-D kernels compute it, on views."""
    op = "conv1d"
    be = _backend(op, backend, {"x": x, "weight": weight, "bias": bias})
    x, weight, bias = _floats(op, be, ("bias",), x=x, weight=weight, bias=bias)
    s, p, d, g, y_shape = _conv1d_args(op, x, weight, stride, padding, dilation, groups)
    _bias(op, bias, weight.shape[0], weight)
    out = _out(op, be, out, y_shape, x.dtype, reads={"x": x, "weight": weight, "bias": bias})
    be.conv2d(_as_2d(be, x), _as_2d(be, weight), bias, s, p, d, g, out=_as_2d(be, out))
    return out


def conv1d_backward(dy, x, weight, stride=1, padding=0, dilation=1, need_dx=True, groups=1, *,
                    backend=None, out=None):
    """Gradients of conv1d: (dx or None, dweight, dbias) (arguments in conv2d_backward's
    order)."""
    op = "conv1d_backward"
    be = _backend(op, backend, {"dy": dy, "x": x, "weight": weight})
    dy, x, weight = _floats(op, be, dy=dy, x=x, weight=weight)
    s, p, d, g, y_shape = _conv1d_args(op, x, weight, stride, padding, dilation, groups)
    _dy(op, dy, y_shape, x, weight)
    need_dx = _args.flag(op, "need_dx", need_dx)
    out = _outs(op, be, out, [(x.shape, x.dtype) if need_dx else None,
                              (weight.shape, x.dtype), ((weight.shape[0],), x.dtype)],
                reads={"dy": dy, "x": x, "weight": weight})
    be.conv2d_backward(_as_2d(be, dy), _as_2d(be, x), _as_2d(be, weight), s, p, d, g,
                       need_dx, out=(_as_2d(be, out[0]), _as_2d(be, out[1]), out[2]))
    return out
