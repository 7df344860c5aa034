"""Sequential: a stack of layers, each one's output the next one's input.

    model = Sequential(Conv2d(1, 32, 3, padding=1), ReLU(), ..., Linear(3136, 10))
    model.compile(optimizer=Adam(model.parameters(), lr=1e-3), loss=SoftmaxCrossEntropy())
    history = model.fit(DataLoader((x, y), batch_size=100, shuffle=True), epochs=15,
                        val=(x_val, y_val))

The forward pass runs the layers in order and the backward pass in reverse;
nothing here computes anything itself. Training, files and callbacks are the
Model base's (base.py), the same for every kind of model.
"""

from . import io
from .base import Model
from .training import eval_mode


class Sequential(Model):
    """Layers applied one after the other; forward, backward, fit, evaluate, predict."""

    FORMAT = "fastcnn.Sequential"

    def __init__(self, *layers):
        super().__init__(layers)

    def __len__(self):
        return len(self.layers)

    def __getitem__(self, i):
        return self.layers[i]

    def __iter__(self):
        return iter(self.layers)

    def __repr__(self):
        inner = "".join(f"\n  ({i}) {layer!r}" for i, layer in enumerate(self.layers))
        return f"Sequential({inner}\n)"

    # ---- forward and backward

    def forward(self, x):
        for layer in self.layers:   # release the arrays saved last time, so buffers recycle
            layer.forget()
        self.input_shape = tuple(x.shape[1:])
        for layer in self.layers:
            x = layer.forward(x)
        return x

    __call__ = forward

    def backward(self, dy, need_dx=True):
        """Backpropagate dy (d loss / d output) through every layer, writing their grads.
        Returns dx of the input, or None with need_dx=False, which also skips the layers
        below the first one with parameters."""
        first = next((i for i, layer in enumerate(self.layers) if layer.params), 0)
        for i in range(len(self.layers) - 1, -1, -1):
            if not need_dx and i < first:
                break
            dy = self.layers[i].backward(dy, need_dx or i > first)
        return dy if need_dx else None

    # ---- what files and summaries need

    def architecture(self):
        return {"format": self.FORMAT, "version": io.FORMAT_VERSION,
                "layers": self.layer_specs()}

    @classmethod
    def from_architecture(cls, arch, layers):
        return cls(*layers)

    def summary_rows(self, input_shape):
        shapes = self._output_shapes(input_shape) if input_shape else [None] * len(self)
        return [(i, repr(layer), shape, layer.num_params())
                for i, (layer, shape) in enumerate(zip(self.layers, shapes))]

    def _output_shapes(self, input_shape):
        """Each layer's output shape, from a forward pass of one zero example in eval mode."""
        x = self._zeros_example(input_shape)
        shapes = []
        with eval_mode(self):
            for layer in self.layers:
                layer.forget()
            for layer in self.layers:
                x = layer.forward(x)
                shapes.append(tuple(x.shape[1:]))
            for layer in self.layers:
                layer.forget()
        return shapes
