"""Fan-in layers: a graph's nodes that take several tensors and give one.

    y = Add()([f(x), x])                  # a residual connection
    y = Concat()([a, b, c])               # branches side by side along the channels
    y = Multiply()([x, gate])             # elementwise product (a gate, an attention mask)

Their forward takes a list of arrays and their backward returns a list, one gradient
per input. ``Concat(*branches)``, given blocks instead, is the container
``fastcnn.nn.Branches``: each branch applied to the same input, their outputs joined.
"""

from .. import functional as F
from .layers import LAYERS, Layer


class _Merge(Layer):
    """A layer of several inputs (``fan_in``: graphs hand it a list)."""

    fan_in = True
    same_shape = True

    def __init__(self):
        super().__init__()

    def _saved(self):
        if "inputs" not in self.saved:
            raise RuntimeError(f"{self.name}: backward() needs a forward pass first")
        return self.saved["inputs"]

    def _fold(self, op, xs):
        """(xs checked, op(...op(op(x0, x1), x2)..., xn)), the last into the reused array."""
        self.forget()
        xs = self._checked(xs)
        y = xs[0]
        for i, x in enumerate(xs[1:], 2):
            y = op(y, x, out=self.reuse.out("y", *xs) if i == len(xs) else None)
        return xs, (self.reuse.keep("y", y) if len(xs) > 1 else y)

    def _checked(self, xs):
        """xs as a list of arrays; for Add and Multiply, all of one shape."""
        if not isinstance(xs, (list, tuple)):
            raise TypeError(f"{self.name}: expects a list of arrays (one per input), got "
                            f"{type(xs).__name__}")
        if not xs:
            raise ValueError(f"{self.name}: expects at least one input, got an empty list")
        for i, x in enumerate(xs):
            if not hasattr(x, "shape"):
                raise TypeError(f"{self.name}: input {i} is not an array "
                                f"({type(x).__name__})")
        shapes = [tuple(x.shape) for x in xs]
        for i, shape in enumerate(shapes[1:], 1):
            if self.same_shape and shape != shapes[0]:
                raise self._named(ValueError(
                    f"inputs must all have one shape, but input 0 has shape {shapes[0]} and "
                    f"input {i} has shape {shape}"))
        return list(xs)


class Add(_Merge):
    """The sum of its inputs, arrays of one shape. Its backward hands dy to every input."""

    def forward(self, xs):
        xs, y = self._fold(F.add, xs)
        self.saved["inputs"] = len(xs)
        return y

    def backward(self, dy, need_dx=True):
        count = self._saved()
        return [dy] * count if need_dx else None


class Multiply(_Merge):
    """The elementwise product of its inputs, arrays of one shape."""

    def forward(self, xs):
        xs, y = self._fold(F.multiply, xs)
        self.saved["inputs"] = xs
        return y

    def backward(self, dy, need_dx=True):
        xs = self._saved()
        if not need_dx:
            return None
        dxs = []
        for i in range(len(xs)):          # d(x0 x1 ... xn) / dxi = the product of the others
            dx = dy
            for j, x in enumerate(xs):
                if j != i:
                    dx = F.multiply(dx, x)
            dxs.append(dx)
        return dxs


class Concat(_Merge):
    """Its inputs side by side along axis 1, the channels: (N, C1, ...), (N, C2, ...) ->
    (N, C1 + C2, ...); the other axes must agree. Concat(*branches), given blocks, builds
    the container Branches instead (each branch on the same input)."""

    same_shape = False

    def __new__(cls, *branches):
        if branches:
            from .containers import Branches
            return Branches(*branches)
        return super().__new__(cls)

    def forward(self, xs):
        self.forget()
        xs = self._checked(xs)
        first = tuple(xs[0].shape)
        for i, x in enumerate(xs[1:], 1):
            shape = tuple(x.shape)
            if len(shape) < 2 or len(shape) != len(first) or \
                    shape[:1] + shape[2:] != first[:1] + first[2:]:
                raise self._named(ValueError(
                    f"inputs must agree on every axis but 1 (the channels), but input 0 has "
                    f"shape {first} and input {i} has shape {shape}"))
        y = self.reuse.keep("y", F.concat(xs, out=self.reuse.out("y", *xs)))
        self.saved["inputs"] = [int(x.shape[1]) for x in xs]
        return y

    def backward(self, dy, need_dx=True):
        channels = self._saved()
        if not need_dx:
            return None
        keys = tuple(f"dx{i}" for i in range(len(channels)))
        dxs = F.concat_backward(dy, channels, out=self.reuse.out(keys, dy))
        return list(self.reuse.keep(keys, dxs))


MERGE_LAYERS = {cls.__name__: cls for cls in (Add, Multiply, Concat)}
LAYERS.update(MERGE_LAYERS)    # so that model files (and the layer fuzzing) find them
