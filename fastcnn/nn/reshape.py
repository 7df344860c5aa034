"""Layers that change an array's shape: Upsample (resampling), Flatten and Unflatten
(views)."""

import math

from .. import _args
from .. import functional as F
from .base import Layer, _without_defaults

MODES = ("nearest", "bilinear")


class Upsample(Layer):
    """PyTorch's nn.Upsample of (N, C, H, W): to size (h, w), or by scale_factor (a number
    or a pair, below 1 too: output floor(H * scale_factor)); exactly one of the two.
    mode="nearest" (F.upsample_nearest2d) or "bilinear" (F.upsample_bilinear2d, with
    align_corners; None is False, as in PyTorch)."""

    def __init__(self, size=None, scale_factor=None, mode="nearest", align_corners=None):
        super().__init__(size=size, scale_factor=scale_factor, mode=mode,
                         align_corners=align_corners)
        where = "Upsample"
        factors, hw = _args.resize(where, scale_factor, size)
        if not isinstance(mode, str) or mode not in MODES:
            raise ValueError(f"{where}: mode must be one of {MODES}, got {mode!r}")
        self._window = dict(scale_factor=factors, size=hw)
        if mode == "bilinear":
            self._window["align_corners"] = align_corners is not None and _args.flag(
                where, "align_corners", align_corners)
        elif align_corners is not None:
            raise ValueError(f"{where}: align_corners can only be set with mode='bilinear' "
                             f"(as in PyTorch), got align_corners={align_corners!r}")
        self.op = f"upsample_{mode}2d"

    def config(self):
        return _without_defaults(super().config(), size=None, scale_factor=None,
                                 mode="nearest", align_corners=None)

    def _forward(self, x):
        y = getattr(F, self.op)(x, **self._window, out=self.reuse.out("y", x))
        self.saved["input_shape"] = tuple(x.shape)
        return self.reuse.keep("y", y)

    def _backward(self, dy, need_dx):
        shape = self.saved["input_shape"]
        return self.reuse.keep("dx", getattr(F, self.op + "_backward")(
            dy, shape, **self._window, out=self.reuse.out("dx", dy, shape)))


class Flatten(Layer):
    """Axes start_dim to end_dim (counted from the end if negative) as one: by default
    (N, ...) -> (N, prod(...)). A view of x where x is contiguous, no copy."""

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__(start_dim=start_dim, end_dim=end_dim)
        self.start_dim = _args.integer("Flatten", "start_dim", start_dim, -_args.INT_MAX)
        self.end_dim = _args.integer("Flatten", "end_dim", end_dim, -_args.INT_MAX)

    def config(self):
        return _without_defaults(super().config(), start_dim=1, end_dim=-1)

    def _axis(self, name, value, shape):
        n = len(shape)
        if not -n <= value < n:
            raise ValueError(f"{name} must be in [{-n}, {n}) for an input of shape {shape}, "
                             f"got {value}")
        return value % n

    def _forward(self, x):
        shape = tuple(x.shape)
        start = self._axis("start_dim", self.start_dim, shape)
        end = self._axis("end_dim", self.end_dim, shape)
        if start > end:
            raise ValueError(f"start_dim {self.start_dim} comes after end_dim {self.end_dim} "
                             f"for an input of shape {shape}")
        self.saved["input_shape"] = shape
        return x.reshape(shape[:start] + (math.prod(shape[start:end + 1]),) + shape[end + 1:])

    def _backward(self, dy, need_dx):
        return dy.reshape(self.saved["input_shape"])


class Unflatten(Layer):
    """PyTorch's nn.Unflatten: axis dim (counted from the end if negative) as the axes
    unflattened_size, a tuple of sizes of which one may be -1 (what the others leave):
    (N, 784) -> (N, 16, 7, 7) with Unflatten(1, (16, 7, 7)). A view of x where x is
    contiguous, no copy."""

    def __init__(self, dim, unflattened_size):
        super().__init__(dim=dim, unflattened_size=unflattened_size)
        where = "Unflatten"
        self.dim = _args.integer(where, "dim", dim, -_args.INT_MAX)
        if not isinstance(unflattened_size, (tuple, list)) or not unflattened_size:
            raise TypeError(f"{where}: unflattened_size must be a non-empty tuple of sizes, "
                            f"got {unflattened_size!r}")
        self.sizes = tuple(_args.integer(where, "unflattened_size", d, -1)
                           for d in unflattened_size)
        if 0 in self.sizes or self.sizes.count(-1) > 1:
            raise ValueError(f"{where}: unflattened_size must hold positive sizes and at most "
                             f"one -1, got {unflattened_size!r}")

    def output_sizes(self, shape):
        """(the axis unflattened, its sizes with -1 resolved) for an input of shape."""
        n = len(shape)
        if not -n <= self.dim < n:
            raise ValueError(f"dim must be in [{-n}, {n}) for an input of shape {shape}, got "
                             f"{self.dim}")
        axis, known = self.dim % n, math.prod(d for d in self.sizes if d != -1)
        size = shape[axis]
        if (size % known if -1 in self.sizes else size != known):
            raise ValueError(f"unflattened_size {self.sizes} does not hold the {size} "
                             f"entries of axis {axis} of an input of shape {shape}")
        return axis, tuple(size // known if d == -1 else d for d in self.sizes)

    def _forward(self, x):
        shape = tuple(x.shape)
        axis, sizes = self.output_sizes(shape)
        self.saved["input_shape"] = shape
        return x.reshape(shape[:axis] + sizes + shape[axis + 1:])

    def _backward(self, dy, need_dx):
        return dy.reshape(self.saved["input_shape"])
