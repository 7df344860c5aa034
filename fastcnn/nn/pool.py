"""Pooling: max and average pools over fixed windows (2-D and 1-D) and adaptive ones,
with PyTorch's arguments. AdaptiveAvgPool2d(1) is global average pooling."""

from .. import _args
from .. import functional as F
from .base import Layer, _without_defaults


class _Pool(Layer):
    """A pooling op called with the window its constructor checked (``_window``: the op's
    keyword arguments after x), and its backward: from the indices for the max pools,
    from the window for the average pools (adaptive ones: from dy's shape alone)."""

    op = None
    indices = False    # the op returns (y, indices), which the backward takes
    lean = False       # ... and gives y alone with indices=False: eval mode asks that
    adaptive = False
    defaults = {}

    def config(self):
        return _without_defaults(super().config(), **self.defaults)

    def _forward(self, x):
        op = getattr(F, self.op)
        if self.indices and (self.training or not self.lean):
            keys = ("y", "indices")
            y, self.saved["indices"] = self.reuse.keep(keys, op(
                x, **self._window, out=self.reuse.out(keys, x)))
        elif self.indices:   # eval mode: the maxima alone (a backward finds the indices again)
            y = self.reuse.keep("y", op(x, **self._window, indices=False,
                                        out=self.reuse.out("y", x)))
            self.saved["x"] = x
        else:
            y = self.reuse.keep("y", op(x, **self._window, out=self.reuse.out("y", x)))
        self.saved["input_shape"] = tuple(x.shape)
        return y

    def _backward(self, dy, need_dx):
        shape, backward = self.saved["input_shape"], getattr(F, self.op + "_backward")
        out = self.reuse.out("dx", dy, shape)
        if self.indices:
            if "indices" not in self.saved:   # after an eval-mode forward (a saliency map)
                self.saved["indices"] = getattr(F, self.op)(self.saved["x"], **self._window)[1]
            dx = backward(dy, self.saved["indices"], shape, out=out)
        else:
            dx = backward(dy, shape, **({} if self.adaptive else self._window), out=out)
        return self.reuse.keep("dx", dx)


def _no_indices(where, return_indices):
    """PyTorch's return_indices=True makes a layer return (y, indices); a layer here hands
    on one array, so only False is taken (the indices are in layer.saved["indices"])."""
    if _args.flag(where, "return_indices", return_indices):
        raise ValueError(f"{where}: return_indices=True is not supported: a layer returns one "
                         f"array (after a forward pass the indices are in "
                         f"layer.saved['indices'])")


def _line(where, kernel_size, stride, padding, dilation=1):
    """A 1-D pool's window, checked as the 2-D one of a (1, L) image, in the 1-D op's
    terms: ints and padding (left, right) or a mode."""
    k, s, p, d = _args.line_window(where, kernel_size, stride, padding, dilation)
    _args.pool_window(where, k, s, p, d)
    return dict(kernel_size=k[1], stride=None if s is None else s[1],
                padding=p if isinstance(p, str) else p[2:], dilation=d[1])


class MaxPool2d(_Pool):
    """Max over each window of (N, C, H, W); stride defaults to kernel_size; padding never
    wins; ceil_mode rounds the output size up."""

    op, indices, lean = "max_pool2d", True, True
    defaults = dict(stride=None, padding=0, dilation=1, return_indices=False, ceil_mode=False)

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False,
                 ceil_mode=False):
        super().__init__(kernel_size=kernel_size, stride=stride, padding=padding,
                         dilation=dilation, return_indices=return_indices, ceil_mode=ceil_mode)
        where = "MaxPool2d"
        _no_indices(where, return_indices)
        k, s, p, d = _args.pool_window(where, kernel_size, stride, padding, dilation)
        self._window = dict(kernel_size=k, stride=s, padding=p, dilation=d,
                            ceil_mode=_args.flag(where, "ceil_mode", ceil_mode))


class MaxPool1d(_Pool):
    """MaxPool2d along L of (N, C, L)."""

    op, indices, lean = "max_pool1d", True, True
    defaults = MaxPool2d.defaults

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False,
                 ceil_mode=False):
        super().__init__(kernel_size=kernel_size, stride=stride, padding=padding,
                         dilation=dilation, return_indices=return_indices, ceil_mode=ceil_mode)
        where = "MaxPool1d"
        _no_indices(where, return_indices)
        self._window = dict(_line(where, kernel_size, stride, padding, dilation),
                            ceil_mode=_args.flag(where, "ceil_mode", ceil_mode))


class AvgPool2d(_Pool):
    """Mean over each window of (N, C, H, W), with PyTorch's divisors: padded zeros count
    unless count_include_pad=False; divisor_override replaces the divisor."""

    op = "avg_pool2d"
    defaults = dict(stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                    divisor_override=None)

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True, divisor_override=None):
        super().__init__(kernel_size=kernel_size, stride=stride, padding=padding,
                         ceil_mode=ceil_mode, count_include_pad=count_include_pad,
                         divisor_override=divisor_override)
        where = "AvgPool2d"
        k, s, p, _ = _args.pool_window(where, kernel_size, stride, padding)
        include, divisor = _args.divisor(where, count_include_pad, divisor_override)
        self._window = dict(kernel_size=k, stride=s, padding=p,
                            ceil_mode=_args.flag(where, "ceil_mode", ceil_mode),
                            count_include_pad=include, divisor_override=divisor)


class AvgPool1d(_Pool):
    """AvgPool2d along L of (N, C, L) (PyTorch's AvgPool1d has no divisor_override)."""

    op = "avg_pool1d"
    defaults = dict(stride=None, padding=0, ceil_mode=False, count_include_pad=True)

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True):
        super().__init__(kernel_size=kernel_size, stride=stride, padding=padding,
                         ceil_mode=ceil_mode, count_include_pad=count_include_pad)
        where = "AvgPool1d"
        window = _line(where, kernel_size, stride, padding)
        del window["dilation"]
        self._window = dict(window, ceil_mode=_args.flag(where, "ceil_mode", ceil_mode),
                            count_include_pad=_args.divisor(where, count_include_pad, None)[0])


class _Adaptive(_Pool):
    """An adaptive pool to output_size: an int, or a tuple whose None entries keep the
    input's size."""

    adaptive, rank = True, 2

    def __init__(self, output_size, **config):
        super().__init__(output_size=output_size, **config)
        where = type(self).__name__
        self._window = dict(output_size=_args.output_size(where, output_size, self.rank))


class AdaptiveAvgPool2d(_Adaptive):
    """Mean over adaptive windows of (N, C, H, W) -> (N, C, *output_size)."""

    op = "adaptive_avg_pool2d"


class AdaptiveAvgPool1d(_Adaptive):
    op, rank = "adaptive_avg_pool1d", 1


class _AdaptiveMax(_Adaptive):
    indices = True
    defaults = dict(return_indices=False)

    def __init__(self, output_size, return_indices=False):
        super().__init__(output_size, return_indices=return_indices)
        _no_indices(type(self).__name__, return_indices)


class AdaptiveMaxPool2d(_AdaptiveMax):
    """Max over adaptive windows of (N, C, H, W) -> (N, C, *output_size)."""

    op = "adaptive_max_pool2d"


class AdaptiveMaxPool1d(_AdaptiveMax):
    op, rank = "adaptive_max_pool1d", 1
