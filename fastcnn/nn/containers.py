"""Container layers: blocks of blocks, as PyTorch writes them.

    block = Residual(Sequential(Conv2d(16, 32, 3, stride=2, padding=1), BatchNorm2d(32),
                                ReLU(), Conv2d(32, 32, 3, padding=1), BatchNorm2d(32)),
                     shortcut=Sequential(Conv2d(16, 32, 1, stride=2), BatchNorm2d(32)))
    inception = Concat(Conv2d(32, 16, 1), Sequential(Conv2d(32, 16, 3, padding=1), ReLU()))

- ``Residual(body, shortcut=None)``: body(x) + shortcut(x), the shortcut the identity
  when None (a ResNet block, its ReLU after it);
- ``Branches(*branches)``, what ``Concat(*branches)`` builds: each branch applied to the
  same input, their outputs joined along the channels (an Inception block);
- ``Sequential``, the chain (``fastcnn.model.Sequential``, importable from here too).

Each is a model (``fastcnn.model.Model``): it nests in any other, trains on its own,
and names its children for the weights' keys ("body.0.weight", "shortcut.1.bias",
"2.weight"). Its forward and backward are written out below; where the input feeds
two paths, backward adds the two gradients (the chain rule over both).
"""

from .. import functional as F
from ..model import blocks
from ..model.base import Model
from ..model.sequential import Sequential  # noqa: F401  (fastcnn.nn.Sequential)


class Residual(Model):
    """y = body(x) + shortcut(x); shortcut None: the identity, y = body(x) + x."""

    FORMAT = "fastcnn.Residual"

    def __init__(self, body, shortcut=None):
        children = {"body": body}
        if shortcut is not None:
            children["shortcut"] = shortcut
        super().__init__(children)
        self.body, self.shortcut = body, shortcut

    def brief(self):
        shortcut = "identity" if self.shortcut is None else blocks.brief(self.shortcut)
        return f"Residual: {len(self.layers)} layers, shortcut {shortcut}"

    def __repr__(self):
        body, shortcut = (repr(b).replace("\n", "\n  ") for b in (self.body, self.shortcut))
        return f"Residual(\n  body={body},\n  shortcut={shortcut}\n)"

    def forward(self, x):
        self.forget()
        self.input_shape = tuple(x.shape[1:])
        h = self.body.forward(x)
        s = x if self.shortcut is None else self.shortcut.forward(x)
        if tuple(h.shape) != tuple(s.shape):
            raise ValueError(f"Residual: the body's output has shape {tuple(h.shape)} but the "
                             f"shortcut's has {tuple(s.shape)} (input {tuple(x.shape)}); a "
                             f"body that changes the shape needs a shortcut that does too "
                             f"(e.g. a 1x1 Conv2d with the body's stride)")
        return F.add(h, s)

    def backward(self, dy, need_dx=True):
        """dy reaches the body and the shortcut alike; x's gradient is the sum of theirs."""
        if not need_dx and not blocks.trains(self):
            return None
        dx_body = self.body.backward(dy, need_dx)
        dx_shortcut = dy if self.shortcut is None else self.shortcut.backward(dy, need_dx)
        return F.add(dx_body, dx_shortcut) if need_dx else None

    def describe(self, position):
        spec = {"body": blocks.describe(self.body, position)}
        if self.shortcut is not None:
            spec["shortcut"] = blocks.describe(self.shortcut, position)
        return spec

    @classmethod
    def rebuild(cls, spec, layers):
        shortcut = spec.get("shortcut")
        return cls(blocks.rebuild(spec.get("body"), layers),
                   None if shortcut is None else blocks.rebuild(shortcut, layers))

    def summary_rows(self, input_shape):
        shape = input_shape and self._output_shape(self, input_shape)
        return [(name, blocks.brief(child), shape, child.num_params())
                for name, child in self.children.items()]


class Branches(Model):
    """Each branch applied to the same input, their outputs joined along the channels:
    Concat(*branches). The outputs must agree on every axis but the channels."""

    FORMAT = "fastcnn.Branches"

    def __init__(self, *branches):
        if not branches:
            raise ValueError("Branches: needs at least one branch")
        super().__init__(branches)
        self._channels = None

    def brief(self):
        return f"Concat of {len(self.children)} branches: {len(self.layers)} layers"

    def __repr__(self):
        inner = "".join(f"\n  ({name}) " + repr(child).replace("\n", "\n  ")
                        for name, child in self.children.items())
        return f"Concat({inner}\n)"

    def forward(self, x):
        self.forget()
        self.input_shape = tuple(x.shape[1:])
        ys = [branch.forward(x) for branch in self.children.values()]
        try:
            y = F.concat(ys)
        except ValueError as e:
            shapes = ", ".join(f"branch {name} {tuple(y.shape)}"
                               for name, y in zip(self.children, ys))
            raise ValueError(f"Concat: the branches' outputs must agree on every axis but "
                             f"1 (the channels): {shapes}") from e
        self._channels = [int(y.shape[1]) for y in ys]
        return y

    def backward(self, dy, need_dx=True):
        """Each branch gets its channels of dy; x's gradient is the sum of the branches'."""
        if self._channels is None:
            raise RuntimeError("Concat: backward() needs a forward pass first")
        if not need_dx and not blocks.trains(self):
            return None
        dx = None
        for branch, d in zip(self.children.values(), F.concat_backward(dy, self._channels)):
            g = branch.backward(d, need_dx)
            dx = g if dx is None else F.add(dx, g)
        return dx if need_dx else None

    def forget(self):
        super().forget()
        self._channels = None

    def describe(self, position):
        return {"branches": [blocks.describe(b, position) for b in self.children.values()]}

    @classmethod
    def rebuild(cls, spec, layers):
        branches = spec.get("branches")
        if not isinstance(branches, list):
            raise ValueError("a Concat's branches are not a list")
        return cls(*[blocks.rebuild(b, layers) for b in branches])

    def summary_rows(self, input_shape):
        return [(name, blocks.brief(child), input_shape and self._output_shape(child, input_shape),
                 child.num_params()) for name, child in self.children.items()]
