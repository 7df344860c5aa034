"""Sequential: a stack of blocks, each one's output the next one's input.

    model = Sequential(Conv2d(1, 32, 3, padding=1), ReLU(), ..., Linear(3136, 10))
    model.compile(optimizer=Adam(model.parameters(), lr=1e-3), loss=SoftmaxCrossEntropy())
    history = model.fit(DataLoader((x, y), batch_size=100, shuffle=True), epochs=15,
                        val=(x_val, y_val))

As PyTorch's nn.Sequential, its children are named "0", "1", ... or by the names of a
dict given instead (``Sequential({"features": Sequential(...), "classifier": ...})``),
and may be models themselves (a Sequential, a Residual block, a graph). ``model[i]`` is
a child, ``model[a:b]`` a Sequential of some of them (the same objects, their names
kept: ``model[:4].freeze()``), ``model["features"]`` or ``model.features`` one by name.

The forward pass runs the children in order and the backward pass in reverse;
nothing here computes anything itself. Training, files and callbacks are the
Model base's (base.py), the same for every kind of model.
"""

from collections import OrderedDict

from . import blocks
from .base import Model
from .training import eval_mode


class Sequential(Model):
    """Blocks applied one after the other; forward, backward, fit, evaluate, predict."""

    FORMAT = "fastcnn.Sequential"

    def __init__(self, *layers):
        if len(layers) == 1 and isinstance(layers[0], dict):
            layers = layers[0]
        super().__init__(layers)

    def __len__(self):
        return len(self.children)

    def __getitem__(self, i):
        if isinstance(i, str):
            if i not in self.children:
                raise KeyError(f"Sequential has no child {i!r} (its children: "
                               f"{', '.join(self.children)})")
            return self.children[i]
        items = list(self.children.items())
        if isinstance(i, slice):
            names = [(layer, layer.index) for layer in self.layers]
            part = Sequential(OrderedDict(items[i]))
            for layer, index in names:   # errors keep naming them as this model does
                layer.index = index
            return part
        return items[i][1]

    def __iter__(self):
        return iter(self.children.values())

    def __repr__(self):
        inner = "".join(f"\n  ({name}) " + repr(child).replace("\n", "\n  ")
                        for name, child in self.children.items())
        return f"Sequential({inner}\n)"

    # ---- forward and backward

    def forward(self, x):
        for layer in self.layers:   # release the arrays saved last time, so buffers recycle
            layer.forget()
        self.input_shape = tuple(x.shape[1:])
        for child in self.children.values():
            try:
                x = child.forward(x)
            except (ValueError, TypeError) as e:
                name = getattr(child, "name", None)
                if name is None or str(e).startswith(name):
                    raise
                kind = ValueError if isinstance(e, ValueError) else TypeError
                raise kind(f"{name}: {e}") from e
        return x

    def backward(self, dy, need_dx=True):
        """Backpropagate dy (d loss / d output) through the children, writing the grads of
        the layers that train. Returns dx of the input, or None with need_dx=False, which
        skips the children below the first one that trains (frozen or without parameters,
        nothing there needs a gradient) and that one's dx."""
        children = list(self.children.values())
        training = [i for i, child in enumerate(children) if blocks.trains(child)]
        lowest = 0 if need_dx else (training[0] if training else len(children))
        for i in range(len(children) - 1, lowest - 1, -1):
            dy = children[i].backward(dy, need_dx or i > lowest)
        return dy if need_dx else None

    # ---- what files and summaries need

    def describe(self, position):
        plain = (all(name == str(i) for i, name in enumerate(self.children))
                 and [position[id(layer)] for layer in self.layers] == list(range(len(position)))
                 and len(self.layers) == len(self.children))
        if plain:        # the layers in order, as every file before nesting holds them
            return {}
        return {"children": [{"name": name, **blocks.describe(child, position)}
                             for name, child in self.children.items()]}

    @classmethod
    def rebuild(cls, spec, layers):
        children = spec.get("children")
        if children is None:
            return cls(*layers)
        if not isinstance(children, list):
            raise ValueError("a Sequential's children are not a list")
        named = OrderedDict()
        for child in children:
            name = child.get("name") if isinstance(child, dict) else None
            if not isinstance(name, str) or name in named:
                raise ValueError(f"a Sequential's child has no name, or one used twice: "
                                 f"{blocks._short(child)}")
            named[name] = blocks.rebuild(child, layers)
        return cls(named)

    def summary_rows(self, input_shape):
        shapes = self._output_shapes(input_shape) if input_shape else [None] * len(self)
        return [(name, blocks.brief(child), shape, child.num_params())
                for (name, child), shape in zip(self.children.items(), shapes)]

    def _output_shapes(self, input_shape):
        """Each child's output shape, from a forward pass of one zero example in eval mode."""
        x = self._zeros_example(input_shape)
        shapes = []
        with eval_mode(self):
            self.forget()
            for child in self.children.values():
                x = child.forward(x)
                shapes.append(tuple(x.shape[1:]))
            self.forget()
        return shapes
