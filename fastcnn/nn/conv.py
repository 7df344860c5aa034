"""Convolutions: Conv2d, Conv1d and ConvTranspose2d, with PyTorch's arguments, weight
layouts and initialisation."""

import numpy as np

from .. import _args
from .. import functional as F
from .base import Layer, _size, _weight_and_bias, _without_defaults


class _Conv(Layer):
    """A convolution op and its backward, called with the window the constructor checked
    (``_window``: the op's keyword arguments after bias)."""

    op = None
    ndim, layout = None, None   # the input's rank and layout: 4, "(N, {c}, H, W)"
    defaults = {}   # the constructor's defaults, for a short config

    def _channels(self, where, in_channels, out_channels, groups):
        """in_channels, out_channels and groups, checked: groups divides both (as PyTorch
        requires, so that the weight can be built)."""
        self.in_channels = _size(where, "in_channels", in_channels)
        self.out_channels = _size(where, "out_channels", out_channels)
        groups = _args.arg(where, "groups", groups)
        for name, n in (("in_channels", self.in_channels), ("out_channels", self.out_channels)):
            if n % groups:
                raise ValueError(f"{where}: {name} ({n}) must be divisible by groups ({groups})")
        return groups

    def config(self):
        return _without_defaults(super().config(), **self.defaults)

    def _forward(self, x):
        self._expect(x, self.ndim, self.layout.format(c=self.in_channels), self.in_channels)
        weight = self.params["weight"]
        y = getattr(F, self.op)(x, weight, self.params.get("bias"), **self._window,
                                out=self.reuse.out("y", x, weight))
        self.saved["x"] = x
        return self.reuse.keep("y", y)

    def _backward(self, dy, need_dx):
        x = self.saved["x"]
        # A frozen Conv2d computes no weight gradient; the other convolutions compute it
        # (their ops have no need_dweight) and the optimizers skip it.
        frozen = not self.trainable and self.op == "conv2d"
        if frozen and not need_dx:
            return None
        grads = (None, None) if frozen else (self.grads["weight"], self.grads.get("bias"))
        dx, _, _ = getattr(F, self.op + "_backward")(
            dy, x, self.params["weight"], **self._window, need_dx=need_dx,
            **({"need_dweight": False} if frozen else {}),
            out=(self.reuse.out("dx", x) if need_dx else None,) + grads)
        return self.reuse.keep("dx", dx)


class Conv2d(_Conv):
    """2-D convolution (cross-correlation, as PyTorch); weight (out, in/groups, kh, kw)."""

    op, ndim, layout = "conv2d", 4, "(N, {c}, H, W)"
    defaults = dict(stride=1, padding=0, dilation=1, groups=1, bias=True)

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, *, dtype=np.float32, rng=None):
        super().__init__(in_channels=in_channels, out_channels=out_channels,
                         kernel_size=kernel_size, stride=stride, padding=padding,
                         dilation=dilation, groups=groups, bias=bias)
        where = "Conv2d"
        groups = self._channels(where, in_channels, out_channels, groups)
        kernel = _args.arg(where, "kernel_size", kernel_size)
        s, p, d = _args.conv_window(where, stride, padding, dilation)
        self._window = dict(stride=s, padding=p, dilation=d, groups=groups)
        _weight_and_bias(self, where, (self.out_channels, self.in_channels // groups) + kernel,
                         bias, dtype, rng)


class Conv1d(_Conv):
    """1-D convolution of (N, C, L); weight (out, in/groups, k); padding an int, a
    (left, right) pair or a mode, as F.conv1d takes it."""

    op, ndim, layout = "conv1d", 3, "(N, {c}, L)"
    defaults = Conv2d.defaults

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, *, dtype=np.float32, rng=None):
        super().__init__(in_channels=in_channels, out_channels=out_channels,
                         kernel_size=kernel_size, stride=stride, padding=padding,
                         dilation=dilation, groups=groups, bias=bias)
        where = "Conv1d"
        groups = self._channels(where, in_channels, out_channels, groups)
        kernel = _args.single(where, "kernel_size", kernel_size, 1)
        s = _args.single(where, "stride", stride, 1)
        p = _args.line_padding(where, padding)
        if isinstance(p, str):
            _args.padding(where, p, (1, s))   # "same" needs stride 1
        self._window = dict(stride=s, padding=p, dilation=_args.single(where, "dilation",
                                                                       dilation, 1),
                            groups=groups)
        _weight_and_bias(self, where, (self.out_channels, self.in_channels // groups, kernel),
                         bias, dtype, rng)


class ConvTranspose2d(_Conv):
    """Transposed 2-D convolution (PyTorch's ConvTranspose2d): the adjoint of Conv2d in x.
    weight (in, out/groups, kh, kw), as PyTorch lays it out and initialises it (its fan_in
    is out/groups * kh * kw); padding crops the output, output_padding extends it at the
    bottom and right."""

    op, ndim, layout = "conv_transpose2d", 4, "(N, {c}, H, W)"
    defaults = dict(stride=1, padding=0, output_padding=0, groups=1, bias=True, dilation=1)

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, dilation=1, *, dtype=np.float32,
                 rng=None):
        super().__init__(in_channels=in_channels, out_channels=out_channels,
                         kernel_size=kernel_size, stride=stride, padding=padding,
                         output_padding=output_padding, groups=groups, bias=bias,
                         dilation=dilation)
        where = "ConvTranspose2d"
        groups = self._channels(where, in_channels, out_channels, groups)
        kernel = _args.arg(where, "kernel_size", kernel_size)
        s, p, extra, d = _args.transposed_window(where, stride, padding, output_padding,
                                                 dilation)
        self._window = dict(stride=s, padding=p, output_padding=extra, groups=groups,
                            dilation=d)
        _weight_and_bias(self, where, (self.in_channels, self.out_channels // groups) + kernel,
                         bias, dtype, rng, outputs=self.out_channels)
